"""First start: the vault row and its one-time setup token."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from sealbox.crypto import secrets as sx
from sealbox.protocol import ids
from sealbox.server.relay import Relay
from sealbox.server.store import audit
from sealbox.server.store.tables import vaults

__all__ = ["SETUP_TOKEN_PREFIX", "VaultStatus", "ensure_vault"]

SETUP_TOKEN_PREFIX = "sbx_st_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class VaultStatus:
    vault: str
    setup_token: str | None
    """A fresh one-time token while the vault has no approver yet, else ``None``."""


async def ensure_vault(relay: Relay) -> VaultStatus:
    """Create the vault on first start; while it has no approver, issue a fresh setup token.

    Each start replaces the previous token, so a token printed to a terminal
    long ago stops working as soon as the relay restarts.
    """
    now = relay.now()
    async with relay.tx() as tx:
        row = (await tx.conn.execute(select(vaults).limit(1))).first()
        if row is not None and row.fingerprint is not None:
            return VaultStatus(vault=row.id, setup_token=None)
        token = sx.new_token(SETUP_TOKEN_PREFIX)
        if row is None:
            vault = ids.new_id(ids.VAULT)
            await tx.conn.execute(
                vaults.insert().values(
                    id=vault, created_at=now, setup_token_hash=sx.token_hash(token)
                )
            )
            await audit.append(tx.conn, vault=vault, at=now, actor="relay", action="vault.created")
        else:
            vault = row.id
            await tx.conn.execute(
                update(vaults)
                .where(vaults.c.id == vault)
                .values(setup_token_hash=sx.token_hash(token))
            )
            await audit.append(
                tx.conn, vault=vault, at=now, actor="relay", action="vault.setup_token_issued"
            )
        return VaultStatus(vault=vault, setup_token=token)
