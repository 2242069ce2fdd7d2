"""``/v1/vaults/{vault}/whoami``: who the relay takes the caller to be.

``POST`` is accepted too, so a client can check that its signed bodies
(``content-digest``) are accepted before it sends one that matters.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from sealbox.server.http.deps import Anyone

router = APIRouter(prefix="/v1/vaults/{vault}", tags=["auth"])


@router.get("/whoami")
@router.post("/whoami")
async def whoami(principal: Anyone) -> dict[str, Any]:
    return {
        "vault": principal.vault,
        "id": principal.id,
        "role": principal.role,
        "client_kind": principal.client_kind,
        "via": principal.via,
    }
