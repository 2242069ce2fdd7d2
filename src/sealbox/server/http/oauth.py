"""Human logins over HTTP: RFC 8628 device authorization, the token endpoint, RFC 7009 revocation.

The OAuth endpoints take urlencoded forms, parsed here strictly, and answer
errors in the RFC 6749 §5.2 shape ``{error, error_description}``; the body also
carries the ``message`` and ``hint`` every other sealbox error has, so one
client-side parser reads both.  The approver's side (``/device-requests``)
answers like every other sealbox endpoint.  The work is done by
:mod:`sealbox.server.services.login`.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sealbox.errors import SealboxError
from sealbox.protocol import ids
from sealbox.protocol.statements import ClientInfo
from sealbox.server.errors import Invalid, RelayError, Unauthenticated
from sealbox.server.http.deps import Approver, relay_of, source_ip
from sealbox.server.http.errors import status_of
from sealbox.server.services import agents, login
from sealbox.server.services.admin import CERTIFICATE_MAX

router = APIRouter()

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
VERIFICATION_PATH = "/device"
# RFC 6749 §3.3 scope tokens.
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,64}( [\x21\x23-\x5b\x5d-\x7e]{1,64}){0,15}")
_MAX_FORM_FIELDS = 16
TOKEN_MAX = 200

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _form_doc(required: list[str], optional: list[str]) -> dict[str, Any]:
    """OpenAPI description of a urlencoded body (the routes parse it themselves, strictly)."""
    fields = {name: {"type": "string"} for name in [*required, *optional]}
    schema = {"type": "object", "required": required, "properties": fields}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    }


def _ok(body: dict[str, Any]) -> JSONResponse:
    # RFC 6749 §5.1: responses carrying tokens must not be cached anywhere.
    return JSONResponse(body, headers=_NO_STORE)


def _oauth_error(
    status: int, error: str, description: str, hint: str = "", retry_after: float | None = None
) -> JSONResponse:
    headers = dict(_NO_STORE)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if status == 401:
        # RFC 6749 §5.2: a 401 names the schemes a client may authenticate with.
        headers["WWW-Authenticate"] = 'Basic realm="sealbox"'
    return JSONResponse(
        {"error": error, "error_description": description, "message": description, "hint": hint},
        status_code=status,
        headers=headers,
    )


async def _answer_oauth(work: Callable[[], Awaitable[JSONResponse]]) -> JSONResponse:
    """Run an OAuth endpoint, rendering any refusal in RFC 6749 §5.2 shape."""
    try:
        return await work()
    except RelayError as exc:
        return _oauth_error(status_of(exc), exc.code, exc.message, exc.hint, exc.retry_after)
    except SealboxError as exc:
        # A malformed id, key or name in the form: OAuth has one code for that.
        return _oauth_error(400, "invalid_request", exc.message, exc.hint)


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded body, strictly: one value per name (RFC 6749 §3.1), UTF-8 only."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise Invalid("invalid_request", "expected an application/x-www-form-urlencoded body")
    raw = await request.body()
    try:
        pairs = parse_qsl(
            raw.decode("ascii"), keep_blank_values=True, strict_parsing=bool(raw),
            errors="strict", max_num_fields=_MAX_FORM_FIELDS,
        )  # fmt: skip
    except (UnicodeDecodeError, ValueError):
        raise Invalid("invalid_request", "the form body does not parse") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise Invalid("invalid_request", f"parameter {name!r} is given more than once")
        form[name] = value
    return form


def _required(form: dict[str, str], name: str, max_len: int = TOKEN_MAX) -> str:
    value = form.get(name)
    if not value:
        raise Invalid("invalid_request", f"missing parameter {name!r}")
    if len(value) > max_len:
        raise Invalid("invalid_request", f"parameter {name!r} is too long")
    return value


def token_endpoint(relay: Any) -> str:
    """The token endpoint's URL: the ``aud`` a client assertion must name (RFC 7523 §3)."""
    return f"{relay.settings.base_url}/oauth/token"


def _tokens(issued: login.IssuedTokens) -> dict[str, Any]:
    return {
        "access_token": issued.access_token, "refresh_token": issued.refresh_token,
        "token_type": "Bearer", "expires_in": issued.expires_in,
    }  # fmt: skip


# --- RFC 8628 §3.1-3.2: device authorization ------------------------------------------------


@router.post(
    "/oauth/device_authorization",
    tags=["oauth"],
    openapi_extra=_form_doc(["vault", "client_id", "client_name", "sig_pk"], ["scope", "invite"]),
)
async def device_authorization(request: Request) -> JSONResponse:
    """Start a CLI login: register the client key, get a device code and a user code."""

    async def work() -> JSONResponse:
        relay = relay_of(request)
        form = await _form(request)
        vault = ids.check_id(_required(form, "vault"), ids.VAULT, what="vault")
        info = ClientInfo.from_json({
            "id": _required(form, "client_id"), "kind": "human",
            "name": _required(form, "client_name", max_len=512),
            "sig_pk": _required(form, "sig_pk"),
        })  # fmt: skip
        scope = form.get("scope")
        if scope is not None and not _SCOPE.fullmatch(scope):
            raise Invalid("invalid_scope", "scope must be space-separated RFC 6749 scope tokens")
        # The certificate an approver signs decides the scopes; the table has no
        # column for a requested scope, so it is checked for form and not kept.
        invite = form.get("invite")
        if invite is not None and not 0 < len(invite) <= TOKEN_MAX:
            raise Invalid("invalid_invite", "the invite code is empty or too long")
        started = await login.start_login(
            relay, relay.now(), vault=vault, client=info, source_ip=source_ip(request),
            invite=invite,
        )  # fmt: skip
        uri = f"{relay.settings.base_url}{VERIFICATION_PATH}"
        answer: dict[str, Any] = {
            "device_code": started.device_code, "user_code": started.user_code,
            "verification_uri": uri,
            "verification_uri_complete": f"{uri}?{urlencode({'user_code': started.user_code})}",
            "expires_in": started.expires_in, "interval": started.interval,
        }  # fmt: skip
        if started.role is not None:
            # What the invite offers; the certificate the approver signs is what counts.
            answer["invite"] = {"project": started.project, "role": started.role}
        return _ok(answer)

    return await _answer_oauth(work)


# --- RFC 8628 §3.4-3.5 and RFC 6749 §6: the token endpoint ----------------------------------

CLIENT_CREDENTIALS = "client_credentials"
_TOKEN_FIELDS = [
    "device_code", "client_id", "refresh_token", "client_assertion_type", "client_assertion",
    "client_secret", "scope",
]  # fmt: skip


def _basic(header: str) -> tuple[str, str]:
    """RFC 6749 §2.3.1: ``Basic base64(urlencode(id) ":" urlencode(secret))``."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        raise Invalid("invalid_request", "the token endpoint takes only Basic client "
                      "authentication in the Authorization header")  # fmt: skip
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise Invalid("invalid_request", "the Basic credentials do not decode") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise Invalid("invalid_request", "the Basic credentials must be client_id:client_secret")
    return unquote_plus(client_id), unquote_plus(secret)


def _client_auth(request: Request, form: dict[str, str]) -> agents.ClientAuth:
    """How the caller authenticates: exactly one method (RFC 6749 §2.3), strictly parsed."""
    header = request.headers.get("authorization")
    basic = _basic(header) if header is not None else None
    assertion_type = form.get("client_assertion_type")
    assertion = form.get("client_assertion")
    secret = form.get("client_secret")
    client_id = form.get("client_id")
    used = [basic is not None, assertion is not None or assertion_type is not None,
            secret is not None]  # fmt: skip
    if sum(used) > 1:
        raise Invalid(
            "invalid_request", "use exactly one way of client authentication",
            "Send a client assertion, or Basic credentials, or client_secret.",
        )  # fmt: skip
    if client_id is not None and len(client_id) > 64:
        raise Invalid("invalid_request", "parameter 'client_id' is too long")
    if basic is not None:
        if client_id is not None and client_id != basic[0]:
            raise Invalid("invalid_request", "client_id differs from the Basic credentials")
        return agents.ClientAuth("client_secret_basic", basic[0], secret=basic[1])
    if secret is not None:
        return agents.ClientAuth("client_secret_post", _required(form, "client_id", 64),
                                 secret=_required(form, "client_secret"))  # fmt: skip
    if assertion is not None or assertion_type is not None:
        if assertion_type != agents.ASSERTION_TYPE:
            raise Invalid(
                "invalid_request", f"client_assertion_type must be {agents.ASSERTION_TYPE}"
            )
        return agents.ClientAuth("private_key_jwt", client_id,
                                 assertion=_required(form, "client_assertion", 4096))  # fmt: skip
    raise Unauthenticated(
        "invalid_client", "the client did not authenticate",
        "Send a client assertion signed with the agent's key (private_key_jwt), or its "
        "client secret.",
    )  # fmt: skip


@router.post(
    "/oauth/token",
    tags=["oauth"],
    openapi_extra=_form_doc(["grant_type"], _TOKEN_FIELDS),
)
async def token(request: Request) -> JSONResponse:
    """Exchange an approved device code, rotate a refresh token, or (an agent) authenticate
    for an access token with ``client_credentials``."""

    async def work() -> JSONResponse:
        relay = relay_of(request)
        form = await _form(request)
        grant_type = _required(form, "grant_type")
        if grant_type == DEVICE_GRANT:
            device_code = _required(form, "device_code")
            client_id = _required(form, "client_id")
            granted = await login.take_tokens(
                relay, relay.now(), device_code=device_code, client_id=client_id,
                source_ip=source_ip(request),
            )  # fmt: skip
            return _ok({
                **_tokens(granted.tokens), "certificate": granted.certificate,
                "vault": granted.vault, "client_id": granted.client_id,
            })  # fmt: skip
        if grant_type == "refresh_token":
            refresh_token = _required(form, "refresh_token")
            refreshed = await login.refresh(
                relay, relay.now(), refresh_token=refresh_token, client_id=form.get("client_id"),
                source_ip=source_ip(request),
            )  # fmt: skip
            return _ok({
                **_tokens(refreshed.tokens), "vault": refreshed.vault,
                "client_id": refreshed.client_id,
            })  # fmt: skip
        if grant_type == CLIENT_CREDENTIALS:
            # RFC 6749 §4.4: an agent authenticates itself; there is no refresh token
            # (§4.4.3), it simply authenticates again.
            auth = _client_auth(request, form)
            scope = form.get("scope")
            if scope is not None and not _SCOPE.fullmatch(scope):
                raise Invalid("invalid_scope", "scope must be space-separated scope tokens")
            issued = await agents.client_credentials(
                relay, relay.now(), auth=auth, audience=token_endpoint(relay), scope=scope,
                source_ip=source_ip(request),
            )  # fmt: skip
            return _ok({
                "access_token": issued.access_token, "token_type": "Bearer",
                "expires_in": issued.expires_in, "scope": issued.scope, "vault": issued.vault,
                "client_id": issued.client_id,
            })  # fmt: skip
        raise Invalid(
            "unsupported_grant_type",
            "this relay supports device_code, refresh_token and client_credentials",
        )

    return await _answer_oauth(work)


# --- RFC 7009: revocation ---------------------------------------------------------------------


@router.post(
    "/oauth/revoke", tags=["oauth"], openapi_extra=_form_doc(["token"], ["token_type_hint"])
)
async def revoke(request: Request) -> JSONResponse:
    """Revoke a token's whole family (its login), at once.  Unknown tokens also get 200."""

    async def work() -> JSONResponse:
        relay = relay_of(request)
        value = _required(await _form(request), "token")
        await login.revoke(relay, relay.now(), token=value, source_ip=source_ip(request))
        # RFC 7009 §2.2: the answer is the same whether or not the token was known,
        # so the endpoint cannot be used to probe which tokens exist.
        return _ok({})

    return await _answer_oauth(work)


# --- the approver's side -----------------------------------------------------------------------


class ApproveBody(BaseModel):
    certificate: str = Field(
        max_length=CERTIFICATE_MAX, description="The client certificate (compact JWS) you signed."
    )


@router.get("/v1/vaults/{vault}/device-requests", tags=["oauth"])
async def list_device_requests(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """Logins waiting for an approver, with what to compare against the person's terminal."""
    relay = relay_of(request)
    waiting = await login.pending_logins(relay, relay.now(), vault=vault)
    return {"device_requests": [asdict(entry) for entry in waiting]}


@router.post("/v1/vaults/{vault}/device-requests/{user_code}/approve", tags=["oauth"])
async def approve_device_request(
    vault: str, user_code: str, body: ApproveBody, principal: Approver, request: Request
) -> dict[str, Any]:
    """Approve a login by uploading the client certificate you signed for its key."""
    relay = relay_of(request)
    answered = await login.approve(
        relay, relay.now(), vault=vault, user_code=user_code, certificate=body.certificate,
        approver=principal, source_ip=source_ip(request),
    )  # fmt: skip
    return {"user_code": answered.user_code, "client_id": answered.client_id,
            "state": answered.state.value}  # fmt: skip


@router.post("/v1/vaults/{vault}/device-requests/{user_code}/deny", tags=["oauth"])
async def deny_device_request(
    vault: str, user_code: str, principal: Approver, request: Request
) -> dict[str, Any]:
    """Refuse a login; the CLI's next poll gets ``access_denied``."""
    relay = relay_of(request)
    answered = await login.deny(
        relay, relay.now(), vault=vault, user_code=user_code, approver=principal,
        source_ip=source_ip(request),
    )  # fmt: skip
    return {"user_code": answered.user_code, "client_id": answered.client_id,
            "state": answered.state.value}  # fmt: skip
