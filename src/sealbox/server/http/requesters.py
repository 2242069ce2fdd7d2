"""``/v1/vaults/{vault}/requesters``: per-requester limits and lockouts, for approvers only.

The work is done by :mod:`sealbox.server.services.fatigue`; the limits
themselves are applied where requests are created.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from sealbox.server.http.access import recent_json
from sealbox.server.http.deps import Approver, relay_of, source_ip
from sealbox.server.services import fatigue
from sealbox.server.services.fatigue import RequesterView

router = APIRouter(prefix="/v1/vaults/{vault}/requesters", tags=["requesters"])

# A client id in its one form: anything else (a NUL byte, say) is refused before any query.
ClientId = Annotated[str, Path(max_length=40, pattern=r"^cli_[a-z2-7]{26}$")]


class LimitsBody(BaseModel):
    # Strict: `true`, "7" or 5.0 are not limits.
    model_config = ConfigDict(strict=True, extra="forbid")

    per_minute: int | None = Field(
        ge=1, le=fatigue.MAX_PER_MINUTE,
        description="new requests this client may make in any 60 seconds (null: the relay's)",
    )  # fmt: skip
    pending_cap: int | None = Field(
        ge=1, le=fatigue.MAX_PENDING_CAP,
        description="requests this client may have waiting at once (null: the relay's)",
    )  # fmt: skip


def _json(view: RequesterView) -> dict[str, Any]:
    held = view.limits
    return {
        "client": view.client_id, "name": view.name, "kind": view.kind,
        "limits": {"per_minute": held.per_minute, "pending_cap": held.pending_cap,
                   "per_minute_override": held.per_minute_override,
                   "pending_cap_override": held.pending_cap_override},
        "denials_in_a_row": view.denials, "locked_at": view.locked_at,
        "recent": recent_json(view.recent), "updated_by": view.updated_by,
    }  # fmt: skip


@router.get("")
async def list_requesters(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """The relay's limits, and the requesters with an override, a lockout or denials in a row
    (locked first)."""
    relay = relay_of(request)
    settings = relay.settings
    found = await fatigue.list_requesters(relay, vault=vault, now=relay.now())
    return {
        "defaults": {"per_minute": settings.prompts_per_minute,
                     "pending_cap": settings.pending_cap,
                     "storm_prompts": settings.storm_prompts,
                     "lockout_denials": settings.lockout_denials,
                     "lockout_window_seconds": settings.lockout_window_seconds},
        "requesters": [_json(view) for view in found],
    }  # fmt: skip


@router.post("/{client_id}/limits")
async def set_limits(
    vault: str, client_id: ClientId, body: LimitsBody, principal: Approver, request: Request
) -> dict[str, Any]:
    """Hold one client to its own limits (null: the relay's setting)."""
    relay = relay_of(request)
    view = await fatigue.set_limits(
        relay, vault=vault, client_id=client_id, per_minute=body.per_minute,
        pending_cap=body.pending_cap, approver=principal, now=relay.now(),
        source_ip=source_ip(request),
    )  # fmt: skip
    return _json(view)


@router.post("/{client_id}/unlock")
async def unlock(
    vault: str, client_id: ClientId, principal: Approver, request: Request
) -> dict[str, Any]:
    """Clear a client's lockout; ``changed`` is false if it was not locked."""
    relay = relay_of(request)
    view, changed = await fatigue.unlock(relay, vault=vault, client_id=client_id,
                                         approver=principal, now=relay.now(),
                                         source_ip=source_ip(request))  # fmt: skip
    return {**_json(view), "changed": changed}
