"""The vault row and its approver directory (the signed chain of links), and their cache."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import jws
from sealbox.protocol import directory as dirs
from sealbox.server.errors import Conflict, NotFound, Unavailable
from sealbox.server.store.tables import directory_links, vaults

__all__ = [
    "FRESH_SECONDS",
    "Directories",
    "VaultRow",
    "append_link",
    "first_vault",
    "head",
    "insert_vault",
    "lock_vault",
    "ping",
    "set_setup_token",
    "set_up",
]

#: Within this long of the last check a cached directory is used without asking
#: the database (the hot path of every signed request).
FRESH_SECONDS = 1.0


@dataclass(frozen=True)
class VaultRow:
    id: str
    created_at: int
    setup_token_hash: str | None
    fingerprint: str | None
    """Link 0's hash without ``sha256:``, once the vault is set up."""


def _vault(row: Any) -> VaultRow:
    return VaultRow(row.id, row.created_at, row.setup_token_hash, row.fingerprint)


class Directories:
    """Verified directories by vault, each with the head it was verified at.

    Every signed request needs the current approver set; re-verifying the
    whole chain each time would cost one Ed25519 verification per link.  The
    cache is keyed by the stored head, so a link appended by another replica
    is seen within :data:`FRESH_SECONDS`; one appended through this process
    drops the entry at once (:meth:`forget`).
    """

    def __init__(self) -> None:
        self._verified: dict[str, tuple[float, dirs.Directory]] = {}

    def forget(self, vault: str) -> None:
        self._verified.pop(vault, None)

    async def load(self, conn: AsyncConnection, vault: str) -> dirs.Directory:
        """The vault's directory as stored, verified; raises if the vault has none."""
        entry = self._verified.get(vault)
        if entry is not None and time.monotonic() - entry[0] < FRESH_SECONDS:
            return entry[1]
        row = (await conn.execute(select(vaults.c.fingerprint).where(vaults.c.id == vault))).first()
        if row is None:
            raise NotFound("no_such_vault", "this relay has no such vault")
        if row.fingerprint is None:
            raise Conflict(
                "vault_not_set_up", "the vault has no approver yet",
                "Create the first approver with the setup token printed by `sealbox up`.",
            )  # fmt: skip
        pinned = "sha256:" + row.fingerprint
        stored = await head(conn, vault)
        cached = entry[1] if entry is not None else None
        if (
            cached is not None
            and stored is not None
            and cached.fingerprint == pinned
            and (cached.head.seq, cached.head.hash) == stored
        ):
            self._verified[vault] = (time.monotonic(), cached)
            return cached
        links = (
            await conn.execute(
                select(directory_links.c.token)
                .where(directory_links.c.vault_id == vault)
                .order_by(directory_links.c.seq)
            )
        ).scalars()
        directory = dirs.verify_directory(list(links), pinned=pinned)
        self._verified[vault] = (time.monotonic(), directory)
        return directory


async def vault_exists(conn: AsyncConnection, vault: str) -> bool:
    return (await conn.execute(select(vaults.c.id).where(vaults.c.id == vault))).first() is not None


async def first_vault(conn: AsyncConnection) -> VaultRow | None:
    """The vault this relay serves (one per relay today), if it was created."""
    row = (await conn.execute(select(vaults).limit(1))).first()
    return None if row is None else _vault(row)


async def lock_vault(conn: AsyncConnection, vault: str) -> VaultRow | None:
    """The vault row, locked for this transaction (directory appends are serialised)."""
    row = (await conn.execute(select(vaults).where(vaults.c.id == vault).with_for_update())).first()
    return None if row is None else _vault(row)


async def insert_vault(conn: AsyncConnection, vault: str, now: int, setup_token_hash: str) -> None:
    await conn.execute(
        vaults.insert().values(id=vault, created_at=now, setup_token_hash=setup_token_hash)
    )


async def set_setup_token(conn: AsyncConnection, vault: str, setup_token_hash: str) -> None:
    await conn.execute(
        update(vaults).where(vaults.c.id == vault).values(setup_token_hash=setup_token_hash)
    )


async def set_up(conn: AsyncConnection, vault: str, link0: str, now: int) -> str:
    """Spend the setup token and store link 0; return the vault's fingerprint text."""
    fingerprint = dirs.vault_fingerprint(link0).removeprefix("sha256:")
    await conn.execute(
        update(vaults)
        .where(vaults.c.id == vault)
        .values(setup_token_hash=None, fingerprint=fingerprint)
    )
    await conn.execute(
        directory_links.insert().values(
            vault_id=vault, seq=0, token=link0, hash=jws.statement_hash(link0), created_at=now
        )
    )
    return fingerprint


async def append_link(conn: AsyncConnection, vault: str, seq: int, token: str, head_hash: str,
                      now: int) -> None:  # fmt: skip
    await conn.execute(
        directory_links.insert().values(
            vault_id=vault, seq=seq, token=token, hash=head_hash, created_at=now
        )
    )


def unavailable_without_vault() -> Unavailable:
    return Unavailable("no_vault", "this relay has no vault yet", "Start it with `sealbox up`.")


async def ping(conn: AsyncConnection) -> None:
    """One round trip to the database (health checks): raises if it cannot be reached."""
    await conn.execute(text("SELECT 1"))


async def head(conn: AsyncConnection, vault: str) -> tuple[int, str] | None:
    """The stored directory's last link (seq, hash), or None while the vault has none."""
    row = (
        await conn.execute(
            select(directory_links.c.seq, directory_links.c.hash)
            .where(directory_links.c.vault_id == vault)
            .order_by(directory_links.c.seq.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else (row.seq, row.hash)
