"""retention: legal holds on cases, and sealed items under period keys

Cases get legal_hold_since and hold_lifted_at (storage/retention.py). Sealed items get key_period: the
period key (storage/keystore.py, a separate store that ordinary database backups do not carry) that a v3
seal is sealed to. Existing items keep NULL: they are sealed straight to the hotline key, still open, and
are moved under their period key by `flask --app console keys rotate`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
# After main's 0006 (questions) and 0007 (referrals), since the merge of main into retention.
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('legal_hold_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('hold_lifted_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('sealed_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_period', sa.String(length=7), nullable=True))
        batch_op.create_index(batch_op.f('ix_sealed_items_key_period'), ['key_period'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sealed_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sealed_items_key_period'))
        batch_op.drop_column('key_period')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_column('hold_lifted_at')
        batch_op.drop_column('legal_hold_since')
