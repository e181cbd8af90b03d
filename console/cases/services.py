"""Cases as handlers see them: the inbox, one case's page and timeline, and triage.

Plain Python over a SQLAlchemy session: no Flask here. Functions that change a case also write its
CaseEvent and audit entry, so the view commits the change and its record together, once.

The inbox decrypts nothing: every column it shows is plain metadata (statuses, counts, lengths,
times). Only the case page opens sealed items (notes, reasons), and only with the signed-in handler's
opener passed in.
"""
from __future__ import annotations

import enum
import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case as sql_case, exists, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from console.audit.services import record
from ivr.flow import CATEGORIES
from storage.cases import (
    UNLOCK_ALERT_THRESHOLD,
    UNLOCK_FAILURE_LIMIT,
    Sealer,
    event_owner,
    failures_this_hour,
    lock_state,
    unlock_reference,
)
from storage.crypto import CASE_OWNER, SealError
from storage.blobs import BlobMissing
from storage.models import (
    AuditAction,
    Case,
    CaseEvent,
    CaseEventKind,
    CaseStatus,
    CaseView,
    Recording,
    SealedItem,
    TAKE_ORDER,
    User,
    utcnow,
)

log = logging.getLogger("hotline.console.cases")

# The line is in the UK; times are shown as the handlers' clocks read them.
DISPLAY_ZONE = ZoneInfo("Europe/London")

# Labels for the categories a caller picks on the phone menu (ivr/flow.py CATEGORIES, ivr/prompts.py).
CATEGORY_LABELS = {
    "bribery-corruption": "Bribery or corruption",
    "sexual-misconduct": "Sexual misconduct",
    "domestic-abuse": "Domestic abuse",
    "discrimination": "Discrimination",
    "other": "Something else",
}
assert set(CATEGORY_LABELS) == set(CATEGORIES.values()), "every phone-menu category needs a label"
NO_CATEGORY_LABEL = "Not given"

# The workflow, in the order the inbox sorts "by status".
STATUS_ORDER = (CaseStatus.NEW, CaseStatus.IN_REVIEW, CaseStatus.REFERRED, CaseStatus.NO_FURTHER_ACTION,
                CaseStatus.CLOSED)
TRANSITIONS: dict[CaseStatus, tuple[CaseStatus, ...]] = {
    CaseStatus.NEW: (CaseStatus.IN_REVIEW,),
    CaseStatus.IN_REVIEW: (CaseStatus.REFERRED, CaseStatus.NO_FURTHER_ACTION),
    CaseStatus.REFERRED: (CaseStatus.CLOSED,),
    CaseStatus.NO_FURTHER_ACTION: (CaseStatus.CLOSED,),
    CaseStatus.CLOSED: (CaseStatus.IN_REVIEW,),  # reopening
}
NOTE_MAX_CHARS = 10_000
REASON_MAX_CHARS = 2_000


class CaseActionRefused(Exception):
    """A triage step that cannot be done; the message is safe to show (it quotes no case content)."""


def category_label(category: str | None) -> str:
    return CATEGORY_LABELS.get(category or "", NO_CATEGORY_LABEL if not category else category)


def needs_reason(old: CaseStatus, new: CaseStatus) -> bool:
    """Closing, and reopening a closed case, must say why."""
    return new is CaseStatus.CLOSED or old is CaseStatus.CLOSED


def received_label(at: datetime, anonymous: bool) -> str:
    """When a call came in. For an anonymous caller, only the hour: a precise time could be matched
    against the phone network's record of who called the line at that minute."""
    local = at.astimezone(DISPLAY_ZONE)
    if anonymous:
        start = local.replace(minute=0, second=0, microsecond=0)
        end = start + timedelta(hours=1)
        return f"{start.day} {start:%b %Y}, {start:%H}:00–{end:%H}:00"
    return f"{local.day} {local:%b %Y, %H:%M}"


def moment_label(at: datetime) -> str:
    """A handler's own action (a note, a status change): to the minute."""
    local = at.astimezone(DISPLAY_ZONE)
    return f"{local.day} {local:%b %Y, %H:%M}"


def length_label(seconds: int | None) -> str:
    seconds = seconds or 0
    return f"{seconds // 60}:{seconds % 60:02d}"


# --- the inbox --------------------------------------------------------------------------------------

class Anonymity(str, enum.Enum):
    ANONYMOUS = "anonymous"
    NAMED = "named"


class InboxSort(str, enum.Enum):
    NEWEST = "newest"
    OLDEST = "oldest"
    STATUS = "status"

    @property
    def label(self) -> str:
        return {"newest": "Newest first", "oldest": "Oldest first", "status": "By status"}[self.value]


class AssigneeChoice(str, enum.Enum):
    ME = "me"
    UNASSIGNED = "unassigned"


@dataclass(frozen=True)
class InboxQuery:
    """What the inbox is asked for. Every value is a status, a category, an id or a flag: no report
    content, so it may sit in a URL and in the audit log."""

    status: CaseStatus | None = None
    category: str | None = None
    anonymity: Anonymity | None = None
    assignee: AssigneeChoice | int | None = None
    urgent_only: bool = False
    new_only: bool = False
    sort: InboxSort = InboxSort.NEWEST
    page: int = 1

    def as_detail(self) -> dict:
        """The filters and page, for the audit entry (only what differs from the plain inbox)."""
        detail: dict = {"page": self.page, "sort": self.sort.value}
        if self.status is not None:
            detail["status"] = self.status.value
        if self.category is not None:
            detail["category"] = self.category
        if self.anonymity is not None:
            detail["anonymity"] = self.anonymity.value
        if self.assignee is not None:
            detail["assignee"] = self.assignee.value if isinstance(self.assignee, AssigneeChoice) else self.assignee
        if self.urgent_only:
            detail["urgent_only"] = True
        if self.new_only:
            detail["new_only"] = True
        return detail


@dataclass(frozen=True)
class InboxRow:
    reference: str
    received_label: str
    category_label: str
    anonymous: bool
    takes: int
    total_seconds: int
    transcription_label: str
    status: CaseStatus
    assignee_name: str | None
    urgent: bool
    new_since_last_look: bool

    @property
    def length_label(self) -> str:
        return length_label(self.total_seconds)


@dataclass(frozen=True)
class InboxPage:
    rows: list[InboxRow]
    query: InboxQuery
    page: int
    pages: int
    total: int
    counts: dict[CaseStatus, int]  # under the other filters, so each count is what that status link shows


def _is_new_for(user_id: int):
    """A case is new to this person if they never opened it, or a kept take arrived since they did."""
    newer_take = exists().where(
        Recording.case_id == Case.id, Recording.decision == "keep", Recording.created_at > CaseView.last_viewed_at
    )
    return or_(CaseView.last_viewed_at.is_(None), newer_take)


def _inbox_conditions(query: InboxQuery, user_id: int, *, with_status: bool) -> list:
    conditions = []
    if with_status and query.status is not None:
        conditions.append(Case.status == query.status)
    if query.category is not None:
        conditions.append(Case.category.is_(None) if query.category == "" else Case.category == query.category)
    if query.anonymity is not None:
        conditions.append(Case.anonymous.is_(query.anonymity is Anonymity.ANONYMOUS))
    if query.assignee is AssigneeChoice.ME:
        conditions.append(Case.assignee_id == user_id)
    elif query.assignee is AssigneeChoice.UNASSIGNED:
        conditions.append(Case.assignee_id.is_(None))
    elif isinstance(query.assignee, int):
        conditions.append(Case.assignee_id == query.assignee)
    if query.urgent_only:
        conditions.append(Case.urgent.is_(True))
    if query.new_only:
        conditions.append(_is_new_for(user_id))
    return conditions


def _with_view(statement, user_id: int):
    return statement.outerjoin(CaseView, and_(CaseView.case_id == Case.id, CaseView.user_id == user_id))


def _order(sort: InboxSort) -> list:
    urgent_first = Case.urgent.desc()
    # Anonymous cases' times are rounded to the hour, and ids are random: ties fall to the reference (random
    # too), so the order within an hour says nothing of when each call came (storage/anonymity.py).
    if sort is InboxSort.OLDEST:
        return [urgent_first, Case.created_at.asc(), Case.reference.asc()]
    if sort is InboxSort.STATUS:
        rank = sql_case({status: position for position, status in enumerate(STATUS_ORDER)}, value=Case.status)
        return [urgent_first, rank, Case.created_at.desc(), Case.reference.desc()]
    return [urgent_first, Case.created_at.desc(), Case.reference.desc()]


def transcription_label(done: int, pending: int, failed: int) -> str:
    parts = [f"{count} {word}" for count, word in ((done, "done"), (pending, "pending"), (failed, "failed")) if count]
    return ", ".join(parts) or "no takes"


def inbox(session: Session, user_id: int, query: InboxQuery, page_size: int) -> InboxPage:
    """One page of the inbox in three queries, whatever the number of cases: counts per status, the
    page's cases, and the take aggregates for just those cases."""
    counted = _with_view(select(Case.status, func.count(Case.id)).select_from(Case), user_id)
    counts = {status: 0 for status in STATUS_ORDER}
    for status, count in session.execute(
        counted.where(*_inbox_conditions(query, user_id, with_status=False)).group_by(Case.status)
    ):
        counts[status] = count
    total = counts[query.status] if query.status is not None else sum(counts.values())
    pages = max(1, math.ceil(total / page_size))
    page = min(max(1, query.page), pages)

    listed = _with_view(
        select(Case.id, Case.reference, Case.created_at, Case.category, Case.anonymous, Case.status, Case.urgent,
               User.display_name, _is_new_for(user_id).label("is_new"))
        .select_from(Case).outerjoin(User, User.id == Case.assignee_id),
        user_id,
    )
    listed = (listed.where(*_inbox_conditions(query, user_id, with_status=True))
              .order_by(*_order(query.sort)).limit(page_size).offset((page - 1) * page_size))
    cases = session.execute(listed).all()

    aggregates = {}
    if cases:
        done = func.sum(sql_case((Recording.transcription_status == "done", 1), else_=0))
        failed = func.sum(sql_case((Recording.transcription_status == "failed", 1), else_=0))
        for case_id, takes, seconds, done_count, failed_count in session.execute(
            select(Recording.case_id, func.count(Recording.id), func.coalesce(func.sum(Recording.duration_seconds), 0),
                   done, failed)
            .where(Recording.case_id.in_([row.id for row in cases]), Recording.decision == "keep")
            .group_by(Recording.case_id)
        ):
            aggregates[case_id] = (int(takes), int(seconds), int(done_count), int(failed_count))

    rows = []
    for row in cases:
        takes, seconds, done_count, failed_count = aggregates.get(row.id, (0, 0, 0, 0))
        rows.append(InboxRow(
            reference=row.reference,
            received_label=received_label(row.created_at, row.anonymous),
            category_label=category_label(row.category),
            anonymous=row.anonymous,
            takes=takes,
            total_seconds=seconds,
            transcription_label=transcription_label(done_count, takes - done_count - failed_count, failed_count),
            status=row.status,
            assignee_name=row.display_name,
            urgent=row.urgent,
            new_since_last_look=bool(row.is_new),
        ))
    return InboxPage(rows, query, page, pages, total, counts)


@dataclass(frozen=True)
class Person:
    id: int
    name: str


def active_people(session: Session) -> list[Person]:
    """Accounts a case can be assigned to: enrolled and not disabled."""
    return [Person(user_id, name) for user_id, name in session.execute(
        select(User.id, User.display_name)
        .where(User.disabled_at.is_(None), User.password_hash.is_not(None))
        .order_by(User.display_name, User.id)
    )]


def known_categories(session: Session) -> list[tuple[str, str]]:
    """(value, label) for the category filter: the phone menu's, in menu order."""
    return [(value, CATEGORY_LABELS[value]) for value in CATEGORIES.values()]


# --- one case -----------------------------------------------------------------------------------------

def find_case(session: Session, reference: str, *, for_update: bool = False) -> Case | None:
    if not (isinstance(reference, str) and len(reference) == 8 and reference.isascii() and reference.isdigit()):
        return None
    statement = select(Case).where(Case.reference == reference)
    if for_update:
        statement = statement.with_for_update()
    return session.scalar(statement)


@dataclass(frozen=True)
class TakeView:
    """One kept take, as the player partial (console/templates/console/media/player.html) needs it."""

    id: int  # the recording's id
    number: int  # 1-based, in the order the takes arrived
    duration_seconds: int | None
    transcription_status: str  # "pending" | "done" | "failed"
    is_callback: bool  # left on a later call, after the caller rang back with reference and PIN
    received_label: str

    @property
    def length_label(self) -> str:
        return length_label(self.duration_seconds)


def kept_takes(session: Session, case: Case) -> list[tuple[Recording, TakeView]]:
    recordings = session.scalars(
        select(Recording).where(Recording.case_id == case.id, Recording.decision == "keep").order_by(*TAKE_ORDER)
    ).all()
    first_call = _call_of(recordings[0]) if recordings else None
    return [
        (recording, TakeView(
            id=recording.id, number=number, duration_seconds=recording.duration_seconds,
            transcription_status=recording.transcription_status, is_callback=_call_of(recording) != first_call,
            received_label=received_label(recording.created_at, case.anonymous),
        ))
        for number, recording in enumerate(recordings, start=1)
    ]


def _call_of(recording: Recording):
    """Which call left the take: its call's row (a processed call's CallSid is erased, storage/anonymity.py),
    else, for a take made without one, the CallSid."""
    return recording.call_id if recording.call_id is not None else recording.call_sid


class TimelineKind(str, enum.Enum):
    TAKE = "take"
    NOTE = "note"
    STATUS = "status"
    ASSIGNMENT = "assignment"
    URGENT = "urgent"
    CORRECTION = "correction"


@dataclass(frozen=True)
class TimelineEntry:
    kind: TimelineKind
    at: datetime
    when_label: str
    actor: str | None = None
    take: TakeView | None = None
    text: str | None = None  # a note's text or a status change's reason, opened for this page only
    unreadable: bool = False  # the sealed text would not open (damaged): shown as such, not a 500
    old_label: str | None = None
    new_label: str | None = None


@dataclass(frozen=True)
class CaseSummary:
    id: int
    reference: str
    received_label: str
    category_label: str
    anonymous: bool
    status: CaseStatus
    urgent: bool
    assignee_id: int | None
    assignee_name: str | None
    takes: int
    total_seconds: int
    next_statuses: tuple[CaseStatus, ...]
    has_contact: bool

    @property
    def length_label(self) -> str:
        return length_label(self.total_seconds)

    def reason_needed_for(self, status: CaseStatus) -> bool:
        return needs_reason(self.status, status)


@dataclass(frozen=True)
class CasePage:
    summary: CaseSummary
    takes: list[TakeView]
    timeline: list[TimelineEntry]
    people: list[Person]
    call_backs: "CallBackLock | None" = None


def _contact_items(case: Case) -> list[SealedItem]:
    items = [item for item in case.items if item.kind == "contact"]
    confirmed = [item for item in items if item.note and json.loads(item.note).get("confirmed")]
    return confirmed or items


def _open_text(session: Session, opener, item: SealedItem | None, owner: str) -> tuple[str | None, bool]:
    if item is None:
        return None, False
    try:
        return opener.open(session, item, owner).decode("utf-8"), False
    except (SealError, BlobMissing, UnicodeDecodeError) as error:
        log.warning("sealed item %s (%s) did not open: %s", item.id, item.kind, type(error).__name__)
        return None, True


def case_page(session: Session, opener, case: Case) -> CasePage:
    """Everything on the case in the order it happened. Opens the notes and reasons it shows."""
    takes = kept_takes(session, case)
    names = {user_id: name for user_id, name in session.execute(select(User.id, User.display_name))}
    take_by_recording = {recording.id: view for recording, view in takes}

    timeline = [
        TimelineEntry(TimelineKind.TAKE, recording.created_at, view.received_label, take=view)
        for recording, view in takes
    ]
    events = session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.created_at, CaseEvent.id)
    ).all()
    for event in events:
        actor = names.get(event.actor_id) if event.actor_id else None
        at, when = event.created_at, moment_label(event.created_at)
        if event.kind is CaseEventKind.NOTE:
            text, unreadable = _open_text(session, opener, event.item, event_owner(event.id))
            timeline.append(TimelineEntry(TimelineKind.NOTE, at, when, actor, text=text, unreadable=unreadable))
        elif event.kind is CaseEventKind.STATUS:
            text, unreadable = _open_text(session, opener, event.item, event_owner(event.id))
            timeline.append(TimelineEntry(TimelineKind.STATUS, at, when, actor, text=text, unreadable=unreadable,
                                          old_label=_status_label(event.old_value),
                                          new_label=_status_label(event.new_value)))
        elif event.kind is CaseEventKind.ASSIGNMENT:
            timeline.append(TimelineEntry(TimelineKind.ASSIGNMENT, at, when, actor,
                                          old_label=_person_label(names, event.old_value),
                                          new_label=_person_label(names, event.new_value)))
        elif event.kind is CaseEventKind.URGENT:
            timeline.append(TimelineEntry(TimelineKind.URGENT, at, when, actor,
                                          new_label="urgent" if event.new_value == "true" else "not urgent"))
        elif event.kind is CaseEventKind.CORRECTION:
            take = take_by_recording.get(event.recording_id)
            timeline.append(TimelineEntry(TimelineKind.CORRECTION, at, when, actor, take=take,
                                          new_label=event.new_value))
    # Python's sort is stable: events keep their id order within the same instant, takes come first.
    timeline.sort(key=lambda entry: entry.at)

    assignee_name = names.get(case.assignee_id) if case.assignee_id else None
    summary = CaseSummary(
        id=case.id, reference=case.reference, received_label=received_label(case.created_at, case.anonymous),
        category_label=category_label(case.category), anonymous=case.anonymous, status=case.status,
        urgent=case.urgent, assignee_id=case.assignee_id, assignee_name=assignee_name, takes=len(takes),
        total_seconds=sum(view.duration_seconds or 0 for _, view in takes),
        next_statuses=TRANSITIONS[case.status],
        has_contact=not case.anonymous and bool(_contact_items(case)),
    )
    return CasePage(summary, [view for _, view in takes], timeline, active_people(session),
                    call_back_lock(session, case))


def _status_label(value: str | None) -> str | None:
    try:
        return CaseStatus(value).label if value else None
    except ValueError:
        return value


def _person_label(names: dict[int, str], value: str | None) -> str:
    if not value:
        return "Nobody"
    try:
        return names.get(int(value), "a removed account")
    except ValueError:
        return "an unknown account"


def mark_viewed(session: Session, user_id: int, case_id: int) -> None:
    """Remember that this person has now seen everything on the case."""
    now = utcnow()
    view = session.get(CaseView, (user_id, case_id))
    if view is not None:
        view.last_viewed_at = now
        return
    try:
        with session.begin_nested():  # the same person in two tabs at once: the second insert loses
            session.add(CaseView(user_id=user_id, case_id=case_id, last_viewed_at=now))
    except IntegrityError:
        session.get(CaseView, (user_id, case_id), populate_existing=True).last_viewed_at = now


def record_case_viewed(session: Session, actor: User, case: Case) -> None:
    mark_viewed(session, actor.id, case.id)
    record(session, AuditAction.CASE_VIEWED, actor=actor, case_reference=case.reference)


# --- triage -----------------------------------------------------------------------------------------

def change_status(session: Session, sealer: Sealer, case: Case, actor: User, new_status: CaseStatus,
                  reason: str | None, expected: CaseStatus | None = None) -> CaseEvent:
    old = case.status
    if expected is not None and expected is not old:
        raise CaseActionRefused(f"Someone else changed this case's status to {old.label} meanwhile; "
                                "nothing was changed. Look again and choose.")
    if new_status is old:
        raise CaseActionRefused(f"The case is already {old.label}.")
    if new_status not in TRANSITIONS[old]:
        allowed = " or ".join(status.label for status in TRANSITIONS[old])
        raise CaseActionRefused(f"A case that is {old.label} can only go to {allowed}.")
    if needs_reason(old, new_status) and not reason:
        verb = "close" if new_status is CaseStatus.CLOSED else "reopen"
        raise CaseActionRefused(f"Give a reason to {verb} the case.")
    event = CaseEvent(case_id=case.id, kind=CaseEventKind.STATUS, actor_id=actor.id, old_value=old.value,
                      new_value=new_status.value)
    session.add(event)
    session.flush()  # the event's id first: the reason's seal names it
    if reason:
        event.item_id = sealer.seal_item(session, case, "status-reason", reason.encode(), owner=event_owner(event.id)).id
    case.status = new_status
    record(session, AuditAction.STATUS_CHANGED, actor=actor, case_reference=case.reference,
           detail={"from": old.value, "to": new_status.value})  # the reason's item is on the case event
    session.flush()
    return event


def assign(session: Session, case: Case, actor: User, assignee_id: int | None) -> CaseEvent:
    if assignee_id is not None:
        assignee = session.get(User, assignee_id)
        if assignee is None or assignee.disabled_at is not None or not assignee.is_enrolled:
            raise CaseActionRefused("A case can only be assigned to an active account.")
    if assignee_id == case.assignee_id:
        raise CaseActionRefused("The case is already assigned so.")
    old = case.assignee_id
    event = CaseEvent(case_id=case.id, kind=CaseEventKind.ASSIGNMENT, actor_id=actor.id,
                      old_value=str(old) if old else None, new_value=str(assignee_id) if assignee_id else None)
    session.add(event)
    case.assignee_id = assignee_id
    record(session, AuditAction.ASSIGNMENT_CHANGED, actor=actor, case_reference=case.reference,
           target_user_id=assignee_id, detail={"from": old, "to": assignee_id})
    session.flush()
    return event


def set_urgent(session: Session, case: Case, actor: User, urgent: bool) -> CaseEvent:
    if case.urgent is urgent:
        raise CaseActionRefused("The case is already marked so.")
    event = CaseEvent(case_id=case.id, kind=CaseEventKind.URGENT, actor_id=actor.id,
                      old_value="true" if case.urgent else "false", new_value="true" if urgent else "false")
    session.add(event)
    case.urgent = urgent
    record(session, AuditAction.URGENT_CHANGED, actor=actor, case_reference=case.reference,
           detail={"urgent": urgent})
    session.flush()
    return event


def add_note(session: Session, sealer: Sealer, case: Case, actor: User, text: str) -> CaseEvent:
    """The note's text is sealed at once; the event and the audit entry hold only the item's id."""
    if not 1 <= len(text) <= NOTE_MAX_CHARS:
        raise CaseActionRefused(f"A note is 1 to {NOTE_MAX_CHARS:,} characters.")
    event = CaseEvent(case_id=case.id, kind=CaseEventKind.NOTE, actor_id=actor.id)
    session.add(event)
    session.flush()  # the event's id first: the note's seal names it
    item = sealer.seal_item(session, case, "note", text.encode("utf-8"), owner=event_owner(event.id))
    event.item_id = item.id
    record(session, AuditAction.NOTE_ADDED, actor=actor, case_reference=case.reference, detail={"item": item.id})
    session.flush()
    return event


def reveal_contact(session: Session, sealer: Sealer, opener, case: Case, actor: User, reason: str) -> str:
    """A named caller's number, for one response only. The stated reason is sealed and the reveal
    audited (with the reason item's id, never the number or the reason's words)."""
    if case.anonymous:
        raise CaseActionRefused("This caller chose to stay anonymous: there is no contact number.")
    items = _contact_items(case)
    if not items:
        raise CaseActionRefused("This caller left no contact number.")
    if not reason:
        raise CaseActionRefused("Say why you need the contact number.")
    try:
        number = json.loads(opener.open(session, items[-1], CASE_OWNER))["phone_number"]
    except (SealError, BlobMissing, ValueError, KeyError, TypeError) as error:
        log.warning("contact item %s did not open: %s", items[-1].id, type(error).__name__)
        raise CaseActionRefused("The contact number could not be opened. Tell an admin.") from None
    item = sealer.seal_item(session, case, "reveal-reason", reason.encode("utf-8"))
    record(session, AuditAction.CONTACT_REVEALED, actor=actor, case_reference=case.reference,
           detail={"reason_item": item.id})
    return str(number)


# --- failed PINs: a case's call-back lock, and the alert across all references ------------------------

@dataclass(frozen=True)
class FailedHour:
    label: str  # the hour only, as for an anonymous call: that is all that is kept
    failures: int


@dataclass(frozen=True)
class CallBackLock:
    """Failed PIN attempts on the case's reference since someone last unlocked it."""

    failures: int
    locked: bool
    limit: int
    hours: list[FailedHour]


def call_back_lock(session: Session, case: Case) -> CallBackLock:
    state = lock_state(session, case.reference)
    hours = [FailedHour(received_label(hour, anonymous=True), count) for hour, count in state.hours]
    return CallBackLock(state.failures, state.locked, UNLOCK_FAILURE_LIMIT, hours)


def unlock_call_backs(session: Session, case: Case, actor: User) -> int:
    """Let the caller in again with their reference and PIN: the failed attempts are cleared, and the
    unlock audited with how many there were."""
    failures = unlock_reference(session, case.reference)
    if not failures:
        raise CaseActionRefused("There are no failed PIN attempts on this case to clear.")
    record(session, AuditAction.REFERENCE_UNLOCKED, actor=actor, case_reference=case.reference,
           detail={"failures": failures})
    return failures


@dataclass(frozen=True)
class PinFailureAlert:
    """Failed PIN attempts across all references this clock hour; above the threshold someone may be
    guessing (the line logs an ALERT line once an hour)."""

    failures: int
    threshold: int

    @property
    def raised(self) -> bool:
        return self.failures > self.threshold


def pin_failure_alert(session: Session) -> PinFailureAlert:
    return PinFailureAlert(failures_this_hour(session), UNLOCK_ALERT_THRESHOLD)
