"""``sealbox up`` and the operator commands: migrate, status, master-key rotation."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import TextIO

import uvicorn

from sealbox import __version__
from sealbox.crypto import secrets as sx
from sealbox.crypto.encoding import b64u_encode
from sealbox.server.app import create_app
from sealbox.server.atrest import KEY_FILE, load_master_key, rotate_master_key
from sealbox.server.config import Settings
from sealbox.server.notify import Hub
from sealbox.server.relay import Relay
from sealbox.server.services.directory import ensure_vault
from sealbox.server.store import engine as db

__all__ = ["CannotListen", "db_status", "migrate", "rotate_key", "serve"]

# How long a stop waits for requests in progress before cancelling them.  Long
# polls and streams end at once (the hub is closed first), so this bounds only
# requests stuck elsewhere, e.g. on an unresponsive database.
GRACE_SECONDS = 5
BACKLOG = 2048  # uvicorn's default

_WHY_NOT = {
    errno.EADDRINUSE: (
        "the address is already in use (is another relay running? choose another with --port)"
    ),
    errno.EACCES: (
        "permission denied (ports below 1024 need privileges; choose another with --port)"
    ),
    errno.EADDRNOTAVAIL: "this machine has no such address (check --host)",
}


class CannotListen(Exception):
    """``sealbox up`` cannot listen on its address; the message says why and what to do."""


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


def _listen(host: str, port: int) -> list[socket.socket]:
    """Sockets listening on ``host:port`` (every address the name has), or :exc:`CannotListen`.

    The relay takes its port before it touches the database: a second
    ``sealbox up`` on a taken port must stop before it changes anything (it
    would replace the running relay's setup token).
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CannotListen(f"cannot listen on {where}: {exc.strerror} (check --host)") from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            # As asyncio does: a restart may take the port while the last run's
            # connections linger in TIME_WAIT (a listening socket still excludes it).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # "::" takes IPv6 only, so that an IPv4 entry of the same name can bind too.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                sock.close()
                if exc.errno == errno.EADDRNOTAVAIL:
                    continue  # e.g. "localhost" -> ::1 where IPv6 is off, as asyncio skips it
                raise
            sockets.append(sock)
            # Listening now, not when uvicorn starts: two relays starting at once
            # can both bind with SO_REUSEADDR, but only one can listen.
            sock.listen(BACKLOG)
        if not sockets:
            raise OSError(errno.EADDRNOTAVAIL, os.strerror(errno.EADDRNOTAVAIL))
    except OSError as exc:
        for sock in sockets:
            sock.close()
        why = _WHY_NOT.get(exc.errno or 0, exc.strerror or str(exc))
        raise CannotListen(f"cannot listen on {where}: {why}") from exc
    return sockets


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def serve(settings: Settings, out: TextIO = sys.stdout) -> None:
    """Take the port, migrate, make sure the vault exists, print the banner, serve until stopped.

    One Ctrl-C or SIGTERM stops the relay gracefully (see :class:`_Server`);
    :exc:`CannotListen` if the address cannot be had.
    """
    sockets = _listen(settings.host, settings.port)
    in_main = threading.current_thread() is threading.main_thread()
    # SIGTERM while preparing stops like Ctrl-C does (by default it would kill
    # the process mid-migration with status 143); once serving, _serve's own
    # handlers take over.
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main else None
    try:
        out.write(f"sealbox {__version__}: preparing the relay…\n")
        out.flush()
        revision = migrate(settings)
        asyncio.run(_serve(settings, revision, out, sockets, handle_signals=in_main))
    finally:
        for sock in sockets:
            sock.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _Server(uvicorn.Server):
    """uvicorn's server, stopped by the runner's signal handlers rather than its own."""

    def __init__(self, config: uvicorn.Config, hub: Hub, out: TextIO) -> None:
        super().__init__(config)
        self._hub = hub
        self._out = out
        self._stopping = False
        self._said_stopped = False

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's handlers re-raise the signal once the server has stopped:
        # SIGTERM then kills the process (status 143) before it says it stopped,
        # and a second Ctrl-C ends in a traceback.  _serve installs stop() instead.
        yield

    def stop(self) -> None:
        """Stop gracefully; called again (a second Ctrl-C), stop at once."""
        if not self._stopping:
            self._stopping = True
            # uvicorn waits for open connections before it stops; ending every
            # long poll and event stream first is what lets it stop at once.
            self._hub.close()
            self.should_exit = True
            return
        # Requests still in progress are abandoned: their transactions roll
        # back, as after a crash, and nothing half-done is committed.
        self.say_stopped()
        sys.stderr.flush()
        os._exit(0)

    def say_stopped(self) -> None:
        if not self._said_stopped:  # once, whichever of _serve and a second signal comes first
            self._said_stopped = True
            self._out.write("sealbox relay stopped.\n")
            self._out.flush()


async def _serve(
    settings: Settings, revision: str, out: TextIO, sockets: list[socket.socket],
    *, handle_signals: bool,
) -> None:  # fmt: skip
    engine = db.make_engine(settings.db_url, schema=settings.db_schema)
    relay = Relay(settings=settings, engine=engine, master_key=load_master_key(settings.data_dir))
    config = uvicorn.Config(
        create_app(relay, owns_engine=True), log_level="warning", access_log=False,
        lifespan="on", timeout_graceful_shutdown=GRACE_SECONDS,
        # Forwarded headers are believed only from --trusted-proxy networks, by the app
        # (sealbox.server.auth.peer); uvicorn's own handling trusts 127.0.0.1 by default.
        proxy_headers=False,
    )  # fmt: skip
    server = _Server(config, relay.hub, out)
    if handle_signals:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, server.stop)
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
        if settings.trusted_proxies:
            # Said at start: a forgotten or mistyped proxy network changes every source address.
            out.write(f"  trusted proxies {', '.join(settings.trusted_proxies)}\n")
        if status.setup_token:
            out.write(
                "\n  This vault has no approver yet. Create the first one on a trusted device,\n"
                "  in a browser (a passkey holds its keys):\n\n"
                f"    {settings.base_url}/console/setup#setup_token={status.setup_token}\n\n"
                "  (the token is after '#': browsers never send that part to the relay.)\n"
                "  Or in a terminal:\n\n"
                f"    sealbox approver init --server {settings.base_url} "
                f"--setup-token {status.setup_token}\n\n"
                "  (or pass `--setup-token -` and paste the token, to keep it out of the\n"
                "  process list.)\n"
                "  The setup token works once, and only until the relay restarts.\n"
            )
        out.write("\n  Press Ctrl-C to stop.\n\n")
        out.flush()
        if not server.should_exit:  # unless stopped while preparing
            await server.serve(sockets)
        server.say_stopped()
    finally:
        await engine.dispose()
