"""The Alembic migrations, on SQLite and PostgreSQL: they build what ``tables.py`` describes,
and upgrading keeps the rows there are.

Each test gets a database of its own (a SQLite file, or a fresh PostgreSQL schema),
since it starts from an empty schema or from an older revision.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine

from sealbox.server.config import normalise_db_url
from sealbox.server.store import engine as db
from sealbox.server.store.tables import console_credentials, metadata

pytestmark = pytest.mark.anyio

PG_URL = os.environ.get("SEALBOX_TEST_PG_URL")


@pytest.fixture
async def empty(backend: str, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on a database with no tables yet."""
    if backend == "sqlite":
        engine = db.make_engine(f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}")
        try:
            yield engine
        finally:
            await engine.dispose()
        return
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("SEALBOX_TEST_PG_URL must be set in CI: the PostgreSQL tests must run")
        pytest.skip("SEALBOX_TEST_PG_URL is not set")
    url = normalise_db_url(PG_URL)
    schema = f"sbx_mig_{secrets.token_hex(4)}"
    admin = db.make_engine(url)
    async with admin.begin() as conn:
        await conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine = db.make_engine(url, schema=schema)
    try:
        yield engine
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


def _differences(connection: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_the_migrations_build_the_schema_tables_py_describes(empty: AsyncEngine) -> None:
    await db.upgrade(empty)
    async with empty.connect() as conn:
        differences = await conn.run_sync(_differences)
    assert differences == []


def _console_table(difference: Any) -> bool:
    """A difference that is one of revision 0004's tables or indexes missing."""
    kind, thing = difference[0], difference[1]
    table = thing.name if kind == "add_table" else getattr(thing, "table", None)
    return kind in ("add_table", "add_index") and str(getattr(table, "name", table)).startswith(
        "console_"
    )


def _later(difference: Any) -> bool:
    """A difference that a revision after 0004 makes outside the requests table."""
    kind = difference[0]
    if kind == "add_column":
        return str(difference[2]) != "requests"
    if kind == "add_index" and difference[1].name in _LATER_REQUEST_INDEXES:
        return True
    table = difference[1].name if kind == "add_table" else getattr(difference[1], "table", None)
    return (
        kind in ("add_table", "add_index") and str(getattr(table, "name", table)) in _LATER_TABLES
    )


#: Tables of revisions after 0004.
_LATER_TABLES: frozenset[str] = frozenset(
    {
        "agents",
        "alert_outbox",
        "alert_targets",
        "audit_checkpoints",
        "bootstrap_tokens",
        "consent_requests",
        "machine_registrations",
        "enrollments",
        "network_allowlists",
        "project_freezes",
        "invites",
        "member_roles",
        "requester_guards",
        "shares",
        "item_reads",
        "item_releases",
        "destroyed_items",
    }
)
#: Indexes of the requests table that revisions after 0004 add.
_LATER_REQUEST_INDEXES = frozenset({"ix_requests_client_created"})


# The requests table as revision 0002 left it: what a relay of that version wrote.
_REQUESTS_0002 = sa.table(
    "requests",
    *(sa.column(name) for name in (
        "vault_id", "id", "kind", "client_id", "statement", "detail", "state", "threshold",
        "source_ip", "created_at", "expires_at", "updated_at",
    )),
)  # fmt: skip


async def test_an_upgrade_gives_each_waiting_request_a_full_grace_from_the_upgrade(
    empty: AsyncEngine,
) -> None:
    await db.upgrade(empty, "0002")
    async with empty.connect() as conn:
        missing = await conn.run_sync(_differences)
    # The comparison sees what a revision lacks (so its empty answer below means something);
    # the console's tables (0004) and what later revisions add elsewhere came later.
    missing = [d for d in missing if not _console_table(d) and not _later(d)]
    assert [(d[0], d[3].name) for d in missing] == [("add_column", "waiter_until")]
    made = int(time.time()) - 3600  # an hour ago: older than any grace
    async with empty.begin() as conn:
        await conn.execute(
            _REQUESTS_0002.insert(),
            [{"vault_id": "vlt_a", "id": f"req{n}", "kind": "access", "client_id": "cli_a",
              "statement": "s", "detail": "{}",
              "state": state, "threshold": 1, "source_ip": None, "created_at": made,
              "expires_at": made + 7200, "updated_at": made}
             for n, state in enumerate(("pending", "delivered"))],
        )  # fmt: skip
    before = int(time.time())
    await db.upgrade(empty)
    after = int(time.time())

    async with empty.connect() as conn:
        rows = (await conn.execute(sa.text("SELECT id, state, waiter_until FROM requests"))).all()
        indexes = await conn.run_sync(
            lambda c: {i["name"] for i in sa.inspect(c).get_indexes("requests")}
        )
        differences = await conn.run_sync(_differences)
    assert len(rows) == 2
    # Counted from the upgrade, not from when they were made: a client reconnecting
    # through the upgrade's restart finds its request still answerable.
    assert all(before <= row.waiter_until <= after for row in rows)
    assert indexes == {"ix_requests_state", "ix_requests_client", *_LATER_REQUEST_INDEXES}
    assert differences == []


async def test_the_console_revision_adds_its_tables_and_keeps_the_rows_there_are(
    empty: AsyncEngine,
) -> None:
    await db.upgrade(empty, "0003")
    async with empty.connect() as conn:
        missing = await conn.run_sync(_differences)
    assert all(_console_table(d) or _later(d) for d in missing)
    assert {d[1].name for d in missing if d[0] == "add_table"} - _LATER_TABLES == {
        "console_challenges",
        "console_credentials",
        "console_sessions",
    }
    vaults = sa.table("vaults", *(sa.column(n) for n in ("id", "created_at", "fingerprint")))
    async with empty.begin() as conn:
        await conn.execute(vaults.insert().values(id="vlt_a", created_at=1, fingerprint="f" * 64))
    await db.upgrade(empty)

    credentials = console_credentials  # what the relay writes, with its column types
    async with empty.begin() as conn:
        await conn.execute(
            credentials.insert().values(
                vault_id="vlt_a", id="c" * 1364, approver_id="apv_a",
                sig_pk="sbx-ed25519-pk-v1:" + "A" * 43, public_key=b"\x00" * 77,
                sign_count=2**32, transports=["internal"], rp_id="localhost", created_at=1,
                last_used_at=None,
            )
        )  # fmt: skip
    async with empty.connect() as conn:
        kept = (await conn.execute(sa.text("SELECT id FROM vaults"))).scalars().all()
        stored = (await conn.execute(sa.select(credentials.c.sign_count))).scalars().all()
        differences = await conn.run_sync(_differences)
    assert kept == ["vlt_a"]
    assert stored == [2**32]  # counters are 32-bit unsigned: a BigInteger holds them all
    assert differences == []


async def test_clients_registered_before_item_scopes_keep_no_limit(empty: AsyncEngine) -> None:
    await db.upgrade(empty, "0004")
    old_clients = sa.table("clients", *(sa.column(n) for n in (
        "vault_id", "id", "kind", "name", "sig_pk", "certificate", "enrollment", "disabled",
        "created_at",
    )))  # fmt: skip
    async with empty.begin() as conn:
        await conn.execute(old_clients.insert().values(
            vault_id="vlt_a", id="cli_a", kind="human", name="ann", sig_pk="k", certificate="c",
            enrollment=None, disabled=False, created_at=1,
        ))  # fmt: skip
    await db.upgrade(empty, "0005")
    async with empty.connect() as conn:
        limits = (await conn.execute(sa.text("SELECT limits FROM clients"))).scalars().all()
    assert [json.loads(v) if isinstance(v, str) else v for v in limits] == [[]]


async def test_policies_written_before_networks_allow_any_network(empty: AsyncEngine) -> None:
    await db.upgrade(empty, "0005")
    old_policies = sa.table("policies", *(sa.column(n) for n in (
        "vault_id", "pattern", "approvers", "threshold", "expiry_seconds", "max_cache_seconds",
        "store_needs_approval",
    )))  # fmt: skip
    async with empty.begin() as conn:
        await conn.execute(old_policies.insert().values(
            vault_id="vlt_a", pattern="shop/prod/*", approvers=json.dumps(["apv_a"]),
            threshold=1, expiry_seconds=300, max_cache_seconds=0, store_needs_approval=True,
        ))  # fmt: skip
    await db.upgrade(empty)
    async with empty.connect() as conn:
        cidrs = (await conn.execute(sa.text("SELECT cidrs FROM policies"))).scalars().all()
        allowlists = (await conn.execute(sa.text("SELECT * FROM network_allowlists"))).all()
        differences = await conn.run_sync(_differences)
    assert [json.loads(v) if isinstance(v, str) else v for v in cidrs] == [[]]
    assert allowlists == []
    assert differences == []
