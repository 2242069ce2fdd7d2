"""Pairing a new approver device: it asks to join, an existing approver adds it.

The new device posts its directory record here, with no credentials (it has
none yet).  Approvers list the pending pairings, compare each record's
pairing code on their own device with the new device's screen, and add it by
appending a signed directory link (``POST /directory``), which marks the
pairing approved.  The new device polls its pairing by the random id only it
was given.  See :mod:`sealbox.server.services.pairing`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from sealbox.server.http.deps import Approver, relay_of, source_ip
from sealbox.server.services import pairing

router = APIRouter(prefix="/v1/vaults/{vault}", tags=["pairing"])


class PairingBody(BaseModel):
    approver: dict[str, Any] = Field(description="The new device's directory record.")


@router.post("/pairing-requests", status_code=201)
async def request_pairing(vault: str, body: PairingBody, request: Request) -> dict[str, Any]:
    """Ask to join the vault as an approver device; keep the returned id to poll."""
    relay = relay_of(request)
    asked = await pairing.ask(
        relay, relay.now(), vault=vault, approver=body.approver, source_ip=source_ip(request)
    )
    return {"id": asked.id, "state": asked.state, "expires_at": asked.expires_at}


@router.get("/pairing-requests/{pairing_id}")
async def pairing_state(vault: str, pairing_id: str, request: Request) -> dict[str, Any]:
    """The state of your pairing (the id is the credential): pending, approved or denied."""
    relay = relay_of(request)
    found = await pairing.status(relay, relay.now(), vault=vault, pairing_id=pairing_id)
    return {"id": found.id, "state": found.state, "expires_at": found.expires_at}


@router.get("/pairing-requests")
async def list_pairings(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """Devices waiting to be added; compute each record's pairing code yourself."""
    relay = relay_of(request)
    found = [
        {"id": p.id, "approver": p.approver, "created_at": p.created_at,
         "expires_at": p.expires_at, "reported_by_server": {"source_ip": p.source_ip}}
        for p in await pairing.waiting(relay, relay.now(), vault=vault)
    ]  # fmt: skip
    return {"pairing_requests": found}


@router.post("/pairing-requests/{pairing_id}/deny")
async def deny_pairing(
    vault: str, pairing_id: str, principal: Approver, request: Request
) -> dict[str, Any]:
    """Refuse a device; its next poll says denied."""
    relay = relay_of(request)
    state = await pairing.deny(
        relay, relay.now(), vault=vault, pairing_id=pairing_id, approver_id=principal.id,
        source_ip=source_ip(request),
    )  # fmt: skip
    return {"id": pairing_id, "state": state}
