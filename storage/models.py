"""The hotline's tables. Nothing here holds a caller's number or a word of a report in the clear:
those live only inside sealed blobs (see storage.crypto)."""
from __future__ import annotations

import enum
import secrets
from datetime import datetime, timezone

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# Cases, calls, takes, sealed items and jobs get random ids, not a sequence: ids in insertion order would
# interleave anonymous cases with named ones, whose times are precise (storage/anonymity.py). 53 bits, so
# an id is exact in any JSON or JavaScript number; a clash is as likely as guessing one in 10^15.
ROW_ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite's INTEGER is 64-bit, and the rowid


def random_id() -> int:
    return secrets.randbelow(2**53 - 1) + 1


def _random_id_column():
    return mapped_column(ROW_ID, primary_key=True, autoincrement=False, default=random_id)


class UTCDateTime(TypeDecorator):
    """Timestamps stored and read back as aware UTC on every database (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


def enum_column(enum_class: type[enum.Enum], length: int = 32) -> Enum:
    """A state stored as its readable value (a VARCHAR, no native type), read back as the enum."""
    return Enum(enum_class, native_enum=False, length=length, create_constraint=False,
                values_callable=lambda members: [member.value for member in members], validate_strings=True)


# --- the line's and the workers' states and kinds ----------------------------------------------------
# StrEnums (str and Enum): `job.state == "done"` still holds, and each prints as its value, as the plain
# strings these columns held before did (`jobs status`, `cases`, log lines). Stored as that value in the
# same VARCHAR (enum_column), so no migration.

class CallStatus(enum.StrEnum):
    """Twilio's CallStatus values (ivr/events.py allow-lists them from its webhooks)."""

    QUEUED = "queued"
    INITIATED = "initiated"
    RINGING = "ringing"
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    BUSY = "busy"
    FAILED = "failed"
    NO_ANSWER = "no-answer"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self not in (CallStatus.QUEUED, CallStatus.INITIATED, CallStatus.RINGING, CallStatus.IN_PROGRESS)


class CallPurpose(enum.StrEnum):
    REPORT = "report"  # a new report
    ADD = "add"  # adding to an earlier report, by reference and PIN


class TakeDecision(enum.StrEnum):
    KEEP = "keep"
    DISCARD = "discard"  # the caller chose to record again: the take is removed everywhere


class TwilioRecordingStatus(enum.StrEnum):
    """What Twilio said of a take: pending until its recording status callback."""

    PENDING = "pending"
    COMPLETED = "completed"
    ABSENT = "absent"
    FAILED = "failed"


class TranscriptionStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class JobKind(enum.StrEnum):
    STORE_RECORDING = "store-recording"
    DISCARD_RECORDING = "discard-recording"
    DELETE_CALL = "delete-call"  # Twilio's record of a call, once it is final (jobs/calls.py)


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # every attempt used: waits for an operator (`flask --app app jobs retry`)


# --- the console's ---------------------------------------------------------------------------------

class CaseStatus(str, enum.Enum):
    NEW = "new"
    IN_REVIEW = "in-review"
    REFERRED = "referred"
    NO_FURTHER_ACTION = "no-further-action"
    CLOSED = "closed"

    @property
    def label(self) -> str:
        return {"new": "New", "in-review": "In review", "referred": "Referred",
                "no-further-action": "No further action", "closed": "Closed"}[self.value]


class Role(str, enum.Enum):
    HANDLER = "handler"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return {"handler": 1, "supervisor": 2, "admin": 3}[self.value]

    def at_least(self, other: "Role") -> bool:
        return self.rank >= other.rank


class SessionStage(str, enum.Enum):
    VISITOR = "visitor"  # not signed in (holds only a CSRF token)
    PASSWORD_OK = "password-ok"  # password checked, second factor still to come
    SIGNED_IN = "signed-in"


class SessionEnd(str, enum.Enum):
    SIGNED_OUT = "signed-out"
    IDLE = "idle"
    TOO_LONG = "too-long"
    ENDED_BY_ADMIN = "ended-by-admin"
    ACCOUNT_DISABLED = "account-disabled"
    PASSWORD_CHANGED = "password-changed"


class CaseEventKind(str, enum.Enum):
    STATUS = "status"
    ASSIGNMENT = "assignment"
    URGENT = "urgent"
    NOTE = "note"
    CORRECTION = "correction"
    LEGAL_HOLD = "legal-hold"  # new_value "on" or "off"; the reason is a sealed item (storage/retention.py)


class AuditAction(str, enum.Enum):
    SIGN_IN = "sign-in"
    SIGN_IN_FAILED = "sign-in-failed"
    SECOND_FACTOR_FAILED = "second-factor-failed"
    ACCOUNT_LOCKED = "account-locked"
    SIGN_OUT = "sign-out"
    SESSION_EXPIRED = "session-expired"
    KEY_UNWRAPPED = "key-unwrapped"
    SECOND_FACTOR_ADDED = "second-factor-added"
    SECOND_FACTOR_REMOVED = "second-factor-removed"
    SECOND_FACTOR_RESET = "second-factor-reset"
    PASSWORD_CHANGED = "password-changed"
    ACCOUNT_CREATED = "account-created"
    ACCOUNT_INVITED = "account-invited"
    ACCOUNT_ENROLLED = "account-enrolled"
    ACCOUNT_DISABLED = "account-disabled"
    ACCOUNT_ENABLED = "account-enabled"
    ROLE_CHANGED = "role-changed"
    SESSIONS_ENDED = "sessions-ended"
    INBOX_VIEWED = "inbox-viewed"
    SEARCHED = "searched"
    CASE_VIEWED = "case-viewed"
    AUDIO_PLAYED = "audio-played"
    TRANSCRIPT_VIEWED = "transcript-viewed"
    TRANSCRIPT_CORRECTED = "transcript-corrected"
    NOTE_ADDED = "note-added"
    STATUS_CHANGED = "status-changed"
    ASSIGNMENT_CHANGED = "assignment-changed"
    URGENT_CHANGED = "urgent-changed"
    CONTACT_REVEALED = "contact-revealed"
    AUDIT_VIEWED = "audit-viewed"
    CASE_DECRYPTED = "case-decrypted"  # an operator's `decrypt` command
    REFERENCE_UNLOCKED = "reference-unlocked"  # call-backs unlocked after failed PINs (console or operator)
    QUESTION_WRITTEN = "question-written"
    QUESTION_WITHDRAWN = "question-withdrawn"
    QUESTION_HEARD = "question-heard"  # by the line, on a call-back that gave the reference and PIN
    QUESTION_ANSWERED = "question-answered"
    REFERRAL_EXPORTED = "referral-exported"
    FORCE_REGISTERED = "force-registered"
    FORCE_REMOVED = "force-removed"
    DASHBOARD_VIEWED = "dashboard-viewed"
    # Retention (storage/retention.py, storage/keystore.py): a purged case leaves only its CASE_PURGED entry.
    RETENTION_VIEWED = "retention-viewed"
    LEGAL_HOLD_PLACED = "legal-hold-placed"
    LEGAL_HOLD_LIFTED = "legal-hold-lifted"
    CASE_PURGED = "case-purged"
    PERIOD_KEY_DESTROYED = "period-key-destroyed"
    PERIOD_RESEALED = "period-resealed"  # a case's items moved from one period key to a later one (console/reseal.py)
    HOTLINE_KEY_ROTATED = "hotline-key-rotated"
    HOTLINE_KEY_RETIRED = "hotline-key-retired"
    ACCOUNT_KEY_UPGRADED = "account-key-upgraded"  # an account's key copy moved to the new hotline key


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Case(Base):
    __tablename__ = "cases"
    # The inbox always sorts urgent cases first, then by when they came in: one index serves both.
    __table_args__ = (Index("ix_cases_urgent_created_at", "urgent", "created_at"),)

    id: Mapped[int] = _random_id_column()
    reference: Mapped[str] = mapped_column(String(8), unique=True)
    anonymous: Mapped[bool] = mapped_column(Boolean)
    category: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[CaseStatus] = mapped_column(enum_column(CaseStatus, 24), default=CaseStatus.NEW, index=True)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    # Digits in the case's PIN (storage/references.py): 6 for cases opened from migration 0004 on; cases
    # opened before it keep the 4-digit PIN they were read (the server default fills them in).
    pin_length: Mapped[int] = mapped_column(Integer, default=6, server_default="4")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # A legal hold suspends retention (storage/retention.py): set while held. After it is lifted the case
    # is not purged before hold_lifted_at plus HOTLINE_RETAIN_AFTER_HOLD_DAYS, however overdue it was.
    legal_hold_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hold_lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The period whose key its items are sealed under (storage/cases.py Sealer): None, the month (UTC) it
    # was opened in; a later month once its items were re-sealed under that month's key (console/reseal.py),
    # so that the key of the month it was opened in can be destroyed while the case is still kept (a month's
    # key otherwise goes only with its last case: storage/retention.py period_in_use).
    key_period: Mapped[str | None] = mapped_column(String(7), index=True)

    recordings: Mapped[list["Recording"]] = relationship(
        back_populates="case", order_by=lambda: TAKE_ORDER)
    items: Mapped[list["SealedItem"]] = relationship(
        back_populates="case", order_by=lambda: (SealedItem.created_at, SealedItem.id))


class Call(Base):
    """One phone call's progress through the menu; holds nothing that identifies the caller. Its CallSid
    is kept only until Twilio's record of the call is deleted (jobs/calls.py), then erased with every
    RecordingSid of the call."""

    __tablename__ = "calls"

    id: Mapped[int] = _random_id_column()
    call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    case_id: Mapped[int | None] = mapped_column(ROW_ID, ForeignKey("cases.id"))
    purpose: Mapped[CallPurpose | None] = mapped_column(enum_column(CallPurpose, 16))
    pending_reference: Mapped[str | None] = mapped_column(String(8))
    failed_unlocks: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[CallStatus] = mapped_column(enum_column(CallStatus, 16), default=CallStatus.IN_PROGRESS)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Twilio's record of the call (the caller's number in it) is deleted: no Twilio id of the call is kept.
    deleted_at_twilio: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # When the caller gave the case's reference and PIN on this call: the line opens a handler's question
    # only on such a call, while it lasts (storage/questions.py). The question being put to them now.
    unlocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    question_id: Mapped[int | None] = mapped_column(ROW_ID, ForeignKey("questions.id"))

    case: Mapped[Case | None] = relationship()


class Recording(Base):
    """One take of a spoken report, keyed by Twilio's RecordingSid so retried callbacks land once. The
    SIDs (and the URL, which holds one) are erased with the call's, once its record at Twilio is deleted."""

    __tablename__ = "recordings"

    id: Mapped[int] = _random_id_column()
    recording_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    call_sid: Mapped[str | None] = mapped_column(String(64))
    call_id: Mapped[int | None] = mapped_column(ROW_ID, ForeignKey("calls.id"), index=True)
    case_id: Mapped[int] = mapped_column(ROW_ID, ForeignKey("cases.id"), index=True)
    # Its place among the case's takes (1, 2, ...): takes are ordered by this, not by id or by a time that
    # may be rounded to the hour.
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Kept unless the caller chose to record again; a discarded take is removed everywhere.
    decision: Mapped[TakeDecision] = mapped_column(enum_column(TakeDecision, 16), default=TakeDecision.KEEP)
    # What Twilio said of it: pending until the status callback, then completed, absent or failed.
    twilio_status: Mapped[TwilioRecordingStatus] = mapped_column(
        enum_column(TwilioRecordingStatus, 16), default=TwilioRecordingStatus.PENDING)
    recording_url: Mapped[str | None] = mapped_column(String(512))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    audio_item_id: Mapped[int | None] = mapped_column(ROW_ID, ForeignKey("sealed_items.id"))
    transcript_item_id: Mapped[int | None] = mapped_column(ROW_ID, ForeignKey("sealed_items.id"))
    transcription_status: Mapped[TranscriptionStatus] = mapped_column(
        enum_column(TranscriptionStatus, 16), default=TranscriptionStatus.PENDING)
    transcription_error: Mapped[str | None] = mapped_column(Text)
    transcription_attempts: Mapped[int] = mapped_column(Integer, default=0)
    deleted_at_twilio: Mapped[bool] = mapped_column(Boolean, default=False)
    # The handler's question this take answers (storage/questions.py), if it is an answer.
    question_id: Mapped[int | None] = mapped_column(ROW_ID, ForeignKey("questions.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    case: Mapped[Case] = relationship(back_populates="recordings")
    audio_item: Mapped["SealedItem | None"] = relationship(foreign_keys=[audio_item_id])
    transcript_item: Mapped["SealedItem | None"] = relationship(foreign_keys=[transcript_item_id])


# The order of a case's takes, as they came in: by position (ids are random, and an anonymous take's time
# is rounded to the hour); the time and id only break ties for rows made without one (position 0).
TAKE_ORDER = (Recording.position, Recording.created_at, Recording.id)


class SealedItem(Base):
    """Metadata for one sealed blob; the bytes live in the blob store under blob_key."""

    __tablename__ = "sealed_items"

    id: Mapped[int] = _random_id_column()
    case_id: Mapped[int] = mapped_column(ROW_ID, ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # "recording" | "transcript" | "contact"
    blob_key: Mapped[str] = mapped_column(String(128), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    # Readable facts about the item that carry no caller data (model name, timings, confirmation).
    note: Mapped[str | None] = mapped_column(Text)
    # The period key it is sealed to (a seal v3, storage/keystore.py), the calendar month of its case's
    # creation ("2026-12"); None: sealed straight to the hotline key (v1 and v2, before migration 0008).
    key_period: Mapped[str | None] = mapped_column(String(7), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    case: Mapped[Case] = relationship(back_populates="items")


class BlobRow(Base):
    """Sealed bytes kept in the database, so they commit with their case and every machine sees them."""

    __tablename__ = "sealed_blobs"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ReferenceLock(Base):
    """Failed unlock attempts against one entered reference (whether or not such a case exists), since a
    person last unlocked it. Counted with one atomic upsert per attempt (storage/cases.py); at 10 the
    reference stays locked until a handler or operator unlocks it."""

    __tablename__ = "reference_locks"

    reference: Mapped[str] = mapped_column(String(8), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)


class ReferenceFailureHour(Base):
    """How many of a reference's failed attempts fell in each hour, for the case page. The hour only:
    a precise time could be matched against the phone network's record of who called."""

    __tablename__ = "reference_failure_hours"

    reference: Mapped[str] = mapped_column(String(8), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)


class UnlockFailureHour(Base):
    """Failed unlock attempts across all references, per hour: what the guessing alert counts."""

    __tablename__ = "unlock_failure_hours"

    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)


class Job(Base):
    """Durable work for the workers; the row, not the queue, is the truth, so a dead worker loses nothing.
    A job is about one take (recording_id) or one call (call_id), never both."""

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("kind", "recording_id"),
        UniqueConstraint("kind", "call_id", name="uq_jobs_kind_call_id"),
        CheckConstraint("(recording_id IS NULL) <> (call_id IS NULL)", name="one_subject"),
    )

    id: Mapped[int] = _random_id_column()
    kind: Mapped[JobKind] = mapped_column(enum_column(JobKind, 32))
    recording_id: Mapped[int | None] = mapped_column(ROW_ID, ForeignKey("recordings.id"), index=True)
    call_id: Mapped[int | None] = mapped_column(ROW_ID, ForeignKey("calls.id"), index=True)
    state: Mapped[JobState] = mapped_column(enum_column(JobState, 16), default=JobState.QUEUED, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Who holds the lease (a fresh token per claim, jobs/owners.py): only the holder may renew, commit or finish it.
    owner: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


# --- the console's tables: accounts, sessions, the work on cases, the audit trail ---------------------

class User(Base):
    """A console account. It holds its own copy of the hotline private key, wrapped under a key derived
    from its password (console/keys.py); a disabled account's copy is deleted."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    role: Mapped[Role] = mapped_column(enum_column(Role, 16))
    password_hash: Mapped[str | None] = mapped_column(Text)  # argon2id; None until enrolled
    wrapped_key: Mapped[str | None] = mapped_column(Text)
    # A one-time enrolment link: only the token's hash is kept; the key copy is wrapped under the token.
    invite_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    invite_wrapped_key: Mapped[str | None] = mapped_column(Text)
    invite_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # TOTP secret, encrypted under the console's own secret key; the last accepted time step is kept so a
    # code already used is refused.
    totp_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    failed_sign_ins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    credentials: Mapped[list["WebAuthnCredential"]] = relationship(
        back_populates="user", order_by="WebAuthnCredential.id", cascade="all, delete-orphan"
    )

    @property
    def is_enrolled(self) -> bool:
        return self.password_hash is not None

    @property
    def has_second_factor(self) -> bool:
        return self.totp_secret_sealed is not None or bool(self.credentials)


class WebAuthnCredential(Base):
    __tablename__ = "webauthn_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(Integer, default=0)
    label: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="credentials")


class ConsoleSession(Base):
    """A browser's session, kept server-side so several console processes share it. The id is a hash
    of the cookie's token; the private key copy is sealed under a secret derived from that token, which
    only the cookie holds, so this row alone opens nothing. Ended sessions keep no key."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    stage: Mapped[SessionStage] = mapped_column(enum_column(SessionStage, 16), default=SessionStage.VISITOR)
    data: Mapped[str] = mapped_column(Text, default="{}")  # CSRF token, WebAuthn challenge: no case data
    sealed_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    signed_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    end_reason: Mapped[SessionEnd | None] = mapped_column(enum_column(SessionEnd, 24))

    user: Mapped[User | None] = relationship()


class CaseEvent(Base):
    """Something a handler did to a case, for its timeline. A note's text (or a closing reason) is a
    sealed item; the values here are statuses and user ids only."""

    __tablename__ = "case_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ROW_ID, ForeignKey("cases.id"), index=True)
    kind: Mapped[CaseEventKind] = mapped_column(enum_column(CaseEventKind, 16))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    old_value: Mapped[str | None] = mapped_column(String(32))
    new_value: Mapped[str | None] = mapped_column(String(32))
    item_id: Mapped[int | None] = mapped_column(ROW_ID, ForeignKey("sealed_items.id"))
    recording_id: Mapped[int | None] = mapped_column(ROW_ID, ForeignKey("recordings.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    actor: Mapped[User | None] = relationship()
    item: Mapped[SealedItem | None] = relationship()


class TranscriptVersion(Base):
    """A handler's corrected transcript of one take: version 2 and on (version 1 is the machine's,
    which is never changed). Each is a whole sealed transcript in the same JSON form."""

    __tablename__ = "transcript_versions"
    __table_args__ = (UniqueConstraint("recording_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ROW_ID, ForeignKey("recordings.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    item_id: Mapped[int] = mapped_column(ROW_ID, ForeignKey("sealed_items.id"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    author: Mapped[User | None] = relationship()
    item: Mapped[SealedItem] = relationship()


class CaseView(Base):
    """When a handler last opened a case, for "new since you last looked"."""

    __tablename__ = "case_views"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    case_id: Mapped[int] = mapped_column(ROW_ID, ForeignKey("cases.id"), primary_key=True)
    last_viewed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEntry(Base):
    """One line of the append-only audit trail. Each entry's hash covers its fields and the hash of the
    entry before, so an edited, deleted or reordered entry breaks the chain. No report content here."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)  # = the chain's sequence number
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor: Mapped[str] = mapped_column(String(64))  # the username then, or "operator"/"system"
    action: Mapped[AuditAction] = mapped_column(enum_column(AuditAction, 32))
    case_reference: Mapped[str | None] = mapped_column(String(8), index=True)
    target_user_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """A single row: the newest entry's sequence number and hash. Updating it first serialises
    appends on every database (a row lock on PostgreSQL, the write lock on SQLite)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))


# --- questions to the caller (issue 9): Question and the case's question key live below -------------

class QuestionState(enum.StrEnum):
    QUEUED = "queued"  # written, not yet heard: a handler may withdraw it
    HEARD = "heard"  # read to the caller on a call-back; asked again on the next until answered
    ANSWERED = "answered"
    WITHDRAWN = "withdrawn"


class QuestionKey(Base):
    """A case's question key pair (X25519). The private part is wrapped under a key derived (HKDF) from
    the PIN key, the reference and the case's PIN: the line unwraps it only on a call that gave the
    reference and PIN, and a copy of the database without the PIN key opens none (storage/questions.py)."""

    __tablename__ = "question_keys"

    case_id: Mapped[int] = mapped_column(ROW_ID, ForeignKey("cases.id"), primary_key=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # raw, 32 bytes
    wrapped_private_key: Mapped[bytes] = mapped_column(LargeBinary)  # salt | nonce | AES-GCM of the raw key
    kdf: Mapped[str] = mapped_column(String(64))  # names the derivation, so a later one still opens older keys
    # No time of its own: it is made as the case is opened, so its time would be the call's, to the second.


class Question(Base):
    """A handler's question to the caller of a case, asked on their next call-back. Sealed twice: to the
    case's question key (line_sealed, for the line) and, as a sealed item for handlers, to the case's
    period key, which the hotline key opens (item; seal v3, storage/keystore.py)."""

    __tablename__ = "questions"
    __table_args__ = (UniqueConstraint("case_id", "position"),)

    id: Mapped[int] = _random_id_column()
    case_id: Mapped[int] = mapped_column(ROW_ID, ForeignKey("cases.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # 1, 2, ... within the case: the order they are asked in
    state: Mapped[QuestionState] = mapped_column(enum_column(QuestionState, 16), default=QuestionState.QUEUED, index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    line_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    item_id: Mapped[int] = mapped_column(ROW_ID, ForeignKey("sealed_items.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    heard_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # to the hour on an anonymous case
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # likewise
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    case: Mapped[Case] = relationship()
    author: Mapped[User | None] = relationship(foreign_keys=[author_id])
    item: Mapped[SealedItem] = relationship()


class PendingAuditEntry(Base):
    """An audit entry the line owes for an anonymous case (a caller heard or answered a question), held
    back until its hour is over: appended at once, its place in the chain, between the console's entries
    and their precise times, would tell the minute of the call. storage/audit.py chains it with the
    first entry appended after that hour."""

    __tablename__ = "pending_audit_entries"

    # In the order written, so a call's "heard" is chained before its "answered". A sequence orders these
    # held-back entries only among themselves (all to the hour), never among the console's precise ones.
    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)  # to the hour
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[AuditAction] = mapped_column(enum_column(AuditAction, 32))
    case_reference: Mapped[str | None] = mapped_column(String(8))
    detail: Mapped[str] = mapped_column(Text, default="{}")



# --- referrals to professional standards (issue 9): Force and Referral live below -----------------

class Force(Base):
    """A police force's professional standards department that referrals go to, registered by an admin,
    with the age (age-encryption.org/v1) X25519 recipient its packages are encrypted to, if it gave one.
    Removing a force keeps its row (removed_at), so past referrals still name who received them."""

    __tablename__ = "forces"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    age_recipient: Mapped[str | None] = mapped_column(String(128))  # "age1...": a public key, nothing secret
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Referral(Base):
    """One package sent to a force: who, when, and the SHA-256 of exactly the bytes sent (the encrypted
    file when encrypted), so the force can check what they received. No content of the package here."""

    __tablename__ = "referrals"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ROW_ID, ForeignKey("cases.id"), index=True)
    force_id: Mapped[int] = mapped_column(ForeignKey("forces.id"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    with_audio: Mapped[bool] = mapped_column(Boolean, default=False)
    disguised: Mapped[bool] = mapped_column(Boolean, default=False)
    encrypted: Mapped[bool] = mapped_column(Boolean, default=False)
    redactions: Mapped[int] = mapped_column(Integer, default=0)  # how many spans read "[redacted]"

    force: Mapped[Force] = relationship()
    actor: Mapped[User | None] = relationship()
