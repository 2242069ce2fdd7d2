"""Share links: the hash of the open token that the link's key derives.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 21:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: a share made before open tokens has none, and such a share can no longer
    # be opened (its id alone must not spend it); it expires within the seven-day TTL.
    with op.batch_alter_table("shares") as batch:
        batch.add_column(sa.Column("open_token_hash", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("shares") as batch:
        batch.drop_column("open_token_hash")
