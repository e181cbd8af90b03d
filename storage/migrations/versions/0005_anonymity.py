"""anonymous calls: no Twilio ids once processed, times to the hour

Twilio's record of each call is deleted by a job (jobs/calls.py): jobs now belong to a take or to a call,
and takes point at their call (calls.id) instead of naming its CallSid. The CallSid and RecordingSids are
erased (NULL) once the call's record at Twilio is deleted; takes are ordered within their case by
`position`. Cases, calls, takes, sealed items and jobs get random ids from now on (BIGINT, no sequence, on
PostgreSQL; SQLite's INTEGER already holds them), so that ids do not order anonymous cases among named ones.

Existing rows: each take is linked to its call (a call row is made for a take whose call had none); takes
are numbered in their old id order; every call gets its delete-call job, so Twilio's copies of callers'
numbers go too; and the times of calls, of anonymous cases with their takes and line-made sealed items, and
of finished jobs are rounded down to the hour. Existing rows keep their ids: sealed items' ids are named in
the hash-chained audit trail, which must not change.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
import secrets
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
RANDOM_ID_TABLES = ("cases", "calls", "recordings", "sealed_items", "jobs")
# Every column that holds one of those ids (BIGINT on PostgreSQL).
ID_COLUMNS = [(table, "id") for table in RANDOM_ID_TABLES] + [
    ("calls", "case_id"), ("recordings", "case_id"), ("recordings", "audio_item_id"),
    ("recordings", "transcript_item_id"), ("sealed_items", "case_id"), ("jobs", "recording_id"),
    ("case_events", "case_id"), ("case_events", "item_id"), ("case_events", "recording_id"),
    ("transcript_versions", "recording_id"), ("transcript_versions", "item_id"), ("case_views", "case_id"),
]
LINE_ITEM_KINDS = ("recording", "transcript", "contact")  # sealed by the line; the console's are handlers' actions


def _random_id() -> int:
    return secrets.randbelow(2**53 - 1) + 1


def _hour(value):
    """Down to the hour, in UTC (SQLite gives back naive UTC times; PostgreSQL aware ones, in its own zone)."""
    if value is None:
        return None
    return (value.astimezone(timezone.utc) if value.tzinfo else value).replace(minute=0, second=0, microsecond=0)


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"

    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.alter_column('call_sid', existing_type=sa.String(length=64), nullable=True)
        batch_op.add_column(sa.Column('deleted_at_twilio', sa.Boolean(), server_default='0', nullable=False))

    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.alter_column('recording_sid', existing_type=sa.String(length=64), nullable=True)
        batch_op.alter_column('call_sid', existing_type=sa.String(length=64), nullable=True)
        batch_op.drop_index('ix_recordings_call_sid')
        batch_op.add_column(sa.Column('call_id', ROW_ID, nullable=True))
        batch_op.add_column(sa.Column('position', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_index(batch_op.f('ix_recordings_call_id'), ['call_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_recordings_call_id_calls'), 'calls', ['call_id'], ['id'])

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.alter_column('recording_id', existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(sa.Column('call_id', ROW_ID, nullable=True))
        batch_op.create_index(batch_op.f('ix_jobs_call_id'), ['call_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_jobs_call_id_calls'), 'calls', ['call_id'], ['id'])
        batch_op.create_unique_constraint(batch_op.f('uq_jobs_kind_call_id'), ['kind', 'call_id'])
        batch_op.create_check_constraint(batch_op.f('ck_jobs_one_subject'), '(recording_id IS NULL) <> (call_id IS NULL)')

    if postgres:
        for table, column in ID_COLUMNS:
            op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer())
        for table in RANDOM_ID_TABLES:
            op.execute(f'ALTER TABLE "{table}" ALTER COLUMN id DROP DEFAULT')
            op.execute(f'DROP SEQUENCE IF EXISTS "{table}_id_seq"')

    _migrate_rows(bind)


def _migrate_rows(bind) -> None:
    now = datetime.now(timezone.utc)
    meta = sa.MetaData()
    calls = sa.Table('calls', meta, sa.Column('id', ROW_ID), sa.Column('call_sid', sa.String), sa.Column('case_id', ROW_ID),
                     sa.Column('status', sa.String), sa.Column('failed_unlocks', sa.Integer),
                     sa.Column('started_at', sa.DateTime(timezone=True)), sa.Column('ended_at', sa.DateTime(timezone=True)))
    recordings = sa.Table('recordings', meta, sa.Column('id', ROW_ID), sa.Column('call_sid', sa.String),
                          sa.Column('call_id', ROW_ID), sa.Column('case_id', ROW_ID), sa.Column('position', sa.Integer),
                          sa.Column('created_at', sa.DateTime(timezone=True)))
    cases = sa.Table('cases', meta, sa.Column('id', ROW_ID), sa.Column('anonymous', sa.Boolean),
                     sa.Column('created_at', sa.DateTime(timezone=True)), sa.Column('updated_at', sa.DateTime(timezone=True)))
    items = sa.Table('sealed_items', meta, sa.Column('id', ROW_ID), sa.Column('case_id', ROW_ID), sa.Column('kind', sa.String),
                     sa.Column('created_at', sa.DateTime(timezone=True)))
    jobs = sa.Table('jobs', meta, sa.Column('id', ROW_ID), sa.Column('kind', sa.String), sa.Column('call_id', ROW_ID),
                    sa.Column('state', sa.String), sa.Column('attempts', sa.Integer),
                    sa.Column('run_after', sa.DateTime(timezone=True)), sa.Column('created_at', sa.DateTime(timezone=True)),
                    sa.Column('updated_at', sa.DateTime(timezone=True)))

    # Each take points at its call; a take whose CallSid has no call row gets one (so its call's record goes too).
    call_ids = {sid: id_ for id_, sid in bind.execute(sa.select(calls.c.id, calls.c.call_sid))}
    takes = bind.execute(sa.select(recordings.c.id, recordings.c.call_sid, recordings.c.case_id, recordings.c.created_at)
                         .order_by(recordings.c.case_id, recordings.c.id)).all()
    positions: dict[int, int] = {}
    for take_id, call_sid, case_id, created_at in takes:
        if call_sid is not None and call_sid not in call_ids:
            call_ids[call_sid] = _random_id()
            bind.execute(calls.insert().values(id=call_ids[call_sid], call_sid=call_sid, case_id=case_id, status="completed",
                                               failed_unlocks=0, started_at=created_at, ended_at=created_at))
        positions[case_id] = positions.get(case_id, 0) + 1
        bind.execute(recordings.update().where(recordings.c.id == take_id)
                     .values(call_id=call_ids.get(call_sid), position=positions[case_id]))

    # Twilio's record of every call we know is to be deleted, as for every new call.
    for (call_id,) in bind.execute(sa.select(calls.c.id)).all():
        bind.execute(jobs.insert().values(id=_random_id(), kind="delete-call", call_id=call_id, state="queued", attempts=0,
                                          run_after=now, created_at=_hour(now), updated_at=_hour(now)))

    # No time of an anonymous call finer than the hour (the precision in force from now on may be the day:
    # rows written before keep the hour).
    anonymous = sa.select(cases.c.id).where(cases.c.anonymous.is_(True))
    _round(bind, calls, ("started_at", "ended_at"))
    _round(bind, cases, ("created_at", "updated_at"), cases.c.anonymous.is_(True))
    _round(bind, recordings, ("created_at",), recordings.c.case_id.in_(anonymous))
    _round(bind, items, ("created_at",), items.c.case_id.in_(anonymous), items.c.kind.in_(LINE_ITEM_KINDS))
    _round(bind, jobs, ("created_at", "updated_at"))
    _round(bind, jobs, ("run_after",), jobs.c.state.in_(("done", "failed")))


def _round(bind, table, columns, *where) -> None:
    rows = bind.execute(sa.select(table.c.id, *(table.c[name] for name in columns)).where(*where)).all()
    for row in rows:
        values = {name: _hour(row[i + 1]) for i, name in enumerate(columns)}
        if any(values[name] != row[i + 1] for i, name in enumerate(columns)):
            bind.execute(table.update().where(table.c.id == row[0]).values(**values))


def downgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    op.execute("DELETE FROM jobs WHERE call_id IS NOT NULL")
    # The ids erased once a call was processed are gone for good: placeholders fill the old NOT NULL columns.
    op.execute("UPDATE calls SET call_sid = 'erased-' || CAST(id AS VARCHAR(24)) WHERE call_sid IS NULL")
    op.execute("UPDATE recordings SET recording_sid = 'erased-' || CAST(id AS VARCHAR(24)) WHERE recording_sid IS NULL")
    op.execute("UPDATE recordings SET call_sid = COALESCE((SELECT calls.call_sid FROM calls WHERE calls.id = recordings.call_id), "
               "'erased') WHERE call_sid IS NULL")

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_jobs_one_subject'), type_='check')
        batch_op.drop_constraint(batch_op.f('uq_jobs_kind_call_id'), type_='unique')
        batch_op.drop_constraint(batch_op.f('fk_jobs_call_id_calls'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_jobs_call_id'))
        batch_op.drop_column('call_id')
        batch_op.alter_column('recording_id', existing_type=ROW_ID, nullable=False)

    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_recordings_call_id_calls'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_recordings_call_id'))
        batch_op.drop_column('position')
        batch_op.drop_column('call_id')
        batch_op.create_index('ix_recordings_call_sid', ['call_sid'], unique=False)
        batch_op.alter_column('call_sid', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('recording_sid', existing_type=sa.String(length=64), nullable=False)

    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_column('deleted_at_twilio')
        batch_op.alter_column('call_sid', existing_type=sa.String(length=64), nullable=False)

    if postgres:
        # The columns stay BIGINT (random ids do not fit an INTEGER); the old code needs a sequence again.
        for table in RANDOM_ID_TABLES:
            op.execute(f'CREATE SEQUENCE IF NOT EXISTS "{table}_id_seq" OWNED BY "{table}".id')
            op.execute(f"SELECT setval('\"{table}_id_seq\"', COALESCE((SELECT MAX(id) FROM \"{table}\"), 0) + 1, false)")
            op.execute(f'ALTER TABLE "{table}" ALTER COLUMN id SET DEFAULT nextval(\'"{table}_id_seq"\')')
