"""No stored time of an anonymous call finer than the hour (or the day: HOTLINE_ANONYMOUS_TIME), and no
order of ids that gives the time away.

The phone network keeps who called the 0800 number at which minute; a precise time of an anonymous case
is a link to that record. So, on the line's side (webhooks, workers, the line's commands):

- **Times.** Every session of the line rounds down, at each flush (`keep_times_coarse`), the times of
  every call (a call is anonymous until the caller says otherwise, and a call's row needs no precise
  time anyway), of anonymous cases and of their takes and sealed items, and the created/updated times of
  jobs. A queued or running job keeps a precise `run_after` and lease, which it needs; a job that ends
  has every time rounded (jobs/queue.py). Named cases keep their precise times. The console's own
  records (case events, notes, views, the audit trail) are handlers' actions and keep theirs.
- **Ids.** Cases, calls, takes, sealed items and jobs get random ids (storage/models.py `random_id`),
  not a sequence: sequential ids would interleave anonymous cases with named ones, whose times are
  precise, and so bracket each anonymous call between two known minutes. Within one case, takes are
  ordered by their own `position`; among cases received in the same hour, the inbox breaks ties by
  reference, which is random too.

Rounding is down, to the start of the hour, or of the day as the line's clocks (Europe/London) read it.
The console shows an anonymous time as that hour (or that day).
"""
from __future__ import annotations

from datetime import datetime, time, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import delete, event, inspect
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import flag_modified

from storage.models import Call, Case, CaseView, Job, Recording, SealedItem, utcnow

ZONE = ZoneInfo("Europe/London")  # the line's clocks: where a day starts
PRECISIONS = ("hour", "day")


def coarse(moment: datetime, precision: str = "hour") -> datetime:
    """`moment` rounded down to the start of its hour, or of its day in London, as UTC."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    if precision == "hour":  # London is a whole number of hours from UTC: its hours start when UTC's do
        return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    if precision == "day":  # London's midnight is never skipped or repeated (clocks change at 01:00/02:00)
        return datetime.combine(moment.astimezone(ZONE).date(), time(0), tzinfo=ZONE).astimezone(timezone.utc)
    raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")


class _Coarsener:
    """A before_flush hook: what this flush writes about an anonymous call is timed no finer than allowed."""

    def __init__(self, precision: str):
        coarse(utcnow(), precision)  # refuses an unknown precision now, not at the first flush
        self.precision = precision

    def _round(self, obj, name: str, default: datetime | None = None) -> None:
        current = getattr(obj, name)
        value = default if current is None else current
        if value is not None and coarse(value, self.precision) != current:
            setattr(obj, name, coarse(value, self.precision))

    def _touch(self, obj, now: datetime) -> None:
        """updated_at, rounded. Flagged as written even when the hour is the one it holds: else the UPDATE
        would leave it out, and the column's onupdate would put the precise time back."""
        obj.updated_at = coarse(now, self.precision)
        flag_modified(obj, "updated_at")

    @staticmethod
    def _case(session: Session, obj) -> Case | None:
        return obj.case if obj.case is not None else (session.get(Case, obj.case_id) if obj.case_id else None)

    def __call__(self, session: Session, flush_context, instances) -> None:
        now = utcnow()
        with session.no_autoflush:
            for obj in list(session.new) + list(session.dirty):
                new = obj in session.new
                if not new and not session.is_modified(obj):
                    continue
                if isinstance(obj, Call):
                    self._round(obj, "started_at", now)
                    self._round(obj, "ended_at")
                    self._round(obj, "unlocked_at")  # only ever asked whether it is set
                elif isinstance(obj, Job):
                    self._round(obj, "created_at", now)
                    self._touch(obj, now)
                elif isinstance(obj, Case) and obj.anonymous:
                    self._round(obj, "created_at", now)
                    self._touch(obj, now)
                    if not new and inspect(obj).attrs.anonymous.history.has_changes():  # it has just become anonymous
                        for earlier in list(obj.recordings) + list(obj.items):
                            self._round(earlier, "created_at")
                elif isinstance(obj, (Recording, SealedItem)):
                    if not new and not inspect(obj).attrs.created_at.history.has_changes():
                        continue  # rounded when it was written, or when its case became anonymous (above)
                    case = self._case(session, obj)
                    if case is None or not case.anonymous:
                        continue
                    self._round(obj, "created_at", now)
                    if new and isinstance(obj, Recording):
                        # Handlers see a take as new if it arrived after they last looked; a rounded time
                        # cannot tell, so a new take makes the case unseen again for everyone.
                        session.execute(delete(CaseView).where(CaseView.case_id == case.id)
                                        .execution_options(synchronize_session=False))


def keep_times_coarse(sessions: sessionmaker, precision: str) -> None:
    """Install the rounding on every session `sessions` makes (the line's Database.sessions)."""
    event.listen(sessions, "before_flush", _Coarsener(precision))
    sessions.configure(info={**(sessions.kw.get("info") or {}), _PRECISION: precision})


_PRECISION = "hotline.anonymous_time"


def stamp(session: Session, anonymous: bool = True, now: datetime | None = None) -> datetime:
    """The time to write, in a statement that bypasses the flush (the line's webhooks write their busiest
    rows with plain SQL: ivr/desk.py), about an anonymous call's rows: rounded as the hook above rounds
    them (to the hour where the session was not given a precision); a named case's, precise."""
    now = now or utcnow()
    return coarse(now, session.info.get(_PRECISION, "hour")) if anonymous else now
