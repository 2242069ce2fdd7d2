"""What the relay keeps against approval fatigue: per-requester overrides, lockouts, storm reports.

One row per requester that has something to remember (an approver's override,
denials in a row, a lockout, a storm reported); most clients have none.  The
prompts themselves are not counted here but where they are kept: access and
store requests in the requests table, consent requests in theirs, each by its
``(vault_id, client_id, created_at)`` index: a count in the database holds
across replicas, and the request rows are there anyway.  Counts are bounded
(``most``): a requester raising thousands of prompts costs a bounded index
range, not a scan of its history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.protocol.state import ConsentState, State
from sealbox.server.store.tables import consent_requests, requester_guards, requests

__all__ = [
    "Guard",
    "Recent",
    "claim_storm",
    "clear_denials",
    "get",
    "listing",
    "oldest_since",
    "prompts_and_pending",
    "recent",
    "record_denials",
    "set_limits",
    "unlock",
]

_G = requester_guards.c
_R = requests.c
_Q = consent_requests.c
_V: Any = bindparam("vault")
_C: Any = bindparam("client")
_PK = and_(_G.vault_id == _V, _G.client_id == _C)


@dataclass(frozen=True)
class Guard:
    """One requester's row: overrides set by approvers, denials in a row, lockout."""

    client_id: str
    per_minute: int | None
    pending_cap: int | None
    denials: int
    last_denial_at: int | None
    locked_at: int | None
    storm_at: int | None
    updated_at: int
    updated_by: str | None


@dataclass(frozen=True)
class Recent:
    """A requester's prompts lately, as the relay counts them (nobody signs these)."""

    requests: int
    denials: int
    locked: bool


def _guard(row: Any) -> Guard:
    return Guard(
        client_id=row.client_id, per_minute=row.per_minute, pending_cap=row.pending_cap,
        denials=int(row.denials), last_denial_at=row.last_denial_at, locked_at=row.locked_at,
        storm_at=row.storm_at, updated_at=int(row.updated_at), updated_by=row.updated_by,
    )  # fmt: skip


def _insert_for(conn: AsyncConnection) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert


# Built once with bound parameters: the first two run on every new prompt.
_GET = select(requester_guards).where(_PK)


def _bounded_count(*where: Any) -> Any:
    """``count(*)`` of at most ``:most`` rows matching ``where`` (of the table it names)."""
    rows = select(literal(1).label("one")).where(*where).limit(bindparam("most")).subquery()
    return select(func.count()).select_from(rows).scalar_subquery()


def _both(requests_where: tuple[Any, ...], consents_where: tuple[Any, ...]) -> Any:
    """A bounded count of access and store requests plus one of consent requests: all prompts."""
    return _bounded_count(*requests_where) + _bounded_count(*consents_where)


_MINE = (_R.vault_id == _V, _R.client_id == _C)
_MINE_Q = (_Q.vault_id == _V, _Q.client_id == _C)
_SINCE: Any = bindparam("since")
_PROMPTS_AND_PENDING = select(
    _both((*_MINE, _R.created_at >= _SINCE), (*_MINE_Q, _Q.created_at >= _SINCE))
    .label("prompts"),
    (
        select(func.count()).select_from(requests)
        .where(*_MINE, _R.state == State.PENDING.value, _R.expires_at >= bindparam("now"))
        .scalar_subquery()
        + select(func.count()).select_from(consent_requests)
        .where(*_MINE_Q, _Q.state == ConsentState.PENDING.value,
               _Q.expires_at >= bindparam("now"))
        .scalar_subquery()
    ).label("pending"),
)  # fmt: skip
_RECENT = select(
    _both((*_MINE, _R.created_at >= _SINCE), (*_MINE_Q, _Q.created_at >= _SINCE)).label("asked"),
    _both((*_MINE, _R.state == State.DENIED.value, _R.updated_at >= _SINCE),
          (*_MINE_Q, _Q.state == ConsentState.DENIED.value, _Q.updated_at >= _SINCE))
    .label("denied"),
    select(_G.locked_at).where(_PK).scalar_subquery().label("locked_at"),
)  # fmt: skip
_OLDEST = select(func.min(_R.created_at)).where(*_MINE, _R.created_at >= _SINCE)
_OLDEST_Q = select(func.min(_Q.created_at)).where(*_MINE_Q, _Q.created_at >= _SINCE)


async def get(conn: AsyncConnection, vault: str, client_id: str) -> Guard | None:
    row = (await conn.execute(_GET, {"vault": vault, "client": client_id})).first()
    return None if row is None else _guard(row)


async def prompts_and_pending(
    conn: AsyncConnection, vault: str, client_id: str, *, since: int, now: int, most: int
) -> tuple[int, int]:
    """(Prompts the client made since ``since``, each kind counted up to ``most``; its
    pending ones: access, store and consent requests alike)."""
    params = {"vault": vault, "client": client_id, "since": since, "now": now, "most": most}
    row = (await conn.execute(_PROMPTS_AND_PENDING, params)).one()
    return int(row.prompts), int(row.pending)


async def oldest_since(conn: AsyncConnection, vault: str, client_id: str, since: int) -> int | None:
    """When the client's oldest prompt made since ``since`` was made."""
    params = {"vault": vault, "client": client_id, "since": since}
    found = [(await conn.execute(query, params)).scalar() for query in (_OLDEST, _OLDEST_Q)]
    times = [int(at) for at in found if at is not None]
    return min(times) if times else None


async def recent(
    conn: AsyncConnection, vault: str, client_id: str, *, since: int, most: int
) -> Recent:
    """Requests made and requests denied since ``since`` (each counted up to ``most``)."""
    params = {"vault": vault, "client": client_id, "since": since, "most": most}
    row = (await conn.execute(_RECENT, params)).one()
    return Recent(int(row.asked), int(row.denied), row.locked_at is not None)


async def clear_denials(conn: AsyncConnection, vault: str, client_id: str) -> None:
    """The client's denials in a row start again (its lockout, if any, stays)."""
    await conn.execute(
        update(requester_guards).where(_PK, _G.denials > 0).values(denials=0),
        {"vault": vault, "client": client_id},
    )


async def _upsert(
    conn: AsyncConnection, vault: str, client_id: str, now: int, values: dict[str, Any],
    where: Any = None,
) -> bool:  # fmt: skip
    """Insert the requester's row with ``values`` or update it (only ``where`` it holds)."""
    statement = (
        _insert_for(conn)(requester_guards)
        .values(vault_id=vault, client_id=client_id, updated_at=now, **values)
        .on_conflict_do_update(index_elements=[_G.vault_id, _G.client_id], set_=values, where=where)
    )
    return bool((await conn.execute(statement)).rowcount == 1)


async def claim_storm(
    conn: AsyncConnection, vault: str, client_id: str, now: int, window: int
) -> bool:
    """Take this window's one storm report for the client: True if none was made within it.

    A compare-and-set on the row (the caller holds the client's creation lock
    too), so replicas raising prompts at once report a storm once.
    """
    fresh = or_(_G.storm_at.is_(None), _G.storm_at <= now - window)
    return await _upsert(conn, vault, client_id, now, {"storm_at": now}, where=fresh)


async def record_denials(
    conn: AsyncConnection, vault: str, client_id: str, now: int, denials: int, *, lock: bool
) -> None:
    """Write the client's denials in a row (this one the latest); with ``lock``, lock it."""
    values: dict[str, Any] = {"denials": denials, "last_denial_at": now}
    if lock:
        values["locked_at"] = now
    await _upsert(conn, vault, client_id, now, values)


async def unlock(conn: AsyncConnection, vault: str, client_id: str, now: int, by: str) -> bool:
    """Clear the client's lockout and its denials in a row; False if it was not locked."""
    done = await conn.execute(
        update(requester_guards)
        .where(_PK, _G.locked_at.is_not(None))
        .values(locked_at=None, denials=0, last_denial_at=None, updated_at=now, updated_by=by),
        {"vault": vault, "client": client_id},
    )
    return bool(done.rowcount == 1)


async def set_limits(
    conn: AsyncConnection, vault: str, client_id: str, now: int, by: str, *,
    per_minute: int | None, pending_cap: int | None,
) -> None:  # fmt: skip
    values = {"per_minute": per_minute, "pending_cap": pending_cap, "updated_by": by}
    await _upsert(conn, vault, client_id, now, values)


async def listing(conn: AsyncConnection, vault: str, limit: int) -> list[Guard]:
    """Requesters with an override, a lockout or denials in a row: locked first, then by id."""
    rows = await conn.execute(
        select(requester_guards)
        .where(
            requester_guards.c.vault_id == vault,
            or_(
                _G.per_minute.is_not(None), _G.pending_cap.is_not(None),
                _G.locked_at.is_not(None), _G.denials > 0,
            ),
        )
        .order_by(_G.locked_at.is_(None), _G.client_id)
        .limit(limit)
    )  # fmt: skip
    return [_guard(row) for row in rows]
