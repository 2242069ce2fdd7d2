"""Items and their versions: stored only with an approver-signed manifest.

An approver stores a version directly (with a manifest it signed).  A client
asks to store (with a store statement it signed); its blobs wait on the relay
until an approver verifies them and posts the manifest (or denies).  Either
way the relay refuses junk early, with the checks approvers make
(docs/protocol.md section 8), holds the store to the item's policy, and keeps
the version chain linear: version N + 1 names the manifest hash of version N,
and two stores of one version cannot both succeed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import jws
from sealbox.crypto.encoding import b64u_decode
from sealbox.errors import BindingMismatch, Expired, MalformedInput, NotAuthorized
from sealbox.protocol import ids, scopes
from sealbox.protocol.certificates import CLOCK_SKEW, check_context
from sealbox.protocol.directory import Directory
from sealbox.protocol.state import StoreEvent, StoreState
from sealbox.protocol.statements import (
    ClientCertificate,
    ItemManifest,
    StoreStatement,
    verify_statement,
)
from sealbox.protocol.store import MAX_STORE_TTL, check_blobs, manifest_hash, verify_manifest
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Conflict, Forbidden, Invalid, NotFound
from sealbox.server.notify import approvers_channel
from sealbox.server.policy import Policy, policy_for
from sealbox.server.relay import Relay
from sealbox.server.services import fatigue, freeze, members, policy_axes
from sealbox.server.services.access import (
    check_answerable,
    deny_request,
    insert_request,
    refusal,
    waiter_since,
    wake_owner,
)
from sealbox.server.services.caller import (
    certified,
    check_policy_network,
    load_caller,
    project_key,
    require_grant,
    require_scope,
)
from sealbox.server.store import audit
from sealbox.server.store import clients as client_store
from sealbox.server.store import items as item_store
from sealbox.server.store import requests as request_rows
from sealbox.server.store.items import RETRY_HINT, ItemRow, VersionRow
from sealbox.server.store.requests import RequestRow, StoreDetail

__all__ = [
    "Blobs",
    "ItemVersions",
    "StoreCreated",
    "Stored",
    "complete_store",
    "decode_blobs",
    "deny_store",
    "item_versions",
    "list_items",
    "own_wraps",
    "request_store",
    "store_item",
    "version_ciphertexts",
]


@dataclass(frozen=True)
class Blobs:
    """What a store uploads, decoded: field -> ciphertext, approver -> field -> wrapped share."""

    ciphertexts: Mapping[str, bytes]
    wraps: Mapping[str, Mapping[str, bytes]]


def decode_blobs(ciphertexts: Mapping[str, str], wraps: Mapping[str, Mapping[str, str]]) -> Blobs:
    return Blobs(
        {name: b64u_decode(v, what="ciphertext") for name, v in ciphertexts.items()},
        {
            holder: {name: b64u_decode(v, what="wrapped share") for name, v in fields.items()}
            for holder, fields in wraps.items()
        },
    )


@dataclass(frozen=True)
class Stored:
    item: str
    path: str
    version: int
    manifest_hash: str


@dataclass(frozen=True)
class StoreCreated:
    id: str
    state: str
    expires_at: int


@dataclass(frozen=True)
class StoreCompleted:
    id: str
    state: str
    item: str
    version: int
    manifest_hash: str


# --- checks ------------------------------------------------------------------------------------


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


def check_threshold(policy: Policy, threshold: int, path: str) -> None:
    """A split with fewer shares than the policy needs would let fewer people release it."""
    if threshold < policy.threshold:
        raise Invalid(
            "threshold_below_policy",
            f"the policy for {path} needs {policy.threshold} approvers to release",
            "Split the field keys with the policy's threshold.",
        )  # fmt: skip


async def check_follows(
    conn: AsyncConnection, vault: str, *, item: str, path: str, version: int, prev: str | None
) -> None:
    """Refuse early a version that does not follow the stored chain.

    This reads without locks; what makes it hold under concurrency is
    ``store.items.insert_version`` (a compare-and-set on ``latest_version``,
    and the unique item id and path).
    """
    row = await item_store.get(conn, vault, item)
    if version == 1:
        if row is not None:
            raise Conflict("item_exists", "an item with this id already exists", RETRY_HINT)
        if await item_store.get_by_path(conn, vault, path) is not None:
            raise Conflict("path_taken", f"another item is stored at {path}",
                           "Store a new version of that item instead.")  # fmt: skip
        return
    if row is None:
        raise NotFound("no_such_item", "a later version of an item that does not exist")
    if row.path != path:
        raise Conflict("path_mismatch", "an item keeps its path across versions")
    latest = await item_store.version(conn, vault, item, version - 1)
    if row.latest_version != version - 1 or latest is None or latest.manifest_hash != prev:
        raise Conflict(
            "version_conflict",
            f"version {version} does not follow the stored version {row.latest_version}",
            RETRY_HINT,
        )  # fmt: skip


def store_approvers(policy: Policy, statement: StoreStatement) -> tuple[str, ...]:
    """Who is asked to approve a store: the policy's approvers that hold a share.

    Only a key-set member can verify the upload (it opens its own shares), so
    notifying anyone else would ask for an approval they cannot give.
    """
    return tuple(sorted(set(policy.approvers) & set(statement.keyset.approvers)))


# --- an approver stores directly ---------------------------------------------------------------


async def store_item(
    relay: Relay, *, vault: str, principal: Principal, manifest_token: str, blobs: Blobs,
    now: int, source_ip: str | None,
) -> Stored:  # fmt: skip
    """Store an item version whose manifest the calling approver signed itself."""
    async with relay.read() as conn:
        directory = await relay.directories.load(conn, vault)
        rules = await client_store.policy_rows(conn, vault)
    manifest = verify_uploaded_manifest(manifest_token, directory, principal)
    if manifest.store_request is not None:
        raise Invalid(
            "store_request_manifest", "this manifest approves a client's store request",
            "Post it to /store-requests/{id}/manifest.",
        )  # fmt: skip
    check_threshold(policy_for(manifest.path, rules, directory), manifest.keyset.threshold,
                    manifest.path)  # fmt: skip
    check_blobs(manifest.fields, manifest.keyset, blobs.ciphertexts, blobs.wraps)
    async with relay.read() as conn:
        await check_follows(conn, vault, item=manifest.item, path=manifest.path,
                            version=manifest.version, prev=manifest.prev)  # fmt: skip
    dek = await project_key(relay, vault, manifest.path)
    digest = manifest_hash(manifest_token)
    async with relay.tx() as tx:
        # Not onto a destroyed item, nor under a policy past its destroy date.
        await policy_axes.refuse_destroyed_store(
            tx.conn, vault, directory, item=manifest.item, path=manifest.path, now=now, hours=False
        )
        await item_store.insert_version(
            tx.conn, vault, item=manifest.item, path=manifest.path, type=manifest.type,
            version=manifest.version, manifest=manifest_token, manifest_hash=digest, now=now,
        )  # fmt: skip
        await item_store.write_blobs(
            tx.conn, relay.master_key.sealer(dek), vault=vault, item=manifest.item,
            version=manifest.version, ciphertexts=blobs.ciphertexts, wraps=blobs.wraps,
        )  # fmt: skip
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="item.stored",
            item_id=manifest.item, source_ip=source_ip,
            detail={"path": manifest.path, "version": manifest.version,
                    "fields": sorted(manifest.fields), "store_request": None},
        )  # fmt: skip
    return Stored(manifest.item, manifest.path, manifest.version, digest)


# --- a client asks to store ----------------------------------------------------------------------


async def request_store(
    relay: Relay, *, vault: str, principal: Principal, statement_token: str, blobs: Blobs,
    now: int, source_ip: str | None,
) -> StoreCreated:  # fmt: skip
    """Upload a store statement and its blobs; they wait for an approver's manifest.

    Every store needs a manifest, whatever the policy's ``store_needs_approval``
    says: only an approver can sign one, and without it no client could verify
    the version.  The policy decides who is asked (its approvers that hold a
    share) and the least threshold the split must have.
    """
    async with relay.read() as conn:
        caller = await load_caller(relay, conn, vault, principal.id)
    cert = certified(caller, now, source_ip)
    statement = verify_store_statement(statement_token, cert, caller.directory, now)
    # A member stores only where it is a writer, whatever its scopes and grants say.
    members.require_ask(scopes.roles(cert.scopes), (statement.path,), "write")
    require_scope(cert, "write")
    require_grant(statement.path, caller.access)
    policy = policy_for(statement.path, caller.policies, caller.directory)
    check_policy_network(policy, statement.path, source_ip)
    policy_axes.check_request(policy, statement.path, now)
    check_threshold(policy, statement.keyset.threshold, statement.path)
    notify = store_approvers(policy, statement)
    if not notify:
        raise Invalid("no_approver", "no approver named by the policy holds a share",
                      "Seal the shares to the policy's approvers.")  # fmt: skip
    check_blobs(statement.fields, statement.keyset, blobs.ciphertexts, blobs.wraps)
    async with relay.read() as conn:
        await policy_axes.refuse_destroyed(conn, vault, [statement.item])
        await freeze.refuse_frozen(conn, vault, [statement.path])
        await check_follows(conn, vault, item=statement.item, path=statement.path,
                            version=statement.version, prev=statement.prev)  # fmt: skip
    request_id = jws.statement_hash(statement_token).removeprefix("sha256:")
    dek = await project_key(relay, vault, statement.path)
    row = RequestRow(
        vault=vault, id=request_id, kind="store", client_id=principal.id,
        statement=statement_token,
        detail=StoreDetail(statement.item, statement.path, statement.version, statement.prev,
                           tuple(sorted(statement.fields)), notify),
        state=StoreState.PENDING.value, threshold=1, source_ip=source_ip, created_at=now,
        expires_at=statement.exp, updated_at=now, waiter_until=now,
    )  # fmt: skip
    async with (
        fatigue.auditing_refusals(relay, vault=vault, client_id=principal.id, now=now,
                                  kind="store", source_ip=source_ip),
        relay.tx() as tx,
    ):  # fmt: skip
        await insert_request(relay, tx.conn, row, statement.jti, now)
        await item_store.write_blobs(
            tx.conn, relay.master_key.sealer(dek), vault=vault, item=statement.item,
            version=statement.version, ciphertexts=blobs.ciphertexts, wraps=blobs.wraps,
        )  # fmt: skip
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="store.requested",
            client_id=principal.id, item_id=statement.item, source_ip=source_ip,
            detail={"request": request_id, "path": statement.path, "version": statement.version,
                    "fields": sorted(statement.fields)},
        )  # fmt: skip
        tx.wake(approvers_channel(vault), request_id)
    return StoreCreated(request_id, StoreState.PENDING.value, statement.exp)


async def complete_store(
    relay: Relay, *, vault: str, request_id: str, principal: Principal, manifest_token: str,
    now: int, source_ip: str | None,
) -> StoreCompleted:  # fmt: skip
    """Approve a client's store with the manifest the calling approver signed over its statement.

    Only an approver the request asked (the policy's approvers that hold a
    share) may complete it.  The version is stored and the request ``stored``
    in one transaction.
    """
    async with relay.read() as conn:
        directory = await relay.directories.load(conn, vault)
        row = await request_rows.get(conn, vault, request_id, kind="store")
        rules = await client_store.policy_rows(conn, vault)
    if row is None:
        raise NotFound("no_such_request", "no store request with this id")
    check_answerable(relay, row, now)
    manifest = verify_uploaded_manifest(manifest_token, directory, principal)
    detail = row.store
    if principal.id not in manifest.keyset.approvers:
        raise NotAuthorized(f"{principal.id} holds no share of this item")
    if not row.answerable_by(principal.id):
        raise Forbidden(
            "not_a_policy_approver",
            "the item's policy does not name you among the approvers of this store",
            "Ask an approver the policy names.",
        )  # fmt: skip
    names = (manifest.item, manifest.path, manifest.version, manifest.prev)
    if manifest.store_request != "sha256:" + request_id or names != (
        detail.item, detail.path, detail.version, detail.prev,
    ):  # fmt: skip
        raise BindingMismatch("the manifest does not approve this store request")
    # The approver's split is held to the policy as the client's was.
    check_threshold(policy_for(manifest.path, rules, directory), manifest.keyset.threshold,
                    manifest.path)  # fmt: skip
    dek = await project_key(relay, vault, manifest.path)
    async with relay.read() as conn:
        held = await item_store.read_blobs(
            conn, relay.master_key.opener(dek), vault=vault, item=manifest.item,
            version=manifest.version,
        )  # fmt: skip
        await check_follows(conn, vault, item=manifest.item, path=manifest.path,
                            version=manifest.version, prev=manifest.prev)  # fmt: skip
    # The blobs were checked against the client's statement on upload; checking
    # them against the manifest too means a version is never stored with blobs
    # its manifest does not vouch for, whatever an approver signed.
    ciphertexts = held.pop("", {})
    check_blobs(manifest.fields, manifest.keyset, ciphertexts, held)
    digest = manifest_hash(manifest_token)
    async with relay.tx() as tx:
        # The request's policy axes hold at completion too: not past the destroy date (even
        # before the sweeper ran), not onto a destroyed item, not outside the windows.
        await policy_axes.refuse_destroyed_store(
            tx.conn, vault, directory, item=manifest.item, path=manifest.path, now=now, hours=True
        )
        # Only while its client still waits: a store whose command has given up
        # (and told its user it failed) must not become a stored version later.
        stored = await request_rows.transition(
            tx.conn, vault, request_id, "store", StoreState.PENDING, StoreEvent.MANIFEST, now,
            waiter_since=waiter_since(relay, now),
        )  # fmt: skip
        if stored is None:
            raise await refusal(relay, tx.conn, vault, request_id, now)
        await freeze.refuse_frozen(tx.conn, vault, [manifest.path], lock=True)
        await request_rows.add_answer(tx.conn, vault, request_id, principal.id, "manifest",
                                       manifest_token, now)  # fmt: skip
        await fatigue.record_approval(tx.conn, vault=vault, client_id=row.client_id)
        await item_store.insert_version(
            tx.conn, vault, item=manifest.item, path=manifest.path, type=manifest.type,
            version=manifest.version, manifest=manifest_token, manifest_hash=digest, now=now,
        )  # fmt: skip
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="item.stored",
            client_id=row.client_id, item_id=manifest.item, source_ip=source_ip,
            detail={"path": manifest.path, "version": manifest.version,
                    "fields": sorted(manifest.fields), "store_request": request_id},
        )  # fmt: skip
        wake_owner(tx, row, stored)
        tx.wake(approvers_channel(vault), request_id)
    return StoreCompleted(request_id, stored, manifest.item, manifest.version, digest)


async def deny_store(
    relay: Relay, *, vault: str, request_id: str, principal: Principal, token: str, now: int,
    source_ip: str | None,
) -> tuple[str, str]:  # fmt: skip
    """Refuse a client's store request with a deny the approver signed; its blobs are dropped."""
    return await deny_request(relay, vault=vault, request_id=request_id, kind="store",
                              principal=principal, token=token, now=now,
                              source_ip=source_ip)  # fmt: skip


# --- reading items -------------------------------------------------------------------------------


async def list_items(
    relay: Relay, *, vault: str, principal: Principal, path: str | None
) -> list[ItemRow]:
    """Item metadata; with ``path`` the item stored there.  Clients see only granted items."""
    async with relay.read() as conn:
        rows = await item_store.list_items(
            conn, vault, ids.check_path(path) if path is not None else None
        )
        if principal.role == "client":
            access = await client_store.access(conn, vault, principal.id)
            rows = [r for r in rows if access.allows(r.path)]
    return rows


async def _visible_item(
    conn: AsyncConnection, vault: str, item_id: str, principal: Principal
) -> ItemRow:
    row = await item_store.get(conn, vault, item_id)
    if (
        row is not None
        and principal.role == "client"
        and not (await client_store.access(conn, vault, principal.id)).allows(row.path)
    ):
        # As if it did not exist: a grant-less client learns nothing about it.
        row = None
    if row is None:
        raise NotFound("no_such_item", "no item with this id")
    return row


@dataclass(frozen=True)
class ItemVersions:
    item: ItemRow
    versions: list[VersionRow]


async def item_versions(
    relay: Relay, *, vault: str, item_id: str, principal: Principal
) -> ItemVersions:
    """Every stored version of an item with its manifest, oldest first."""
    async with relay.read() as conn:
        row = await _visible_item(conn, vault, item_id, principal)
        return ItemVersions(row, await item_store.versions(conn, vault, item_id))


async def own_wraps(
    relay: Relay, *, vault: str, item_id: str, version: int, principal: Principal
) -> dict[str, bytes]:
    """The calling approver's own wrapped shares of one stored version."""
    async with relay.read() as conn:
        row = await _visible_item(conn, vault, item_id, principal)
        stored = await item_store.version(conn, vault, item_id, version)
    if stored is None:
        raise NotFound("no_such_version", "this item has no such version")
    dek = await project_key(relay, vault, row.path)
    async with relay.read() as conn:
        held = await item_store.read_blobs(
            conn, relay.master_key.opener(dek), vault=vault, item=item_id, version=version,
            holders=(principal.id,),
        )  # fmt: skip
    if principal.id not in held:
        raise NotFound("no_wraps", "you hold no share of this version")
    return held[principal.id]


async def version_ciphertexts(
    relay: Relay, *, vault: str, item_id: str, version: int, principal: Principal
) -> dict[str, bytes]:
    """The field ciphertexts of one stored version (an approver re-sealing an item needs them)."""
    async with relay.read() as conn:
        row = await _visible_item(conn, vault, item_id, principal)
    dek = await project_key(relay, vault, row.path)
    async with relay.read() as conn:
        held = await item_store.read_blobs(
            conn, relay.master_key.opener(dek), vault=vault, item=item_id, version=version,
            holders=("",),
        )  # fmt: skip
    if "" not in held:
        raise NotFound("no_such_version", "this item has no such version")
    return held[""]
