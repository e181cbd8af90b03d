"""The console and the line served over real HTTP, a simulated call, and people in headless Chromium.

Everything is the real thing except Twilio: the line's app with its embedded worker and the real speech
model, the console app, Debian's Chromium driven by its own chromedriver. Both apps share one SQLite
database (the embedded default; the story is long, so it runs once rather than once per database).
"""
from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from simulator.call import CallSimulator
from simulator.transport import HttpTransport
from tests.browser.support import chromium
from tests.browser.support.pages import ConsoleUser
from tests.browser.support.servers import LiveServer
from tests.console.support import People, Person
from tests.support.processes import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
# The utterance the caller speaks: 7 s of a real person reading, long enough to watch the highlight move.
SPOKEN = "librivox/sense_and_sensibility_01_austen_64kb-0870"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.browser_test_failed = report.failed
    return report


@pytest.fixture
def database_url(data_dir: Path) -> str:
    return f"sqlite:///{data_dir / 'hotline.db'}"


# --- the console ------------------------------------------------------------------------------------

@pytest.fixture
def console_port() -> int:
    return free_port()


@pytest.fixture
def console_url(console_port: int) -> str:
    # A host name, not 127.0.0.1: WebAuthn refuses IP addresses as its relying party.
    return f"http://localhost:{console_port}"


@pytest.fixture
def console_env(settings_env: dict[str, str], console_port: int, console_url: str) -> dict[str, str]:
    return {
        **settings_env,
        # development: the cookies are not Secure, so the browser sends them back over plain http.
        "HOTLINE_ENV": "development",
        "CONSOLE_SECRET_KEY": secrets.token_urlsafe(48),
        "CONSOLE_PORT": str(console_port),
        "CONSOLE_PUBLIC_URL": console_url,
    }


@pytest.fixture
def console_app(console_env: dict[str, str], settings):
    from console import create_app
    from console.settings import ConsoleSettings

    # `settings` (the line's) has migrated the database already.
    app = create_app(ConsoleSettings.from_env(console_env))
    yield app
    app.extensions["console"].db.dispose()


@pytest.fixture
def console_server(console_app, console_port: int):
    with LiveServer(console_app, console_port) as server:
        yield server


@pytest.fixture
def people(console_app, private_key) -> People:
    return People(console_app, private_key)


# --- the browser ------------------------------------------------------------------------------------

class Screenshots:
    """The README's pictures, written by the test browser into docs/screenshots/ only when
    HOTLINE_SCREENSHOTS=1, so an ordinary run (and CI) leaves the tree as it was."""

    def __init__(self, folder: Path | None):
        self.folder = folder

    def take(self, user: ConsoleUser, name: str) -> None:
        if self.folder is not None:
            user.screenshot(self.folder / f"{name}.png")


@pytest.fixture
def screenshots() -> Screenshots:
    return Screenshots(SCREENSHOTS if os.environ.get("HOTLINE_SCREENSHOTS") == "1" else None)


@pytest.fixture
def browsers(request, tmp_path: Path):
    """Opens a fresh Chromium per person; on a failed test, keeps each one's last screen for a look."""
    problem = chromium.missing()
    if problem:
        pytest.fail(problem)
    opened: list[chromium.Browser] = []

    def open_browser() -> chromium.Browser:
        browser = chromium.Browser()
        opened.append(browser)
        return browser

    yield open_browser
    for number, browser in enumerate(opened, start=1):
        if getattr(request.node, "browser_test_failed", False):
            try:
                browser.driver.save_screenshot(str(tmp_path / f"browser-{number}.png"))
                (tmp_path / f"browser-{number}.html").write_text(browser.driver.page_source)
                print(f"browser {number} was at {browser.driver.current_url}; its screen: {tmp_path}/browser-{number}.png")
            except Exception as error:  # the browser itself may be what broke
                print(f"browser {number}: no screenshot ({type(error).__name__})")
        browser.close()


@pytest.fixture
def at_console(browsers, console_server, console_url: str):
    """at_console(person) puts a person made with `people` in front of the console in their own browser;
    at_console("hana") is someone with no account yet, who will enrol by link."""

    def seat(who: Person | str) -> ConsoleUser:
        if isinstance(who, Person):
            return ConsoleUser(browsers(), console_url, who.username, who.password, who.totp_secret)
        return ConsoleUser(browsers(), console_url, who)

    return seat


# --- the line, and a caller ---------------------------------------------------------------------------

@pytest.fixture
def line_app(settings, model_path: Path, transcriber):
    """The line with its embedded worker and the real speech model (loaded once per test session)."""
    from app import create_app

    app = create_app(settings.with_overrides(worker_mode="inprocess", vosk_model_path=str(model_path)),
                     start_worker=True)
    app.extensions["hotline"].workshop.transcriber = transcriber  # the loaded one; no job has run yet
    yield app
    app.extensions["hotline"].dispatcher.stop()
    app.extensions["hotline"].db.dispose()


@pytest.fixture
def line_server(line_app):
    with LiveServer(line_app, free_port()) as server:
        yield server


@pytest.fixture
def twilio(line_server, settings, fake_twilio) -> CallSimulator:
    """Twilio's side of the 0800 number, calling the line over HTTP."""
    return CallSimulator(
        HttpTransport(f"http://127.0.0.1:{line_server.port}"), public_base_url=settings.public_base_url,
        account_sid=settings.twilio_account_sid, auth_token=settings.twilio_auth_token, fake_twilio=fake_twilio,
    )


@dataclass(frozen=True)
class Report:
    reference: str
    recording_id: int
    spoken_words: list[str]  # what the caller really said (the corpus's own transcript)


@pytest.fixture
def spoken_report(twilio, line_app, utterances) -> Report:
    """An anonymous caller reports bribery in their own words and hangs up; the worker fetches, seals and
    transcribes the take with the real model before the test goes on."""
    from storage.models import Case, Recording
    from tests.support import speech_corpus

    utterance = utterances[SPOKEN]
    caller = twilio.dial()
    for key in "111":  # a new report, anonymous, about bribery or corruption
        caller.presses(key)
    caller.says(speech_corpus.telephone_wav(utterance), then="#")
    caller.presses("1")  # keep it
    said = " ".join(caller.heard)
    match = re.search(r"reference is ((?:\d, ){3}\d\. ?(?:(?:\d, )*\d\.)?)", said)
    assert match, f"the caller was not given a reference: {said!r}"
    reference = re.sub(r"\D", "", match.group(1))
    caller.hangs_up()

    hotline = line_app.extensions["hotline"]

    take = select(Recording.id, Recording.transcription_status).join(Case).where(Case.reference == reference)

    def transcription() -> tuple[int, str] | None:
        with hotline.db.session() as session:
            return session.execute(take).one_or_none()

    assert wait_until(lambda: (transcription() or (0, ""))[1] in ("done", "failed"), timeout=90), \
        "the take was never transcribed"
    recording_id, status = transcription()
    assert status == "done"
    return Report(reference, recording_id, utterance.reference.split())
