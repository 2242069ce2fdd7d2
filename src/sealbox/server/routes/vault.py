"""Vault setup (directory link 0, with the one-time setup token) and the approver directory.

A directory link is authorised by its own signature: the relay appends it only
if the whole chain, with it, verifies from link 0.  The relay checks this to
refuse junk early; every client and approver checks it again for itself.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import select, update

from sealbox.crypto import jws
from sealbox.crypto import secrets as sx
from sealbox.protocol import directory as dirs
from sealbox.server.errors import ApiError
from sealbox.server.relay import Relay
from sealbox.server.routes.system import relay_of
from sealbox.server.store import audit
from sealbox.server.store.tables import directory_links, vaults

router = APIRouter(prefix="/v1/vaults/{vault}", tags=["vault"])

TOKEN_MAX = 4096


class SetupBody(BaseModel):
    setup_token: str = Field(max_length=200)
    link: str = Field(max_length=TOKEN_MAX * 4, description="Directory link 0 (compact JWS).")


class LinkBody(BaseModel):
    link: str = Field(max_length=TOKEN_MAX * 4, description="The next directory link.")


# Verified directories by vault, with the head they were verified at.  Every
# signed request needs the current approver set; re-verifying the whole chain
# each time would cost one Ed25519 verification per link.  The cache is keyed
# by the stored head, so a link appended by another replica is seen at once.
#
# Within FRESH_SECONDS of the last check the cached directory is used without
# asking the database at all (the hot path of every signed request); a link
# appended through this process drops the entry at once, and one appended
# through another replica is seen within FRESH_SECONDS.
_verified: dict[str, tuple[float, dirs.Directory]] = {}
FRESH_SECONDS = 1.0


async def load_directory(conn: Any, vault: str) -> dirs.Directory:
    """The vault's directory as stored, verified (raises ApiError if the vault has none)."""
    entry = _verified.get(vault)
    if entry is not None and time.monotonic() - entry[0] < FRESH_SECONDS:
        return entry[1]
    row = (await conn.execute(select(vaults.c.fingerprint).where(vaults.c.id == vault))).first()
    if row is None:
        raise ApiError(404, "no_such_vault", "this relay has no such vault")
    if row.fingerprint is None:
        raise ApiError(
            409, "vault_not_set_up", "the vault has no approver yet",
            "Create the first approver with the setup token printed by `sealbox up`.",
        )  # fmt: skip
    pinned = "sha256:" + row.fingerprint
    head = (
        await conn.execute(
            select(directory_links.c.seq, directory_links.c.hash)
            .where(directory_links.c.vault_id == vault)
            .order_by(directory_links.c.seq.desc())
            .limit(1)
        )
    ).first()
    cached = entry[1] if entry is not None else None
    if (
        cached is not None
        and head is not None
        and cached.fingerprint == pinned
        and (cached.head.seq, cached.head.hash) == (head.seq, head.hash)
    ):
        _verified[vault] = (time.monotonic(), cached)
        return cached
    links = (
        (
            await conn.execute(
                select(directory_links.c.token)
                .where(directory_links.c.vault_id == vault)
                .order_by(directory_links.c.seq)
            )
        )
        .scalars()
        .all()
    )
    directory = dirs.verify_directory(list(links), pinned=pinned)
    _verified[vault] = (time.monotonic(), directory)
    return directory


def _fingerprint_text(link0: str) -> str:
    return dirs.vault_fingerprint(link0).removeprefix("sha256:")


@router.post("/setup", status_code=201)
async def setup(vault: str, body: SetupBody, request: Request) -> dict[str, Any]:
    """Store directory link 0, once, with the setup token `sealbox up` printed."""
    relay: Relay = relay_of(request)
    now = relay.now()
    link0 = body.link
    directory = dirs.verify_directory([link0], pinned=dirs.vault_fingerprint(link0))
    if directory.vault != vault:
        raise ApiError(400, "wrong_vault", "link 0 names another vault")
    refused = False
    async with relay.tx() as tx:
        row = (
            await tx.conn.execute(select(vaults).where(vaults.c.id == vault).with_for_update())
        ).first()
        if row is None:
            raise ApiError(404, "no_such_vault", "this relay has no such vault")
        if row.fingerprint is not None:
            # Set up already: nothing to guess at, and nothing worth an audit event
            # (which an anonymous caller could otherwise add without limit).
            raise ApiError(409, "already_set_up", "this vault already has its first approver")
        if row.setup_token_hash is None or not sx.constant_time_equal(
            row.setup_token_hash, sx.token_hash(body.setup_token)
        ):
            refused = True
    if refused:
        # Recorded in its own transaction: the refused request itself changes nothing.
        async with relay.tx() as tx:
            await audit.append(tx.conn, vault=vault, at=now, actor="anonymous",
                               action="vault.setup_refused", severity="warning",
                               source_ip=_ip(request))  # fmt: skip
        raise ApiError(
            403, "invalid_setup_token", "the setup token is wrong or already used",
            "Restart `sealbox up` to print a fresh one-time setup token.",
        )  # fmt: skip
    async with relay.tx() as tx:
        row = (
            await tx.conn.execute(select(vaults).where(vaults.c.id == vault).with_for_update())
        ).first()
        if (
            row is None
            or row.setup_token_hash is None
            or not sx.constant_time_equal(row.setup_token_hash, sx.token_hash(body.setup_token))
        ):
            # Another request used the token between the two transactions.
            raise ApiError(409, "setup_raced", "the vault was set up by another request")
        fingerprint = _fingerprint_text(link0)
        await tx.conn.execute(
            update(vaults).where(vaults.c.id == vault)
            .values(setup_token_hash=None, fingerprint=fingerprint)
        )  # fmt: skip
        await tx.conn.execute(
            directory_links.insert().values(
                vault_id=vault, seq=0, token=link0, hash=jws.statement_hash(link0), created_at=now
            )
        )
        first = next(iter(directory.approvers))
        await audit.append(tx.conn, vault=vault, at=now, actor=first, action="vault.set_up",
                           source_ip=_ip(request), detail={"approver": first})  # fmt: skip
    return {
        "vault": vault,
        "fingerprint": "sha256:" + fingerprint,
        "safety_code": directory.safety_code,
    }


@router.get("/directory")
async def get_directory(vault: str, request: Request) -> dict[str, Any]:
    """Every directory link, in order: verify them from your pinned link 0."""
    async with relay_of(request).read() as conn:
        directory = await load_directory(conn, vault)
    return {"links": list(directory.tokens), "head": directory.head.seq}


@router.post("/directory", status_code=201)
async def append_link(vault: str, body: LinkBody, request: Request) -> dict[str, Any]:
    """Append a link signed by a current approver (add, remove or update an approver)."""
    relay = relay_of(request)
    now = relay.now()
    async with relay.tx() as tx:
        # Lock the vault row: appends to one directory are serialised.
        await tx.conn.execute(select(vaults.c.id).where(vaults.c.id == vault).with_for_update())
        _verified.pop(vault, None)  # judge against the stored head, not a cached one
        current = await load_directory(tx.conn, vault)
        extended = dirs.verify_directory(
            [*current.tokens, body.link], pinned=current.fingerprint, cached_head=current.head
        )
        link = extended.links[-1]
        await tx.conn.execute(
            directory_links.insert().values(
                vault_id=vault, seq=extended.head.seq, token=body.link,
                hash=extended.head.hash, created_at=now,
            )
        )  # fmt: skip
        if link.op == "add":
            # Imported here: the pairing routes import this module's load_directory.
            from sealbox.server.routes.pairing import mark_paired

            await mark_paired(tx.conn, vault, link.approver.id)
        signer = jws.read_header(body.link).kid
        await audit.append(tx.conn, vault=vault, at=now, actor=signer,
                           action=f"directory.{link.op}", source_ip=_ip(request),
                           detail={"approver": link.approver.id, "seq": link.seq})  # fmt: skip
        tx.wake(f"vault:{vault}:approvers", "directory")
    _verified.pop(vault, None)  # after the commit: the next request reads the new head
    relay.directories.forget(vault)
    return {"seq": extended.head.seq, "hash": extended.head.hash}


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None
