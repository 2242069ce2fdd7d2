"""Consent requests over HTTP: a client asks, waits, cancels; approvers list and answer.

Parse, call :mod:`sealbox.server.services.consents`, answer JSON.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from sealbox.server.http.access import recent_json
from sealbox.server.http.deps import Approver, Client, relay_of, source_ip
from sealbox.server.services import consents
from sealbox.server.services.consents import MAX_WAIT, ConsentApproval, ConsentStatus

router = APIRouter(prefix="/v1/vaults/{vault}", tags=["consents"])

#: Longest signed statement accepted in a body (a consent request carries at most 8 KiB of
#: details; the rest is small).
STATEMENT_MAX = 1 << 16

Wait = Annotated[float, Query(ge=0, description=f"Seconds to wait for a change (<= {MAX_WAIT}).")]


class ConsentRequestBody(BaseModel):
    statement: str = Field(max_length=STATEMENT_MAX,
                           description="The consent request statement you signed.")  # fmt: skip


class ConsentBody(BaseModel):
    consent: str = Field(max_length=STATEMENT_MAX, description="The consent you signed.")


class DenyBody(BaseModel):
    deny: str = Field(max_length=STATEMENT_MAX, description="The deny statement you signed.")


def status_json(status: ConsentStatus) -> dict[str, Any]:
    out: dict[str, Any] = {"id": status.id, "state": status.state,
                           "expires_at": status.expires_at}  # fmt: skip
    if status.consent is not None:
        out["consent"] = status.consent
    if status.deny is not None:
        out["deny"] = status.deny
    return out


def approval_json(found: ConsentApproval) -> dict[str, Any]:
    row = found.row
    out: dict[str, Any] = {
        "id": row.id, "state": row.state, "client": row.client_id, "statement": row.statement,
        "certificate": found.certificate, "enrollment": found.enrollment,
        "created_at": row.created_at, "expires_at": row.expires_at,
        # Seen by the relay, not signed by anyone: show it as reported by the server.
        "reported_by_server": {"source_ip": row.source_ip},
    }  # fmt: skip
    if found.recent is not None:
        # The relay's own count of this requester's prompts (it could lie): unsigned too.
        out["reported_by_server"]["recent"] = recent_json(found.recent)
    return out


@router.post("/consent-requests", status_code=201)
async def create_consent_request(
    vault: str, body: ConsentRequestBody, request: Request, principal: Client
) -> dict[str, Any]:
    """Ask the approvers to consent to one action with a signed consent request.

    The request id is the statement hash without its ``sha256:`` prefix.
    """
    relay = relay_of(request)
    made = await consents.create(
        relay, vault=vault, principal=principal, statement_token=body.statement,
        now=relay.now(), source_ip=source_ip(request),
    )  # fmt: skip
    return status_json(made)


@router.get("/consent-requests/{request_id}")
async def get_consent_request(
    vault: str, request_id: str, request: Request, principal: Client, wait: Wait = 0
) -> dict[str, Any]:
    """Your consent request's state; ``?wait=N`` holds it open until it leaves ``pending``.

    Once consented, ``consent`` holds the approver's signed consent (verify it)
    and the state reads ``delivered``; denied, ``deny`` holds the signed refusal.
    """
    relay = relay_of(request)
    status = await consents.wait_status(
        relay, vault=vault, request_id=request_id, principal=principal, wait=wait,
        source_ip=source_ip(request),
    )  # fmt: skip
    return status_json(status)


@router.post("/consent-requests/{request_id}/cancel")
async def cancel_consent_request(
    vault: str, request_id: str, request: Request, principal: Client
) -> dict[str, Any]:
    """Withdraw your pending consent request."""
    relay = relay_of(request)
    state = await consents.cancel(relay, vault=vault, request_id=request_id,
                                  principal=principal, now=relay.now(),
                                  source_ip=source_ip(request))  # fmt: skip
    return {"id": request_id, "state": state}


@router.get("/consent-approvals")
async def list_consent_approvals(
    vault: str, request: Request, principal: Approver
) -> dict[str, Any]:
    """Pending consent requests, oldest first, with what verifying them needs."""
    relay = relay_of(request)
    found = await consents.list_pending(relay, vault=vault, now=relay.now())
    return {"consent_requests": [approval_json(entry) for entry in found]}


@router.post("/consent-requests/{request_id}/consent")
async def consent_to_request(
    vault: str, request_id: str, body: ConsentBody, request: Request, principal: Approver
) -> dict[str, Any]:
    """Answer a pending consent request with the consent you signed for exactly it."""
    relay = relay_of(request)
    state = await consents.consent(
        relay, vault=vault, request_id=request_id, principal=principal, token=body.consent,
        now=relay.now(), source_ip=source_ip(request),
    )  # fmt: skip
    return {"id": request_id, "state": state}


@router.post("/consent-requests/{request_id}/deny")
async def deny_consent_request(
    vault: str, request_id: str, body: DenyBody, request: Request, principal: Approver
) -> dict[str, Any]:
    """Refuse a pending consent request with a deny statement you signed for it."""
    relay = relay_of(request)
    state = await consents.deny(
        relay, vault=vault, request_id=request_id, principal=principal, token=body.deny,
        now=relay.now(), source_ip=source_ip(request),
    )  # fmt: skip
    return {"id": request_id, "state": state}
