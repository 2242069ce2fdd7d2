"""Machines over HTTP: bootstrap tokens, the scripts that use them, registrations, approvals.

The work is done by :mod:`sealbox.server.services.machines`.  A machine's own
calls (registering, polling) carry no credential but the RFC 9421 signature of
the key it registers: the relay checks it against that key, so only the holder
of the private key registers it or learns its outcome.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from sealbox.crypto.keys import VerifyKey
from sealbox.errors import SealboxError
from sealbox.protocol import ids
from sealbox.server.auth import require_network
from sealbox.server.auth.httpsig import verify_signed_by
from sealbox.server.auth.openapi import SIGNATURE
from sealbox.server.auth.refusals import record_refusal
from sealbox.server.errors import Invalid, RelayError, Unauthenticated
from sealbox.server.http.deps import Anyone, Approver, relay_of, source_ip
from sealbox.server.http.errors import status_of
from sealbox.server.services import machines, members, scripts
from sealbox.server.services.admin import CERTIFICATE_MAX
from sealbox.server.store.machines import RegistrationRow

router = APIRouter(tags=["machines"])

TOKEN_MAX = 200


class TokenBody(BaseModel):
    name: str = Field(max_length=128, description="The machine's name.")
    grants: list[Annotated[str, Field(max_length=200)]] = Field(
        min_length=1, max_length=machines.MAX_GRANTS,
        description="Item patterns (project/env/item globs) the machine will ask for.",
    )  # fmt: skip
    scopes: list[Literal["read", "write"]] = Field(
        default=["read"], max_length=2, description="read (access requests), write (stores)."
    )


class RegisterBody(BaseModel):
    token: str = Field(max_length=TOKEN_MAX, description="The one-time bootstrap token.")
    client_id: str = Field(max_length=40, description="A fresh cli_ id the machine made.")
    sig_pk: str = Field(max_length=80, description="The public half of the key it made.")
    name: str | None = Field(default=None, max_length=128,
                             description="What the machine calls itself (default: the token's "
                             "name).")  # fmt: skip


class ApproveBody(BaseModel):
    certificate: str = Field(
        max_length=CERTIFICATE_MAX, description="The machine certificate (compact JWS) you signed."
    )


def _registration(row: RegistrationRow) -> dict[str, Any]:
    body: dict[str, Any] = {
        "vault": row.vault, "client_id": row.client_id, "name": row.name,
        "state": row.state.value, "user_code": row.user_code, "expires_at": row.expires_at,
    }  # fmt: skip
    if row.certificate is not None:
        body["certificate"] = row.certificate
    return body


# --- the approver makes a token ----------------------------------------------------------------


@router.post("/v1/vaults/{vault}/bootstrap-tokens", status_code=201)
async def create_token(
    vault: str, body: TokenBody, principal: Anyone, request: Request
) -> dict[str, Any]:
    """A one-time token for one machine: ten minutes, spent by its registration.

    The answer is the only place the token ever appears; the relay keeps its hash.
    An approver may make any; a member only as machine admin of every project the
    machine's grants name (an approver still certifies the machine that uses it).
    """
    relay = relay_of(request)
    await members.require_role_for(relay, principal, body.grants, "machine-admin",
                                   now=relay.now(), source_ip=source_ip(request))  # fmt: skip
    made = await machines.create_token(
        relay, relay.now(), vault=vault, name=body.name, grants=body.grants, scopes=body.scopes,
        approver=principal, source_ip=source_ip(request),
    )  # fmt: skip
    base = relay.settings.base_url
    return {
        "token": made.token, "token_id": made.token_id, "name": made.name,
        "grants": list(made.grants), "scopes": list(made.scopes), "expires_at": made.expires_at,
        "server": base, "script_url": f"{base}/v1/bootstrap/{made.token}",
    }  # fmt: skip


# --- the scripts -------------------------------------------------------------------------------


@router.get("/v1/bootstrap/{token}", response_class=PlainTextResponse)
async def bootstrap_script(
    token: str, request: Request,
    shell: Annotated[Literal["sh", "powershell", "k8s"], Query()] = "sh",
) -> PlainTextResponse:  # fmt: skip
    """A script that installs sealbox if needed and runs `sealbox machine register` with this
    token (``curl -sSL URL | sh``; ``?shell=powershell``; ``?shell=k8s`` ends by printing the
    ``kubectl create secret`` command).  Serving it does not spend the token.

    A refused request (unknown, expired or spent token) is answered with its 4xx status and
    a script that prints the reason and exits 1, since a pipe into a shell runs any body.
    """
    relay = relay_of(request)
    headers = {"cache-control": "no-store", "x-content-type-options": "nosniff"}
    try:
        row = await machines.script_token(
            relay, relay.now(), token=token[:TOKEN_MAX], source_ip=source_ip(request)
        )
    except RelayError as refused:
        return PlainTextResponse(
            scripts.error_script(shell, refused.message, refused.hint),
            status_code=status_of(refused), headers=headers,
        )  # fmt: skip
    text = scripts.script(shell, server=relay.settings.base_url, token=token, name=row.name)
    return PlainTextResponse(text, headers=headers)


# --- the machine -------------------------------------------------------------------------------


async def _signed_by(request: Request, vault: str, client_id: str, key: VerifyKey) -> None:
    relay = relay_of(request)
    try:
        await verify_signed_by(request, relay, vault, key_id=client_id, key=key)
    except Unauthenticated as error:
        if error.code != "signature_required":
            await record_refusal(request, relay, vault, error)
        raise


#: The machine's own calls are signed by the key they register (not yet a client's key).
_OWN_KEY: dict[str, Any] = {"security": [{SIGNATURE: []}]}


@router.post("/v1/vaults/{vault}/machine-registrations", status_code=201, openapi_extra=_OWN_KEY)
async def register(vault: str, body: RegisterBody, request: Request) -> dict[str, Any]:
    """Register a machine's key with a bootstrap token; it waits for an approver.

    Signed (RFC 9421) by the key being registered, with ``keyid`` = ``client_id``:
    the machine proves it holds the key.  Spends the token.
    """
    relay = relay_of(request)
    try:
        client_id = ids.check_id(body.client_id, ids.CLIENT, what="client id")
        key = VerifyKey.from_text(body.sig_pk)
    except SealboxError as exc:
        raise Invalid("invalid_request", exc.message, "Send a fresh cli_ id and its key.") from None
    # A machine outside the vault's allowlist could never call once approved: refused now,
    # before its signature costs a verification.
    await require_network(request, relay, vault, "machine")
    machines.admit(relay, source_ip(request))
    await _signed_by(request, vault, client_id, key)
    done = await machines.register(
        relay, relay.now(), vault=vault, token=body.token, client_id=client_id, key=key,
        name=body.name, source_ip=source_ip(request),
    )  # fmt: skip
    return asdict(done)


@router.get("/v1/vaults/{vault}/machine-registrations/{client_id}", openapi_extra=_OWN_KEY)
async def registration(vault: str, client_id: str, request: Request) -> dict[str, Any]:
    """A machine's registration, for the machine: ``pending``, ``denied``, or ``approved`` with
    its certificate.  Signed by the registered key (``keyid`` = ``client_id``)."""
    relay = relay_of(request)
    try:
        ids.check_id(client_id, ids.CLIENT, what="client id")
    except SealboxError:
        raise Invalid("invalid_request", "not a client id") from None
    await require_network(request, relay, vault, "machine")
    row = await machines.registration(relay, relay.now(), vault=vault, client_id=client_id)
    await _signed_by(request, vault, client_id, VerifyKey.from_text(row.sig_pk))
    body = _registration(row)
    if row.state.value == "pending" and row.expired(relay.now()):
        body["state"] = "expired"
    return body


# --- the approver's side -----------------------------------------------------------------------


@router.get("/v1/vaults/{vault}/machine-registrations")
async def pending(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """Machines waiting for an approver, with what to compare against the machine's output."""
    relay = relay_of(request)
    waiting = await machines.pending_machines(relay, relay.now(), vault=vault)
    return {"machine_registrations": [asdict(entry) for entry in waiting]}


@router.post("/v1/vaults/{vault}/machine-registrations/{client_id}/approve")
async def approve(
    vault: str, client_id: str, body: ApproveBody, principal: Approver, request: Request
) -> dict[str, Any]:
    """Approve a machine with the certificate you signed for its key; the relay adds the grants
    its token asked for."""
    relay = relay_of(request)
    row = await machines.approve(
        relay, relay.now(), vault=vault, client_id=client_id, certificate=body.certificate,
        approver=principal, source_ip=source_ip(request),
    )  # fmt: skip
    return {"client_id": row.client_id, "state": row.state.value, "grants": list(row.grants)}


@router.post("/v1/vaults/{vault}/machine-registrations/{client_id}/deny")
async def deny(vault: str, client_id: str, principal: Approver, request: Request) -> dict[str, Any]:
    """Refuse a machine; its next poll says so."""
    relay = relay_of(request)
    row = await machines.deny(
        relay, relay.now(), vault=vault, client_id=client_id, approver=principal,
        source_ip=source_ip(request),
    )  # fmt: skip
    return {"client_id": row.client_id, "state": row.state.value}
