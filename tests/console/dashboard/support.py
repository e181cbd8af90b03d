"""Rows for the dashboard to count, and a reader for its tables."""
from __future__ import annotations

import re
from datetime import datetime
from html.parser import HTMLParser

from sqlalchemy import select

from storage.cases import take_owner
from storage.models import Call, CallPurpose, Case, Job, JobKind, JobState, Question, QuestionState, Recording, utcnow
from tests.console.cases.helpers import CaseFiles, Take


class LineRecords(CaseFiles):
    """CaseFiles (cases with their takes), and the calls and jobs the line leaves beside them."""

    def call_back(self, at: datetime, reference: str | None = None) -> None:
        """A call that chose "add to a report": into `reference`'s case if the PIN was right, else none."""
        with self.console.db.session() as session:
            case_id = session.scalar(select(Case.id).where(Case.reference == reference)) if reference else None
            session.add(Call(call_sid=None, purpose=CallPurpose.ADD, case_id=case_id, started_at=at,
                             status="completed", deleted_at_twilio=True))
            session.commit()

    def report_call(self, at: datetime, reference: str) -> None:
        with self.console.db.session() as session:
            case_id = session.scalar(select(Case.id).where(Case.reference == reference))
            session.add(Call(purpose=CallPurpose.REPORT, case_id=case_id, started_at=at, status="completed"))
            session.commit()

    def audio_stored(self, recording_id: int) -> None:
        """The worker fetched and sealed the take's audio (the transcript may still be to come)."""
        with self.console.db.session() as session:
            recording = session.get(Recording, recording_id)
            item = self.console.sealer.seal_item(session, recording.case, "recording", b"RIFF audio",
                                                 owner=take_owner(recording.id))
            recording.audio_item_id = item.id
            session.commit()

    def job(self, recording_id: int, state: JobState, kind: JobKind = JobKind.STORE_RECORDING) -> None:
        with self.console.db.session() as session:
            session.add(Job(kind=kind, recording_id=recording_id, state=state, run_after=utcnow()))
            session.commit()

    def question(self, reference: str, written: datetime, state: QuestionState = QuestionState.QUEUED,
                 answered: datetime | None = None) -> None:
        """A handler's question on the case, sealed (here to the hotline key only: nothing reads it back)."""
        with self.console.db.session() as session:
            case = session.scalar(select(Case).where(Case.reference == reference))
            position = 1 + len(session.scalars(select(Question.id).where(Question.case_id == case.id)).all())
            item = self.console.sealer.seal_item(session, case, "question", b"Which station was it?")
            session.add(Question(case_id=case.id, position=position, state=state, line_sealed=b"sealed to the case",
                                 item_id=item.id, created_at=written, answered_at=answered,
                                 heard_at=answered if state is QuestionState.ANSWERED else None))
            session.commit()


def take(**kwargs) -> Take:
    return Take(**kwargs)


class _TableReader(HTMLParser):
    def __init__(self, table_id: str):
        super().__init__(convert_charrefs=True)
        self.table_id, self.inside, self.rows = table_id, False, {}
        self._row: dict | None = None
        self._cell: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "table" and attributes.get("id") == self.table_id:
            self.inside = True
        if not self.inside:
            return
        if tag == "tr":
            self._row = {}
        elif tag in ("th", "td") and self._row is not None:
            self._cell = "label" if tag == "th" else (attributes.get("class") or "").split()[0]
            self._text = []

    def handle_endtag(self, tag):
        if not self.inside:
            return
        if tag in ("th", "td") and self._cell is not None:
            self._row[self._cell] = " ".join("".join(self._text).split())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            label = self._row.pop("label", "")
            if self._row:  # not the header row
                self.rows[label] = {key: int(value) for key, value in self._row.items()}
            self._row = None
        elif tag == "table":
            self.inside = False

    def handle_data(self, data):
        if self._cell is not None:
            self._text.append(data)


def table(html: str, table_id: str) -> dict[str, dict[str, int]]:
    """A dashboard table as {row heading: {series key or "total": count}}; the footer row is "All"."""
    assert f'id="{table_id}"' in html, f"the page has no table {table_id}"
    reader = _TableReader(table_id)
    reader.feed(html)
    return reader.rows


def text_of(html: str, element_id: str) -> str:
    match = re.search(r'id="' + re.escape(element_id) + r'"[^>]*>(.*?)</', html, re.S)
    assert match, f"the page has no element {element_id}"
    return " ".join(re.sub(r"<[^>]+>", "", match.group(1)).split())
