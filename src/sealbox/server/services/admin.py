"""Clients, their grants, and release policies: what approvers manage.

A client exists once an approver has certified its key: humans through the
device flow (:mod:`.login`), machines and agents by an approver uploading the
certificate (:func:`register_client`).  A grant lets a client *ask* for items
matching a pattern; a policy says who must agree before an item is released.
Disabling a client revokes its tokens at once; its signed requests fail from
then on because the signature check reads the client's ``disabled`` flag on
every request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import jws
from sealbox.crypto.keys import VerifyKey
from sealbox.errors import SealboxError
from sealbox.protocol import ids, scopes
from sealbox.protocol.certificates import limits_of, verify_certificate
from sealbox.protocol.directory import Directory
from sealbox.protocol.statements import ClientCertificate, EnrollmentStatement
from sealbox.server import policy
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Conflict, Forbidden, Invalid, NotFound
from sealbox.server.relay import Relay
from sealbox.server.services import policy_axes
from sealbox.server.services.caller import require_grant
from sealbox.server.services.network import check_networks
from sealbox.server.store import agents as agent_store
from sealbox.server.store import audit
from sealbox.server.store import clients as client_store
from sealbox.server.store import members as member_store
from sealbox.server.store import tokens as token_store
from sealbox.server.store.clients import ClientRow

__all__ = [
    "CERTIFICATE_MAX",
    "MAX_CACHE_SECONDS",
    "MAX_POLICY_APPROVERS",
    "MAX_POLICY_NETWORKS",
    "ClientDetail",
    "ClientView",
    "Grant",
    "PolicyView",
    "Switched",
    "add_client",
    "add_grant",
    "delete_policy",
    "effective_policy",
    "get_client",
    "list_clients",
    "list_grants",
    "list_policies",
    "put_policy",
    "register_client",
    "remove_grant",
    "set_disabled",
]

#: Longest client certificate accepted (compact JWS); real ones are a few hundred bytes.
CERTIFICATE_MAX = 16384
MAX_CACHE_SECONDS = 30 * 86400
MAX_POLICY_APPROVERS = 64
#: Most networks on one policy.
MAX_POLICY_NETWORKS = 64


@dataclass(frozen=True)
class ClientView:
    """A client as approvers see it in lists."""

    id: str
    kind: str
    name: str
    sig_pk: str
    key_fingerprint: str
    disabled: bool
    created_at: int
    issuer: str | None
    """The approver that signed its certificate (as the certificate's header says)."""


@dataclass(frozen=True)
class ClientDetail:
    """One client with its certificate (for the approver to verify itself) and its grants."""

    client: ClientView
    certificate: str
    grants: tuple[str, ...]


@dataclass(frozen=True)
class Switched:
    """The outcome of disabling or enabling a client."""

    id: str
    disabled: bool
    tokens_revoked: int


@dataclass(frozen=True)
class Grant:
    client_id: str
    pattern: str
    """As checked (the form it is stored and matched in)."""
    added: bool
    """False if the client already had it: two approvers adding one grant at once is no error."""


@dataclass(frozen=True)
class PolicyView:
    pattern: str
    approvers: tuple[str, ...]
    threshold: int
    expiry_seconds: int
    max_cache_seconds: int
    store_needs_approval: bool
    cidrs: tuple[str, ...] = ()
    """Networks access and store requests for its items must come from (empty: any)."""
    axes: policy_axes.Axes = policy_axes.NO_AXES
    """Time windows, read-rate cap, co-signer, destroy date, rotate-after-N, signed statement."""


# --- clients -----------------------------------------------------------------------------------


def _view(row: ClientRow) -> ClientView:
    key = VerifyKey.from_text(row.sig_pk)
    return ClientView(
        id=row.id, kind=row.kind, name=row.name, sig_pk=row.sig_pk,
        key_fingerprint=key.fingerprint(), disabled=row.disabled, created_at=row.created_at,
        issuer=jws.read_header(row.certificate).kid,
    )  # fmt: skip


def _client_id(value: str) -> str:
    # A malformed id names no client: answered like an unknown one.
    try:
        return ids.check_id(value, ids.CLIENT, what="client id")
    except SealboxError:
        raise _no_such_client() from None


def _no_such_client() -> NotFound:
    return NotFound("no_such_client", "this vault has no such client")


async def _client(conn: AsyncConnection, vault: str, client_id: str) -> ClientRow:
    row = await client_store.get(conn, vault, client_id)
    if row is None:
        raise _no_such_client()
    return row


def _pattern(value: str) -> str:
    try:
        return policy.check_pattern(value)
    except ValueError as exc:
        raise Invalid(
            "invalid_pattern", str(exc),
            "Use project/environment/item, each segment of A-Z a-z 0-9 . _ - and the globs * ?.",
        ) from None  # fmt: skip


def not_the_issuer() -> Forbidden:
    return Forbidden("not_the_issuer", "the certificate is signed by another approver",
                     "Sign the certificate with your own key.")  # fmt: skip


def certified_as_asked(
    certificate: str, directory: Directory, *, now: int, approver: Principal, client_id: str,
    kind: str, sig_pk: str, what: str, hint: str,
) -> ClientCertificate:  # fmt: skip
    """An approver's answer to a waiting login, machine or agent: the certificate verifies, the
    caller signed it, and it certifies exactly the waiting id and key as ``kind``.

    ``what`` and ``hint`` say, in the refusal, what was waiting and what to certify.
    """
    cert = verify_certificate(certificate, directory, now=now)
    if cert.issuer != approver.id:
        raise not_the_issuer()
    if (cert.client.id, cert.client.kind, cert.client.sig_pk.to_text()) != (
        client_id,
        kind,
        sig_pk,
    ):
        raise Invalid("certificate_mismatch", f"the certificate is not for {what}", hint)
    return cert


async def add_client(
    conn: AsyncConnection, vault: str, cert: ClientCertificate, certificate: str, now: int, *,
    enrollment: EnrollmentStatement | None = None, enrollment_token: str | None = None,
) -> None:  # fmt: skip
    """Store a client whose certificate (chain) verified; a taken id is refused (ids are
    never reused).  Its item-path limits are kept beside it for every later decision."""
    info = cert.client
    added = await client_store.insert(
        conn, vault=vault, client_id=info.id, kind=info.kind, name=info.name,
        sig_pk=info.sig_pk.to_text(), certificate=certificate, now=now,
        enrollment=enrollment_token, limits=limits_of(cert, enrollment),
    )  # fmt: skip
    if not added:
        raise Conflict("client_exists", "a client with this id is already registered",
                       "Generate a fresh client id for a new client.")  # fmt: skip
    await member_store.replace(conn, vault, info.id, scopes.roles(cert.scopes))


async def list_clients(relay: Relay, now: int, *, vault: str) -> list[ClientView]:
    """Every client of the vault, enabled or not, oldest first."""
    async with relay.read() as conn:
        rows = await client_store.list_all(conn, vault)
    return [_view(row) for row in rows]


async def register_client(
    relay: Relay, now: int, *, vault: str, certificate: str, approver: Principal,
    source_ip: str | None,
) -> ClientView:  # fmt: skip
    """Register a machine or agent by its certificate, signed by ``approver`` itself."""
    async with relay.tx() as tx:
        directory = await relay.directories.load(tx.conn, vault)
        cert = verify_certificate(certificate, directory, now=now)
        if cert.issuer != approver.id:
            raise not_the_issuer()
        if cert.client.kind == "human":
            raise Invalid(
                "human_client", "people's clients are registered by logging in",
                "Run `sealbox login` and approve its user code.",
            )  # fmt: skip
        await add_client(tx.conn, vault, cert, certificate, now)
        await audit.append(
            tx.conn, vault=vault, at=now, actor=approver.id, action="client.registered",
            client_id=cert.client.id, source_ip=source_ip,
            detail={"kind": cert.client.kind, "key_fingerprint": cert.client.sig_pk.fingerprint(),
                    "scopes": list(cert.scopes), "not_after": cert.constraints.not_after},
        )  # fmt: skip
        row = await _client(tx.conn, vault, cert.client.id)
    return _view(row)


async def get_client(relay: Relay, now: int, *, vault: str, client_id: str) -> ClientDetail:
    client_id = _client_id(client_id)
    async with relay.read() as conn:
        row = await _client(conn, vault, client_id)
        patterns = await client_store.grant_patterns(conn, vault, client_id)
    return ClientDetail(_view(row), row.certificate, tuple(patterns))


async def set_disabled(
    relay: Relay, now: int, *, vault: str, client_id: str, disabled: bool, approver: Principal,
    source_ip: str | None,
) -> Switched:  # fmt: skip
    """Disable or enable a client; a client already so is left as it is, unaudited."""
    client_id = _client_id(client_id)
    async with relay.tx() as tx:
        await _client(tx.conn, vault, client_id)
        if not disabled and await agent_store.is_revoked(tx.conn, vault, client_id):
            raise Conflict("agent_revoked", "this agent was revoked for good",
                           "Create a new agent with `sealbox agent create`.")  # fmt: skip
        revoked = 0
        # Compare-and-set on the flag: of two approvers disabling at once, one
        # changes it and records it.
        if await client_store.set_disabled(tx.conn, vault, client_id, disabled):
            detail: dict[str, Any] = {}
            if disabled:
                # Tokens are revoked, not merely refused while disabled: enabling
                # the client again must not bring an old, possibly stolen,
                # session back to life.
                revoked = await token_store.revoke_client(tx.conn, vault=vault, client_id=client_id)
                detail["tokens_revoked"] = revoked
            await audit.append(
                tx.conn, vault=vault, at=now, actor=approver.id,
                action="client.disabled" if disabled else "client.enabled",
                severity="notice" if disabled else "info", client_id=client_id,
                source_ip=source_ip, detail=detail,
            )  # fmt: skip
    return Switched(client_id, disabled, revoked)


# --- grants ------------------------------------------------------------------------------------


async def list_grants(relay: Relay, now: int, *, vault: str, client_id: str) -> list[str]:
    """The item patterns a client may ask for."""
    client_id = _client_id(client_id)
    async with relay.read() as conn:
        await _client(conn, vault, client_id)
        return await client_store.grant_patterns(conn, vault, client_id)


async def add_grant(
    relay: Relay, now: int, *, vault: str, client_id: str, pattern: str, approver: Principal,
    source_ip: str | None,
) -> Grant:  # fmt: skip
    """Let a client ask for items matching ``pattern``."""
    client_id = _client_id(client_id)
    pattern = _pattern(pattern)
    async with relay.tx() as tx:
        await _client(tx.conn, vault, client_id)
        added = await client_store.add_grant(tx.conn, vault, client_id, pattern, now)
        if added:
            await audit.append(
                tx.conn, vault=vault, at=now, actor=approver.id, action="grant.added",
                client_id=client_id, source_ip=source_ip, detail={"pattern": pattern},
            )  # fmt: skip
    return Grant(client_id, pattern, added)


async def remove_grant(
    relay: Relay, now: int, *, vault: str, client_id: str, pattern: str, approver: Principal,
    source_ip: str | None,
) -> None:  # fmt: skip
    """Take a grant away; ``pattern`` must be exactly as it was added."""
    client_id = _client_id(client_id)
    pattern = _pattern(pattern)
    async with relay.tx() as tx:
        await _client(tx.conn, vault, client_id)
        if not await client_store.remove_grant(tx.conn, vault, client_id, pattern):
            raise NotFound("no_such_grant", "the client has no grant with this exact pattern")
        await audit.append(
            tx.conn, vault=vault, at=now, actor=approver.id, action="grant.removed",
            client_id=client_id, source_ip=source_ip, detail={"pattern": pattern},
        )  # fmt: skip


# --- policies ----------------------------------------------------------------------------------


def _policy_view(row: Any) -> PolicyView:
    return PolicyView(
        pattern=row["pattern"], approvers=tuple(row["approvers"]), threshold=row["threshold"],
        expiry_seconds=row["expiry_seconds"], max_cache_seconds=row["max_cache_seconds"],
        store_needs_approval=bool(row["store_needs_approval"]),
        cidrs=tuple(row.get("cidrs") or ()), axes=policy_axes.Axes.from_row(row),
    )  # fmt: skip


async def list_policies(relay: Relay, now: int, *, vault: str) -> list[PolicyView]:
    """Every policy of the vault, by pattern."""
    async with relay.read() as conn:
        rows = await client_store.policy_rows(conn, vault)
    return [_policy_view(row) for row in rows]


async def effective_policy(
    relay: Relay, now: int, *, vault: str, path: str, caller: Principal
) -> policy.Policy:
    """The policy that holds for item ``path``; a client sees only paths its grants cover."""
    path = ids.check_path(path)
    async with relay.read() as conn:
        directory = await relay.directories.load(conn, vault)
        if caller.role == "client":
            require_grant(path, await client_store.access(conn, vault, caller.id))
        rows = await client_store.policy_rows(conn, vault)
    return policy.policy_for(path, rows, directory)


async def put_policy(
    relay: Relay, now: int, *, vault: str, pattern: str, approvers: Sequence[str],
    threshold: int, expiry_seconds: int, max_cache_seconds: int, store_needs_approval: bool,
    approver: Principal, source_ip: str | None, cidrs: Sequence[str] = (),
    axes: policy_axes.Axes = policy_axes.NO_AXES,
) -> PolicyView:  # fmt: skip
    """Create or replace the policy for ``pattern``; its approvers must be current ones.

    With ``cidrs``, a client's access or store request for a matching item must come
    from one of these networks.
    """
    pattern = _pattern(pattern)
    networks = check_networks(cidrs, limit=MAX_POLICY_NETWORKS)
    members = sorted(set(approvers))
    if len(members) != len(approvers):
        raise Invalid("invalid_policy", "an approver is listed twice")
    if not 1 <= threshold <= len(members):
        raise Invalid("invalid_policy", "threshold must be between 1 and the number of "
                      "approvers")  # fmt: skip
    policy_axes.check_cosigner(axes, members, threshold)
    async with relay.tx() as tx:
        directory = await relay.directories.load(tx.conn, vault)
        strangers = [a for a in members if a not in directory.approvers]
        if strangers:
            raise Invalid(
                "invalid_policy",
                "not current approvers of this vault: " + ", ".join(strangers[:5]),
                "Name approvers by their apv_ ids, as listed in the directory.",
            )  # fmt: skip
        policy_axes.check_statement(
            axes, directory, caller=approver, pattern=pattern, approvers=members,
            threshold=threshold, expiry_seconds=expiry_seconds,
            max_cache_seconds=max_cache_seconds, store_needs_approval=store_needs_approval,
            cidrs=networks, now=now,
        )  # fmt: skip
        # An upsert in one statement: two approvers writing one pattern at once
        # must leave one of their policies, not a primary-key error.
        await client_store.put_policy(
            tx.conn, vault, pattern=pattern, approvers=members, threshold=threshold,
            expiry_seconds=expiry_seconds, max_cache_seconds=max_cache_seconds,
            store_needs_approval=store_needs_approval, cidrs=networks, axes=axes.to_row(),
        )  # fmt: skip
        await audit.append(
            tx.conn, vault=vault, at=now, actor=approver.id, action="policy.set",
            source_ip=source_ip,
            detail={"pattern": pattern, "approvers": members, "threshold": threshold,
                    "expiry_seconds": expiry_seconds, "max_cache_seconds": max_cache_seconds,
                    "store_needs_approval": store_needs_approval,
                    **({"cidrs": list(networks)} if networks else {}), **axes.to_audit()},
        )  # fmt: skip
    return PolicyView(
        pattern, tuple(members), threshold, expiry_seconds, max_cache_seconds,
        store_needs_approval, networks, axes,
    )  # fmt: skip


async def delete_policy(
    relay: Relay, now: int, *, vault: str, pattern: str, approver: Principal,
    source_ip: str | None,
) -> None:  # fmt: skip
    """Remove the policy for ``pattern``; matching items fall back to other policies."""
    pattern = _pattern(pattern)
    async with relay.tx() as tx:
        if not await client_store.delete_policy(tx.conn, vault, pattern):
            raise NotFound("no_such_policy", "there is no policy with this exact pattern")
        await audit.append(
            tx.conn, vault=vault, at=now, actor=approver.id, action="policy.removed",
            source_ip=source_ip, detail={"pattern": pattern},
        )  # fmt: skip
