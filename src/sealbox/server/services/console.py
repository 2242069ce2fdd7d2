"""The browser console's identity: passkeys (WebAuthn), setup of the first approver, sessions.

A console session only says *which approver* is at the browser.  It opens the
approver endpoints (listing requests, reading the directory…) but can never
release anything: releases, denies, manifests, links and certificates are
statements the browser signs with the approver's own key.

WebAuthn runs with user verification and resident keys required.  Every
challenge is made here, kept server-side, spent once and good for five
minutes.  The relying party is the console origin the ceremony runs on: the
relay's own public URL or one of the configured console origins (``sealbox
console`` on localhost); its RP ID is that origin's host name, and each
passkey remembers the RP ID it was made under.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import webauthn
from webauthn.helpers import parse_client_data_json
from webauthn.helpers.cose import COSEAlgorithmIdentifier
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from sealbox.crypto import secrets as sx
from sealbox.crypto.encoding import b64u_encode
from sealbox.errors import SealboxError
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.statements import ApproverRecord
from sealbox.server.config import Settings
from sealbox.server.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    TooMany,
    Unauthenticated,
)
from sealbox.server.relay import Relay
from sealbox.server.services import pairing
from sealbox.server.store import audit, pairings
from sealbox.server.store import console as store
from sealbox.server.store import directory as directory_store

__all__ = [
    "CHALLENGE_SECONDS",
    "SESSION_SECONDS",
    "ConsoleSetUp",
    "Session",
    "rp_id_for",
    "session",
    "set_up",
    "setup_options",
    "sign_in",
    "sign_out",
    "signin_options",
]

CHALLENGE_SECONDS = 300
#: Most challenges one vault has outstanding: asking for options is anonymous, and each one
#: is a row until it is spent or expires.
CHALLENGES_MAX = 1000
SESSION_SECONDS = 12 * 3600
RP_NAME = "sealbox"
#: Ed25519 and P-256: what platform authenticators and security keys make.
ALGORITHMS = [COSEAlgorithmIdentifier.EDDSA, COSEAlgorithmIdentifier.ECDSA_SHA_256]
_SELECTION = AuthenticatorSelectionCriteria(
    resident_key=ResidentKeyRequirement.REQUIRED,
    require_resident_key=True,
    user_verification=UserVerificationRequirement.REQUIRED,
)


@dataclass(frozen=True)
class Session:
    token: str
    """The cookie's value: shown to the browser once, stored here only as a hash."""
    approver: str
    csrf: str
    expires_at: int


@dataclass(frozen=True)
class ConsoleSetUp:
    vault: str
    fingerprint: str
    safety_code: str
    session: Session


def rp_id_for(settings: Settings, origin: str | None) -> str:
    """The RP ID of a ceremony run on ``origin``; refuses an origin that is not a console origin.

    Browsers send ``Origin`` on every POST; a call without one, or from a page of
    another site, is not the console's.
    """
    if origin is None or origin not in settings.console_origin_list:
        raise Forbidden(
            "origin_not_allowed", "this origin may not use the console of this relay",
            "Open the console at the relay's public URL, or start the relay with "
            "--console-origin for `sealbox console`.",
        )  # fmt: skip
    host = urlsplit(origin).hostname
    assert host is not None  # console origins are checked when the settings are read
    return host


def _origins_of(settings: Settings, rp_id: str) -> list[str]:
    return [o for o in settings.console_origin_list if urlsplit(o).hostname == rp_id]


def _new_challenge() -> bytes:
    return secrets.token_bytes(32)


async def _issue(
    relay: Relay, now: int, vault: str, challenge: store.Challenge, source_ip: str | None,
    *, anonymous: bool,
) -> None:  # fmt: skip
    """Keep a new challenge, within the per-address and per-vault budgets for anonymous ones."""
    if anonymous and relay.anonymous_limiter.allow(f"console-options {source_ip or 'unknown'}"):
        raise TooMany("rate_limited", "too many passkey prompts asked from this address",
                      "Wait a minute and try again.")  # fmt: skip
    async with relay.tx() as tx:
        if await store.count_challenges(tx.conn, vault, now) >= CHALLENGES_MAX:
            raise TooMany("rate_limited", "too many passkey prompts are outstanding",
                          "Try again in a few minutes.", retry_after=CHALLENGE_SECONDS)  # fmt: skip
        await store.insert_challenge(tx.conn, vault, challenge, now)


def _challenge_of(credential: RegistrationCredential | AuthenticationCredential) -> str:
    try:
        client_data = parse_client_data_json(credential.response.client_data_json)
    except (WebAuthnException, ValueError) as exc:
        raise Invalid("credential_invalid", "the credential's client data is malformed") from exc
    return b64u_encode(client_data.challenge)


def _registration(credential: dict[str, Any]) -> RegistrationCredential:
    try:
        return webauthn.helpers.parse_registration_credential_json(json.dumps(credential))
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise Invalid(
            "credential_invalid", "the credential is not a WebAuthn registration response",
            "Send the PublicKeyCredential's JSON (toJSON()) as `credential`.",
        ) from exc  # fmt: skip


def _assertion(credential: dict[str, Any]) -> AuthenticationCredential:
    try:
        return webauthn.helpers.parse_authentication_credential_json(json.dumps(credential))
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise Invalid(
            "credential_invalid", "the credential is not a WebAuthn assertion",
            "Send the PublicKeyCredential's JSON (toJSON()) as `credential`.",
        ) from exc  # fmt: skip


async def _spend(
    relay: Relay, now: int, vault: str, challenge: str, purpose: str
) -> store.Challenge:
    """Spend the challenge, in a transaction of its own: it is used up even if the rest fails."""
    async with relay.tx() as tx:
        found = await store.take_challenge(tx.conn, vault, challenge, purpose, now)
    if found is None:
        raise Unauthenticated(
            "challenge_unknown",
            "the passkey answered a challenge that is unknown, used or expired",
            "Start again: each passkey prompt works once, for five minutes.",
        )  # fmt: skip
    return found


def _verify_registration(
    settings: Settings, credential: RegistrationCredential, challenge: store.Challenge
) -> Any:
    try:
        return webauthn.verify_registration_response(
            credential=credential,
            expected_challenge=webauthn.base64url_to_bytes(challenge.challenge),
            expected_rp_id=challenge.rp_id, expected_origin=_origins_of(settings, challenge.rp_id),
            require_user_verification=True, supported_pub_key_algs=ALGORITHMS,
        )  # fmt: skip
    except WebAuthnException as exc:
        # py_webauthn's messages name the check that failed (origin, flags, signature), never
        # key material; they help the person fix their setup.
        raise Invalid(
            "passkey_invalid", f"the passkey registration does not verify: {exc}"
        ) from exc


def _new_session(approver: str, now: int) -> Session:
    token = sx.new_token(store.SESSION_PREFIX)
    return Session(token, approver, store.csrf_for(token), now + SESSION_SECONDS)


def _setup_token_matches(row: directory_store.VaultRow | None, setup_token: str) -> bool:
    return (
        row is not None
        and row.setup_token_hash is not None
        and sx.constant_time_equal(row.setup_token_hash, sx.token_hash(setup_token))
    )


async def _refuse_setup(relay: Relay, now: int, vault: str, source_ip: str | None) -> Forbidden:
    # Anyone can send a wrong token: the event is throttled as refused requests are.
    if relay.refusal_audit.admit((vault, source_ip or "", "invalid_setup_token"), now) is not None:
        async with relay.tx() as tx:
            await audit.append(tx.conn, vault=vault, at=now, actor="anonymous",
                               action="vault.setup_refused", severity="warning",
                               source_ip=source_ip, detail={"via": "console"})  # fmt: skip
    return Forbidden(
        "invalid_setup_token", "the setup token is wrong or already used",
        "Restart `sealbox up` to print a fresh setup link.",
    )  # fmt: skip


async def _check_setup_token(
    relay: Relay, now: int, vault: str, setup_token: str, source_ip: str | None
) -> None:
    async with relay.tx() as tx:
        row = await directory_store.lock_vault(tx.conn, vault)
    if row is None:
        raise NotFound("no_such_vault", "this relay has no such vault")
    if row.fingerprint is not None:
        raise Conflict("already_set_up", "this vault already has its first approver")
    if not _setup_token_matches(row, setup_token):
        raise await _refuse_setup(relay, now, vault, source_ip)


def _check_new_approver(approver_id: str, name: str) -> None:
    """The id and name a new browser approver's passkey is to be made for, checked strictly."""
    try:
        ids.check_id(approver_id, ids.APPROVER, what="approver_id")
    except SealboxError as exc:
        raise Invalid("malformed", exc.message) from exc
    if not 0 < len(name) <= 128:
        raise Invalid("malformed", "the name must have 1 to 128 characters")


async def _creation_options(
    relay: Relay, now: int, vault: str, purpose: str, approver_id: str, name: str, rp_id: str,
    source_ip: str | None,
) -> str:  # fmt: skip
    """Creation options (JSON text) for a passkey of ``approver_id`` (its user.id), kept as a
    challenge for ``purpose``; anyone may ask, so the anonymous budgets apply."""
    challenge = _new_challenge()
    options = webauthn.generate_registration_options(
        rp_id=rp_id, rp_name=RP_NAME, user_name=name, user_id=approver_id.encode(),
        user_display_name=name, challenge=challenge, timeout=CHALLENGE_SECONDS * 1000,
        attestation=AttestationConveyancePreference.NONE, authenticator_selection=_SELECTION,
        supported_pub_key_algs=ALGORITHMS,
    )  # fmt: skip
    row = store.Challenge(
        b64u_encode(challenge), purpose, approver_id, rp_id, now + CHALLENGE_SECONDS
    )
    await _issue(relay, now, vault, row, source_ip, anonymous=True)
    return webauthn.options_to_json(options)


async def setup_options(
    relay: Relay, now: int, *, vault: str, setup_token: str, approver_id: str, name: str,
    origin: str | None, source_ip: str | None,
) -> str:  # fmt: skip
    """Creation options (JSON text) for the first approver's passkey; user.id = its approver id."""
    rp_id = rp_id_for(relay.settings, origin)
    _check_new_approver(approver_id, name)
    await _check_setup_token(relay, now, vault, setup_token, source_ip)
    return await _creation_options(relay, now, vault, "setup", approver_id, name, rp_id,
                                   source_ip)  # fmt: skip


async def set_up(
    relay: Relay, now: int, *, vault: str, setup_token: str, link0: str,
    credential: dict[str, Any], origin: str | None, source_ip: str | None,
) -> ConsoleSetUp:  # fmt: skip
    """Set the vault up from the browser: link 0, the passkey made for its approver, a session.

    The challenge is spent first (in its own transaction); then everything
    else is one transaction: link 0 is stored, the setup token spent, the
    passkey stored, the session started, or none of it.
    """
    rp_id_for(relay.settings, origin)
    registration = _registration(credential)
    challenge = await _spend(relay, now, vault, _challenge_of(registration), "setup")
    verified = _verify_registration(relay.settings, registration, challenge)
    directory = dirs.verify_directory([link0], pinned=dirs.vault_fingerprint(link0))
    if directory.vault != vault:
        raise Invalid("wrong_vault", "link 0 names another vault")
    first = next(iter(directory.approvers.values()))
    if first.id != challenge.approver_id:
        raise Invalid(
            "approver_mismatch", "link 0 adds another approver than the passkey was made for",
            "Make the passkey and link 0 for the same approver id.",
        )  # fmt: skip
    if first.kind != "browser":
        raise Invalid("not_browser", "an approver set up from the console has kind `browser`")
    started = _new_session(first.id, now)
    refused = False
    async with relay.tx() as tx:
        row = await directory_store.lock_vault(tx.conn, vault)
        if row is None:
            raise NotFound("no_such_vault", "this relay has no such vault")
        if row.fingerprint is not None:
            raise Conflict("already_set_up", "this vault already has its first approver")
        refused = not _setup_token_matches(row, setup_token)
        if not refused:
            fingerprint = await directory_store.set_up(tx.conn, vault, link0, now)
            await store.insert_credential(tx.conn, vault, store.Credential(
                id=b64u_encode(verified.credential_id), approver_id=first.id,
                sig_pk=first.sig_pk.to_text(),
                public_key=bytes(verified.credential_public_key), sign_count=verified.sign_count,
                transports=_transports(registration), rp_id=challenge.rp_id, created_at=now,
                last_used_at=now,
            ))  # fmt: skip
            await store.insert_session(tx.conn, vault, started.token, first.id, now,
                                       started.expires_at)  # fmt: skip
            await audit.append(tx.conn, vault=vault, at=now, actor=first.id, action="vault.set_up",
                               source_ip=source_ip,
                               detail={"approver": first.id, "via": "console"})  # fmt: skip
            await audit.append(tx.conn, vault=vault, at=now, actor=first.id,
                               action="console.signed_in", source_ip=source_ip,
                               detail={"rp_id": challenge.rp_id, "setup": True})  # fmt: skip
    if refused:
        raise await _refuse_setup(relay, now, vault, source_ip)
    relay.directories.forget(vault)
    return ConsoleSetUp(vault, "sha256:" + fingerprint, directory.safety_code, started)


def _transports(registration: RegistrationCredential) -> list[str]:
    return sorted(str(t.value) for t in (registration.response.transports or []))


async def signin_options(
    relay: Relay, now: int, *, vault: str, origin: str | None, source_ip: str | None
) -> str:
    """Request options (JSON text) for signing in with any passkey of this vault on this origin."""
    rp_id = rp_id_for(relay.settings, origin)
    async with relay.read() as conn:
        await relay.directories.load(conn, vault)  # a vault that exists and is set up
    challenge = _new_challenge()
    options = webauthn.generate_authentication_options(
        rp_id=rp_id, challenge=challenge, timeout=CHALLENGE_SECONDS * 1000, allow_credentials=[],
        user_verification=UserVerificationRequirement.REQUIRED,
    )  # fmt: skip
    row = store.Challenge(b64u_encode(challenge), "signin", None, rp_id, now + CHALLENGE_SECONDS)
    await _issue(relay, now, vault, row, source_ip, anonymous=True)
    return webauthn.options_to_json(options)


def _refused(code: str, message: str) -> Unauthenticated:
    return Unauthenticated(code, message, "Sign in again with a passkey of this vault.")


async def sign_in(
    relay: Relay, now: int, *, vault: str, credential: dict[str, Any], origin: str | None,
    source_ip: str | None,
) -> Session:  # fmt: skip
    """Check a passkey assertion and start a session for the approver whose passkey it is."""
    rp_id_for(relay.settings, origin)
    # Anyone may try: each source address gets the small budget a login start gets.
    if relay.anonymous_limiter.allow(f"console-signin {source_ip or 'unknown'}"):
        raise TooMany("rate_limited", "too many sign-ins tried from this address",
                      "Wait a minute and try again.")  # fmt: skip
    assertion = _assertion(credential)
    challenge = await _spend(relay, now, vault, _challenge_of(assertion), "signin")
    async with relay.read() as conn:
        stored = await store.get_credential(conn, vault, b64u_encode(assertion.raw_id))
        directory = await relay.directories.load(conn, vault)
    if stored is None:
        raise _refused("unknown_passkey", "this passkey is not registered with the vault")
    if stored.rp_id != challenge.rp_id:
        raise _refused("unknown_passkey", "this passkey was made for another console origin")
    handle = assertion.response.user_handle
    if handle is None or not sx.constant_time_equal(
        handle.decode("utf-8", "replace"), stored.approver_id
    ):
        raise _refused("passkey_invalid", "the passkey's user handle is not its approver")
    try:
        verified = webauthn.verify_authentication_response(
            credential=assertion,
            expected_challenge=webauthn.base64url_to_bytes(challenge.challenge),
            expected_rp_id=challenge.rp_id,
            expected_origin=_origins_of(relay.settings, challenge.rp_id),
            credential_public_key=stored.public_key,
            credential_current_sign_count=stored.sign_count,
            require_user_verification=True,
        )  # fmt: skip
    except WebAuthnException as exc:
        raise _refused("passkey_invalid", f"the passkey assertion does not verify: {exc}") from exc
    member = directory.approvers.get(stored.approver_id)
    if member is None or not sx.constant_time_equal(member.sig_pk.to_text(), stored.sig_pk):
        # Not (or no longer) an approver, or not the approver the passkey was made for: a
        # passkey made with a pairing request for some id signs in only if the record an
        # approver added under that id holds the very key that request named.
        raise _refused("not_an_approver", "this passkey's approver is not in the vault")
    started = _new_session(stored.approver_id, now)
    async with relay.tx() as tx:
        if not await store.used_credential(tx.conn, vault, stored.id, old_count=stored.sign_count,
                                           new_count=verified.new_sign_count, now=now):  # fmt: skip
            raise _refused("passkey_invalid", "this passkey was used by another sign-in at once")
        await store.insert_session(tx.conn, vault, started.token, stored.approver_id, now,
                                   started.expires_at)  # fmt: skip
        await audit.append(tx.conn, vault=vault, at=now, actor=stored.approver_id,
                           action="console.signed_in", source_ip=source_ip,
                           detail={"rp_id": challenge.rp_id})  # fmt: skip
    return started


async def session(relay: Relay, now: int, *, vault: str, token: str) -> Session:
    """The live session of ``token``; raises if unknown, expired, or its approver left."""
    async with relay.read() as conn:
        row = await store.get_session(conn, vault, token)
        if row is None or row.expires_at <= now:
            raise _refused("session_invalid", "the console session is unknown or expired")
        directory = await relay.directories.load(conn, vault)
    if row.approver_id not in directory.approvers:
        # Removed from the directory: every session of that approver ends with it.
        raise _refused("session_invalid", "the console session's approver has left the vault")
    return Session(token, row.approver_id, store.csrf_for(token), row.expires_at)


async def sign_out(
    relay: Relay, now: int, *, vault: str, token: str, source_ip: str | None
) -> None:
    async with relay.tx() as tx:
        row = await store.get_session(tx.conn, vault, token)
        if await store.delete_session(tx.conn, vault, token) and row is not None:
            await audit.append(tx.conn, vault=vault, at=now, actor=row.approver_id,
                               action="console.signed_out", source_ip=source_ip)  # fmt: skip


# --- a new browser device joins by pairing ---------------------------------------------------


async def pairing_options(
    relay: Relay, now: int, *, vault: str, approver_id: str, name: str, origin: str | None,
    source_ip: str | None,
) -> str:  # fmt: skip
    """Creation options for the passkey of a browser device that asks to join (anyone may ask).

    The passkey is made for the new device's own approver id; it signs in only once an
    approver has added that exact record to the directory (see :func:`ask_to_pair`).
    """
    rp_id = rp_id_for(relay.settings, origin)
    _check_new_approver(approver_id, name)
    async with relay.read() as conn:
        directory = await relay.directories.load(conn, vault)
    if approver_id in directory.approvers:
        raise Conflict("already_approver", "this approver id is already in the directory")
    return await _creation_options(relay, now, vault, "pairing", approver_id, name, rp_id,
                                   source_ip)  # fmt: skip


async def ask_to_pair(
    relay: Relay, now: int, *, vault: str, approver: dict[str, Any], credential: dict[str, Any],
    origin: str | None, source_ip: str | None,
) -> pairing.PairingStatus:  # fmt: skip
    """A browser device asks to join: its record waits for an approver, its passkey is kept.

    The passkey must have been made (with user verification) for the record's own approver
    id, and the record must be of kind ``browser``.  The passkey is stored at once but starts
    a session only while its approver is in the directory: until an approver has compared the
    pairing code and signed the link that adds exactly this record, it signs nobody in.  An
    approver id that already has a passkey, or that a device is already asking to pair under,
    is refused; and each passkey remembers the signing key of the record it came with, so it
    signs in only if the record an approver added holds that key (:func:`sign_in`).
    """
    rp_id_for(relay.settings, origin)
    try:
        record = ApproverRecord.from_json(approver)
    except SealboxError as exc:
        raise Invalid("malformed", f"the approver record is malformed: {exc.message}") from exc
    if record.kind != "browser":
        raise Invalid("not_browser", "a device joining from the console has kind `browser`")
    registration = _registration(credential)
    challenge = await _spend(relay, now, vault, _challenge_of(registration), "pairing")
    if challenge.approver_id != record.id:
        raise Invalid(
            "approver_mismatch", "the passkey was made for another approver than this record",
            "Make the passkey and the record for the same approver id.",
        )  # fmt: skip
    verified = _verify_registration(relay.settings, registration, challenge)
    async with relay.read() as conn:
        if await store.credentials_of(conn, vault, record.id):
            raise Conflict("passkey_exists", "this approver id already has a passkey")
        waiting = await pairings.list_waiting(conn, vault, now)
    if any(p.approver.get("id") == record.id for p in waiting):
        raise Conflict("already_pairing", "a device with this approver id is already waiting")
    asked = await pairing.ask(relay, now, vault=vault, approver=approver, source_ip=source_ip)
    async with relay.tx() as tx:
        await store.insert_credential(tx.conn, vault, store.Credential(
            id=b64u_encode(verified.credential_id), approver_id=record.id,
            sig_pk=record.sig_pk.to_text(),
            public_key=bytes(verified.credential_public_key), sign_count=verified.sign_count,
            transports=_transports(registration), rp_id=challenge.rp_id, created_at=now,
            last_used_at=None,
        ))  # fmt: skip
    return asked
