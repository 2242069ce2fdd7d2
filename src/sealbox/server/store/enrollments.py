"""CI enrollments: the approver-signed statements, how often each was used, and revocation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.server.store.tables import clients, enrollments

__all__ = [
    "EnrollmentRow",
    "disable_machines",
    "get",
    "insert",
    "list_all",
    "machine_counts",
    "revoke",
    "use",
]


@dataclass(frozen=True)
class EnrollmentRow:
    vault: str
    id: str
    statement: str
    """The approver-signed ``sealbox.enrollment.v1``, verbatim."""
    issuer: str
    max_uses: int
    uses: int
    not_after: int
    created_at: int
    revoked_at: int | None
    revoked_by: str | None


def _row(row: Any) -> EnrollmentRow:
    return EnrollmentRow(
        row.vault_id, row.id, row.statement, row.issuer, row.max_uses, row.uses, row.not_after,
        row.created_at, row.revoked_at, row.revoked_by,
    )  # fmt: skip


async def insert(
    conn: AsyncConnection, *, vault: str, enrollment_id: str, statement: str, issuer: str,
    max_uses: int, not_after: int, now: int,
) -> bool:  # fmt: skip
    """Keep a verified enrollment; False (and nothing written) if its id is taken."""
    insert_for = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert
    done = await conn.execute(
        insert_for(enrollments)
        .values(
            vault_id=vault, id=enrollment_id, statement=statement, issuer=issuer,
            max_uses=max_uses, uses=0, not_after=not_after, created_at=now,
        )
        .on_conflict_do_nothing()
    )  # fmt: skip
    return bool(done.rowcount == 1)


async def get(conn: AsyncConnection, vault: str, enrollment_id: str) -> EnrollmentRow | None:
    row = (
        await conn.execute(
            select(enrollments).where(
                enrollments.c.vault_id == vault, enrollments.c.id == enrollment_id
            )
        )
    ).first()
    return None if row is None else _row(row)


async def list_all(conn: AsyncConnection, vault: str) -> list[EnrollmentRow]:
    rows = await conn.execute(
        select(enrollments)
        .where(enrollments.c.vault_id == vault)
        .order_by(enrollments.c.created_at, enrollments.c.id)
    )
    return [_row(row) for row in rows]


async def use(conn: AsyncConnection, vault: str, enrollment_id: str, now: int) -> bool:
    """Count one registration: a compare-and-set that holds only while the enrollment is
    unrevoked, unexpired and under its ``max_uses``.  Of two runners racing for the last
    use, exactly one gets it."""
    done = await conn.execute(
        update(enrollments)
        .where(
            enrollments.c.vault_id == vault,
            enrollments.c.id == enrollment_id,
            enrollments.c.revoked_at.is_(None),
            enrollments.c.not_after >= now,
            enrollments.c.uses < enrollments.c.max_uses,
        )
        .values(uses=enrollments.c.uses + 1)
    )
    return bool(done.rowcount == 1)


async def revoke(
    conn: AsyncConnection, vault: str, enrollment_id: str, *, by: str, now: int
) -> bool:
    """Mark it revoked; False if it already was (or does not exist)."""
    done = await conn.execute(
        update(enrollments)
        .where(
            enrollments.c.vault_id == vault,
            enrollments.c.id == enrollment_id,
            enrollments.c.revoked_at.is_(None),
        )
        .values(revoked_at=now, revoked_by=by)
    )
    return bool(done.rowcount == 1)


async def disable_machines(conn: AsyncConnection, vault: str, statement: str) -> int:
    """Disable every enabled client registered under the enrollment ``statement``."""
    done = await conn.execute(
        update(clients)
        .where(
            clients.c.vault_id == vault,
            clients.c.enrollment == statement,
            clients.c.disabled.is_(False),
        )
        .values(disabled=True)
    )
    return int(done.rowcount or 0)


async def machine_counts(conn: AsyncConnection, vault: str) -> dict[str, int]:
    """Enrollment statement -> how many clients were registered under it."""
    rows = await conn.execute(
        select(clients.c.enrollment, func.count())
        .where(clients.c.vault_id == vault, clients.c.enrollment.is_not(None))
        .group_by(clients.c.enrollment)
    )
    return {str(statement): int(count) for statement, count in rows}
