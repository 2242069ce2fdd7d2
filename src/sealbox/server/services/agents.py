"""Agents: clients for automation that a logged-in person asks for and an approver certifies.

``sealbox agent create`` makes the agent's key on the person's machine and
registers only its public half here (:func:`request_agent`), authenticated as
the person.  An approver sees the request with the agent's name, who asked,
the scopes asked for and the key's safety code, and approves it by uploading
the certificate it signed for exactly that id and key, as an ``agent``
(:func:`approve`); approvers may narrow the scopes, never widen them.  The
person's CLI polls (:func:`registration`) and verifies the certificate itself.

An agent then gets bearer access tokens with the OAuth ``client_credentials``
grant (:func:`client_credentials`): it authenticates with a JWT signed by its
own key (RFC 7523 §2.2, ``private_key_jwt``), or with a client secret the
person's machine made, of which only a hash is stored here.  There is no
refresh token (RFC 6749 §4.4.3): the agent simply asks again.  Every read is
still an access request its key signs and an approver answers.

Disabling an agent's client (:mod:`.admin`) revokes its tokens at once;
revoking an agent (:func:`revoke`) disables it for good and drops its client
secret.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import jwt
from sealbox.crypto import secrets as sx
from sealbox.crypto.encoding import b64u_decode
from sealbox.crypto.keys import VerifyKey
from sealbox.errors import SealboxError
from sealbox.protocol import ids, scopes
from sealbox.protocol.statements import ClientInfo
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    RelayError,
    TooMany,
    Unauthenticated,
)
from sealbox.server.notify import approvers_channel
from sealbox.server.relay import Relay
from sealbox.server.services.admin import add_client, certified_as_asked
from sealbox.server.services.login import ACCESS_SECONDS, client_not_after
from sealbox.server.store import agents as agent_store
from sealbox.server.store import audit
from sealbox.server.store import clients as client_store
from sealbox.server.store import directory as directory_store
from sealbox.server.store import tokens as token_store
from sealbox.server.store.agents import AgentRow
from sealbox.server.store.clients import ClientRow

__all__ = [
    "ASSERTION_TYPE",
    "MAX_ASSERTION_SECONDS",
    "REQUEST_SECONDS",
    "SECRET_PREFIX",
    "AgentRequest",
    "AgentToken",
    "AgentView",
    "ClientAuth",
    "Registration",
    "approve",
    "client_credentials",
    "deny",
    "list_agents",
    "pending_agents",
    "registration",
    "request_agent",
    "revoke",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: What a client secret starts with, so a leaked one says what it is.
SECRET_PREFIX = "sbx_cs_"  # noqa: S105 - a prefix, not a secret
#: How long an agent request waits for an approver.
REQUEST_SECONDS = 900
#: Agent requests that may wait at once in a vault (a person's session could flood approvers).
PENDING_CAP = 20
#: Longest lifetime a client assertion may claim (its ``exp`` at most this far ahead).
MAX_ASSERTION_SECONDS = 300
#: Clock disagreement tolerated on ``exp``, ``nbf`` and ``iat``.
CLOCK_SKEW = 60
_JTI_MAX = 128
_REPLAY_SCOPE = "assert"


# --- what the operations return ----------------------------------------------------------------


@dataclass(frozen=True)
class AgentRequest:
    """An agent waiting for an approver, with what to compare against the person's terminal."""

    client_id: str
    name: str
    kind: str
    sig_pk: str
    key_fingerprint: str
    key_safety_code: str
    requested_by: str
    requested_by_name: str
    """The name of the person's client, as its certificate gives it."""
    scopes: tuple[str, ...]
    client_secret: bool
    """Whether a client secret was made for it (its hash is kept)."""
    created_at: int
    expires_at: int


@dataclass(frozen=True)
class Registration:
    """What the person's CLI polls: the request's state and, once approved, the certificate."""

    client_id: str
    state: str
    """``pending``, ``approved``, ``denied``, ``expired`` or ``revoked``."""
    certificate: str | None


@dataclass(frozen=True)
class AgentView:
    """An agent as approvers see it in lists."""

    client_id: str
    name: str
    state: str
    """``pending``, ``expired``, ``denied``, ``active``, ``disabled`` or ``revoked``."""
    requested_by: str
    scopes: tuple[str, ...]
    """Asked for; once approved, as its certificate grants them."""
    key_fingerprint: str
    client_secret: bool
    answered_by: str | None
    created_at: int


@dataclass(frozen=True)
class ClientAuth:
    """How a caller of the token endpoint authenticated, as parsed from its request."""

    method: str
    """``private_key_jwt``, ``client_secret_basic`` or ``client_secret_post``."""
    client_id: str | None
    """As the form or the Basic header named it (``private_key_jwt``: optional)."""
    assertion: str | None = None
    secret: str | None = None

    def __repr__(self) -> str:
        return f"ClientAuth(method={self.method!r}, client_id={self.client_id!r})"


@dataclass(frozen=True)
class AgentToken:
    """A fresh access token for an agent: returned once, only its hash is stored."""

    access_token: str
    expires_in: int
    scope: str
    vault: str
    client_id: str

    def __repr__(self) -> str:
        return f"AgentToken(client={self.client_id}, expires_in={self.expires_in})"


# --- a person asks ------------------------------------------------------------------------------


def _requested_scopes(values: list[str]) -> tuple[str, ...]:
    out = set()
    for value in values:
        try:
            scope = scopes.check_scope(value)
        except ValueError as exc:
            raise Invalid(
                "invalid_scope", str(exc), "Ask for read, write and items:PROJECT/ENV/ITEM."
            ) from None
        if scope.startswith(scopes.ROLE):
            raise Invalid(
                "invalid_scope", "an agent cannot hold a member role",
                "Roles are for people; ask for read, write and items: scopes.",
            )  # fmt: skip
        out.add(scope)
    if not out & {scopes.READ, scopes.WRITE}:
        raise Invalid("invalid_scope", "an agent needs read or write (or both)",
                      "Pass --scopes read, --scopes write or --scopes read,write.")  # fmt: skip
    return tuple(sorted(out))


def _person(principal: Principal) -> None:
    if principal.role != "client" or principal.client_kind != "human":
        raise Forbidden(
            "person_required", "only a person's logged-in client may ask for an agent",
            "Run `sealbox agent create` from a profile made by `sealbox login`.",
        )  # fmt: skip


def _pattern_within(pattern: str, allowed: tuple[str, ...]) -> bool:
    """Whether every path ``pattern`` matches is matched by one of ``allowed`` (conservative).

    Segment by segment: an allowed ``*``, the very same segment, or a plain
    (glob-free) segment the allowed one matches.  A glob inside a narrower glob
    is refused even when it would fit: an exact answer is not worth the risk.
    """
    mine = pattern.split("/")
    for other in allowed:
        theirs = other.split("/")
        if all(
            t == "*" or m == t or (not set(m) & set("*?") and fnmatchcase(m, t))
            for m, t in zip(mine, theirs, strict=True)
        ):
            return True
    return False


def _within_the_person(wanted: tuple[str, ...], asker: ClientRow) -> None:
    """An agent never gets more than the person who asks for it: their read and write, and
    their item limits (stage isolation carries over to what they delegate)."""
    held = set(_certificate_scopes(asker.certificate))
    beyond = {s for s in wanted if s in (scopes.READ, scopes.WRITE)} - held
    if beyond:
        raise Forbidden(
            "beyond_the_person", f"you may not give an agent {', '.join(sorted(beyond))}: "
            "your own certificate does not grant it",
            "Ask for the scopes you hold, or have someone who holds them create the agent.",
        )  # fmt: skip
    items = scopes.item_patterns(wanted)
    for bound in asker.limits:
        if not items or not all(_pattern_within(p, bound) for p in items):
            raise Forbidden(
                "outside_scope", "the agent's items must lie within the items you may name: "
                + ", ".join(bound),
                "Pass --items with patterns inside your own (e.g. " + bound[0] + ").",
            )  # fmt: skip


async def request_agent(
    relay: Relay, now: int, *, vault: str, person: Principal, client_id: str, name: str,
    sig_pk: str, requested: list[str], secret_hash: str | None, source_ip: str | None,
) -> AgentRequest:  # fmt: skip
    """Register an agent's public key as pending, on behalf of the person ``person``."""
    _person(person)
    info = ClientInfo.from_json({"id": client_id, "kind": "agent", "name": name, "sig_pk": sig_pk})
    wanted = _requested_scopes(requested)
    if secret_hash is not None and (
        len(secret_hash) != 64 or secret_hash.strip("0123456789abcdef")
    ):
        raise Invalid("invalid_request", "client_secret_hash must be 64 lower-case hex digits")
    async with relay.tx() as tx:
        conn = tx.conn
        asker = await client_store.get(conn, vault, person.id)
        assert asker is not None  # it authenticated a moment ago
        _within_the_person(wanted, asker)
        if await client_store.get(conn, vault, info.id) is not None or await agent_store.taken(
            conn, info.id
        ):
            raise Conflict("client_exists", "a client with this id is already registered",
                           "Generate a fresh client id and key for each agent.")  # fmt: skip
        if await agent_store.count_pending(conn, vault, now) >= PENDING_CAP:
            raise TooMany("too_many_pending", "too many agents are waiting for approval here",
                          "Ask an approver to approve or deny the waiting agents.")  # fmt: skip
        await agent_store.insert(
            conn, vault=vault, client_id=info.id, name=info.name, sig_pk=info.sig_pk.to_text(),
            requested_by=person.id, scopes=wanted, secret_hash=secret_hash, now=now,
            expires_at=now + REQUEST_SECONDS,
        )  # fmt: skip
        await audit.append(
            conn, vault=vault, at=now, actor=person.id, action="agent.requested",
            client_id=info.id, source_ip=source_ip,
            detail={"name": info.name, "scopes": list(wanted),
                    "key_fingerprint": info.sig_pk.fingerprint(),
                    "client_secret": secret_hash is not None},
        )  # fmt: skip
        tx.wake(approvers_channel(vault), "agent-requests")
        row = await agent_store.get(conn, vault, info.id)
        assert row is not None
        return await _request_view(conn, row)


async def _request_view(conn: AsyncConnection, row: AgentRow) -> AgentRequest:
    person = await client_store.get(conn, row.vault, row.requested_by)
    key = VerifyKey.from_text(row.sig_pk)
    return AgentRequest(
        client_id=row.client_id, name=row.name, kind="agent", sig_pk=row.sig_pk,
        key_fingerprint=key.fingerprint(), key_safety_code=key.safety_code(),
        requested_by=row.requested_by,
        requested_by_name=person.name if person is not None else "(unknown)",
        scopes=row.scopes, client_secret=row.secret_hash is not None,
        created_at=row.created_at, expires_at=row.expires_at,
    )  # fmt: skip


def _state(row: AgentRow, now: int) -> str:
    if row.state == "pending" and row.expires_at <= now:
        return "expired"
    return row.state


def _no_such_agent() -> NotFound:
    return NotFound("no_such_agent", "this vault has no such agent",
                    "Check the agent's name or client id with `sealbox agent list`.")  # fmt: skip


def _agent_id(value: str) -> str:
    try:
        return ids.check_id(value, ids.CLIENT, what="agent id")
    except SealboxError:
        raise _no_such_agent() from None


async def registration(
    relay: Relay, now: int, *, vault: str, person: Principal, client_id: str
) -> Registration:
    """The state of an agent request, for the person who made it (and no one else)."""
    client_id = _agent_id(client_id)
    async with relay.read() as conn:
        row = await agent_store.get(conn, vault, client_id)
    if row is None or row.requested_by != person.id:
        raise _no_such_agent()
    return Registration(row.client_id, _state(row, now), row.certificate)


# --- approvers answer ---------------------------------------------------------------------------


async def pending_agents(relay: Relay, now: int, *, vault: str) -> list[AgentRequest]:
    async with relay.read() as conn:
        rows = await agent_store.list_pending(conn, vault, now)
        return [await _request_view(conn, row) for row in rows]


async def _pending(conn: AsyncConnection, vault: str, client_id: str, now: int) -> AgentRow:
    row = await agent_store.get(conn, vault, _agent_id(client_id))
    if row is None:
        raise NotFound("no_such_agent_request", "no agent with this id is waiting")
    if row.state != "pending":
        raise Conflict("agent_request_closed", f"this agent request was already {row.state}")
    if row.expires_at <= now:
        raise Conflict("agent_request_expired", "this agent request has expired",
                       "Ask the person to run `sealbox agent create` again.")  # fmt: skip
    return row


def _answered_meanwhile() -> Conflict:
    return Conflict("agent_request_closed", "this agent request was answered meanwhile")


async def approve(
    relay: Relay, now: int, *, vault: str, client_id: str, certificate: str,
    approver: Principal, source_ip: str | None,
) -> AgentView:  # fmt: skip
    """Approve an agent with the certificate ``approver`` signed for its id and key."""
    async with relay.tx() as tx:
        conn = tx.conn
        directory = await relay.directories.load(conn, vault)
        row = await _pending(conn, vault, client_id, now)
        cert = certified_as_asked(
            certificate, directory, now=now, approver=approver, client_id=row.client_id,
            kind="agent", sig_pk=row.sig_pk,
            what="this agent's client id and key, as an agent",
            hint="Certify exactly the client id and key shown with this agent request.",
        )  # fmt: skip
        widened = set(cert.scopes) - set(row.scopes)
        if widened:
            raise Invalid(
                "scope_widened", "the certificate grants scopes that were not asked for: "
                + ", ".join(sorted(widened)),
                "An approver may narrow what an agent asked for, never widen it.",
            )  # fmt: skip
        await add_client(conn, vault, cert, certificate, now)
        if not await agent_store.set_state(conn, row, "approved", answered_by=approver.id,
                                           certificate=certificate):  # fmt: skip
            raise _answered_meanwhile()
        await audit.append(
            conn, vault=vault, at=now, actor=approver.id, action="agent.approved",
            client_id=row.client_id, source_ip=source_ip,
            detail={"requested_by": row.requested_by, "scopes": list(cert.scopes),
                    "key_fingerprint": cert.client.sig_pk.fingerprint(),
                    "not_after": cert.constraints.not_after},
        )  # fmt: skip
        tx.wake(approvers_channel(vault), "agent-requests")
        fresh = await agent_store.get(conn, vault, row.client_id)
    assert fresh is not None
    return _view(fresh, now)


async def deny(
    relay: Relay, now: int, *, vault: str, client_id: str, approver: Principal,
    source_ip: str | None,
) -> AgentView:  # fmt: skip
    """Refuse an agent; the person's next poll says so, and no client is made."""
    async with relay.tx() as tx:
        conn = tx.conn
        row = await _pending(conn, vault, client_id, now)
        if not await agent_store.set_state(conn, row, "denied", answered_by=approver.id,
                                           drop_secret=True):  # fmt: skip
            raise _answered_meanwhile()
        await audit.append(
            conn, vault=vault, at=now, actor=approver.id, action="agent.denied",
            client_id=row.client_id, source_ip=source_ip,
            detail={"requested_by": row.requested_by},
        )  # fmt: skip
        tx.wake(approvers_channel(vault), "agent-requests")
        fresh = await agent_store.get(conn, vault, row.client_id)
    assert fresh is not None
    return _view(fresh, now)


# --- listing and revoking ----------------------------------------------------------------------


def _view(row: AgentRow, now: int) -> AgentView:
    state = _state(row, now)
    granted = row.scopes
    if row.state == "approved":
        state = "disabled" if row.disabled else "active"
    if row.certificate is not None:
        # What the certificate grants (an approver may have narrowed the request).
        granted = _certificate_scopes(row.certificate) or granted
    return AgentView(
        client_id=row.client_id, name=row.name, state=state, requested_by=row.requested_by,
        scopes=granted, key_fingerprint=VerifyKey.from_text(row.sig_pk).fingerprint(),
        client_secret=row.secret_hash is not None, answered_by=row.answered_by,
        created_at=row.created_at,
    )  # fmt: skip


def _certificate_scopes(certificate: str) -> tuple[str, ...]:
    """The scopes a stored certificate names (it verified when it was stored)."""
    try:
        payload = json.loads(b64u_decode(certificate.split(".")[1]))
        return tuple(str(s) for s in payload.get("scopes", ()))
    except (ValueError, IndexError, SealboxError, AttributeError):
        return ()


async def list_agents(relay: Relay, now: int, *, vault: str) -> list[AgentView]:
    """Every agent of the vault, in any state, oldest first."""
    async with relay.read() as conn:
        rows = await agent_store.list_all(conn, vault)
    return [_view(row, now) for row in rows]


async def revoke(
    relay: Relay, now: int, *, vault: str, client_id: str, approver: Principal,
    source_ip: str | None,
) -> AgentView:  # fmt: skip
    """End an agent for good: its client disabled, its tokens revoked, its secret dropped."""
    client_id = _agent_id(client_id)
    async with relay.tx() as tx:
        conn = tx.conn
        row = await agent_store.get(conn, vault, client_id)
        if row is None:
            raise _no_such_agent()
        if row.state == "revoked":
            return _view(row, now)  # already: nothing to change, nothing to record
        if row.state == "pending" and row.expires_at > now:
            raise Conflict("agent_pending", "this agent is still waiting for an approver",
                           "Deny the request instead (`sealbox approve`).")  # fmt: skip
        tokens = 0
        if row.state == "approved":
            await client_store.set_disabled(conn, vault, client_id, True)
            tokens = await token_store.revoke_client(conn, vault=vault, client_id=client_id)
        if not await agent_store.set_state(conn, row, "revoked", drop_secret=True):
            raise Conflict("agent_changed", "this agent was changed meanwhile", "Try again.")
        await audit.append(
            conn, vault=vault, at=now, actor=approver.id, action="agent.revoked",
            severity="notice", client_id=client_id, source_ip=source_ip,
            detail={"tokens_revoked": tokens, "client_secret_dropped": row.secret_hash is not None},
        )  # fmt: skip
        fresh = await agent_store.get(conn, vault, client_id)
    assert fresh is not None
    return _view(fresh, now)


# --- the token endpoint: client_credentials ------------------------------------------------------


class _Refused(Exception):
    """A token request refused: ``error`` for the caller, ``reason`` for the audit log."""

    def __init__(self, error: RelayError, reason: str) -> None:
        super().__init__(error.message)
        self.error = error
        self.reason = reason


def _invalid_client(message: str, reason: str) -> _Refused:
    return _Refused(
        Unauthenticated(
            "invalid_client", message,
            "Sign a fresh client assertion with the agent's key (aud: this token endpoint, "
            "exp within 5 minutes, a new jti), or send the agent's client secret.",
        ),
        reason,
    )  # fmt: skip


def _claim_time(claims: dict[str, Any], name: str, *, required: bool) -> int | None:
    value = claims.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid_client(f"the client assertion's {name} must be a number", "malformed")
    return int(value)


def _check_assertion(
    claims: dict[str, Any], *, client_id: str, audience: str, now: int
) -> tuple[str, int]:
    """Hold a verified assertion's claims to RFC 7523 §3; return its jti and exp."""
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise _invalid_client("the client assertion's iss and sub must both be the client id",
                              "wrong_subject")  # fmt: skip
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if audience not in audiences:
        raise _invalid_client(f"the client assertion's aud must be {audience}", "wrong_audience")
    exp = _claim_time(claims, "exp", required=True)
    assert exp is not None
    if exp <= now - CLOCK_SKEW:
        raise _invalid_client("the client assertion has expired", "expired")
    if exp > now + MAX_ASSERTION_SECONDS + CLOCK_SKEW:
        raise _invalid_client("the client assertion may live at most 5 minutes (exp)",
                              "too_long")  # fmt: skip
    nbf = _claim_time(claims, "nbf", required=False)
    iat = _claim_time(claims, "iat", required=False)
    if (nbf is not None and nbf > now + CLOCK_SKEW) or (iat is not None and iat > now + CLOCK_SKEW):
        raise _invalid_client("the client assertion is not valid yet", "not_yet_valid")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not 1 <= len(jti) <= _JTI_MAX:
        raise _invalid_client("the client assertion needs a jti of 1 to 128 characters",
                              "malformed")  # fmt: skip
    return jti, exp


def _assertion_client(assertion: str) -> str:
    """The client id an assertion claims to be from (``iss``), before anything is verified."""
    try:
        _, claims = jwt.read_jwt(assertion)
    except SealboxError as exc:
        raise _Refused(Invalid("invalid_request", f"the client assertion: {exc.message}"),
                       "malformed") from None  # fmt: skip
    iss = claims.get("iss")
    if not isinstance(iss, str):
        raise _invalid_client("the client assertion has no iss", "malformed")
    return iss


async def _authenticate(
    relay: Relay, conn: AsyncConnection, auth: ClientAuth, *, audience: str, now: int,
    source_ip: str | None,
) -> tuple[AgentRow, tuple[str, int] | None]:  # fmt: skip
    """The agent ``auth`` proves to be, and the assertion's (jti, exp) still to be spent."""
    if auth.method == "private_key_jwt":
        assert auth.assertion is not None
        client_id = _assertion_client(auth.assertion)
        if auth.client_id is not None and auth.client_id != client_id:
            raise _invalid_client("client_id and the assertion's iss differ", "wrong_subject")
    else:
        assert auth.client_id is not None
        client_id = auth.client_id
    row = await agent_store.find(conn, client_id)
    if row is None:
        raise _invalid_client("unknown client", "unknown_client")
    # The vault's network allowlist holds agents here too, as on every request of theirs,
    # before any signature or secret is checked: from outside it nothing costly is done.
    allowlist = await relay.allowlists.get(conn, row.vault)
    if not allowlist.allows(source_ip):
        raise _Refused(
            Forbidden(
                "network_not_allowed",
                "this vault accepts machines and agents only from its allowed networks, and "
                f"this request came from {source_ip or 'an unknown address'}",
                "Call from an allowed network, or ask an approver to run `sealbox approver "
                "network allow CIDR` for this address.",
            ),
            "network_not_allowed",
        )  # fmt: skip
    if auth.method == "private_key_jwt":
        assert auth.assertion is not None
        try:
            claims = jwt.verify_jwt(auth.assertion, VerifyKey.from_text(row.sig_pk))
        except SealboxError:
            raise _invalid_client("the client assertion's signature does not verify with the "
                                  "agent's key", "bad_signature") from None  # fmt: skip
        return row, _check_assertion(claims, client_id=row.client_id, audience=audience, now=now)
    assert auth.secret is not None
    # The hashes are compared in constant time: how much of a guess matched must not
    # show in the answer's timing.  An agent without a secret is compared against a
    # fixed value, so it answers as fast as one with.
    matched = sx.constant_time_equal(sx.token_hash(auth.secret), row.secret_hash or "0" * 64)
    if not matched or row.secret_hash is None:
        raise _invalid_client("the client secret is wrong", "wrong_secret")
    return row, None


async def client_credentials(
    relay: Relay, now: int, *, auth: ClientAuth, audience: str, scope: str | None,
    source_ip: str | None,
) -> AgentToken:  # fmt: skip
    """RFC 6749 §4.4: an authenticated agent gets an access token (no refresh token).

    Every refusal is audited (throttled per sender and reason, as refused
    signatures are) and changes nothing else.
    """
    try:
        async with relay.read() as conn:
            row, spend = await _authenticate(
                relay, conn, auth, audience=audience, now=now, source_ip=source_ip
            )
        # The same per-caller budget as every authenticated request: a leaked key must not
        # fill the tokens table.  Checked before the assertion is spent, so it can be retried.
        assert relay.limiter is not None
        wait = relay.limiter.allow(f"{row.vault} {row.client_id}")
        if wait:
            raise _Refused(
                TooMany("rate_limited", "too many token requests from this agent",
                        f"Retry after {wait:.1f} s.", retry_after=wait),
                "rate_limited",
            )  # fmt: skip
        if spend is not None:
            jti, exp = spend
            # The relay's replay guard, as for request nonces: persisted, so a copied
            # assertion is refused after a restart and on every replica.  Spent before
            # the token is issued (in its own transaction: SQLite has one writer).
            fresh = await relay.replay_guard.first_use(
                row.vault, _REPLAY_SCOPE, f"{row.client_id} {jti}", max(exp, now) + CLOCK_SKEW
            )
            if not fresh:
                raise _invalid_client("this client assertion (its jti) was already used",
                                      "replayed")  # fmt: skip
        async with relay.tx() as tx:
            issued = await _issue(relay, tx.conn, row.vault, row.client_id, scope, auth, now,
                                  source_ip)  # fmt: skip
    except _Refused as refused:
        await _audit_refusal(relay, now, auth, refused, source_ip)
        raise refused.error from None
    return issued


async def _issue(
    relay: Relay, conn: AsyncConnection, vault: str, client_id: str, scope: str | None,
    auth: ClientAuth, now: int, source_ip: str | None,
) -> AgentToken:  # fmt: skip
    # Read again inside the transaction: an approver may have disabled or revoked
    # the agent since it authenticated.
    row = await agent_store.get(conn, vault, client_id)
    assert row is not None
    if row.state != "approved" or row.disabled:
        raise _Refused(
            Invalid(
                "unauthorized_client", f"this agent is {_view(row, now).state}",
                "Ask an approver to enable it (`sealbox agent enable`); a revoked agent is "
                "gone for good: create a new one.",
            ),
            "not_active",
        )  # fmt: skip
    not_after = await client_not_after(relay, conn, vault, client_id, now=now)
    if not_after is None or not_after <= now:
        raise _Refused(
            Invalid("unauthorized_client", "this agent's certificate no longer verifies",
                    "Create a new agent."),
            "certificate_void",
        )  # fmt: skip
    certified = _certificate_scopes(row.certificate or "")
    plain = [s for s in certified if s in (scopes.READ, scopes.WRITE)]
    if scope is not None and not set(scope.split(" ")) <= set(plain):
        raise _Refused(
            Invalid("invalid_scope", "the agent's certificate does not grant this scope",
                    f"Ask for some of: {' '.join(plain)}."),
            "invalid_scope",
        )  # fmt: skip
    access = sx.new_token(token_store.ACCESS_PREFIX)
    expires = min(now + ACCESS_SECONDS, not_after)
    await token_store.insert(conn, [{
        "hash": sx.token_hash(access), "kind": "access", "expires_at": expires,
        "vault_id": vault, "client_id": client_id, "family": "fam_" + secrets.token_hex(16),
        "used": False, "revoked": False,
    }])  # fmt: skip
    await audit.append(
        conn, vault=vault, at=now, actor=client_id, action="token.issued", client_id=client_id,
        source_ip=source_ip, detail={"grant": "client_credentials", "auth": auth.method},
    )  # fmt: skip
    return AgentToken(access, expires - now, scope or " ".join(plain), vault, client_id)


def _sender(source: str | None) -> str:
    try:
        address = ipaddress.ip_address(source or "")
    except ValueError:
        return source or ""
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


async def _audit_refusal(
    relay: Relay, now: int, auth: ClientAuth, refused: _Refused, source_ip: str | None
) -> None:
    """A refused token request as ``token.refused``, in its agent's vault (else the relay's).

    Anyone can provoke these, so they are throttled like refused signatures:
    one event a minute per vault, sender and reason, within the vault's budget.
    """
    async with relay.read() as conn:
        client_id = auth.client_id
        if client_id is None and auth.assertion is not None:
            try:
                client_id = _assertion_client(auth.assertion)
            except _Refused:
                client_id = None
        row = await agent_store.find(conn, client_id) if client_id else None
        if row is not None:
            vault: str | None = row.vault
        else:
            first = await directory_store.first_vault(conn)
            vault = first.id if first is not None else None
    if vault is None:
        return
    key = (vault, _sender(source_ip), "token " + refused.reason)
    suppressed = relay.refusal_audit.admit(key, now)
    if suppressed is None or relay.refusal_budget.allow(vault):
        return
    detail: dict[str, Any] = {"error": refused.error.code, "reason": refused.reason,
                              "auth": auth.method}  # fmt: skip
    if suppressed:
        detail["suppressed"] = suppressed
    async with relay.tx() as tx:
        await audit.append(
            tx.conn, vault=vault, at=now, actor="anonymous", action="token.refused",
            severity="warning", client_id=row.client_id if row is not None else None,
            source_ip=source_ip, detail=detail,
        )  # fmt: skip
