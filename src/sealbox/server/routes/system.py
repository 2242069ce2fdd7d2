"""Health and discovery: ``/healthz``, RFC 8414 metadata, and the vault this relay serves."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select, text

from sealbox.server.db.tables import vaults
from sealbox.server.errors import ApiError
from sealbox.server.relay import Relay

router = APIRouter()


def relay_of(request: Request) -> Relay:
    relay: Relay = request.app.state.relay
    return relay


@router.get("/healthz", tags=["system"])
async def healthz(request: Request) -> dict[str, str]:
    """Liveness and database reachability."""
    async with relay_of(request).read() as conn:
        await conn.execute(text("SELECT 1"))
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
        "response_types_supported": [],
    }


@router.get("/v1/vault", tags=["vault"])
async def vault_info(request: Request) -> dict[str, Any]:
    """The vault this relay serves: its id, and whether it has its first approver yet."""
    async with relay_of(request).read() as conn:
        row = (await conn.execute(select(vaults).limit(1))).first()
    if row is None:
        raise ApiError(
            503, "no_vault", "this relay has no vault yet", "Start it with `sealbox up`."
        )
    return {"vault": row.id, "ready": row.fingerprint is not None}
