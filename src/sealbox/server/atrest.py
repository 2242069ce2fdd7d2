"""The relay's master key (KEK) and per-project data keys (DEKs).

The KEK comes from ``SEALBOX_MASTER_KEY`` (unpadded base64url of 32 bytes) or
from ``master.key`` in the data directory, created 0600 at first start.  Each
project's DEK is wrapped by the KEK and stored in ``data_keys``; rotating the
KEK re-wraps every DEK and touches no blob.  Defence in depth only: sealbox's
blindness never depends on this layer.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sealbox.crypto import secrets as sx
from sealbox.crypto.encoding import b64u_decode, b64u_encode
from sealbox.server.store.tables import data_keys

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
        wrapped = await self._stored(engine, vault, project)
        if wrapped is None:
            try:
                async with engine.begin() as conn:
                    await conn.execute(
                        data_keys.insert().values(
                            vault_id=vault, project=project, kek_id=self.id,
                            wrapped=sx.wrap_key(self._key, sx.new_key(), vault, project),
                        )
                    )  # fmt: skip
            except IntegrityError:
                pass  # stored concurrently; read it back below
            wrapped = await self._stored(engine, vault, project)
            assert wrapped is not None
        dek = sx.unwrap_key(self._key, wrapped, vault, project)
        self._deks[(vault, project)] = dek
        return dek

    async def _stored(self, engine: AsyncEngine, vault: str, project: str) -> bytes | None:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    select(data_keys.c.wrapped).where(
                        data_keys.c.vault_id == vault, data_keys.c.project == project
                    )
                )
            ).first()
        return None if row is None else bytes(row.wrapped)

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
    rows = (await conn.execute(select(data_keys))).all()
    for row in rows:
        dek = sx.unwrap_key(old._key, row.wrapped, row.vault_id, row.project)
        await conn.execute(
            update(data_keys)
            .where(data_keys.c.vault_id == row.vault_id, data_keys.c.project == row.project)
            .values(wrapped=sx.wrap_key(new._key, dek, row.vault_id, row.project), kek_id=new.id)
        )
    return len(rows)
