"""reference lock-out: attempts counted atomically, a lasting lock after 10 failures

Cases get pin_length: the cases already there keep their 4-digit PINs (the server default), new ones get
6 digits. A reference's lock is now its failure count alone (no time-limited lock): locked_until goes.
Failed attempts are also counted per hour, per reference (for the case page) and across all references
(for the guessing alert), to the hour only.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pin_length', sa.Integer(), server_default='4', nullable=False))
    with op.batch_alter_table('reference_locks', schema=None) as batch_op:
        batch_op.drop_column('locked_until')
    op.create_table('reference_failure_hours',
    sa.Column('reference', sa.String(length=8), nullable=False),
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('reference', 'hour', name=op.f('pk_reference_failure_hours'))
    )
    op.create_table('unlock_failure_hours',
    sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('hour', name=op.f('pk_unlock_failure_hours'))
    )


def downgrade() -> None:
    op.drop_table('unlock_failure_hours')
    op.drop_table('reference_failure_hours')
    with op.batch_alter_table('reference_locks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('pin_length')
