"""Clients keep the item-path limits of their signed scopes and enrollment.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every certificate issued before item scopes existed has none: no limit.
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("limits", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("limits")
