"""Supervisors read the audit trail: all of it (filtered), one case's, or one person's.

Looking is itself audited (AUDIT_VIEWED). The trail holds ids, references and actions only, so these
pages open no sealed item and show no report content.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, current_app, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from console import db_session
from console.access import current_user, requires
from console.audit import trail as trails
from console.audit.services import record, verify_chain
from storage.cases import find_case
from storage.models import AuditAction, Role

bp = Blueprint("audit", __name__, url_prefix="/audit")

ACTIONS = tuple(AuditAction)
BAD_PAGE_LINK = "That page link is not right; start again from the newest entries."


@dataclass(frozen=True)
class FilterForm:
    """What the filter form says, as typed (to fill the form again), and what it means."""

    action: str = ""
    case: str = ""
    account: str = ""
    error: str | None = None
    query: trails.TrailQuery = trails.TrailQuery()


def parse_filters(args: MultiDict) -> FilterForm:
    action_text = (args.get("action") or "").strip()
    case_text = "".join((args.get("case") or "").split())
    account_text = (args.get("account") or "").strip()
    action = case_reference = user_id = None
    error = None
    if action_text:
        action = next((a for a in ACTIONS if a.value == action_text), None)
        if action is None:
            error = "Choose an action from the list."
    if case_text:
        if len(case_text) == 8 and case_text.isascii() and case_text.isdigit():
            case_reference = case_text
        else:
            error = "A case reference is 8 digits."
    if account_text:
        user_id = _positive_int(account_text)
        if user_id is None:
            error = "Choose an account from the list."
    before = None
    if args.get("before"):
        before = _positive_int(args.get("before"))
        if before is None:
            error = BAD_PAGE_LINK
    form = FilterForm(action_text, case_text, account_text, error)
    if error:
        return form
    return FilterForm(action_text, case_text, account_text, None,
                      trails.TrailQuery(action, case_reference, user_id, before))


def _positive_int(text: str) -> int | None:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        return None
    value = int(text)
    return value if value > 0 else None


def _before(args: MultiDict) -> int | None:
    if not args.get("before"):
        return None
    before = _positive_int(args.get("before"))
    if before is None:
        abort(400, BAD_PAGE_LINK)
    return before


def _page_size() -> int:
    return current_app.config["CONSOLE_SETTINGS"].page_size


@bp.get("/")
@requires(Role.SUPERVISOR)
def trail():
    session = db_session()
    form = parse_filters(request.args)
    chain = verify_chain(session)
    accounts = trails.accounts(session)
    if form.error:
        return render_template("console/audit/trail.html", form=form, chain=chain, accounts=accounts,
                               actions=ACTIONS, page=trails.TrailPage([], None), older_url=None), 400
    page = trails.read_trail(session, form.query, _page_size())
    query = form.query
    record(session, AuditAction.AUDIT_VIEWED, actor=current_user(), case_reference=query.case_reference,
           target_user_id=query.user_id,
           detail={"page": "trail", "action": query.action.value if query.action else None,
                   "before": query.before, "shown": len(page.rows)})
    session.commit()
    older_url = None
    if page.older_than is not None:
        filters = {k: v for k, v in (("action", form.action), ("case", form.case), ("account", form.account)) if v}
        older_url = url_for("audit.trail", **filters, before=page.older_than)
    return render_template("console/audit/trail.html", form=form, chain=chain, accounts=accounts,
                           actions=ACTIONS, page=page, older_url=older_url)


@bp.get("/cases/<reference>")
@requires(Role.SUPERVISOR)
def case_trail(reference: str):
    session = db_session()
    if not (len(reference) == 8 and reference.isascii() and reference.isdigit()):
        abort(404, "A case reference is 8 digits.")
    case = find_case(session, reference)
    if case is None:
        abort(404, "No case has that reference.")
    before = _before(request.args)
    page = trails.read_trail(session, trails.TrailQuery(case_reference=reference, before=before), _page_size())
    record(session, AuditAction.AUDIT_VIEWED, actor=current_user(), case_reference=reference,
           detail={"page": "case", "before": before, "shown": len(page.rows)})
    session.commit()
    older_url = url_for("audit.case_trail", reference=reference, before=page.older_than) if page.older_than else None
    return render_template("console/audit/case_trail.html", reference=reference, page=page,
                           older_url=older_url)


@bp.get("/users/<int:user_id>")
@requires(Role.SUPERVISOR)
def user_trail(user_id: int):
    session = db_session()
    account = trails.find_account(session, user_id)
    if account is None:
        abort(404, "No account has that number.")
    before = _before(request.args)
    page = trails.read_trail(session, trails.TrailQuery(user_id=user_id, before=before), _page_size())
    record(session, AuditAction.AUDIT_VIEWED, actor=current_user(), target_user_id=user_id,
           detail={"page": "user", "before": before, "shown": len(page.rows)})
    session.commit()
    older_url = url_for("audit.user_trail", user_id=user_id, before=page.older_than) if page.older_than else None
    return render_template("console/audit/user_trail.html", account=account, page=page, older_url=older_url)

