"""Retention for supervisors: what is due for deletion and when, legal holds (console/retention/services.py),
and re-sealing a past month's remaining cases so that its key can go (console/reseal.py)."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from console import db_session
from console.access import current_opener, current_user, requires
from console.audit.services import record
from console.cases import services as cases
from console.cases.forms import FormError, parse_hold_form
from console import reseal
from console.retention import services
from storage.models import AuditAction, Role

# A press of the re-seal button works this long at most (a case takes 16 to 30 ms with a minute of audio),
# well within what a browser or a front proxy waits for an answer; pressing again goes on.
RESEAL_SECONDS_A_PRESS = 20.0

bp = Blueprint("retention", __name__)


@bp.get("/retention")
@requires(Role.SUPERVISOR)
def index():
    session = db_session()
    page = services.retention_page(session, current_app.config["CONSOLE_SETTINGS"].retention,
                                   store=current_app.extensions["console"].periods)
    record(session, AuditAction.RETENTION_VIEWED, actor=current_user(),
           detail={"due": page.due_now, "held": page.held, "listed": len(page.rows)})
    session.commit()
    return render_template("console/retention/index.html", title="Retention", page=page)


def _hold_action(reference: str, act, done: str):
    session = db_session()
    case = cases.find_case(session, reference, for_update=True)
    if case is None:
        abort(404, description="There is no case with that reference.")
    try:
        act(session, current_app.extensions["console"].sealer, case, current_user(), parse_hold_form(request.form))
    except (FormError, cases.CaseActionRefused) as refusal:
        session.rollback()
        flash(str(refusal), "error")
        return redirect(url_for("retention.index"))
    session.commit()
    flash(done, "ok")
    return redirect(url_for("retention.index"))


@bp.post("/retention/cases/<reference>/hold")
@requires(Role.SUPERVISOR)
def place_hold(reference: str):
    return _hold_action(reference, services.place_hold, "The case is on legal hold: it will not be deleted.")


@bp.post("/retention/cases/<reference>/lift")
@requires(Role.SUPERVISOR)
def lift_hold(reference: str):
    return _hold_action(reference, services.lift_hold, "The legal hold is lifted.")


@bp.post("/retention/hold")
@requires(Role.SUPERVISOR)
def hold_by_reference():
    """The page's own form: a reference typed in (any case, settled or not)."""
    reference = (request.form.get("reference") or "").strip()
    return _hold_action(reference, services.place_hold, "The case is on legal hold: it will not be deleted.")


@bp.post("/retention/periods/<period>/reseal")
@requires(Role.SUPERVISOR)
def reseal_period(period: str):
    """Seal a past month's remaining cases again under this month's key, opened with the signed-in
    supervisor's key, then destroy the month's key if it can go now (console/reseal.py). Commits as it goes."""
    session = db_session()
    console = current_app.extensions["console"]
    try:
        done = reseal.reseal_period(session, console.periods, console.sealer, current_opener().private_key,
                                    period, actor=current_user(), seconds=RESEAL_SECONDS_A_PRESS)
    except (reseal.ResealRefused, reseal.ResealStopped) as refusal:
        session.rollback()
        flash(str(refusal), "error")
        return redirect(url_for("retention.index"))
    moved = (f"Period {done.period}: {done.cases} {'case' if done.cases == 1 else 'cases'} and {done.items} "
             f"{'item' if done.items == 1 else 'items'} sealed again under {done.target}.")
    if done.cases_left:
        flash(f"{moved} {done.key_kept}: press Re-seal again to go on.", "ok")
    elif done.key_destroyed:
        flash(f"{moved} Its key is destroyed: what was sealed under it opens no more, in any backup of the database.", "ok")
    else:
        flash(f"{moved} Its key is kept: {done.key_kept}.", "ok")
    return redirect(url_for("retention.index"))
