"""The local cache agent: released values kept in memory until their signed ``cache_until``.

One agent per user and profile listens on a Unix socket (see
:mod:`sealbox.client.cache` for where, and for the wire format); the socket is
0600 in a 0700 directory and every connection's peer credentials
(``SO_PEERCRED``) must be this user's, so no other account can ask it
anything.  It keeps values only in this process's memory (never on disk),
only until the ``cache_until`` the approvers signed (already capped by the
client's request and the relay's policy), and, for the ``process-tree``
scope, serves them only to descendants of the parent of the process that
put them (the shell or job that ran the read).  ``flush`` overwrites and drops
everything.  Each hit is reported to the relay's audit in batches (the relay
learns which release was reused, never the value); reads need no network and
no approval.

The agent belongs to its profile's login: when the profile file disappears
(``sealbox logout``) or belongs to another client (a new login under the same
name), it wipes every value and stops, so no value outlives the login that
released it.  Run as ``python -m sealbox.client.cache_agent PROFILE`` (what
``sealbox cache start`` does) or in-process with :func:`serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sealbox.client import cache
from sealbox.client import profile as profiles
from sealbox.errors import SealboxError

__all__ = ["serve"]

#: Seconds between batches of cache-hit reports to the relay.
REPORT_EVERY = 2.0
#: Most hits' requests reported in one batch.
REPORT_BATCH = 100


_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid (Linux)


def _peer(sock: socket.socket) -> tuple[int, int]:
    """(pid, uid) of the process at the other end of a Unix socket."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, _ = _PEERCRED.unpack(creds)
    return pid, uid


@dataclass
class _Entry:
    value: bytearray = field(repr=False)
    until: int
    request: str
    root: int | None
    """For the process-tree scope: the pid whose descendants may read it."""


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    return int(stat.rsplit(")", 1)[1].split()[1])


def _descends(pid: int, root: int) -> bool:
    seen = 0
    current: int | None = pid
    while current and seen < 256:
        if current == root:
            return True
        current = _parent(current)
        seen += 1
    return False


class _Login:
    """Which login the agent serves: the profile file's client, re-read when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.client_id = profiles.load(path).client_id
        self._seen = self._signature()

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        return info.st_ino, info.st_mtime_ns, info.st_size

    def current(self) -> bool:
        """Whether the profile still holds this login (one ``stat`` unless the file changed).

        Refreshed tokens rewrite the file (a new inode): then it is read again.
        """
        signature = self._signature()
        if signature is None:
            return False
        if signature != self._seen:
            try:
                if profiles.load(self.path).client_id != self.client_id:
                    return False
            except (SealboxError, OSError):  # gone, or no longer a readable profile
                return False
            self._seen = signature
        return True


class _Agent:
    def __init__(self, profile: str, login: _Login) -> None:
        self.profile = profile
        self.login = login
        self.entries: dict[str, _Entry] = {}
        self.hits: dict[str, list[int]] = {}
        """request id -> [count, first_at, last_at], waiting to be reported."""
        self.stopped = asyncio.Event()
        self.reported = 0
        self.report_errors = 0
        self.connections = 0
        """Connections accepted so far (a client that keeps one open shows here as one)."""

    def _wipe(self, entry: _Entry) -> None:
        entry.value[:] = b"\0" * len(entry.value)

    def wipe_all(self) -> int:
        count = len(self.entries)
        for entry in self.entries.values():
            self._wipe(entry)
        self.entries.clear()
        return count

    def _expire(self) -> None:
        now = time.time()
        for ref in [r for r, e in self.entries.items() if e.until <= now]:
            self._wipe(self.entries.pop(ref))

    def check_login(self) -> bool:
        """Wipe and stop if the profile was logged out or logged in again as another client."""
        if self.login.current():
            return True
        self.wipe_all()
        self.hits.clear()  # the session that could report them is gone
        self.stopped.set()
        return False

    def handle(self, message: Mapping[str, Any], peer_pid: int) -> dict[str, Any]:
        if not self.check_login():
            return {"error": f"profile {self.profile!r} was logged out; the agent stopped"}
        self._expire()
        op = message.get("op")
        if op == "get":
            refs = message.get("refs")
            if not isinstance(refs, list):
                return {"error": "refs must be a list"}
            found = {}
            now = int(time.time())
            for ref in refs:
                entry = self.entries.get(ref) if isinstance(ref, str) else None
                if entry is None or (
                    entry.root is not None and not _descends(peer_pid, entry.root)
                ):
                    continue
                found[ref] = entry.value.hex()
                hit = self.hits.setdefault(entry.request, [0, now, now])
                hit[0] += 1
                hit[2] = now
            return {"hex": found}
        if op == "put":
            scope = message.get("scope")
            entries = message.get("entries")
            if scope not in ("user", "process-tree") or not isinstance(entries, list):
                return {"error": "put needs a scope and entries"}
            root = _parent(peer_pid) if scope == "process-tree" else None
            if scope == "process-tree" and root is None:
                # Without the asker's parent the entry could only widen to the whole user:
                # refuse it rather than serve it to processes the scope excludes.
                return {"error": "cannot tell the process tree of the caller"}
            for e in entries:
                try:
                    ref, until, request = str(e["ref"]), int(e["until"]), str(e["request"])
                    value = bytearray.fromhex(e["hex"])
                except (KeyError, TypeError, ValueError):
                    return {"error": "malformed entry"}
                if until > time.time():
                    old = self.entries.pop(ref, None)
                    if old is not None:
                        self._wipe(old)
                    self.entries[ref] = _Entry(value=value, until=until, request=request, root=root)
            return {"stored": len(entries)}
        if op == "status":
            return {"pid": os.getpid(), "profile": self.profile, "entries": [
                {"ref": r, "until": e.until, "request": e.request,
                 "scope": "process-tree" if e.root is not None else "user"}
                for r, e in sorted(self.entries.items())
            ], "hits_reported": self.reported, "report_errors": self.report_errors,
               "connections": self.connections}  # fmt: skip
        if op == "flush":
            return {"flushed": self.wipe_all()}
        if op == "stop":
            self.stopped.set()
            return {"stopping": True}
        return {"error": "unknown op"}

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            pid, uid = _peer(writer.get_extra_info("socket"))
            if uid != os.getuid():
                return  # another account: not a word
            self.connections += 1
            while line := await reader.readline():
                try:
                    message = json.loads(line)
                except ValueError:
                    message = {}
                answer = self.handle(message if isinstance(message, dict) else {}, pid)
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (OSError, ValueError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def _report(self) -> None:
        batch, self.hits = self.hits, {}
        if not batch:
            return
        from sealbox.client.sdk import Client

        hits: list[dict[str, Any]] = [{"request": r, "hits": c, "first_at": f, "last_at": last}
                for r, (c, f, last) in batch.items()]  # fmt: skip
        try:
            with Client(self.profile, cache=False) as client:
                client.report_cache_hits(hits[:REPORT_BATCH])
            self.reported += sum(h["hits"] for h in hits[:REPORT_BATCH])
            hits = hits[REPORT_BATCH:]  # the rest goes in the next batch
        except Exception:
            self.report_errors += 1
        for h in hits:
            old = self.hits.setdefault(h["request"], [0, h["first_at"], h["last_at"]])
            old[0] += h["hits"]

    async def reporter(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopped.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopped.wait(), REPORT_EVERY)
            if not self.check_login():
                break
            self._expire()
            await loop.run_in_executor(None, self._report)


async def _serve(profile: str, path: str, ready: threading.Event | None) -> None:
    login = _Login(profiles.profile_path(profile))  # NotLoggedIn: no agent for no login
    cache.prepare_socket_dir(os.path.dirname(path))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    agent = _Agent(profile, login)
    old = os.umask(0o177)  # the socket is created 0600, never briefly wider
    try:
        server = await asyncio.start_unix_server(agent.connection, path=path, limit=cache.LINE_MAX)
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    if ready is not None:
        ready.set()
    reporter = asyncio.create_task(agent.reporter())
    async with server:
        await agent.stopped.wait()
    await reporter
    agent.wipe_all()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def serve(profile: str, *, ready: threading.Event | None = None) -> None:
    """Run the agent for ``profile`` until it is told to stop or its login ends."""
    asyncio.run(_serve(profile, cache.socket_file(profile), ready))


if __name__ == "__main__":  # pragma: no cover - `sealbox cache start` runs this detached
    serve(sys.argv[1])
