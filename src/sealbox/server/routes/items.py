"""Items and their versions: stored only with an approver-signed manifest.

An approver stores a version directly (``POST /items``, with a manifest it
signed).  A client asks to store (``POST /store-requests``, with a store
statement it signed); its blobs wait on the relay until an approver verifies
them and posts the manifest (or denies).  Either way the relay refuses junk
early, with the checks approvers make (docs/protocol.md section 8), and keeps
the version chain linear: version N + 1 names the manifest hash of version N,
and two stores of one version cannot both succeed.

Blobs (field ciphertexts, holder ``""``; wrapped shares, holder = approver id)
are sealed at rest under the project's data key with their row identity as
aad.  A pending store request's blobs live at the (item, version) slot they
will have once stored, with no ``item_versions`` row yet: nothing serves them
as an item version until a manifest makes them one, and the slot being taken
is what refuses a second store of the same version while one is pending.

This module also holds what the access-request routes share with it: client
and grant lookups, the request-row compare-and-set, wake-up channels.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field
from sqlalchemy import delete, exists, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import jws
from sealbox.crypto.encoding import b64u_decode, b64u_encode
from sealbox.errors import BindingMismatch, Expired, MalformedInput, NotAuthorized
from sealbox.protocol import ids
from sealbox.protocol.access import verify_deny
from sealbox.protocol.certificates import CLOCK_SKEW, check_context, verify_certificate
from sealbox.protocol.directory import Directory
from sealbox.protocol.state import Event, State, next_state
from sealbox.protocol.statements import (
    ClientCertificate,
    ItemManifest,
    StoreStatement,
    verify_statement,
)
from sealbox.protocol.store import MAX_STORE_TTL, check_blobs, manifest_hash, verify_manifest
from sealbox.server.auth import (
    Anyone,
    Approver,
    Client,
    Principal,
)
from sealbox.server.errors import ApiError
from sealbox.server.policy import Policy, granted, policy_for
from sealbox.server.relay import Relay
from sealbox.server.routes.system import relay_of
from sealbox.server.routes.vault import load_directory
from sealbox.server.store import audit
from sealbox.server.store.tables import (
    answers,
    blobs,
    clients,
    grants,
    item_versions,
    items,
    policies,
    replay,
    requests,
)

router = APIRouter(prefix="/v1/vaults/{vault}", tags=["items"])


#: Longest signed statement accepted in a body (the JWS layer refuses more than 1 MiB too).
STATEMENT_MAX = 1 << 20
#: Most fields (or approvers) an upload may name; the body limit bounds the bytes.
MAP_MAX = 255
#: Shown to a client whose store or request waits on a version slot held by another.
RETRY_HINT = "Fetch the item's versions again and retry with the next version."


def approvers_channel(vault: str) -> str:
    """Wake-up channel of a vault's approvers (their SSE streams)."""
    return f"vault:{vault}:approvers"


def request_channel(request_id: str) -> str:
    """Wake-up channel of one request (its owner's long poll)."""
    return f"request:{request_id}"


def request_id_of(token: str) -> str:
    """A request's id: its statement hash without the ``sha256:`` prefix."""
    return jws.statement_hash(token).removeprefix("sha256:")


def source_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


# --- bodies ---------------------------------------------------------------------------

Blob = Annotated[str, Field(max_length=STATEMENT_MAX)]
Blobs = Annotated[dict[str, Blob], Field(max_length=MAP_MAX)]


class DirectStoreBody(BaseModel):
    manifest: str = Field(max_length=STATEMENT_MAX, description="Item manifest you signed.")
    ciphertexts: Blobs = Field(description="field -> base64url AES-GCM ciphertext.")
    wraps: Annotated[dict[str, Blobs], Field(max_length=MAP_MAX)] = Field(
        description="approver id -> field -> base64url HPKE-wrapped share."
    )


class StoreRequestBody(BaseModel):
    statement: str = Field(max_length=STATEMENT_MAX, description="Store statement you signed.")
    ciphertexts: Blobs
    wraps: Annotated[dict[str, Blobs], Field(max_length=MAP_MAX)]


class ManifestBody(BaseModel):
    manifest: str = Field(max_length=STATEMENT_MAX)


class DenyBody(BaseModel):
    deny: str = Field(max_length=STATEMENT_MAX, description="Deny statement you signed.")


# --- shared lookups -------------------------------------------------------------------


async def client_row(conn: AsyncConnection, vault: str, client_id: str) -> Any:
    row = (
        await conn.execute(
            select(clients).where(clients.c.vault_id == vault, clients.c.id == client_id)
        )
    ).first()
    if row is None:
        # Authentication found the client a moment ago: it was deleted in between.
        raise ApiError(403, "client_required", "only a client of this vault may do this")
    return row


async def grant_patterns(conn: AsyncConnection, vault: str, client_id: str) -> list[str]:
    rows = await conn.execute(
        select(grants.c.pattern).where(grants.c.vault_id == vault, grants.c.client_id == client_id)
    )
    return list(rows.scalars())


async def policy_rows(conn: AsyncConnection, vault: str) -> list[Any]:
    """The vault's policy rows, as mappings for :func:`policy_for`."""
    rows = await conn.execute(select(policies).where(policies.c.vault_id == vault))
    return list(rows.mappings())


def no_grant(path: str) -> ApiError:
    return ApiError(
        403, "no_grant", f"this client has no grant for {path}",
        "Ask an approver to grant this client access to the item's path.",
    )  # fmt: skip


def check_source(cert: ClientCertificate, ip: str | None) -> None:
    """Hold the certificate's CIDR constraint to the address the request came from.

    The source address is something only the relay observes, so enforcing the
    certificate's networks is the relay's job (docs/protocol.md section 7).
    """
    if not cert.constraints.cidrs:
        return
    try:
        address = ipaddress.ip_address(ip or "")
        allowed = any(
            address in ipaddress.ip_network(cidr, strict=False) for cidr in cert.constraints.cidrs
        )
    except ValueError:
        allowed = False
    if not allowed:
        raise ApiError(
            403, "source_not_allowed",
            "this client's certificate does not allow requests from this address",
        )  # fmt: skip


def certified(row: Any, directory: Directory, now: int, ip: str | None) -> ClientCertificate:
    """The client's stored certificate, verified now and held to the source address."""
    cert = verify_certificate(row.certificate, directory, now=now, enrollment=row.enrollment)
    check_source(cert, ip)
    return cert


async def lock_client(conn: AsyncConnection, vault: str, client_id: str) -> None:
    """Serialise one client's request creation, so its pending cap holds across replicas.

    On SQLite the first write of a transaction takes the database's one write
    lock, which serialises just as well.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
            {"k": f"pending {vault} {client_id}"},
        )


async def check_pending_cap(
    conn: AsyncConnection, relay: Relay, vault: str, client_id: str, now: int
) -> None:
    """Refuse a client more pending requests than the cap (counting the one just inserted)."""
    count = (
        await conn.execute(
            select(func.count())
            .select_from(requests)
            .where(
                requests.c.vault_id == vault,
                requests.c.client_id == client_id,
                requests.c.state == State.PENDING.value,
                requests.c.expires_at >= now,
            )
        )
    ).scalar_one()
    if count > relay.settings.pending_cap:
        raise ApiError(
            429, "too_many_pending",
            f"this client already has {relay.settings.pending_cap} requests waiting",
            "Wait for an answer, or cancel requests you no longer need.",
        )  # fmt: skip


async def insert_jti(conn: AsyncConnection, vault: str, jti: str, exp: int) -> None:
    """Record a statement's jti until it expires; a second use is a replay (409)."""
    # No savepoint: the caller's transaction is abandoned on any refusal anyway
    # (and pysqlite's legacy transaction handling makes savepoints unsafe).
    try:
        await conn.execute(
            replay.insert().values(vault_id=vault, scope="jti", key=jti, expires_at=exp)
        )
    except IntegrityError:
        raise ApiError(
            409, "replay", "this statement (its jti) was already used",
            "Sign a fresh statement for each request.",
        ) from None  # fmt: skip


async def request_row(conn: AsyncConnection, vault: str, request_id: str, kind: str) -> Any:
    row = (
        await conn.execute(
            select(requests).where(
                requests.c.vault_id == vault, requests.c.id == request_id, requests.c.kind == kind
            )
        )
    ).first()
    if row is None:
        raise ApiError(404, "no_such_request", f"no {kind} request with this id")
    return row


async def transition(
    conn: AsyncConnection,
    vault: str,
    request_id: str,
    current: State,
    event: Event,
    now: int,
    *,
    client_id: str | None = None,
) -> State | None:
    """Compare-and-set a request from ``current`` along ``event``; ``None`` if it was not there.

    The target comes from the one state table (:func:`next_state`).  The
    ``WHERE state = current`` makes the change atomic in the database: of two
    concurrent transitions only one updates the row.  A pending request past
    its expiry takes no event but ``expired``, even before the sweeper has run.
    """
    target = next_state(current, event)
    where = [
        requests.c.vault_id == vault,
        requests.c.id == request_id,
        requests.c.state == current.value,
    ]
    if current is State.PENDING and event is not Event.EXPIRED:
        where.append(requests.c.expires_at >= now)
    if client_id is not None:
        where.append(requests.c.client_id == client_id)
    result = await conn.execute(
        update(requests).where(*where).values(state=target.value, updated_at=now)
    )
    return target if result.rowcount == 1 else None


def not_pending(state: str) -> ApiError:
    return ApiError(
        409, "not_pending", f"the request is no longer waiting for answers (it is {state})"
    )


# --- blobs ----------------------------------------------------------------------------


def require_scope(cert: Any, scope: str) -> None:
    """The certificate's scopes say what a client may ask: ``read`` (access), ``write`` (store)."""
    if scope not in cert.scopes:
        raise ApiError(
            403, "scope_missing", f"this client's certificate does not grant {scope!r}",
            "Ask an approver for a certificate with that scope.",
        )  # fmt: skip


async def project_key(relay: Relay, vault: str, path: str) -> bytes:
    """The data key of the item's project (stored before anything is sealed with it)."""
    return await relay.master_key.dek(relay.engine, vault, path.split("/", 1)[0])


def decode_blobs(
    ciphertexts: Mapping[str, str], wraps: Mapping[str, Mapping[str, str]]
) -> tuple[dict[str, bytes], dict[str, dict[str, bytes]]]:
    return (
        {name: b64u_decode(v, what="ciphertext") for name, v in ciphertexts.items()},
        {
            holder: {name: b64u_decode(v, what="wrapped share") for name, v in fields.items()}
            for holder, fields in wraps.items()
        },
    )


async def write_blobs(
    conn: AsyncConnection,
    relay: Relay,
    dek: bytes,
    *,
    vault: str,
    item: str,
    version: int,
    ciphertexts: Mapping[str, bytes],
    wraps: Mapping[str, Mapping[str, bytes]],
) -> None:
    """Insert a version's blobs; a taken slot raises 409 (another store of this version)."""
    held = [("", name, data) for name, data in ciphertexts.items()] + [
        (holder, name, data) for holder, fields in wraps.items() for name, data in fields.items()
    ]
    rows = [
        {
            "vault_id": vault, "item_id": item, "version": version, "holder": holder,
            "field": name,
            "data": relay.master_key.seal(dek, data, vault, item, version, holder, name),
        }
        for holder, name, data in held
    ]  # fmt: skip
    try:
        await conn.execute(blobs.insert(), rows)
    except IntegrityError:
        raise ApiError(
            409, "version_taken", f"another store of version {version} of this item came first",
            RETRY_HINT,
        ) from None  # fmt: skip


async def read_blobs(
    conn: AsyncConnection,
    relay: Relay,
    dek: bytes,
    *,
    vault: str,
    item: str,
    version: int,
    holders: tuple[str, ...] | None = None,
    fields: tuple[str, ...] | None = None,
) -> dict[str, dict[str, bytes]]:
    """holder -> field -> blob, opened from the at-rest layer (holder ``""``: ciphertexts)."""
    query = select(blobs).where(
        blobs.c.vault_id == vault, blobs.c.item_id == item, blobs.c.version == version
    )
    if holders is not None:
        query = query.where(blobs.c.holder.in_(holders))
    if fields is not None:
        query = query.where(blobs.c.field.in_(fields))
    out: dict[str, dict[str, bytes]] = {}
    for row in await conn.execute(query):
        out.setdefault(row.holder, {})[row.field] = relay.master_key.open(
            dek, row.data, vault, item, version, row.holder, row.field
        )
    return out


def encode_blobs(blobs_by_field: Mapping[str, bytes]) -> dict[str, str]:
    return {name: b64u_encode(data) for name, data in sorted(blobs_by_field.items())}


async def discard_pending_blobs(
    conn: AsyncConnection, vault: str, detail: Mapping[str, Any]
) -> None:
    """Delete a store request's waiting blobs (it was denied or expired).

    The slot is this request's alone (a second upload to it is refused), and
    the guard on ``item_versions`` keeps a stored version's blobs whatever happens.
    """
    item, version = detail["item"], detail["version"]
    stored = exists().where(
        item_versions.c.vault_id == vault,
        item_versions.c.item_id == item,
        item_versions.c.version == version,
    )
    await conn.execute(
        delete(blobs).where(
            blobs.c.vault_id == vault, blobs.c.item_id == item, blobs.c.version == version, ~stored
        )
    )


# --- the version chain ----------------------------------------------------------------


async def check_follows(
    conn: AsyncConnection, vault: str, *, item: str, path: str, version: int, prev: str | None
) -> None:
    """Refuse early a version that does not follow the stored chain.

    This reads without locks; what makes it hold under concurrency is
    :func:`insert_version` (a compare-and-set on ``latest_version``, and the
    unique item id and path).
    """
    row = (
        await conn.execute(select(items).where(items.c.vault_id == vault, items.c.id == item))
    ).first()
    if version == 1:
        if row is not None:
            raise ApiError(409, "item_exists", "an item with this id already exists", RETRY_HINT)
        taken = (
            await conn.execute(
                select(items.c.id).where(items.c.vault_id == vault, items.c.path == path)
            )
        ).first()
        if taken is not None:
            raise ApiError(409, "path_taken", f"another item is stored at {path}",
                           "Store a new version of that item instead.")  # fmt: skip
        return
    if row is None:
        raise ApiError(404, "no_such_item", "a later version of an item that does not exist")
    if row.path != path:
        raise ApiError(409, "path_mismatch", "an item keeps its path across versions")
    latest = (
        await conn.execute(
            select(item_versions.c.manifest_hash).where(
                item_versions.c.vault_id == vault,
                item_versions.c.item_id == item,
                item_versions.c.version == version - 1,
            )
        )
    ).scalar_one_or_none()
    if row.latest_version != version - 1 or latest != prev:
        raise ApiError(
            409, "version_conflict",
            f"version {version} does not follow the stored version {row.latest_version}",
            RETRY_HINT,
        )  # fmt: skip


async def insert_version(
    conn: AsyncConnection, vault: str, manifest: ItemManifest, token: str, now: int
) -> None:
    """Make a manifest's version the item's latest, atomically; 409 if another got there first."""
    conflict = ApiError(
        409, "version_conflict",
        f"another store of {manifest.path} version {manifest.version} came first", RETRY_HINT,
    )  # fmt: skip
    try:
        if manifest.version == 1:
            await conn.execute(
                items.insert().values(
                    vault_id=vault, id=manifest.item, path=manifest.path, type=manifest.type,
                    latest_version=1, created_at=now,
                )
            )  # fmt: skip
        else:
            moved = await conn.execute(
                update(items)
                .where(
                    items.c.vault_id == vault,
                    items.c.id == manifest.item,
                    items.c.path == manifest.path,
                    items.c.latest_version == manifest.version - 1,
                )
                .values(latest_version=manifest.version, type=manifest.type)
            )
            if moved.rowcount != 1:
                raise conflict
        await conn.execute(
            item_versions.insert().values(
                vault_id=vault, item_id=manifest.item, version=manifest.version,
                manifest=token, manifest_hash=manifest_hash(token), created_at=now,
            )
        )  # fmt: skip
    except IntegrityError:
        raise conflict from None


def verify_uploaded_manifest(
    token: str, directory: Directory, principal: Principal
) -> ItemManifest:
    """A manifest uploaded by the approver that signed it, naming only current approvers.

    That a key set names only members is checked when a version is stored
    (docs/protocol.md section 8); later removals do not void it.
    """
    if jws.read_header(token).kid != principal.id:
        raise NotAuthorized("a manifest is uploaded by the approver that signed it")
    manifest = verify_manifest(token, directory)
    for member in manifest.keyset.approvers:
        directory.approver(member)
    return manifest


def verify_store_statement(
    token: str, cert: ClientCertificate, directory: Directory, now: int
) -> StoreStatement:
    """The statement-level checks an approver's ``verify_store`` makes, without its keys.

    The relay cannot open shares, so it stops at what needs no secret:
    signature, binding, context, time window, key-set members.
    """
    if jws.read_header(token).kid != cert.client.id:
        raise NotAuthorized("store statement is not signed by the certified client")
    statement = verify_statement(token, StoreStatement, cert.client.sig_pk, cert.client.id)
    if statement.client != cert.client.id or statement.vault != directory.vault:
        raise BindingMismatch("store statement client or vault does not match its certificate")
    check_context(cert, statement.context)
    if statement.exp < statement.at or statement.exp - statement.at > MAX_STORE_TTL:
        raise MalformedInput("store statement: validity window out of range")
    if statement.at > now + CLOCK_SKEW or now > statement.exp:
        raise Expired("store statement is not valid at this time")
    for member in statement.keyset.approvers:
        directory.approver(member)
    return statement


# --- approver: direct store -------------------------------------------------------------


@router.post("/items", status_code=201)
async def store_item(
    vault: str, body: DirectStoreBody, request: Request, principal: Approver
) -> dict[str, Any]:
    """Store an item version whose manifest you (an approver) signed yourself."""
    relay = relay_of(request)
    now = relay.now()
    async with relay.read() as conn:
        directory = await load_directory(conn, vault)
    manifest = verify_uploaded_manifest(body.manifest, directory, principal)
    if manifest.store_request is not None:
        raise ApiError(
            400, "store_request_manifest", "this manifest approves a client's store request",
            "Post it to /store-requests/{id}/manifest.",
        )  # fmt: skip
    ciphertexts, wraps = decode_blobs(body.ciphertexts, body.wraps)
    check_blobs(manifest.fields, manifest.keyset, ciphertexts, wraps)
    async with relay.read() as conn:
        await check_follows(conn, vault, item=manifest.item, path=manifest.path,
                            version=manifest.version, prev=manifest.prev)  # fmt: skip
    dek = await project_key(relay, vault, manifest.path)
    async with relay.tx() as tx:
        await insert_version(tx.conn, vault, manifest, body.manifest, now)
        await write_blobs(
            tx.conn, relay, dek, vault=vault, item=manifest.item, version=manifest.version,
            ciphertexts=ciphertexts, wraps=wraps,
        )  # fmt: skip
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="item.stored",
            item_id=manifest.item, source_ip=source_ip(request),
            detail={"path": manifest.path, "version": manifest.version,
                    "fields": sorted(manifest.fields), "store_request": None},
        )  # fmt: skip
    return {
        "item": manifest.item,
        "path": manifest.path,
        "version": manifest.version,
        "manifest_hash": manifest_hash(body.manifest),
    }


# --- client: store request --------------------------------------------------------------


def store_approvers(policy: Policy, statement: StoreStatement) -> list[str]:
    """Who is asked to approve a store: the policy's approvers that hold a share.

    Only a key-set member can verify the upload (it opens its own shares), so
    notifying anyone else would ask for an approval they cannot give.
    """
    return sorted(set(policy.approvers) & set(statement.keyset.approvers))


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
    now = relay.now()
    ip = source_ip(request)
    async with relay.read() as conn:
        directory = await load_directory(conn, vault)
        holder = await client_row(conn, vault, principal.id)
        patterns = await grant_patterns(conn, vault, principal.id)
        rules = await policy_rows(conn, vault)
    cert = certified(holder, directory, now, ip)
    require_scope(cert, "write")
    statement = verify_store_statement(body.statement, cert, directory, now)
    if not granted(statement.path, patterns):
        raise no_grant(statement.path)
    policy = policy_for(statement.path, rules, directory)
    if statement.keyset.threshold < policy.threshold:
        raise ApiError(
            400, "threshold_below_policy",
            f"the policy for {statement.path} needs {policy.threshold} approvers to release",
            "Split the field keys with the policy's threshold.",
        )  # fmt: skip
    notify = store_approvers(policy, statement)
    if not notify:
        raise ApiError(400, "no_approver", "no approver named by the policy holds a share",
                       "Seal the shares to the policy's approvers.")  # fmt: skip
    ciphertexts, wraps = decode_blobs(body.ciphertexts, body.wraps)
    check_blobs(statement.fields, statement.keyset, ciphertexts, wraps)
    async with relay.read() as conn:
        await check_follows(conn, vault, item=statement.item, path=statement.path,
                            version=statement.version, prev=statement.prev)  # fmt: skip
    request_id = request_id_of(body.statement)
    dek = await project_key(relay, vault, statement.path)
    detail = {
        "item": statement.item, "path": statement.path, "version": statement.version,
        "prev": statement.prev, "fields": sorted(statement.fields), "approvers": notify,
    }  # fmt: skip
    async with relay.tx() as tx:
        await lock_client(tx.conn, vault, principal.id)
        await insert_jti(tx.conn, vault, statement.jti, statement.exp)
        await tx.conn.execute(
            requests.insert().values(
                vault_id=vault, id=request_id, kind="store", client_id=principal.id,
                statement=body.statement, detail=detail, state=State.PENDING.value,
                threshold=1, source_ip=ip, created_at=now, expires_at=statement.exp,
                updated_at=now,
            )
        )  # fmt: skip
        await check_pending_cap(tx.conn, relay, vault, principal.id, now)
        await write_blobs(
            tx.conn, relay, dek, vault=vault, item=statement.item, version=statement.version,
            ciphertexts=ciphertexts, wraps=wraps,
        )  # fmt: skip
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="store.requested",
            client_id=principal.id, item_id=statement.item, source_ip=ip,
            detail={"request": request_id, "path": statement.path, "version": statement.version,
                    "fields": sorted(statement.fields)},
        )  # fmt: skip
        tx.wake(approvers_channel(vault), request_id)
    return {"id": request_id, "state": State.PENDING.value, "expires_at": statement.exp}


@router.post("/store-requests/{request_id}/manifest")
async def complete_store(
    vault: str, request_id: str, body: ManifestBody, request: Request, principal: Approver
) -> dict[str, Any]:
    """Approve a client's store: post the manifest you signed over its statement.

    States: a store request has one answer that completes it, so the relay
    takes it through the same table as an access request, in one transaction:
    ``pending --threshold_reached--> released --fetched--> delivered``.  The
    version is "delivered" to the item history at that moment; a store
    request never rests in ``released``.
    """
    relay = relay_of(request)
    now = relay.now()
    async with relay.read() as conn:
        directory = await load_directory(conn, vault)
        row = await request_row(conn, vault, request_id, "store")
    if row.state != State.PENDING.value or now > row.expires_at:
        raise not_pending(row.state if row.state != State.PENDING.value else "past its expiry")
    manifest = verify_uploaded_manifest(body.manifest, directory, principal)
    detail = row.detail
    if principal.id not in manifest.keyset.approvers:
        raise NotAuthorized(f"{principal.id} holds no share of this item")
    names = (manifest.item, manifest.path, manifest.version, manifest.prev)
    if manifest.store_request != "sha256:" + request_id or names != (
        detail["item"],
        detail["path"],
        detail["version"],
        detail["prev"],
    ):
        raise BindingMismatch("the manifest does not approve this store request")
    dek = await project_key(relay, vault, manifest.path)
    async with relay.read() as conn:
        held = await read_blobs(conn, relay, dek, vault=vault, item=manifest.item,
                                version=manifest.version)  # fmt: skip
        await check_follows(conn, vault, item=manifest.item, path=manifest.path,
                            version=manifest.version, prev=manifest.prev)  # fmt: skip
    # The blobs were checked against the client's statement on upload; checking
    # them against the manifest too means a version is never stored with blobs
    # its manifest does not vouch for, whatever an approver signed.
    ciphertexts = held.pop("", {})
    check_blobs(manifest.fields, manifest.keyset, ciphertexts, held)
    async with relay.tx() as tx:
        released = await transition(tx.conn, vault, request_id, State.PENDING,
                                    Event.THRESHOLD_REACHED, now)  # fmt: skip
        if released is None:
            raise not_pending("answered or expired")
        done = await transition(tx.conn, vault, request_id, released, Event.FETCHED, now)
        if done is None:  # pragma: no cover - the row is locked by the update above
            raise not_pending(released.value)
        await tx.conn.execute(
            answers.insert().values(
                vault_id=vault, request_id=request_id, approver_id=principal.id, kind="manifest",
                token=body.manifest, created_at=now,
            )
        )  # fmt: skip
        await insert_version(tx.conn, vault, manifest, body.manifest, now)
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="item.stored",
            client_id=row.client_id, item_id=manifest.item, source_ip=source_ip(request),
            detail={"path": manifest.path, "version": manifest.version,
                    "fields": sorted(manifest.fields), "store_request": request_id},
        )  # fmt: skip
        tx.wake(request_channel(request_id), done.value)
        tx.wake(approvers_channel(vault), request_id)
    return {
        "id": request_id,
        "state": done.value,
        "item": manifest.item,
        "version": manifest.version,
        "manifest_hash": manifest_hash(body.manifest),
    }


async def deny_request(
    relay: Relay,
    request: Request,
    *,
    vault: str,
    request_id: str,
    kind: str,
    token: str,
    principal: Principal,
) -> dict[str, Any]:
    """Record an approver's signed refusal of a pending request (access or store)."""
    now = relay.now()
    async with relay.read() as conn:
        directory = await load_directory(conn, vault)
        row = await request_row(conn, vault, request_id, kind)
    if jws.read_header(token).kid != principal.id:
        raise NotAuthorized("a deny is uploaded by the approver that signed it")
    # The reason is the approver's free text for the requester; it stays in the
    # signed statement (kept as the answer) and out of the audit log.
    verify_deny(token, directory=directory, request_hash="sha256:" + request_id)
    async with relay.tx() as tx:
        denied = await transition(tx.conn, vault, request_id, State.PENDING, Event.DENIED, now)
        if denied is None:
            raise not_pending("answered, cancelled or expired")
        # One answer per approver: a deny replaces this approver's earlier release.
        await tx.conn.execute(
            delete(answers).where(
                answers.c.vault_id == vault,
                answers.c.request_id == request_id,
                answers.c.kind == "release",
            )
        )
        await tx.conn.execute(
            answers.insert().values(
                vault_id=vault, request_id=request_id, approver_id=principal.id, kind="deny",
                token=token, created_at=now,
            )
        )  # fmt: skip
        if kind == "store":
            await discard_pending_blobs(tx.conn, vault, row.detail)
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action=f"{kind}.denied",
            severity="notice", client_id=row.client_id, source_ip=source_ip(request),
            detail={"request": request_id},
        )  # fmt: skip
        tx.wake(request_channel(request_id), denied.value)
        tx.wake(approvers_channel(vault), request_id)
    return {"id": request_id, "state": denied.value}


@router.post("/store-requests/{request_id}/deny")
async def deny_store(
    vault: str, request_id: str, body: DenyBody, request: Request, principal: Approver
) -> dict[str, Any]:
    """Refuse a client's store request with a deny statement you signed; its blobs are dropped."""
    return await deny_request(relay_of(request), request, vault=vault, request_id=request_id,
                              kind="store", token=body.deny, principal=principal)  # fmt: skip


# --- reading items ----------------------------------------------------------------------


def _item_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "path": row.path,
        "type": row.type,
        "latest_version": row.latest_version,
        "created_at": row.created_at,
    }


@router.get("/items")
async def list_items(
    vault: str, request: Request, principal: Anyone, path: str | None = None
) -> dict[str, Any]:
    """Item metadata; with ``?path=`` the item stored at that path (if any).

    Clients see only items their grants cover; approvers see all.
    """
    async with relay_of(request).read() as conn:
        query = select(items).where(items.c.vault_id == vault).order_by(items.c.path)
        if path is not None:
            query = query.where(items.c.path == ids.check_path(path))
        rows = list(await conn.execute(query))
        if principal.role == "client":
            patterns = await grant_patterns(conn, vault, principal.id)
            rows = [r for r in rows if granted(r.path, patterns)]
    return {"items": [_item_json(r) for r in rows]}


async def _visible_item(
    conn: AsyncConnection, vault: str, item_id: str, principal: Principal
) -> Any:
    row = (
        await conn.execute(select(items).where(items.c.vault_id == vault, items.c.id == item_id))
    ).first()
    if (
        row is not None
        and principal.role == "client"
        and not granted(row.path, await grant_patterns(conn, vault, principal.id))
    ):
        # As if it did not exist: a grant-less client learns nothing about it.
        row = None
    if row is None:
        raise ApiError(404, "no_such_item", "no item with this id")
    return row


@router.get("/items/{item_id}/versions")
async def item_versions_list(
    vault: str, item_id: str, request: Request, principal: Anyone
) -> dict[str, Any]:
    """Every stored version of an item with its manifest: verify them, oldest first."""
    async with relay_of(request).read() as conn:
        row = await _visible_item(conn, vault, item_id, principal)
        versions = await conn.execute(
            select(item_versions)
            .where(item_versions.c.vault_id == vault, item_versions.c.item_id == item_id)
            .order_by(item_versions.c.version)
        )
        history = [
            {"version": v.version, "manifest": v.manifest, "manifest_hash": v.manifest_hash,
             "created_at": v.created_at}
            for v in versions
        ]  # fmt: skip
    return {"item": row.id, "path": row.path, "type": row.type, "versions": history}


@router.get("/items/{item_id}/versions/{version}/wraps/{approver}")
async def own_wraps(
    vault: str,
    item_id: str,
    version: Annotated[int, Path(ge=1, le=2**31 - 1)],
    approver: str,
    request: Request,
    principal: Approver,
) -> dict[str, Any]:
    """Your own wrapped shares of one stored version (to re-seal, or to check a store)."""
    if approver != principal.id:
        raise ApiError(403, "not_your_wraps", "an approver may fetch only its own wrapped shares")
    relay = relay_of(request)
    async with relay.read() as conn:
        row = await _visible_item(conn, vault, item_id, principal)
        stored = (
            await conn.execute(
                select(item_versions.c.version).where(
                    item_versions.c.vault_id == vault,
                    item_versions.c.item_id == item_id,
                    item_versions.c.version == version,
                )
            )
        ).first()
    if stored is None:
        raise ApiError(404, "no_such_version", "this item has no such version")
    dek = await project_key(relay, vault, row.path)
    async with relay.read() as conn:
        held = await read_blobs(conn, relay, dek, vault=vault, item=item_id, version=version,
                                holders=(approver,))  # fmt: skip
    if approver not in held:
        raise ApiError(404, "no_wraps", "you hold no share of this version")
    return {"item": item_id, "version": version, "approver": approver,
            "wraps": encode_blobs(held[approver])}  # fmt: skip


@router.get("/items/{item_id}/versions/{version}/ciphertexts")
async def version_ciphertexts(
    vault: str,
    item_id: str,
    version: Annotated[int, Path(ge=1, le=2**31 - 1)],
    request: Request,
    principal: Approver,
) -> dict[str, Any]:
    """The field ciphertexts of one stored version (an approver re-sealing an item needs them)."""
    relay = relay_of(request)
    async with relay.read() as conn:
        row = await _visible_item(conn, vault, item_id, principal)
    dek = await project_key(relay, vault, row.path)
    async with relay.read() as conn:
        held = await read_blobs(conn, relay, dek, vault=vault, item=item_id, version=version,
                                holders=("",))  # fmt: skip
    if "" not in held:
        raise ApiError(404, "no_such_version", "this item has no such version")
    return {"item": item_id, "version": version, "ciphertexts": encode_blobs(held[""])}
