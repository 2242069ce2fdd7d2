"""Private files of a client or approver device: where they live, written whole, locked.

A private file is written through a temporary file of our own (0600), then
renamed over the old one: a reader sees the old file or the new one, never
half of one, and two writers (threads or processes) never share a temporary
file.  Directories holding them are 0700.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["config_dir", "locked", "private_dir", "write_private"]


def config_dir() -> Path:
    """Where profiles and approver key files live (``SEALBOX_CONFIG_DIR`` overrides)."""
    configured = os.environ.get("SEALBOX_CONFIG_DIR")
    if configured:
        return Path(configured)
    # platformdirs is imported only here: a command that is told where to look
    # (every test, every cache hit with SEALBOX_CONFIG_DIR) does not pay for it.
    import platformdirs

    return Path(platformdirs.user_config_dir("sealbox"))


def private_dir(path: Path) -> None:
    """Make ``path`` (and missing parents) as 0700; tighten it if it is ours and looser."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(0o700)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock beside ``path`` while reading and rewriting it.

    Two commands refreshing one session at once would present the same
    refresh token twice, and the relay revokes a family on reuse.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no advisory locks
        yield
        return
    private_dir(path.parent)
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, readable by its owner only."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
