"""Health and discovery: ``/healthz``, RFC 8414 metadata, and the vault this relay serves.

Also ``/device``, the page a login's URL and QR code lead to.
"""

from __future__ import annotations

import html
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from sealbox.server.http.deps import relay_of
from sealbox.server.services import directory

router = APIRouter()


@router.get("/healthz", tags=["system"])
async def healthz(request: Request) -> dict[str, str]:
    """Liveness and database reachability."""
    await directory.check_database(relay_of(request))
    return {"status": "ok"}


@router.get("/.well-known/oauth-authorization-server", tags=["system"])
async def oauth_metadata(request: Request) -> dict[str, Any]:
    """RFC 8414 authorization server metadata (device flow and tokens)."""
    base = relay_of(request).settings.base_url
    return {
        "issuer": base,
        "device_authorization_endpoint": f"{base}/oauth/device_authorization",
        "token_endpoint": f"{base}/oauth/token",
        "revocation_endpoint": f"{base}/oauth/revoke",
        "grant_types_supported": [
            "urn:ietf:params:oauth:grant-type:device_code",
            "refresh_token",
        ],
        "token_endpoint_auth_methods_supported": ["none"],
        "response_types_supported": ["none"],
    }


@router.get("/v1/vault", tags=["vault"])
async def vault_info(request: Request) -> dict[str, Any]:
    """The vault this relay serves: its id, and whether it has its first approver yet."""
    info = await directory.vault_info(relay_of(request))
    return {"vault": info.vault, "ready": info.ready}


_USER_CODE = re.compile(r"[A-Z]{4}-?[A-Z]{4}")


@router.get("/device", tags=["oauth"], response_class=HTMLResponse)
async def device_page(user_code: str = "") -> HTMLResponse:
    """Where a login's URL and QR code lead: how to approve it (RFC 8628 ``verification_uri``).

    Approving needs an approver's keys, which never reach this server: the page
    says where to approve, and shows the user code to compare.
    """
    code = user_code.upper() if _USER_CODE.fullmatch(user_code.upper()) else ""
    shown = f"<p>User code: <strong>{html.escape(code)}</strong></p>" if code else ""
    page = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width'><title>sealbox login</title>"
        "<h1>Approve a sealbox login</h1>" + shown + "<p>Logins are approved on an approver "
        "device: run <code>sealbox approve</code> there, check that it shows this user code "
        "and the key safety code the person's terminal shows, and type the code.</p></html>"
    )
    headers = {"cache-control": "no-store", "content-security-policy": "default-src 'none'"}
    return HTMLResponse(page, headers=headers)
