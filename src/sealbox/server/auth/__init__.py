"""Transport authentication: RFC 9421 signatures for key holders, bearer tokens for sessions."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sealbox.server.auth.bearer import bearer_token, verify_bearer
from sealbox.server.auth.httpsig import verify_signed_request
from sealbox.server.auth.principal import Principal
from sealbox.server.auth.refusals import record_refusal
from sealbox.server.errors import Forbidden, TooMany, Unauthenticated
from sealbox.server.relay import Relay

__all__ = [
    "Anyone",
    "Approver",
    "Client",
    "Principal",
    "authenticate",
    "require_approver",
    "require_client",
]


async def authenticate(request: Request, vault: str) -> Principal:
    """The caller, by bearer token if it sent one, else by its request signature.

    A refusal (401, or 429 over the rate limit) is audited, throttled: see
    :mod:`sealbox.server.auth.refusals`.
    """
    relay: Relay = request.app.state.relay
    try:
        token = bearer_token(request)
        if token is not None:
            principal = await verify_bearer(token, relay, vault)
        else:
            principal = await verify_signed_request(request, relay, vault)
    except Unauthenticated as error:
        # A request with no credentials at all (a browser, a misconfigured client)
        # tried nothing: only a credential that failed is worth an event.
        if error.code != "signature_required":
            await record_refusal(request, relay, vault, error)
        raise
    assert relay.limiter is not None
    wait = relay.limiter.allow(f"{principal.vault} {principal.id}")
    if wait:
        limited = TooMany(
            "rate_limited", "too many requests from this caller", f"Retry after {wait:.1f} s.",
            retry_after=wait,
        )  # fmt: skip
        await record_refusal(request, relay, vault, limited, actor=principal.id)
        raise limited
    return principal


async def require_approver(request: Request, vault: str) -> Principal:
    principal = await authenticate(request, vault)
    if principal.role != "approver":
        raise Forbidden("approver_required", "only an approver of this vault may do this")
    return principal


async def require_client(request: Request, vault: str) -> Principal:
    principal = await authenticate(request, vault)
    if principal.role != "client":
        raise Forbidden("client_required", "only a client of this vault may do this")
    return principal


#: Route parameter types: the authenticated caller, of a given role.
Approver = Annotated[Principal, Depends(require_approver)]
Client = Annotated[Principal, Depends(require_client)]
Anyone = Annotated[Principal, Depends(authenticate)]
