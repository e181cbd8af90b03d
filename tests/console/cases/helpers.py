"""Cases made for the console's tests, straight into the database as the line and workers leave them,
and a reader for the pages the console renders.

`CaseFiles.case(...)` opens a case with its takes (each a Recording, optionally with a sealed machine
transcript of the words given), so a test can say exactly what the inbox and the case page should show.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser

from sqlalchemy import select

from jobs.takes import next_position
from storage.cases import open_case, seal_contact_number, take_owner, version_owner
from storage.models import TAKE_ORDER, Case, CaseEvent, CaseEventKind, CaseStatus, Recording, TranscriptVersion, utcnow
from tests.console.support import csrf_token
from transcription.recognizer import Transcript, Word


def transcript_of(words: str, start: float = 0.0) -> Transcript:
    spoken = [Word(text, start + i * 0.5, start + i * 0.5 + 0.4, 0.9) for i, text in enumerate(words.split())]
    return Transcript(text=words, words=spoken, model_name="test-model", model_version="1", seconds_taken=0.1,
                      audio_seconds=len(spoken) * 0.5)


@dataclass
class Take:
    spoken: str | None = None  # the machine transcript's words; None: no transcript
    seconds: int = 30
    status: str | None = None  # transcription status; default "done" when spoken, else "pending"
    decision: str = "keep"
    call: str | None = None  # the CallSid: takes of one call share it; a later call is a call-back
    at: datetime | None = None


class CaseFiles:
    def __init__(self, console):
        self.console = console

    def case(self, *, anonymous: bool = True, category: str | None = "bribery-corruption",
             received: datetime | None = None, status: CaseStatus = CaseStatus.NEW, urgent: bool = False,
             assignee_id: int | None = None, takes: list[Take] | None = None, contact: str | None = None) -> str:
        received = received or utcnow()
        with self.console.db.session() as session:
            case = open_case(session, anonymous=anonymous)
            case.category, case.status, case.urgent, case.assignee_id = category, status, urgent, assignee_id
            case.created_at = received
            if contact is not None:
                seal_contact_number(session, self.console.sealer, case, contact, confirmed=True)
            session.commit()
            reference = case.reference
        first_call = "CA" + secrets.token_hex(16)
        for index, take in enumerate(takes if takes is not None else [Take()]):
            self.add_take(reference, Take(take.spoken, take.seconds, take.status, take.decision,
                                          take.call or first_call, take.at or received + timedelta(seconds=index)))
        return reference

    def add_take(self, reference: str, take: Take) -> int:
        with self.console.db.session() as session:
            case = session.scalar(select(Case).where(Case.reference == reference))
            recording = Recording(
                recording_sid="RE" + secrets.token_hex(16), call_sid=take.call or "CA" + secrets.token_hex(16),
                case_id=case.id, decision=take.decision, twilio_status="completed", duration_seconds=take.seconds,
                transcription_status=take.status or ("done" if take.spoken is not None else "pending"),
                created_at=take.at or utcnow(), position=next_position(session, case.id),  # as the line numbers takes
            )
            session.add(recording)
            session.flush()
            if take.spoken is not None:
                item = self.console.sealer.seal_item(session, case, "transcript", transcript_of(take.spoken).to_json(),
                                                     owner=take_owner(recording.id))
                recording.transcript_item_id = item.id
            session.commit()
            return recording.id

    def correct(self, recording_id: int, spoken: str, author_id: int | None = None) -> int:
        """A handler's corrected version, as owner C's corrections leave it (version 2, 3, ...)."""
        with self.console.db.session() as session:
            recording = session.get(Recording, recording_id)
            version = 1 + len(session.scalars(
                select(TranscriptVersion).where(TranscriptVersion.recording_id == recording_id)).all()) + 1
            item = self.console.sealer.seal_item(session, recording.case, "transcript-version",
                                                 transcript_of(spoken).to_json(), owner=version_owner(recording_id, version))
            session.add(TranscriptVersion(recording_id=recording_id, version=version, item_id=item.id,
                                          author_id=author_id))
            session.add(CaseEvent(case_id=recording.case_id, kind=CaseEventKind.CORRECTION, actor_id=author_id,
                                  old_value=str(version - 1), new_value=str(version), item_id=item.id,
                                  recording_id=recording_id))
            session.commit()
            return version

    def takes_of(self, reference: str) -> list[int]:
        with self.console.db.session() as session:
            case = session.scalar(select(Case).where(Case.reference == reference))
            return list(session.scalars(select(Recording.id).where(Recording.case_id == case.id).order_by(*TAKE_ORDER)))


# --- reading pages ---------------------------------------------------------------------------------

class _Collector(HTMLParser):
    """Collects elements by class (their text), and the rows of a table by row class."""

    def __init__(self, row_class: str):
        super().__init__(convert_charrefs=True)
        self.row_class = row_class
        self.rows: list[dict] = []
        self._stack: list[tuple[str, str]] = []  # (tag, class) of open elements that we care about
        self._cell: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if tag == "tr" and self.row_class in classes:
            self.rows.append({"_attrs": attributes, "_classes": classes, "_text": ""})
        elif tag == "td" and self.rows and self._cell is None and self._in_row():
            self._cell = classes[0] if classes else f"col{len([k for k in self.rows[-1] if not k.startswith('_')])}"
            self._text = []
        self._stack.append((tag, " ".join(classes)))

    def _in_row(self) -> bool:
        return any(tag == "tr" for tag, _ in self._stack)

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1][self._cell] = " ".join("".join(self._text).split())
            self._cell = None
        while self._stack:
            open_tag, _ = self._stack.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        if self._cell is not None:
            self._text.append(data)
        if self.rows and self._in_row():
            self.rows[-1]["_text"] += data


def table_rows(html: str, row_class: str) -> list[dict]:
    collector = _Collector(row_class)
    collector.feed(html)
    return collector.rows


def texts_of_class(html: str, css_class: str) -> list[str]:
    """The text inside every element with this class (no nesting of the same class)."""
    found = []
    pattern = re.compile(r'<(\w+)[^>]*class="[^"]*\b' + re.escape(css_class) + r'\b[^"]*"[^>]*>(.*?)</\1>', re.S)
    for match in pattern.finditer(html):
        found.append(_unescape(re.sub(r"<[^>]+>", "", match.group(2))).strip())
    return found


def timeline_kinds(html: str) -> list[str]:
    section = html.split('id="timeline"', 1)[1]
    return re.findall(r'class="timeline-entry [^"]*" data-kind="([a-z]+)"', section)


def _unescape(text: str) -> str:
    import html as html_module

    return html_module.unescape(text)


def form_post(person, page_url: str, action: str, data: dict, **kwargs):
    """Post a form the way a browser does from `page_url`: with that page's CSRF token."""
    page = person.client.get(page_url)
    return person.client.post(action, data={"csrf_token": csrf_token(page.get_data(as_text=True)), **data}, **kwargs)


def messages(response) -> list[str]:
    """The messages shown on a page (after following the redirect)."""
    return texts_of_class(response.get_data(as_text=True), "flash")
