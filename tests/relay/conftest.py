"""Relay test fixtures: a migrated relay on SQLite and on PostgreSQL, and an HTTP client for it.

PostgreSQL comes from ``SEALBOX_TEST_PG_URL`` (``scripts/test`` and ``.ci/run``
set it).  Each test session gets its own schema, dropped at the end.  When the
variable is set (always, in CI) an unreachable server fails the tests; it is
skipped only when the variable is unset and CI is not.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from relay_support import Approver, Clock, Vault
from sqlalchemy import text

from sealbox.protocol import directory as dirs
from sealbox.server.app import create_app
from sealbox.server.atrest import MasterKey
from sealbox.server.config import Settings
from sealbox.server.relay import Relay
from sealbox.server.services.directory import ensure_vault
from sealbox.server.store import engine as db

PG_URL = os.environ.get("SEALBOX_TEST_PG_URL")


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str]:
    """A fresh PostgreSQL schema for this test session."""
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail("SEALBOX_TEST_PG_URL must be set in CI: the PostgreSQL tests must run")
        pytest.skip("SEALBOX_TEST_PG_URL is not set")
    schema = f"sbx_test_{secrets.token_hex(4)}"
    url = _async_url(PG_URL)

    async def run(sql: str) -> None:
        engine = db.make_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(sql))
        finally:
            await engine.dispose()

    asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    try:
        yield schema
    finally:
        asyncio.run(run(f'DROP SCHEMA "{schema}" CASCADE'))


def _async_url(url: str) -> str:
    from sealbox.server.config import normalise_db_url

    return normalise_db_url(url)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    if backend == "sqlite":
        return Settings(data_dir=tmp_path, db_url=f"sqlite+aiosqlite:///{tmp_path / 'relay.db'}")
    schema = request.getfixturevalue("pg_schema")
    return Settings(data_dir=tmp_path, db_url=_async_url(str(PG_URL)), db_schema=schema)


@pytest.fixture
async def relay(settings: Settings) -> AsyncIterator[Relay]:
    engine = db.make_engine(settings.db_url, schema=settings.db_schema)
    await db.upgrade(engine)
    if settings.db_schema:
        # Tests in one session share the schema: start each from empty tables.
        async with engine.begin() as conn:
            await conn.execute(text("SET session_replication_role = replica"))
            rows = await conn.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = :s AND tablename != "
                     "'alembic_version'"), {"s": settings.db_schema}
            )  # fmt: skip
            names = ", ".join(f'"{r[0]}"' for r in rows)
            await conn.execute(text(f"TRUNCATE {names}"))
            await conn.execute(text("SET session_replication_role = DEFAULT"))
    relay = Relay(settings=settings, engine=engine, master_key=MasterKey(b"k" * 32), clock=Clock())
    try:
        yield relay
    finally:
        await engine.dispose()


@pytest.fixture
async def client(relay: Relay) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(relay)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://relay.test") as http,
    ):
        yield http


@pytest.fixture
async def vault(relay: Relay, client: httpx.AsyncClient) -> Vault:
    status = await ensure_vault(relay)
    first = Approver()
    link0 = dirs.genesis_link(status.vault, first.record, first.sig, now=relay.now())
    response = await client.post(
        f"/v1/vaults/{status.vault}/setup", json={"setup_token": status.setup_token, "link": link0}
    )
    assert response.status_code == 201, response.text
    return Vault(status.vault, first, link0)
