"""Twilio's webhooks. Each view checks the signature, parses the form, asks the flow, renders TwiML."""
from __future__ import annotations

import logging
import traceback

from flask import Blueprint, Response, abort, current_app, request

from ivr import prompts
from ivr.desk import SqlCallDesk
from ivr.events import MalformedRequest, parse_call_event
from ivr.flow import CallFlow, FlowOptions
from ivr.reply import Hangup, Reply, Say
from ivr.signature import twilio_signature_is_valid
from ivr.twiml import TwimlRenderer

bp = Blueprint("ivr", __name__, url_prefix="/ivr")
log = logging.getLogger("hotline.ivr")


def _hotline():
    return current_app.extensions["hotline"]


@bp.before_request
def require_twilio_signature():
    settings = _hotline().settings
    # Reading the form here is deliberate: the signature covers it, and nothing else is done first.
    if not twilio_signature_is_valid(request, settings.public_base_url, settings.twilio_auth_token):
        log.warning("rejected a webhook to %s: bad or missing signature", request.path)
        abort(403)


def _event():
    hotline = _hotline()
    try:
        return parse_call_event(
            request.form, request.args,
            api_base=hotline.settings.twilio_api_base, account_sid=hotline.settings.twilio_account_sid,
        )
    except MalformedRequest as error:
        log.warning("rejected a webhook to %s: %s", request.path, error)
        abort(400)


def _twiml(reply: Reply) -> Response:
    body = TwimlRenderer(_hotline().settings.public_base_url).render(reply)
    return Response(body, status=200, mimetype="text/xml")


def _log_failure(where: str, error: Exception) -> None:
    # Type and stack only: messages from the database layer can quote parameters.
    stack = "".join(traceback.format_tb(error.__traceback__))
    log.error("%s failed with %s\n%s", where, type(error).__name__, stack)


def _run(work):
    """Run work(desk) in one transaction; commit, then wake the workers for any new jobs."""
    hotline = _hotline()
    with hotline.db.session() as session:
        desk = SqlCallDesk(session, hotline.sealer, hotline.settings.secret_key)
        result = work(desk)
        session.commit()
    if desk.new_job_ids:
        hotline.dispatcher.notify(desk.new_job_ids)
    return result


@bp.post("/voice")
def voice():
    return _step("voice")


@bp.post("/<step>")
def step(step: str):
    if step not in CallFlow.STEPS or step == "voice":
        abort(404)
    return _step(step)


def _step(step: str) -> Response:
    event = _event()
    options = FlowOptions(max_recording_seconds=_hotline().settings.max_recording_seconds)
    try:
        reply = _run(lambda desk: CallFlow(desk, options).handle(step, event))
    except Exception as error:
        _log_failure(f"step {step}", error)
        # The caller hears an apology rather than Twilio's error message; nothing half-written was kept.
        reply = Reply.of(Say(prompts.SOMETHING_WENT_WRONG), Hangup())
    return _twiml(reply)


def _callback(name: str, work) -> Response:
    try:
        _run(work)
    except Exception as error:
        _log_failure(name, error)
        return Response(status=503)  # nothing was committed; Twilio may send it again
    return Response(status=204)


@bp.post("/recording-status")
def recording_status():
    event = _event()
    if event.recording is None:
        log.warning("rejected a recording status callback without a RecordingSid")
        abort(400)
    return _callback("recording status", lambda desk: desk.recording_status(event.call_sid, event.recording))


@bp.post("/status")
def call_status():
    event = _event()
    if event.call_status in ("queued", "ringing", "in-progress", "initiated"):
        return Response(status=204)
    return _callback("call status", lambda desk: desk.call_ended(event.call_sid, event.call_status))
