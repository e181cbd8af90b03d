"""Inbox, search, the case page and triage.

Each view checks, parses the form into a small value (forms.py), asks a service (services.py, search.py),
commits once (the change and its audit entry together) and renders or redirects. Messages shown after a
redirect travel in the server-side session, so they are fixed sentences that quote no case content.
"""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from console import db_session
from console.access import current_opener, current_user
from console.audit.services import record
from console.cases import services
from console.cases.forms import (
    NO_CATEGORY,
    FormError,
    inbox_args,
    parse_assignment_form,
    parse_inbox_query,
    parse_note_form,
    parse_reveal_form,
    parse_search_form,
    parse_status_form,
    parse_urgent_form,
)
from console.search import index_for
from storage.models import AuditAction, CaseStatus, Role

bp = Blueprint("cases", __name__)


# --- the inbox ------------------------------------------------------------------------------------

@bp.get("/inbox")
def inbox():
    parsed = parse_inbox_query(request.args)
    session = db_session()
    user = current_user()
    settings = current_app.config["CONSOLE_SETTINGS"]
    page = services.inbox(session, user.id, parsed.query, settings.page_size)
    detail = page.query.as_detail()
    detail["page"] = page.page
    record(session, AuditAction.INBOX_VIEWED, actor=user, detail=detail)
    session.commit()
    return render_template(
        "console/cases/inbox.html", title="Inbox", page=page, query=page.query, problems=parsed.problems,
        pin_failures=services.pin_failure_alert(session),
        people=services.active_people(session), categories=services.known_categories(session),
        statuses=services.STATUS_ORDER, sorts=list(services.InboxSort), no_category=NO_CATEGORY,
        link=lambda **changes: url_for("cases.inbox", **inbox_args(page.query, **changes)),
    )


# --- one case -------------------------------------------------------------------------------------

def _case_or_404(reference: str, *, for_update: bool = False):
    case = services.find_case(db_session(), reference, for_update=for_update)
    if case is None:
        abort(404, description="There is no case with that reference.")
    return case


def _audit_trail_link(reference: str) -> str | None:
    if not current_user().role.at_least(Role.SUPERVISOR):
        return None
    if "audit.case_trail" in current_app.view_functions:
        return url_for("audit.case_trail", reference=reference)
    return f"/audit/cases/{reference}"


@bp.get("/cases/<reference>")
def case_page(reference: str):
    session = db_session()
    case = _case_or_404(reference)
    page = services.case_page(session, current_opener(), case)
    services.record_case_viewed(session, current_user(), case)
    session.commit()
    return render_template(
        "console/cases/case.html", title=f"Case {case.reference}", page=page, summary=page.summary,
        audit_link=_audit_trail_link(case.reference), statuses=CaseStatus,
    )


def _back_to(reference: str):
    return redirect(url_for("cases.case_page", reference=reference))


def _triage(reference: str, parse, act, done_message: str):
    """The shape every triage POST shares: parse, act on the locked case, commit, say what happened."""
    session = db_session()
    case = _case_or_404(reference, for_update=True)
    try:
        value = parse(request.form)
        act(session, case, value)
    except (FormError, services.CaseActionRefused) as refusal:
        session.rollback()
        flash(str(refusal), "error")
        return _back_to(case.reference)
    session.commit()
    flash(done_message, "ok")
    return _back_to(case.reference)


def _sealer():
    return current_app.extensions["console"].sealer


@bp.post("/cases/<reference>/status")
def change_status(reference: str):
    return _triage(
        reference, parse_status_form,
        lambda session, case, change: services.change_status(
            session, _sealer(), case, current_user(), change.status, change.reason, change.expected),
        "Status changed.",
    )


@bp.post("/cases/<reference>/assign")
def assign(reference: str):
    return _triage(
        reference, parse_assignment_form,
        lambda session, case, assignee_id: services.assign(session, case, current_user(), assignee_id),
        "Assignment changed.",
    )


@bp.post("/cases/<reference>/urgent")
def set_urgent(reference: str):
    return _triage(
        reference, parse_urgent_form,
        lambda session, case, urgent: services.set_urgent(session, case, current_user(), urgent),
        "Urgent flag changed.",
    )


@bp.post("/cases/<reference>/notes")
def add_note(reference: str):
    return _triage(
        reference, parse_note_form,
        lambda session, case, text: services.add_note(session, _sealer(), case, current_user(), text),
        "Note added.",
    )


@bp.post("/cases/<reference>/unlock")
def unlock_call_backs(reference: str):
    """Handlers and up: after 10 failed PINs a reference stays locked until someone does this."""
    return _triage(
        reference, lambda form: None,
        lambda session, case, _: services.unlock_call_backs(session, case, current_user()),
        "Call-backs unlocked: the caller can add to this case with their reference and PIN again.",
    )


@bp.post("/cases/<reference>/contact")
def reveal_contact(reference: str):
    """The number appears in this response only: never in a URL, a message, the session or a log."""
    session = db_session()
    case = _case_or_404(reference)
    try:
        reason = parse_reveal_form(request.form) if not case.anonymous else ""
        number = services.reveal_contact(session, _sealer(), current_opener(), case, current_user(), reason)
    except (FormError, services.CaseActionRefused) as refusal:
        session.rollback()
        flash(str(refusal), "error")
        return _back_to(case.reference)
    session.commit()
    return render_template("console/cases/contact.html", title=f"Contact for case {case.reference}",
                           reference=case.reference, number=number)


# --- search ---------------------------------------------------------------------------------------

@bp.route("/search", methods=["GET", "POST"])
def search():
    """GET shows the form; POST runs it, so the words are never in a URL, an access log or the audit log."""
    if request.method == "GET":
        return render_template("console/cases/search.html", title="Search", q="", outcome=None, problem=None)
    try:
        q = parse_search_form(request.form)
    except FormError as problem:
        return render_template("console/cases/search.html", title="Search", q="", outcome=None,
                               problem=str(problem)), 400
    session = db_session()
    settings = current_app.config["CONSOLE_SETTINGS"]
    index = index_for(current_app.extensions, settings.idle_minutes * 60)
    outcome = index.search(session, current_opener(), q)
    record(session, AuditAction.SEARCHED, actor=current_user(), detail={"results": outcome.total})
    session.commit()
    return render_template("console/cases/search.html", title="Search", q=q, outcome=outcome, problem=None,
                           received=services.received_label)
