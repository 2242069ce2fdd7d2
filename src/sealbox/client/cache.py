"""The local cache agent: released values kept in memory until their signed ``cache_until``.

One agent per user and profile listens on a Unix socket in a 0700 directory;
the socket is 0600 and every connection's peer credentials (``SO_PEERCRED``)
must be this user's, so no other account can ask it anything.  It keeps
values only in this process's memory (never on disk), only until the
``cache_until`` the approvers signed (already capped by the client's request
and the relay's policy), and, for the ``process-tree`` scope, serves them
only to descendants of the process tree that asked.  ``flush`` overwrites and
drops everything.  Each hit is reported to the relay's audit in batches (the
relay learns which release was reused, never the value); reads need no
network and no approval.

Wire format: one JSON object per line each way.  ``{"op": "get", "refs": [...]}``,
``{"op": "put", "scope": ..., "entries": [{"ref", "value" (base64url), "until",
"request"}]}``, ``{"op": "status"}``, ``{"op": "flush"}``, ``{"op": "stop"}``.
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

import platformdirs

from sealbox.crypto.encoding import b64u_decode, b64u_encode

__all__ = ["AgentConnection", "connect", "serve", "socket_path"]

#: Most bytes one request line may have (values are small; this bounds memory).
LINE_MAX = 4 << 20
#: Seconds between batches of cache-hit reports to the relay.
REPORT_EVERY = 2.0


def socket_path(profile: str) -> Path:
    base = os.environ.get("SEALBOX_RUNTIME_DIR") or platformdirs.user_runtime_dir("sealbox")
    return Path(base) / f"cache-{profile}.sock"


@dataclass
class _Entry:
    value: bytearray = field(repr=False)
    until: int
    request: str
    root: int | None
    """For the process-tree scope: the pid whose descendants may read it."""


def _peer(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", creds)
    return pid, uid, gid


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


class _Agent:
    def __init__(self, profile: str) -> None:
        self.profile = profile
        self.entries: dict[str, _Entry] = {}
        self.hits: dict[str, list[int]] = {}
        """request id -> [count, first_at, last_at], waiting to be reported."""
        self.stopped = asyncio.Event()
        self.reported = 0
        self.report_errors = 0

    def _wipe(self, entry: _Entry) -> None:
        entry.value[:] = b"\0" * len(entry.value)

    def _expire(self) -> None:
        now = time.time()
        for ref in [r for r, e in self.entries.items() if e.until <= now]:
            self._wipe(self.entries.pop(ref))

    def handle(self, message: Mapping[str, Any], peer_pid: int) -> dict[str, Any]:
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
                found[ref] = b64u_encode(bytes(entry.value))
                hit = self.hits.setdefault(entry.request, [0, now, now])
                hit[0] += 1
                hit[2] = now
            return {"values": found}
        if op == "put":
            scope = message.get("scope")
            entries = message.get("entries")
            if scope not in ("user", "process-tree") or not isinstance(entries, list):
                return {"error": "put needs a scope and entries"}
            root = _parent(peer_pid) if scope == "process-tree" else None
            for e in entries:
                try:
                    ref, until, request = str(e["ref"]), int(e["until"]), str(e["request"])
                    value = bytearray(b64u_decode(e["value"]))
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
            ], "hits_reported": self.reported, "report_errors": self.report_errors}  # fmt: skip
        if op == "flush":
            count = len(self.entries)
            for entry in self.entries.values():
                self._wipe(entry)
            self.entries.clear()
            return {"flushed": count}
        if op == "stop":
            self.stopped.set()
            return {"stopping": True}
        return {"error": "unknown op"}

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        try:
            pid, uid, _ = _peer(sock)
            if uid != os.getuid():
                return  # another account: not a word
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
                client.report_cache_hits(hits[:100])
            self.reported += sum(h["hits"] for h in hits[:100])
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
            self._expire()
            await loop.run_in_executor(None, self._report)


async def _serve(profile: str, path: Path, ready: threading.Event | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.chmod(0o700)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    agent = _Agent(profile)
    old = os.umask(0o177)  # the socket is created 0600, never briefly wider
    try:
        server = await asyncio.start_unix_server(agent.connection, path=str(path), limit=LINE_MAX)
    finally:
        os.umask(old)
    path.chmod(0o600)
    if ready is not None:
        ready.set()
    reporter = asyncio.create_task(agent.reporter())
    async with server:
        await agent.stopped.wait()
    await reporter
    for entry in agent.entries.values():
        agent._wipe(entry)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def serve(profile: str, *, ready: threading.Event | None = None) -> None:
    """Run the agent for ``profile`` until it is told to stop."""
    asyncio.run(_serve(profile, socket_path(profile), ready))


class AgentConnection:
    """A client's connection to the agent (blocking; each call is one round trip)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._file = sock.makefile("rb")

    def call(self, message: Mapping[str, Any]) -> dict[str, Any]:
        self._sock.sendall(json.dumps(message).encode() + b"\n")
        line = self._file.readline(LINE_MAX)
        if not line:
            raise OSError("the cache agent closed the connection")
        answer = json.loads(line)
        if not isinstance(answer, dict) or "error" in answer:
            raise OSError(f"the cache agent refused: {answer.get('error')}")
        return answer

    def get(self, refs: list[str]) -> dict[str, bytes]:
        try:
            values = self.call({"op": "get", "refs": refs})["values"]
        except (OSError, ValueError, KeyError):
            return {}
        return {r: b64u_decode(v) for r, v in values.items()}

    def put(self, read: Any, values: Mapping[str, bytes]) -> None:
        entries = [{"ref": r, "value": b64u_encode(v), "until": read.cache_until,
                    "request": read.request} for r, v in values.items()]  # fmt: skip
        scope = "process-tree" if read.cache_scope == "process-tree" else "user"
        with contextlib.suppress(OSError, ValueError):
            self.call({"op": "put", "scope": scope, "entries": entries})

    def close(self) -> None:
        self._file.close()
        self._sock.close()


def connect(profile: str, *, timeout: float = 2.0) -> AgentConnection | None:
    """A connection to the running agent of ``profile``, or ``None`` if none runs."""
    path = socket_path(profile)
    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None
    return AgentConnection(sock)


if __name__ == "__main__":  # pragma: no cover - `sealbox cache start` runs this detached
    serve(sys.argv[1])
