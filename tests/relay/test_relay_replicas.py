"""Two relay replicas on one PostgreSQL schema: wake-ups cross replicas through LISTEN/NOTIFY.

Each replica is what one relay process holds: its own :class:`Relay`, engine,
:class:`Hub` and app, whose lifespan opens its own LISTEN connection.  Nothing
is shared in memory between them but the test's clock and the at-rest key
(replicas of one deployment share it); the database is the only channel.
PostgreSQL only: SQLite is one process by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from relay_support import Approver, Clock, SseStream, Vault
from sqlalchemy import text
from test_relay_items import PASSWORD, Harness

from sealbox.protocol import directory as dirs
from sealbox.server.app import create_app
from sealbox.server.atrest import MasterKey
from sealbox.server.config import Settings, normalise_db_url
from sealbox.server.relay import Relay
from sealbox.server.services.directory import ensure_vault
from sealbox.server.store import engine as db

pytestmark = pytest.mark.anyio

PG_URL = os.environ.get("SEALBOX_TEST_PG_URL")
BASE_URL = "http://relay.test"  # one public URL in front of every replica
#: A wake-up that crosses replicas must arrive well before a long poll would time out.
PROMPT = 5.0


@dataclass
class Replica:
    name: str
    relay: Relay
    app: FastAPI
    http: httpx.AsyncClient
    vault: Vault | None = None

    @property
    def h(self) -> Harness:
        """The test's parties (approvers, clients) talking to this replica."""
        assert self.vault is not None
        return Harness(self.http, self.relay, self.vault)


@contextlib.asynccontextmanager
async def _replica(
    name: str, settings: Settings, clock: Clock, vault: Vault | None, *, listen: bool = True
) -> AsyncIterator[Replica]:
    """One relay process: its own engine, hub, app and (with ``listen``) LISTEN connection."""
    engine = db.make_engine(settings.db_url, schema=settings.db_schema)
    relay = Relay(settings=settings, engine=engine, master_key=MasterKey(b"k" * 32), clock=clock)
    app = create_app(relay, listen=listen)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as http,
        ):
            yield Replica(name, relay, app, http, vault)
    finally:
        await engine.dispose()


async def _empty_schema(settings: Settings) -> None:
    """Migrate the session schema and start from empty tables (as conftest's ``relay`` does)."""
    engine = db.make_engine(settings.db_url, schema=settings.db_schema)
    try:
        await db.upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(text("SET session_replication_role = replica"))
            rows = await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = :s AND tablename != "
                     "'alembic_version'"), {"s": settings.db_schema}
            )  # fmt: skip
            names = ", ".join(f'"{r[0]}"' for r in rows)
            await conn.execute(text(f"TRUNCATE {names}"))
            await conn.execute(text("SET session_replication_role = DEFAULT"))
    finally:
        await engine.dispose()


@pytest.fixture
def pg_settings(pg_schema: str, tmp_path: Path) -> Settings:
    assert PG_URL  # pg_schema has skipped (or failed, in CI) without it
    return Settings(data_dir=tmp_path, db_url=normalise_db_url(PG_URL), db_schema=pg_schema)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def replicas(pg_settings: Settings, clock: Clock) -> AsyncIterator[tuple[Replica, Replica]]:
    """Replicas A and B of one relay, with a vault set up through A."""
    await _empty_schema(pg_settings)
    async with _replica("a", pg_settings, clock, None) as a:
        status = await ensure_vault(a.relay)
        first = Approver()
        link0 = dirs.genesis_link(status.vault, first.record, first.sig, now=a.relay.now())
        response = await a.http.post(
            f"/v1/vaults/{status.vault}/setup",
            json={"setup_token": status.setup_token, "link": link0},
        )
        assert response.status_code == 201, response.text
        a.vault = Vault(status.vault, first, link0)
        async with _replica("b", pg_settings, clock, a.vault) as b:
            yield a, b


async def _eventually(check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def _timed(call: Awaitable[httpx.Response]) -> asyncio.Task[tuple[httpx.Response, float]]:
    """Run ``call`` as a task; its result is (response, monotonic time it returned)."""

    async def run() -> tuple[httpx.Response, float]:
        response = await call
        return response, time.monotonic()

    return asyncio.create_task(run())


async def _within(tasks: list[asyncio.Task[Any]], seconds: float, what: str) -> list[Any]:
    """The tasks' results, if all finish within ``seconds``; else cancel them and fail."""
    _, pending = await asyncio.wait(tasks, timeout=seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    assert not pending, f"{len(pending)} of {len(tasks)} did not return within {seconds}s: {what}"
    return [task.result() for task in tasks]


async def _pending_request(a: Replica) -> tuple[Any, Any, str]:
    """An item stored and a client's access request to it, both through replica A."""
    item, _ = await a.h.store_direct(a.h.vault.approvers[0], "app/prod/db", PASSWORD)
    client = await a.h.add_client()
    access = a.h.access(client, [(item, "app/prod/db", ["password"])])
    created = await a.h.ask(client, access)
    assert created.status_code == 201, created.text
    return client, access, created.json()["id"]


# --- long polls ---------------------------------------------------------------------------


async def test_long_poll_on_a_wakes_on_a_release_posted_to_b(
    replicas: tuple[Replica, Replica], pg_settings: Settings, clock: Clock
) -> None:
    a, b = replicas
    approver = a.h.vault.approvers[0]
    client, access, request_id = await _pending_request(a)
    # The approver works against B: it reads the request there, and releases there.
    token = await b.h.sign_release(approver, request_id)

    # Control: a third replica without a LISTEN connection hears nothing from B.
    async with _replica("c", pg_settings, clock, a.h.vault, listen=False) as deaf:
        started = time.monotonic()
        on_a = _timed(a.h.call("GET", f"/access-requests/{request_id}?wait=20", signer=client))
        on_deaf = _timed(deaf.h.call("GET", f"/access-requests/{request_id}?wait=3", signer=client))
        await _eventually(lambda: a.relay.hub.subscriber_count() == 1, "the waiter on A")
        await _eventually(lambda: deaf.relay.hub.subscriber_count() == 1, "the waiter on C")
        await asyncio.sleep(0.2)
        assert not on_a.done()
        assert not on_deaf.done()

        released = await b.h.post_release(approver, request_id, token)
        assert released.status_code == 200, released.text
        assert released.json()["state"] == "released"
        posted = time.monotonic()

        [(response, woke)] = await _within([on_a], PROMPT, "no wake-up crossed from B to A")
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "released"
        assert response.json()["approvals"] == 1
        assert woke - started < PROMPT, f"the waiter on A took {woke - started:.1f}s"
        assert woke - posted < PROMPT
        # The replica that does not listen learns of it only when its wait runs out.
        assert not on_deaf.done()
        [(late, late_at)] = await _within([on_deaf], 10, "the wait on C did not end")
        assert late.json()["state"] == "released"
        assert late_at - started > 2.5

    # Delivered through B, opened by the client: the whole flow crossed replicas.
    delivered = await b.h.envelope(client, request_id)
    assert delivered.status_code == 200, delivered.text
    item = access.statement.items[0].item
    assert a.h.open(access, delivered.json()).values == {item: {"password": PASSWORD["password"]}}
    again = await a.h.envelope(client, request_id)
    assert again.status_code == 410
    assert a.relay.hub.subscriber_count() == 0


async def test_long_poll_on_b_wakes_on_a_deny_posted_to_a(
    replicas: tuple[Replica, Replica],
) -> None:
    # The other direction, and another kind of change: a denial.
    a, b = replicas
    client, _, request_id = await _pending_request(a)
    started = time.monotonic()
    on_b = _timed(b.h.call("GET", f"/access-requests/{request_id}?wait=20", signer=client))
    await _eventually(lambda: b.relay.hub.subscriber_count() == 1, "the waiter on B")
    denied = await a.h.deny_as(a.h.vault.approvers[0], request_id)
    assert denied.status_code == 200, denied.text
    [(response, woke)] = await _within([on_b], PROMPT, "no wake-up crossed from A to B")
    assert response.json()["state"] == "denied"
    assert woke - started < PROMPT


# --- the approvers' stream ----------------------------------------------------------------


async def test_stream_on_a_announces_requests_made_and_released_on_b(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    approver = a.h.vault.approvers[0]
    item, _ = await a.h.store_direct(approver, "app/prod/db", PASSWORD)
    client = await b.h.add_client()
    request = a.h.build("GET", "/approvals/stream", signer=approver)
    async with SseStream(a.app, request) as stream:
        await stream.until(": sealbox approvals")
        assert stream.status == 200
        await _eventually(lambda: a.relay.hub.subscriber_count() == 1, "the stream on A")
        created = await b.h.ask(client, b.h.access(client, [(item, "app/prod/db", ["user"])]))
        assert created.status_code == 201, created.text
        request_id = created.json()["id"]
        seen = await stream.until(request_id)
        assert "event: request\ndata: {" in seen
        assert '"paths":["app/prod/db"]' in seen
        assert '"state":"pending"' in seen

        assert (await b.h.release_as(approver, request_id)).status_code == 200
        await stream.until('"state":"released"')


# --- one LISTEN connection per process, whatever the number of waiters ---------------------


def _own_tcp_ports() -> set[int]:
    """Local ports of this process's TCP sockets (Linux /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def _own_backends(relay: Relay) -> list[tuple[int, str]]:
    """(pid, last query) of this process's sessions on the server, the asking one left out.

    Other test sessions may share the server: sessions are told apart by the
    client port, which only this process's sockets have.
    """
    ports = _own_tcp_ports()
    async with relay.read() as conn:
        rows = await conn.execute(
            text("SELECT pid, query FROM pg_stat_activity WHERE client_port = ANY(:ports) "
                 "AND datname = current_database() AND pid != pg_backend_pid()"),
            {"ports": sorted(ports)},
        )  # fmt: skip
        return [(int(r.pid), str(r.query)) for r in rows]


async def test_one_listen_connection_per_replica_whatever_the_waiters(
    replicas: tuple[Replica, Replica],
) -> None:
    a, b = replicas
    assert PG_URL is not None
    assert "127.0.0.1" in PG_URL or "localhost" in PG_URL, "the port check needs TCP to the server"
    client, _, request_id = await _pending_request(a)

    def listening(backends: list[tuple[int, str]]) -> list[int]:
        return [pid for pid, query in backends if query.upper().startswith("LISTEN")]

    before = await _own_backends(a.relay)
    assert len(listening(before)) == 2, before  # one per replica

    waiters = 50
    started = time.monotonic()
    tasks = [
        _timed(a.h.call("GET", f"/access-requests/{request_id}?wait=20", signer=client))
        for _ in range(waiters)
    ]
    await _eventually(lambda: a.relay.hub.subscriber_count() == waiters, "50 waiters on A")
    # Parked waiters hold no database connection...
    await _eventually(lambda: a.relay.engine.pool.checkedout() == 0, "A's pool to drain")  # type: ignore[attr-defined]
    during = await _own_backends(a.relay)
    # ...and open no LISTEN of their own: still one LISTEN connection per replica.
    assert sorted(listening(during)) == sorted(listening(before)), during
    pooled = sum(
        r.relay.engine.pool.checkedin() + r.relay.engine.pool.checkedout()  # type: ignore[attr-defined]
        for r in (a, b)
    )
    assert len(during) - 2 <= pooled, during
    assert len(during) < waiters, during
    assert not any(task.done() for task in tasks)

    # One release on B wakes all 50 on A at once, long before their 20 s are up.
    token = await b.h.sign_release(a.h.vault.approvers[0], request_id)
    posted = time.monotonic()
    released = await b.h.post_release(a.h.vault.approvers[0], request_id, token)
    assert released.json()["state"] == "released"
    results = await _within(tasks, PROMPT, "waiters on A not woken by the release on B")
    assert {r.json()["state"] for r, _ in results} == {"released"}
    assert max(at for _, at in results) - posted < PROMPT
    assert max(at for _, at in results) - started < 20 - PROMPT
    assert a.relay.hub.subscriber_count() == 0
