"""The hotline's tables. Nothing here holds a caller's number or a word of a report in the clear:
those live only inside sealed blobs (see storage.crypto)."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
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

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(8), unique=True)
    anonymous: Mapped[bool] = mapped_column(Boolean)
    category: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="new")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    recordings: Mapped[list["Recording"]] = relationship(back_populates="case", order_by="Recording.id")
    items: Mapped[list["SealedItem"]] = relationship(back_populates="case", order_by="SealedItem.id")


class Call(Base):
    """One phone call's progress through the menu; holds nothing that identifies the caller."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    purpose: Mapped[str | None] = mapped_column(String(16))  # "report" | "add"
    pending_reference: Mapped[str | None] = mapped_column(String(8))
    failed_unlocks: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="in-progress")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    case: Mapped[Case | None] = relationship()


class Recording(Base):
    """One take of a spoken report, keyed by Twilio's RecordingSid so retried callbacks land once."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_sid: Mapped[str] = mapped_column(String(64), unique=True)
    call_sid: Mapped[str] = mapped_column(String(64), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    # "keep" unless the caller chose to record again; a discarded take is removed everywhere.
    decision: Mapped[str] = mapped_column(String(16), default="keep")
    # What Twilio said of it: "pending" until the status callback, then "completed", "absent" or "failed".
    twilio_status: Mapped[str] = mapped_column(String(16), default="pending")
    recording_url: Mapped[str | None] = mapped_column(String(512))
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    audio_item_id: Mapped[int | None] = mapped_column(ForeignKey("sealed_items.id"))
    transcript_item_id: Mapped[int | None] = mapped_column(ForeignKey("sealed_items.id"))
    transcription_status: Mapped[str] = mapped_column(String(16), default="pending")
    transcription_error: Mapped[str | None] = mapped_column(Text)
    transcription_attempts: Mapped[int] = mapped_column(Integer, default=0)
    deleted_at_twilio: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    case: Mapped[Case] = relationship(back_populates="recordings")
    audio_item: Mapped["SealedItem | None"] = relationship(foreign_keys=[audio_item_id])
    transcript_item: Mapped["SealedItem | None"] = relationship(foreign_keys=[transcript_item_id])


class SealedItem(Base):
    """Metadata for one sealed blob; the bytes live in the blob store under blob_key."""

    __tablename__ = "sealed_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))  # "recording" | "transcript" | "contact"
    blob_key: Mapped[str] = mapped_column(String(128), unique=True)
    size: Mapped[int] = mapped_column(Integer)
    # Readable facts about the item that carry no caller data (model name, timings, confirmation).
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    case: Mapped[Case] = relationship(back_populates="items")


class BlobRow(Base):
    """Sealed bytes kept in the database, so they commit with their case and every machine sees them."""

    __tablename__ = "sealed_blobs"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class ReferenceLock(Base):
    """Failed unlock attempts against one entered reference (whether or not such a case exists)."""

    __tablename__ = "reference_locks"

    reference: Mapped[str] = mapped_column(String(8), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Job(Base):
    """Durable work for the workers; the row, not the queue, is the truth, so a dead worker loses nothing."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("kind", "recording_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)  # queued|running|done|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    run_after: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
