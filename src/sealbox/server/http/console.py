"""The browser console: its pages and static modules, and its passkey and session API.

API (all JSON, under ``/v1/vaults/{vault}/console``): setup of the first
approver with a passkey, a browser device asking to join by pairing, sign-in,
sign-out, the current session.  There is no "add a passkey": a browser approver's keys
are wrapped under its one passkey's PRF output, so another passkey could only sign in,
and a stolen session could have used one to outlive itself.  A session is the
``sealbox_console`` cookie (HttpOnly, SameSite=Strict, Path=/, Secure on https);
the browser reads its CSRF token from ``GET console/session`` and sends it as
``X-Sealbox-CSRF`` on every call that changes anything.  See :mod:`sealbox.server.services.console`.

Pages (``/console/<page>``), the service worker (``/console/sw.js``) and static
modules (``/console/static/…``) come from :mod:`sealbox.web`, the same assets
``sealbox console`` serves on localhost.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from sealbox import web
from sealbox.server.auth.refusals import record_refusal
from sealbox.server.auth.session import COOKIE, session_cookie
from sealbox.server.errors import NotFound, RelayError, Unauthenticated
from sealbox.server.http.deps import ConsoleSession, relay_of, source_ip
from sealbox.server.relay import Relay
from sealbox.server.services import console as service
from sealbox.server.services import directory

router = APIRouter(tags=["console"])

API = "/v1/vaults/{vault}/console"
TOKEN_MAX = 4096


class SetupOptionsBody(BaseModel):
    setup_token: str = Field(max_length=200)
    approver_id: str = Field(max_length=64, description="The `apv_…` id link 0 will add.")
    name: str = Field(max_length=128, description="The approver's name, shown by the passkey.")


class SetupBody(BaseModel):
    setup_token: str = Field(max_length=200)
    link: str = Field(max_length=TOKEN_MAX * 4, description="Directory link 0 (compact JWS).")
    credential: dict[str, Any] = Field(
        description="The PublicKeyCredential's JSON (registration) from navigator.credentials."
    )


class CredentialBody(BaseModel):
    credential: dict[str, Any] = Field(description="The PublicKeyCredential's JSON.")


def _origin(request: Request) -> str | None:
    return request.headers.get("origin")


def _with_session(relay: Relay, body: dict[str, Any], session: service.Session,
                  status: int = 200) -> JSONResponse:  # fmt: skip
    response = JSONResponse(body, status_code=status, headers={"cache-control": "no-store"})
    response.set_cookie(
        COOKIE, session.token, max_age=service.SESSION_SECONDS, path="/", httponly=True,
        samesite="strict", secure=relay.settings.base_url.startswith("https://"),
    )  # fmt: skip
    return response


def _session_json(session: service.Session) -> dict[str, Any]:
    return {"approver": session.approver, "csrf": session.csrf, "expires_at": session.expires_at}


@router.post(API + "/setup/options")
async def setup_options(vault: str, body: SetupOptionsBody, request: Request) -> dict[str, Any]:
    """WebAuthn creation options for the first approver's passkey (user.id = its approver id)."""
    relay = relay_of(request)
    options = await service.setup_options(
        relay, relay.now(), vault=vault, setup_token=body.setup_token,
        approver_id=body.approver_id, name=body.name, origin=_origin(request),
        source_ip=source_ip(request),
    )  # fmt: skip
    return {"publicKey": json.loads(options)}


@router.post(API + "/setup", status_code=201)
async def setup(vault: str, body: SetupBody, request: Request) -> JSONResponse:
    """Set the vault up with link 0 and the passkey made for its approver; starts a session."""
    relay = relay_of(request)
    done = await service.set_up(
        relay, relay.now(), vault=vault, setup_token=body.setup_token, link0=body.link,
        credential=body.credential, origin=_origin(request), source_ip=source_ip(request),
    )  # fmt: skip
    answer = {"vault": done.vault, "fingerprint": done.fingerprint,
              "safety_code": done.safety_code, **_session_json(done.session)}  # fmt: skip
    return _with_session(relay, answer, done.session, status=201)


class PairingOptionsBody(BaseModel):
    approver_id: str = Field(max_length=64, description="The new device's own `apv_…` id.")
    name: str = Field(max_length=128, description="The new device's name, shown by the passkey.")


class PairingBody(BaseModel):
    approver: dict[str, Any] = Field(description="The new device's record (kind browser).")
    credential: dict[str, Any] = Field(
        description="The PublicKeyCredential's JSON (registration) made for that record's id."
    )


@router.post(API + "/pairing/options")
async def pairing_options(vault: str, body: PairingOptionsBody, request: Request) -> dict[str, Any]:
    """WebAuthn creation options for a browser device that asks to join as an approver."""
    relay = relay_of(request)
    options = await service.pairing_options(
        relay, relay.now(), vault=vault, approver_id=body.approver_id, name=body.name,
        origin=_origin(request), source_ip=source_ip(request),
    )  # fmt: skip
    return {"publicKey": json.loads(options)}


@router.post(API + "/pairing", status_code=201)
async def ask_to_pair(vault: str, body: PairingBody, request: Request) -> dict[str, Any]:
    """Ask to join with this record and its passkey; poll `/pairing-requests/{id}` for the answer.

    The passkey signs in once an approver has added exactly this record (after comparing
    its pairing code).
    """
    relay = relay_of(request)
    asked = await service.ask_to_pair(
        relay, relay.now(), vault=vault, approver=body.approver, credential=body.credential,
        origin=_origin(request), source_ip=source_ip(request),
    )  # fmt: skip
    return {"id": asked.id, "state": asked.state, "expires_at": asked.expires_at}


@router.post(API + "/signin/options")
async def signin_options(vault: str, request: Request) -> dict[str, Any]:
    """WebAuthn request options: any passkey of this vault made on this console origin."""
    relay = relay_of(request)
    options = await service.signin_options(
        relay, relay.now(), vault=vault, origin=_origin(request), source_ip=source_ip(request)
    )
    return {"publicKey": json.loads(options)}


@router.post(API + "/signin")
async def signin(vault: str, body: CredentialBody, request: Request) -> JSONResponse:
    """Sign in with a passkey assertion; starts a session for the passkey's approver."""
    relay = relay_of(request)
    try:
        started = await service.sign_in(
            relay, relay.now(), vault=vault, credential=body.credential, origin=_origin(request),
            source_ip=source_ip(request),
        )  # fmt: skip
    except Unauthenticated as error:
        # A failed sign-in is audited, throttled, as every refused credential is.
        await record_refusal(request, relay, vault, error)
        raise
    return _with_session(relay, _session_json(started), started)


@router.get(API + "/session")
async def session(vault: str, principal: ConsoleSession, request: Request) -> JSONResponse:
    """The current session: its approver, CSRF token and expiry (401 when not signed in)."""
    relay = relay_of(request)
    token = request.cookies[COOKIE]
    found = await service.session(relay, relay.now(), vault=vault, token=token)
    return JSONResponse(_session_json(found), headers={"cache-control": "no-store"})


@router.post(API + "/signout", status_code=204)
async def signout(vault: str, principal: ConsoleSession, request: Request) -> Response:
    """End this session (CSRF token required) and clear the cookie."""
    relay = relay_of(request)
    await service.sign_out(relay, relay.now(), vault=vault, token=request.cookies[COOKIE],
                           source_ip=source_ip(request))  # fmt: skip
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=relay.settings.base_url.startswith("https://"))  # fmt: skip
    return response


# --- pages and static files ------------------------------------------------------------------


def assets_of(request: Request) -> web.Assets:
    """The console's assets: the installed package's, unless the app was given others (tests)."""
    given: web.Assets | None = getattr(request.app.state, "console_assets", None)
    return given if given is not None else web.packaged()


async def _current_session(relay: Relay, request: Request, vault: str) -> service.Session | None:
    token = session_cookie(request)
    if token is None:
        return None
    try:
        return await service.session(relay, relay.now(), vault=vault, token=token)
    except RelayError:
        return None


def _not_found() -> NotFound:
    return NotFound("not_found", "the console has no such page or file")


def static_response(
    request: Request, asset: web.Asset, *, service_worker: bool = False
) -> Response:
    headers = web.static_headers(asset, service_worker=service_worker)
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, headers=headers)


@router.get("/console", include_in_schema=False)
@router.get("/console/", include_in_schema=False)
async def console_home(request: Request) -> RedirectResponse:
    """Set up the vault's first approver, else approvals (signed in) or sign-in."""
    relay = relay_of(request)
    info = await directory.vault_info(relay)
    if not info.ready:
        target = "/console/setup"
    elif await _current_session(relay, request, info.vault) is None:
        target = "/console/signin"
    else:
        target = "/console/approvals"
    return RedirectResponse(target, status_code=303, headers={"cache-control": "no-store"})


@router.get("/console/sw.js", include_in_schema=False)
async def service_worker(request: Request) -> Response:
    try:
        asset = assets_of(request).static(web.SERVICE_WORKER)
    except LookupError:
        raise _not_found() from None
    return static_response(request, asset, service_worker=True)


@router.get("/console/static/{path:path}", include_in_schema=False)
async def static_file(path: str, request: Request) -> Response:
    try:
        asset = assets_of(request).static(path)
    except LookupError:
        raise _not_found() from None
    return static_response(request, asset)


@router.get("/console/{page}", include_in_schema=False)
async def console_page(page: str, request: Request) -> Response:
    relay = relay_of(request)
    info = await directory.vault_info(relay)
    session = await _current_session(relay, request, info.vault) if info.ready else None
    values = {
        "vault": info.vault,
        "relay_url": relay.settings.base_url,
        "csrf": session.csrf if session is not None else "",
        "approver": session.approver if session is not None else "",
    }
    try:
        rendered = assets_of(request).render(page, values)
    except LookupError:
        raise _not_found() from None
    return Response(rendered.body, headers=web.page_headers(rendered))
