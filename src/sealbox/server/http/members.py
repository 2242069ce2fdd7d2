"""Teams over HTTP: invites, the vault's members, and re-certifying a client (role changes).

Approvers only.  The work is done by :mod:`sealbox.server.services.members`; a
person redeems an invite by starting a login with it (:mod:`.oauth`).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from sealbox.protocol import scopes
from sealbox.server.http.deps import Approver, relay_of, source_ip
from sealbox.server.services import members
from sealbox.server.services.admin import CERTIFICATE_MAX

router = APIRouter(prefix="/v1/vaults/{vault}", tags=["members"])


class InviteBody(BaseModel):
    project: str = Field(max_length=64, description="The project the invite is to.")
    role: str = Field(max_length=16, description="One of " + ", ".join(scopes.ROLES) + ".")
    expires_seconds: int = Field(
        default=members.INVITE_DEFAULT_SECONDS, ge=members.INVITE_MIN_SECONDS,
        le=members.INVITE_MAX_SECONDS,
    )  # fmt: skip


class CertificateBody(BaseModel):
    certificate: str = Field(
        max_length=CERTIFICATE_MAX,
        description="A new certificate you signed for the client's same id, key and kind.",
    )


def _invite_json(invite: members.Invite) -> dict[str, Any]:
    out = asdict(invite)
    if out["code"] is None:
        del out["code"]
    return out


@router.post("/invites", status_code=201)
async def create_invite(
    vault: str, body: InviteBody, principal: Approver, request: Request
) -> dict[str, Any]:
    """Make a one-time invite to a project with a role; its code is in this answer only.

    The person runs ``sealbox login --invite CODE``; the approver who approves
    that login must sign exactly the invite's role.
    """
    relay = relay_of(request)
    made = await members.create_invite(
        relay, relay.now(), vault=vault, project=body.project, role=body.role,
        seconds=body.expires_seconds, approver=principal, source_ip=source_ip(request),
    )  # fmt: skip
    # The relay's public URL: what the person's `sealbox login --server` needs.
    return {**_invite_json(made), "server": relay.settings.base_url}


@router.get("/invites")
async def list_invites(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """The vault's invites, used or not (never their codes)."""
    relay = relay_of(request)
    found = await members.list_invites(relay, relay.now(), vault=vault)
    return {"invites": [_invite_json(invite) for invite in found]}


@router.delete("/invites/{invite_id}", status_code=204)
async def remove_invite(
    vault: str, invite_id: str, principal: Approver, request: Request
) -> Response:
    """Withdraw an invite: its code is refused from now on."""
    relay = relay_of(request)
    await members.remove_invite(relay, relay.now(), vault=vault, invite_id=invite_id,
                                approver=principal, source_ip=source_ip(request))  # fmt: skip
    return Response(status_code=204)


@router.get("/members")
async def list_members(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """Clients with roles, with their certificates: verify the roles yourself."""
    relay = relay_of(request)
    found = await members.list_members(relay, relay.now(), vault=vault)
    return {"members": [asdict(member) for member in found]}


@router.put("/clients/{client_id}/certificate")
async def recertify(
    vault: str, client_id: str, body: CertificateBody, principal: Approver, request: Request
) -> dict[str, Any]:
    """Replace a client's certificate with one you signed for its same key (a role change).

    Its next request is held to the new certificate's scopes and roles.
    """
    relay = relay_of(request)
    member = await members.recertify(
        relay, relay.now(), vault=vault, client_id=client_id, certificate=body.certificate,
        approver=principal, source_ip=source_ip(request),
    )  # fmt: skip
    return asdict(member)
