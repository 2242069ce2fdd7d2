"""Machines joining a vault with a one-time bootstrap token, approved like a login.

An approver makes a token (:func:`create_token`) that names the machine and the
item patterns it will ask for; the relay keeps only its hash, for ten minutes.
On the machine, ``sealbox machine register`` makes an Ed25519 key and sends the
public half with the token and a fresh ``cli_`` id (:func:`register`): the
token is spent there and then, compare-and-set, and the machine waits as a
pending registration.  An approver compares the key's safety code and the
registration code the machine printed, and uploads a ``machine`` certificate
it signed for exactly that id and key, carrying ``items:`` scopes for the
asked patterns (:func:`approve`); the relay then stores the client and adds
the grants.  The machine polls with requests signed by its new key
(:func:`registration`), so only the holder of the key learns the outcome, and
no bearer credential ever exists.

The relay cannot mint a machine: it holds no key that an approver's or a
client's verification accepts.  A leaked token lets its holder register *a*
key, which still waits for an approver who sees its safety code; the real
machine's registration then fails as "already used", which is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import secrets as sx
from sealbox.crypto.keys import SigningKey, VerifyKey
from sealbox.errors import SealboxError
from sealbox.protocol import scopes as scope_rules
from sealbox.protocol.state import MachineEvent, MachineState
from sealbox.protocol.statements import ClientInfo
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import (
    Conflict,
    Gone,
    Invalid,
    NotFound,
    RelayError,
    TooMany,
)
from sealbox.server.notify import approvers_channel
from sealbox.server.relay import Relay
from sealbox.server.services.admin import add_client, certified_as_asked
from sealbox.server.services.login import new_user_code
from sealbox.server.store import audit
from sealbox.server.store import clients as client_store
from sealbox.server.store import machines as store
from sealbox.server.store.machines import RegistrationRow, TokenRow

__all__ = [
    "MAX_GRANTS",
    "PENDING_CAP",
    "REGISTRATION_SECONDS",
    "TOKEN_PREFIX",
    "TOKEN_SECONDS",
    "CreatedToken",
    "PendingMachine",
    "Registered",
    "admit",
    "approve",
    "create_token",
    "deny",
    "pending_machines",
    "register",
    "registration",
    "script_token",
]

TOKEN_PREFIX = "sbx_bt_"  # noqa: S105 - a prefix, not a secret
TOKEN_SECONDS = 600
#: How long a registration waits for an approver.
REGISTRATION_SECONDS = 600
MAX_GRANTS = 16
#: Registrations that may wait at once in a vault (a leaked token registers only one).
PENDING_CAP = 50
#: Spent and expired tokens and registrations are kept this long (a late or second use is
#: told apart from an unknown one, and the machine can still fetch its certificate), then purged.
KEEP_SECONDS = 3600
_NEW_TOKEN_HINT = "Ask an approver for a new one: `sealbox machine token create`."  # noqa: S105
#: The scopes a token may ask for a machine (roles are for people).
_ACCESS_SCOPES = (scope_rules.READ, scope_rules.WRITE)


@dataclass(frozen=True)
class CreatedToken:
    """A new bootstrap token: returned to the approver once, stored only as its hash."""

    token: str
    name: str
    grants: tuple[str, ...]
    scopes: tuple[str, ...]
    expires_at: int
    token_id: str
    """What the audit log calls it (a prefix of its hash)."""

    def __repr__(self) -> str:
        return f"CreatedToken(name={self.name!r}, token_id={self.token_id!r})"


@dataclass(frozen=True)
class Registered:
    """A registration just made: what the machine shows and polls by."""

    vault: str
    client_id: str
    name: str
    user_code: str
    expires_at: int


@dataclass(frozen=True)
class PendingMachine:
    """A machine waiting for an approver, with what to compare against its terminal."""

    client_id: str
    name: str
    token_name: str
    user_code: str
    sig_pk: str
    key_fingerprint: str
    key_safety_code: str
    grants: tuple[str, ...]
    scopes: tuple[str, ...]
    token_created_by: str
    created_at: int
    expires_at: int
    reported_by_server: dict[str, Any]
    """What only the relay observed (the source address): shown as such, never verified."""


def _check_name(name: str) -> None:
    try:
        # The very check a certificate's client name gets (docs/protocol.md section 2.8).
        if not name.strip():
            raise ValueError("blank")
        ClientInfo.from_json({"id": _PROBE_ID, "kind": "machine", "name": name,
                              "sig_pk": _PROBE_KEY})  # fmt: skip
    except (SealboxError, ValueError):
        raise Invalid("invalid_name", "a machine name is 1 to 128 printable characters",
                      "Name the machine plainly, e.g. --name api.") from None  # fmt: skip


def _check_request(name: str, grants: Sequence[str], scopes: Sequence[str]) -> tuple[
    str, tuple[str, ...], tuple[str, ...]
]:  # fmt: skip
    _check_name(name)
    if not 1 <= len(grants) <= MAX_GRANTS:
        raise Invalid("invalid_grants", f"a token asks for 1 to {MAX_GRANTS} item patterns",
                      "Pass --grant PROJECT/ENV/ITEM once per pattern.")  # fmt: skip
    checked = []
    for pattern in grants:
        try:
            checked.append(scope_rules.check_pattern(pattern))
        except ValueError as exc:
            raise Invalid(
                "invalid_pattern", str(exc),
                "Use project/environment/item, each segment of A-Z a-z 0-9 . _ - and * ?.",
            ) from None  # fmt: skip
    wanted = tuple(sorted(set(scopes or (scope_rules.READ,))))
    if not set(wanted) <= set(_ACCESS_SCOPES):
        raise Invalid("invalid_scope", "a machine's scopes are read and/or write",
                      "Pass --scope read or --scope write.")  # fmt: skip
    return name, tuple(sorted(set(checked))), wanted


# A well-formed id and key, to check a name with the parser its certificate will get.
_PROBE_ID = "cli_" + "a" * 26
_PROBE_KEY = SigningKey.generate().verify_key().to_text()


def _scopes_for(row: RegistrationRow) -> frozenset[str]:
    """What the machine's certificate must say: the asked scopes and one ``items:`` per grant."""
    return frozenset(row.scopes) | {scope_rules.ITEMS + g for g in row.grants}


async def _record_refusal(
    relay: Relay, vault: str, now: int, *, actor: str, action: str, detail: dict[str, Any],
    source_ip: str | None, client_id: str | None = None,
) -> None:  # fmt: skip
    """Audit a refusal in a transaction of its own (the refused work was rolled back)."""
    async with relay.tx() as tx:
        await audit.append(
            tx.conn, vault=vault, at=now, actor=actor, action=action, severity="warning",
            client_id=client_id, source_ip=source_ip, detail=detail,
        )  # fmt: skip


# --- the approver makes a token ----------------------------------------------------------------


async def create_token(
    relay: Relay, now: int, *, vault: str, name: str, grants: Sequence[str],
    scopes: Sequence[str], approver: Principal, source_ip: str | None,
) -> CreatedToken:  # fmt: skip
    """A one-time token for one machine named ``name`` to ask for ``grants``."""
    name, patterns, wanted = _check_request(name, grants, scopes)
    token = sx.new_token(TOKEN_PREFIX)
    expires_at = now + TOKEN_SECONDS
    async with relay.tx() as tx:
        await relay.directories.load(tx.conn, vault)
        await store.purge(tx.conn, vault, before=now - KEEP_SECONDS)
        digest = await store.insert_token(
            tx.conn, token=token, vault=vault, name=name, grants=patterns, scopes=wanted,
            created_by=approver.id, now=now, expires_at=expires_at,
        )  # fmt: skip
        await audit.append(
            tx.conn, vault=vault, at=now, actor=approver.id, action="bootstrap.token_created",
            source_ip=source_ip,
            detail={"token_id": digest[:16], "name": name, "grants": list(patterns),
                    "scopes": list(wanted), "expires_at": expires_at},
        )  # fmt: skip
    return CreatedToken(token, name, patterns, wanted, expires_at, digest[:16])


# --- the script a machine runs -----------------------------------------------------------------


def _token_refusal(row: TokenRow | None, now: int) -> RelayError | None:
    if row is None:
        return NotFound("bootstrap_token_unknown", "this bootstrap token is not known here",
                        _NEW_TOKEN_HINT)  # fmt: skip
    if row.used_at is not None:
        return Gone("bootstrap_token_used", "this bootstrap token was already used",
                    "A token registers one machine. " + _NEW_TOKEN_HINT)  # fmt: skip
    if row.expires_at <= now:
        return Gone("bootstrap_token_expired", "this bootstrap token has expired",
                    _NEW_TOKEN_HINT)  # fmt: skip
    return None


async def script_token(relay: Relay, now: int, *, token: str, source_ip: str | None) -> TokenRow:
    """The token a bootstrap script is asked for, if it is still good.  Serving a script
    does not spend the token: the script runs ``sealbox machine register``, which does."""
    if relay.anonymous_limiter.allow(f"bootstrap {source_ip or 'unknown'}"):
        raise TooMany("slow_down", "too many bootstrap requests from this address; wait a minute")
    async with relay.read() as conn:
        row = await store.find_token(conn, token) if token.startswith(TOKEN_PREFIX) else None
    refusal = _token_refusal(row, now)
    if refusal is not None:
        raise refusal
    assert row is not None
    async with relay.tx() as tx:
        await audit.append(
            tx.conn, vault=row.vault, at=now, actor="anonymous", action="bootstrap.script_served",
            source_ip=source_ip, detail={"token_id": row.id, "name": row.name},
        )  # fmt: skip
    return row


# --- the machine registers ---------------------------------------------------------------------


async def _unused_user_code(conn: AsyncConnection, vault: str) -> str:
    for _ in range(8):
        code = new_user_code()
        if not await store.user_code_taken(conn, vault, code):
            return code
    raise RelayError("busy", "could not pick a fresh registration code; try again")


def admit(relay: Relay, source_ip: str | None) -> None:
    """Take one of the address's anonymous registrations (refused over the budget).

    Called before anything else is done for the request, the signature check
    included: each checked signature stores a nonce, and anyone may send these.
    """
    if relay.anonymous_limiter.allow(f"bootstrap {source_ip or 'unknown'}"):
        raise TooMany("slow_down", "too many registrations from this address; wait a minute")


async def register(
    relay: Relay, now: int, *, vault: str, token: str, client_id: str, key: VerifyKey,
    name: str | None, source_ip: str | None,
) -> Registered:  # fmt: skip
    """Spend ``token`` to register ``key`` as machine ``client_id`` waiting for an approver.

    The caller has taken the address's budget (:func:`admit`) and checked that
    the request is signed by ``key``.  The
    machine's name is ``name`` if it gave one, else the token's.  Refusals
    (unknown, expired or spent token) are audited and change nothing else.
    """
    if name is not None:
        _check_name(name)
    refusal: RelayError | None = None
    refusal_detail: dict[str, Any] = {}
    registered: Registered | None = None
    async with relay.tx() as tx:
        conn = tx.conn
        await relay.directories.load(conn, vault)
        row = await store.find_token(conn, token) if token.startswith(TOKEN_PREFIX) else None
        if row is not None and row.vault != vault:
            row = None  # another vault's token names nothing here
        refusal = _token_refusal(row, now)
        if refusal is None:
            assert row is not None
            client = ClientInfo(id=client_id, kind="machine", name=name or row.name, sig_pk=key)
            # These refusals come before anything is written, so the token stays unspent;
            # like the token's own refusals, they are audited below.
            if (
                await client_store.get(conn, vault, client.id) is not None
                or await store.get_registration(conn, vault, client.id) is not None
            ):
                refusal = Invalid("client_exists", "this client id is already registered",
                                  "Generate a fresh client id and key.")  # fmt: skip
            elif await store.count_pending(conn, vault, now) >= PENDING_CAP:
                refusal = TooMany("slow_down", "too many machines are waiting for approval",
                                  "Ask an approver to answer the waiting machines.")  # fmt: skip
            elif not await store.spend_token(conn, row, client_id=client.id, now=now):
                # Raced: another registration spent it first.
                refusal = _token_refusal(replace(row, used_at=now), now)
            else:
                user_code = await _unused_user_code(conn, vault)
                expires_at = now + REGISTRATION_SECONDS
                await store.insert_registration(
                    conn, vault=vault, client_id=client.id, name=client.name, token=row,
                    sig_pk=client.sig_pk.to_text(), user_code=user_code, source_ip=source_ip,
                    now=now, expires_at=expires_at,
                )  # fmt: skip
                await audit.append(
                    conn, vault=vault, at=now, actor=client.id, action="machine.registered",
                    client_id=client.id, source_ip=source_ip,
                    detail={"token_id": row.id, "name": client.name, "user_code": user_code,
                            "key_fingerprint": client.sig_pk.fingerprint(),
                            "grants": list(row.grants), "scopes": list(row.scopes)},
                )  # fmt: skip
                tx.wake(approvers_channel(vault), "device-requests")
                registered = Registered(vault, client.id, client.name, user_code, expires_at)
        if refusal is not None:
            refusal_detail = {"error": refusal.code}
            if row is not None:
                refusal_detail |= {"token_id": row.id, "name": row.name}
    if registered is not None:
        return registered
    assert refusal is not None
    await _record_refusal(
        relay, vault, now, actor="anonymous", action="bootstrap.refused", detail=refusal_detail,
        source_ip=source_ip,
    )  # fmt: skip
    raise refusal


async def registration(relay: Relay, now: int, *, vault: str, client_id: str) -> RegistrationRow:
    """A registration, for its machine (the caller checks the request is signed by its key)."""
    async with relay.read() as conn:
        row = await store.get_registration(conn, vault, client_id)
    if row is None:
        raise NotFound("no_such_registration", "no machine registration with this client id",
                       "Run `sealbox machine register` again with a new token.")  # fmt: skip
    return row


# --- the approver's side -----------------------------------------------------------------------


async def pending_machines(relay: Relay, now: int, *, vault: str) -> list[PendingMachine]:
    async with relay.read() as conn:
        rows = await store.list_pending(conn, vault, now)
    out = []
    for row in rows:
        key = VerifyKey.from_text(row.sig_pk)
        out.append(PendingMachine(
            client_id=row.client_id, name=row.name, token_name=row.token_name,
            user_code=row.user_code, sig_pk=row.sig_pk, key_fingerprint=key.fingerprint(),
            key_safety_code=key.safety_code(), grants=row.grants, scopes=row.scopes,
            token_created_by=row.token_created_by, created_at=row.created_at,
            expires_at=row.expires_at, reported_by_server={"source_ip": row.source_ip},
        ))  # fmt: skip
    return out


async def _pending(conn: AsyncConnection, vault: str, client_id: str, now: int) -> RegistrationRow:
    row = await store.get_registration(conn, vault, client_id, lock=True)
    if row is None:
        raise NotFound("no_such_registration", "no machine registration with this client id",
                       "List the waiting machines with `sealbox approve`.")  # fmt: skip
    if row.state is not MachineState.PENDING:
        raise Conflict("registration_closed", f"this registration was already {row.state}")
    if row.expired(now):
        raise Conflict("registration_expired", "this registration has expired",
                       "Make a new token; the machine registers again.")  # fmt: skip
    return row


def _answered_meanwhile() -> Conflict:
    return Conflict("registration_closed", "this registration was answered meanwhile")


async def approve(
    relay: Relay, now: int, *, vault: str, client_id: str, certificate: str,
    approver: Principal, source_ip: str | None,
) -> RegistrationRow:  # fmt: skip
    """Approve a machine with the certificate ``approver`` signed; add the grants it asked for.

    The certificate must certify exactly the registered id and key, as a
    ``machine``, with exactly the scopes the token asked for and an
    ``items:`` scope per asked pattern: the certificate itself then carries
    the machine's stage isolation.
    """
    try:
        return await _approve(relay, now, vault=vault, client_id=client_id,
                              certificate=certificate, approver=approver,
                              source_ip=source_ip)  # fmt: skip
    except (Invalid, NotFound, Conflict) as refused:
        # A 403 (another issuer, a certificate that does not verify) is audited once, as
        # every 403 of an authenticated caller is (request.refused); these are the rest.
        await _record_refusal(
            relay, vault, now, actor=approver.id, action="machine.approval_refused",
            detail={"error": refused.code}, source_ip=source_ip, client_id=None,
        )  # fmt: skip
        raise


async def _approve(
    relay: Relay, now: int, *, vault: str, client_id: str, certificate: str,
    approver: Principal, source_ip: str | None,
) -> RegistrationRow:  # fmt: skip
    async with relay.tx() as tx:
        conn = tx.conn
        directory = await relay.directories.load(conn, vault)
        row = await _pending(conn, vault, client_id, now)
        cert = certified_as_asked(
            certificate, directory, now=now, approver=approver, client_id=row.client_id,
            kind="machine", sig_pk=row.sig_pk,
            what="this registration's client id and key, as a machine",
            hint="Certify exactly the client id and key shown for this machine.",
        )  # fmt: skip
        if frozenset(cert.scopes) != _scopes_for(row):
            raise Invalid(
                "certificate_mismatch",
                "the certificate's scopes are not the ones the token asked for",
                "Certify the asked scopes plus items:PATTERN for each asked pattern.",
            )  # fmt: skip
        await add_client(conn, vault, cert, certificate, now)
        for pattern in row.grants:
            await client_store.add_grant(conn, vault, row.client_id, pattern, now)
        state = await store.advance(conn, row, MachineEvent.CERTIFIED, certificate=certificate)
        if state is None:
            raise _answered_meanwhile()
        await audit.append(
            conn, vault=vault, at=now, actor=approver.id, action="machine.approved",
            client_id=row.client_id, source_ip=source_ip,
            detail={"name": cert.client.name, "key_fingerprint": cert.client.sig_pk.fingerprint(),
                    "scopes": list(cert.scopes), "grants": list(row.grants),
                    "not_after": cert.constraints.not_after},
        )  # fmt: skip
        tx.wake(approvers_channel(vault), "device-requests")
    return replace(row, state=state, certificate=certificate)


async def deny(
    relay: Relay, now: int, *, vault: str, client_id: str, approver: Principal,
    source_ip: str | None,
) -> RegistrationRow:  # fmt: skip
    """Refuse a machine; its next poll says so."""
    try:
        return await _deny(relay, now, vault=vault, client_id=client_id, approver=approver,
                           source_ip=source_ip)  # fmt: skip
    except (NotFound, Conflict) as refused:
        await _record_refusal(
            relay, vault, now, actor=approver.id, action="machine.denial_refused",
            detail={"error": refused.code}, source_ip=source_ip, client_id=None,
        )  # fmt: skip
        raise


async def _deny(
    relay: Relay, now: int, *, vault: str, client_id: str, approver: Principal,
    source_ip: str | None,
) -> RegistrationRow:  # fmt: skip
    async with relay.tx() as tx:
        conn = tx.conn
        row = await _pending(conn, vault, client_id, now)
        state = await store.advance(conn, row, MachineEvent.DENIED)
        if state is None:
            raise _answered_meanwhile()
        await audit.append(
            conn, vault=vault, at=now, actor=approver.id, action="machine.denied",
            client_id=row.client_id, source_ip=source_ip, detail={"name": row.name},
        )  # fmt: skip
        tx.wake(approvers_channel(vault), "device-requests")
    return replace(row, state=state)
