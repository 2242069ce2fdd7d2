"""The requesting process, as it describes itself in a signed statement's ``context``.

Approvers show this to people, so it names what a person needs to judge a
request: host, user, process id and parent, executable (and its SHA-256),
command line and working directory.  Values are cut to the lengths the
protocol allows and display-unsafe characters are replaced, so a strange
command line never makes a request unsignable.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import os
import socket
import sys
from collections.abc import Sequence

from sealbox._relay.text import safe_text as _safe
from sealbox.protocol.statements import RequestContext

__all__ = ["process_context"]

MAX_ARGS = 64
MAX_ARG = 512


@functools.cache
def _exe() -> tuple[str | None, str | None]:
    try:
        path = os.path.realpath("/proc/self/exe") if os.path.exists("/proc/self/exe") else None
        path = path or os.path.realpath(sys.executable)
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return path, digest.hexdigest()
    except OSError:
        return None, None


def process_context(
    argv: Sequence[str] | None = None, *, agent_session: str | None = None
) -> RequestContext:
    """This process's context (``argv`` defaults to its own command line)."""
    try:
        user: str | None = getpass.getuser()
    except (KeyError, OSError):
        user = None
    exe, exe_sha256 = _exe()
    args = list(sys.argv if argv is None else argv)[:MAX_ARGS]
    try:
        cwd: str | None = os.getcwd()
    except OSError:
        cwd = None
    return RequestContext(
        host=_safe(socket.gethostname(), 253) or None,
        user=_safe(user, 256) if user else None,
        uid=os.getuid() if hasattr(os, "getuid") else None,
        pid=os.getpid(),
        ppid=os.getppid(),
        exe=_safe(exe, 1000) if exe else None,
        exe_sha256=exe_sha256,
        argv=tuple(_safe(a, MAX_ARG) for a in args),
        cwd=_safe(cwd, 1000) if cwd else None,
        agent_session=_safe(agent_session, 256) if agent_session else None,
    )
