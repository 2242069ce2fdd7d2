"""Database engines and schema migrations (Alembic), for SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, pool
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.base import SQLiteExecutionContext
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util.concurrency import await_

__all__ = ["current_revision", "head_revision", "make_engine", "upgrade", "writing"]

MIGRATIONS = Path(__file__).parent / "migrations"
#: Connection-info flag set by ``Relay.tx()`` for the duration of a write transaction.
WRITE = "sealbox_write"


class _InLoopExecutionContext(SQLiteExecutionContext):
    def create_server_side_cursor(self) -> Any:
        # sqlite3 cursors already fetch row by row: a plain cursor streams.
        return self._dbapi_connection.cursor()


async def _nothing() -> None:
    return None


class _Cursor:
    """A ``sqlite3`` cursor whose statements run inline.

    SQLAlchemy's async layer insists that executing a statement awaits
    something (to catch a blocking driver used by mistake); an awaitable that
    is already done satisfies it at the cost of one greenlet switch.
    """

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    def execute(self, operation: str, parameters: Any = ()) -> _Cursor:
        self._cursor.execute(operation, parameters)
        await_(_nothing())
        return self

    def executemany(self, operation: str, seq: Any) -> _Cursor:
        self._cursor.executemany(operation, seq)
        await_(_nothing())
        return self

    async def _async_soft_close(self) -> None:
        # The rows stay readable from the sqlite3 cursor; nothing to wait for.
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class _Connection:
    """A ``sqlite3`` connection handing out :class:`_Cursor` s."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        object.__setattr__(self, "_connection", connection)

    def cursor(self) -> _Cursor:
        return _Cursor(self._connection.cursor())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._connection, name, value)


class _Driver:
    """The ``sqlite3`` module, with connections wrapped in :class:`_Connection`."""

    def connect(self, *args: Any, **kwargs: Any) -> _Connection:
        return _Connection(sqlite3.connect(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(sqlite3, name)


class InLoopSQLiteDialect(SQLiteDialect_pysqlite):
    """SQLite (the standard ``sqlite3`` module) called directly on the event loop's thread.

    The stock async driver hands every statement to a thread of its own and
    back, which costs about 250 µs of CPU per statement against about 6 µs for
    the statement itself: most of what a release cost on SQLite.  A statement
    on a local SQLite file in WAL mode is short and never waits for a reader,
    so running it inline is cheaper than any hand-off.  What could make it
    wait is another writer: :func:`writing` lets one write transaction of this
    process run at a time (SQLite allows one writer anyway), and the relay is
    the only process that writes while it runs.
    """

    driver = "sealbox_inloop"
    is_async = True
    supports_server_side_cursors = True
    supports_statement_cache = True
    execution_ctx_cls = _InLoopExecutionContext

    @classmethod
    def import_dbapi(cls) -> Any:
        return _Driver()

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        # Waiting for a pooled connection must not block the event loop.
        return pool.AsyncAdaptedQueuePool


registry.register("sqlite.sealbox_inloop", __name__, "InLoopSQLiteDialect")

_write_locks: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction: ``BEGIN IMMEDIATE`` on SQLite, one at a time in this process.

    Every write of the relay goes through here (``Relay.tx``, the nonce and
    data-key writers), so on SQLite no write ever waits for SQLite's own lock
    on the event loop's thread.
    """
    lock = None
    if engine.dialect.name == "sqlite":
        lock = _write_locks.get(engine.sync_engine)
        if lock is None:
            lock = _write_locks[engine.sync_engine] = asyncio.Lock()
    async with lock if lock is not None else contextlib.nullcontext(), engine.connect() as conn:
        conn.info[WRITE] = True
        try:
            async with conn.begin():
                yield conn
        finally:
            conn.info.pop(WRITE, None)


def make_engine(url: str, *, schema: str | None = None, pool_size: int = 10) -> AsyncEngine:
    """An async engine; SQLite in WAL mode, PostgreSQL optionally in its own schema."""
    if url.startswith("sqlite"):
        parsed = make_url(url)
        if parsed.drivername in ("sqlite", "sqlite+aiosqlite"):
            parsed = parsed.set(drivername="sqlite+sealbox_inloop")
        # hide_parameters: a logged database error names the statement, never its values.
        engine = create_async_engine(
            parsed, connect_args={"timeout": 30, "check_same_thread": False},
            hide_parameters=True,
        )  # fmt: skip

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _: Any) -> None:
            # Let SQLAlchemy, not the driver, say when transactions begin (the
            # driver's own handling breaks SAVEPOINTs and cannot BEGIN IMMEDIATE).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            # WAL: readers never block the writer; the relay is one writer process.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            # Deleted content (a spent share's ciphertext, a revoked wrap) is overwritten
            # with zeros in the database file rather than left in free pages; the WAL keeps
            # old page images only until a checkpoint reuses or truncates it.
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _begin(conn: Any) -> None:
            # A write transaction takes SQLite's write lock up front.  Taken lazily,
            # two transactions that both read before they write (the audit chain's
            # "read the head, append after it") could each read the same head.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.info.get(WRITE) else "BEGIN")

        return engine
    connect_args: dict[str, Any] = {}
    if schema:
        connect_args["server_settings"] = {"search_path": schema}
    return create_async_engine(
        url, connect_args=connect_args, pool_size=pool_size, max_overflow=pool_size,
        hide_parameters=True,
    )  # fmt: skip


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection, revision: str = "head") -> None:
    command.upgrade(_config(connection), revision)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to the newest revision, or to ``revision`` (idempotent)."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, revision)


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


def upgrade_sync(url: str, schema: str | None = None) -> None:
    async def run() -> None:
        engine = make_engine(url, schema=schema)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(run())
