"""Per-action consent for clients, and its offline check for third parties.

A client (a person's profile, an agent, a machine identity) asks the vault's
approvers to consent to one action with :func:`consent_flow` (driven by
``Client.request_consent``): it signs a consent request carrying the action
and its full details, waits, and verifies the consent it gets against its
pinned directory before returning a :class:`ConsentGrant`.

A third party (a deploy tool, an MCP server, a CI gate) checks a grant with
:func:`verify_grant`: given the vault's pinned fingerprint and the action,
details and client it is about to act for, it verifies the directory chain in
the bundle from that fingerprint and the consent against it.  Offline, the
bundle's directory ends where whoever built the bundle chose, so an approver's
later removal is not seen; a verifier that must see removals passes
``relay=`` (the vault's current directory is fetched and verified from the
same fingerprint, and the consent checked against it) or ``head=`` (a
directory head it already knows, which the bundle's chain must reach).  The
consent itself is a standard compact JWS (EdDSA, Ed25519), so any JOSE library
verifies its signature with the approver's key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sealbox._relay.calls import Call, Flow
from sealbox._relay.calls import expect_object as _object
from sealbox._relay.calls import field as _get
from sealbox._relay.directory import DirectoryView
from sealbox._relay.directory import directory_flow as _current_directory_flow
from sealbox._relay.drive import SyncDriver, http_client
from sealbox.client._flows import (
    EXPIRY_SLACK,
    POLL_SECONDS,
    ClientState,
    OnWait,
    WaitState,
    _withdraw,
    directory_flow,
)
from sealbox.errors import (
    BindingMismatch,
    Cancelled,
    Denied,
    MalformedInput,
    RefusedByApprover,
    RelayRefused,
    RequestExpired,
    VerificationError,
)
from sealbox.protocol import directory as dirs
from sealbox.protocol.access import verify_deny
from sealbox.protocol.consent import (
    BUNDLE_FORMAT,
    ConsentAsk,
    build_consent_request,
    bundle_directory,
    check_consent_answers,
    consent_details_hash,
    parse_bundle,
    parse_head,
    verify_consent,
)
from sealbox.protocol.statements import DENY_UNVERIFIABLE, ConsentStatement

__all__ = [
    "BUNDLE_FORMAT",
    "ConsentGrant",
    "GrantCheck",
    "check_grant",
    "consent_flow",
    "fetch_directory",
    "load_bundle",
    "verify_grant",
]

#: How long a consent request waits for an approver (the statement's validity).
CONSENT_WAIT = 300


@dataclass(frozen=True)
class ConsentGrant:
    """An approver's verified consent to one action, and what verifies it offline."""

    token: str
    """The consent: a compact JWS of type ``sealbox.consent.v1``, signed with EdDSA."""
    request: str
    """The consent request's id (what the relay's audit names)."""
    vault: str
    fingerprint: str
    """The vault's pinned fingerprint: what a third party verifies the bundle from."""
    client: str
    action: str
    details_hash: str
    approver: str
    """The approver that consented (verified against the directory)."""
    at: int
    expires_at: int
    directory: tuple[str, ...] = field(repr=False)
    """The directory links (compact JWS) that verify the approver's key from link 0."""

    def bundle(self) -> dict[str, Any]:
        """The offline bundle: ``{"format", "consent", "directory"}`` (see docs/protocol.md)."""
        return {"format": BUNDLE_FORMAT, "consent": self.token, "directory": list(self.directory)}

    def bundle_json(self) -> str:
        return json.dumps(self.bundle(), separators=(",", ":"))


def consent_flow(
    state: ClientState,
    action: str,
    details: Mapping[str, Any],
    *,
    purpose: str,
    ttl: int = 300,
    on_wait: OnWait | None = None,
    wait: int = CONSENT_WAIT,
) -> Flow:
    """Ask for consent to ``action`` with ``details``; wait; verify the consent; return it."""
    if not isinstance(details, Mapping):
        raise MalformedInput("consent details must be a JSON object",
                             hint="Pass the action's parameters as a mapping.")  # fmt: skip
    consent_details_hash(details)  # refuses what cannot be hashed, before anything is asked
    directory = yield from directory_flow(state)
    try:
        ask = build_consent_request(
            client=state.client_id, key=state.key, vault=state.vault, action=action,
            details=details, purpose=purpose, now=int(state.clock()), ttl=ttl, wait=wait,
        )  # fmt: skip
    except ValueError as exc:
        raise MalformedInput(f"consent request: {exc}",
                             hint="Give a ttl of 1 to 3600 seconds.") from None  # fmt: skip
    base = f"{state.base}/consent-requests"
    body = _object((yield Call("POST", base, {"statement": ask.token})), "asking for consent",
                   status=201)  # fmt: skip
    request_id = ask.hash.removeprefix("sha256:")
    if body.get("id") != request_id:
        raise BindingMismatch("the relay filed the consent request under another id")
    status = yield from _wait(state, f"{base}/{request_id}", request_id, ask.statement.exp,
                              on_wait)  # fmt: skip
    name = status["state"]
    if name in ("consented", "delivered"):
        token = _get(status, "consent", str, "taking the consent")
        consent = yield from _check(state, ask, token, directory)
        directory = yield from directory_flow(state)
        return ConsentGrant(
            token=token, request=request_id, vault=state.vault, fingerprint=state.fingerprint,
            client=state.client_id, action=consent.action, details_hash=consent.details,
            approver=consent.approver, at=consent.at, expires_at=consent.exp,
            directory=tuple(directory.tokens),
        )  # fmt: skip
    if name == "denied":
        token = status.get("deny")
        reason = "no reason given"
        if isinstance(token, str):
            deny = verify_deny(token, directory=directory, request_hash=ask.hash)
            if deny.grounds == DENY_UNVERIFIABLE:
                # Signed by the approver, so the relay cannot fake it: what the approver was
                # shown is not what this client signed (as for access requests).
                raise RefusedByApprover(
                    f"approver {deny.approver} refused the consent request because what it "
                    f"was shown does not verify ({deny.reason!r}): the relay, or something "
                    "between this client and the relay, may be tampering with requests"
                )
            reason = f"{deny.reason!r} (signed by approver {deny.approver})"
        raise Denied(f"an approver refused consent: {reason}")
    if name == "expired":
        raise RequestExpired("no approver answered before the consent request expired")
    if name == "cancelled":
        raise Cancelled("the consent request was cancelled")
    raise RelayRefused(f"the consent request is {name}; no consent was given")


def _check(state: ClientState, ask: ConsentAsk, token: str, directory: dirs.Directory) -> Flow:
    """The consent, verified against the directory (fetched again once if its signer is new)."""
    now = int(state.clock())
    try:
        return check_consent_answers(token, directory=directory, request=ask.statement,
                                     request_hash=ask.hash, now=now)  # fmt: skip
    except VerificationError:
        newer = yield from directory_flow(state, fresh=True)
        if newer.head == directory.head:
            raise
        return check_consent_answers(token, directory=newer, request=ask.statement,
                                     request_hash=ask.hash, now=now)  # fmt: skip


def _wait(state: ClientState, url: str, request_id: str, exp: int, on_wait: OnWait | None) -> Flow:
    """Long-poll the consent request until it leaves ``pending``; withdraw it if the wait ends
    any other way (Ctrl-C, an error), so no approver answers a process that stopped waiting."""
    try:
        while True:
            if on_wait is not None:
                on_wait(WaitState(request_id, "consent", (), 0, 1, exp))
            left = exp - state.clock()
            if left < -EXPIRY_SLACK:
                raise RequestExpired("no approver answered before the consent request expired")
            wait = max(1, min(POLL_SECONDS, int(left) + 3))
            reply = yield Call("GET", f"{url}?wait={wait}", timeout=wait + 15,
                               until=exp + EXPIRY_SLACK)  # fmt: skip
            status = _object(reply, "waiting for consent")
            if _get(status, "state", str, "waiting for consent") != "pending":
                return status
    except GeneratorExit:
        raise
    except RequestExpired:
        raise
    except BaseException:
        yield from _withdraw(state, "consent", url)
        raise


# --- third parties: offline ------------------------------------------------------------------


def load_bundle(text: str | bytes) -> dict[str, Any]:
    """A bundle's JSON text as an object (nothing verified yet)."""
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError):
        raise MalformedInput(
            "the consent bundle is not JSON", hint="Pass the file `sealbox consent request` wrote."
        ) from None
    if not isinstance(value, dict):
        raise MalformedInput("the consent bundle is not a JSON object")
    return value


@dataclass(frozen=True)
class GrantCheck:
    """A consent that verified, and the head of the directory it was verified against."""

    consent: ConsentStatement
    head: dirs.DirectoryHead
    """Keep it (``SEQ:sha256:…``) to refuse, later, bundles whose directory is older."""


def fetch_directory(
    relay: str, *, vault: str, fingerprint: str, head: dirs.DirectoryHead | None = None
) -> dirs.Directory:
    """The vault's current directory from ``relay``, verified from the pinned ``fingerprint``
    (and, given ``head``, refused if shorter than it or forked from it).  A relay can still
    withhold links newer than anything the caller knows (see docs/threat-model.md)."""
    view = DirectoryView(vault=vault, fingerprint=fingerprint, head=head)
    with http_client(relay) as http:
        directory: dirs.Directory = SyncDriver(http, relay).drive(
            _current_directory_flow(view, fresh=True)
        )
    return directory


def check_grant(
    bundle: str | bytes | Mapping[str, Any] | ConsentGrant,
    *,
    fingerprint: str,
    action: str,
    details: Mapping[str, Any],
    client: str,
    now: int | None = None,
    relay: str | None = None,
    head: dirs.DirectoryHead | str | None = None,
) -> GrantCheck:
    """:func:`verify_grant`, also returning the directory head it verified against."""
    if isinstance(bundle, ConsentGrant):
        value: object = bundle.bundle()
    elif isinstance(bundle, str | bytes):
        value = load_bundle(bundle)
    else:
        value = dict(bundle)
    known = parse_head(head) if isinstance(head, str) else head
    token, links = parse_bundle(value)
    current = None
    if relay is not None:
        # The bundle's own chain, verified offline, names the vault whose directory to fetch.
        carried = bundle_directory(links, fingerprint=fingerprint)
        current = fetch_directory(relay, vault=carried.vault, fingerprint=fingerprint, head=known)
    directory = bundle_directory(links, fingerprint=fingerprint, current=current, head=known)
    consent = verify_consent(
        token, directory=directory, action=action, details=details, client=client,
        now=int(time.time()) if now is None else now,
    )  # fmt: skip
    return GrantCheck(consent, directory.head)


def verify_grant(
    bundle: str | bytes | Mapping[str, Any] | ConsentGrant,
    *,
    fingerprint: str,
    action: str,
    details: Mapping[str, Any],
    client: str,
    now: int | None = None,
    relay: str | None = None,
    head: dirs.DirectoryHead | str | None = None,
) -> ConsentStatement:
    """Verify a consent; return it, or raise a :class:`~sealbox.errors.SealboxError`.

    ``fingerprint`` is the vault's pinned fingerprint (``sha256:…``, as
    ``sealbox whoami`` shows it); ``action``, ``details`` and ``client`` are
    what the caller is about to act on, not what the bundle says.

    Offline (neither ``relay`` nor ``head``) the directory is the bundle's own:
    a consent signed by an approver removed after the bundle's last link still
    verifies until its ``exp``, and a bundle built with its links cut short
    hides the removal for good.  ``relay`` (a relay URL): the vault's current
    directory is fetched, verified from ``fingerprint``, and the consent is
    checked against it; the bundle's links must be a prefix of it.  ``head``
    (``SEQ:sha256:…`` or a :class:`~sealbox.protocol.directory.DirectoryHead`,
    e.g. :attr:`GrantCheck.head` of an earlier check): the directory must
    reach that link and hold exactly it.

    Raises :class:`~sealbox.errors.VerificationError` (``BindingMismatch`` for
    other action, details or client; ``Expired``; ``NotAuthorized`` for an
    approver not in the directory; ``DirectoryBroken`` for another vault or a
    tampered directory, ``DirectoryRollback`` / ``DirectoryFork`` for one older
    than or forked from what is known; ``SignatureInvalid``),
    :class:`~sealbox.errors.MalformedInput`, or, with ``relay``,
    :class:`~sealbox.errors.RelayUnreachable` and the relay's refusals.
    """
    return check_grant(
        bundle, fingerprint=fingerprint, action=action, details=details, client=client,
        now=now, relay=relay, head=head,
    ).consent  # fmt: skip
