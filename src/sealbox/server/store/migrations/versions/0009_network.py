"""Network allowlists of vaults, and networks on policies.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "network_allowlists",
        sa.Column("vault_id", sa.String(length=40), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("cidrs", sa.JSON(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("vault_id"),
    )
    # Every policy written before policies had networks allows any.
    with op.batch_alter_table("policies") as batch:
        batch.add_column(sa.Column("cidrs", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("policies") as batch:
        batch.drop_column("cidrs")
    op.drop_table("network_allowlists")
