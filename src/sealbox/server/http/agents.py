"""Agents over HTTP: a person asks for one, an approver answers, approvers list and revoke.

The token endpoint's ``client_credentials`` grant, by which an agent gets its
access tokens, lives with the other OAuth endpoints in :mod:`.oauth`.  The work
is done by :mod:`sealbox.server.services.agents`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from sealbox.server.http.deps import Approver, Client, relay_of, source_ip
from sealbox.server.services import agents
from sealbox.server.services.admin import CERTIFICATE_MAX

router = APIRouter(prefix="/v1/vaults/{vault}", tags=["agents"])


class AgentBody(BaseModel):
    client_id: str = Field(max_length=40, description="A fresh cli_ id made with the key.")
    name: str = Field(max_length=128, description="Shown to approvers, e.g. Deploy Bot.")
    sig_pk: str = Field(max_length=80, description="The agent's public key (made by the person).")
    scopes: list[Annotated[str, Field(max_length=256)]] = Field(min_length=1, max_length=32)
    client_secret_hash: str | None = Field(
        default=None, max_length=64,
        description="The labelled SHA-256 of a client secret the person's machine made.",
    )  # fmt: skip


class ApproveBody(BaseModel):
    certificate: str = Field(
        max_length=CERTIFICATE_MAX, description="The agent certificate (kind agent) you signed."
    )


def _request_json(found: agents.AgentRequest) -> dict[str, Any]:
    return {**asdict(found), "scopes": list(found.scopes)}


def _view_json(found: agents.AgentView) -> dict[str, Any]:
    return {**asdict(found), "scopes": list(found.scopes)}


@router.post("/agents", status_code=201)
async def request_agent(
    vault: str, body: AgentBody, principal: Client, request: Request
) -> dict[str, Any]:
    """Ask for an agent (a logged-in person's session only); an approver must approve it."""
    relay = relay_of(request)
    made = await agents.request_agent(
        relay, relay.now(), vault=vault, person=principal, client_id=body.client_id,
        name=body.name, sig_pk=body.sig_pk, requested=body.scopes,
        secret_hash=body.client_secret_hash, source_ip=source_ip(request),
    )  # fmt: skip
    return _request_json(made)


@router.get("/agents/{client_id}/registration")
async def registration(
    vault: str, client_id: str, principal: Client, request: Request
) -> dict[str, Any]:
    """The state of your agent request and, once approved, its certificate (verify it)."""
    relay = relay_of(request)
    found = await agents.registration(
        relay, relay.now(), vault=vault, person=principal, client_id=client_id
    )
    return asdict(found)


@router.get("/agent-requests")
async def list_agent_requests(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """Agents waiting for an approver, with what to compare against the person's terminal."""
    relay = relay_of(request)
    waiting = await agents.pending_agents(relay, relay.now(), vault=vault)
    return {"agent_requests": [_request_json(entry) for entry in waiting]}


@router.post("/agent-requests/{client_id}/approve")
async def approve_agent(
    vault: str, client_id: str, body: ApproveBody, principal: Approver, request: Request
) -> dict[str, Any]:
    """Approve an agent by uploading the certificate you signed for its id and key."""
    relay = relay_of(request)
    done = await agents.approve(
        relay, relay.now(), vault=vault, client_id=client_id, certificate=body.certificate,
        approver=principal, source_ip=source_ip(request),
    )  # fmt: skip
    return _view_json(done)


@router.post("/agent-requests/{client_id}/deny")
async def deny_agent(
    vault: str, client_id: str, principal: Approver, request: Request
) -> dict[str, Any]:
    """Refuse an agent; the person's CLI is told, and no client is made."""
    relay = relay_of(request)
    done = await agents.deny(
        relay, relay.now(), vault=vault, client_id=client_id, approver=principal,
        source_ip=source_ip(request),
    )  # fmt: skip
    return _view_json(done)


@router.get("/agents")
async def list_agents(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """Every agent of the vault, in any state (disable and enable them as clients)."""
    relay = relay_of(request)
    found = await agents.list_agents(relay, relay.now(), vault=vault)
    return {"agents": [_view_json(entry) for entry in found]}


@router.post("/agents/{client_id}/revoke")
async def revoke_agent(
    vault: str, client_id: str, principal: Approver, request: Request
) -> dict[str, Any]:
    """End an agent for good: disabled, its tokens revoked, its client secret dropped."""
    relay = relay_of(request)
    done = await agents.revoke(
        relay, relay.now(), vault=vault, client_id=client_id, approver=principal,
        source_ip=source_ip(request),
    )  # fmt: skip
    return _view_json(done)
