"""Against approval fatigue: per-requester overrides and lockouts, and indexes to count prompts.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "requester_guards",
        sa.Column("vault_id", sa.String(length=40), nullable=False),
        sa.Column("client_id", sa.String(length=40), nullable=False),
        sa.Column("per_minute", sa.Integer(), nullable=True),
        sa.Column("pending_cap", sa.Integer(), nullable=True),
        sa.Column("denials", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_denial_at", sa.BigInteger(), nullable=True),
        sa.Column("locked_at", sa.BigInteger(), nullable=True),
        sa.Column("storm_at", sa.BigInteger(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("vault_id", "client_id"),
    )
    op.create_index(
        "ix_requests_client_created", "requests", ["vault_id", "client_id", "created_at"]
    )
    op.create_index(
        "ix_consent_requests_client_created", "consent_requests",
        ["vault_id", "client_id", "created_at"],
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_consent_requests_client_created", table_name="consent_requests")
    op.drop_index("ix_requests_client_created", table_name="requests")
    op.drop_table("requester_guards")
