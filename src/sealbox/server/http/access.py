"""Access requests and approvals over HTTP: ask, wait, cancel, take delivery; see and answer.

Parse, call :mod:`sealbox.server.services.access`, answer JSON.  The approvers'
event stream (Server-Sent Events) is framed here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from sealbox.crypto.encoding import b64u_encode
from sealbox.server.http.deps import Approver, Client, relay_of, source_ip
from sealbox.server.notify import CLOSED, approvers_channel
from sealbox.server.services import access, fatigue, policy_axes
from sealbox.server.services.access import MAX_WAIT, Approval, Status
from sealbox.server.store.fatigue import Recent
from sealbox.server.store.requests import RequestRow

router = APIRouter(prefix="/v1/vaults/{vault}", tags=["requests"])

#: Longest signed statement accepted in a body (the JWS layer refuses more than 1 MiB too).
STATEMENT_MAX = 1 << 20
#: How often an idle approvals stream sends a comment, so proxies keep it open.
KEEPALIVE_SECONDS = 15.0


class AccessBody(BaseModel):
    statement: str = Field(max_length=STATEMENT_MAX, description="Access statement you signed.")


class ReleaseBody(BaseModel):
    release: str = Field(max_length=STATEMENT_MAX, description="Release statement you signed.")


class DenyBody(BaseModel):
    deny: str = Field(max_length=STATEMENT_MAX, description="Deny statement you signed.")


class CacheHit(BaseModel):
    request: str = Field(min_length=43, max_length=43, pattern=r"^[A-Za-z0-9_-]{43}$")
    hits: int = Field(ge=1, le=1_000_000)
    first_at: int = Field(ge=0, le=2**53 - 1)
    last_at: int = Field(ge=0, le=2**53 - 1)


class CacheHitsBody(BaseModel):
    hits: list[CacheHit] = Field(min_length=1, max_length=100)


Wait = Annotated[float, Query(ge=0, description=f"Seconds to wait for a change (<= {MAX_WAIT}).")]


def encode_blobs(blobs_by_field: Mapping[str, bytes]) -> dict[str, str]:
    return {name: b64u_encode(data) for name, data in sorted(blobs_by_field.items())}


def status_json(status: Status) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": status.id, "kind": status.kind, "state": status.state,
        "expires_at": status.expires_at, "threshold": status.threshold,
        "approvals": status.approvals,
    }  # fmt: skip
    if status.kind == "store":
        out.update(item=status.item, version=status.version)
    if status.deny is not None:
        out["deny"] = status.deny
    return out


# --- a client asks, waits, cancels, takes delivery -----------------------------------------------


@router.post("/access-requests", status_code=201)
async def create_access(
    vault: str, body: AccessBody, request: Request, principal: Client
) -> dict[str, Any]:
    """Ask for fields of items with a signed access statement; approvers are woken.

    The request id is the statement hash without its ``sha256:`` prefix.  The
    threshold is the largest any item needs (its policy's, or its key set's
    if that is higher: fewer shares could not open it); only approvers that
    every item's policy names and that hold a share of every item can answer.
    """
    relay = relay_of(request)
    created = await access.create_access(
        relay, vault=vault, principal=principal, statement_token=body.statement, now=relay.now(),
        source_ip=source_ip(request),
    )  # fmt: skip
    return {"id": created.id, "state": created.state, "expires_at": created.expires_at,
            "threshold": created.threshold}  # fmt: skip


Deliver = Annotated[
    bool,
    Query(description="Once released, take delivery in this answer (as ``/envelope`` would)."),
]


def envelope_json(envelope: access.Envelope) -> dict[str, Any]:
    return {
        "releases": envelope.releases,
        "manifests": envelope.manifests,
        "ciphertexts": {item: encode_blobs(c) for item, c in envelope.ciphertexts.items()},
    }


@router.get("/access-requests/{request_id}")
async def get_access(
    vault: str, request_id: str, request: Request, principal: Client, wait: Wait = 0,
    deliver: Deliver = False,
) -> dict[str, Any]:  # fmt: skip
    """Your request's state; with ``?wait=N`` held open until it leaves ``pending`` or N s pass.

    With ``?deliver=true`` a released request is delivered in the same answer:
    its state is then ``delivered`` and ``envelope`` holds what
    ``POST …/envelope`` would have returned (once: a lost answer means asking
    again with a new request).  It saves the client a round trip per read.
    """
    relay = relay_of(request)
    status = await access.wait_status(relay, vault=vault, request_id=request_id,
                                      kind="access", principal=principal, wait=wait)  # fmt: skip
    if not (deliver and status.state == "released"):
        return status_json(status)
    envelope = await access.take_envelope(
        relay, vault=vault, request_id=request_id, principal=principal, now=relay.now(),
        source_ip=source_ip(request),
    )  # fmt: skip
    return {**status_json(status), "state": "delivered", "envelope": envelope_json(envelope)}


@router.get("/store-requests/{request_id}")
async def get_store(
    vault: str, request_id: str, request: Request, principal: Client, wait: Wait = 0
) -> dict[str, Any]:
    """Your store request's state (``stored`` once stored); ``?wait=N`` as for access."""
    status = await access.wait_status(relay_of(request), vault=vault, request_id=request_id,
                                      kind="store", principal=principal, wait=wait)  # fmt: skip
    return status_json(status)


@router.post("/access-requests/{request_id}/cancel")
async def cancel_access(
    vault: str, request_id: str, request: Request, principal: Client
) -> dict[str, Any]:
    """Withdraw your pending request; releases given so far are discarded."""
    relay = relay_of(request)
    state = await access.cancel(relay, vault=vault, request_id=request_id, principal=principal,
                                now=relay.now(), source_ip=source_ip(request))  # fmt: skip
    return {"id": request_id, "state": state}


@router.post("/access-requests/{request_id}/envelope")
async def take_envelope(
    vault: str, request_id: str, request: Request, principal: Client
) -> dict[str, Any]:
    """Take the releases, manifests and ciphertexts of your released request: once.

    The relay deletes the releases as it hands them out; a second fetch gets
    410.  If this response is lost on the way, ask again with a new request.
    """
    relay = relay_of(request)
    envelope = await access.take_envelope(
        relay, vault=vault, request_id=request_id, principal=principal, now=relay.now(),
        source_ip=source_ip(request),
    )  # fmt: skip
    return envelope_json(envelope)


@router.post("/cache-hits")
async def report_cache_hits(
    vault: str, body: CacheHitsBody, request: Request, principal: Client
) -> dict[str, Any]:
    """Record that values released by your delivered requests were read from your local cache.

    The local cache agent reports its hits in batches; the relay never sees a
    value, only which release was reused, how often and when.  Each report
    must name a request of yours that was delivered.
    """
    relay = relay_of(request)
    hits = [access.CacheHit(h.request, h.hits, h.first_at, h.last_at) for h in body.hits]
    recorded = await access.record_cache_hits(
        relay, vault=vault, principal=principal, hits=hits, now=relay.now(),
        source_ip=source_ip(request),
    )  # fmt: skip
    return {"recorded": recorded}


# --- approvers see and answer --------------------------------------------------------------------


def recent_json(recent: Recent) -> dict[str, Any]:
    return {"window_seconds": fatigue.RECENT_SECONDS, "requests": recent.requests,
            "denials": recent.denials, "locked": recent.locked,
            "counted_up_to": fatigue.RECENT_MOST}  # fmt: skip


def approval_json(approval: Approval, policies: Mapping[str, Any] | None = None) -> dict[str, Any]:
    row = approval.row
    out: dict[str, Any] = {
        "id": row.id, "kind": row.kind, "state": row.state, "client": row.client_id,
        "statement": row.statement, "certificate": approval.certificate,
        "enrollment": approval.enrollment, "threshold": row.threshold,
        "approvals": approval.approvals, "answered": approval.answered,
        "created_at": row.created_at, "expires_at": row.expires_at,
        # Seen by the relay, not signed by anyone: show it as reported by the server.
        "reported_by_server": {"source_ip": row.source_ip},
    }  # fmt: skip
    if approval.recent is not None:
        # The relay's own count of this requester's prompts (it could lie): unsigned too.
        out["reported_by_server"]["recent"] = recent_json(approval.recent)
    if policies is not None:
        # path -> the policy that applies, with the approver-signed statement if it has one.
        paths = ([e.path for e in row.access.items] if row.kind == "access"
                 else [row.store.path])  # fmt: skip
        out["policies"] = {path: policies[path] for path in paths if path in policies}
    if row.kind == "access":
        out["items"] = {
            item: {"manifest": manifest, "wraps": encode_blobs(approval.wraps.get(item, {}))}
            for item, manifest in approval.manifests.items()
        }
        out["cache_until_max"] = row.access.cache_until_max
        return out
    out["ciphertexts"] = encode_blobs(approval.ciphertexts)
    out["wraps"] = {holder: encode_blobs(w) for holder, w in sorted(approval.wraps.items())}
    out["prev_manifest"] = approval.prev_manifest
    return out


@router.get("/approvals")
async def list_approvals(vault: str, request: Request, principal: Approver) -> dict[str, Any]:
    """Pending requests you can answer, oldest first, with what verifying them needs."""
    relay = relay_of(request)
    found = await access.list_approvals(relay, vault=vault, principal=principal, now=relay.now())
    policies = await policy_axes.applying_to(relay, vault, [a.row for a in found])
    return {"requests": [approval_json(a, policies) for a in found]}


def _summary(row: RequestRow) -> dict[str, Any]:
    paths = [e.path for e in row.access.items] if row.kind == "access" else [row.store.path]
    return {"id": row.id, "kind": row.kind, "state": row.state, "client": row.client_id,
            "paths": paths, "expires_at": row.expires_at}  # fmt: skip


def _event(name: str, data: Mapping[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.get("/approvals/stream")
async def approvals_stream(vault: str, request: Request, principal: Approver) -> StreamingResponse:
    """Server-Sent Events: ``request`` for each new or changed request you can answer.

    On connecting, one event per request already pending; then one per change.
    ``directory`` says the approver set changed (the stream ends if you left
    it); ``device-requests``, ``pairing`` and ``agent-requests`` say a login, a
    new device or an agent waits (fetch ``/device-requests``,
    ``/pairing-requests`` or ``/agent-requests``); ``consent-requests`` that a
    consent request waits or was answered (fetch ``/consent-approvals``).  A comment every
    15 s keeps idle connections open.  Fetch ``/approvals`` for what an
    answer needs.
    """
    relay = relay_of(request)

    async def events() -> AsyncIterator[str]:
        async with relay.hub.subscribe(approvers_channel(vault)) as queue:
            yield ": sealbox approvals\n\n"
            for row in await access.pending_summaries(relay, vault=vault, principal=principal,
                                                      now=relay.now()):  # fmt: skip
                yield _event("request", _summary(row))
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if message is CLOSED:
                    return  # the relay is stopping: end the stream so the server can stop
                if message in ("device-requests", "pairing", "agent-requests", "consent-requests"):
                    # A login or a new device waits (or was answered): list them again.
                    yield _event(message, {})
                    continue
                if message == "directory":
                    async with relay.read() as conn:
                        directory = await relay.directories.load(conn, vault)
                    yield _event("directory", {"head": directory.head.seq})
                    if principal.id not in directory.approvers:
                        return
                    continue
                changed = await access.request_for_stream(
                    relay, vault=vault, request_id=message, principal=principal
                )
                if changed is not None:
                    yield _event("request", _summary(changed))

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


@router.post("/access-requests/{request_id}/release")
async def release_access(
    vault: str, request_id: str, body: ReleaseBody, request: Request, principal: Approver
) -> dict[str, Any]:
    """Answer a pending request with a release you signed; released at the threshold.

    Any-of-N: the first valid release wins and later ones get 409.  M-of-N:
    released when M distinct approvers have released.
    """
    relay = relay_of(request)
    done = await access.release(
        relay, vault=vault, request_id=request_id, principal=principal, token=body.release,
        now=relay.now(), source_ip=source_ip(request),
    )  # fmt: skip
    return {"id": done.id, "state": done.state, "approvals": done.approvals,
            "threshold": done.threshold}  # fmt: skip


@router.post("/access-requests/{request_id}/deny")
async def deny_access(
    vault: str, request_id: str, body: DenyBody, request: Request, principal: Approver
) -> dict[str, Any]:
    """Refuse a pending request with a deny statement you signed (any approver may)."""
    relay = relay_of(request)
    request_id, state = await access.deny_request(
        relay, vault=vault, request_id=request_id, kind="access", principal=principal,
        token=body.deny, now=relay.now(), source_ip=source_ip(request),
    )  # fmt: skip
    return {"id": request_id, "state": state}


# Registered after /approvals/stream, which this path would otherwise swallow.
@router.get("/approvals/{request_id}")
async def get_approval(
    vault: str, request_id: str, request: Request, principal: Approver
) -> dict[str, Any]:
    """One request you can answer, with what verifying it needs (as in ``/approvals``).

    What an approver fetches when the stream names a request: one row, not
    the whole pending list.  Answered, expired or not yours: 404.
    """
    relay = relay_of(request)
    approval = await access.get_approval(relay, vault=vault, request_id=request_id,
                                         principal=principal, now=relay.now())  # fmt: skip
    return approval_json(approval, await policy_axes.applying_to(relay, vault, [approval.row]))
