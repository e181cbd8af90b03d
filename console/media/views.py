"""Decrypted audio (with HTTP Range), the transcript and its corrections, peaks and history: from memory only.

Every route is for signed-in handlers and up (the default policy). Each opens sealed items with the
handler's own session key (current_opener), and every response carries the app's `no-store`. JSON
routes answer bad input with a JSON message and a 4xx, never a 500.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, render_template, request, session as browser_session, url_for

from console import db_session
from console.access import current_opener, current_user
from console.audit.services import record
from console.media import services
from console.settings import ConsoleSettings
from console.transcripts import (
    CorrectionRefused,
    StaleVersion,
    VersionInfo,
    correct,
    history as transcript_history,
    open_version,
    versions,
)
from storage.cases import take_owner
from storage.crypto import SealError
from storage.models import AuditAction, Recording
from transcription.audio import AudioError

bp = Blueprint("media", __name__, url_prefix="/media")
log = logging.getLogger("hotline.console.media")


@bp.errorhandler(SealError)
def _did_not_open(error: SealError):
    # Damaged, or not this take's: its seal names another owner, blob or case (a swap in the database).
    log.warning("%s: a sealed item did not open (%s)", request.endpoint, error)
    return _json_error(422, "This take's recording or transcript did not open: it is damaged, or not this "
                            "take's. Nothing was shown. Tell an admin.")


def _settings() -> ConsoleSettings:
    return current_app.config["CONSOLE_SETTINGS"]


def _json_error(status: int, message: str, **extra: Any) -> tuple[Response, int]:
    return jsonify({"error": message, **extra}), status


def _not_found_json() -> tuple[Response, int]:
    return _json_error(404, "There is no such take, or the caller discarded it.")


def _audit_once(what: str, action: AuditAction, recording: Recording) -> None:
    if services.first_look(browser_session, what, recording.id, time.time()):
        record(db_session(), action, actor=current_user(), case_reference=recording.case.reference,
               detail={"take": recording.id})


# --- audio ------------------------------------------------------------------------------------------

@bp.get("/takes/<int:recording_id>/audio")
def audio(recording_id: int):
    session = db_session()
    recording = services.audible_take(session, recording_id)
    if recording is None or recording.audio_item is None:
        return Response("No audio for this take.", 404, mimetype="text/plain")
    try:
        body = services.playable_audio(current_opener().open(session, recording.audio_item, take_owner(recording.id)))
    except AudioError:
        return Response("This take's audio cannot be decoded.", 422, mimetype="text/plain")
    wanted = services.parse_range(request.headers.get("Range"), len(body))
    if wanted.kind is services.RangeKind.UNSATISFIABLE:
        response = Response(b"", 416, mimetype="audio/wav")
        response.headers["Content-Range"] = f"bytes */{len(body)}"
        response.headers["Accept-Ranges"] = "bytes"
        return response
    # The entry records that this browser was sent the decrypted audio (the metadata fetch already is);
    # a play of several Range requests, and replays soon after, leave one entry.
    _audit_once("audio", AuditAction.AUDIO_PLAYED, recording)
    session.commit()
    if wanted.kind is services.RangeKind.PARTIAL:
        response = Response(body[wanted.start:wanted.end + 1], 206, mimetype="audio/wav")
        response.headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{len(body)}"
    else:
        response = Response(body, 200, mimetype="audio/wav")
    response.headers["Accept-Ranges"] = "bytes"
    response.headers["Content-Length"] = str(response.content_length)
    return response


@bp.get("/takes/<int:recording_id>/peaks")
def peaks(recording_id: int):
    session = db_session()
    recording = services.audible_take(session, recording_id)
    if recording is None or recording.audio_item is None:
        return _not_found_json()
    buckets = request.args.get("buckets", str(services.DEFAULT_BUCKETS))
    if not buckets.isdigit() or not 1 <= int(buckets) <= services.MAX_BUCKETS:
        return _json_error(400, f"buckets must be a whole number from 1 to {services.MAX_BUCKETS}.")
    try:
        result = services.peaks(current_opener().open(session, recording.audio_item, take_owner(recording.id)), int(buckets))
    except AudioError:
        return _json_error(422, "This take's audio cannot be decoded.")
    return jsonify(result.as_json(recording.id))


# --- the transcript ---------------------------------------------------------------------------------

def _version_document(recording: Recording, known: list[VersionInfo], number: int | None) -> dict[str, Any]:
    """The JSON for one version (the newest when number is None); KeyError if there is no such version."""
    shown = known[-1] if known and number is None else next((info for info in known if info.number == number), None)
    if number is not None and shown is None:
        raise KeyError(number)
    transcript = open_version(db_session(), current_opener(), shown) if shown is not None else None
    return services.transcript_json(recording, known, shown, transcript, _settings().low_confidence)


@bp.get("/takes/<int:recording_id>/transcript")
def transcript(recording_id: int):
    session = db_session()
    recording = services.audible_take(session, recording_id)
    if recording is None:
        return _not_found_json()
    asked = request.args.get("version")
    if asked is not None and not (asked.isdigit() and len(asked) < 10):
        return _json_error(400, "version must be a version number, e.g. ?version=2.")
    known = versions(session, recording)
    try:
        document = _version_document(recording, known, int(asked) if asked is not None else None)
    except KeyError:
        return _json_error(404, f"This take has no transcript version {asked}.")
    if document.get("version") is not None:
        _audit_once("transcript", AuditAction.TRANSCRIPT_VIEWED, recording)
        session.commit()
    return jsonify(document)


@dataclass(frozen=True)
class CorrectionForm:
    base_version: int
    start: int
    end: int
    text: str

    @classmethod
    def parse(cls, body: Any) -> "CorrectionForm":
        """Raises CorrectionRefused with a message for anything but {base_version, start, end, text}."""
        if not isinstance(body, dict):
            raise CorrectionRefused("Send the correction as a JSON object: {base_version, start, end, text}.")
        numbers = {}
        for name in ("base_version", "start", "end"):
            value = body.get(name)
            # bool is an int in Python; true is not a word index.
            if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value > 10**9:
                raise CorrectionRefused(f"{name} must be a whole number of 0 or more.")
            numbers[name] = value
        text = body.get("text")
        if not isinstance(text, str):
            raise CorrectionRefused("text must be the corrected words, as a string.")
        if numbers["end"] < numbers["start"]:
            raise CorrectionRefused("end must not come before start.")
        return cls(numbers["base_version"], numbers["start"], numbers["end"], text)


@bp.post("/takes/<int:recording_id>/corrections", endpoint="correct")  # the service is `correct`
def correct_transcript(recording_id: int):
    session = db_session()
    recording = services.audible_take(session, recording_id)
    if recording is None:
        return _not_found_json()
    try:
        form = CorrectionForm.parse(request.get_json(silent=True))
        number = correct(session, current_opener(), current_app.extensions["console"].sealer, current_user(),
                         recording, form.base_version, form.start, form.end, form.text)
    except CorrectionRefused as refused:
        session.rollback()
        return _json_error(400, str(refused))
    except StaleVersion as stale:
        session.rollback()
        return _json_error(409, f"Someone else corrected this transcript first (it is now version {stale.newest}). "
                                "Reload it and make your correction again.", newest_version=stale.newest)
    session.commit()
    document = _version_document(recording, versions(session, recording), number)
    return jsonify(document)



# --- history ----------------------------------------------------------------------------------------

def _case_page_url(reference: str) -> str | None:
    # The case page is owner B's; until it exists the history page still works, without the link.
    if "cases.case_page" not in current_app.view_functions:
        return None
    return url_for("cases.case_page", reference=reference)


@bp.get("/takes/<int:recording_id>/history")
def history(recording_id: int):
    session = db_session()
    recording = services.audible_take(session, recording_id)
    if recording is None:
        return render_template("console/error.html", title="Not found",
                               message="There is no such take, or the caller discarded it."), 404
    columns = transcript_history(session, current_opener(), recording)
    if columns:
        _audit_once("transcript", AuditAction.TRANSCRIPT_VIEWED, recording)
        session.commit()
    kept = [take.id for take in recording.case.recordings if take.decision == "keep"]
    return render_template(
        "console/media/history.html", recording=recording, columns=columns,
        take_number=kept.index(recording.id) + 1, case_url=_case_page_url(recording.case.reference),
        state=services.transcript_state(recording, bool(columns)),
    )
