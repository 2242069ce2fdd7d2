"""Health and discovery: ``/healthz``, RFC 8414 metadata, and the vault this relay serves.

Also ``/device``, where a login's URL and QR code lead: it sends the browser on
to the console's logins page.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

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
            "client_credentials",
        ],
        # People's CLIs are public clients (none); agents authenticate (client_credentials).
        "token_endpoint_auth_methods_supported": [
            "none",
            "private_key_jwt",
            "client_secret_basic",
            "client_secret_post",
        ],
        "token_endpoint_auth_signing_alg_values_supported": ["EdDSA"],
        "response_types_supported": ["none"],
    }


@router.get("/v1/vault", tags=["vault"])
async def vault_info(request: Request) -> dict[str, Any]:
    """The vault this relay serves: its id, and whether it has its first approver yet."""
    info = await directory.vault_info(relay_of(request))
    return {"vault": info.vault, "ready": info.ready}


_USER_CODE = re.compile(r"[A-Z]{4}-?[A-Z]{4}")


@router.get("/device", tags=["oauth"], response_class=RedirectResponse, status_code=303)
async def device_page(user_code: str = "") -> RedirectResponse:
    """Where a login's URL and QR code lead (RFC 8628 ``verification_uri``): the console's logins
    page, with the user code filled in when it is one.

    Only a well-formed user code is carried over: nothing else the link held
    reaches the page.
    """
    code = user_code.upper() if _USER_CODE.fullmatch(user_code.upper()) else ""
    target = "/console/logins" + (f"?{urlencode({'user_code': code})}" if code else "")
    return RedirectResponse(target, status_code=303, headers={"cache-control": "no-store"})
