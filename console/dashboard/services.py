"""The line at a glance: counts, ages and waits, each one aggregate query, whatever the number of cases.

Everything here is metadata the inbox already shows (statuses, categories, times, take states) counted
up: no sealed item is opened, no reference or report content leaves the database. The database does the
counting (GROUP BY over spans given as bound parameters), so a page costs the same few queries at 10,000
cases as at ten. Plain Python over a SQLAlchemy session; no Flask.

Times of anonymous cases, their takes and every call are kept only to the hour (or the day,
storage/anonymity.py), rounded down: they fall in the right week, and their waits read up to that much
longer than they were.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import case as sql_case, func, select
from sqlalchemy.orm import Session

from console.cases.services import CATEGORY_LABELS, NO_CATEGORY_LABEL, STATUS_ORDER
from console.dashboard.periods import FIRST_REVIEW_DELAYS, OPEN_CASE_AGES, Band, Week, weeks_up_to
from console.dashboard.sql import band_index, seconds_between, span_index
from ivr.flow import CATEGORIES
from storage.models import (
    AuditAction,
    AuditEntry,
    Call,
    CallPurpose,
    Case,
    CaseStatus,
    Job,
    Question,
    QuestionState,
    JobKind,
    JobState,
    Recording,
    TakeDecision,
    TranscriptionStatus,
)

OPEN_STATUSES = tuple(status for status in STATUS_ORDER if status is not CaseStatus.CLOSED)
NO_CATEGORY_KEY = "none"


@dataclass(frozen=True)
class Series:
    key: str  # a stable name for the chart's colour and the tests: a category, a status, ...
    label: str
    values: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.values)


@dataclass(frozen=True)
class Breakdown:
    """Counts over columns (weeks, or age bands), split into series that stack."""

    columns: tuple[str, ...]
    series: tuple[Series, ...]
    column_titles: tuple[str, ...] = ()  # a longer label per column, for the table (else `columns`)

    @property
    def totals(self) -> tuple[int, ...]:
        return tuple(sum(s.values[i] for s in self.series) for i in range(len(self.columns)))

    @property
    def total(self) -> int:
        return sum(self.totals)

    @property
    def titles(self) -> tuple[str, ...]:
        return self.column_titles or self.columns

    def of(self, key: str) -> Series:
        return next(s for s in self.series if s.key == key)


def _breakdown(columns: list[str], series: list[tuple[str, str]], counts: dict[tuple[int, str], int],
               titles: list[str] | None = None) -> Breakdown:
    return Breakdown(
        tuple(columns),
        tuple(Series(key, label, tuple(counts.get((i, key), 0) for i in range(len(columns)))) for key, label in series),
        tuple(titles or ()),
    )


def _week_bounds(weeks: list[Week]) -> list[datetime]:
    return [week.start for week in weeks] + [weeks[-1].end]


# --- reports per week, by category -----------------------------------------------------------------

CATEGORY_SERIES = [(value, CATEGORY_LABELS[value]) for value in CATEGORIES.values()] + [
    (NO_CATEGORY_KEY, NO_CATEGORY_LABEL)]


def reports_per_week(session: Session, weeks: list[Week]) -> Breakdown:
    """New cases (reports) by the week they came in, per category the caller chose."""
    bounds = _week_bounds(weeks)
    spans = (select(span_index(Case.created_at, bounds).label("week"),
                    func.coalesce(Case.category, NO_CATEGORY_KEY).label("category"))
             .where(Case.created_at >= bounds[0], Case.created_at < bounds[-1]).subquery())
    counts = {}
    for week, category, count in session.execute(
        select(spans.c.week, spans.c.category, func.count()).group_by(spans.c.week, spans.c.category)
    ):
        key = category if category in CATEGORY_LABELS else NO_CATEGORY_KEY  # a category retired from the menu
        counts[(week, key)] = counts.get((week, key), 0) + count
    return _breakdown([w.label for w in weeks], CATEGORY_SERIES, counts, [w.long_label for w in weeks])


# --- open cases, by how long they have been open ---------------------------------------------------

def _age_limits(now: datetime, bands: tuple[Band, ...]) -> list[datetime]:
    """The created_at times at which each band starts, newest first: under a day is after now - 1 day."""
    return [now - band.high for band in bands if band.high is not None]


def open_cases_by_age(session: Session, now: datetime) -> Breakdown:
    """Every case not closed, by its age, per status: the work still on the line's plate."""
    limits = _age_limits(now, OPEN_CASE_AGES)
    # created_at after limits[0] is under a day old, after limits[1] under a week, ... else the oldest band.
    whens = [(Case.created_at > limit, i) for i, limit in enumerate(limits)]
    band = sql_case(*whens, else_=len(OPEN_CASE_AGES) - 1)
    banded = select(band.label("band"), Case.status.label("status")).where(Case.status.in_(OPEN_STATUSES)).subquery()
    counts = {}
    for band_number, status, count in session.execute(
        select(banded.c.band, banded.c.status, func.count()).group_by(banded.c.band, banded.c.status)
    ):
        counts[(band_number, CaseStatus(status).value)] = count
    return _breakdown([b.label for b in OPEN_CASE_AGES], [(s.value, s.label) for s in OPEN_STATUSES], counts)


# --- time to first review ----------------------------------------------------------------------------

@dataclass(frozen=True)
class FirstReview:
    """Of the cases that came in over the weeks shown: how long until someone first opened each."""

    received: int
    reviewed: int
    delays: Breakdown  # one series: reviewed cases per delay band
    median_seconds: float | None
    p90_seconds: float | None

    @property
    def waiting(self) -> int:
        return self.received - self.reviewed


def first_review(session: Session, weeks: list[Week]) -> FirstReview:
    """The first CASE_VIEWED entry in the audit trail against the case's arrival, for the cases of these
    weeks: one correlated MIN per case over the audit log's case_reference index, worked out once (a
    materialised CTE) and then counted into bands and ranked for the median and 90th percentile in the
    same query (window functions: percentile_cont is PostgreSQL's only)."""
    bounds = _week_bounds(weeks)
    first_view = (select(func.min(AuditEntry.created_at))
                  .where(AuditEntry.case_reference == Case.reference, AuditEntry.action == AuditAction.CASE_VIEWED)
                  .scalar_subquery())
    per_case = (select(seconds_between(Case.created_at, first_view).label("delay"))
                .where(Case.created_at >= bounds[0], Case.created_at < bounds[-1])
                .cte("first_reviews").prefix_with("MATERIALIZED"))
    delay = per_case.c.delay
    limits = [band.high.total_seconds() if band.high is not None else None for band in FIRST_REVIEW_DELAYS]
    not_yet = -1
    unreviewed = delay.is_(None)
    ranked = select(
        sql_case((unreviewed, not_yet), else_=band_index(delay, limits)).label("band"),
        delay.label("delay"),
        func.row_number().over(partition_by=unreviewed, order_by=delay).label("rank"),
        func.count().over(partition_by=unreviewed).label("of"),
    ).subquery()
    # Nearest rank: the median is the ceil(n/2)-th delay, the 90th percentile the ceil(9n/10)-th.
    median_rank, p90_rank = (ranked.c.of + 1) // 2, (9 * ranked.c.of + 9) // 10
    counts, received, median, p90 = {}, 0, None, None
    for band, count, band_median, band_p90 in session.execute(
        select(ranked.c.band, func.count(),
               func.max(sql_case((ranked.c.rank == median_rank, ranked.c.delay))),
               func.max(sql_case((ranked.c.rank == p90_rank, ranked.c.delay))))
        .group_by(ranked.c.band)
    ):
        received += count
        if band == not_yet:
            continue
        counts[(band, "reviewed")] = count
        median = band_median if band_median is not None else median
        p90 = band_p90 if band_p90 is not None else p90
    reviewed = sum(counts.values())
    delays = _breakdown([b.label for b in FIRST_REVIEW_DELAYS], [("reviewed", "Cases first opened")], counts)
    # A view cannot come before the call (an anonymous case's arrival is rounded down, never up);
    # max() only guards against clock skew between machines.
    return FirstReview(received, reviewed, delays,
                       None if median is None else max(0.0, float(median)),
                       None if p90 is None else max(0.0, float(p90)))


# --- transcription backlog -------------------------------------------------------------------------

@dataclass(frozen=True)
class Backlog:
    """Takes the line is still working on, and the workers' queue behind them."""

    awaiting_audio: int  # kept, not yet fetched from Twilio and sealed
    awaiting_transcript: int  # sealed audio, waiting for the recogniser
    failed: int  # the recogniser gave up (the case page says so; a handler listens instead)
    waiting_seconds: int  # audio in the two waiting groups
    oldest_waiting: datetime | None  # the arrival of the oldest waiting take (to the hour if anonymous)
    jobs: dict[JobState, int] = field(default_factory=dict)  # recording jobs not done, per state

    @property
    def waiting(self) -> int:
        return self.awaiting_audio + self.awaiting_transcript

    @property
    def chart(self) -> Breakdown:
        columns = ["Audio not stored yet", "Waiting for transcription", "Transcription failed",
                   "Jobs queued", "Jobs running", "Jobs failed"]
        values = (self.awaiting_audio, self.awaiting_transcript, self.failed,
                  self.jobs.get(JobState.QUEUED, 0), self.jobs.get(JobState.RUNNING, 0),
                  self.jobs.get(JobState.FAILED, 0))
        return Breakdown(tuple(columns), (Series("backlog", "Takes or jobs", values),))


def transcription_backlog(session: Session) -> Backlog:
    stored = (Recording.audio_item_id.is_not(None)).label("stored")
    awaiting_audio = awaiting_transcript = failed = waiting_seconds = 0
    oldest = None
    for status, is_stored, count, seconds, first in session.execute(
        select(Recording.transcription_status, stored, func.count(), func.coalesce(func.sum(Recording.duration_seconds), 0),
               func.min(Recording.created_at))
        .where(Recording.decision == TakeDecision.KEEP,
               Recording.transcription_status.in_((TranscriptionStatus.PENDING, TranscriptionStatus.FAILED)))
        .group_by(Recording.transcription_status, stored)
    ):
        if status == TranscriptionStatus.FAILED:
            failed += count
            continue
        if is_stored:
            awaiting_transcript += count
        else:
            awaiting_audio += count
        waiting_seconds += int(seconds)
        oldest = first if oldest is None or (first is not None and first < oldest) else oldest
    jobs = {JobState(state): count for state, count in session.execute(
        select(Job.state, func.count())
        .where(Job.kind == JobKind.STORE_RECORDING, Job.state.in_((JobState.QUEUED, JobState.RUNNING, JobState.FAILED)))
        .group_by(Job.state))}
    return Backlog(awaiting_audio, awaiting_transcript, failed, waiting_seconds, oldest, jobs)


# --- call-backs --------------------------------------------------------------------------------------

CALL_BACK_SERIES = [("unlocked", "Reached their case"), ("not-unlocked", "Did not get in")]


def call_backs_per_week(session: Session, weeks: list[Week]) -> Breakdown:
    """Calls that chose "add to a report", by week: those whose reference and PIN opened the case, and
    those that did not (a wrong PIN, a hang-up before it, a locked reference)."""
    bounds = _week_bounds(weeks)
    spans = (select(span_index(Call.started_at, bounds).label("week"),
                    Call.case_id.is_not(None).label("unlocked"))
             .where(Call.purpose == CallPurpose.ADD, Call.started_at >= bounds[0], Call.started_at < bounds[-1])
             .subquery())
    counts = {}
    for week, unlocked, count in session.execute(
        select(spans.c.week, spans.c.unlocked, func.count()).group_by(spans.c.week, spans.c.unlocked)
    ):
        counts[(week, "unlocked" if unlocked else "not-unlocked")] = count
    return _breakdown([w.label for w in weeks], CALL_BACK_SERIES, counts, [w.long_label for w in weeks])


# --- questions to callers ----------------------------------------------------------------------------

QUESTION_SERIES = [(QuestionState.ANSWERED.value, "Answered"), (QuestionState.HEARD.value, "Heard, not answered yet"),
                   (QuestionState.QUEUED.value, "Not asked yet"), (QuestionState.WITHDRAWN.value, "Withdrawn")]


@dataclass(frozen=True)
class Questions:
    written: Breakdown  # per week a handler wrote them, by where each question is now
    answered: int  # answered by a caller within the weeks shown (whenever written)
    waiting: int  # queued now, whenever written: waiting for the caller to ring back


def questions(session: Session, weeks: list[Week]) -> Questions:
    bounds = _week_bounds(weeks)
    spans = (select(span_index(Question.created_at, bounds).label("week"), Question.state.label("state"))
             .where(Question.created_at >= bounds[0], Question.created_at < bounds[-1]).subquery())
    counts = {(week, QuestionState(state).value): count for week, state, count in session.execute(
        select(spans.c.week, spans.c.state, func.count()).group_by(spans.c.week, spans.c.state))}
    answered = session.scalar(select(func.count()).select_from(Question).where(
        Question.state == QuestionState.ANSWERED, Question.answered_at >= bounds[0],
        Question.answered_at < bounds[-1])) or 0
    waiting = session.scalar(select(func.count()).select_from(Question).where(
        Question.state == QuestionState.QUEUED)) or 0
    written = _breakdown([w.label for w in weeks], QUESTION_SERIES, counts, [w.long_label for w in weeks])
    return Questions(written, answered, waiting)


# --- the whole page ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dashboard:
    now: datetime
    weeks: list[Week]
    reports: Breakdown
    open_cases: Breakdown
    first_review: FirstReview
    backlog: Backlog
    call_backs: Breakdown
    questions: Questions


def dashboard(session: Session, now: datetime, week_count: int) -> Dashboard:
    weeks = weeks_up_to(now, week_count)
    return Dashboard(
        now=now, weeks=weeks,
        reports=reports_per_week(session, weeks),
        open_cases=open_cases_by_age(session, now),
        first_review=first_review(session, weeks),
        backlog=transcription_backlog(session),
        call_backs=call_backs_per_week(session, weeks),
        questions=questions(session, weeks),
    )
