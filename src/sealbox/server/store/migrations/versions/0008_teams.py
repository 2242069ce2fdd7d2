"""Teams: invites, members' roles, and logins that carry an invite.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invites",
        sa.Column("vault_id", sa.String(40), primary_key=True),
        sa.Column("id", sa.String(24), primary_key=True),
        sa.Column("code_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("issuer", sa.String(40), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.Column("used_by", sa.String(40), nullable=True),
    )
    # Certificates issued before roles existed carry none: no client starts as a member.
    op.create_table(
        "member_roles",
        sa.Column("vault_id", sa.String(40), primary_key=True),
        sa.Column("client_id", sa.String(40), primary_key=True),
        sa.Column("project", sa.String(64), primary_key=True),
        sa.Column("role", sa.String(16), primary_key=True),
    )
    op.create_index("ix_member_roles_project", "member_roles", ["vault_id", "project"])
    with op.batch_alter_table("device_codes") as batch:
        batch.add_column(sa.Column("invite_id", sa.String(24), nullable=True))
        batch.add_column(sa.Column("invite_project", sa.String(64), nullable=True))
        batch.add_column(sa.Column("invite_role", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("device_codes") as batch:
        batch.drop_column("invite_role")
        batch.drop_column("invite_project")
        batch.drop_column("invite_id")
    op.drop_index("ix_member_roles_project", table_name="member_roles")
    op.drop_table("member_roles")
    op.drop_table("invites")
