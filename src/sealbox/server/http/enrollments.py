"""CI enrollments over HTTP: approvers make, list and revoke them; runners register machines.

An approver uploads the enrollment it signed; a CI runner, signing with the
enrollment's delegation key (``keyid`` = ``enr_…``), fetches the statement and
registers the machine key it certified.  The work is done by
:mod:`sealbox.server.services.enrollments`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from sealbox.server.auth import Enrollment
from sealbox.server.http.deps import Approver, relay_of, source_ip
from sealbox.server.services import admin, enrollments

router = APIRouter(prefix="/v1/vaults/{vault}", tags=["enrollments"])


class CreateBody(BaseModel):
    statement: str = Field(
        max_length=enrollments.STATEMENT_MAX,
        description="A sealbox.enrollment.v1 statement you signed.",
    )


class RegisterBody(BaseModel):
    certificate: str = Field(
        max_length=admin.CERTIFICATE_MAX,
        description="The machine's certificate, signed by the enrollment's delegation key.",
    )
    hostname: str | None = Field(
        default=None, max_length=253,
        description="The runner's host name, held to the enrollment's pattern.",
    )  # fmt: skip


def _view_json(view: enrollments.EnrollmentView) -> dict[str, Any]:
    out = asdict(view)
    for key in ("projects", "items", "cidrs"):
        out[key] = list(out[key])
    return out


@router.post("/enrollments", status_code=201)
async def create_enrollment(
    vault: str, body: CreateBody, principal: Approver, request: Request
) -> dict[str, Any]:
    """Keep an enrollment you signed: its delegation key may certify CI machines."""
    relay = relay_of(request)
    view = await enrollments.create(
        relay, relay.now(), vault=vault, statement=body.statement, approver=principal,
        source_ip=source_ip(request),
    )  # fmt: skip
    return _view_json(view)


@router.get("/enrollments")
async def list_enrollments(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """Every enrollment of the vault, with its uses and machines."""
    relay = relay_of(request)
    found = await enrollments.list_enrollments(relay, relay.now(), vault=vault)
    return {"enrollments": [_view_json(view) for view in found]}


@router.post("/enrollments/{enrollment_id}/revoke")
async def revoke_enrollment(
    vault: str, enrollment_id: str, principal: Approver, request: Request
) -> dict[str, Any]:
    """Stop an enrollment at once: no more machines, and the ones it made are disabled."""
    relay = relay_of(request)
    revoked = await enrollments.revoke(
        relay, relay.now(), vault=vault, enrollment_id=enrollment_id, approver=principal,
        source_ip=source_ip(request),
    )  # fmt: skip
    return asdict(revoked)


@router.get("/enrollments/{enrollment_id}/statement")
async def enrollment_statement(
    vault: str, enrollment_id: str, principal: Enrollment, request: Request
) -> dict[str, Any]:
    """The enrollment statement, for a runner signing with its delegation key."""
    relay = relay_of(request)
    statement = await enrollments.statement_of(
        relay, relay.now(), vault=vault, enrollment_id=enrollment_id, caller=principal,
        source_ip=source_ip(request),
    )  # fmt: skip
    return {"statement": statement}


@router.post("/enrollments/{enrollment_id}/machines", status_code=201)
async def register_machine(
    vault: str, enrollment_id: str, body: RegisterBody, principal: Enrollment, request: Request
) -> dict[str, Any]:
    """Register a machine key the enrollment's delegation key certified (one use)."""
    relay = relay_of(request)
    registered = await enrollments.register(
        relay, relay.now(), vault=vault, enrollment_id=enrollment_id,
        certificate=body.certificate, hostname=body.hostname, caller=principal,
        source_ip=source_ip(request),
    )  # fmt: skip
    out = asdict(registered)
    out["grants"] = list(registered.grants)
    return out
