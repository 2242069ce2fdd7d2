"""Human logins: RFC 8628 device authorization, the token endpoint, RFC 7009 revocation.

``sealbox login`` generates a client key and posts its public half with a
fresh ``cli_`` id to ``/oauth/device_authorization``.  The person reads the
user code and the key's fingerprint off the terminal; an approver looks the
request up by that code, compares the fingerprint, and uploads a client
certificate it signed for exactly that id and key.  Meanwhile the CLI polls
``/oauth/token`` with its device code and, once approved, receives the
certificate and a token family.

The OAuth endpoints answer errors in the RFC 6749 §5.2 shape
``{error, error_description}``; the body also carries the ``message`` and
``hint`` every other sealbox error has, so one client-side parser reads both.
The relay stores only hashes of device codes and tokens.
"""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import secrets as sx
from sealbox.crypto.keys import VerifyKey
from sealbox.errors import CertificateInvalid, SealboxError
from sealbox.protocol import ids
from sealbox.protocol.certificates import verify_certificate
from sealbox.protocol.statements import ClientInfo
from sealbox.server.auth import Approver
from sealbox.server.auth import tokens as tk
from sealbox.server.errors import ApiError
from sealbox.server.routes.system import relay_of
from sealbox.server.routes.vault import load_directory
from sealbox.server.store import audit
from sealbox.server.store.tables import clients, device_codes

router = APIRouter()

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_CODE_PREFIX = "sbx_dc_"
DEVICE_CODE_SECONDS = 600
POLL_INTERVAL = 5
SLOW_DOWN_STEP = 5
# RFC 8628 lets the interval grow without bound; past a minute a stuck client
# only makes the login slower for the person waiting, not the relay safer.
MAX_INTERVAL = 60
# Anyone may open a device request (that is the point of the flow), so cap how
# many can wait at once: approvers must not have to scroll past a flood.
PENDING_CAP = 50
# Expired device requests are kept a while so a late poll gets expired_token
# rather than invalid_grant, then deleted.
KEEP_EXPIRED_SECONDS = 3600
VERIFICATION_PATH = "/device"

# RFC 8628 §6.1: no vowels (no words), no look-alikes (0/O, 1/I/L… are absent).
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
_USER_CODE = re.compile(f"[{USER_CODE_ALPHABET}]{{4}}-[{USER_CODE_ALPHABET}]{{4}}")
# RFC 6749 §3.3 scope tokens.
_SCOPE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,64}( [\x21\x23-\x5b\x5d-\x7e]{1,64}){0,15}")
_MAX_FORM_FIELDS = 16
TOKEN_MAX = 200
CERTIFICATE_MAX = 16384


class OAuthError(Exception):
    """An error the OAuth endpoints answer in RFC 6749 §5.2 shape."""

    def __init__(self, error: str, description: str, *, status: int = 400, hint: str = "") -> None:
        super().__init__(description)
        self.status, self.error, self.description, self.hint = status, error, description, hint


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


def _oauth_error(status: int, error: str, description: str, hint: str = "") -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description, "message": description, "hint": hint},
        status_code=status,
        headers=_NO_STORE,
    )


def _as_oauth(exc: Exception) -> JSONResponse:
    if isinstance(exc, OAuthError):
        return _oauth_error(exc.status, exc.error, exc.description, exc.hint)
    if isinstance(exc, ApiError):
        return _oauth_error(exc.status, exc.error, exc.message, exc.hint)
    if isinstance(exc, SealboxError):
        return _oauth_error(400, "invalid_request", exc.message, exc.hint)
    raise exc


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded body, strictly: one value per name (RFC 6749 §3.1), UTF-8 only."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise OAuthError("invalid_request", "expected an application/x-www-form-urlencoded body")
    raw = await request.body()
    try:
        pairs = parse_qsl(
            raw.decode("ascii"), keep_blank_values=True, strict_parsing=bool(raw),
            errors="strict", max_num_fields=_MAX_FORM_FIELDS,
        )  # fmt: skip
    except (UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_request", "the form body does not parse") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise OAuthError("invalid_request", f"parameter {name!r} is given more than once")
        form[name] = value
    return form


def _required(form: dict[str, str], name: str, max_len: int = TOKEN_MAX) -> str:
    value = form.get(name)
    if not value:
        raise OAuthError("invalid_request", f"missing parameter {name!r}")
    if len(value) > max_len:
        raise OAuthError("invalid_request", f"parameter {name!r} is too long")
    return value


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def new_user_code() -> str:
    chars = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
    return f"{chars[:4]}-{chars[4:]}"


def normalise_user_code(value: str) -> str:
    """Accept what a person types (lower case, with or without the dash or spaces)."""
    compact = value.upper().replace("-", "").replace(" ", "")
    code = f"{compact[:4]}-{compact[4:]}"
    if len(compact) != USER_CODE_LENGTH or not _USER_CODE.fullmatch(code):
        raise ApiError(
            400, "invalid_user_code", "a user code is eight letters like BCDF-GHJK",
            "Copy the code exactly as `sealbox login` printed it.",
        )  # fmt: skip
    return code


async def client_not_after(
    conn: AsyncConnection, vault: str, client_id: str, *, now: int
) -> int | None:
    """When the client's certificate ends, or ``None`` if the client may not get tokens now.

    The certificate is verified again against the *current* directory: an
    approver's removal voids what it certified, and with it the client's
    ability to refresh its session.
    """
    row = (
        await conn.execute(
            select(clients).where(clients.c.vault_id == vault, clients.c.id == client_id)
        )
    ).first()
    if row is None or row.disabled:
        return None
    try:
        directory = await load_directory(conn, vault)
        cert = verify_certificate(row.certificate, directory, now=now)
    except (ApiError, CertificateInvalid):
        return None
    if cert.client.id != client_id or cert.client.sig_pk.to_text() != row.sig_pk:
        return None
    return cert.constraints.not_after


# --- RFC 8628 §3.1-3.2: device authorization ------------------------------------------------


@router.post(
    "/oauth/device_authorization",
    tags=["oauth"],
    openapi_extra=_form_doc(["vault", "client_id", "client_name", "sig_pk"], ["scope"]),
)
async def device_authorization(request: Request) -> JSONResponse:
    """Start a CLI login: register the client key, get a device code and a user code."""
    try:
        return await _device_authorization(request)
    except (OAuthError, ApiError, SealboxError) as exc:
        return _as_oauth(exc)


async def _device_authorization(request: Request) -> JSONResponse:
    relay = relay_of(request)
    form = await _form(request)
    vault = ids.check_id(_required(form, "vault"), ids.VAULT, what="vault")
    info = ClientInfo.from_json({
        "id": _required(form, "client_id"), "kind": "human",
        "name": _required(form, "client_name", max_len=512), "sig_pk": _required(form, "sig_pk"),
    })  # fmt: skip
    scope = form.get("scope")
    if scope is not None and not _SCOPE.fullmatch(scope):
        raise OAuthError("invalid_scope", "scope must be space-separated RFC 6749 scope tokens")
    # The certificate an approver signs decides the scopes; the table has no
    # column for a requested scope, so it is checked for form and not kept.
    # Anyone may start a login (valid requests count), so each source address gets a small budget
    # before the per-vault cap: one noisy address cannot block everyone's logins.
    source = request.client.host if request.client else "unknown"
    if relay.anonymous_limiter.allow(f"device {source}"):
        raise OAuthError(
            "slow_down", "too many logins started from this address; wait a minute", status=429
        )
    now = relay.now()
    device_code = sx.new_token(DEVICE_CODE_PREFIX)
    async with relay.tx() as tx:
        conn = tx.conn
        await load_directory(conn, vault)
        await conn.execute(
            delete(device_codes).where(
                device_codes.c.vault_id == vault,
                device_codes.c.expires_at < now - KEEP_EXPIRED_SECONDS,
            )
        )
        taken = (
            await conn.execute(
                select(clients.c.id).where(clients.c.vault_id == vault, clients.c.id == info.id)
            )
        ).first()
        if taken is not None:
            raise OAuthError(
                "invalid_request", "this client id is already registered",
                hint="Generate a fresh client id and key for each login.",
            )  # fmt: skip
        pending = (
            await conn.execute(
                select(func.count()).select_from(device_codes).where(
                    device_codes.c.vault_id == vault, device_codes.c.state == "pending",
                    device_codes.c.expires_at > now,
                )
            )
        ).scalar_one()  # fmt: skip
        if pending >= PENDING_CAP:
            raise OAuthError(
                "slow_down", "too many logins are waiting for approval in this vault",
                status=429, hint="Ask an approver to approve or deny the waiting logins.",
            )  # fmt: skip
        user_code = await _unused_user_code(conn)
        await conn.execute(
            device_codes.insert().values(
                device_code_hash=sx.token_hash(device_code), vault_id=vault, user_code=user_code,
                client_id=info.id, client_name=info.name, sig_pk=info.sig_pk.to_text(),
                state="pending", certificate=None, interval=POLL_INTERVAL, last_poll=0,
                expires_at=now + DEVICE_CODE_SECONDS,
            )
        )  # fmt: skip
        await audit.append(
            conn, vault=vault, at=now, actor="anonymous", action="device.requested",
            client_id=info.id, source_ip=_ip(request),
            detail={"user_code": user_code, "client_name": info.name,
                    "key_fingerprint": info.sig_pk.fingerprint()},
        )  # fmt: skip
        tx.wake(f"vault:{vault}:approvers", "device-requests")
    base = relay.settings.base_url
    uri = f"{base}{VERIFICATION_PATH}"
    return _ok({
        "device_code": device_code, "user_code": user_code, "verification_uri": uri,
        "verification_uri_complete": f"{uri}?{urlencode({'user_code': user_code})}",
        "expires_in": DEVICE_CODE_SECONDS, "interval": POLL_INTERVAL,
    })  # fmt: skip


async def _unused_user_code(conn: AsyncConnection) -> str:
    # 20^8 codes: a clash is rare, but user_code is unique across the table.
    for _ in range(8):
        code = new_user_code()
        clash = (
            await conn.execute(
                select(device_codes.c.user_code).where(device_codes.c.user_code == code)
            )
        ).first()
        if clash is None:
            return code
    raise ApiError(503, "busy", "could not pick a fresh user code; try again")


# --- RFC 8628 §3.4-3.5 and RFC 6749 §6: the token endpoint ----------------------------------


@router.post(
    "/oauth/token",
    tags=["oauth"],
    openapi_extra=_form_doc(["grant_type"], ["device_code", "client_id", "refresh_token"]),
)
async def token(request: Request) -> JSONResponse:
    """Exchange an approved device code, or rotate a refresh token."""
    try:
        form = await _form(request)
        grant_type = _required(form, "grant_type")
        if grant_type == DEVICE_GRANT:
            return await _device_grant(request, form)
        if grant_type == "refresh_token":
            return await _refresh_grant(request, form)
        raise OAuthError("unsupported_grant_type", "this relay supports device_code and refresh")
    except (OAuthError, ApiError, SealboxError) as exc:
        return _as_oauth(exc)


async def _device_grant(request: Request, form: dict[str, str]) -> JSONResponse:
    relay = relay_of(request)
    device_code = _required(form, "device_code")
    client_id = _required(form, "client_id")
    now = relay.now()
    # Outcomes are decided inside the transaction but raised after it commits:
    # a slow_down must persist the longer interval, and a reuse its audit event.
    failure: OAuthError | None = None
    granted: dict[str, Any] = {}
    async with relay.tx() as tx:
        conn = tx.conn
        row = (
            await conn.execute(
                select(device_codes)
                .where(device_codes.c.device_code_hash == sx.token_hash(device_code))
                .with_for_update()
            )
        ).first()
        if row is None or row.client_id != client_id:
            raise OAuthError("invalid_grant", "the device code is unknown or already used")
        vault = row.vault_id
        where = and_(
            device_codes.c.device_code_hash == row.device_code_hash,
            device_codes.c.state == row.state,
        )
        if row.state == "used":
            await audit.append(
                conn, vault=vault, at=now, actor=client_id, action="device.code_reused",
                severity="warning", client_id=client_id, source_ip=_ip(request),
                detail={"user_code": row.user_code},
            )  # fmt: skip
            failure = OAuthError("invalid_grant", "the device code is unknown or already used")
        elif row.state == "denied":
            failure = OAuthError("access_denied", "an approver denied this login")
        elif row.expires_at <= now:
            failure = OAuthError(
                "expired_token", "the device code has expired", hint="Run `sealbox login` again."
            )
        elif row.state == "pending":
            if row.last_poll and now - row.last_poll < row.interval:
                interval = min(row.interval + SLOW_DOWN_STEP, MAX_INTERVAL)
                await conn.execute(
                    update(device_codes).where(where).values(interval=interval, last_poll=now)
                )
                failure = OAuthError(
                    "slow_down", f"poll at most every {interval} seconds",
                    hint=f"Wait {interval} seconds between polls.",
                )  # fmt: skip
            else:
                await conn.execute(update(device_codes).where(where).values(last_poll=now))
                failure = OAuthError(
                    "authorization_pending", "the login is waiting for an approver",
                    hint=f"Ask an approver to approve user code {row.user_code}.",
                )  # fmt: skip
        else:  # approved
            not_after = await client_not_after(conn, vault, client_id, now=now)
            if not_after is None or not_after <= now:
                raise OAuthError("invalid_grant", "the client was disabled or its certificate "
                                 "no longer verifies")  # fmt: skip
            spent = await conn.execute(update(device_codes).where(where).values(state="used"))
            if spent.rowcount != 1:
                raise OAuthError("invalid_grant", "the device code is unknown or already used")
            issued = await tk.issue_tokens(
                conn, vault=vault, client_id=client_id, now=now, not_after=not_after
            )
            await audit.append(
                conn, vault=vault, at=now, actor=client_id, action="token.issued",
                client_id=client_id, source_ip=_ip(request),
                detail={"grant": "device_code", "family": issued.family},
            )  # fmt: skip
            granted = {
                "access_token": issued.access_token, "refresh_token": issued.refresh_token,
                "token_type": "Bearer", "expires_in": issued.expires_in,
                "certificate": row.certificate, "vault": vault, "client_id": client_id,
            }  # fmt: skip
    if failure is not None:
        raise failure
    return _ok(granted)


async def _refresh_grant(request: Request, form: dict[str, str]) -> JSONResponse:
    relay = relay_of(request)
    refresh_token = _required(form, "refresh_token")
    client_id = form.get("client_id")
    now = relay.now()

    async def not_after_of(conn: AsyncConnection, vault: str, client: str) -> int | None:
        return await client_not_after(conn, vault, client, now=now)

    async with relay.tx() as tx:
        rotation = await tk.rotate_refresh(
            tx.conn, refresh_token, now=now, not_after_of=not_after_of, client_id=client_id
        )
        if rotation.vault is not None and rotation.outcome == "reused":
            await audit.append(
                tx.conn, vault=rotation.vault, at=now, actor=rotation.client_id or "anonymous",
                action="token.reuse_detected", severity="warning", client_id=rotation.client_id,
                source_ip=_ip(request), detail={"family": rotation.family, "revoked": "family"},
            )  # fmt: skip
        elif rotation.vault is not None and rotation.issued is not None:
            await audit.append(
                tx.conn, vault=rotation.vault, at=now, actor=rotation.client_id or "anonymous",
                action="token.refreshed", client_id=rotation.client_id, source_ip=_ip(request),
                detail={"family": rotation.family},
            )  # fmt: skip
    issued = rotation.issued
    if issued is None:
        raise OAuthError(
            "invalid_grant", "the refresh token is unknown, expired, revoked or already used",
            hint="Log in again with `sealbox login`.",
        )  # fmt: skip
    return _ok({
        "access_token": issued.access_token, "refresh_token": issued.refresh_token,
        "token_type": "Bearer", "expires_in": issued.expires_in, "vault": rotation.vault,
        "client_id": rotation.client_id,
    })  # fmt: skip


# --- RFC 7009: revocation ---------------------------------------------------------------------


@router.post(
    "/oauth/revoke", tags=["oauth"], openapi_extra=_form_doc(["token"], ["token_type_hint"])
)
async def revoke(request: Request) -> JSONResponse:
    """Revoke a token's whole family (its login), at once.  Unknown tokens also get 200."""
    try:
        form = await _form(request)
        value = _required(form, "token")
    except (OAuthError, ApiError, SealboxError) as exc:
        return _as_oauth(exc)
    relay = relay_of(request)
    now = relay.now()
    async with relay.tx() as tx:
        row = await tk.find_token(tx.conn, value)
        if row is not None:
            revoked = await tk.revoke_family(tx.conn, vault=row.vault, family=row.family)
            if revoked:
                await audit.append(
                    tx.conn, vault=row.vault, at=now, actor=row.client_id, action="token.revoked",
                    client_id=row.client_id, source_ip=_ip(request),
                    detail={"family": row.family, "presented": row.kind},
                )  # fmt: skip
    # RFC 7009 §2.2: the answer is the same whether or not the token was known,
    # so the endpoint cannot be used to probe which tokens exist.
    return _ok({})


# --- the approver's side -----------------------------------------------------------------------


class ApproveBody(BaseModel):
    certificate: str = Field(
        max_length=CERTIFICATE_MAX, description="The client certificate (compact JWS) you signed."
    )


@router.get("/v1/vaults/{vault}/device-requests", tags=["oauth"])
async def list_device_requests(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """Logins waiting for an approver, with what to compare against the person's terminal."""
    relay = relay_of(request)
    now = relay.now()
    async with relay.read() as conn:
        rows = (
            await conn.execute(
                select(device_codes)
                .where(device_codes.c.vault_id == vault, device_codes.c.state == "pending",
                       device_codes.c.expires_at > now)
                .order_by(device_codes.c.expires_at, device_codes.c.user_code)
            )
        ).all()  # fmt: skip
    out = []
    for row in rows:
        key = VerifyKey.from_text(row.sig_pk)
        out.append({
            "user_code": row.user_code, "client_id": row.client_id,
            "client_name": row.client_name, "kind": "human", "sig_pk": row.sig_pk,
            "key_fingerprint": key.fingerprint(), "key_safety_code": key.safety_code(),
            "created_at": row.expires_at - DEVICE_CODE_SECONDS, "expires_at": row.expires_at,
        })  # fmt: skip
    return {"device_requests": out}


async def _pending(conn: AsyncConnection, vault: str, user_code: str, now: int) -> Any:
    row = (
        await conn.execute(
            select(device_codes)
            .where(device_codes.c.vault_id == vault, device_codes.c.user_code == user_code)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise ApiError(404, "no_such_device_request", "no login with this user code is waiting",
                       "Check the code on the person's terminal.")  # fmt: skip
    if row.state != "pending":
        raise ApiError(409, "device_request_closed", f"this login was already {row.state}")
    if row.expires_at <= now:
        raise ApiError(409, "device_request_expired", "this login has expired",
                       "Ask the person to run `sealbox login` again.")  # fmt: skip
    return row


@router.post("/v1/vaults/{vault}/device-requests/{user_code}/approve", tags=["oauth"])
async def approve_device_request(
    vault: str, user_code: str, body: ApproveBody, principal: Approver, request: Request
) -> dict[str, Any]:
    """Approve a login by uploading the client certificate you signed for its key."""
    relay = relay_of(request)
    code = normalise_user_code(user_code)
    now = relay.now()
    async with relay.tx() as tx:
        conn = tx.conn
        directory = await load_directory(conn, vault)
        row = await _pending(conn, vault, code, now)
        cert = verify_certificate(body.certificate, directory, now=now)
        if cert.issuer != principal.id:
            raise ApiError(403, "not_the_issuer", "the certificate is signed by another approver",
                           "Sign the certificate with your own key.")  # fmt: skip
        if (
            cert.client.id != row.client_id
            or cert.client.kind != "human"
            or cert.client.sig_pk.to_text() != row.sig_pk
        ):
            raise ApiError(
                400, "certificate_mismatch",
                "the certificate is not for this login's client id and key, as a human client",
                "Certify exactly the client id and key shown with this user code.",
            )  # fmt: skip
        await insert_client(conn, vault, cert.client, body.certificate, now)
        done = await conn.execute(
            update(device_codes)
            .where(device_codes.c.device_code_hash == row.device_code_hash,
                   device_codes.c.state == "pending")
            .values(state="approved", certificate=body.certificate)
        )  # fmt: skip
        if done.rowcount != 1:
            raise ApiError(409, "device_request_closed", "this login was answered meanwhile")
        await audit.append(
            conn, vault=vault, at=now, actor=principal.id, action="device.approved",
            client_id=row.client_id, source_ip=_ip(request),
            detail={"user_code": code, "key_fingerprint": cert.client.sig_pk.fingerprint(),
                    "scopes": list(cert.scopes), "not_after": cert.constraints.not_after},
        )  # fmt: skip
        tx.wake(f"vault:{vault}:approvers", "device-requests")
    return {"user_code": code, "client_id": row.client_id, "state": "approved"}


@router.post("/v1/vaults/{vault}/device-requests/{user_code}/deny", tags=["oauth"])
async def deny_device_request(
    vault: str, user_code: str, principal: Approver, request: Request
) -> dict[str, Any]:
    """Refuse a login; the CLI's next poll gets ``access_denied``."""
    relay = relay_of(request)
    code = normalise_user_code(user_code)
    now = relay.now()
    async with relay.tx() as tx:
        conn = tx.conn
        row = await _pending(conn, vault, code, now)
        done = await conn.execute(
            update(device_codes)
            .where(device_codes.c.device_code_hash == row.device_code_hash,
                   device_codes.c.state == "pending")
            .values(state="denied")
        )  # fmt: skip
        if done.rowcount != 1:
            raise ApiError(409, "device_request_closed", "this login was answered meanwhile")
        await audit.append(
            conn, vault=vault, at=now, actor=principal.id, action="device.denied",
            client_id=row.client_id, source_ip=_ip(request), detail={"user_code": code},
        )  # fmt: skip
        tx.wake(f"vault:{vault}:approvers", "device-requests")
    return {"user_code": code, "client_id": row.client_id, "state": "denied"}


async def insert_client(
    conn: AsyncConnection, vault: str, info: ClientInfo, certificate: str, now: int
) -> None:
    taken = (
        await conn.execute(
            select(clients.c.id).where(clients.c.vault_id == vault, clients.c.id == info.id)
        )
    ).first()
    if taken is not None:
        raise ApiError(409, "client_exists", "a client with this id is already registered",
                       "Generate a fresh client id for a new client.")  # fmt: skip
    await conn.execute(
        clients.insert().values(
            vault_id=vault, id=info.id, kind=info.kind, name=info.name,
            sig_pk=info.sig_pk.to_text(), certificate=certificate, enrollment=None,
            disabled=False, created_at=now,
        )
    )  # fmt: skip
