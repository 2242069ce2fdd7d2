"""The local cache agent, as its clients see it: where it listens, and connections to it.

One agent per user and profile (:mod:`sealbox.client.cache_agent`, started by
``sealbox cache start``) keeps released values in its memory until their
signed ``cache_until`` and answers on a Unix socket in a 0700 directory.  The
socket is 0600, the agent answers only peers of its own user, and a client
here talks only to an agent of its own user (both check ``SO_PEERCRED``).

Where the socket is, and the one request of a ``sealbox read`` that the agent
answers, are in :mod:`sealbox.client.cache_socket` (that read imports nothing
else); this module is everything else a client says to the agent, over the
standard library's socket and JSON, never the HTTP client or the protocol.

Wire format: one JSON object per line each way; values are in hex (``bytes.hex``,
which needs no import to decode).  ``{"op": "get", "refs": [...]}`` →
``{"hex": {ref: value}}``, only the references the agent holds and serves to the
asking process; ``{"op": "put", "scope": "user" | "process-tree", "entries":
[{"ref", "hex", "until", "request"}]}`` → ``{"stored": n}``; ``{"op": "status"}``,
``{"op": "flush"}``, ``{"op": "stop"}``.  A refusal is ``{"error": text}``.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from sealbox.client.cache_socket import TIMEOUT, peer_uid, socket_dir, socket_file

if TYPE_CHECKING:
    from pathlib import Path

    from sealbox.client._flows import Read

T = TypeVar("T")

__all__ = [
    "AgentConnection",
    "SharedAgent",
    "connect",
    "explain_not_cached",
    "prepare_socket_dir",
    "shared",
    "socket_dir",
    "socket_file",
    "socket_path",
]

#: Most bytes one line (request or answer) may have: values are small; this bounds memory.
LINE_MAX = 4 << 20


# --- where the agent listens --------------------------------------------------------------


def socket_path(profile: str) -> Path:
    from pathlib import Path

    return Path(socket_file(profile))


def prepare_socket_dir(path: str) -> None:
    """Make ``path`` (and parents) if missing; it must be this user's directory; make it 0700.

    Raises ``PermissionError`` saying what to do when the directory is another
    user's or not a directory (someone may have made the predictable name first).
    """
    os.makedirs(path, mode=0o700, exist_ok=True)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(
            f"{path} is not a directory of this user, so the cache agent cannot listen there; "
            "set XDG_RUNTIME_DIR or SEALBOX_RUNTIME_DIR to a private directory"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)


# --- one connection -----------------------------------------------------------------------


class AgentConnection:
    """A blocking connection to the agent: one request at a time, one answer each."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._file = sock.makefile("rb")

    def __enter__(self) -> AgentConnection:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def call(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Send ``message``, return the answer; ``OSError`` if the agent is gone or refuses."""
        self._sock.sendall(json.dumps(message).encode() + b"\n")
        line = self._file.readline(LINE_MAX)
        if not line.endswith(b"\n"):
            raise OSError("the cache agent closed the connection")
        answer = json.loads(line)
        if not isinstance(answer, dict):
            raise OSError("the cache agent answered something else than an object")
        if "error" in answer:
            raise OSError(f"the cache agent refused: {answer['error']}")
        return answer

    def get(self, refs: Iterable[str]) -> dict[str, bytes]:
        """The values the agent holds (and serves to this process) of ``refs``, by reference."""
        values = self.call({"op": "get", "refs": list(refs)}).get("hex")
        if not isinstance(values, dict):
            raise OSError("the cache agent's answer has no values")
        return {ref: bytes.fromhex(value) for ref, value in values.items()}

    def put(self, read: Read, values: Mapping[str, bytes]) -> int:
        """Keep ``values`` (by reference) until the release's ``cache_until``, in its scope."""
        entries = [{"ref": r, "hex": v.hex(), "until": read.cache_until,
                    "request": read.request} for r, v in values.items()]  # fmt: skip
        scope = "process-tree" if read.cache_scope == "process-tree" else "user"
        return int(self.call({"op": "put", "scope": scope, "entries": entries})["stored"])

    def close(self) -> None:
        self._file.close()
        self._sock.close()


def connect(profile: str, *, timeout: float = TIMEOUT) -> AgentConnection | None:
    """A connection to the running agent of ``profile``, or ``None`` if none runs.

    An agent that is not of this user (a socket someone else put in the way)
    counts as none: nothing is sent to it.
    """
    if not hasattr(socket, "AF_UNIX"):  # pragma: no cover - no Unix sockets, no agent
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(socket_file(profile))
        if peer_uid(sock) != os.getuid():
            raise PermissionError("the cache agent's socket is another user's")
    except OSError:
        sock.close()
        return None
    return AgentConnection(sock)


# --- the SDK's connection: one per process and agent ---------------------------------------


class SharedAgent:
    """This process's connection to one profile's agent, shared by every client and thread.

    Opened on first use and kept: a cache hit is one round trip, not a
    connect, a round trip and a close.  One request at a time (a lock).  When
    the agent has gone away or restarted, the request is sent once more on a
    new connection.  A forked child gets a lock and, when it first asks, a
    connection of its own (the agent must see the child's pid for the
    ``process-tree`` scope, and two processes must not interleave on one
    socket).  Without an agent each request costs one failed ``connect``, so
    an agent started later is found at once.
    """

    def __init__(self, profile: str) -> None:
        self.profile = profile
        self._lock = threading.Lock()
        self._conn: AgentConnection | None = None
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        # Another thread may have held the lock at the fork; the child has only this one.
        self._lock = threading.Lock()
        self._drop()  # this process's descriptor only: the parent's connection stays open

    def _with(self, action: Callable[[AgentConnection], T]) -> T | None:
        """``action`` on the connection, opened or re-opened as needed; ``None``: no agent."""
        with self._lock:
            for _ in range(2):
                if self._conn is None:
                    self._conn = connect(self.profile)
                    if self._conn is None:
                        return None
                try:
                    return action(self._conn)
                except (OSError, ValueError, TypeError):  # gone, restarted, or another version
                    self._drop()
            return None

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def get(self, refs: Iterable[str]) -> dict[str, bytes]:
        """Values the agent holds for ``refs`` (and serves this process); nothing if none runs."""
        asked = list(refs)
        return self._with(lambda conn: conn.get(asked)) or {}

    def put(self, read: Read, values: Mapping[str, bytes]) -> bool:
        """Hand ``values`` to the agent; ``False`` if no agent took them."""
        return self._with(lambda conn: conn.put(read, values)) is not None

    def close(self) -> None:
        with self._lock:
            self._drop()


_shared: dict[str, SharedAgent] = {}
_shared_lock = threading.Lock()


def shared(profile: str) -> SharedAgent:
    """This process's :class:`SharedAgent` for ``profile`` (per socket: the environment counts)."""
    key = socket_file(profile)
    agent = _shared.get(key)
    if agent is None:
        with _shared_lock:
            agent = _shared.get(key)
            if agent is None:
                if not _shared:
                    import atexit

                    atexit.register(_close_all)
                agent = _shared[key] = SharedAgent(profile)
    return agent


def _close_all() -> None:
    for agent in list(_shared.values()):
        agent.close()


# --- saying why nothing was cached ----------------------------------------------------------

_explained: set[tuple[str, ...]] = set()


def explain_not_cached(
    profile: str, read: Read, policies: Mapping[str, tuple[float, Mapping[str, Any]]]
) -> None:
    """Say why a read that asked to be cached left nothing in the cache (once per process).

    A warning on the ``sealbox.cache`` logger: where logging is not set up
    (the CLI), Python prints it on stderr; an application decides where it
    goes.  The reasons, first that applies: the relay's policy for an item
    allows no caching (``policies``: the effective policies the read looked
    up, by path); the approver released without caching; no agent took them.
    """
    import time

    if read.cache_until > time.time():
        start = "sealbox cache start" + ("" if profile == "default" else f" --profile {profile}")
        key: tuple[str, ...] = ("no agent", profile)
        text = (f"nothing was cached: no cache agent runs for profile {profile!r}.\n"
                f"  Start one with `{start}`; until the release's cache time ends, "
                "reads then need no approval.")  # fmt: skip
    else:
        closed = sorted(
            path for path in read.values
            if path in policies and not int(policies[path][1].get("max_cache_seconds") or 0)
        )  # fmt: skip
        if closed:
            path = closed[0]
            pattern = "/".join([*path.split("/")[:2], "*"])
            key = ("policy", path)
            text = (f"nothing was cached: the policy for {path} allows no caching.\n"
                    f"  An approver can allow it: `sealbox approver policy {pattern} "
                    "--approvers … --max-cache SECONDS`.")  # fmt: skip
        else:
            key = ("approver", *sorted(read.values))
            text = ("nothing was cached: the approver released the values without caching.\n"
                    "  For the automated approver (`sealbox approver serve`), the matching "
                    "rule's cache_seconds sets how long.")  # fmt: skip
    if key in _explained:
        return
    _explained.add(key)
    import logging

    logging.getLogger("sealbox.cache").warning("sealbox: %s", text)
