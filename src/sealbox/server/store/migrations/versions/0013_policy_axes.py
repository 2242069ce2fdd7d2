"""Policy axes: time windows, read-rate cap, co-signer, destroy date, rotate-after-N.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every policy written before these axes has none of them.
    with op.batch_alter_table("policies") as batch:
        batch.add_column(sa.Column("hours", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("max_reads", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("cosigner", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("destroy_at", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("rotate_after", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("statement", sa.Text(), nullable=True))
    op.create_table(
        "item_reads",
        sa.Column("vault_id", sa.String(length=40), nullable=False),
        sa.Column("item_id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("vault_id", "item_id", "request_id"),
    )
    op.create_index("ix_item_reads_at", "item_reads", ["vault_id", "item_id", "at"])
    op.create_table(
        "item_releases",
        sa.Column("vault_id", sa.String(length=40), nullable=False),
        sa.Column("item_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("releases", sa.Integer(), nullable=False),
        sa.Column("rotation_due_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("vault_id", "item_id", "version"),
    )
    op.create_table(
        "destroyed_items",
        sa.Column("vault_id", sa.String(length=40), nullable=False),
        sa.Column("item_id", sa.String(length=40), nullable=False),
        sa.Column("path", sa.String(length=200), nullable=False),
        sa.Column("pattern", sa.String(length=200), nullable=False),
        sa.Column("destroyed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("vault_id", "item_id"),
    )


def downgrade() -> None:
    op.drop_table("destroyed_items")
    op.drop_table("item_releases")
    op.drop_index("ix_item_reads_at", table_name="item_reads")
    op.drop_table("item_reads")
    with op.batch_alter_table("policies") as batch:
        for name in ("statement", "rotate_after", "destroy_at", "cosigner", "max_reads", "hours"):
            batch.drop_column(name)
