"""Vault setup (directory link 0, with the one-time setup token) and the approver directory.

A directory link is authorised by its own signature: the relay appends it only
if the whole chain, with it, verifies from link 0.  The relay checks this to
refuse junk early; every client and approver checks it again for itself.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from sealbox.server.http.deps import relay_of, source_ip
from sealbox.server.services import directory as service

router = APIRouter(prefix="/v1/vaults/{vault}", tags=["vault"])

TOKEN_MAX = 4096


class SetupBody(BaseModel):
    setup_token: str = Field(max_length=200)
    link: str = Field(max_length=TOKEN_MAX * 4, description="Directory link 0 (compact JWS).")


class LinkBody(BaseModel):
    link: str = Field(max_length=TOKEN_MAX * 4, description="The next directory link.")


@router.post("/setup", status_code=201)
async def setup(vault: str, body: SetupBody, request: Request) -> dict[str, Any]:
    """Store directory link 0, once, with the setup token `sealbox up` printed."""
    relay = relay_of(request)
    done = await service.set_up(
        relay, relay.now(), vault=vault, setup_token=body.setup_token, link0=body.link,
        source_ip=source_ip(request),
    )  # fmt: skip
    return {"vault": done.vault, "fingerprint": done.fingerprint, "safety_code": done.safety_code}


@router.get("/directory")
async def get_directory(vault: str, request: Request) -> dict[str, Any]:
    """Every directory link, in order: verify them from your pinned link 0."""
    directory = await service.directory(relay_of(request), vault=vault)
    return {"links": list(directory.tokens), "head": directory.head.seq}


@router.post("/directory", status_code=201)
async def append_link(vault: str, body: LinkBody, request: Request) -> dict[str, Any]:
    """Append a link signed by a current approver (add, remove or update an approver)."""
    relay = relay_of(request)
    done = await service.append(
        relay, relay.now(), vault=vault, link=body.link, source_ip=source_ip(request)
    )
    return {"seq": done.seq, "hash": done.hash}
