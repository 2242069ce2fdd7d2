"""``/v1/vaults/{vault}/projects``: freezing and unfreezing projects, for approvers only.

The work is done by :mod:`sealbox.server.services.freeze`; the refusals
themselves happen where requests are created and released.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from sealbox.server.http.deps import Approver, relay_of, source_ip
from sealbox.server.services import freeze
from sealbox.server.store.freeze import Freeze

router = APIRouter(prefix="/v1/vaults/{vault}/projects", tags=["projects"])

# A project as item paths have it (their first segment): anything else is refused before
# any query.
Project = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class FreezeBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    reason: str | None = Field(
        None, max_length=freeze.REASON_MAX,
        description="why, for the other approvers and the audit log (never shown to clients)",
    )  # fmt: skip


def freeze_json(held: Freeze) -> dict[str, Any]:
    return {
        "project": held.project, "frozen": True, "frozen_at": held.frozen_at,
        "frozen_by": held.frozen_by, "cause": held.cause, "reason": held.reason,
        "request": held.request,
    }  # fmt: skip


@router.get("/frozen")
async def list_frozen(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """The frozen projects, by name."""
    found = await freeze.list_frozen(relay_of(request), vault=vault)
    return {"frozen": [freeze_json(f) for f in found]}


@router.post("/{project}/freeze")
async def freeze_project(
    vault: str, project: Project, principal: Approver, request: Request,
    body: FreezeBody | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Freeze a project: every request for its items is refused until it is unfrozen
    (``changed`` is false if it was frozen already; the first freeze is kept)."""
    relay = relay_of(request)
    done = await freeze.freeze_project(
        relay, vault=vault, project=project, reason=body.reason if body else None,
        approver=principal, now=relay.now(), source_ip=source_ip(request),
    )  # fmt: skip
    assert done.freeze is not None
    return {**freeze_json(done.freeze), "changed": done.changed}


@router.post("/{project}/unfreeze")
async def unfreeze_project(
    vault: str, project: Project, principal: Approver, request: Request
) -> dict[str, Any]:
    """Lift a project's freeze (``changed`` is false if it was not frozen)."""
    relay = relay_of(request)
    done = await freeze.unfreeze_project(relay, vault=vault, project=project, approver=principal,
                                         now=relay.now(), source_ip=source_ip(request))  # fmt: skip
    lifted = {"lifted": freeze_json(done.freeze)} if done.freeze else {}
    return {"project": project, "frozen": False, "changed": done.changed, **lifted}
