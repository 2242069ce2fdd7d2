"""``sealbox up`` and the operator commands: migrate, status, master-key rotation."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TextIO

import uvicorn

from sealbox import __version__
from sealbox.crypto import secrets as sx
from sealbox.crypto.encoding import b64u_encode
from sealbox.server.app import create_app
from sealbox.server.atrest import KEY_FILE, load_master_key, rotate_master_key
from sealbox.server.config import Settings
from sealbox.server.relay import Relay
from sealbox.server.services.directory import ensure_vault
from sealbox.server.store import engine as db

__all__ = ["db_status", "migrate", "rotate_key", "serve"]


def _prepare(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if settings.is_sqlite:
        path = settings.db_url.split("///", 1)[1]
        if not os.path.exists(path):
            # Create the database file owner-only before SQLite does (0644 by umask).
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def migrate(settings: Settings) -> str:
    _prepare(settings)
    db.upgrade_sync(settings.db_url, settings.db_schema)
    return db.head_revision()


def db_status(settings: Settings) -> tuple[str | None, str]:
    if settings.is_sqlite and not os.path.exists(settings.db_url.split("///", 1)[1]):
        return None, db.head_revision()  # no database yet; status creates nothing

    async def run() -> str | None:
        engine = db.make_engine(settings.db_url, schema=settings.db_schema)
        try:
            return await db.current_revision(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run()), db.head_revision()


def rotate_key(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Re-wrap every data key under a new master key; write the new key where the old one was."""
    old = load_master_key(settings.data_dir)
    new_key = sx.new_key()

    async def run() -> int:
        engine = db.make_engine(settings.db_url, schema=settings.db_schema)
        try:
            async with engine.begin() as conn:
                return await rotate_master_key(conn, old, new_key)
        finally:
            await engine.dispose()

    count = asyncio.run(run())
    if os.environ.get("SEALBOX_MASTER_KEY"):
        out.write(
            "The master key comes from SEALBOX_MASTER_KEY: set it to the new value below, "
            "then restart.\n"
        )
        out.write(b64u_encode(new_key) + "\n")
    else:
        path = settings.data_dir / KEY_FILE
        tmp = path.with_suffix(".new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(b64u_encode(new_key) + "\n")
        os.replace(tmp, path)
    return count


def serve(settings: Settings, out: TextIO = sys.stdout) -> None:
    """Migrate, make sure the vault exists, print the banner, and serve until Ctrl-C."""
    out.write(f"sealbox {__version__}: preparing the relay…\n")
    out.flush()
    revision = migrate(settings)
    asyncio.run(_serve(settings, revision, out))


async def _serve(settings: Settings, revision: str, out: TextIO) -> None:
    engine = db.make_engine(settings.db_url, schema=settings.db_schema)
    relay = Relay(settings=settings, engine=engine, master_key=load_master_key(settings.data_dir))
    try:
        status = await ensure_vault(relay)
        where = "SQLite " + settings.db_url.split("///", 1)[1] if settings.is_sqlite else (
            "PostgreSQL " + engine.url.render_as_string(hide_password=True)
        )  # fmt: skip
        out.write(
            f"\n  sealbox relay   {settings.base_url}\n"
            f"  database        {where} (schema revision {revision})\n"
            f"  data directory  {settings.data_dir}\n"
            f"  vault           {status.vault}\n"
        )
        if status.setup_token:
            out.write(
                "\n  This vault has no approver yet. Create the first one on a trusted device:\n\n"
                f"    sealbox approver init --server {settings.base_url} "
                f"--setup-token {status.setup_token}\n\n"
                "  (or pass `--setup-token -` and paste the token, to keep it out of the\n"
                "  process list.)\n"
                "  The setup token works once, and only until the relay restarts.\n"
            )
        out.write("\n  Press Ctrl-C to stop.\n\n")
        out.flush()
        config = uvicorn.Config(
            create_app(relay, owns_engine=True), host=settings.host, port=settings.port,
            log_level="warning", access_log=False, lifespan="on",
        )  # fmt: skip
        await uvicorn.Server(config).serve()
        out.write("sealbox relay stopped.\n")
    finally:
        await engine.dispose()
