"""A simulated phone call: Twilio's half of a conversation with the app.

    sim = CallSimulator(FlaskClientTransport(app.test_client()), public_base_url=..., account_sid=...,
                        auth_token=..., fake_twilio=fake)
    call = sim.dial(from_="+447700900123")   # POST /ivr/voice, runs until the hotline waits
    assert call.hears("immediate danger")
    call.presses("1")
    call.says(wav_bytes, then="#")
    call.hangs_up()

The call follows the app's TwiML the way Twilio does: verbs run in order; <Gather> and <Record>
wait for the caller; an unanswered <Gather> falls through to the next verb; an empty recording does
not request the <Record> action; <Redirect> fetches new TwiML; <Hangup> or the end of the document
ends the call, after which the number's status callback is sent. <Dial> rings a number (its record
kept on FakeTwilio, From being the callerId, or the caller's own number when there is none, as on
Twilio) and waits for the test to say what the far end did: ``dial_answered()``, ``dial_busy()``,
``dial_unanswered()``, ``dial_failed()``. Every request is signed for the
public URL. Time is simulated (no sleeping): ``call.clock`` advances with what is said and done.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urljoin

from . import webhooks as kinds
from .audio import encoded_duration, tone_wav, trim_silence, truncate, wav_info
from .errors import AppResponseError, SimulatorError, TwimlError
from .params import CallIdentity
from .sids import new_sid
from .signing import SIGNATURE_HEADER, signed_headers
from .transport import FlaskClientTransport, Transport, TransportError, TransportResponse
from .twiml import Document, Verb, parse_twiml
from .webhooks import Exchange, Webhook

DEFAULT_CALLER = "+447700900123"  # Ofcom's range for drama: never a real line
DEFAULT_HOTLINE_NUMBER = "+441632960000"
TWIML_CONTENT_TYPES = ("text/xml", "application/xml", "text/html")
APPLICATION_ERROR = "We are sorry, an application error has occurred. Goodbye."
RECORD_FINISH_KEYS = "1234567890*#"  # <Record finishOnKey> default
END_WITH_SILENCE = "silence"  # says(..., then="silence"): the recording ends on its silence timeout
CALLBACK_MODES = ("auto", "manual")
WORDS_PER_SECOND = 2.5


class RecordingOutcome:
    """What a <Record> produced, as Twilio reported it to the app."""

    def __init__(self, sid: str, url: str, status: str, duration: int, digits: str | None, wav: bytes | None):
        self.sid, self.url, self.status, self.duration, self.digits, self.wav = sid, url, status, duration, digits, wav

    def __repr__(self) -> str:
        return f"RecordingOutcome({self.sid}, {self.status}, {self.duration} s, digits={self.digits!r})"


class DialedCall:
    """One <Dial>: the child call Twilio placed, and how it went."""

    def __init__(self, sid: str, number: str, caller_id: str | None, shown_as: str, timeout: int):
        self.sid, self.number, self.caller_id, self.shown_as, self.timeout = sid, number, caller_id, shown_as, timeout
        self.status: str | None = None  # DialCallStatus once it ended
        self.duration = 0

    def __repr__(self) -> str:
        return f"DialedCall({self.number}, shown as {self.shown_as}, {self.status or 'ringing'})"


class SimulatedCall:
    def __init__(
        self,
        transport: Transport,
        *,
        public_base_url: str,
        account_sid: str,
        auth_token: str,
        fake_twilio=None,
        from_: str = DEFAULT_CALLER,
        to: str = DEFAULT_HOTLINE_NUMBER,
        voice_path: str = "/ivr/voice",
        voice_method: str = "POST",
        status_callback_path: str | None = "/ivr/status",
        caller_name: str | None = None,
        forwarded_from: str | None = None,
        application_sid: str | None = None,
        extra_params: dict[str, str] | None = None,
        strict: bool = True,
        recording_callback_first: bool = False,
        callbacks: str = "auto",
        echo: Callable[[str], None] | None = None,
        max_fetches_without_input: int = 20,
    ):
        if callbacks not in CALLBACK_MODES:
            raise ValueError(f"callbacks must be one of {CALLBACK_MODES}")
        self.transport = transport
        self.public_base_url = public_base_url.rstrip("/")
        self.auth_token = auth_token
        self.fake_twilio = fake_twilio
        self.voice_url = self._absolute(voice_path)
        self.voice_method = voice_method.upper()
        self.status_callback_url = self._absolute(status_callback_path) if status_callback_path else None
        self.identity = CallIdentity(account_sid, new_sid("CA"), from_, to, caller_name, forwarded_from, application_sid, dict(extra_params or {}))
        self.strict = strict
        self.recording_callback_first = recording_callback_first
        self.callbacks = callbacks
        self.echo = echo
        self.max_fetches_without_input = max_fetches_without_input

        self.heard: list[str] = []  # every <Say>, in order
        self.played: list[str] = []  # every <Play> URL (or "digits:...")
        self.transcript: list[str] = []  # the whole conversation, one line per event
        self.exchanges: list[Exchange] = []  # every request sent to the app
        self.documents: list[Document] = []  # every TwiML document received
        self.recordings: list[RecordingOutcome] = []
        self.dials: list[DialedCall] = []  # every <Dial>, in order
        self.pending: list[Webhook] = []  # async callbacks held back (callbacks="manual")
        self.clock = 0.0
        self.started_at = datetime.now(timezone.utc).replace(microsecond=0)
        self.is_over = False
        self.ended_by: str | None = None  # "caller", "hotline" or "error"
        self._call_status = "ringing"
        self._queue: list[Verb] = []
        self._doc_url = self.voice_url
        self._waiting: Verb | None = None
        self._recording: tuple[str, datetime] | None = None
        self._mark = 0
        self._fetches_since_input = 0
        self._dialled = False

    def __repr__(self) -> str:
        state = f"over (ended by {self.ended_by})" if self.is_over else f"waiting for {self.waiting_for}"
        return f"<SimulatedCall {self.call_sid} {state}; heard since last action: {self.heard_since_last_action!r}>"

    # ---------------------------------------------------------------- properties

    @property
    def call_sid(self) -> str:
        return self.identity.call_sid

    @property
    def account_sid(self) -> str:
        return self.identity.account_sid

    @property
    def last_document(self) -> Document | None:
        return self.documents[-1] if self.documents else None

    @property
    def last_twiml(self) -> str | None:
        return self.documents[-1].raw if self.documents else None

    @property
    def heard_since_last_action(self) -> list[str]:
        return self.heard[self._mark:]

    @property
    def waiting_for(self) -> str | None:
        """"keys" while a <Gather> waits, "recording" while a <Record> runs, "dial" while a <Dial>
        rings or is connected, else None."""
        if self._waiting is None:
            return None
        return {"Gather": "keys", "Record": "recording", "Dial": "dial"}[self._waiting.name]

    @property
    def waiting_verb(self) -> Verb | None:
        return self._waiting

    @property
    def duration(self) -> int:
        """CallDuration as Twilio reports it: whole seconds, rounded up."""
        return max(1, math.ceil(self.clock)) if self._dialled else 0

    @property
    def recording_sids(self) -> list[str]:
        """SIDs of the completed recordings (those stored on FakeTwilio)."""
        return [r.sid for r in self.recordings if r.status == "completed"]

    def used_verbs(self) -> dict[str, set[str]]:
        """Every verb path the app used in this call (e.g. "Response/Gather/Say") with the attribute
        names it set, across all documents: for tests that hold the app to an allow-list."""
        used: dict[str, set[str]] = {}
        for document in self.documents:
            for path, verb in document.walk():
                used.setdefault(path, set()).update(verb.attributes)
        return used

    def requests(self, kind: str | None = None) -> list[Exchange]:
        return [e for e in self.exchanges if kind is None or e.kind == kind]

    @property
    def transcript_text(self) -> str:
        return "\n".join(self.transcript)

    def hears(self, text: str) -> bool:
        """Whether ``text`` (case-insensitive) was said since the caller last did something."""
        said = " ".join(self.heard_since_last_action).lower()
        return " ".join(text.lower().split()) in " ".join(said.split())

    # ---------------------------------------------------------------- the caller

    def dial(self) -> "SimulatedCall":
        """The call arrives: Twilio requests the number's voice URL, then plays what it gets."""
        if self._dialled:
            raise SimulatorError("this call has already been dialled")
        self._dialled = True
        if self.fake_twilio is not None:  # Twilio keeps a record of every call, the caller's number in it
            self.fake_twilio.add_call(self.call_sid, from_=self.identity.from_, to=self.identity.to)
        self._line(f"CALLER {self.identity.from_} dials {self.identity.to}")
        self._fetch_twiml(kinds.VOICE, self.voice_url, self.voice_method)
        if not self.is_over:
            self._call_status = "in-progress"
            self._run()
        return self

    def presses(self, keys: str) -> "SimulatedCall":
        """The caller presses ``keys`` (digits, * and #) while a <Gather> waits.

        The <Gather> ends on its finishOnKey (not submitted) or when numDigits are in; otherwise on
        its timeout after the last key. Only finishOnKey with no digits falls through like no input.
        Pressing a finishOnKey while a <Record> runs ends an empty recording.
        """
        keys = str(keys)
        verb = self._require_waiting(f"press {keys!r}")
        if verb.name == "Dial":
            raise SimulatorError("a <Dial> is ringing or connected: keys go to the other phone, not to the app")
        if not keys or any(key not in "0123456789*#" for key in keys):
            raise SimulatorError(f"a phone keypad has 0-9, * and #; cannot press {keys!r}")
        if verb.name == "Record":
            finish = verb.get("finishOnKey", RECORD_FINISH_KEYS)
            if len(keys) != 1 or keys not in finish:
                raise SimulatorError(f"<Record finishOnKey={finish!r}> is running; pressing {keys!r} would not end it")
            return self._end_recording(None, 0.0, keys)
        if "dtmf" not in verb.get("input", "dtmf").split():
            raise SimulatorError(f"<Gather input={verb.get('input')!r}> does not listen for keys")

        finish = verb.get("finishOnKey", "#")
        wanted = verb.number("numDigits")
        digits, finished_on, used = "", "", 0
        for used, key in enumerate(keys, start=1):
            if finish and key == finish:
                finished_on = key
                break
            digits += key
            if wanted and len(digits) >= wanted:
                break
        if keys[used:]:
            raise SimulatorError(
                f"the <Gather numDigits={wanted} finishOnKey={finish!r}> ends after {keys[:used]!r}; "
                f"{keys[used:]!r} would be pressed after it: use a separate presses() call"
            )
        self._caller_acts(f"CALLER presses {keys}")
        self.clock += 0.5 * len(keys)
        if not finished_on and not (wanted and len(digits) >= wanted):
            self.clock += verb.number("timeout", 5)  # Twilio waits for another key until the timeout
        self._waiting = None
        if digits or verb.flag("actionOnEmptyResult"):
            self._gather_action(verb, digits, finished_on)
        self._run()
        return self

    def waits(self) -> "SimulatedCall":
        """The caller does nothing: the <Gather> times out, or the <Record> hears only silence."""
        verb = self._require_waiting("wait")
        if verb.name == "Dial":
            raise SimulatorError("a <Dial> is ringing: say what the far end did (dial_unanswered(), dial_busy(), ...)")
        if verb.name == "Record":
            return self._end_recording(None, 0.0, END_WITH_SILENCE)
        self._caller_acts("CALLER waits (no input)")
        self.clock += verb.number("timeout", 5)
        self._waiting = None
        if verb.flag("actionOnEmptyResult"):
            self._gather_action(verb, "", "")
        self._run()
        return self

    def says(self, audio: bytes | str | Path | None = None, then: str = "#") -> "SimulatedCall":
        """The caller speaks ``audio`` (WAV bytes or a path; a 3 s tone if None) into a running <Record>,
        then ends it with ``then``: a finishOnKey key, "hangup", or "silence" (the silence timeout)."""
        verb = self._require_waiting("speak")
        if verb.name != "Record":
            raise SimulatorError("the caller spoke, but no <Record> is running (a <Gather> is waiting for keys)")
        wav = tone_wav(3.0) if audio is None else Path(audio).read_bytes() if isinstance(audio, (str, Path)) else bytes(audio)
        self._check_ending(verb, then)
        try:
            duration, editable = wav_info(wav).duration, True
        except SimulatorError:  # mu-law and the like: served as given, not trimmed or cut
            duration, editable = encoded_duration(wav), False
        heard_for = duration
        max_length = verb.number("maxLength", 3600)
        if duration > max_length and editable:
            wav, duration = truncate(wav, max_length)
            heard_for, then = duration, "max-length"
        if verb.get("trim", "trim-silence") == "trim-silence" and editable:
            wav, duration = trim_silence(wav)
        self.clock += heard_for
        return self._end_recording(wav if duration > 0 else None, duration, then)

    def says_nothing(self, then: str = "#") -> "SimulatedCall":
        """The caller records nothing (an empty recording), ending with a key, "hangup" or "silence"."""
        verb = self._require_waiting("record nothing")
        if verb.name != "Record":
            raise SimulatorError("no <Record> is running")
        self._check_ending(verb, then)
        return self._end_recording(None, 0.0, then)

    def hangs_up(self) -> "SimulatedCall":
        """The caller hangs up. During a <Record> this ends the (empty) recording with Digits=hangup;
        use ``says(audio, then="hangup")`` to hang up after speaking."""
        verb = self._require_waiting("hang up")
        if verb.name == "Record":
            return self._end_recording(None, 0.0, "hangup")
        if verb.name == "Dial":
            return self._end_dial(verb, self.dials[-1].status or "no-answer", caller_hung_up=True)
        self._caller_acts("CALLER hangs up")
        self._waiting = None
        self._end("caller")
        return self

    # ---------------------------------------------------------------- the far end of a <Dial>

    def dial_answered(self, talk_seconds: float = 60, ended_by: str = "callee") -> "SimulatedCall":
        """The dialled phone answers; they talk, then the callee hangs up (the caller hears what the
        <Dial> action returns) or the caller does (ended_by="caller": the call is over)."""
        if ended_by not in ("callee", "caller"):
            raise ValueError('ended_by must be "callee" or "caller"')
        verb = self._require_dial("answer")
        dialed = self.dials[-1]
        self._caller_acts(f"DIALLED {dialed.number} answers; they talk for {talk_seconds:g} s; the {ended_by} hangs up")
        self.clock += 3 + talk_seconds
        dialed.duration = max(1, math.ceil(talk_seconds))
        return self._end_dial(verb, "completed", caller_hung_up=ended_by == "caller")

    def dial_unanswered(self) -> "SimulatedCall":
        """Nobody picks up before the <Dial timeout>."""
        verb = self._require_dial("ring out")
        self._caller_acts(f"DIALLED {self.dials[-1].number} does not answer")
        self.clock += self.dials[-1].timeout
        return self._end_dial(verb, "no-answer")

    def dial_busy(self) -> "SimulatedCall":
        verb = self._require_dial("be busy")
        self._caller_acts(f"DIALLED {self.dials[-1].number} is busy")
        self.clock += 2
        return self._end_dial(verb, "busy")

    def dial_failed(self) -> "SimulatedCall":
        """The number cannot be reached (it does not exist, or the carrier refused the call)."""
        verb = self._require_dial("fail")
        self._caller_acts(f"DIALLED {self.dials[-1].number} cannot be reached")
        self.clock += 1
        return self._end_dial(verb, "failed")

    # ---------------------------------------------------------------- callbacks for tests

    def deliver(self, webhook: Webhook) -> Exchange:
        """Send one held-back callback now (callbacks="manual")."""
        if webhook in self.pending:
            self.pending.remove(webhook)
        return self._deliver(webhook)

    def deliver_pending(self, kinds_: Iterable[str] | None = None, *, reverse: bool = False) -> list[Exchange]:
        """Send held-back callbacks (optionally only some kinds), oldest first or ``reverse``d."""
        chosen = [w for w in self.pending if kinds_ is None or w.kind in set(kinds_)]
        return [self.deliver(w) for w in (reversed(chosen) if reverse else chosen)]

    def deliver_callbacks_in_order(self, *order: str) -> list[Exchange]:
        """Send held-back callbacks kind by kind in the given order, e.g.
        ``deliver_callbacks_in_order("call-status", "recording-status", "record-action")``."""
        exchanges = []
        for kind in order:
            exchanges += self.deliver_pending([kind])
        return exchanges

    def resend(self, item: Webhook | Exchange) -> Exchange:
        """Send a webhook again, as Twilio does on retry: same parameters, same idempotency token."""
        webhook = item.webhook if isinstance(item, Exchange) else item
        attempts = sum(1 for e in self.exchanges if e.webhook is webhook)
        return self._deliver(webhook, attempt=attempts + 1)

    def resend_last_recording_callback(self) -> Exchange:
        sent = [e for e in self.exchanges if e.kind == kinds.RECORDING_STATUS and e.params["RecordingStatus"] != "in-progress"]
        if not sent:
            raise SimulatorError("no recording status callback has been sent in this call")
        return self.resend(sent[-1])

    def resend_status_callback(self) -> Exchange:
        sent = self.requests(kinds.CALL_STATUS)
        if not sent:
            raise SimulatorError("the call status callback has not been sent")
        return self.resend(sent[-1])

    def post(
        self,
        path: str,
        params: dict[str, str] | None = None,
        *,
        method: str = "POST",
        call_params: bool = True,
        signed: bool = True,
        signature: str | None = None,
        auth_token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> TransportResponse:
        """Send an arbitrary request as Twilio would (signed for the public URL), for low-level tests.

        ``call_params`` adds this call's standard parameters; ``signed=False`` drops the signature;
        ``signature`` or ``auth_token`` forge it.
        """
        merged = self.identity.voice_params(self._call_status) if call_params else {}
        merged.update(params or {})
        webhook = Webhook(kinds.MANUAL, method.upper(), self._absolute(path), merged)
        exchange = self._send(webhook, signature=signature, signed=signed, auth_token=auth_token, headers=headers)
        if exchange.response is None:
            raise SimulatorError(f"could not reach the app: {exchange.error}")
        return exchange.response

    # ---------------------------------------------------------------- running TwiML

    def _run(self) -> None:
        while not self.is_over and self._waiting is None:
            if not self._queue:
                self._line("HOTLINE hangs up (end of TwiML)")
                self._end("hotline")
                return
            verb = self._queue.pop(0)
            getattr(self, f"_do_{verb.name.lower()}")(verb)

    def _do_say(self, verb: Verb) -> None:
        loop = verb.number("loop", 1)
        for _ in range(loop or 1):
            self.heard.append(verb.text)
            self._line(f"HOTLINE: {verb.text}" + (" (repeats until the caller acts)" if loop == 0 else ""))
            self.clock += max(1.0, len(verb.text.split()) / WORDS_PER_SECOND)

    def _do_play(self, verb: Verb) -> None:
        what = verb.text or f"digits:{verb.get('digits')}"
        for _ in range(verb.number("loop", 1) or 1):
            self.played.append(what)
            self._line(f"HOTLINE [plays {what}]")
            self.clock += 1.0

    def _do_pause(self, verb: Verb) -> None:
        length = verb.number("length", 1)
        self._line(f"HOTLINE [pause {length} s]")
        self.clock += length

    def _do_gather(self, verb: Verb) -> None:
        for child in verb.children:
            getattr(self, f"_do_{child.name.lower()}")(child)
        self._waiting = verb

    def _do_record(self, verb: Verb) -> None:
        sid = new_sid("RE")
        self._recording = (sid, self._now())
        if verb.flag("playBeep", True):
            self._line("HOTLINE [beep]")
        self._waiting = verb
        if "in-progress" in self._recording_events(verb):
            self._dispatch_async(self._recording_callback(verb, sid, "in-progress", None))

    def _do_dial(self, verb: Verb) -> None:
        number = (verb.text or verb.children[0].text).strip()
        caller_id = verb.get("callerId")
        # Without a callerId Twilio shows the caller's own number to the dialled phone.
        shown_as = caller_id or self.identity.from_
        sid = new_sid("CA")
        self.dials.append(DialedCall(sid, number, caller_id, shown_as, verb.number("timeout", 30)))
        if self.fake_twilio is not None:  # the child call has a record of its own at Twilio
            self.fake_twilio.add_call(sid, from_=shown_as, to=number)
        self._line(f"HOTLINE dials {number} (shown to them as {shown_as})")
        self._waiting = verb

    def _require_dial(self, action: str) -> Verb:
        verb = self._require_waiting(f"have the dialled phone {action}")
        if verb.name != "Dial":
            raise SimulatorError(f"no <Dial> is ringing (waiting for {self.waiting_for})")
        return verb

    def _end_dial(self, verb: Verb, status: str, caller_hung_up: bool = False) -> "SimulatedCall":
        dialed = self.dials[-1]
        dialed.status = status
        self._waiting = None
        if self.fake_twilio is not None:
            self.fake_twilio.end_call(dialed.sid, status)
        extra = {"DialCallStatus": status, "DialCallSid": dialed.sid, "DialBridged": str(status == "completed").lower()}
        if status == "completed":
            extra["DialCallDuration"] = str(dialed.duration)
        action = verb.get("action")
        if caller_hung_up:
            self._caller_acts("CALLER hangs up")
            self._mark_over("caller")
            if action:  # requested all the same; its TwiML is checked, not played
                params = {**self.identity.voice_params("completed"), **extra}
                self._dispatch_async(Webhook(kinds.DIAL_ACTION, verb.method(), self._resolve(action), params))
            self._send_status_callback()
            return self
        if action:
            self._fetch_twiml(kinds.DIAL_ACTION, self._resolve(action), verb.method(), extra)
        self._run()  # without an action: the verb after <Dial>
        return self

    def _do_redirect(self, verb: Verb) -> None:
        self._fetch_twiml(kinds.REDIRECT, self._resolve(verb.text), verb.method())

    def _do_hangup(self, verb: Verb) -> None:
        self._line("HOTLINE hangs up")
        self._end("hotline")

    def _gather_action(self, verb: Verb, digits: str, finished_on: str) -> None:
        url = self._resolve(verb.get("action") or self._doc_url)
        self._fetch_twiml(kinds.GATHER_ACTION, url, verb.method(), {"Digits": digits, "FinishedOnKey": finished_on, "msg": "Gather End"})

    # ---------------------------------------------------------------- recording

    def _check_ending(self, verb: Verb, then: str) -> None:
        if then == "hangup":
            return
        if then == END_WITH_SILENCE:
            if verb.number("timeout", 5) == 0:
                raise SimulatorError('<Record timeout="0"> has no silence timeout: end with a key or "hangup"')
            return
        finish = verb.get("finishOnKey", RECORD_FINISH_KEYS)
        if len(then) != 1 or then not in finish:
            raise SimulatorError(f'then={then!r} cannot end <Record finishOnKey={finish!r}>; use one of its keys, "hangup" or "silence"')

    def _end_recording(self, wav: bytes | None, duration: float, ended_with: str) -> "SimulatedCall":
        verb, (sid, _) = self._waiting, self._recording
        self._waiting = None
        digits = ended_with if ended_with not in (END_WITH_SILENCE, "max-length") else None
        how = {"hangup": "hangs up", END_WITH_SILENCE: "then silence", "max-length": "stopped at maxLength"}.get(ended_with, f"presses {ended_with}")
        if ended_with == END_WITH_SILENCE:
            self.clock += verb.number("timeout", 5)

        if wav is None:
            url = self.fake_twilio.recording_url(sid) if self.fake_twilio else ""
            outcome = RecordingOutcome(sid, url, "absent", 0, digits, None)
            self._caller_acts(f"CALLER records nothing ({how})")
        else:
            if self.fake_twilio is None:
                raise SimulatorError("a <Record> needs a FakeTwilio to keep the recording (pass fake_twilio=...)")
            seconds = max(1, round(duration))
            _, url = self.fake_twilio.add_recording(wav, call_sid=self.call_sid, sid=sid, duration=seconds)
            outcome = RecordingOutcome(sid, url, "completed", seconds, digits, wav)
            self._caller_acts(f"CALLER records {duration:.1f} s ({how})")
        self.recordings.append(outcome)

        callback = None
        if outcome.status in self._recording_events(verb) and verb.get("recordingStatusCallback"):
            error = "0" if outcome.status == "completed" else "16102"  # 16102: the recording was silent
            callback = self._recording_callback(verb, sid, outcome.status, outcome.duration, error)
        self._recording = None
        action = None
        if outcome.status == "completed":  # Twilio skips the action for an empty recording
            extra = {"RecordingUrl": outcome.url, "RecordingSid": sid, "RecordingDuration": str(outcome.duration)}
            if digits is not None:
                extra["Digits"] = digits
            action = (self._resolve(verb.get("action") or self._doc_url), verb.method(), extra)

        if ended_with == "hangup":
            # The action and the call's status callback go out at once; the recording callback
            # follows when Twilio has processed the file (so, by default, last).
            self._mark_over("caller")
            if callback and self.recording_callback_first:
                self._dispatch_async(callback)
            if action:
                url, method, extra = action
                self._dispatch_async(Webhook(kinds.RECORD_ACTION, method, url, {**self.identity.voice_params("completed"), **extra}))
            self._send_status_callback()
            if callback and not self.recording_callback_first:
                self._dispatch_async(callback)
            return self

        if callback and self.recording_callback_first:
            self._dispatch_async(callback)
        if action:
            self._fetch_twiml(kinds.RECORD_ACTION, *action)
        if callback and not self.recording_callback_first:
            self._dispatch_async(callback)
        self._run()  # after an empty recording: the verb after <Record>
        return self

    def _recording_events(self, verb: Verb) -> list[str]:
        return (verb.get("recordingStatusCallbackEvent") or "completed").split()

    def _recording_callback(self, verb: Verb, sid: str, status: str, duration: int | None, error: str = "0") -> Webhook:
        params = self.identity.recording_status_params(
            recording_sid=sid,
            recording_url=self.fake_twilio.recording_url(sid) if self.fake_twilio else "",
            status=status,
            duration=duration,
            started_at=self._recording[1] if self._recording else self._now(),
            error_code=error,
        )
        url = self._resolve(verb.get("recordingStatusCallback"))
        return Webhook(kinds.RECORDING_STATUS, verb.get("recordingStatusCallbackMethod", "POST").upper(), url, params)

    # ---------------------------------------------------------------- ending

    def _end(self, by: str) -> None:
        self._mark_over(by)
        self._send_status_callback()

    def _mark_over(self, by: str) -> None:
        self.is_over, self.ended_by, self._call_status = True, by, "completed"
        self._waiting = None
        if self.fake_twilio is not None:
            self.fake_twilio.end_call(self.call_sid)
        self._line(f"[call over after {self.duration} s]")

    def _send_status_callback(self) -> None:
        if self.status_callback_url:
            params = self.identity.status_params(self.duration, self._now())
            self._dispatch_async(Webhook(kinds.CALL_STATUS, "POST", self.status_callback_url, params))

    # ---------------------------------------------------------------- HTTP

    def _fetch_twiml(self, kind: str, url: str, method: str, extra: dict[str, str] | None = None) -> None:
        self._fetches_since_input += 1
        if self._fetches_since_input > self.max_fetches_without_input:
            raise SimulatorError(f"the app sent Twilio to {self._fetches_since_input} documents without waiting for the caller (a <Redirect> loop?)")
        params = {**self.identity.voice_params(self._call_status), **(extra or {})}
        exchange = self._send(Webhook(kind, method.upper(), url, params))
        document = self._twiml_from(exchange)
        if document is None:
            self._application_error(exchange)
            return
        self.documents.append(document)
        self._queue = list(document.verbs)
        self._doc_url = url

    def _twiml_from(self, exchange: Exchange) -> Document | None:
        response = exchange.response
        problem = None
        if response is None:
            problem = exchange.error
        elif response.status != 200:
            problem = f"HTTP {response.status} (Twilio needs 200 with TwiML): {response.text[:300]!r}"
        elif not response.content_type.split(";")[0].strip().lower() in TWIML_CONTENT_TYPES:
            problem = f"Content-Type {response.content_type!r} is not TwiML (text/xml or application/xml)"
        else:
            try:
                return parse_twiml(response.body, exchange.webhook.url)
            except TwimlError as exc:
                if self.strict:
                    raise
                problem = str(exc)
        if self.strict:
            raise AppResponseError(f"{exchange.describe()}: {problem}", exchange)
        return None

    def _application_error(self, exchange: Exchange) -> None:
        self._line(f"[application error: {exchange.describe()}]")
        self.heard.append(APPLICATION_ERROR)
        self._line(f"HOTLINE: {APPLICATION_ERROR}")
        self._end("error")

    def _dispatch_async(self, webhook: Webhook) -> None:
        if self.callbacks == "manual":
            self.pending.append(webhook)
        else:
            self._deliver(webhook)

    def _deliver(self, webhook: Webhook, attempt: int = 1) -> Exchange:
        exchange = self._send(webhook, attempt=attempt)
        if webhook.kind in kinds.AFTER_HANGUP_ACTIONS:
            self._twiml_from(exchange)  # the caller is gone: the TwiML is checked, not played
        elif self.strict and (exchange.response is None or not 200 <= exchange.status < 300):
            raise AppResponseError(f"{exchange.describe()}: a callback must be answered with 2xx", exchange)
        return exchange

    def _send(self, webhook: Webhook, *, attempt: int = 1, signature: str | None = None, signed: bool = True,
              auth_token: str | None = None, headers: dict[str, str] | None = None) -> Exchange:
        url = webhook.request_url
        path = self._relative(url)
        sent_headers = signed_headers(auth_token or self.auth_token, url, webhook.form, idempotency_token=webhook.token)
        if signature is not None:
            sent_headers[SIGNATURE_HEADER] = signature
        if not signed:
            del sent_headers[SIGNATURE_HEADER]
        sent_headers.update(headers or {})
        try:
            response = self.transport.send(webhook.method, self.public_base_url, path, webhook.form, sent_headers)
            exchange = Exchange(webhook, response, attempt, self.clock)
        except TransportError as exc:
            exchange = Exchange(webhook, None, attempt, self.clock, error=f"could not reach the app ({exc.__class__.__name__}: {exc})")
        self.exchanges.append(exchange)
        return exchange

    # ---------------------------------------------------------------- helpers

    def _absolute(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return self.public_base_url + "/" + path_or_url.lstrip("/")

    def _resolve(self, url: str) -> str:
        absolute = urljoin(self._doc_url, url.strip())
        self._relative(absolute)
        return absolute

    def _relative(self, url: str) -> str:
        base = self.public_base_url
        if url == base:
            return "/"
        if url.startswith(base + "/") or url.startswith(base + "?"):
            rest = url[len(base):]
            return rest if rest.startswith("/") else "/" + rest
        raise SimulatorError(f"the TwiML sends Twilio to {url}, which is not under the app's public URL {base}")

    def _require_waiting(self, action: str) -> Verb:
        if not self._dialled:
            raise SimulatorError(f"the caller cannot {action} before dial()")
        if self.is_over:
            raise SimulatorError(f"the caller cannot {action}: the call is over (ended by {self.ended_by})")
        if self._waiting is None:  # cannot happen: a live call always waits at a <Gather> or <Record>
            raise SimulatorError(f"the caller cannot {action}: the hotline is not waiting for anything")
        return self._waiting

    def _caller_acts(self, line: str) -> None:
        self._mark = len(self.heard)
        self._fetches_since_input = 0
        self._line(line)

    def _line(self, line: str) -> None:
        self.transcript.append(line)
        if self.echo:
            self.echo(line)

    def _now(self) -> datetime:
        return self.started_at + timedelta(seconds=self.clock)


class CallSimulator:
    """Twilio's side of one hotline number: places calls against the app.

    ``call_options`` are passed to every SimulatedCall (e.g. strict=False, callbacks="manual",
    recording_callback_first=True); ``dial(..., **overrides)`` changes them for one call.
    """

    def __init__(self, transport: Transport, *, public_base_url: str, account_sid: str, auth_token: str,
                 fake_twilio=None, to: str = DEFAULT_HOTLINE_NUMBER, voice_path: str = "/ivr/voice",
                 status_callback_path: str | None = "/ivr/status", **call_options):
        self.transport = transport
        self.options = dict(public_base_url=public_base_url, account_sid=account_sid, auth_token=auth_token,
                            fake_twilio=fake_twilio, to=to, voice_path=voice_path,
                            status_callback_path=status_callback_path, **call_options)
        self.calls: list[SimulatedCall] = []

    @classmethod
    def for_flask_app(cls, app, **options) -> "CallSimulator":
        return cls(FlaskClientTransport(app.test_client()), **options)

    def new_call(self, from_: str = DEFAULT_CALLER, **overrides) -> SimulatedCall:
        """A call that has not been dialled yet (for call.post() tests, or to dial() later)."""
        call = SimulatedCall(self.transport, **{**self.options, "from_": from_, **overrides})
        self.calls.append(call)
        return call

    def dial(self, from_: str = DEFAULT_CALLER, **overrides) -> SimulatedCall:
        return self.new_call(from_, **overrides).dial()
