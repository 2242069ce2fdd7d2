"""Clients, their grants, and release policies: managed by approvers only.

A client exists once an approver has certified its key: humans through the
device flow (:mod:`.oauth`), machines and agents by an approver uploading the
certificate here.  A grant lets a client *ask* for items matching a pattern;
a policy says who must agree before an item is released.  Disabling a client
revokes its tokens at once; its signed requests fail from then on because the
signature check reads ``clients.disabled`` on every request.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import jws
from sealbox.crypto.keys import VerifyKey
from sealbox.errors import SealboxError
from sealbox.protocol import ids
from sealbox.protocol.certificates import verify_certificate
from sealbox.server import policy
from sealbox.server.auth import Anyone, Approver, Principal
from sealbox.server.auth import tokens as tk
from sealbox.server.errors import ApiError
from sealbox.server.routes.oauth import CERTIFICATE_MAX, insert_client
from sealbox.server.routes.system import relay_of
from sealbox.server.routes.vault import load_directory
from sealbox.server.store import audit
from sealbox.server.store.tables import clients, grants, policies

router = APIRouter(prefix="/v1/vaults/{vault}", tags=["clients"])


MAX_CACHE_SECONDS = 30 * 86400
MAX_POLICY_APPROVERS = 64


class RegisterBody(BaseModel):
    certificate: str = Field(
        max_length=CERTIFICATE_MAX, description="A machine or agent certificate you signed."
    )


class GrantBody(BaseModel):
    pattern: str = Field(max_length=policy.PATTERN_MAX, description="project/environment/item glob")


class PolicyBody(BaseModel):
    pattern: str = Field(max_length=policy.PATTERN_MAX)
    approvers: list[Annotated[str, Field(max_length=40)]] = Field(
        min_length=1, max_length=MAX_POLICY_APPROVERS
    )
    threshold: int
    expiry_seconds: int = Field(
        default=policy.DEFAULT_EXPIRY_SECONDS,
        ge=policy.MIN_EXPIRY_SECONDS,
        le=policy.MAX_EXPIRY_SECONDS,
    )
    max_cache_seconds: int = Field(
        default=policy.DEFAULT_MAX_CACHE_SECONDS, ge=0, le=MAX_CACHE_SECONDS
    )
    store_needs_approval: bool = True


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def _pattern(value: str) -> str:
    try:
        return policy.check_pattern(value)
    except ValueError as exc:
        raise ApiError(
            400, "invalid_pattern", str(exc),
            "Use project/environment/item, each segment of A-Z a-z 0-9 . _ - and the globs * ?.",
        ) from None  # fmt: skip


def _client_id(value: str) -> str:
    try:
        return ids.check_id(value, ids.CLIENT, what="client id")
    except SealboxError:
        raise ApiError(404, "no_such_client", "this vault has no such client") from None


async def _client_row(conn: AsyncConnection, vault: str, client_id: str) -> Any:
    row = (
        await conn.execute(
            select(clients).where(clients.c.vault_id == vault, clients.c.id == client_id)
        )
    ).first()
    if row is None:
        raise ApiError(404, "no_such_client", "this vault has no such client")
    return row


def _client_json(row: Any) -> dict[str, Any]:
    key = VerifyKey.from_text(row.sig_pk)
    return {
        "id": row.id, "kind": row.kind, "name": row.name, "sig_pk": row.sig_pk,
        "key_fingerprint": key.fingerprint(), "disabled": bool(row.disabled),
        "created_at": row.created_at, "issuer": jws.read_header(row.certificate).kid,
    }  # fmt: skip


# --- clients -----------------------------------------------------------------------------------


@router.get("/clients")
async def list_clients(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """Every client of the vault, enabled or not."""
    async with relay_of(request).read() as conn:
        rows = (
            await conn.execute(
                select(clients).where(clients.c.vault_id == vault).order_by(clients.c.created_at,
                                                                            clients.c.id)
            )
        ).all()  # fmt: skip
    return {"clients": [_client_json(row) for row in rows]}


@router.post("/clients", status_code=201)
async def register_client(
    vault: str, body: RegisterBody, principal: Approver, request: Request
) -> dict[str, Any]:
    """Register a machine or agent by its certificate (signed by you, a current approver)."""
    relay = relay_of(request)
    now = relay.now()
    async with relay.tx() as tx:
        directory = await load_directory(tx.conn, vault)
        cert = verify_certificate(body.certificate, directory, now=now)
        if cert.issuer != principal.id:
            raise ApiError(403, "not_the_issuer", "the certificate is signed by another approver",
                           "Sign the certificate with your own key.")  # fmt: skip
        if cert.client.kind == "human":
            raise ApiError(
                400, "human_client", "people's clients are registered by logging in",
                "Run `sealbox login` and approve its user code.",
            )  # fmt: skip
        await insert_client(tx.conn, vault, cert.client, body.certificate, now)
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="client.registered",
            client_id=cert.client.id, source_ip=_ip(request),
            detail={"kind": cert.client.kind, "key_fingerprint": cert.client.sig_pk.fingerprint(),
                    "scopes": list(cert.scopes), "not_after": cert.constraints.not_after},
        )  # fmt: skip
        row = await _client_row(tx.conn, vault, cert.client.id)
    return _client_json(row)


@router.get("/clients/{client_id}")
async def get_client(
    vault: str, client_id: str, principal: Approver, request: Request
) -> dict[str, Any]:
    """One client, with its certificate (verify it yourself) and its grants."""
    client_id = _client_id(client_id)
    async with relay_of(request).read() as conn:
        row = await _client_row(conn, vault, client_id)
        patterns = await _patterns(conn, vault, client_id)
    return {**_client_json(row), "certificate": row.certificate, "grants": patterns}


async def _set_disabled(
    vault: str, client_id: str, principal: Principal, request: Request, *, disabled: bool
) -> dict[str, Any]:
    relay = relay_of(request)
    client_id = _client_id(client_id)
    now = relay.now()
    async with relay.tx() as tx:
        row = await _client_row(tx.conn, vault, client_id)
        revoked = 0
        if bool(row.disabled) != disabled:
            await tx.conn.execute(
                update(clients)
                .where(clients.c.vault_id == vault, clients.c.id == client_id)
                .values(disabled=disabled)
            )
            detail: dict[str, Any] = {}
            if disabled:
                # Tokens are revoked, not merely refused while disabled: enabling
                # the client again must not bring an old, possibly stolen,
                # session back to life.
                revoked = await tk.revoke_client(tx.conn, vault=vault, client_id=client_id)
                detail["tokens_revoked"] = revoked
            await audit.append(
                tx.conn, vault=vault, at=now, actor=principal.id,
                action="client.disabled" if disabled else "client.enabled",
                severity="notice" if disabled else "info", client_id=client_id,
                source_ip=_ip(request), detail=detail,
            )  # fmt: skip
    return {"id": client_id, "disabled": disabled, "tokens_revoked": revoked}


@router.post("/clients/{client_id}/disable")
async def disable_client(
    vault: str, client_id: str, principal: Approver, request: Request
) -> dict[str, Any]:
    """Stop a client at once: its tokens are revoked and its signatures refused."""
    return await _set_disabled(vault, client_id, principal, request, disabled=True)


@router.post("/clients/{client_id}/enable")
async def enable_client(
    vault: str, client_id: str, principal: Approver, request: Request
) -> dict[str, Any]:
    """Let a disabled client sign requests again (a person logs in again for new tokens)."""
    return await _set_disabled(vault, client_id, principal, request, disabled=False)


# --- grants ------------------------------------------------------------------------------------


async def _patterns(conn: AsyncConnection, vault: str, client_id: str) -> list[str]:
    return list(
        (
            await conn.execute(
                select(grants.c.pattern)
                .where(grants.c.vault_id == vault, grants.c.client_id == client_id)
                .order_by(grants.c.pattern)
            )
        ).scalars()
    )


@router.get("/clients/{client_id}/grants")
async def list_grants(
    vault: str, client_id: str, principal: Approver, request: Request
) -> dict[str, Any]:
    """The item patterns a client may ask for."""
    client_id = _client_id(client_id)
    async with relay_of(request).read() as conn:
        await _client_row(conn, vault, client_id)
        return {"client_id": client_id, "grants": await _patterns(conn, vault, client_id)}


@router.post("/clients/{client_id}/grants")
async def add_grant(
    vault: str, client_id: str, body: GrantBody, principal: Approver, request: Request,
    response: Response,
) -> dict[str, Any]:  # fmt: skip
    """Let a client ask for items matching ``pattern`` (201; 200 if it already could)."""
    relay = relay_of(request)
    client_id = _client_id(client_id)
    pattern = _pattern(body.pattern)
    now = relay.now()
    async with relay.tx() as tx:
        await _client_row(tx.conn, vault, client_id)
        values = {"vault_id": vault, "client_id": client_id, "pattern": pattern, "created_at": now}
        # ON CONFLICT DO NOTHING: two approvers adding one grant at once is not an error.
        stmt = (postgresql.insert if relay.is_postgres else sqlite.insert)(grants).values(**values)
        added = await tx.conn.execute(stmt.on_conflict_do_nothing())
        if added.rowcount:
            await audit.append(
                tx.conn, vault=vault, at=now, actor=principal.id, action="grant.added",
                client_id=client_id, source_ip=_ip(request), detail={"pattern": pattern},
            )  # fmt: skip
    response.status_code = 201 if added.rowcount else 200
    return {"client_id": client_id, "pattern": pattern}


@router.delete("/clients/{client_id}/grants", status_code=204)
async def remove_grant(
    vault: str, client_id: str, principal: Approver, request: Request,
    pattern: Annotated[str, Query(max_length=policy.PATTERN_MAX)],
) -> Response:  # fmt: skip
    """Take a grant away (``?pattern=…``, exactly as it was added)."""
    relay = relay_of(request)
    client_id = _client_id(client_id)
    pattern = _pattern(pattern)
    now = relay.now()
    async with relay.tx() as tx:
        await _client_row(tx.conn, vault, client_id)
        removed = await tx.conn.execute(
            delete(grants).where(grants.c.vault_id == vault, grants.c.client_id == client_id,
                                 grants.c.pattern == pattern)
        )  # fmt: skip
        if not removed.rowcount:
            raise ApiError(404, "no_such_grant", "the client has no grant with this exact pattern")
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="grant.removed",
            client_id=client_id, source_ip=_ip(request), detail={"pattern": pattern},
        )  # fmt: skip
    return Response(status_code=204)


# --- policies ----------------------------------------------------------------------------------


def _policy_json(row: Any) -> dict[str, Any]:
    return {
        "pattern": row.pattern, "approvers": list(row.approvers), "threshold": row.threshold,
        "expiry_seconds": row.expiry_seconds, "max_cache_seconds": row.max_cache_seconds,
        "store_needs_approval": bool(row.store_needs_approval),
    }  # fmt: skip


@router.get("/policies", tags=["policies"])
async def list_policies(vault: str, principal: Approver, request: Request) -> dict[str, Any]:
    """Every policy of the vault (an item without a matching one needs any one approver)."""
    async with relay_of(request).read() as conn:
        rows = (
            await conn.execute(
                select(policies).where(policies.c.vault_id == vault).order_by(policies.c.pattern)
            )
        ).all()
    return {"policies": [_policy_json(row) for row in rows]}


@router.get("/policy", tags=["policies"])
async def effective_policy(
    vault: str, principal: Anyone, request: Request,
    path: Annotated[str, Query(max_length=200)],
) -> dict[str, Any]:  # fmt: skip
    """The policy that holds for item ``path``: who holds shares, how many must agree.

    A client needs it to store (it splits the field keys M-of-N over these
    approvers) and to know how long it may cache; it sees only paths its
    grants cover.  Nothing here is signed: a relay that lied would only make
    the client seal to fewer approvers of the verified directory, which the
    approvers and the relay's own checks then refuse or show.
    """
    path = ids.check_path(path)
    async with relay_of(request).read() as conn:
        directory = await load_directory(conn, vault)
        if principal.role == "client" and not policy.granted(
            path, await _patterns(conn, vault, principal.id)
        ):
            raise ApiError(
                403,
                "no_grant",
                f"this client has no grant for {path}",
                "Ask an approver to grant this client access to the item's path.",
            )
        rows: list[Any] = list(
            (await conn.execute(select(policies).where(policies.c.vault_id == vault))).mappings()
        )
    found = policy.policy_for(path, rows, directory)
    return {
        "path": path, "approvers": list(found.approvers), "threshold": found.threshold,
        "expiry_seconds": found.expiry_seconds, "max_cache_seconds": found.max_cache_seconds,
        "store_needs_approval": found.store_needs_approval,
    }  # fmt: skip


@router.put("/policies", tags=["policies"])
async def put_policy(
    vault: str, body: PolicyBody, principal: Approver, request: Request
) -> dict[str, Any]:
    """Create or replace the policy for ``pattern``."""
    relay = relay_of(request)
    pattern = _pattern(body.pattern)
    approvers = sorted(set(body.approvers))
    if len(approvers) != len(body.approvers):
        raise ApiError(400, "invalid_policy", "an approver is listed twice")
    if not 1 <= body.threshold <= len(approvers):
        raise ApiError(400, "invalid_policy", "threshold must be between 1 and the number of "
                       "approvers")  # fmt: skip
    now = relay.now()
    async with relay.tx() as tx:
        directory = await load_directory(tx.conn, vault)
        strangers = [a for a in approvers if a not in directory.approvers]
        if strangers:
            raise ApiError(
                400, "invalid_policy",
                "not current approvers of this vault: " + ", ".join(strangers[:5]),
                "Name approvers by their apv_ ids, as listed in the directory.",
            )  # fmt: skip
        values = {
            "vault_id": vault, "pattern": pattern, "approvers": approvers,
            "threshold": body.threshold, "expiry_seconds": body.expiry_seconds,
            "max_cache_seconds": body.max_cache_seconds,
            "store_needs_approval": body.store_needs_approval,
        }  # fmt: skip
        # Upsert in one statement: two approvers writing one pattern at once must
        # leave one of their policies, not a primary-key error.
        insert = (postgresql.insert if relay.is_postgres else sqlite.insert)(policies)
        stmt = insert.values(**values).on_conflict_do_update(
            index_elements=[policies.c.vault_id, policies.c.pattern],
            set_={k: v for k, v in values.items() if k not in ("vault_id", "pattern")},
        )
        await tx.conn.execute(stmt)
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="policy.set",
            source_ip=_ip(request),
            detail={k: v for k, v in values.items() if k != "vault_id"},
        )  # fmt: skip
    return {k: v for k, v in values.items() if k != "vault_id"}


@router.delete("/policies", status_code=204, tags=["policies"])
async def delete_policy(
    vault: str, principal: Approver, request: Request,
    pattern: Annotated[str, Query(max_length=policy.PATTERN_MAX)],
) -> Response:  # fmt: skip
    """Remove the policy for ``pattern`` (``?pattern=…``); matching items fall back to others."""
    relay = relay_of(request)
    pattern = _pattern(pattern)
    now = relay.now()
    async with relay.tx() as tx:
        removed = await tx.conn.execute(
            delete(policies).where(policies.c.vault_id == vault, policies.c.pattern == pattern)
        )
        if not removed.rowcount:
            raise ApiError(404, "no_such_policy", "there is no policy with this exact pattern")
        await audit.append(
            tx.conn, vault=vault, at=now, actor=principal.id, action="policy.removed",
            source_ip=_ip(request), detail={"pattern": pattern},
        )  # fmt: skip
    return Response(status_code=204)
