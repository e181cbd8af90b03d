"""Questions to the caller, asked on their next call-back: written and withdrawn from the case page, which
lists them (with each answer's take) through the `case_questions` template global."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for

from console import db_session
from console.access import current_opener, current_user, requires
from console.cases.services import CaseActionRefused, find_case
from console.questions import services
from console.questions.forms import FormError, parse_question_form
from storage.models import Role

bp = Blueprint("questions", __name__)


def _case_or_404(reference: str):
    case = find_case(db_session(), reference, for_update=True)
    if case is None:
        abort(404, description="There is no case with that reference.")
    return case


def _back_to(reference: str):
    return redirect(url_for("cases.case_page", reference=reference) + "#questions")


def _act(reference: str, act, done: str):
    session = db_session()
    case = _case_or_404(reference)
    try:
        act(session, case)
    except (FormError, CaseActionRefused) as refusal:
        session.rollback()
        flash(str(refusal), "error")
        return _back_to(case.reference)
    session.commit()
    flash(done, "ok")
    return _back_to(case.reference)


@bp.post("/cases/<reference>/questions")
@requires(Role.HANDLER)
def write(reference: str):
    sealer = current_app.extensions["console"].sealer
    return _act(reference, lambda session, case: services.write_question(
        session, sealer, case, current_user(), parse_question_form(request.form)),
        "Question saved. The caller will hear it the next time they ring with their reference and PIN.")


@bp.post("/cases/<reference>/questions/<int:question_id>/withdraw")
@requires(Role.HANDLER)
def withdraw(reference: str, question_id: int):
    return _act(reference, lambda session, case: services.withdraw_question(session, case, current_user(), question_id),
                "Question withdrawn: the caller will not hear it.")


@bp.app_template_global("case_questions")
def case_questions(reference: str) -> list[services.QuestionView]:
    """For the case page's questions section (console/templates/console/questions/_case_section.html)."""
    case = find_case(db_session(), reference)
    return [] if case is None else services.case_questions(db_session(), current_opener(), case)
