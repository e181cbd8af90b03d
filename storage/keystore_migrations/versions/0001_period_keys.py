"""period keys: the key store's two tables, as they were made before the store had migrations

period_keys (each period's public key, and its private key sealed to the hotline key) and
hotline_key_successors (a rotated hotline key's successor). A store made before this migration
(KeyStoreBase.metadata.create_all) has exactly these and no version table: `db upgrade` stamps it at
0001 instead of running this (storage/migrate.py, upgrade_key_store).

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'period_keys',
        sa.Column('period', sa.String(length=7), nullable=False),
        sa.Column('public_key', sa.LargeBinary(), nullable=False),
        sa.Column('sealed_private', sa.LargeBinary(), nullable=False),
        sa.Column('hotline_key', sa.String(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('period', name=op.f('pk_period_keys')),
    )
    op.create_table(
        'hotline_key_successors',
        sa.Column('old_key', sa.String(length=16), nullable=False),
        sa.Column('new_key', sa.String(length=16), nullable=False),
        sa.Column('new_public', sa.LargeBinary(), nullable=False),
        sa.Column('sealed_new_private', sa.LargeBinary(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('old_key', name=op.f('pk_hotline_key_successors')),
    )


def downgrade() -> None:
    op.drop_table('hotline_key_successors')
    op.drop_table('period_keys')
