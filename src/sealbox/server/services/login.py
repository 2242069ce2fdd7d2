"""Human logins: RFC 8628 device authorization, token issue and rotation, revocation.

``sealbox login`` generates a client key and registers its public half with a
fresh ``cli_`` id (:func:`start_login`).  The person reads the user code and
the key's fingerprint off the terminal; an approver looks the login up by that
code, compares the fingerprint, and uploads a client certificate it signed for
exactly that id and key (:func:`approve`).  Meanwhile the CLI polls with its
device code and, once approved, receives the certificate and a token family
(:func:`take_tokens`).

Tokens come in *families*: the access and refresh tokens issued at one login
and every pair rotated from them.  A refresh token works once; presenting it
again means two parties hold it (the client, and whoever copied it), and the
relay cannot tell which is which, so it revokes the whole family
(RFC 9700 §4.14.2).  The relay stores only hashes of device codes and tokens.

The token endpoint's refusals (:func:`take_tokens`, :func:`refresh`) are all
:class:`~sealbox.server.errors.Invalid`, whatever their reason: RFC 6749 §5.2
answers every one of them with 400, and a client tells them apart by ``code``.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from sealbox.crypto import secrets as sx
from sealbox.crypto.keys import VerifyKey
from sealbox.errors import CertificateInvalid
from sealbox.protocol.certificates import verify_certificate
from sealbox.protocol.state import DeviceEvent, DeviceState
from sealbox.protocol.statements import ClientInfo
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Conflict, Invalid, NotFound, RelayError, TooMany, Unavailable
from sealbox.server.notify import approvers_channel
from sealbox.server.relay import Relay
from sealbox.server.services import members
from sealbox.server.services.admin import add_client, certified_as_asked
from sealbox.server.store import audit, devices
from sealbox.server.store import clients as client_store
from sealbox.server.store import tokens as token_store
from sealbox.server.store.devices import DeviceRow

__all__ = [
    "ACCESS_SECONDS",
    "DEVICE_CODE_SECONDS",
    "POLL_INTERVAL",
    "REFRESH_SECONDS",
    "Answered",
    "DeviceLogin",
    "Granted",
    "IssuedTokens",
    "PendingLogin",
    "Refreshed",
    "approve",
    "client_not_after",
    "deny",
    "issue_tokens",
    "new_user_code",
    "normalise_user_code",
    "pending_logins",
    "refresh",
    "revoke",
    "start_login",
    "take_tokens",
]

DEVICE_CODE_PREFIX = "sbx_dc_"
DEVICE_CODE_SECONDS = 600
POLL_INTERVAL = 5
SLOW_DOWN_STEP = 5
# RFC 8628 lets the interval grow without bound; past a minute a stuck client
# only makes the login slower for the person waiting, not the relay safer.
MAX_INTERVAL = 60
# Anyone may open a device request (that is the point of the flow), so cap how
# many can wait at once: approvers must not have to scroll past a flood.
PENDING_CAP = 50
# Expired device requests are kept a while so a late poll gets expired_token
# rather than invalid_grant, then deleted.
KEEP_EXPIRED_SECONDS = 3600

# RFC 8628 §6.1: no vowels (no words), no look-alikes (0/O, 1/I/L… are absent).
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
_USER_CODE = re.compile(f"[{USER_CODE_ALPHABET}]{{4}}-[{USER_CODE_ALPHABET}]{{4}}")

ACCESS_SECONDS = 3600
REFRESH_SECONDS = 30 * 86400


# --- what the operations return ----------------------------------------------------------------


@dataclass(frozen=True)
class IssuedTokens:
    """A fresh access and refresh token: returned to the caller once, never stored."""

    access_token: str
    refresh_token: str
    expires_in: int
    """Seconds until the access token expires."""
    family: str

    def __repr__(self) -> str:
        # Keep the tokens out of tracebacks and debug logs.
        return f"IssuedTokens(family={self.family!r}, expires_in={self.expires_in})"


@dataclass(frozen=True)
class DeviceLogin:
    """A login just started: what the CLI shows the person and polls with."""

    device_code: str
    user_code: str
    expires_in: int
    interval: int
    """Seconds to wait between polls."""
    project: str | None = None
    """For a login started with an invite: the project and role it offers."""
    role: str | None = None

    def __repr__(self) -> str:
        return f"DeviceLogin(user_code={self.user_code!r})"


@dataclass(frozen=True)
class Granted:
    """An approved login's first tokens, with the certificate the approver signed."""

    tokens: IssuedTokens
    certificate: str | None
    vault: str
    client_id: str


@dataclass(frozen=True)
class Refreshed:
    tokens: IssuedTokens
    vault: str
    client_id: str


@dataclass(frozen=True)
class PendingLogin:
    """A login waiting for an approver, with what to compare against the person's terminal."""

    user_code: str
    client_id: str
    client_name: str
    kind: str
    sig_pk: str
    key_fingerprint: str
    key_safety_code: str
    created_at: int
    expires_at: int
    project: str | None = None
    """For a login started with an invite: the project and role it offers (teams)."""
    role: str | None = None


@dataclass(frozen=True)
class Answered:
    """An approver's answer to a login."""

    user_code: str
    client_id: str
    state: DeviceState


# --- user codes --------------------------------------------------------------------------------


def new_user_code() -> str:
    chars = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))
    return f"{chars[:4]}-{chars[4:]}"


def normalise_user_code(value: str) -> str:
    """Accept what a person types (lower case, with or without the dash or spaces)."""
    compact = value.upper().replace("-", "").replace(" ", "")
    code = f"{compact[:4]}-{compact[4:]}"
    if len(compact) != USER_CODE_LENGTH or not _USER_CODE.fullmatch(code):
        raise Invalid(
            "invalid_user_code", "a user code is eight letters like BCDF-GHJK",
            "Copy the code exactly as `sealbox login` printed it.",
        )  # fmt: skip
    return code


async def _unused_user_code(conn: AsyncConnection) -> str:
    # 20^8 codes: a clash is rare, but user_code is unique across the table.
    for _ in range(8):
        code = new_user_code()
        if not await devices.user_code_taken(conn, code):
            return code
    raise Unavailable("busy", "could not pick a fresh user code; try again")


# --- tokens ------------------------------------------------------------------------------------


def _new_family() -> str:
    # A family id is a label, not a credential: it only groups rows.
    return "fam_" + secrets.token_hex(16)


async def issue_tokens(
    conn: AsyncConnection, *, vault: str, client_id: str, now: int, not_after: int,
    family: str | None = None,
) -> IssuedTokens:  # fmt: skip
    """Store the hashes of a new access and refresh token in ``family`` (new if ``None``).

    Runs in the caller's transaction and writes no audit event.  Neither token
    outlives ``not_after`` (the client certificate's end): a session must not
    keep working after its certificate is void.
    """
    family = family or _new_family()
    access = sx.new_token(token_store.ACCESS_PREFIX)
    refresh_token = sx.new_token(token_store.REFRESH_PREFIX)
    access_expires = min(now + ACCESS_SECONDS, not_after)
    await token_store.insert_pair(
        conn, vault=vault, client_id=client_id, family=family, access_token=access,
        access_expires=access_expires, refresh_token=refresh_token,
        refresh_expires=min(now + REFRESH_SECONDS, not_after),
    )  # fmt: skip
    return IssuedTokens(
        access_token=access,
        refresh_token=refresh_token,
        expires_in=max(access_expires - now, 0),
        family=family,
    )


async def client_not_after(
    relay: Relay, conn: AsyncConnection, vault: str, client_id: str, *, now: int
) -> int | None:
    """When the client's certificate ends, or ``None`` if the client may not get tokens now.

    The certificate is verified again against the *current* directory: an
    approver's removal voids what it certified, and with it the client's
    ability to refresh its session.
    """
    row = await client_store.get(conn, vault, client_id)
    if row is None or row.disabled:
        return None
    try:
        directory = await relay.directories.load(conn, vault)
        cert = verify_certificate(row.certificate, directory, now=now)
    except (RelayError, CertificateInvalid):
        return None
    if cert.client.id != client_id or cert.client.sig_pk.to_text() != row.sig_pk:
        return None
    return cert.constraints.not_after


_Outcome = Literal["rotated", "reused", "invalid"]


@dataclass(frozen=True)
class _Rotation:
    """What presenting a refresh token came to."""

    outcome: _Outcome
    """``rotated``: fresh tokens issued; ``reused``: the family was revoked; ``invalid``: unknown,
    expired or revoked."""
    row: token_store.TokenRow | None = None
    issued: IssuedTokens | None = None


async def _rotate(
    relay: Relay, conn: AsyncConnection, token: str, *, now: int, client_id: str | None
) -> _Rotation:
    """Spend refresh ``token``: issue a fresh pair in its family, or revoke the family on reuse.

    A ``client_id`` that does not own the token makes it ``invalid`` without
    spending it.
    """
    row = await token_store.find(conn, token)
    if row is None or row.kind != "refresh" or client_id not in (None, row.client_id):
        return _Rotation("invalid")
    if row.revoked:
        return _Rotation("invalid", row)
    if row.used:
        await token_store.revoke_family(conn, vault=row.vault, family=row.family)
        return _Rotation("reused", row)
    if row.expires_at <= now:
        return _Rotation("invalid", row)
    # Compare-and-set: of two concurrent presentations of one token, exactly one
    # marks it used; the other sees it used and is treated as the reuse it is.
    if not await token_store.mark_used(conn, token):
        await token_store.revoke_family(conn, vault=row.vault, family=row.family)
        return _Rotation("reused", row)
    not_after = await client_not_after(relay, conn, row.vault, row.client_id, now=now)
    if not_after is None or not_after <= now:
        # The client may get no more tokens (disabled, or its certificate is
        # void); end the access tokens already out too, not only in an hour.
        await token_store.revoke_family(conn, vault=row.vault, family=row.family)
        return _Rotation("invalid", row)
    # The access tokens rotated away from stay valid until they expire (at
    # most an hour): the client may still have requests in flight with them.
    issued = await issue_tokens(
        conn, vault=row.vault, client_id=row.client_id, now=now, not_after=not_after,
        family=row.family,
    )  # fmt: skip
    return _Rotation("rotated", row, issued)


# --- RFC 8628 §3.1-3.2: device authorization ---------------------------------------------------


async def start_login(
    relay: Relay, now: int, *, vault: str, client: ClientInfo, source_ip: str | None,
    invite: str | None = None,
) -> DeviceLogin:  # fmt: skip
    """Register a would-be client's key as a pending login; return its device and user codes.

    With an ``invite`` code, the login carries the invite's project and role to
    the approver; the invite is used by this login (a second one is refused).
    """
    code = invite
    invite_row = None
    refused: Invalid | None = None
    # Anyone may start a login (valid requests count), so each source address gets a small budget
    # before the per-vault cap: one noisy address cannot block everyone's logins.
    if relay.anonymous_limiter.allow(f"device {source_ip or 'unknown'}"):
        raise TooMany("slow_down", "too many logins started from this address; wait a minute")
    device_code = sx.new_token(DEVICE_CODE_PREFIX)
    async with relay.tx() as tx:
        conn = tx.conn
        await relay.directories.load(conn, vault)
        await devices.purge_expired(conn, vault, before=now - KEEP_EXPIRED_SECONDS)
        if await client_store.get(conn, vault, client.id) is not None:
            raise Invalid(
                "invalid_request", "this client id is already registered",
                "Generate a fresh client id and key for each login.",
            )  # fmt: skip
        if await devices.count_pending(conn, vault, now) >= PENDING_CAP:
            raise TooMany(
                "slow_down", "too many logins are waiting for approval in this vault",
                "Ask an approver to approve or deny the waiting logins.",
            )  # fmt: skip
        if code is not None:
            # Decided here, raised after the commit: a refused invite keeps its audit event.
            invite_row, refused = await members.take_invite(
                conn, vault=vault, code=code, client_id=client.id, now=now, source_ip=source_ip
            )
        if refused is None:
            user_code = await _unused_user_code(conn)
            offered = None if invite_row is None else (
                invite_row.id, invite_row.project, invite_row.role)  # fmt: skip
            await devices.insert(
                conn, device_code=device_code, vault=vault, user_code=user_code,
                client_id=client.id, client_name=client.name, sig_pk=client.sig_pk.to_text(),
                interval=POLL_INTERVAL, expires_at=now + DEVICE_CODE_SECONDS, invite=offered,
            )  # fmt: skip
            detail: dict[str, object] = {
                "user_code": user_code, "client_name": client.name,
                "key_fingerprint": client.sig_pk.fingerprint(),
            }  # fmt: skip
            if invite_row is not None:
                detail.update(invite=invite_row.id, project=invite_row.project,
                              role=invite_row.role)  # fmt: skip
            await audit.append(
                conn, vault=vault, at=now, actor="anonymous", action="device.requested",
                client_id=client.id, source_ip=source_ip, detail=detail,
            )  # fmt: skip
            tx.wake(approvers_channel(vault), "device-requests")
    if refused is not None:
        raise refused
    return DeviceLogin(
        device_code, user_code, DEVICE_CODE_SECONDS, POLL_INTERVAL,
        None if invite_row is None else invite_row.project,
        None if invite_row is None else invite_row.role,
    )  # fmt: skip


# --- RFC 8628 §3.4-3.5 and RFC 6749 §6: the token endpoint -------------------------------------


def _unknown_device_code() -> Invalid:
    return Invalid("invalid_grant", "the device code is unknown or already used")


async def take_tokens(
    relay: Relay, now: int, *, device_code: str, client_id: str, source_ip: str | None
) -> Granted:
    """Exchange an approved device code for the login's first tokens (once)."""
    # Outcomes are decided inside the transaction but raised after it commits:
    # a slow_down must persist the longer interval, and a reuse its audit event.
    failure: Invalid | None = None
    granted: Granted | None = None
    async with relay.tx() as tx:
        conn = tx.conn
        row = await devices.find(conn, device_code)
        if row is None or row.client_id != client_id:
            raise _unknown_device_code()
        vault = row.vault
        if row.state is DeviceState.USED:
            await audit.append(
                conn, vault=vault, at=now, actor=client_id, action="device.code_reused",
                severity="warning", client_id=client_id, source_ip=source_ip,
                detail={"user_code": row.user_code},
            )  # fmt: skip
            failure = _unknown_device_code()
        elif row.state is DeviceState.DENIED:
            failure = Invalid("access_denied", "an approver denied this login")
        elif row.expired(now):
            failure = Invalid(
                "expired_token", "the device code has expired", "Run `sealbox login` again."
            )
        elif row.state is DeviceState.PENDING:
            failure = await _poll_pending(conn, row, now)
        else:  # approved
            not_after = await client_not_after(relay, conn, vault, client_id, now=now)
            if not_after is None or not_after <= now:
                raise Invalid("invalid_grant", "the client was disabled or its certificate "
                              "no longer verifies")  # fmt: skip
            if await devices.advance(conn, row, DeviceEvent.TOKENS_TAKEN) is None:
                raise _unknown_device_code()
            issued = await issue_tokens(
                conn, vault=vault, client_id=client_id, now=now, not_after=not_after
            )
            await audit.append(
                conn, vault=vault, at=now, actor=client_id, action="token.issued",
                client_id=client_id, source_ip=source_ip,
                detail={"grant": "device_code", "family": issued.family},
            )  # fmt: skip
            granted = Granted(issued, row.certificate, vault, client_id)
    if failure is not None:
        raise failure
    assert granted is not None
    return granted


async def _poll_pending(conn: AsyncConnection, row: DeviceRow, now: int) -> Invalid:
    """Record a poll of a login still waiting; the refusal to answer it with."""
    if row.last_poll and now - row.last_poll < row.interval:
        interval = min(row.interval + SLOW_DOWN_STEP, MAX_INTERVAL)
        await devices.record_poll(conn, row, now=now, interval=interval)
        return Invalid(
            "slow_down", f"poll at most every {interval} seconds",
            f"Wait {interval} seconds between polls.",
        )  # fmt: skip
    await devices.record_poll(conn, row, now=now)
    return Invalid(
        "authorization_pending", "the login is waiting for an approver",
        f"Ask an approver to approve user code {row.user_code}.",
    )  # fmt: skip


async def refresh(
    relay: Relay, now: int, *, refresh_token: str, client_id: str | None, source_ip: str | None
) -> Refreshed:
    """Rotate a refresh token: a fresh pair in its family, or the family revoked on reuse."""
    async with relay.tx() as tx:
        rotation = await _rotate(relay, tx.conn, refresh_token, now=now, client_id=client_id)
        row = rotation.row
        if row is not None and rotation.outcome == "reused":
            await audit.append(
                tx.conn, vault=row.vault, at=now, actor=row.client_id,
                action="token.reuse_detected", severity="warning", client_id=row.client_id,
                source_ip=source_ip, detail={"family": row.family, "revoked": "family"},
            )  # fmt: skip
        elif row is not None and rotation.issued is not None:
            await audit.append(
                tx.conn, vault=row.vault, at=now, actor=row.client_id, action="token.refreshed",
                client_id=row.client_id, source_ip=source_ip, detail={"family": row.family},
            )  # fmt: skip
    # Raised after the commit: a reuse must leave the family revoked and audited.
    if row is None or rotation.issued is None:
        raise Invalid(
            "invalid_grant", "the refresh token is unknown, expired, revoked or already used",
            "Log in again with `sealbox login`.",
        )  # fmt: skip
    return Refreshed(rotation.issued, row.vault, row.client_id)


# --- RFC 7009: revocation ----------------------------------------------------------------------


async def revoke(relay: Relay, now: int, *, token: str, source_ip: str | None) -> None:
    """Revoke the whole family (the login) of ``token``, of any kind; an unknown one is no error."""
    async with relay.tx() as tx:
        row = await token_store.find(tx.conn, token)
        if row is None:
            return
        if await token_store.revoke_family(tx.conn, vault=row.vault, family=row.family):
            await audit.append(
                tx.conn, vault=row.vault, at=now, actor=row.client_id, action="token.revoked",
                client_id=row.client_id, source_ip=source_ip,
                detail={"family": row.family, "presented": row.kind},
            )  # fmt: skip


# --- the approver's side -----------------------------------------------------------------------


async def pending_logins(relay: Relay, now: int, *, vault: str) -> list[PendingLogin]:
    """The vault's logins waiting for an approver."""
    async with relay.read() as conn:
        rows = await devices.list_pending(conn, vault, now)
    out = []
    for row in rows:
        key = VerifyKey.from_text(row.sig_pk)
        out.append(PendingLogin(
            user_code=row.user_code, client_id=row.client_id, client_name=row.client_name,
            kind="human", sig_pk=row.sig_pk, key_fingerprint=key.fingerprint(),
            key_safety_code=key.safety_code(), created_at=row.expires_at - DEVICE_CODE_SECONDS,
            expires_at=row.expires_at, project=row.invite_project, role=row.invite_role,
        ))  # fmt: skip
    return out


async def _pending(conn: AsyncConnection, vault: str, user_code: str, now: int) -> DeviceRow:
    row = await devices.find_by_user_code(conn, vault, user_code)
    if row is None:
        raise NotFound("no_such_device_request", "no login with this user code is waiting",
                       "Check the code on the person's terminal.")  # fmt: skip
    if row.state is not DeviceState.PENDING:
        raise Conflict("device_request_closed", f"this login was already {row.state}")
    if row.expired(now):
        raise Conflict("device_request_expired", "this login has expired",
                       "Ask the person to run `sealbox login` again.")  # fmt: skip
    return row


def _answered_meanwhile() -> Conflict:
    return Conflict("device_request_closed", "this login was answered meanwhile")


async def approve(
    relay: Relay, now: int, *, vault: str, user_code: str, certificate: str,
    approver: Principal, source_ip: str | None,
) -> Answered:  # fmt: skip
    """Approve a login with the client certificate ``approver`` signed for its id and key."""
    code = normalise_user_code(user_code)
    async with relay.tx() as tx:
        conn = tx.conn
        directory = await relay.directories.load(conn, vault)
        row = await _pending(conn, vault, code, now)
        cert = certified_as_asked(
            certificate, directory, now=now, approver=approver, client_id=row.client_id,
            kind="human", sig_pk=row.sig_pk,
            what="this login's client id and key, as a human client",
            hint="Certify exactly the client id and key shown with this user code.",
        )  # fmt: skip
        if row.invite_project is not None and row.invite_role is not None:
            members.check_invited(cert, row.invite_project, row.invite_role)
        await add_client(conn, vault, cert, certificate, now)
        state = await devices.advance(conn, row, DeviceEvent.CERTIFIED, certificate=certificate)
        if state is None:
            raise _answered_meanwhile()
        await audit.append(
            conn, vault=vault, at=now, actor=approver.id, action="device.approved",
            client_id=row.client_id, source_ip=source_ip,
            detail={"user_code": code, "key_fingerprint": cert.client.sig_pk.fingerprint(),
                    "scopes": list(cert.scopes), "not_after": cert.constraints.not_after,
                    **({"invite": row.invite_id} if row.invite_id else {})},
        )  # fmt: skip
        tx.wake(approvers_channel(vault), "device-requests")
    return Answered(code, row.client_id, state)


async def deny(
    relay: Relay, now: int, *, vault: str, user_code: str, approver: Principal,
    source_ip: str | None,
) -> Answered:  # fmt: skip
    """Refuse a login; the CLI's next poll gets ``access_denied``."""
    code = normalise_user_code(user_code)
    async with relay.tx() as tx:
        conn = tx.conn
        row = await _pending(conn, vault, code, now)
        state = await devices.advance(conn, row, DeviceEvent.DENIED)
        if state is None:
            raise _answered_meanwhile()
        await audit.append(
            conn, vault=vault, at=now, actor=approver.id, action="device.denied",
            client_id=row.client_id, source_ip=source_ip, detail={"user_code": code},
        )  # fmt: skip
        tx.wake(approvers_channel(vault), "device-requests")
    return Answered(code, row.client_id, state)
