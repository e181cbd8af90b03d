"""The key store: period keys, kept apart from the database so that ordinary backups do not carry them.

Every case's sealed items are sealed (seal v3, storage/crypto.py) to the key pair of its period, the
calendar month it was opened in. The period's public key is here in the clear; its private part is here
sealed to the hotline key. Backups of the main database (or the blob store) hold the sealed items but not
the period keys, so once a period's cases are all purged its key is destroyed here (storage/retention.py)
and the items in every old database backup are unreadable, even with the hotline key and every handler's
password. The cost: the key store is backed up on its own and kept only as long as deletion may lag (its
backups hold destroyed keys until they expire), and losing it loses every v3 item (README, Retention).

A separate database (HOTLINE_KEY_STORE_URL: by default a SQLite file in its own folder under the data
directory; on PostgreSQL a database of its own, dumped on its own schedule). The line and the workers make
a period's key when its first item is sealed; they need only the hotline public key for that, and forget
the private part at once. Opening a period key is console/keys.py's. Its schema has migrations of its
own (storage/keystore_migrations/, version table keystore_version), applied by `flask --app app db upgrade`
with the database's; every process opening the store checks it is at their head (storage/migrate.py).

Also here: a rotated hotline key's successor (console/rotation.py), the new private key sealed to the old
public key, so that each account can take up the new key at its next sign-in.
"""
from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from sqlalchemy import LargeBinary, MetaData, String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from storage.crypto import (
    check_period,
    period_of,
    generate_private_key,
    public_key_fingerprint,
    public_key_from_raw,
    raw_public_bytes,
    wrap_period_private,
)
from storage.db import Database, sqlite_file
from storage.files import private_directory
from storage.migrate import KEY_STORE, check_at_start
from storage.models import UTCDateTime, utcnow


log = logging.getLogger("hotline.keystore")


class KeyStoreBase(DeclarativeBase):
    metadata = MetaData(naming_convention={"pk": "pk_%(table_name)s"})


class PeriodKey(KeyStoreBase):
    __tablename__ = "period_keys"

    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_private: Mapped[bytes] = mapped_column(LargeBinary)  # wrap_period_private(): to the hotline key
    hotline_key: Mapped[str] = mapped_column(String(16))  # the fingerprint of the hotline key it is sealed to
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KeySuccessor(KeyStoreBase):
    """A rotated hotline key's successor. new_public tells the line which key new period keys go to
    (before every machine has the new hotline.pub); sealed_new_private (the new private key sealed to the
    old public key, as a period key is) lets an account holding the old key take up the new one at its
    next sign-in. Retiring the old key erases sealed_new_private."""

    __tablename__ = "hotline_key_successors"

    old_key: Mapped[str] = mapped_column(String(16), primary_key=True)
    new_key: Mapped[str] = mapped_column(String(16))
    new_public: Mapped[bytes] = mapped_column(LargeBinary)
    sealed_new_private: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


SUCCESSOR_CHAIN_LIMIT = 16


class KeyStore:
    """The store, opened for use. Its tables are made and changed only by its migrations
    (storage/keystore_migrations/, run by `flask --app app db upgrade`), never here: opening it checks
    that it is at their head and refuses (SchemaMismatch) if not, as the database is checked."""

    def __init__(self, url: str, *, check: bool = True):
        if check:
            # By its URL, before anything is opened: a store that is not there is refused without being made
            # (processes opening a new SQLite store at once would otherwise make its file together, and one
            # could fail on SQLite's "database is locked" switching it to WAL, not on what to run).
            check_at_start(url, KEY_STORE)
        self.db = Database(url)
        self._public: dict[str, X25519PublicKey] = {}
        self._lock = threading.Lock()

    def check_schema(self) -> None:
        """Raise SchemaMismatch unless the store is at its migrations' head (one look at its version
        table). A key store server that cannot be reached now is logged and let through, as warm() does."""
        check_at_start(self.db.engine, KEY_STORE)

    def session(self):
        return self.db.session()

    def dispose(self) -> None:
        self.db.dispose()

    # --- the line's and the workers' side: public keys only ---------------------------------------------

    def public_key(self, period: str, hotline_public: X25519PublicKey) -> X25519PublicKey:
        """The period's public key, made now (sealed to the newest hotline key) if it has none yet. Made in
        this store's own transaction, committed at once: a rolled-back report leaves only an unused key."""
        check_period(period)
        cached = self._public.get(period)
        if cached is not None:
            return cached
        with self._lock, self.db.session() as session:
            row = session.get(PeriodKey, period)
            if row is None:
                target = current_hotline_key(session, hotline_public)
                private = generate_private_key()
                row = PeriodKey(period=period, public_key=raw_public_bytes(private.public_key()),
                                sealed_private=wrap_period_private(target, period, private),
                                hotline_key=public_key_fingerprint(target))
                del private  # the line never keeps a period's private key
                try:
                    session.add(row)
                    session.commit()
                except IntegrityError:  # another process made it first: theirs is the key
                    session.rollback()
                    row = session.get(PeriodKey, period)
            key = public_key_from_raw(row.public_key)
        self._public[period] = key
        return key

    def warm(self, hotline_public: X25519PublicKey, now: datetime | None = None) -> None:
        """Have this month's and next month's public keys at hand (made if need be), so that a webhook
        sealing a caller's contact number does not depend on reaching the key store. A store unreachable
        at start is logged, not fatal: the first seal of the month then reaches it, or the caller hears
        the line's apology."""
        now = now or utcnow()
        following = (now.replace(day=1) + timedelta(days=32)).replace(day=1)
        try:
            for moment in (now, following):
                self.public_key(period_of(moment), hotline_public)
        except Exception as error:
            log.warning("could not reach the key store to make this month's period keys: %s", type(error).__name__)

    # --- housekeeping (workers: destroying; console: re-wrapping) ------------------------------------

    def periods(self) -> list[PeriodKey]:
        with self.db.session() as session:
            return list(session.scalars(select(PeriodKey).order_by(PeriodKey.period)))

    def get(self, period: str) -> PeriodKey | None:
        with self.db.session() as session:
            return session.get(PeriodKey, period)

    def destroy(self, period: str) -> bool:
        """Delete a period's key for good. SQLite runs with secure_delete, so its bytes are zeroed in the
        file, and the workers then VACUUM the store and empty its log (storage/compaction.py), where a copy
        stays until then; on PostgreSQL the dead row lasts until VACUUM (README, Retention)."""
        self._public.pop(period, None)
        with self.db.session() as session:
            row = session.get(PeriodKey, period)
            if row is None:
                return False
            session.delete(row)
            session.commit()
        return True


def current_hotline_key(session: Session, hotline_public: X25519PublicKey) -> X25519PublicKey:
    """The newest hotline key: the given one, or its successor after a rotation, and so on."""
    for _ in range(SUCCESSOR_CHAIN_LIMIT):
        successor = session.get(KeySuccessor, public_key_fingerprint(hotline_public))
        if successor is None:
            return hotline_public
        hotline_public = public_key_from_raw(successor.new_public)
    raise RuntimeError("the hotline key's successors go round in a circle")


def open_key_store(url: str, *, check: bool = True) -> KeyStore | None:
    """The key store at url (None for "": items are then sealed v2, to the hotline key), checked to be at
    its migrations' head unless check=False (the operators' commands that must run on any schema, such
    as `db upgrade` itself, wiring.py). A SQLite store's folder is made 0700, as the data directory is."""
    if not url:
        return None
    path = sqlite_file(url)
    if path is not None:
        private_directory(path.parent)
    return KeyStore(url, check=check)
