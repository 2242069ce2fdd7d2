"""``/v1/vaults/{vault}/network``: the vault's network allowlist for machines and agents.

Approvers only.  The work is done by :mod:`sealbox.server.services.network`;
the check on every machine's and agent's request by
:mod:`sealbox.server.auth.network`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from sealbox.server.http.deps import Approver, relay_of, source_ip
from sealbox.server.services import network
from sealbox.server.services.network import NetworkView

router = APIRouter(prefix="/v1/vaults/{vault}/network", tags=["network"])

CIDR = Annotated[str, Field(max_length=64)]


class AllowBody(BaseModel):
    cidrs: list[CIDR] = Field(min_length=1, max_length=network.MAX_NETWORKS,
                              description="CIDRs (IPv4 or IPv6) or single addresses")  # fmt: skip


def _json(view: NetworkView) -> dict[str, Any]:
    return {**asdict(view), "cidrs": list(view.cidrs)}


@router.get("")
async def show(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """The allowlist: whether it is enabled, and its networks."""
    relay = relay_of(request)
    return _json(await network.show(relay, relay.now(), vault=vault))


@router.post("/cidrs")
async def allow(
    vault: str, body: AllowBody, principal: Approver, request: Request
) -> dict[str, Any]:
    """Add networks machines and agents may call from (200; nothing changes for known ones)."""
    relay = relay_of(request)
    view = await network.allow(relay, relay.now(), vault=vault, cidrs=body.cidrs,
                               approver=principal, source_ip=source_ip(request))  # fmt: skip
    return _json(view)


@router.delete("/cidrs")
async def remove(
    vault: str, principal: Approver, request: Request, cidr: Annotated[str, Query(max_length=64)]
) -> dict[str, Any]:
    """Take a network out (``?cidr=…``)."""
    relay = relay_of(request)
    view = await network.remove(relay, relay.now(), vault=vault, cidr=cidr, approver=principal,
                                source_ip=source_ip(request))  # fmt: skip
    return _json(view)


@router.post("/enable")
async def enable(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """Hold machines and agents to the allowlist (an empty one then refuses them all)."""
    relay = relay_of(request)
    view = await network.set_enabled(relay, relay.now(), vault=vault, enabled=True,
                                     approver=principal, source_ip=source_ip(request))  # fmt: skip
    return _json(view)


@router.post("/disable")
async def disable(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """Stop applying the allowlist (its networks are kept)."""
    relay = relay_of(request)
    view = await network.set_enabled(relay, relay.now(), vault=vault, enabled=False,
                                     approver=principal, source_ip=source_ip(request))  # fmt: skip
    return _json(view)
