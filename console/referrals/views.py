"""Referral packages for professional standards: the page to build one, the export, and the forces.

Handlers build and export on a case; admins register the forces (and their age public keys). The export
answers with the package itself, built in memory and sent in chunks: its Referral row and audit entry
(with the SHA-256 of the bytes sent) are committed first, so nothing leaves without its record.
"""
from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from sqlalchemy.exc import IntegrityError

from console import db_session
from console.access import current_opener, current_user, requires
from console.cases import services as cases
from console.cases.forms import FormError
from console.referrals import services
from console.referrals.forms import choices_as_sent, parse_export_form, parse_force_form
from storage.blobs import BlobMissing
from storage.crypto import SealError
from storage.models import Role

bp = Blueprint("referrals", __name__)
log = logging.getLogger("hotline.console.referrals")
CHUNK = 64 * 1024


@bp.app_context_processor
def _case_section():
    # The case page includes console/referrals/_case_section.html, which lists past referrals with this.
    return {"referrals_on_case": lambda case_id: services.past_referrals(db_session(), case_id)}


def _case_or_404(reference: str):
    case = cases.find_case(db_session(), reference)
    if case is None:
        abort(404, description="There is no case with that reference.")
    return case


def _builder(case, choices=None, error: str | None = None, status: int = 200):
    session = db_session()
    try:
        prepared = services.case_for_referral(session, current_opener(), case)
    except (SealError, BlobMissing, ValueError) as failure:
        log.warning("a transcript did not open for a referral (%s)", type(failure).__name__)
        return render_template("console/error.html", title="Cannot build a referral",
                               message="A transcript of this case did not open: it is damaged. Nothing was "
                                       "exported. Tell an admin."), 422
    services.record_reviewed(session, current_user(), prepared)
    session.commit()
    forces = services.forces(session)
    if choices is None:  # first look: every candidate ticked for review, encrypted if the force can open it
        redact = {(take.recording_id, word.index) for take in prepared.takes for word in take.words
                  if word.candidate is not None}
        choices = services.ExportChoices(0, "", frozenset(redact), include_audio=not prepared.anonymous,
                                         encrypt=bool(forces and forces[0].age_recipient))
    return render_template("console/referrals/build.html", title=f"Referral of case {case.reference}",
                           prepared=prepared, forces=forces, choices=choices, error=error,
                           is_admin=current_user().role.at_least(Role.ADMIN)), status


@bp.get("/cases/<reference>/referral")
@requires(Role.HANDLER)
def build(reference: str):
    return _builder(_case_or_404(reference))


@bp.post("/cases/<reference>/referral")
@requires(Role.HANDLER)
def export(reference: str):
    session = db_session()
    case = _case_or_404(reference)
    try:
        choices = parse_export_form(request.form)
    except FormError as problem:
        return _builder(case, choices_as_sent(request.form), str(problem), 400)
    try:
        force = services.active_force(session, choices.force_id)
        if force is None:
            raise services.ReferralRefused("Choose a force from the list; that one is not registered.")
        prepared = services.case_for_referral(session, current_opener(), case)
        package = services.build_package(session, current_opener(), prepared, force, choices)
        services.record_referral(session, case, force, current_user(), package)
    except services.ReferralRefused as refusal:
        session.rollback()
        return _builder(case, choices, str(refusal), 409 if isinstance(refusal, services.StaleReview) else 400)
    except (SealError, BlobMissing, ValueError) as failure:  # ValueError: a transcript that is not JSON
        session.rollback()
        log.warning("a sealed item did not open for a referral (%s)", type(failure).__name__)
        return render_template("console/error.html", title="Cannot build a referral",
                               message="A take or transcript of this case did not open: it is damaged. "
                                       "Nothing was exported. Tell an admin."), 422
    session.commit()
    data = package.data

    def chunks():
        for start in range(0, len(data), CHUNK):
            yield data[start:start + CHUNK]

    response = Response(chunks(), mimetype="application/octet-stream" if package.encrypted else "application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{package.file_name}"'
    response.headers["Content-Length"] = str(len(data))
    response.headers["X-Referral-SHA256"] = package.sha256
    return response


# --- forces -----------------------------------------------------------------------------------------

def _forces_page(error: str | None = None, status: int = 200):
    return render_template("console/referrals/forces.html", title="Forces", forces=services.forces(db_session()),
                           error=error), status


@bp.get("/referrals/forces")
@requires(Role.ADMIN)
def forces():
    return _forces_page()


@bp.post("/referrals/forces")
@requires(Role.ADMIN)
def register_force():
    session = db_session()
    try:
        new = parse_force_form(request.form)
        recipient = services.checked_recipient(new.recipient) if new.recipient else None
        services.register_force(session, current_user(), new.name, recipient)
    except (FormError, services.ForceRefused) as problem:
        session.rollback()
        return _forces_page(str(problem), 400)
    try:
        session.commit()
    except IntegrityError:  # another admin registered the same name at the same moment
        session.rollback()
        return _forces_page("A force of that name is registered already.", 409)
    flash("Force registered.", "ok")
    return redirect(url_for("referrals.forces"))


@bp.post("/referrals/forces/<int:force_id>/remove")
@requires(Role.ADMIN)
def remove_force(force_id: int):
    session = db_session()
    try:
        services.remove_force(session, current_user(), force_id)
    except services.ForceRefused as problem:
        session.rollback()
        return _forces_page(str(problem), 404)
    session.commit()
    flash("Force removed. Past referrals to it still name it.", "ok")
    return redirect(url_for("referrals.forces"))
