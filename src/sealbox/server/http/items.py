"""Items and store requests over HTTP: store, ask to store, approve or deny a store, read.

Parse, call :mod:`sealbox.server.services.items`, answer JSON.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Forbidden
from sealbox.server.http.access import STATEMENT_MAX, DenyBody, encode_blobs
from sealbox.server.http.deps import Anyone, Approver, Client, relay_of, source_ip
from sealbox.server.services import access, freeze, items, policy_axes
from sealbox.server.store.items import ItemRow

router = APIRouter(prefix="/v1/vaults/{vault}", tags=["items"])

#: Most fields (or approvers) an upload may name; the body limit bounds the bytes.
MAP_MAX = 255

Blob = Annotated[str, Field(max_length=STATEMENT_MAX)]
BlobMap = Annotated[dict[str, Blob], Field(max_length=MAP_MAX)]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]


class DirectStoreBody(BaseModel):
    manifest: str = Field(max_length=STATEMENT_MAX, description="Item manifest you signed.")
    ciphertexts: BlobMap = Field(description="field -> base64url AES-GCM ciphertext.")
    wraps: Annotated[dict[str, BlobMap], Field(max_length=MAP_MAX)] = Field(
        description="approver id -> field -> base64url HPKE-wrapped share."
    )


class StoreRequestBody(BaseModel):
    statement: str = Field(max_length=STATEMENT_MAX, description="Store statement you signed.")
    ciphertexts: BlobMap
    wraps: Annotated[dict[str, BlobMap], Field(max_length=MAP_MAX)]


class ManifestBody(BaseModel):
    manifest: str = Field(max_length=STATEMENT_MAX)


@router.post("/items", status_code=201)
async def store_item(
    vault: str, body: DirectStoreBody, request: Request, principal: Approver
) -> dict[str, Any]:
    """Store an item version whose manifest you (an approver) signed yourself.

    The manifest's split must meet the item's policy threshold.
    """
    relay = relay_of(request)
    stored = await items.store_item(
        relay, vault=vault, principal=principal, manifest_token=body.manifest,
        blobs=items.decode_blobs(body.ciphertexts, body.wraps), now=relay.now(),
        source_ip=source_ip(request),
    )  # fmt: skip
    return {"item": stored.item, "path": stored.path, "version": stored.version,
            "manifest_hash": stored.manifest_hash}  # fmt: skip


@router.post("/store-requests", status_code=201)
async def request_store(
    vault: str, body: StoreRequestBody, request: Request, principal: Client
) -> dict[str, Any]:
    """Upload a store statement and its blobs; they wait for an approver's manifest.

    Every store needs a manifest, whatever the policy's ``store_needs_approval``
    says: only an approver can sign one, and without it no client could verify
    the version.  The policy decides who is asked (its approvers that hold a
    share) and the least threshold the split must have.
    """
    relay = relay_of(request)
    created = await items.request_store(
        relay, vault=vault, principal=principal, statement_token=body.statement,
        blobs=items.decode_blobs(body.ciphertexts, body.wraps), now=relay.now(),
        source_ip=source_ip(request),
    )  # fmt: skip
    return {"id": created.id, "state": created.state, "expires_at": created.expires_at}


@router.post("/store-requests/{request_id}/manifest")
async def complete_store(
    vault: str, request_id: str, body: ManifestBody, request: Request, principal: Approver
) -> dict[str, Any]:
    """Approve a client's store: post the manifest you signed over its statement.

    Only an approver the item's policy names (and that holds a share) may; the
    version is stored and the request becomes ``stored`` in one transaction.
    """
    relay = relay_of(request)
    done = await items.complete_store(
        relay, vault=vault, request_id=request_id, principal=principal,
        manifest_token=body.manifest, now=relay.now(), source_ip=source_ip(request),
    )  # fmt: skip
    return {"id": done.id, "state": done.state, "item": done.item, "version": done.version,
            "manifest_hash": done.manifest_hash}  # fmt: skip


@router.post("/store-requests/{request_id}/cancel")
async def cancel_store(
    vault: str, request_id: str, request: Request, principal: Client
) -> dict[str, Any]:
    """Withdraw your pending store request; its upload is dropped and it is never stored."""
    relay = relay_of(request)
    state = await access.cancel(relay, vault=vault, request_id=request_id, principal=principal,
                                now=relay.now(), source_ip=source_ip(request),
                                kind="store")  # fmt: skip
    return {"id": request_id, "state": state}


@router.post("/store-requests/{request_id}/deny")
async def deny_store(
    vault: str, request_id: str, body: DenyBody, request: Request, principal: Approver
) -> dict[str, Any]:
    """Refuse a client's store request with a deny statement you signed; its blobs are dropped."""
    relay = relay_of(request)
    request_id, state = await access.deny_request(
        relay, vault=vault, request_id=request_id, kind="store", principal=principal,
        token=body.deny, now=relay.now(), source_ip=source_ip(request),
    )  # fmt: skip
    return {"id": request_id, "state": state}


def _item_json(row: ItemRow, principal: Principal) -> dict[str, Any]:
    # A canary is a "secret" to all but approvers: the listing gives no tripwire away.
    return {"id": row.id, "path": row.path, "type": freeze.shown_type(row.type, principal),
            "latest_version": row.latest_version, "created_at": row.created_at}  # fmt: skip


@router.get("/items")
async def list_items(
    vault: str, request: Request, principal: Anyone, path: str | None = None
) -> dict[str, Any]:
    """Item metadata; with ``?path=`` the item stored at that path (if any).

    Clients see only items their grants cover; approvers see all.  Only approvers are
    told which items are canaries: to anyone else a canary's ``type`` is ``secret``.
    """
    rows = await items.list_items(relay_of(request), vault=vault, principal=principal, path=path)
    if path is not None and not rows:
        # An item destroyed under its policy is refused as such (410), not "no such item".
        await policy_axes.refuse_destroyed_path(relay_of(request), vault, path, principal)
    # An item whose latest version was released more often than its policy's rotate-after-N.
    due = await policy_axes.rotation_due(relay_of(request), vault, rows)
    return {"items": [{**_item_json(r, principal), **due.get(r.id, {})} for r in rows]}


@router.get("/items/{item_id}/versions")
async def item_versions_list(
    vault: str, item_id: str, request: Request, principal: Anyone
) -> dict[str, Any]:
    """Every stored version of an item with its manifest: verify them, oldest first.

    A canary's manifests say what it is: served to anyone but an approver (or the
    client that stored it), they are audited as ``canary.inspected`` (critical).
    """
    relay = relay_of(request)
    found = await items.item_versions(relay, vault=vault, item_id=item_id,
                                      principal=principal)  # fmt: skip
    await freeze.note_inspected(
        relay, vault=vault, principal=principal, item=found.item,
        manifests=[v.manifest for v in found.versions], endpoint=request.url.path,
        now=relay.now(), source_ip=source_ip(request),
    )  # fmt: skip
    history = [
        {"version": v.version, "manifest": v.manifest, "manifest_hash": v.manifest_hash,
         "created_at": v.created_at}
        for v in found.versions
    ]  # fmt: skip
    due = await policy_axes.rotation_due(relay_of(request), vault, [found.item])
    return {"item": found.item.id, "path": found.item.path,
            "type": freeze.shown_type(found.item.type, principal), "versions": history,
            **due.get(found.item.id, {})}  # fmt: skip


@router.get("/items/{item_id}/versions/{version}/wraps/{approver}")
async def own_wraps(
    vault: str, item_id: str, version: Version, approver: str, request: Request,
    principal: Approver,
) -> dict[str, Any]:  # fmt: skip
    """Your own wrapped shares of one stored version (to re-seal, or to check a store)."""
    if approver != principal.id:
        raise Forbidden("not_your_wraps", "an approver may fetch only its own wrapped shares")
    wraps = await items.own_wraps(relay_of(request), vault=vault, item_id=item_id,
                                  version=version, principal=principal)  # fmt: skip
    return {"item": item_id, "version": version, "approver": approver,
            "wraps": encode_blobs(wraps)}  # fmt: skip


@router.get("/items/{item_id}/versions/{version}/ciphertexts")
async def version_ciphertexts(
    vault: str, item_id: str, version: Version, request: Request, principal: Approver
) -> dict[str, Any]:
    """The field ciphertexts of one stored version (an approver re-sealing an item needs them)."""
    ciphertexts = await items.version_ciphertexts(relay_of(request), vault=vault,
                                                  item_id=item_id, version=version,
                                                  principal=principal)  # fmt: skip
    return {"item": item_id, "version": version, "ciphertexts": encode_blobs(ciphertexts)}
