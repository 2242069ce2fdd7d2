"""Transport authentication: RFC 9421 signatures for key holders, bearer tokens for CLI
sessions, the console session cookie for approvers in a browser."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sealbox.server.auth.bearer import bearer_token, verify_bearer
from sealbox.server.auth.enrolled import enrollment_key
from sealbox.server.auth.httpsig import verify_signed_request
from sealbox.server.auth.network import NetworkRefused, check_network
from sealbox.server.auth.peer import source_ip
from sealbox.server.auth.principal import Principal
from sealbox.server.auth.refusals import ACTION, record_refusal
from sealbox.server.auth.session import session_cookie, verify_session
from sealbox.server.errors import Forbidden, TooMany, Unauthenticated
from sealbox.server.relay import Relay

__all__ = [
    "Anyone",
    "Approver",
    "Client",
    "ConsoleSession",
    "Enrollment",
    "Principal",
    "authenticate",
    "require_approver",
    "require_client",
    "require_enrollment",
    "require_network",
    "require_session",
]


async def authenticate(request: Request, vault: str) -> Principal:
    """The caller, by bearer token or console session cookie if it sent one, else by its
    request signature.  A request carrying a cookie and another credential is refused: which
    one it meant cannot be told.

    A refusal (401, or 429 over the rate limit) is audited, throttled: see
    :mod:`sealbox.server.auth.refusals`.
    """
    relay: Relay = request.app.state.relay
    try:
        token = bearer_token(request)
        cookie = session_cookie(request)
        if cookie is not None and (token is not None or "signature" in request.headers
                                   or "signature-input" in request.headers):  # fmt: skip
            raise Unauthenticated(
                "ambiguous_credentials", "the request carries a console session and another "
                "credential", "Send one credential: a signature, a bearer token or the cookie.",
            )  # fmt: skip
        if token is not None:
            principal = await verify_bearer(token, relay, vault, source_ip(request))
        elif cookie is not None:
            principal = await verify_session(request, relay, vault, cookie)
        else:
            principal = await verify_signed_request(request, relay, vault)
    except NetworkRefused as error:
        # The caller is named only if its credential verified (a token); a signature's
        # keyid is recorded as claimed, as for any refused signature.
        await record_refusal(request, relay, vault, error, actor=error.client_id, status=403,
                             action=ACTION)  # fmt: skip
        raise
    except Unauthenticated as error:
        # A request with no credentials at all (a browser, a misconfigured client)
        # tried nothing: only a credential that failed is worth an event.
        if error.code != "signature_required":
            await record_refusal(request, relay, vault, error)
        raise
    await _limit(request, relay, vault, principal)
    # Who was refused, should a later check refuse the request (see http/errors.py).
    request.state.principal = principal
    return principal


async def require_network(request: Request, relay: Relay, vault: str, kind: str) -> None:
    """Hold a caller that is not a client yet (a machine registering its key) to the vault's
    network allowlist, before its signature is checked; a refusal is audited."""
    async with relay.read() as conn:
        try:
            await check_network(relay, conn, vault, kind, source_ip(request))
        except NetworkRefused as error:
            refused = error
        else:
            return
    await record_refusal(request, relay, vault, refused, status=403, action=ACTION)
    raise refused


async def require_session(request: Request, vault: str) -> Principal:
    """The approver of the request's console session cookie (and nothing else).

    For the console's own calls (signing out, adding a passkey, reading the
    session).  A request without the cookie is refused unaudited, as one
    without any credential is.
    """
    relay: Relay = request.app.state.relay
    cookie = session_cookie(request)
    if cookie is None:
        raise Unauthenticated("session_required", "this call needs a console session",
                              "Sign in to the console with a passkey.")  # fmt: skip
    try:
        principal = await verify_session(request, relay, vault, cookie)
    except Unauthenticated as error:
        await record_refusal(request, relay, vault, error)
        raise
    await _limit(request, relay, vault, principal)
    # Who was refused, should a later check refuse the request (see http/errors.py).
    request.state.principal = principal
    return principal


async def _limit(request: Request, relay: Relay, vault: str, principal: Principal) -> None:
    assert relay.limiter is not None
    wait = relay.limiter.allow(f"{principal.vault} {principal.id}")
    if wait:
        limited = TooMany(
            "rate_limited", "too many requests from this caller", f"Retry after {wait:.1f} s.",
            retry_after=wait,
        )  # fmt: skip
        await record_refusal(request, relay, vault, limited, actor=principal.id)
        raise limited


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


async def require_enrollment(request: Request, vault: str) -> Principal:
    """A CI runner: a call signed (RFC 9421) by an enrollment's delegation key, ``keyid`` =
    the ``enr_…`` id (see :mod:`sealbox.server.auth.enrolled`)."""
    relay: Relay = request.app.state.relay
    # A runner registers a machine: outside the vault's allowlist it could never call once
    # registered, so it is refused before its signature costs a verification.
    await require_network(request, relay, vault, "machine")
    try:
        principal = await verify_signed_request(request, relay, vault, key_for=enrollment_key)
    except Unauthenticated as error:
        if error.code != "signature_required":
            await record_refusal(request, relay, vault, error)
        raise
    await _limit(request, relay, vault, principal)
    return principal


#: Route parameter types: the authenticated caller, of a given role.
Approver = Annotated[Principal, Depends(require_approver)]
Client = Annotated[Principal, Depends(require_client)]
Anyone = Annotated[Principal, Depends(authenticate)]
ConsoleSession = Annotated[Principal, Depends(require_session)]
Enrollment = Annotated[Principal, Depends(require_enrollment)]
