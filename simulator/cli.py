"""`flask --app app simulate-call`: place a call against the hotline from the terminal.

    flask --app app simulate-call --keys "1,1,3,REC,1" --recording report.wav
    flask --app app simulate-call --interactive
    flask --app app simulate-call --url http://127.0.0.1:5000 --fake-twilio-port 8765 --keys 1,REC

Script steps (``--keys`` comma-separated, or repeated ``--press``), case-insensitive:
    digits, * and #   press them at a <Gather> (or a finishOnKey to end an empty <Record>)
    WAIT or -         no input: the <Gather> times out / the <Record> hears silence
    REC               say the --recording WAV (a 3 s tone if none), then press # (or the first finishOnKey)
    REC-HANGUP        say the WAV, then hang up mid-recording
    SILENCE           record nothing, then press the finish key
    HANGUP            hang up
When the script ends with the call still live, the caller hangs up.

What the app must provide (in-process):
  * app.config["HOTLINE_SETTINGS"] with .public_base_url, .twilio_account_sid, .twilio_auth_token
    and .twilio_api_base; the simulator signs with the token, for the public URL.
  * The app's REST calls to Twilio (downloading RecordingUrl, deleting recordings) must use
    settings.twilio_api_base as read from app.config at the time of the call: for the duration of
    the simulated call HOTLINE_SETTINGS is replaced by a copy whose twilio_api_base is FakeTwilio's
    (via settings.with_overrides / dataclasses.replace), and restored afterwards.
  * An app that builds its Twilio client or checks RecordingUrl against settings captured at
    creation (as create_app does) needs a factory instead: callable(twilio_api_base) -> Flask app,
    given to simulate_call_command(factory) or set as app.config["SIMULATOR_APP_FACTORY"]; it is
    then used to build a separate app pointing at FakeTwilio (``close_app(app)`` cleans it up).
With --url, the running server must have been started with TWILIO_API_BASE=http://127.0.0.1:<port>
and the same account SID and auth token; fix the port with --fake-twilio-port.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from .call import DEFAULT_CALLER, DEFAULT_HOTLINE_NUMBER, CallSimulator, SimulatedCall
from .errors import SimulatorError
from .fake_twilio import FakeTwilio
from .transport import FlaskClientTransport, HttpTransport

FACTORY_KEY = "SIMULATOR_APP_FACTORY"
# Set on an app built for FakeTwilio before close_app(app): the CallSids of the calls the fake has seen.
CALLS_KEY = "SIMULATOR_CALL_SIDS"
SETTINGS_KEY = "HOTLINE_SETTINGS"


def parse_script(keys: str | None = None, presses: Iterable[str] = ()) -> list[str]:
    steps = [step.strip() for step in keys.split(",")] if keys else []
    return steps + [step.strip() for step in presses]


def apply_step(call: SimulatedCall, step: str, recording: bytes | None = None) -> None:
    """Do one script step (see the module docstring) on a live call."""
    word = " ".join(step.upper().replace("-", " ").replace("+", " ").split())
    if word in ("", "WAIT"):
        call.waits()
    elif word == "REC":
        call.says(recording, then=_finish_key(call))
    elif word in ("REC HANGUP", "RECHANGUP"):
        call.says(recording, then="hangup")
    elif word == "SILENCE":
        call.says_nothing(then=_finish_key(call))
    elif word == "HANGUP":
        call.hangs_up()
    else:
        call.presses(step.strip())


def _finish_key(call: SimulatedCall) -> str:
    verb = call.waiting_verb
    if verb is None or verb.name != "Record":
        raise SimulatorError("no <Record> is running: REC and SILENCE only work while the hotline records")
    keys = verb.get("finishOnKey", "1234567890*#")
    if "#" in keys:
        return "#"
    return keys[0] if keys else "hangup"


def run_simulated_call(
    app_or_factory: Flask | Callable[[str], Flask] | None,
    *,
    from_: str = DEFAULT_CALLER,
    to: str = DEFAULT_HOTLINE_NUMBER,
    steps: Iterable[str] = (),
    interactive: bool = False,
    recording: bytes | None = None,
    url: str | None = None,
    public_base_url: str | None = None,
    account_sid: str | None = None,
    auth_token: str | None = None,
    fake_twilio_port: int = 0,
    voice_path: str = "/ivr/voice",
    status_path: str | None = "/ivr/status",
    linger: float = 2.0,
    echo: Callable[[str], None] = click.echo,
    prompt: Callable[[str], str] | None = None,
    close_app: Callable[[Flask], None] | None = None,
) -> SimulatedCall:
    """Start FakeTwilio, place one call against the app (in-process, or at ``url``), print it.

    ``app_or_factory`` is a Flask app (its HOTLINE_SETTINGS are pointed at FakeTwilio during the
    call) or a callable taking FakeTwilio's api_base and returning an app. Returns the finished call.
    """
    settings = _settings_of(app_or_factory) if isinstance(app_or_factory, Flask) else None
    account_sid = account_sid or getattr(settings, "twilio_account_sid", None)
    auth_token = auth_token or getattr(settings, "twilio_auth_token", None)
    with FakeTwilio(account_sid, auth_token, port=fake_twilio_port) as fake:
        with _transport_for(app_or_factory, url, fake, echo, close_app) as (transport, app_settings):
            public = public_base_url or getattr(app_settings, "public_base_url", None) or url
            if not public:
                raise SimulatorError("no public base URL: pass --public-url")
            sim = CallSimulator(
                transport, public_base_url=public, account_sid=fake.account_sid, auth_token=fake.auth_token,
                fake_twilio=fake, to=to, voice_path=voice_path, status_callback_path=status_path, echo=echo,
            )
            seen = [0]
            call = sim.new_call(from_)
            call.dial()
            _print_api_requests(fake, seen, echo)
            if interactive:
                _converse(call, recording, fake, seen, echo, prompt or _ask)
            else:
                for step in steps:
                    if call.is_over:
                        echo(f"(the call is over; script step {step!r} and after are not used)")
                        break
                    apply_step(call, step, recording)
                    _print_api_requests(fake, seen, echo)
            if not call.is_over:
                echo("(end of script)")
                call.hangs_up()
            _linger(fake, seen, echo, linger)
            left = ", ".join(fake.recordings) or "none"
            echo(f"Call {call.call_sid} lasted {call.duration} s, ended by {call.ended_by}; recordings left on Twilio: {left}")
            return call


def _converse(call, recording, fake, seen, echo, ask) -> None:
    while not call.is_over:
        waiting = "the hotline is recording" if call.waiting_for == "recording" else "the hotline waits for keys"
        try:
            line = ask(f"[{waiting}] keys / Enter = nothing / rec / rec hangup / silence / hangup")
        except (EOFError, click.Abort):
            line = "hangup"
        try:
            apply_step(call, line, recording)
        except SimulatorError as exc:
            echo(f"  ! {exc}")
        _print_api_requests(fake, seen, echo)


def _ask(text: str) -> str:
    return click.prompt(text, default="", show_default=False, prompt_suffix="\n> ")


def _print_api_requests(fake: FakeTwilio, seen: list[int], echo) -> None:
    log = fake.log
    for entry in log[seen[0]:]:
        echo(f"TWILIO API: {entry}")
    seen[0] = len(log)


def _linger(fake: FakeTwilio, seen: list[int], echo, seconds: float) -> None:
    """Keep FakeTwilio up a little, so background jobs can fetch and delete recordings."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)
        _print_api_requests(fake, seen, echo)


@contextmanager
def _transport_for(app_or_factory, url, fake: FakeTwilio, echo, close_app=None):
    if url:
        echo(f"(calling {url}; it must run with TWILIO_API_BASE={fake.api_base})")
        transport = HttpTransport(url)
        try:
            yield transport, _settings_of(app_or_factory) if isinstance(app_or_factory, Flask) else None
        finally:
            transport.close()
        return
    if app_or_factory is None:
        raise SimulatorError("no app to call: give a Flask app or --url")
    if isinstance(app_or_factory, Flask) and callable(app_or_factory.config.get(FACTORY_KEY)):
        app_or_factory = app_or_factory.config[FACTORY_KEY]
    if isinstance(app_or_factory, Flask):
        app = app_or_factory
        original = _settings_of(app)
        app.config[SETTINGS_KEY] = with_api_base(original, fake.api_base)
        try:
            yield FlaskClientTransport(app.test_client()), app.config[SETTINGS_KEY]
        finally:
            app.config[SETTINGS_KEY] = original
    else:
        app = app_or_factory(fake.api_base)
        try:
            settings = _settings_of(app)
            fake.account_sid, fake.auth_token = settings.twilio_account_sid, settings.twilio_auth_token
            yield FlaskClientTransport(app.test_client()), settings
        finally:
            if close_app:
                app.config[CALLS_KEY] = list(fake.calls)  # their records are the fake's to delete, while it runs
                close_app(app)


def _settings_of(app: Flask):
    settings = app.config.get(SETTINGS_KEY)
    if settings is None:
        raise SimulatorError(f"app.config[{SETTINGS_KEY!r}] is not set: the simulator needs the app's settings")
    return settings


def with_api_base(settings, api_base: str):
    """A copy of ``settings`` whose twilio_api_base is ``api_base``."""
    if hasattr(settings, "with_overrides"):
        return settings.with_overrides(twilio_api_base=api_base)
    if dataclasses.is_dataclass(settings):
        return dataclasses.replace(settings, twilio_api_base=api_base)
    changed = copy.copy(settings)
    setattr(changed, "twilio_api_base", api_base)
    return changed


def simulate_call_command(
    app_factory: Callable[[str], Flask] | None = None,
    close_app: Callable[[Flask], None] | None = None,
) -> click.Command:
    """The `simulate-call` command. With ``app_factory(twilio_api_base) -> app`` the call goes to an
    app built for FakeTwilio; without, to the current app with its HOTLINE_SETTINGS overridden."""

    @click.command("simulate-call")
    @click.option("--from", "from_", default=DEFAULT_CALLER, show_default=True, help="Caller's number (+266696687: withheld).")
    @click.option("--to", default=DEFAULT_HOTLINE_NUMBER, show_default=True, help="The hotline number dialled.")
    @click.option("--keys", help='Comma-separated script: digits, WAIT, REC, REC-HANGUP, SILENCE, HANGUP; e.g. "1,1,3,REC,1".')
    @click.option("--press", "presses", multiple=True, help="One script step (repeatable), after --keys.")
    @click.option("--recording", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="WAV the caller says at REC (default: a 3 s tone).")
    @click.option("--interactive", is_flag=True, help="Type each step at a prompt.")
    @click.option("--url", help="Call a running server (e.g. http://127.0.0.1:5000) instead of the app in-process.")
    @click.option("--public-url", help="URL Twilio believes it calls (default: the app's public_base_url).")
    @click.option("--fake-twilio-port", type=int, default=0, help="Port for FakeTwilio (fix it when using --url).")
    @click.option("--linger", type=float, default=2.0, show_default=True, help="Seconds FakeTwilio stays up after the call.")
    @click.option("--voice-path", default="/ivr/voice", show_default=True)
    @click.option("--status-path", default="/ivr/status", show_default=True)
    @with_appcontext
    def simulate_call(from_, to, keys, presses, recording, interactive, url, public_url, fake_twilio_port, linger, voice_path, status_path):
        """Place a simulated call against the hotline (Twilio is faked)."""
        target = current_app._get_current_object() if url or app_factory is None else app_factory
        try:
            run_simulated_call(
                target,
                from_=from_, to=to, steps=parse_script(keys, presses), interactive=interactive,
                recording=recording.read_bytes() if recording else None, url=url, public_base_url=public_url,
                account_sid=current_app.config[SETTINGS_KEY].twilio_account_sid if SETTINGS_KEY in current_app.config else None,
                auth_token=current_app.config[SETTINGS_KEY].twilio_auth_token if SETTINGS_KEY in current_app.config else None,
                fake_twilio_port=fake_twilio_port, voice_path=voice_path, status_path=status_path, linger=linger,
                close_app=close_app,
            )
        except SimulatorError as exc:
            raise click.ClickException(str(exc)) from exc

    return simulate_call


simulate_call = simulate_call_command()
