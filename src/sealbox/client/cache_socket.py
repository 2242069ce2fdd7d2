"""Where a profile's cache agent listens, and the one request a cache hit of the CLI makes.

``sealbox read`` answered by the agent is a whole process whose cost is
Python's start and its imports; this module is all of sealbox such a read
imports beyond the entry point.  It imports only ``_socket`` (written in C)
besides ``os``: ``socket``, ``json`` and ``base64`` would pull in ``enum``
and ``re`` and cost the read more than everything else it does
(``bench/cached_read.py`` measures it).
Everything else that talks to the agent uses :mod:`sealbox.client.cache`.
"""

from __future__ import annotations

import _socket  # socket.py's wrapper (its enums) costs more than the request; see above
import os
import sys

__all__ = ["TIMEOUT", "lookup", "socket_dir", "socket_file"]

#: Seconds a client waits for the agent before it reads as if no agent ran.
TIMEOUT = 2.0
#: Most bytes of the one answer :func:`lookup` reads (one value; values are small).
_ANSWER_MAX = 1 << 20
_HEX = b"0123456789abcdef"


def socket_dir() -> str:
    """The directory of this user's agent sockets (a path; nothing is looked at or made).

    ``SEALBOX_RUNTIME_DIR`` if set; else ``$XDG_RUNTIME_DIR/sealbox`` (the
    per-user runtime directory the session manager makes: 0700, emptied at
    logout); else ``sealbox-UID`` in ``$TMPDIR`` or ``/tmp``, as tmux does.
    That name is predictable, so the agent listens there only if it is a
    directory of this user, made 0700 (``cache.prepare_socket_dir``), and a
    client talks only to an agent of its own user (``SO_PEERCRED``).
    platformdirs would do much the same, but warns on every command without
    ``XDG_RUNTIME_DIR`` and costs a cache hit more than the rest of the read.
    """
    configured = os.environ.get("SEALBOX_RUNTIME_DIR")
    if configured:
        return configured
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return os.path.join(runtime, "sealbox")
    tmp = os.environ.get("TMPDIR")
    base = tmp if tmp and os.path.isabs(tmp) else "/tmp"  # noqa: S108 - owner and mode checked
    return os.path.join(base, f"sealbox-{_uid()}")


def _uid() -> int | None:
    # Not POSIX (Windows): no user ids, and no agent either (it needs Unix sockets).
    return os.getuid() if hasattr(os, "getuid") else None


def socket_file(profile: str) -> str:
    """The agent socket of ``profile`` (a path; nothing is looked at or made)."""
    return os.path.join(socket_dir(), f"cache-{profile}.sock")


def peer_uid(sock: _socket.socket) -> int | None:
    """The user id of the process at the other end of a Unix socket (``None``: cannot tell).

    A caller that cannot tell treats the peer as a stranger: values are never sent to,
    nor taken from, a socket whose owner is unknown (another user may have made it)."""
    option = getattr(_socket, "SO_PEERCRED", None)
    if option is None:  # pragma: no cover - not Linux
        return None
    creds = sock.getsockopt(_socket.SOL_SOCKET, option, 12)  # struct ucred: pid, uid, gid
    return int.from_bytes(creds[4:8], sys.byteorder)


def lookup(profile: str, ref: str) -> bytes | None:
    """The value the agent of ``profile`` serves this process for ``ref``; ``None`` otherwise.

    ``None`` covers everything that is not a plain hit (no agent, a miss, an
    agent of another user, an answer of any other shape than expected): the
    caller then reads the way it would without an agent, and that path says
    what is wrong, if anything is.  The request is the agent's ordinary
    ``get`` (:mod:`sealbox.client.cache`); only the JSON is written and
    checked by hand, which is why a reference must be plain printable ASCII
    without quotes or backslashes (every valid reference is) to be asked here.
    """
    if not (ref.isascii() and ref.isprintable()) or '"' in ref or "\\" in ref:
        return None
    if not hasattr(_socket, "AF_UNIX"):  # pragma: no cover - no Unix sockets, no agent
        return None
    name = ref.encode()
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(TIMEOUT)
        sock.connect(socket_file(profile))
        if peer_uid(sock) != _uid():
            return None  # a socket someone else put in the way: ask it nothing
        sock.sendall(b'{"op": "get", "refs": ["' + name + b'"]}\n')
        answer = b""
        while not answer.endswith(b"\n") and len(answer) < _ANSWER_MAX:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            answer += chunk
    except OSError:
        return None
    finally:
        sock.close()
    # The one answer that is a hit, as the agent's json.dumps writes it (a test pins it).
    head, tail = b'{"hex": {"' + name + b'": "', b'"}}\n'
    if not (answer.startswith(head) and answer.endswith(tail)):
        return None
    encoded = answer[len(head) : -len(tail)]
    if encoded.translate(None, _HEX) or len(encoded) % 2:  # fromhex would skip spaces
        return None
    return bytes.fromhex(encoded.decode())
