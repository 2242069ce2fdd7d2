"""Clients, their grants, and release policies over HTTP: managed by approvers only.

Humans' clients come from the device flow (:mod:`.oauth`); machines and agents
are registered here by an approver uploading the certificate it signed.  The
work is done by :mod:`sealbox.server.services.admin`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from sealbox.protocol import policy_rules
from sealbox.server import policy
from sealbox.server.http.deps import Anyone, Approver, Principal, relay_of, source_ip
from sealbox.server.services import admin, members, policy_axes

router = APIRouter(prefix="/v1/vaults/{vault}", tags=["clients"])


class RegisterBody(BaseModel):
    certificate: str = Field(
        max_length=admin.CERTIFICATE_MAX, description="A machine or agent certificate you signed."
    )


class GrantBody(BaseModel):
    pattern: str = Field(max_length=policy.PATTERN_MAX, description="project/environment/item glob")


class PolicyBody(BaseModel):
    pattern: str = Field(max_length=policy.PATTERN_MAX)
    approvers: list[Annotated[str, Field(max_length=40)]] = Field(
        min_length=1, max_length=admin.MAX_POLICY_APPROVERS
    )
    threshold: int
    expiry_seconds: int = Field(
        default=policy.DEFAULT_EXPIRY_SECONDS,
        ge=policy.MIN_EXPIRY_SECONDS,
        le=policy.MAX_EXPIRY_SECONDS,
    )
    max_cache_seconds: int = Field(
        default=policy.DEFAULT_MAX_CACHE_SECONDS, ge=0, le=admin.MAX_CACHE_SECONDS
    )
    store_needs_approval: bool = True
    cidrs: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list, max_length=admin.MAX_POLICY_NETWORKS,
        description="networks a client's access or store request must come from (empty: any)",
    )  # fmt: skip
    hours: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list, max_length=policy_rules.MAX_WINDOWS,
        description="time windows requests must fall in, e.g. 'mon-fri 09:00-18:00 "
                    "Europe/Berlin' (empty: any time)",
    )  # fmt: skip
    max_reads: str | None = Field(
        default=None, max_length=16, description="read-rate cap per item, N/PERIOD, e.g. 10/h"
    )
    cosigner: str | None = Field(
        default=None, max_length=40,
        description="an approver that must release on top of the threshold",
    )  # fmt: skip
    destroy_at: int | None = Field(
        default=None,
        ge=0,
        le=policy_rules.MAX_DESTROY_AT,
        description="Unix time after which the items are destroyed (at most 9999-12-31)",
    )
    statement: str | None = Field(
        default=None, max_length=16384,
        description="the sealbox.policy.v1 you signed over exactly this policy (approvers "
        "then verify it themselves); without it the policy is the relay's word",
    )  # fmt: skip
    rotate_after: int | None = Field(
        default=None, description="releases of an item's latest version after which it needs "
        "rotation",
    )  # fmt: skip


def _policy_json(found: admin.PolicyView) -> dict[str, Any]:
    return {
        **{k: v for k, v in asdict(found).items() if k != "axes"},
        "approvers": list(found.approvers), "cidrs": list(found.cidrs),
        **found.axes.to_json(),
    }  # fmt: skip


# --- clients -----------------------------------------------------------------------------------


@router.get("/clients")
async def list_clients(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """Every client of the vault, enabled or not."""
    relay = relay_of(request)
    found = await admin.list_clients(relay, relay.now(), vault=vault)
    return {"clients": [asdict(client) for client in found]}


@router.post("/clients", status_code=201)
async def register_client(
    vault: str, body: RegisterBody, principal: Approver, request: Request
) -> dict[str, Any]:
    """Register a machine or agent by its certificate (signed by you, a current approver)."""
    relay = relay_of(request)
    registered = await admin.register_client(
        relay, relay.now(), vault=vault, certificate=body.certificate, approver=principal,
        source_ip=source_ip(request),
    )  # fmt: skip
    return asdict(registered)


@router.get("/clients/{client_id}")
async def get_client(
    vault: str, client_id: str, principal: Approver, request: Request
) -> dict[str, Any]:
    """One client, with its certificate (verify it yourself) and its grants."""
    relay = relay_of(request)
    found = await admin.get_client(relay, relay.now(), vault=vault, client_id=client_id)
    return {**asdict(found.client), "certificate": found.certificate, "grants": list(found.grants)}


async def _set_disabled(
    vault: str, client_id: str, principal: Principal, request: Request, *, disabled: bool
) -> dict[str, Any]:
    relay = relay_of(request)
    switched = await admin.set_disabled(
        relay, relay.now(), vault=vault, client_id=client_id, disabled=disabled,
        approver=principal, source_ip=source_ip(request),
    )  # fmt: skip
    return asdict(switched)


@router.post("/clients/{client_id}/disable")
async def disable_client(
    vault: str, client_id: str, principal: Approver, request: Request
) -> dict[str, Any]:
    """Stop a client at once: its tokens are revoked and its signatures refused."""
    return await _set_disabled(vault, client_id, principal, request, disabled=True)


@router.post("/clients/{client_id}/enable")
async def enable_client(
    vault: str, client_id: str, principal: Approver, request: Request
) -> dict[str, Any]:
    """Let a disabled client sign requests again (a person logs in again for new tokens)."""
    return await _set_disabled(vault, client_id, principal, request, disabled=False)


# --- grants ------------------------------------------------------------------------------------


@router.get("/clients/{client_id}/grants")
async def list_grants(
    vault: str, client_id: str, principal: Approver, request: Request
) -> dict[str, Any]:
    """The item patterns a client may ask for."""
    relay = relay_of(request)
    patterns = await admin.list_grants(relay, relay.now(), vault=vault, client_id=client_id)
    return {"client_id": client_id, "grants": patterns}


@router.post("/clients/{client_id}/grants")
async def add_grant(
    vault: str, client_id: str, body: GrantBody, principal: Approver, request: Request,
    response: Response,
) -> dict[str, Any]:  # fmt: skip
    """Let a client ask for items matching ``pattern`` (201; 200 if it already could)."""
    relay = relay_of(request)
    grant = await admin.add_grant(
        relay, relay.now(), vault=vault, client_id=client_id, pattern=body.pattern,
        approver=principal, source_ip=source_ip(request),
    )  # fmt: skip
    response.status_code = 201 if grant.added else 200
    return {"client_id": grant.client_id, "pattern": grant.pattern}


@router.delete("/clients/{client_id}/grants", status_code=204)
async def remove_grant(
    vault: str, client_id: str, principal: Approver, request: Request,
    pattern: Annotated[str, Query(max_length=policy.PATTERN_MAX)],
) -> Response:  # fmt: skip
    """Take a grant away (``?pattern=…``, exactly as it was added)."""
    relay = relay_of(request)
    await admin.remove_grant(
        relay, relay.now(), vault=vault, client_id=client_id, pattern=pattern,
        approver=principal, source_ip=source_ip(request),
    )  # fmt: skip
    return Response(status_code=204)


# --- policies ----------------------------------------------------------------------------------


@router.get("/policies", tags=["policies"])
async def list_policies(vault: str, principal: Anyone, request: Request) -> dict[str, Any]:
    """Every policy of the vault (an item without a matching one needs any one approver).

    A member sees the policies that lie in its projects (their first segment is exactly
    the project); any other client sees none.
    """
    relay = relay_of(request)
    found = await admin.list_policies(relay, relay.now(), vault=vault)
    if principal.role != "approver":
        projects = await members.projects_of(relay, principal)
        found = [row for row in found if members.in_projects(row.pattern, projects)]
    return {"policies": [_policy_json(row) for row in found]}


@router.get("/policy", tags=["policies"])
async def effective_policy(
    vault: str, principal: Anyone, request: Request,
    path: Annotated[str, Query(max_length=200)],
) -> dict[str, Any]:  # fmt: skip
    """The policy that holds for item ``path``: who holds shares, how many must agree.

    A client needs it to store (it splits the field keys M-of-N over these
    approvers) and to know how long it may cache; it sees only paths its
    grants cover.  Nothing here is signed: a relay that lied would only make
    the client seal to fewer approvers of the verified directory, which the
    approvers and the relay's own checks then refuse or show.
    """
    relay = relay_of(request)
    found = await admin.effective_policy(relay, relay.now(), vault=vault, path=path,
                                         caller=principal)  # fmt: skip
    return {
        "path": path, "approvers": list(found.approvers), "threshold": found.threshold,
        "expiry_seconds": found.expiry_seconds, "max_cache_seconds": found.max_cache_seconds,
        "store_needs_approval": found.store_needs_approval, "cidrs": list(found.cidrs),
        "pattern": found.pattern,
        **{k: v for k, v in policy_axes.Axes.from_policy(found).to_json().items()
           if k != "statement"},
    }  # fmt: skip


@router.put("/policies", tags=["policies"])
async def put_policy(
    vault: str, body: PolicyBody, principal: Anyone, request: Request
) -> dict[str, Any]:
    """Create or replace the policy for ``pattern``.

    An approver may set any policy; a member only one whose pattern lies in a
    project it is policy admin of (the first segment is exactly the project).
    """
    relay = relay_of(request)
    await members.require_policy_admin(relay, principal, body.pattern, now=relay.now(),
                                       source_ip=source_ip(request))  # fmt: skip
    stored = await admin.put_policy(
        relay, relay.now(), vault=vault, pattern=body.pattern, approvers=body.approvers,
        threshold=body.threshold, expiry_seconds=body.expiry_seconds,
        max_cache_seconds=body.max_cache_seconds, store_needs_approval=body.store_needs_approval,
        approver=principal, source_ip=source_ip(request), cidrs=body.cidrs,
        axes=policy_axes.check_axes(
            hours=body.hours, max_reads=body.max_reads, cosigner=body.cosigner,
            destroy_at=body.destroy_at, rotate_after=body.rotate_after, now=relay.now(),
            statement=body.statement,
        ),
    )  # fmt: skip
    return _policy_json(stored)


@router.delete("/policies", status_code=204, tags=["policies"])
async def delete_policy(
    vault: str, principal: Anyone, request: Request,
    pattern: Annotated[str, Query(max_length=policy.PATTERN_MAX)],
) -> Response:  # fmt: skip
    """Remove the policy for ``pattern`` (``?pattern=…``); matching items fall back to others.

    As for setting one, a member must be policy admin of the pattern's project.
    """
    relay = relay_of(request)
    await members.require_policy_admin(relay, principal, pattern, now=relay.now(),
                                       source_ip=source_ip(request))  # fmt: skip
    await admin.delete_policy(
        relay, relay.now(), vault=vault, pattern=pattern, approver=principal,
        source_ip=source_ip(request),
    )  # fmt: skip
    return Response(status_code=204)
