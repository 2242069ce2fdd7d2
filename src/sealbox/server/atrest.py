"""The relay's master key (KEK) and per-project data keys (DEKs).

The KEK comes from ``SEALBOX_MASTER_KEY`` (unpadded base64url of 32 bytes) or
from ``master.key`` in the data directory, created 0600 at first start.  Each
project's DEK is wrapped by the KEK and stored in ``data_keys``; rotating the
KEK re-wraps every DEK and touches no blob.  Defence in depth only: sealbox's
blindness never depends on this layer.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sealbox.crypto import secrets as sx
from sealbox.crypto.encoding import b64u_decode, b64u_encode
from sealbox.server.store import datakeys
from sealbox.server.store.engine import writing

__all__ = ["MasterKey", "load_master_key", "rotate_master_key"]

KEY_FILE = "master.key"


class MasterKey:
    def __init__(self, key: bytes) -> None:
        self._key = key
        self.id = sx.key_id(key)
        self._deks: dict[tuple[str, str], bytes] = {}

    def __repr__(self) -> str:
        return f"MasterKey(id={self.id[:12]}…)"

    async def dek(self, engine: AsyncEngine, vault: str, project: str) -> bytes:
        """The project's data key, made and stored (wrapped) on first use.

        The key is cached only once it is known to be the stored one: a new key
        is inserted in a transaction of its own, and if another request (or
        replica) stored one first, that one is read back and used.
        """
        cached = self._deks.get((vault, project))
        if cached is not None:
            return cached
        async with engine.connect() as conn:
            wrapped = await datakeys.wrapped(conn, vault, project)
        if wrapped is None:
            async with writing(engine) as conn:
                await datakeys.insert_if_absent(
                    conn, vault, project, self.id,
                    sx.wrap_key(self._key, sx.new_key(), vault, project),
                )  # fmt: skip
                # Stored concurrently by another request or replica: use that one.
                wrapped = await datakeys.wrapped(conn, vault, project)
            assert wrapped is not None
        dek = sx.unwrap_key(self._key, wrapped, vault, project)
        self._deks[(vault, project)] = dek
        return dek

    def sealer(self, dek: bytes) -> Callable[[bytes, str, str, int, str, str], bytes]:
        """Seal blobs under ``dek``, each bound to its row identity."""
        return lambda data, *row: sx.seal_at_rest(dek, data, *row)

    def opener(self, dek: bytes) -> Callable[[bytes, str, str, int, str, str], bytes]:
        """Open blobs sealed under ``dek`` for the row they are read from."""
        return lambda sealed, *row: sx.open_at_rest(dek, sealed, *row)

    def seal(self, dek: bytes, data: bytes, *row: str | int) -> bytes:
        return sx.seal_at_rest(dek, data, *row)

    def open(self, dek: bytes, sealed: bytes, *row: str | int) -> bytes:
        return sx.open_at_rest(dek, sealed, *row)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


def load_master_key(data_dir: Path) -> MasterKey:
    """The KEK from the environment, else the key file (created 0600 if missing)."""
    from_env = os.environ.get("SEALBOX_MASTER_KEY")
    if from_env:
        return MasterKey(b64u_decode(from_env.strip(), length=32, what="SEALBOX_MASTER_KEY"))
    path = data_dir / KEY_FILE
    if not path.exists():
        _write_private(path, b64u_encode(sx.new_key()))
    if path.stat().st_mode & 0o077:
        raise PermissionError(f"{path} must be readable by its owner only (chmod 600)")
    return MasterKey(b64u_decode(path.read_text().strip(), length=32, what=str(path)))


async def rotate_master_key(conn: AsyncConnection, old: MasterKey, new_key: bytes) -> int:
    """Re-wrap every data key under ``new_key``; return how many were re-wrapped."""
    new = MasterKey(new_key)
    rows = await datakeys.all_wrapped(conn)
    for vault, project, wrapped in rows:
        dek = sx.unwrap_key(old._key, wrapped, vault, project)
        await datakeys.rewrap(
            conn, vault, project, new.id, sx.wrap_key(new._key, dek, vault, project)
        )
    return len(rows)
