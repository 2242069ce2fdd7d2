"""Requests remember until when their client was waiting for the answer (``waiter_until``).

A pending request whose client stopped waiting longer ago than the waiter grace
can no longer be answered; the sweeper expires it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 09:00:00
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch_op:
        batch_op.add_column(sa.Column("waiter_until", sa.BigInteger(), nullable=True))
    # The clients of requests pending now may be reconnecting through the restart
    # this upgrade needed: each gets a full grace counted from the upgrade, not
    # from when it was made (which would abandon every request older than the grace).
    requests = sa.table("requests", sa.column("waiter_until", sa.BigInteger()))
    op.execute(requests.update().values(waiter_until=int(time.time())))
    with op.batch_alter_table("requests") as batch_op:
        batch_op.alter_column("waiter_until", existing_type=sa.BigInteger(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch_op:
        batch_op.drop_column("waiter_until")
