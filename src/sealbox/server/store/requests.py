"""Access and store requests, and the approvers' answers to them.

This module is the only writer of a request's state: every change goes through
:func:`transition`, a compare-and-set along one of the state tables in
:mod:`sealbox.protocol.state` (``WHERE state = current``), so of two
concurrent answers, cancels or fetches exactly one takes effect.

A request's ``detail`` column holds what the relay pinned when the request was
made; it is read and written only as the typed :class:`AccessDetail` or
:class:`StoreDetail`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import and_, bindparam, delete, func, or_, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.protocol.state import ACCESS, STORE, Event, Machine, State
from sealbox.server.errors import Conflict
from sealbox.server.store.tables import answers, requests

__all__ = [
    "AccessDetail",
    "Kind",
    "PinnedItem",
    "RequestRow",
    "StoreDetail",
    "add_answer",
    "answer_kinds",
    "delivered_ids",
    "deny_token",
    "drop_releases",
    "due_for_expiry",
    "get",
    "hold_pending",
    "insert",
    "lock_client",
    "machine_of",
    "pending_for",
    "purge_finished",
    "record_waiter",
    "release_count",
    "state_of",
    "take_releases",
    "transition",
]

Kind = Literal["access", "store"]


@dataclass(frozen=True)
class PinnedItem:
    """One item of an access request, at the version pinned when it was asked."""

    item: str
    path: str
    version: int
    fields: tuple[str, ...]
    manifest_hash: str

    @property
    def project(self) -> str:
        return self.path.split("/", 1)[0]


@dataclass(frozen=True)
class AccessDetail:
    items: tuple[PinnedItem, ...]
    approvers: tuple[str, ...]
    """Who may answer: named by every item's policy and holding a share of every item."""
    cache_until_max: int
    """The latest ``cache_until`` a release may carry under the strictest policy."""
    cosigner: str | None = None
    """An approver that must release on top of the threshold (a policy's co-signer)."""

    def to_json(self) -> dict[str, Any]:
        return {
            **({"cosigner": self.cosigner} if self.cosigner else {}),
            "items": [
                {"item": p.item, "path": p.path, "version": p.version, "fields": list(p.fields),
                 "manifest_hash": p.manifest_hash}
                for p in self.items
            ],
            "approvers": list(self.approvers),
            "cache_until_max": self.cache_until_max,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AccessDetail:
        return cls(
            items=tuple(
                PinnedItem(e["item"], e["path"], int(e["version"]), tuple(e["fields"]),
                           e["manifest_hash"])
                for e in data["items"]
            ),
            approvers=tuple(data["approvers"]),
            cache_until_max=int(data["cache_until_max"]),
            cosigner=data.get("cosigner"),
        )  # fmt: skip


@dataclass(frozen=True)
class StoreDetail:
    item: str
    path: str
    version: int
    prev: str | None
    fields: tuple[str, ...]
    approvers: tuple[str, ...]
    """Who is asked: the policy's approvers that hold a share (only they can verify it)."""

    @property
    def project(self) -> str:
        return self.path.split("/", 1)[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "item": self.item, "path": self.path, "version": self.version, "prev": self.prev,
            "fields": list(self.fields), "approvers": list(self.approvers),
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoreDetail:
        return cls(
            item=data["item"], path=data["path"], version=int(data["version"]),
            prev=data["prev"], fields=tuple(data["fields"]), approvers=tuple(data["approvers"]),
        )  # fmt: skip


@dataclass(frozen=True)
class RequestRow:
    vault: str
    id: str
    """The statement hash without ``sha256:``."""
    kind: Kind
    client_id: str
    statement: str
    detail: AccessDetail | StoreDetail
    state: str
    threshold: int
    source_ip: str | None
    """Seen by the relay, not signed by anyone."""
    created_at: int
    expires_at: int
    updated_at: int
    waiter_until: int
    """Until when its client is known to be waiting: the end of its latest long poll, or
    its creation."""

    @property
    def access(self) -> AccessDetail:
        assert isinstance(self.detail, AccessDetail)
        return self.detail

    @property
    def store(self) -> StoreDetail:
        assert isinstance(self.detail, StoreDetail)
        return self.detail

    def waiting(self, now: int) -> bool:
        """Pending and not past its expiry (the sweeper may not have run yet)."""
        return self.state == State.PENDING and now <= self.expires_at

    def abandoned(self, now: int, grace: int) -> bool:
        """Pending, but its client stopped waiting more than ``grace`` seconds ago.

        Nobody may answer it any more (the sweeper then expires it): a release
        would go to a process that is gone, a store would be stored after its
        command reported failure.  The same rule is spelled in SQL below as
        ``waiter_until >= waiter_since`` with ``waiter_since = now - grace``.
        """
        return self.state == State.PENDING and self.waiter_until < now - grace

    def answerable_by(self, approver: str) -> bool:
        return approver in self.detail.approvers

    @property
    def projects(self) -> dict[str, str]:
        """project -> one item path in it."""
        entries = self.access.items if self.kind == "access" else (self.store,)
        out: dict[str, str] = {}
        for entry in entries:
            out.setdefault(entry.project, entry.path)
        return out


def _row(row: Any) -> RequestRow:
    detail: AccessDetail | StoreDetail = (
        AccessDetail.from_json(row.detail) if row.kind == "access"
        else StoreDetail.from_json(row.detail)
    )  # fmt: skip
    return RequestRow(
        vault=row.vault_id, id=row.id, kind=row.kind, client_id=row.client_id,
        statement=row.statement, detail=detail, state=row.state, threshold=row.threshold,
        source_ip=row.source_ip, created_at=row.created_at, expires_at=row.expires_at,
        updated_at=row.updated_at, waiter_until=row.waiter_until,
    )  # fmt: skip


def machine_of(kind: Kind) -> Machine[Any, Any]:
    return ACCESS if kind == "access" else STORE


# The statements of the release loop are built once, with bound parameters:
# building a statement costs more CPU than running it (about 120 µs against 80).
_INSERT = requests.insert()
_V: Any = bindparam("vault")
_ID: Any = bindparam("rid")


def _get_statement(kind: bool, client: bool) -> Any:
    where = [requests.c.vault_id == _V, requests.c.id == _ID]
    if kind:
        where.append(requests.c.kind == bindparam("rkind"))
    if client:
        where.append(requests.c.client_id == bindparam("client"))
    return select(requests).where(*where)


_GET = {(k, c): _get_statement(k, c) for k in (False, True) for c in (False, True)}
_STATE_OF = select(requests.c.state).where(requests.c.vault_id == _V, requests.c.id == _ID)


def _transition_statement(unexpired: bool, client: bool, fresh: bool, waited: bool) -> Any:
    where = [
        requests.c.vault_id == _V,
        requests.c.id == _ID,
        requests.c.kind == bindparam("rkind"),
        requests.c.state == bindparam("current"),
    ]
    if unexpired:
        where.append(requests.c.expires_at >= bindparam("now"))
    if client:
        where.append(requests.c.client_id == bindparam("client"))
    if fresh:
        where.append(requests.c.updated_at >= bindparam("fresh_since"))
    if waited:
        where.append(requests.c.waiter_until >= bindparam("waiter_since"))
    return (
        update(requests)
        .where(*where)
        .values(state=bindparam("target"), updated_at=bindparam("now"))
    )


_TRANSITION = {
    (u, c, f, w): _transition_statement(u, c, f, w)
    for u in (False, True)
    for c in (False, True)
    for f in (False, True)
    for w in (False, True)
}
_HOLD = (
    update(requests)
    .where(
        requests.c.vault_id == _V,
        requests.c.id == _ID,
        requests.c.state == State.PENDING.value,
        requests.c.expires_at >= bindparam("now"),
        requests.c.waiter_until >= bindparam("waiter_since"),
    )
    .values(updated_at=bindparam("now"))
)
_RECORD_WAITER = (
    update(requests)
    .where(
        requests.c.vault_id == _V,
        requests.c.id == _ID,
        requests.c.state == State.PENDING.value,
        # Only a move by a few seconds is worth a write ...
        requests.c.waiter_until < bindparam("below"),
        # ... and an abandoned request stays abandoned: its answers were already refused.
        requests.c.waiter_until >= bindparam("waiter_since"),
    )
    .values(waiter_until=bindparam("until"))
)
_ANSWERS = answers.c
_RELEASES = and_(_ANSWERS.vault_id == _V, _ANSWERS.request_id == _ID, _ANSWERS.kind == "release")
_RELEASE_COUNT = select(func.count()).select_from(answers).where(_RELEASES)
_ANSWER_KINDS = select(_ANSWERS.approver_id, _ANSWERS.kind).where(
    _ANSWERS.vault_id == _V, _ANSWERS.request_id == _ID
)
_DENY_TOKEN = select(_ANSWERS.token).where(
    _ANSWERS.vault_id == _V, _ANSWERS.request_id == _ID, _ANSWERS.kind == "deny"
)
_RELEASE_TOKENS = (
    select(_ANSWERS.token).where(_RELEASES).order_by(_ANSWERS.created_at, _ANSWERS.approver_id)
)
_DROP_RELEASES = delete(answers).where(_RELEASES)
_ADD_ANSWER = {
    "sqlite": sqlite.insert(answers).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(answers).on_conflict_do_nothing(),
}


async def insert(conn: AsyncConnection, row: RequestRow) -> None:
    await conn.execute(
        _INSERT,
        {
            "vault_id": row.vault, "id": row.id, "kind": row.kind, "client_id": row.client_id,
            "statement": row.statement, "detail": row.detail.to_json(), "state": row.state,
            "threshold": row.threshold, "source_ip": row.source_ip,
            "created_at": row.created_at, "expires_at": row.expires_at,
            "updated_at": row.updated_at, "waiter_until": row.waiter_until,
        },
    )  # fmt: skip


async def get(
    conn: AsyncConnection,
    vault: str,
    request_id: str,
    *,
    kind: Kind | None = None,
    client_id: str | None = None,
) -> RequestRow | None:
    statement = _GET[(kind is not None, client_id is not None)]
    params = {"vault": vault, "rid": request_id, "rkind": kind, "client": client_id}
    row = (await conn.execute(statement, params)).first()
    return None if row is None else _row(row)


async def state_of(conn: AsyncConnection, vault: str, request_id: str) -> str | None:
    state = (
        await conn.execute(_STATE_OF, {"vault": vault, "rid": request_id})
    ).scalar_one_or_none()
    return None if state is None else str(state)


async def transition(
    conn: AsyncConnection,
    vault: str,
    request_id: str,
    kind: Kind,
    current: str,
    event: str,
    now: int,
    *,
    client_id: str | None = None,
    fresh_since: int | None = None,
    waiter_since: int | None = None,
) -> str | None:
    """Compare-and-set a request from ``current`` along ``event``; ``None`` if it was not there.

    The target comes from the request kind's one state table.  The ``WHERE
    state = current`` makes the change atomic in the database: of two
    concurrent transitions only one updates the row.  A pending request past
    its expiry takes no event but ``expired``, even before the sweeper has run;
    with ``fresh_since``, neither does one last changed before then (a release
    past its delivery window); with ``waiter_since``, neither does one whose
    client stopped waiting before then (see :meth:`RequestRow.abandoned`).
    """
    machine = machine_of(kind)
    target = machine.next(current, event)
    unexpired = str(current) == State.PENDING and str(event) != Event.EXPIRED
    statement = _TRANSITION[
        (unexpired, client_id is not None, fresh_since is not None, waiter_since is not None)
    ]
    result = await conn.execute(
        statement,
        {"vault": vault, "rid": request_id, "rkind": kind, "current": str(current),
         "client": client_id, "target": str(target), "now": now, "fresh_since": fresh_since,
         "waiter_since": waiter_since},
    )  # fmt: skip
    return str(target) if result.rowcount == 1 else None


async def hold_pending(
    conn: AsyncConnection, vault: str, request_id: str, now: int, waiter_since: int
) -> bool:
    """Take a pending request's row for this transaction (no state change); False if not pending.

    A row lock on PostgreSQL, the write lock on SQLite: concurrent releases of
    one request then count each other's answers.  A request past its expiry,
    or whose client stopped waiting before ``waiter_since``, is not taken.
    """
    locked = await conn.execute(
        _HOLD, {"vault": vault, "rid": request_id, "now": now, "waiter_since": waiter_since}
    )
    return bool(locked.rowcount == 1)


async def record_waiter(
    conn: AsyncConnection, vault: str, request_id: str, *, until: int, waiter_since: int,
    refresh: int,
) -> bool:  # fmt: skip
    """Note that the request's client waits until ``until``; True if that was written.

    Written only if it moves ``waiter_until`` by at least ``refresh`` seconds,
    only while the request is pending, and never for one already abandoned
    (last waited on before ``waiter_since``).
    """
    params = {"vault": vault, "rid": request_id, "until": until, "below": until - refresh,
              "waiter_since": waiter_since}  # fmt: skip
    return bool((await conn.execute(_RECORD_WAITER, params)).rowcount == 1)


async def lock_client(conn: AsyncConnection, vault: str, client_id: str) -> None:
    """Serialise one client's request creation, so its pending cap holds across replicas.

    On SQLite the first write of a transaction takes the database's one write
    lock, which serialises just as well.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
            {"k": f"pending {vault} {client_id}"},
        )


async def pending_for(
    conn: AsyncConnection, vault: str, now: int, approver: str, limit: int, waiter_since: int
) -> list[RequestRow]:
    """Waiting requests ``approver`` may answer, oldest first (none whose client is gone)."""
    rows = await conn.execute(
        select(requests)
        .where(
            requests.c.vault_id == vault,
            requests.c.state == State.PENDING.value,
            requests.c.expires_at >= now,
            requests.c.waiter_until >= waiter_since,
        )
        .order_by(requests.c.created_at, requests.c.id)
    )
    # Who may answer is in the JSON detail, so filter here; the pending cap per
    # client bounds how many rows this reads.
    found = (_row(row) for row in rows)
    return [row for row in found if row.answerable_by(approver)][:limit]


async def delivered_ids(
    conn: AsyncConnection, vault: str, client_id: str, wanted: Iterable[str]
) -> set[str]:
    """Which of ``wanted`` are this client's delivered access requests."""
    rows = await conn.execute(
        select(requests.c.id).where(
            requests.c.vault_id == vault,
            requests.c.client_id == client_id,
            requests.c.kind == "access",
            requests.c.state == State.DELIVERED.value,
            requests.c.id.in_(list(wanted)),
        )
    )
    return set(rows.scalars())


async def due_for_expiry(
    conn: AsyncConnection, now: int, delivery_window: int, limit: int, waiter_since: int
) -> list[RequestRow]:
    """Requests to expire: pending past their expiry or abandoned by their client (last
    waited on before ``waiter_since``), or released and not fetched in time."""
    rows = await conn.execute(
        select(requests)
        .where(
            or_(
                and_(
                    requests.c.state == State.PENDING.value,
                    or_(requests.c.expires_at < now, requests.c.waiter_until < waiter_since),
                ),
                and_(
                    requests.c.state == State.RELEASED.value,
                    requests.c.updated_at < now - delivery_window,
                ),
            )
        )
        # One order for every sweeper, so two replicas never lock rows crosswise.
        .order_by(requests.c.vault_id, requests.c.id)
        .limit(limit)
    )
    return [_row(row) for row in rows]


#: States a request never leaves, whatever its kind.
FINISHED = sorted({str(s) for s in ACCESS.terminal} | {str(s) for s in STORE.terminal})


async def purge_finished(conn: AsyncConnection, before: int, limit: int) -> int:
    """Delete up to ``limit`` finished requests (and their answers) unchanged since ``before``."""
    keys = [
        (row.vault_id, row.id)
        for row in await conn.execute(
            select(requests.c.vault_id, requests.c.id)
            .where(requests.c.state.in_(FINISHED), requests.c.updated_at < before)
            .order_by(requests.c.vault_id, requests.c.id)
            .limit(limit)
        )
    ]
    if keys:
        await conn.execute(
            delete(answers).where(tuple_(answers.c.vault_id, answers.c.request_id).in_(keys))
        )
        await conn.execute(
            delete(requests).where(tuple_(requests.c.vault_id, requests.c.id).in_(keys))
        )
    return len(keys)


# --- answers -------------------------------------------------------------------------------------


async def add_answer(
    conn: AsyncConnection, vault: str, request_id: str, approver: str,
    kind: Literal["release", "deny", "manifest"], token: str, now: int,
) -> None:  # fmt: skip
    """Record an approver's answer; one per approver and request (a second is refused)."""
    done = await conn.execute(
        _ADD_ANSWER[conn.dialect.name],
        {"vault_id": vault, "request_id": request_id, "approver_id": approver, "kind": kind,
         "token": token, "created_at": now},
    )  # fmt: skip
    if done.rowcount != 1:
        raise Conflict("already_answered", "you have already answered this request")


async def release_count(conn: AsyncConnection, vault: str, request_id: str) -> int:
    params = {"vault": vault, "rid": request_id}
    return int((await conn.execute(_RELEASE_COUNT, params)).scalar_one())


async def answer_kinds(conn: AsyncConnection, vault: str, request_id: str) -> list[tuple[str, str]]:
    """(approver, kind) of every answer a request has so far."""
    rows = await conn.execute(_ANSWER_KINDS, {"vault": vault, "rid": request_id})
    return [(r.approver_id, r.kind) for r in rows]


async def deny_token(conn: AsyncConnection, vault: str, request_id: str) -> str | None:
    """The signed deny a request was refused with, if any."""
    token = (await conn.execute(_DENY_TOKEN, {"vault": vault, "rid": request_id})).scalar()
    return None if token is None else str(token)


async def drop_releases(conn: AsyncConnection, vault: str, request_id: str) -> None:
    """Delete a request's partial releases (it was denied, cancelled or expired)."""
    await conn.execute(_DROP_RELEASES, {"vault": vault, "rid": request_id})


async def take_releases(conn: AsyncConnection, vault: str, request_id: str) -> list[str]:
    """Delete a request's release envelopes and return them (oldest first): delivery is once."""
    rows = await conn.execute(_RELEASE_TOKENS, {"vault": vault, "rid": request_id})
    tokens = list(rows.scalars())
    await drop_releases(conn, vault, request_id)
    return tokens
