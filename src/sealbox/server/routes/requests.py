"""Access requests: ask, wait, answer, and take delivery exactly once.

A client posts a signed access statement; the relay checks what only it can
(transport identity, grant, policy, replay, pending cap, source address) and
wakes the approvers the policy names.  The item versions are pinned when the
request is made: approvers see, release and the client receives exactly those
manifests, even if a newer version is stored in between.

Every state change goes through the request-state table
(:mod:`sealbox.protocol.state`) as a compare-and-set on the request row, so
two concurrent releases or two concurrent fetches can never release or deliver
twice.  The release envelopes are deleted as they are delivered: one access
request, one delivery.

The relay's checks of releases and denials are the ones clients and approvers
make again for themselves (docs/protocol.md section 9); they exist to refuse
junk early and to count only answers that can count.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import jws
from sealbox.errors import BindingMismatch, Expired, NotAuthorized, SealboxError
from sealbox.protocol.access import verify_access
from sealbox.protocol.certificates import CLOCK_SKEW
from sealbox.protocol.directory import Directory
from sealbox.protocol.state import Event, State
from sealbox.protocol.statements import ItemManifest, ReleaseStatement, verify_statement
from sealbox.protocol.store import verify_manifest
from sealbox.server import audit
from sealbox.server.auth import Approver, Client, Principal
from sealbox.server.db.tables import answers, clients, item_versions, items, requests
from sealbox.server.errors import ApiError
from sealbox.server.notify import CLOSED
from sealbox.server.policy import granted, policy_for
from sealbox.server.relay import Relay
from sealbox.server.routes.items import (
    STATEMENT_MAX,
    DenyBody,
    approvers_channel,
    check_pending_cap,
    check_source,
    client_row,
    deny_request,
    encode_blobs,
    grant_patterns,
    insert_jti,
    lock_client,
    no_grant,
    not_pending,
    policy_rows,
    project_key,
    read_blobs,
    request_channel,
    request_row,
    require_scope,
    source_ip,
    transition,
)
from sealbox.server.routes.system import relay_of
from sealbox.server.routes.vault import load_directory

router = APIRouter(prefix="/v1/vaults/{vault}", tags=["requests"])


#: Longest a long poll holds a request open (seconds).
MAX_WAIT = 60.0
#: How often an idle approvals stream sends a comment, so proxies keep it open.
KEEPALIVE_SECONDS = 15.0
#: Most pending requests one approvals listing returns (oldest first).
APPROVALS_MAX = 100


class AccessBody(BaseModel):
    statement: str = Field(max_length=STATEMENT_MAX, description="Access statement you signed.")


class ReleaseBody(BaseModel):
    release: str = Field(max_length=STATEMENT_MAX, description="Release statement you signed.")


# --- client: ask ----------------------------------------------------------------------


async def _pinned_manifest(
    conn: AsyncConnection, vault: str, item: str, version: int, directory: Directory
) -> tuple[str, ItemManifest]:
    row = (
        await conn.execute(
            select(item_versions.c.manifest, item_versions.c.manifest_hash).where(
                item_versions.c.vault_id == vault,
                item_versions.c.item_id == item,
                item_versions.c.version == version,
            )
        )
    ).first()
    if row is None:
        raise ApiError(404, "no_such_version", f"{item} has no version {version}")
    try:
        manifest = verify_manifest(row.manifest, directory)
    except SealboxError:
        # Its signer has left the directory: no approver or client would accept it.
        raise ApiError(
            409, "manifest_unverifiable",
            f"version {version} of {item} was signed by an approver no longer in the directory",
            "Ask an approver to store the item again.",
        ) from None  # fmt: skip
    return row.manifest_hash, manifest


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
    now = relay.now()
    ip = source_ip(request)
    async with relay.read() as conn:
        directory = await load_directory(conn, vault)
        holder = await client_row(conn, vault, principal.id)
        patterns = await grant_patterns(conn, vault, principal.id)
        rules = await policy_rows(conn, vault)
    verified = verify_access(body.statement, directory=directory, certificate=holder.certificate,
                             now=now, enrollment=holder.enrollment)  # fmt: skip
    check_source(verified.certificate, ip)
    require_scope(verified.certificate, "read")
    s = verified.statement
    if s.client != principal.id:
        raise NotAuthorized("the access statement names another client than the caller")
    for asked in s.items:
        if not granted(asked.path, patterns):
            raise no_grant(asked.path)

    eligible = set(directory.approvers)
    threshold = 1
    applied = []
    pinned = []
    async with relay.read() as conn:
        for asked in s.items:
            row = (
                await conn.execute(
                    select(items).where(items.c.vault_id == vault, items.c.id == asked.item)
                )
            ).first()
            if row is None:
                raise ApiError(404, "no_such_item", f"no item {asked.item}")
            if row.path != asked.path:
                raise BindingMismatch(f"{asked.item} is stored at another path than was asked for")
            version = asked.version or row.latest_version
            digest, manifest = await _pinned_manifest(conn, vault, asked.item, version, directory)
            missing = set(asked.fields) - set(manifest.fields)
            if missing:
                raise ApiError(
                    400, "no_such_field", f"{asked.path} has no field(s) {sorted(missing)}"
                )
            policy = policy_for(row.path, rules, directory)
            eligible &= set(policy.approvers) & set(manifest.keyset.approvers)
            threshold = max(threshold, policy.threshold, manifest.keyset.threshold)
            applied.append(policy)
            pinned.append(
                {"item": asked.item, "path": row.path, "version": version,
                 "fields": list(asked.fields), "manifest_hash": digest}
            )  # fmt: skip
    # The strictest of the items' policies holds for the whole bundle.
    expiry = min(p.expiry_seconds for p in applied)
    max_cache = min(p.max_cache_seconds for p in applied)
    if s.exp - s.at > expiry:
        raise ApiError(
            400, "expiry_beyond_policy",
            f"the policy lets a request wait at most {expiry} seconds",
            "Sign the statement with a shorter validity.",
        )  # fmt: skip
    if len(eligible) < threshold:
        raise ApiError(
            409, "policy_unsatisfiable",
            f"{threshold} approvals are needed but only {len(eligible)} approvers can give one",
            "Ask an approver to fix the policy or re-store the item for the current approvers.",
        )  # fmt: skip

    request_id = verified.hash.removeprefix("sha256:")
    detail = {
        "items": pinned,
        "approvers": sorted(eligible),
        # The latest cache_until a release may carry under the policy.
        "cache_until_max": s.at + max_cache,
    }
    async with relay.tx() as tx:
        await lock_client(tx.conn, vault, principal.id)
        await insert_jti(tx.conn, vault, s.jti, s.exp)
        await tx.conn.execute(
            requests.insert().values(
                vault_id=vault, id=request_id, kind="access", client_id=principal.id,
                statement=body.statement, detail=detail, state=State.PENDING.value,
                threshold=threshold, source_ip=ip, created_at=now, expires_at=s.exp,
                updated_at=now,
            )
        )  # fmt: skip
        await check_pending_cap(tx.conn, relay, vault, principal.id, now)
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="access.requested",
            client_id=principal.id, item_id=pinned[0]["item"] if len(pinned) == 1 else None,
            source_ip=ip,
            detail={"request": request_id, "threshold": threshold,
                    "items": [{"item": p["item"], "path": p["path"], "version": p["version"],
                               "fields": p["fields"]} for p in pinned]},
        )  # fmt: skip
        tx.wake(approvers_channel(vault), request_id)
    return {
        "id": request_id,
        "state": State.PENDING.value,
        "expires_at": s.exp,
        "threshold": threshold,
    }


# --- client: wait, cancel, take delivery ----------------------------------------------------


async def _owned(
    conn: AsyncConnection, vault: str, request_id: str, kind: str, principal: Principal
) -> Any:
    row = (
        await conn.execute(
            select(requests).where(
                requests.c.vault_id == vault,
                requests.c.id == request_id,
                requests.c.kind == kind,
                requests.c.client_id == principal.id,
            )
        )
    ).first()
    if row is None:
        # Someone else's request is as absent as one that does not exist.
        raise ApiError(404, "no_such_request", f"you have no {kind} request with this id")
    return row


async def _release_count(conn: AsyncConnection, vault: str, request_id: str) -> int:
    return int(
        (
            await conn.execute(
                select(func.count())
                .select_from(answers)
                .where(
                    answers.c.vault_id == vault,
                    answers.c.request_id == request_id,
                    answers.c.kind == "release",
                )
            )
        ).scalar_one()
    )


async def _state_of(conn: AsyncConnection, vault: str, request_id: str) -> str:
    state = (
        await conn.execute(
            select(requests.c.state).where(
                requests.c.vault_id == vault, requests.c.id == request_id
            )
        )
    ).scalar_one_or_none()
    return str(state)


def _status(row: Any, approvals: int) -> dict[str, Any]:
    out = {
        "id": row.id,
        "kind": row.kind,
        "state": row.state,
        "expires_at": row.expires_at,
        "threshold": row.threshold,
        "approvals": approvals,
    }
    if row.kind == "store":
        out.update(item=row.detail["item"], version=row.detail["version"])
    return out


async def _wait(
    relay: Relay, vault: str, request_id: str, kind: str, principal: Principal, wait: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(wait, MAX_WAIT)
    # Subscribed before the first read: a change committed after that read
    # still wakes this waiter, so no wake-up is lost in between.
    # A wake-up only says "look again", so one queued is enough (maxsize=1).
    async with relay.hub.subscribe(request_channel(request_id), maxsize=1) as queue:
        while True:
            async with relay.read() as conn:
                row = await _owned(conn, vault, request_id, kind, principal)
                approvals = await _release_count(conn, vault, request_id)
                denial = None
                if row.state == State.DENIED.value:
                    denial = (
                        await conn.execute(
                            select(answers.c.token).where(
                                answers.c.vault_id == vault,
                                answers.c.request_id == request_id,
                                answers.c.kind == "deny",
                            )
                        )
                    ).scalar()
            left = deadline - loop.time()
            if row.state != State.PENDING.value or left <= 0:
                out = _status(row, approvals)
                if denial is not None:
                    # The approver's signed refusal: the client verifies it and shows its reason.
                    out["deny"] = denial
                return out
            del row  # nothing of the database is held while waiting
            # asyncio.timeout, not wait_for: no extra task per waiter.
            with contextlib.suppress(TimeoutError):  # then read the state once more
                async with asyncio.timeout(left):
                    if await queue.get() is CLOSED:  # the relay is stopping: answer as it is
                        deadline = loop.time()


Wait = Annotated[float, Query(ge=0, description=f"Seconds to wait for a change (<= {MAX_WAIT}).")]


@router.get("/access-requests/{request_id}")
async def get_access(
    vault: str, request_id: str, request: Request, principal: Client, wait: Wait = 0
) -> dict[str, Any]:
    """Your request's state; with ``?wait=N`` held open until it leaves ``pending`` or N s pass."""
    return await _wait(relay_of(request), vault, request_id, "access", principal, wait)


@router.get("/store-requests/{request_id}")
async def get_store(
    vault: str, request_id: str, request: Request, principal: Client, wait: Wait = 0
) -> dict[str, Any]:
    """Your store request's state (``delivered`` once stored); ``?wait=N`` as for access."""
    return await _wait(relay_of(request), vault, request_id, "store", principal, wait)


async def _drop_releases(conn: AsyncConnection, vault: str, request_id: str) -> list[str]:
    """Delete a request's release envelopes; return them (oldest first)."""
    rows = await conn.execute(
        select(answers.c.token)
        .where(
            answers.c.vault_id == vault,
            answers.c.request_id == request_id,
            answers.c.kind == "release",
        )
        .order_by(answers.c.created_at, answers.c.approver_id)
    )
    tokens = list(rows.scalars())
    await conn.execute(
        delete(answers).where(
            answers.c.vault_id == vault,
            answers.c.request_id == request_id,
            answers.c.kind == "release",
        )
    )
    return tokens


@router.post("/access-requests/{request_id}/cancel")
async def cancel_access(
    vault: str, request_id: str, request: Request, principal: Client
) -> dict[str, Any]:
    """Withdraw your pending request; releases given so far are discarded."""
    relay = relay_of(request)
    now = relay.now()
    async with relay.read() as conn:
        await _owned(conn, vault, request_id, "access", principal)
    async with relay.tx() as tx:
        cancelled = await transition(tx.conn, vault, request_id, State.PENDING, Event.CANCELLED,
                                     now, client_id=principal.id)  # fmt: skip
        if cancelled is None:
            raise not_pending(await _state_of(tx.conn, vault, request_id))
        await _drop_releases(tx.conn, vault, request_id)
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="access.cancelled",
            client_id=principal.id, source_ip=source_ip(request), detail={"request": request_id},
        )  # fmt: skip
        tx.wake(request_channel(request_id), cancelled.value)
        tx.wake(approvers_channel(vault), request_id)
    return {"id": request_id, "state": cancelled.value}


@router.post("/access-requests/{request_id}/envelope")
async def take_envelope(
    vault: str, request_id: str, request: Request, principal: Client
) -> dict[str, Any]:
    """Take the releases, manifests and ciphertexts of your released request: once.

    The relay deletes the releases as it hands them out; a second fetch gets
    410.  If this response is lost on the way, ask again with a new request.
    """
    relay = relay_of(request)
    now = relay.now()
    async with relay.read() as conn:
        row = await _owned(conn, vault, request_id, "access", principal)
        patterns = await grant_patterns(conn, vault, principal.id)
    pinned = row.detail["items"]
    # The grant is checked again at delivery: removing it stops a request
    # that was asked (or even released) while it still stood.
    for entry in pinned:
        if not granted(entry["path"], patterns):
            raise no_grant(entry["path"])
    keys = {}
    for entry in pinned:
        project = entry["path"].split("/", 1)[0]
        if project not in keys:
            keys[project] = await project_key(relay, vault, entry["path"])
    async with relay.tx() as tx:
        delivered = await transition(tx.conn, vault, request_id, State.RELEASED, Event.FETCHED,
                                     now, client_id=principal.id)  # fmt: skip
        if delivered is None:
            state = await _state_of(tx.conn, vault, request_id)
            if state == State.DELIVERED.value:
                raise ApiError(410, "already_delivered",
                               "this request's envelope was delivered once and is gone",
                               "Make a new access request.")  # fmt: skip
            raise ApiError(409, "not_released", f"the request is {state}: nothing to deliver")
        releases = await _drop_releases(tx.conn, vault, request_id)
        manifests: dict[str, str] = {}
        ciphertexts: dict[str, dict[str, str]] = {}
        for entry in pinned:
            item, version = entry["item"], entry["version"]
            manifests[item] = (
                await tx.conn.execute(
                    select(item_versions.c.manifest).where(
                        item_versions.c.vault_id == vault,
                        item_versions.c.item_id == item,
                        item_versions.c.version == version,
                    )
                )
            ).scalar_one()
            held = await read_blobs(
                tx.conn, relay, keys[entry["path"].split("/", 1)[0]], vault=vault, item=item,
                version=version, holders=("",), fields=tuple(entry["fields"]),
            )  # fmt: skip
            ciphertexts[item] = encode_blobs(held.get("", {}))
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="access.delivered",
            client_id=principal.id, source_ip=source_ip(request),
            detail={"request": request_id, "releases": len(releases)},
        )  # fmt: skip
        tx.wake(request_channel(request_id), delivered.value)
    return {"releases": releases, "manifests": manifests, "ciphertexts": ciphertexts}


class CacheHit(BaseModel):
    request: str = Field(min_length=43, max_length=43, pattern=r"^[A-Za-z0-9_-]{43}$")
    hits: int = Field(ge=1, le=1_000_000)
    first_at: int = Field(ge=0, le=2**53 - 1)
    last_at: int = Field(ge=0, le=2**53 - 1)


class CacheHitsBody(BaseModel):
    hits: list[CacheHit] = Field(min_length=1, max_length=100)


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
    now = relay.now()
    wanted = sorted({hit.request for hit in body.hits})
    async with relay.read() as conn:
        found = {
            row.id
            for row in await conn.execute(
                select(requests.c.id).where(
                    requests.c.vault_id == vault,
                    requests.c.client_id == principal.id,
                    requests.c.kind == "access",
                    requests.c.state == State.DELIVERED.value,
                    requests.c.id.in_(wanted),
                )
            )
        }
    unknown = [r for r in wanted if r not in found]
    if unknown:
        raise ApiError(
            404,
            "no_such_request",
            "you have no delivered request with this id: " + unknown[0],
            "Report hits only for releases this client received.",
        )
    async with relay.tx() as tx:
        for hit in body.hits:
            await audit.append(
                tx.conn, vault=vault, at=now, actor=principal.id, action="access.cache_hit",
                client_id=principal.id, source_ip=source_ip(request),
                detail={"request": hit.request, "hits": hit.hits, "first_at": hit.first_at,
                        "last_at": hit.last_at},
            )  # fmt: skip
    return {"recorded": len(body.hits)}


# --- approvers: see, answer --------------------------------------------------------------


def _eligible(row: Any, approver: str) -> bool:
    return approver in row.detail.get("approvers", ())


async def _pending_rows(conn: AsyncConnection, vault: str, now: int, approver: str) -> list[Any]:
    rows = await conn.execute(
        select(requests)
        .where(
            requests.c.vault_id == vault,
            requests.c.state == State.PENDING.value,
            requests.c.expires_at >= now,
        )
        .order_by(requests.c.created_at, requests.c.id)
    )
    # Who may answer is in the JSON detail, so filter here; the pending cap per
    # client bounds how many rows this reads.
    return [row for row in rows if _eligible(row, approver)][:APPROVALS_MAX]


async def _approval(
    conn: AsyncConnection, relay: Relay, vault: str, row: Any, approver: str,
    keys: Mapping[str, bytes],
) -> dict[str, Any]:  # fmt: skip
    """Everything an approver needs to verify and answer one request, and nothing of others'.

    Access: the statement, the client's certificate (and enrollment), each pinned
    manifest and this approver's wrapped shares of exactly the requested fields.
    Store: the statement, the ciphertexts and every wrap (``verify_store``
    checks them all against the signed hashes), and the previous manifest.
    """
    holder = (
        await conn.execute(
            select(clients.c.certificate, clients.c.enrollment).where(
                clients.c.vault_id == vault, clients.c.id == row.client_id
            )
        )
    ).first()
    answered = (
        await conn.execute(
            select(answers.c.kind).where(
                answers.c.vault_id == vault,
                answers.c.request_id == row.id,
                answers.c.approver_id == approver,
            )
        )
    ).first() is not None
    out: dict[str, Any] = {
        "id": row.id,
        "kind": row.kind,
        "state": row.state,
        "client": row.client_id,
        "statement": row.statement,
        # Clients are disabled, never deleted; absent, there is nothing to verify with.
        "certificate": holder.certificate if holder else None,
        "enrollment": holder.enrollment if holder else None,
        "threshold": row.threshold,
        "approvals": await _release_count(conn, vault, row.id),
        "answered": answered,
        "created_at": row.created_at,
        "expires_at": row.expires_at,
        # Seen by the relay, not signed by anyone: show it as reported by the server.
        "reported_by_server": {"source_ip": row.source_ip},
    }
    detail = row.detail
    if row.kind == "access":
        materials = {}
        for entry in detail["items"]:
            item, version = entry["item"], entry["version"]
            manifest = (
                await conn.execute(
                    select(item_versions.c.manifest).where(
                        item_versions.c.vault_id == vault,
                        item_versions.c.item_id == item,
                        item_versions.c.version == version,
                    )
                )
            ).scalar_one()
            held = await read_blobs(
                conn, relay, keys[entry["path"].split("/", 1)[0]], vault=vault, item=item,
                version=version, holders=(approver,), fields=tuple(entry["fields"]),
            )  # fmt: skip
            materials[item] = {"manifest": manifest, "wraps": encode_blobs(held.get(approver, {}))}
        out["items"] = materials
        out["cache_until_max"] = detail["cache_until_max"]
        return out
    held = await read_blobs(conn, relay, keys[detail["path"].split("/", 1)[0]], vault=vault,
                            item=detail["item"], version=detail["version"])  # fmt: skip
    out["ciphertexts"] = encode_blobs(held.pop("", {}))
    out["wraps"] = {holder_id: encode_blobs(w) for holder_id, w in sorted(held.items())}
    out["prev_manifest"] = (
        await conn.execute(
            select(item_versions.c.manifest).where(
                item_versions.c.vault_id == vault,
                item_versions.c.item_id == detail["item"],
                item_versions.c.version == detail["version"] - 1,
            )
        )
    ).scalar_one_or_none()
    return out


def _projects(rows: list[Any]) -> dict[str, str]:
    """project -> one item path in it, for every project the rows' items live in."""
    out: dict[str, str] = {}
    for row in rows:
        entries = row.detail["items"] if row.kind == "access" else [row.detail]
        for entry in entries:
            out.setdefault(entry["path"].split("/", 1)[0], entry["path"])
    return out


@router.get("/approvals")
async def list_approvals(vault: str, request: Request, principal: Approver) -> dict[str, Any]:
    """Pending requests you can answer, oldest first, with what verifying them needs."""
    relay = relay_of(request)
    now = relay.now()
    async with relay.read() as conn:
        rows = await _pending_rows(conn, vault, now, principal.id)
    keys = {
        project: await project_key(relay, vault, path) for project, path in _projects(rows).items()
    }
    async with relay.read() as conn:
        found = [await _approval(conn, relay, vault, row, principal.id, keys) for row in rows]
    return {"requests": found}


def _summary(row: Any) -> dict[str, Any]:
    paths = (
        [entry["path"] for entry in row.detail["items"]]
        if row.kind == "access"
        else [row.detail["path"]]
    )
    return {
        "id": row.id,
        "kind": row.kind,
        "state": row.state,
        "client": row.client_id,
        "paths": paths,
        "expires_at": row.expires_at,
    }


def _event(name: str, data: Mapping[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.get("/approvals/stream")
async def approvals_stream(vault: str, request: Request, principal: Approver) -> StreamingResponse:
    """Server-Sent Events: ``request`` for each new or changed request you can answer.

    On connecting, one event per request already pending; then one per change.
    ``directory`` says the approver set changed (the stream ends if you left
    it); ``device-requests`` and ``pairing`` say a login or a new device waits
    (fetch ``/device-requests`` or ``/pairing-requests``).  A comment every
    15 s keeps idle connections open.  Fetch ``/approvals`` for what an
    answer needs.
    """
    relay = relay_of(request)

    async def events() -> AsyncIterator[str]:
        async with relay.hub.subscribe(approvers_channel(vault)) as queue:
            yield ": sealbox approvals\n\n"
            async with relay.read() as conn:
                for row in await _pending_rows(conn, vault, relay.now(), principal.id):
                    yield _event("request", _summary(row))
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if message is CLOSED:
                    return  # the relay is stopping: end the stream so the server can stop
                if message in ("device-requests", "pairing"):
                    # A login or a new device waits (or was answered): list them again.
                    yield _event(message, {})
                    continue
                async with relay.read() as conn:
                    if message == "directory":
                        directory = await load_directory(conn, vault)
                        yield _event("directory", {"head": directory.head.seq})
                        if principal.id not in directory.approvers:
                            return
                        continue
                    row = (
                        await conn.execute(
                            select(requests).where(
                                requests.c.vault_id == vault, requests.c.id == message
                            )
                        )
                    ).first()
                if row is not None and _eligible(row, principal.id):
                    yield _event("request", _summary(row))

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


def _verify_release(
    token: str, directory: Directory, principal: Principal, row: Any
) -> ReleaseStatement:
    """A release this approver signed, for this request and its pinned versions."""
    detail = row.detail
    if jws.read_header(token).kid != principal.id:
        raise NotAuthorized("a release is uploaded by the approver that signed it")
    signer = directory.approver(principal.id)
    release = verify_statement(token, ReleaseStatement, signer.sig_pk, signer.id)
    if release.approver != signer.id or release.vault != directory.vault:
        raise BindingMismatch("release approver or vault does not match its signature")
    if release.request != "sha256:" + row.id:
        raise BindingMismatch("the release answers another request")
    if release.manifests != tuple(sorted({e["manifest_hash"] for e in detail["items"]})):
        raise BindingMismatch("the release vouches for other item versions than were asked for")
    if release.at > row.expires_at + CLOCK_SKEW:
        raise Expired("the release was made after the request expired")
    if principal.id not in detail["approvers"]:
        raise NotAuthorized(f"{principal.id} is not among the approvers this request needs")
    if release.cache_until > detail["cache_until_max"]:
        raise ApiError(
            400, "cache_beyond_policy", "the release lets the client cache longer than the policy",
            "Release with an earlier cache_until.",
        )  # fmt: skip
    return release


@router.post("/access-requests/{request_id}/release")
async def release_access(
    vault: str, request_id: str, body: ReleaseBody, request: Request, principal: Approver
) -> dict[str, Any]:
    """Answer a pending request with a release you signed; released at the threshold.

    Any-of-N: the first valid release wins and later ones get 409.  M-of-N:
    released when M distinct approvers have released.
    """
    relay = relay_of(request)
    now = relay.now()
    async with relay.read() as conn:
        directory = await load_directory(conn, vault)
        row = await request_row(conn, vault, request_id, "access")
    if row.state != State.PENDING.value or now > row.expires_at:
        raise not_pending(row.state if row.state != State.PENDING.value else "past its expiry")
    _verify_release(body.release, directory, principal, row)
    async with relay.tx() as tx:
        # Take the request row first (a row lock on PostgreSQL, the write lock on
        # SQLite): concurrent releases of one request then count each other's.
        locked = await tx.conn.execute(
            update(requests)
            .where(
                requests.c.vault_id == vault,
                requests.c.id == request_id,
                requests.c.state == State.PENDING.value,
                requests.c.expires_at >= now,
            )
            .values(updated_at=now)
        )
        if locked.rowcount != 1:
            raise not_pending(await _state_of(tx.conn, vault, request_id))
        try:
            await tx.conn.execute(
                answers.insert().values(
                    vault_id=vault, request_id=request_id, approver_id=principal.id,
                    kind="release", token=body.release, created_at=now,
                )
            )  # fmt: skip
        except IntegrityError:
            raise ApiError(
                409, "already_answered", "you have already answered this request"
            ) from None
        approvals = await _release_count(tx.conn, vault, request_id)
        state = State.PENDING
        if approvals >= row.threshold:
            released = await transition(tx.conn, vault, request_id, State.PENDING,
                                        Event.THRESHOLD_REACHED, now)  # fmt: skip
            if released is None:  # pragma: no cover - the row is locked above
                raise not_pending(await _state_of(tx.conn, vault, request_id))
            state = released
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="access.release",
            client_id=row.client_id, source_ip=source_ip(request),
            detail={"request": request_id, "approvals": approvals, "threshold": row.threshold,
                    "state": state.value},
        )  # fmt: skip
        tx.wake(request_channel(request_id), state.value)
        tx.wake(approvers_channel(vault), request_id)
    return {"id": request_id, "state": state.value, "approvals": approvals,
            "threshold": row.threshold}  # fmt: skip


@router.post("/access-requests/{request_id}/deny")
async def deny_access(
    vault: str, request_id: str, body: DenyBody, request: Request, principal: Approver
) -> dict[str, Any]:
    """Refuse a pending request with a deny statement you signed (any approver may)."""
    return await deny_request(relay_of(request), request, vault=vault, request_id=request_id,
                              kind="access", token=body.deny, principal=principal)  # fmt: skip


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
    now = relay.now()
    async with relay.read() as conn:
        row = (
            await conn.execute(
                select(requests).where(requests.c.vault_id == vault, requests.c.id == request_id)
            )
        ).first()
    if (
        row is None
        or row.state != State.PENDING.value
        or row.expires_at < now
        or not _eligible(row, principal.id)
    ):
        raise ApiError(404, "no_such_approval", "no pending request with this id awaits you")
    keys = {project: await project_key(relay, vault, path)
            for project, path in _projects([row]).items()}  # fmt: skip
    async with relay.read() as conn:
        return await _approval(conn, relay, vault, row, principal.id, keys)
