"""A handler's question to a caller, and the line's one power to open a sealed thing: that question, while
that caller is on the line.

Each case has a question key pair (X25519, QuestionKey). The console seals every question twice: to the
case's question public key, for the line (Question.line_sealed), and for handlers as a sealed item, as a note
is (to the case's period key, which the hotline key opens: storage/keystore.py). The private question key is wrapped (AES-256-GCM) under a key derived from the
PIN key and the case's reference and PIN, so the database alone opens no question; the line holds the PIN
key and so can unwrap it, but this module does so only for a call that gave the case's reference and PIN
on that call and has not ended (`open_for_call`). The plaintext lives only in the request's memory.

This is the one exception to "only console/ opens seals" (tests/console/test_import_boundary.py names
it): what opens here is a question key's seal, never the hotline key's. Sealing is the format of
storage.crypto with kind "question"; the owner binds the question's id.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from storage.anonymity import coarse
from storage.audit import record, record_after_the_hour
from storage.crypto import SEAL_HEADER, SEAL_V2, SealContext, SealError, derive_item_key, keyed_digest, raw_public_bytes, seal
from storage.models import AuditAction, Call, Case, Question, QuestionKey, QuestionState, Recording, utcnow
from storage.references import pin_for

KIND = "question"
KDF = "hkdf-sha256:pin-key+reference+pin:v1"
_WRAP_FORMAT = b"hotline-question-key-v1"
MAX_CHARS = 500  # a question is heard, not read: a few sentences at most
OPEN_STATES = (QuestionState.QUEUED, QuestionState.HEARD)  # still to be answered
LINE_ACTOR = "line"  # the audit trail's actor for what a caller did on the phone


class QuestionUnavailable(Exception):
    """The line may not open this question now: the call did not unlock its case, or it has ended."""


def question_owner(question_id: int) -> str:
    """What a question's seals name as their owner (both copies)."""
    return f"question:{question_id}"


def line_context(case: Case, question_id: int) -> SealContext:
    # The line's copy is kept in the question's row, not the blob store: the "blob" is the row itself.
    return SealContext(case.reference, KIND, f"questions-{question_id}", question_owner(question_id))


# --- the case's question key --------------------------------------------------------------------------

def _wrapping_key(pin_key: str, case: Case, salt: bytes) -> bytes:
    """From the PIN key, the reference and the PIN. The PIN is itself derived from the PIN key, so the
    key's strength is the PIN key's: a copy of the database without it cannot guess its way in (a key
    from the 6-digit PIN alone would fall to a million guesses, however slow each one)."""
    pin = pin_for(pin_key, case.reference, case.pin_length)
    material = keyed_digest(pin_key, "question-key", f"{case.reference}|{pin}")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_WRAP_FORMAT).derive(material)


def _wrap_ad(case: Case, public: bytes) -> bytes:
    return _WRAP_FORMAT + f"|case={case.reference}|".encode() + public


def question_key(session: Session, case: Case) -> QuestionKey | None:
    return session.get(QuestionKey, case.id)


def ensure_question_key(session: Session, pin_key: str, case: Case) -> QuestionKey:
    """The case's question key pair, made now if it has none (a new case, or one opened before questions).
    The caller commits."""
    existing = question_key(session, case)
    if existing is not None:
        return existing
    new_question_key(session, pin_key, case)
    return session.get(QuestionKey, case.id)


def new_question_key(session: Session, pin_key: str, case) -> None:
    """A question key pair for a case that has none, in one INSERT on the session's connection (the line
    makes one with each new case: ivr/desk.py). `case` is a Case or a storage.cases.OpenedCase (its id,
    reference and pin_length). The caller commits."""
    private = X25519PrivateKey.generate()
    public = raw_public_bytes(private.public_key())
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    salt, nonce = os.urandom(16), os.urandom(12)
    wrapped = salt + nonce + AESGCM(_wrapping_key(pin_key, case, salt)).encrypt(nonce, raw, _wrap_ad(case, public))
    session.connection().execute(insert(QuestionKey.__table__), {"case_id": case.id, "public_key": public,
                                                                   "wrapped_private_key": wrapped, "kdf": KDF})


def cases_without_question_key(session: Session) -> list[Case]:
    return list(session.scalars(select(Case).where(~select(QuestionKey.case_id)
                                                    .where(QuestionKey.case_id == Case.id).exists())))


def _unwrap(pin_key: str, case: Case, key: QuestionKey) -> X25519PrivateKey:
    salt, nonce, body = key.wrapped_private_key[:16], key.wrapped_private_key[16:28], key.wrapped_private_key[28:]
    try:
        raw = AESGCM(_wrapping_key(pin_key, case, salt)).decrypt(nonce, body, _wrap_ad(case, key.public_key))
    except InvalidTag as error:
        raise SealError("the case's question key did not open") from error
    return X25519PrivateKey.from_private_bytes(raw)


# --- sealing (the console) -----------------------------------------------------------------------------

def seal_for_line(key: QuestionKey, case: Case, question_id: int, text: str) -> bytes:
    return seal(X25519PublicKey.from_public_bytes(key.public_key), text.encode("utf-8"), line_context(case, question_id))


def next_position(session: Session, case_id: int) -> int:
    return (session.scalar(select(func.max(Question.position)).where(Question.case_id == case_id)) or 0) + 1


# --- the line -------------------------------------------------------------------------------------------

def call_may_open(call: Call) -> bool:
    """Only a call that gave its case's reference and PIN on this call, and is still going."""
    return (call.case is not None and call.unlocked_at is not None and call.ended_at is None
            and not call.status.is_final)


def open_for_call(session: Session, pin_key: str, call: Call, question: Question) -> str:
    """The question's text, for this call only. Raises QuestionUnavailable if the call may not hear it."""
    if not call_may_open(call) or question.case_id != call.case_id or question.state not in OPEN_STATES:
        raise QuestionUnavailable("this call may not hear this question")
    case = call.case
    key = question_key(session, case)
    if key is None:
        raise QuestionUnavailable("the case has no question key")
    private = _unwrap(pin_key, case, key)
    return _open_line_copy(private, question.line_sealed, line_context(case, question.id)).decode("utf-8")


def _open_line_copy(private: X25519PrivateKey, sealed: bytes, context: SealContext) -> bytes:
    """A v2 seal made by seal_for_line, bound to this case, question and owner."""
    if sealed[:1] != SEAL_V2 or len(sealed) < SEAL_HEADER + 17:
        raise SealError("not a sealed question")
    ephemeral_public, nonce, body = sealed[1:33], sealed[33:SEAL_HEADER], sealed[SEAL_HEADER:]
    length = body[0]
    owner, body = body[1:1 + length], body[1 + length:]
    if owner != context.owner.encode("ascii"):
        raise SealError("the sealed question belongs to another question")
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
        item_key = derive_item_key(shared, ephemeral_public, raw_public_bytes(private.public_key()), SEAL_V2)
        return AESGCM(item_key).decrypt(nonce, body, context.v2_associated_data(context.owner))
    except (InvalidTag, ValueError) as error:
        raise SealError("the sealed question is damaged, or belongs to another case or key") from error


def _line_time(case: Case, now: datetime | None = None) -> datetime:
    """What the line stores of when a caller heard or answered: to the hour for an anonymous case."""
    now = now or utcnow()
    return coarse(now) if case.anonymous else now


def _line_audit(session: Session, action: AuditAction, case: Case, question: Question) -> None:
    detail = {"question": question.id, "position": question.position}
    if case.anonymous:  # to the hour, and chained only once the hour is over (storage/audit.py)
        record_after_the_hour(session, action, actor_label=LINE_ACTOR, case_reference=case.reference,
                              detail=detail, hour=_line_time(case))
    else:
        record(session, action, actor_label=LINE_ACTOR, case_reference=case.reference, detail=detail)


def next_for_call(session: Session, call: Call) -> Question | None:
    """The question to put to this caller next: the case's first one still open, after the one this call
    has just put (so a question passed over is asked again on the next call, not again now)."""
    if not call_may_open(call):
        return None
    after = 0
    if call.question_id is not None:
        current = session.get(Question, call.question_id)
        after = current.position if current is not None else 0
    return session.scalar(
        select(Question).where(Question.case_id == call.case_id, Question.state.in_(OPEN_STATES),
                               Question.position > after)
        .order_by(Question.position)
    )


def put_to_caller(session: Session, call: Call, question: Question) -> None:
    """The call is putting this question to its caller now: it is heard (audited once per call)."""
    if call.question_id == question.id:
        return  # a retried webhook, or the caller asking to hear it again
    call.question_id = question.id
    if question.state == QuestionState.QUEUED:
        # Conditional, so a handler's withdrawal at the same moment and this cannot both win.
        heard = session.execute(update(Question).where(Question.id == question.id,
                                                       Question.state == QuestionState.QUEUED)
                                .values(state=QuestionState.HEARD, heard_at=_line_time(call.case))
                                .execution_options(synchronize_session=False)).rowcount
        session.refresh(question)
        if not heard:
            return
    _line_audit(session, AuditAction.QUESTION_HEARD, call.case, question)


def current_for_call(session: Session, call: Call) -> Question | None:
    """The question this call is putting to its caller, if it still may."""
    if call.question_id is None or not call_may_open(call):
        return None
    question = session.get(Question, call.question_id)
    return question if question is not None and question.state in OPEN_STATES else None


def answer_recorded(session: Session, call: Call, recording: Recording) -> Question | None:
    """The take just recorded answers the question this call is putting. Safe to repeat."""
    if recording.question_id is not None:
        return session.get(Question, recording.question_id)
    question = current_for_call(session, call)
    if question is None:
        return None
    recording.question_id = question.id
    question.state = QuestionState.ANSWERED
    question.answered_at = _line_time(call.case)
    _line_audit(session, AuditAction.QUESTION_ANSWERED, call.case, question)
    return question


def answer_discarded(session: Session, recording: Recording) -> None:
    """The caller chose to record their answer again: the question is open (heard) until they do."""
    if recording.question_id is None:
        return
    question = session.get(Question, recording.question_id)
    if question is not None and question.state == QuestionState.ANSWERED:
        question.state = QuestionState.HEARD
        question.answered_at = None


@dataclass(frozen=True)
class Backfill:
    made: int
    already: int


def backfill_keys(session: Session, pin_key: str) -> Backfill:
    """Give every case without one its question key pair (cases opened before questions). The caller commits."""
    missing = cases_without_question_key(session)
    for case in missing:
        ensure_question_key(session, pin_key, case)
    total = session.scalar(select(func.count()).select_from(Case)) or 0
    return Backfill(made=len(missing), already=total - len(missing))
