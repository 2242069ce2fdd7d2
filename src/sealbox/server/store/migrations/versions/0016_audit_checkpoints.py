"""Audit checkpoints: approvers' signed statements of the audit chain's head.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_checkpoints",
        sa.Column("vault_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("approver_id", sa.String(length=40), nullable=False),
        sa.Column("head", sa.String(length=64), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("vault_id", "seq", "approver_id"),
    )


def downgrade() -> None:
    op.drop_table("audit_checkpoints")
