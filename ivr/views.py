"""Twilio's webhooks. Each view checks the signature, parses the form, asks the flow, renders TwiML.

Zero server errors: Twilio keeps the parameters of every webhook that failed (the caller's number
among them), so every malformed request is a 400 refused before anything is written, and the
blueprint has one error handler for everything else. No exception reaches Flask's default error
logging, which would print the exception's message and, with it, the offending value."""
from __future__ import annotations

import logging
import threading
import time
import traceback
from xml.sax.saxutils import escape as xml_escape

from flask import Blueprint, Response, abort, current_app, request
from werkzeug.exceptions import HTTPException

from ivr import limits, prompts, question_voice
from ivr.desk import SqlCallDesk
from ivr.events import MalformedRequest, parse_call_event
from ivr.flow import CallFlow, FlowOptions
from ivr.handover import CLOCK
from ivr.reply import Hangup, Reply, Say
from ivr.signature import twilio_signature_is_valid
from ivr.twiml import TwimlRenderer

bp = Blueprint("ivr", __name__, url_prefix="/ivr")
log = logging.getLogger("hotline.ivr")

# Twilio's callbacks, answered with a status code rather than TwiML.
CALLBACK_ENDPOINTS = ("ivr.recording_status", "ivr.call_status")
REJECTION_WARNING_INTERVAL = 10.0  # seconds; anyone can send unsigned requests, so they cannot flood the log
REJECTIONS = "hotline.ivr.rejections"  # the app's WarningThrottle, in app.extensions


class WarningThrottle:
    """At most one warning per interval; the next one says how many were held back in between."""

    def __init__(self, interval: float, clock=time.monotonic):
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None
        self._held_back = 0

    def warn(self, logger: logging.Logger, message: str, *args) -> None:
        with self._lock:
            now = self.clock()
            if self._last is not None and now - self._last < self.interval:
                self._held_back += 1
                return
            held_back, self._held_back, self._last = self._held_back, 0, now
        if held_back:
            logger.warning(message + " (%d more refused since the last warning)", *args, held_back)
        else:
            logger.warning(message, *args)


@bp.record_once
def _per_app_state(state) -> None:
    state.app.extensions[REJECTIONS] = WarningThrottle(REJECTION_WARNING_INTERVAL)


def _hotline():
    return current_app.extensions["hotline"]


def _escaped(text: str) -> str:
    """One printable ASCII line, whatever text holds."""
    return text.encode("unicode_escape").decode("ascii")[:80]


def _endpoint() -> str:
    """Which webhook this is, for the log: the endpoint's name (and, for a menu step, the step when it
    is one of ours). Never the request's path or query, which anyone can fill with a forged log line."""
    endpoint = request.endpoint or "unrouted"
    if endpoint == "ivr.step":
        step = (request.view_args or {}).get("step")
        endpoint += f":{step}" if step in CallFlow.STEPS else ":(unknown step)"
    return _escaped(endpoint)


@bp.before_request
def require_twilio_signature():
    if request.endpoint == "ivr.question_audio":
        return None  # Twilio fetches <Play> audio unsigned: that URL's call-bound token is checked instead
    settings = _hotline().settings
    # Reading the form here is deliberate: the signature covers it, and nothing else is done first.
    if not twilio_signature_is_valid(request, settings.public_base_url, settings.twilio_auth_token):
        current_app.extensions[REJECTIONS].warn(log, "rejected a webhook to %s: bad or missing signature", _endpoint())
        abort(403)


def _refuse(reason: str):
    log.warning("rejected a webhook to %s: %s", _endpoint(), reason)  # reasons name fields, never values
    abort(400)


def _event():
    hotline = _hotline()
    try:
        return parse_call_event(
            request.form, request.args,
            api_base=hotline.settings.twilio_api_base, account_sid=hotline.settings.twilio_account_sid,
        )
    except MalformedRequest as error:
        _refuse(str(error))


def _twiml(reply: Reply) -> Response:
    body = TwimlRenderer(_hotline().settings.public_base_url).render(reply)
    return Response(body, status=200, mimetype="text/xml")


def _log_failure(where: str, error: BaseException) -> None:
    # Type and stack only: messages from the database layer can quote parameters.
    stack = "".join(traceback.format_tb(error.__traceback__))
    log.error("%s failed with %s\n%s", where, type(error).__name__, stack)


def _run(work):
    """Run work(desk) in one transaction; commit, then wake the workers for any new jobs. An exception
    before the commit rolls everything back: nothing half-written is kept."""
    hotline = _hotline()
    with hotline.db.session() as session:
        desk = SqlCallDesk(session, hotline.sealer, hotline.settings.pin_key)
        result = work(desk)
        session.commit()
    if desk.new_job_ids:
        try:
            hotline.dispatcher.notify(desk.new_job_ids)
        except Exception as error:  # the job rows are the truth; a worker's poll or sweep finds them
            log.warning("could not wake the workers (%s); the new jobs wait in the database", type(error).__name__)
    return result


_APOLOGY_FALLBACK = (
    '<?xml version="1.0" encoding="UTF-8"?><Response>'
    f'<Say language="{prompts.LANGUAGE}" voice="{prompts.VOICE}">{xml_escape(prompts.SOMETHING_WENT_WRONG)}</Say>'
    "<Hangup /></Response>"
)


def _apology() -> Response:
    try:
        return _twiml(Reply.of(Say(prompts.SOMETHING_WENT_WRONG), Hangup()))
    except Exception as error:
        _log_failure("rendering the apology", error)
        return Response(_APOLOGY_FALLBACK, status=200, mimetype="text/xml")


@bp.errorhandler(Exception)
def _on_error(error: Exception):
    """The blueprint's one error handler. HTTP errors (400, 403, 404, 413 ...) are answers already.
    Anything else is a failure of ours: logged as type and stack only; the caller hears an apology
    rather than Twilio's error message; a callback is told to try again (nothing was committed)."""
    if isinstance(error, HTTPException):
        return error
    try:
        _log_failure(_endpoint(), error)
    except Exception:
        log.error("a webhook failed with %s", type(error).__name__)
    if request.endpoint in CALLBACK_ENDPOINTS:
        return Response(status=503)
    return _apology()


@bp.post("/voice")
def voice():
    # The per-caller limit first: a call over it hears why and is hung up, and nothing is written.
    refused = limits.refusal(current_app, _event())
    return _twiml(refused) if refused is not None else _step("voice")


@bp.post("/<step>")
def step(step: str):
    if step not in CallFlow.STEPS or step == "voice":
        abort(404)
    return _step(step)


def _step(step: str) -> Response:
    event = _event()
    # The clock decides the handover's opening hours; tests put theirs in app.extensions[CLOCK].
    options = FlowOptions.from_settings(_hotline().settings, current_app.extensions.get(CLOCK))
    reply = _run(lambda desk: CallFlow(desk, options).handle(step, event))
    return _twiml(reply)


@bp.post("/recording-status")
def recording_status():
    event = _event()
    if event.recording is None:
        _refuse("a recording status callback without a RecordingSid")
    _run(lambda desk: desk.recording_status(event.call_sid, event.recording))
    return Response(status=204)


@bp.post("/status")
def call_status():
    event = _event()
    if event.call_status is None:
        _refuse("a call status callback without a CallStatus")
    if not event.call_status.is_final:
        return Response(status=204)
    _run(lambda desk: desk.call_ended(event.call_sid, event.call_status))
    return Response(status=204)


# --- a handler's question in the offline voice (ivr/question_voice.py) ---------------------------------

@bp.get("/question-audio/<int:call_id>/<int:question_id>/<int:expires>/<mac>")
def question_audio(call_id: int, question_id: int, expires: int, mac: str):
    """The question the call is putting, spoken by espeak-ng: only with a fresh token for this call and
    question, only while the call that unlocked the case lasts. Anything else is a plain 404."""
    pin_key = _hotline().settings.pin_key
    if not question_voice.token_is_valid(pin_key, call_id, question_id, expires, mac):
        abort(404)
    text = _run(lambda desk: desk.question_text_for_audio(call_id, question_id))
    if text is None:
        abort(404)
    try:
        audio = question_voice.synthesise(text)
    except question_voice.SynthesisFailed as error:
        log.error("could not speak a question with the offline voice (%s)", error)
        abort(503)
    return Response(audio, mimetype="audio/wav", headers={"Cache-Control": "no-store"})
