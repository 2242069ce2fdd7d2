"""Frozen projects: an approver's freeze, or the release of a canary.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_freezes",
        sa.Column("vault_id", sa.String(length=40), nullable=False),
        sa.Column("project", sa.String(length=64), nullable=False),
        sa.Column("frozen_at", sa.BigInteger(), nullable=False),
        sa.Column("frozen_by", sa.String(length=64), nullable=False),
        sa.Column("cause", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("vault_id", "project"),
    )


def downgrade() -> None:
    op.drop_table("project_freezes")
