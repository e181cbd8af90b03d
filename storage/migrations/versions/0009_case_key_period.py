"""case key period: the period key a case's items are sealed under, once re-sealed under a later one

Cases get key_period (storage/models.py Case.key_period): NULL, as every existing case has, means the
month the case was opened in, as before; a period ("2026-12") means its items were re-sealed under that
month's key (console/reseal.py, `flask --app console keys reseal PERIOD`), so that the key of the month it
was opened in can be destroyed before the case is purged. Indexed: the purge asks which cases still use a
period (storage/retention.py period_in_use).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_period', sa.String(length=7), nullable=True))
        batch_op.create_index(batch_op.f('ix_cases_key_period'), ['key_period'], unique=False)


def downgrade() -> None:
    # Going back forgets which cases were re-sealed. Their items stay sealed under the later period (each
    # item names its own, SealedItem.key_period, so they still open), but 0008's code seals what comes next
    # for such a case under the month it was opened in again (making that month's key anew if it was
    # destroyed), and the purge then counts the case for that month, not the later one.
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cases_key_period'))
        batch_op.drop_column('key_period')
