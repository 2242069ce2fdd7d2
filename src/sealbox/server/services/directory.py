"""The vault and its approver directory: first start, setup with the one-time token, appends.

A directory link is authorised by its own signature: the relay appends it only
if the whole chain, with it, verifies from link 0.  The relay checks this to
refuse junk early; every client and approver checks it again for itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from sealbox.crypto import jws
from sealbox.crypto import secrets as sx
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.server.errors import Conflict, Forbidden, Invalid, NotFound
from sealbox.server.notify import approvers_channel
from sealbox.server.relay import Relay
from sealbox.server.store import audit, pairings
from sealbox.server.store import directory as store

__all__ = [
    "SETUP_TOKEN_PREFIX",
    "Appended",
    "SetUp",
    "VaultInfo",
    "VaultStatus",
    "append",
    "check_database",
    "directory",
    "ensure_vault",
    "set_up",
    "vault_info",
]

SETUP_TOKEN_PREFIX = "sbx_st_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class VaultStatus:
    vault: str
    setup_token: str | None
    """A fresh one-time token while the vault has no approver yet, else ``None``."""


@dataclass(frozen=True)
class VaultInfo:
    vault: str
    ready: bool
    """Whether the vault has its first approver (directory link 0)."""


@dataclass(frozen=True)
class SetUp:
    vault: str
    fingerprint: str
    """``sha256:`` and the hash of link 0: what every client and approver pins."""
    safety_code: str


@dataclass(frozen=True)
class Appended:
    seq: int
    hash: str
    """The new head of the directory."""


async def ensure_vault(relay: Relay) -> VaultStatus:
    """Create the vault on first start; while it has no approver, issue a fresh setup token.

    Each start replaces the previous token, so a token printed to a terminal
    long ago stops working as soon as the relay restarts.
    """
    now = relay.now()
    async with relay.tx() as tx:
        row = await store.first_vault(tx.conn)
        if row is not None and row.fingerprint is not None:
            return VaultStatus(vault=row.id, setup_token=None)
        token = sx.new_token(SETUP_TOKEN_PREFIX)
        if row is None:
            vault = ids.new_id(ids.VAULT)
            await store.insert_vault(tx.conn, vault, now, sx.token_hash(token))
            await audit.append(tx.conn, vault=vault, at=now, actor="relay", action="vault.created")
        else:
            vault = row.id
            await store.set_setup_token(tx.conn, vault, sx.token_hash(token))
            await audit.append(
                tx.conn, vault=vault, at=now, actor="relay", action="vault.setup_token_issued"
            )
        return VaultStatus(vault=vault, setup_token=token)


async def vault_info(relay: Relay) -> VaultInfo:
    """The vault this relay serves; raises :class:`Unavailable` before the first start."""
    async with relay.read() as conn:
        row = await store.first_vault(conn)
    if row is None:
        raise store.unavailable_without_vault()
    return VaultInfo(row.id, row.fingerprint is not None)


async def check_database(relay: Relay) -> None:
    """Raise if the database cannot be reached."""
    async with relay.read() as conn:
        await store.ping(conn)


def _token_matches(row: store.VaultRow | None, setup_token: str) -> bool:
    return (
        row is not None
        and row.setup_token_hash is not None
        and sx.constant_time_equal(row.setup_token_hash, sx.token_hash(setup_token))
    )


async def set_up(
    relay: Relay, now: int, *, vault: str, setup_token: str, link0: str, source_ip: str | None
) -> SetUp:
    """Store directory link 0, once, with the setup token `sealbox up` printed."""
    directory = dirs.verify_directory([link0], pinned=dirs.vault_fingerprint(link0))
    if directory.vault != vault:
        raise Invalid("wrong_vault", "link 0 names another vault")
    refused = False
    async with relay.tx() as tx:
        row = await store.lock_vault(tx.conn, vault)
        if row is None:
            raise NotFound("no_such_vault", "this relay has no such vault")
        if row.fingerprint is not None:
            # Set up already: nothing to guess at, and nothing worth an audit event
            # (which an anonymous caller could otherwise add without limit).
            raise Conflict("already_set_up", "this vault already has its first approver")
        refused = not _token_matches(row, setup_token)
    if refused:
        # Recorded in its own transaction: the refused request itself changes nothing.
        async with relay.tx() as tx:
            await audit.append(tx.conn, vault=vault, at=now, actor="anonymous",
                               action="vault.setup_refused", severity="warning",
                               source_ip=source_ip)  # fmt: skip
        raise Forbidden(
            "invalid_setup_token", "the setup token is wrong or already used",
            "Restart `sealbox up` to print a fresh one-time setup token.",
        )  # fmt: skip
    async with relay.tx() as tx:
        if not _token_matches(await store.lock_vault(tx.conn, vault), setup_token):
            # Another request used the token between the two transactions.
            raise Conflict("setup_raced", "the vault was set up by another request")
        fingerprint = await store.set_up(tx.conn, vault, link0, now)
        first = next(iter(directory.approvers))
        await audit.append(tx.conn, vault=vault, at=now, actor=first, action="vault.set_up",
                           source_ip=source_ip, detail={"approver": first})  # fmt: skip
    return SetUp(vault, "sha256:" + fingerprint, directory.safety_code)


async def directory(relay: Relay, *, vault: str) -> dirs.Directory:
    """The vault's directory as stored, verified from link 0."""
    async with relay.read() as conn:
        return await relay.directories.load(conn, vault)


async def append(
    relay: Relay, now: int, *, vault: str, link: str, source_ip: str | None
) -> Appended:
    """Append a link signed by a current approver (add, remove or update an approver)."""
    async with relay.tx() as tx:
        # Lock the vault row: appends to one directory are serialised.
        await store.lock_vault(tx.conn, vault)
        # Verified from the stored chain, outside the relay's cache: judged against
        # the stored head, not a cached one, and without making the old directory
        # fresh in the cache just before this commits.
        current = await store.Directories().load(tx.conn, vault)
        extended = dirs.verify_directory(
            [*current.tokens, link], pinned=current.fingerprint, cached_head=current.head
        )
        added = extended.links[-1]
        await store.append_link(tx.conn, vault, extended.head.seq, link, extended.head.hash, now)
        if added.op == "add":
            await pairings.mark_paired(tx.conn, vault, added.approver.id)
        signer = jws.read_header(link).kid
        await audit.append(tx.conn, vault=vault, at=now, actor=signer,
                           action=f"directory.{added.op}", source_ip=source_ip,
                           detail={"approver": added.approver.id, "seq": added.seq})  # fmt: skip
        tx.wake(approvers_channel(vault), "directory")
    relay.directories.forget(vault)  # after the commit: the next request reads the new head
    return Appended(extended.head.seq, extended.head.hash)
