"""Every console action, driven through its real route, leaves exactly one audit entry of its kind,
naming who did it and to which case or account."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import re

from sqlalchemy import select

from storage.models import AuditAction, Case, Force, Question
from tests.console.audit.support import named_case_saying, trail
from tests.console.support import skip_until_built


@dataclass(frozen=True)
class Step:
    what: str
    action: AuditAction
    actor: object  # the Person expected as the entry's actor
    do: Callable[[], object]
    case: str | None = None
    target: int | None = None


def test_each_action_leaves_exactly_one_entry_of_its_kind(console_app, console, people, hotline, fake_twilio):
    skip_until_built(console_app, "auth.second_factor", "cases.case_page", "media.correct", "accounts.invite")
    case = named_case_saying(hotline, fake_twilio, console, "he parked by the gate")
    handler, supervisor, admin = people.handler(), people.supervisor(), people.admin()
    stranger, target = people.handler(), people.handler()
    admin.signs_in()
    supervisor.signs_in()
    accounts = lambda path, form: admin.post_form("/accounts/", form, action=f"/accounts/{target.user_id}/{path}")
    triage = lambda path, form: handler.post_form(case.url, form, action=f"{case.url}/{path}")
    new_password = "pw-changed-" + "x7" * 6

    def force_id_named(name: str) -> int:
        with console.db.session() as session:
            return session.scalar(select(Force.id).where(Force.name == name))

    def newest_question_id() -> int:
        with console.db.session() as session:
            return session.scalar(select(Question.id).join(Case).where(Case.reference == case.reference)
                                  .order_by(Question.position.desc()).limit(1))

    def exports_a_referral():
        page = handler.get(f"{case.url}/referral").get_data(as_text=True)
        versions = dict(re.findall(r'name="(version-\d+)" value="(\d+)"', page))
        return handler.post_form(f"{case.url}/referral", {"force": str(force_id_named("Testshire Police")),
                                                          "summary": "A bribe at a traffic stop.", **versions},
                                 action=f"{case.url}/referral")

    def plays_the_audio():
        handler.get(case.media("audio"), headers={"Range": "bytes=0-99"})
        return handler.get(case.media("audio"), headers={"Range": "bytes=100-"})  # still the same play

    def corrects_a_word():
        csrf = handler.csrf(case.media("history"))
        return handler.client.post(case.media("corrections"), json={"base_version": 1, "start": 1, "end": 1,
                                                                    "text": "walked"}, headers={"X-CSRFToken": csrf})

    steps = [
        Step("sign-in", AuditAction.SIGN_IN, handler, handler.signs_in, target=handler.user_id),
        Step("failed sign-in", AuditAction.SIGN_IN_FAILED, None,
             lambda: stranger.post_form("/sign-in", {"username": stranger.username, "password": "not it at all"}),
             target=stranger.user_id),
        Step("inbox view", AuditAction.INBOX_VIEWED, handler, lambda: handler.get("/inbox")),
        Step("search", AuditAction.SEARCHED, handler, lambda: handler.post_form("/search", {"q": "gate"})),
        Step("case view", AuditAction.CASE_VIEWED, handler, lambda: handler.get(case.url), case=case.reference),
        Step("audio play", AuditAction.AUDIO_PLAYED, handler, plays_the_audio, case=case.reference),
        Step("transcript view", AuditAction.TRANSCRIPT_VIEWED, handler, lambda: handler.get(case.media("transcript")),
             case=case.reference),
        Step("correction", AuditAction.TRANSCRIPT_CORRECTED, handler, corrects_a_word, case=case.reference),
        Step("note", AuditAction.NOTE_ADDED, handler, lambda: triage("notes", {"text": "rang the station"}),
             case=case.reference),
        Step("status change", AuditAction.STATUS_CHANGED, handler,
             lambda: triage("status", {"status": "in-review", "current": "new"}), case=case.reference),
        Step("assignment", AuditAction.ASSIGNMENT_CHANGED, handler,
             lambda: triage("assign", {"assignee": str(handler.user_id)}), case=case.reference),
        Step("urgent", AuditAction.URGENT_CHANGED, handler, lambda: triage("urgent", {"urgent": "1"}),
             case=case.reference),
        Step("question written", AuditAction.QUESTION_WRITTEN, handler,
             lambda: handler.post_form(case.url, {"text": "Which station was it?"}, action=f"{case.url}/questions"),
             case=case.reference),
        Step("question withdrawn", AuditAction.QUESTION_WITHDRAWN, handler,
             lambda: handler.post_form(case.url, {}, action=f"{case.url}/questions/{newest_question_id()}/withdraw"),
             case=case.reference),
        Step("force registered", AuditAction.FORCE_REGISTERED, admin,
             lambda: admin.post_form("/referrals/forces", {"name": "Testshire Police"})),
        Step("referral exported", AuditAction.REFERRAL_EXPORTED, handler, exports_a_referral, case=case.reference),
        Step("force removed", AuditAction.FORCE_REMOVED, admin,
             lambda: admin.post_form("/referrals/forces", {},
                                     action=f"/referrals/forces/{force_id_named('Testshire Police')}/remove")),
        Step("dashboard view", AuditAction.DASHBOARD_VIEWED, supervisor, lambda: supervisor.get("/dashboard")),
        Step("retention view", AuditAction.RETENTION_VIEWED, supervisor, lambda: supervisor.get("/retention")),
        Step("legal hold placed", AuditAction.LEGAL_HOLD_PLACED, supervisor,
             lambda: supervisor.post_form("/retention", {"reference": case.reference, "reason": "a solicitor's letter"},
                                          action="/retention/hold"), case=case.reference),
        Step("legal hold lifted", AuditAction.LEGAL_HOLD_LIFTED, supervisor,
             lambda: supervisor.post_form("/retention", {"reason": "the claim is settled"},
                                          action=f"/retention/cases/{case.reference}/lift"), case=case.reference),
        Step("contact reveal", AuditAction.CONTACT_REVEALED, handler,
             lambda: triage("contact", {"reason": "to arrange a call back"}), case=case.reference),
        Step("invite", AuditAction.ACCOUNT_INVITED, admin,
             lambda: admin.post_form("/accounts/", {"username": "newcomer", "display_name": "New Comer",
                                                    "role": "handler"}, action="/accounts/invite")),
        Step("role change", AuditAction.ROLE_CHANGED, admin, lambda: accounts("role", {"role": "supervisor"}),
             target=target.user_id),
        Step("reset second factor", AuditAction.SECOND_FACTOR_RESET, admin, lambda: accounts("reset-second-factor", {}),
             target=target.user_id),
        Step("end sessions", AuditAction.SESSIONS_ENDED, admin, lambda: accounts("end-sessions", {}),
             target=target.user_id),
        Step("disable", AuditAction.ACCOUNT_DISABLED, admin, lambda: accounts("disable", {}), target=target.user_id),
        Step("password change", AuditAction.PASSWORD_CHANGED, handler,
             lambda: handler.post_form("/account", {"current": handler.password, "new": new_password,
                                                    "confirm": new_password}, action="/account/password"),
             target=handler.user_id),
        Step("audit view", AuditAction.AUDIT_VIEWED, supervisor, lambda: supervisor.get("/audit/")),
        Step("case trail view", AuditAction.AUDIT_VIEWED, supervisor,
             lambda: supervisor.get(f"/audit/cases/{case.reference}"), case=case.reference),
        Step("handler's trail view", AuditAction.AUDIT_VIEWED, supervisor,
             lambda: supervisor.get(f"/audit/users/{handler.user_id}"), target=handler.user_id),
        Step("sign-out", AuditAction.SIGN_OUT, handler, handler.signs_out, target=handler.user_id),
    ]
    problems = []
    for step in steps:
        before = len(trail(console, step.action))
        response = step.do()
        if response.status_code >= 400 and step.action is not AuditAction.SIGN_IN_FAILED:
            problems.append(f"{step.what}: the action itself failed ({response.status_code})")
            continue
        new = trail(console, step.action)[before:]
        if len(new) != 1:
            problems.append(f"{step.what}: {len(new)} {step.action.value} entries, not 1")
            continue
        entry = new[0]
        expected_actor = step.actor.user_id if step.actor is not None else None
        if entry.actor_id != expected_actor:
            problems.append(f"{step.what}: actor {entry.actor_id}, not {expected_actor}")
        if step.case is not None and entry.case_reference != step.case:
            problems.append(f"{step.what}: case {entry.case_reference}, not {step.case}")
        if step.target is not None and entry.target_user_id != step.target:
            problems.append(f"{step.what}: account acted on {entry.target_user_id}, not {step.target}")
    assert problems == []
