"""questions to the caller: a question key pair per case, questions in order, the unlock on the call

Each case gets a question key pair (question_keys): the public part in the clear, the private part wrapped
under a key derived from the case's PIN and reference (storage/questions.py). A question is sealed twice:
to that key, for the line (questions.line_sealed), and to the hotline key, for handlers (a sealed item).
A call records when its case was unlocked with reference and PIN (calls.unlocked_at) and which question it
is putting to the caller (calls.question_id): the line opens a question only on such a call. An answer is
a take (recordings.question_id names the question it answers). The line's audit entries for an anonymous
case wait in pending_audit_entries until their hour is over (storage/audit.py).

Existing cases get no key pair here (the migration has no PIN key): the line makes one at the case's next
unlock, or `flask --app app question-keys` makes them all.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table('question_keys',
    sa.Column('case_id', ROW_ID, nullable=False),
    sa.Column('public_key', sa.LargeBinary(), nullable=False),
    sa.Column('wrapped_private_key', sa.LargeBinary(), nullable=False),
    sa.Column('kdf', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_question_keys_case_id_cases')),
    sa.PrimaryKeyConstraint('case_id', name=op.f('pk_question_keys'))
    )
    op.create_table('questions',
    sa.Column('id', ROW_ID, autoincrement=False, nullable=False),
    sa.Column('case_id', ROW_ID, nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('line_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('item_id', ROW_ID, nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heard_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('withdrawn_by_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], name=op.f('fk_questions_case_id_cases')),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_questions_author_id_users')),
    sa.ForeignKeyConstraint(['item_id'], ['sealed_items.id'], name=op.f('fk_questions_item_id_sealed_items')),
    sa.ForeignKeyConstraint(['withdrawn_by_id'], ['users.id'], name=op.f('fk_questions_withdrawn_by_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_questions')),
    sa.UniqueConstraint('case_id', 'position', name=op.f('uq_questions_case_id')),
    )
    with op.batch_alter_table('questions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_questions_case_id'), ['case_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_questions_state'), ['state'], unique=False)

    op.create_table('pending_audit_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('case_reference', sa.String(length=8), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pending_audit_entries'))
    )
    with op.batch_alter_table('pending_audit_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pending_audit_entries_created_at'), ['created_at'], unique=False)

    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unlocked_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('question_id', ROW_ID, nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_calls_question_id_questions'), 'questions', ['question_id'], ['id'])
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('question_id', ROW_ID, nullable=True))
        batch_op.create_index(batch_op.f('ix_recordings_question_id'), ['question_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_recordings_question_id_questions'), 'questions', ['question_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_recordings_question_id_questions'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_recordings_question_id'))
        batch_op.drop_column('question_id')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_calls_question_id_questions'), type_='foreignkey')
        batch_op.drop_column('question_id')
        batch_op.drop_column('unlocked_at')
    with op.batch_alter_table('questions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_questions_state'))
        batch_op.drop_index(batch_op.f('ix_questions_case_id'))
    with op.batch_alter_table('pending_audit_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pending_audit_entries_created_at'))
    op.drop_table('pending_audit_entries')
    op.drop_table('questions')
    op.drop_table('question_keys')
