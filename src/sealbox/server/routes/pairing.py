"""Pairing a new approver device: it asks to join, an existing approver adds it.

The new device makes its keys and posts its directory record here, with no
credentials (it has none yet).  Existing approvers list the pending
pairings, each shows the record's pairing code (computed on the approver's
own device from the record it received) for the person to compare with the
new device's screen, and adds it by appending a signed directory link
(``POST /directory``), which marks the pairing approved.  The new device
polls its pairing by the random id only it was given, then reads and
verifies the directory.

The relay cannot add a device on its own (only an approver's signature
extends the directory), and a record it swapped on the way shows another
pairing code on one of the two screens.
"""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.protocol.statements import ApproverRecord
from sealbox.server.auth import Approver
from sealbox.server.errors import ApiError
from sealbox.server.routes.system import relay_of
from sealbox.server.routes.vault import load_directory
from sealbox.server.store import audit
from sealbox.server.store.tables import pairing_requests

router = APIRouter(prefix="/v1/vaults/{vault}", tags=["pairing"])

#: How long a pairing waits for an approver.
PAIRING_SECONDS = 600
#: Most pairings one vault keeps waiting at once (anyone may ask, so they are capped).
PENDING_MAX = 20


class PairingBody(BaseModel):
    approver: dict[str, Any] = Field(description="The new device's directory record.")


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


async def mark_paired(conn: AsyncConnection, vault: str, approver_id: str) -> None:
    """A directory link added ``approver_id``: its pending pairing is approved."""
    await conn.execute(
        update(pairing_requests)
        .where(
            pairing_requests.c.vault_id == vault,
            pairing_requests.c.state == "pending",
            pairing_requests.c.approver["id"].as_string() == approver_id,
        )
        .values(state="approved")
    )


@router.post("/pairing-requests", status_code=201)
async def request_pairing(vault: str, body: PairingBody, request: Request) -> dict[str, Any]:
    """Ask to join the vault as an approver device; keep the returned id to poll."""
    relay = relay_of(request)
    source = _ip(request) or "unknown"
    if relay.anonymous_limiter.allow(f"pairing {source}"):
        raise ApiError(429, "rate_limited", "too many pairings asked from this address",
                       "Wait a minute and try again.")  # fmt: skip
    record = ApproverRecord.from_json(body.approver)
    now = relay.now()
    pairing_id = secrets.token_urlsafe(16)
    async with relay.tx() as tx:
        directory = await load_directory(tx.conn, vault)
        if record.id in directory.approvers:
            raise ApiError(409, "already_approver", "this approver id is already in the directory")
        await tx.conn.execute(
            delete(pairing_requests).where(
                pairing_requests.c.vault_id == vault, pairing_requests.c.expires_at < now
            )
        )
        waiting = (
            await tx.conn.execute(
                select(func.count())
                .select_from(pairing_requests)
                .where(pairing_requests.c.vault_id == vault,
                       pairing_requests.c.state == "pending")
            )
        ).scalar_one()  # fmt: skip
        if waiting >= PENDING_MAX:
            raise ApiError(429, "too_many_pairings", "too many devices are waiting to pair",
                           "Ask an approver to answer or let the waiting ones expire.")  # fmt: skip
        await tx.conn.execute(
            pairing_requests.insert().values(
                vault_id=vault, id=pairing_id, approver=record.to_json(), state="pending",
                source_ip=_ip(request), created_at=now, expires_at=now + PAIRING_SECONDS,
            )
        )  # fmt: skip
        await audit.append(
            tx.conn, vault=vault, at=now, actor="anonymous", action="pairing.requested",
            source_ip=_ip(request),
            detail={"approver": record.id, "sig_pk": record.sig_pk.fingerprint()},
        )  # fmt: skip
        tx.wake(f"vault:{vault}:approvers", "pairing")
    return {"id": pairing_id, "state": "pending", "expires_at": now + PAIRING_SECONDS}


@router.get("/pairing-requests/{pairing_id}")
async def pairing_state(vault: str, pairing_id: str, request: Request) -> dict[str, Any]:
    """The state of your pairing (the id is the credential): pending, approved or denied."""
    relay = relay_of(request)
    async with relay.read() as conn:
        row = (
            await conn.execute(
                select(pairing_requests).where(
                    pairing_requests.c.vault_id == vault, pairing_requests.c.id == pairing_id
                )
            )
        ).first()
    if row is None:
        raise ApiError(404, "no_such_pairing", "no pairing with this id")
    state = row.state
    if state == "pending" and row.expires_at < relay.now():
        state = "expired"
    return {"id": row.id, "state": state, "expires_at": row.expires_at}


@router.get("/pairing-requests")
async def list_pairings(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """Devices waiting to be added; compute each record's pairing code yourself."""
    relay = relay_of(request)
    async with relay.read() as conn:
        rows = await conn.execute(
            select(pairing_requests)
            .where(pairing_requests.c.vault_id == vault, pairing_requests.c.state == "pending",
                   pairing_requests.c.expires_at >= relay.now())
            .order_by(pairing_requests.c.created_at)
        )  # fmt: skip
        found = [
            {"id": r.id, "approver": r.approver, "created_at": r.created_at,
             "expires_at": r.expires_at, "reported_by_server": {"source_ip": r.source_ip}}
            for r in rows
        ]  # fmt: skip
    return {"pairing_requests": found}


@router.post("/pairing-requests/{pairing_id}/deny")
async def deny_pairing(
    vault: str, pairing_id: str, principal: Approver, request: Request
) -> dict[str, Any]:
    """Refuse a device; its next poll says denied."""
    relay = relay_of(request)
    now = relay.now()
    async with relay.tx() as tx:
        done = await tx.conn.execute(
            update(pairing_requests)
            .where(pairing_requests.c.vault_id == vault, pairing_requests.c.id == pairing_id,
                   pairing_requests.c.state == "pending")
            .values(state="denied")
        )  # fmt: skip
        if done.rowcount != 1:
            raise ApiError(404, "no_such_pairing", "no pending pairing with this id")
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="pairing.denied",
            source_ip=_ip(request), detail={"pairing": pairing_id[:6]},
        )  # fmt: skip
    return {"id": pairing_id, "state": "denied"}
