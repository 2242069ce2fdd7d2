"""The browser console: WebAuthn challenges, approvers' passkeys and console sessions.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "console_challenges",
        sa.Column("vault_id", sa.String(length=40), nullable=False),
        sa.Column("challenge", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("approver_id", sa.String(length=40), nullable=True),
        sa.Column("rp_id", sa.String(length=253), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("vault_id", "challenge"),
    )
    op.create_table(
        "console_credentials",
        sa.Column("vault_id", sa.String(length=40), nullable=False),
        sa.Column("id", sa.String(length=1400), nullable=False),
        sa.Column("approver_id", sa.String(length=40), nullable=False),
        sa.Column("sig_pk", sa.String(length=80), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("rp_id", sa.String(length=253), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("vault_id", "id"),
    )
    op.create_index(
        "ix_console_credentials_approver", "console_credentials", ["vault_id", "approver_id"]
    )
    op.create_table(
        "console_sessions",
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("vault_id", sa.String(length=40), nullable=False),
        sa.Column("approver_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hash"),
    )
    op.create_index("ix_console_sessions_approver", "console_sessions", ["vault_id", "approver_id"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_approver", table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_index("ix_console_credentials_approver", table_name="console_credentials")
    op.drop_table("console_credentials")
    op.drop_table("console_challenges")
