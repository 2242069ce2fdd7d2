"""Per-action consent: an approver's signed yes to one action, checkable by a third party.

A client asks with a signed consent request (:func:`build_consent_request`)
carrying the action and its full details; an approver verifies it
(:func:`verify_consent_request`) and answers with :func:`answer_consent` (or a
signed deny of the request's hash).  The consent names the request it answers
in its ``scope`` (``consent-request sha256:…``), so the relay, the client and
anyone else can tell exactly which request it consents to.

A deploy tool or an MCP server that must not act without a person's approval
asks for a consent (CIBA-like), then checks it with :func:`verify_consent`
against the vault directory it pinned, the parameters it is about to act on,
and the client that asked.  The consent carries only a hash of those
parameters, so it reveals nothing the checker does not already know.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sealbox.crypto import jws, labels
from sealbox.crypto.encoding import (
    b64u_decode,
    canonical_json,
    digest,
    parse_canonical_json,
    parse_digest,
)
from sealbox.crypto.keys import SigningKey
from sealbox.errors import (
    BindingMismatch,
    DirectoryBroken,
    DirectoryFork,
    DirectoryRollback,
    Expired,
    MalformedInput,
    NotAuthorized,
)
from sealbox.protocol import ids
from sealbox.protocol._reader import Reader
from sealbox.protocol.certificates import CLOCK_SKEW, verify_chain
from sealbox.protocol.directory import MAX_LINKS, Directory, DirectoryHead, verify_directory
from sealbox.protocol.statements import (
    MAX_CONSENT_TTL,
    ClientCertificate,
    ConsentRequestStatement,
    ConsentStatement,
    sign_statement,
    verify_statement,
)

__all__ = [
    "BUNDLE_FORMAT",
    "MAX_CONSENT_TTL",
    "MAX_CONSENT_WAIT",
    "ConsentAsk",
    "VerifiedConsentRequest",
    "answer_consent",
    "build_consent_request",
    "bundle_directory",
    "check_consent_answers",
    "consent_bundle",
    "consent_details_hash",
    "consent_scope",
    "format_head",
    "issue_consent",
    "parse_bundle",
    "parse_head",
    "read_filed_request",
    "verify_consent",
    "verify_consent_bundle",
    "verify_consent_request",
]

#: Longest a consent request may wait for an answer (seconds).
MAX_CONSENT_WAIT = 3600
#: The ``format`` of the offline bundle: a consent and the directory that verifies it.
BUNDLE_FORMAT = "sealbox.consent-bundle.v1"


def consent_details_hash(details: Mapping[str, Any]) -> str:
    """The labelled hash of an action's parameters (canonical JSON of ``details``)."""
    try:
        return digest(labels.HASH_CONSENT_DETAILS, canonical_json(details))
    except (TypeError, ValueError):
        raise MalformedInput("consent details: not representable as canonical JSON") from None


def issue_consent(
    directory: Directory,
    *,
    approver: str,
    key: SigningKey,
    action: str,
    details: Mapping[str, Any],
    client: str,
    scope: str,
    now: int,
    ttl: int = 300,
) -> str:
    """Sign a consent for ``action`` with ``details``, asked for by ``client``."""
    if directory.approver(approver).sig_pk != key.verify_key():
        raise ValueError("the signing key is not this approver's directory key")
    if not 0 < ttl <= MAX_CONSENT_TTL:
        raise ValueError("ttl out of range")
    statement = ConsentStatement(
        vault=directory.vault,
        approver=approver,
        action=action,
        details=consent_details_hash(details),
        client=client,
        scope=scope,
        at=now,
        exp=now + ttl,
    )
    ConsentStatement.from_json(statement.to_json())
    return sign_statement(statement, key, approver)


def verify_consent(
    token: object,
    *,
    directory: Directory,
    action: str,
    details: Mapping[str, Any],
    client: str,
    now: int,
) -> ConsentStatement:
    """Verify that a current approver consented to exactly this action, for this client, now."""
    header = jws.read_header(token)
    signer = directory.approver(header.kid)
    consent = verify_statement(token, ConsentStatement, signer.sig_pk, signer.id)
    if consent.approver != signer.id or consent.vault != directory.vault:
        raise BindingMismatch("consent approver or vault does not match its signature")
    if consent.action != action or consent.client != client:
        raise BindingMismatch("consent is for another action or client")
    if not hmac.compare_digest(consent.details, consent_details_hash(details)):
        raise BindingMismatch("consent is for other action parameters")
    if consent.exp - consent.at > MAX_CONSENT_TTL or consent.exp < consent.at:
        raise MalformedInput("consent: validity window out of range")
    if consent.at > now + CLOCK_SKEW or now > consent.exp:
        raise Expired("consent is not valid at this time")
    return consent


def consent_scope(request_hash: str) -> str:
    """The ``scope`` of a consent given in answer to the consent request ``request_hash``."""
    return f"consent-request {request_hash}"


# --- client: ask ------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentAsk:
    """A signed consent request: its token, its statement hash (the request's name), and it."""

    token: str
    hash: str
    statement: ConsentRequestStatement


def build_consent_request(
    *,
    client: str,
    key: SigningKey,
    vault: str,
    action: str,
    details: Mapping[str, Any],
    purpose: str,
    now: int,
    ttl: int = 300,
    wait: int = 300,
) -> ConsentAsk:
    """Sign a request for consent to ``action`` with ``details``, valid ``ttl`` s once given."""
    if not 0 < wait <= MAX_CONSENT_WAIT:
        raise ValueError("wait out of range")
    statement = ConsentRequestStatement(
        jti=ids.new_id(ids.JTI, secrets.token_bytes), vault=vault, client=client, action=action,
        details=dict(details), purpose=purpose, ttl=ttl, at=now, exp=now + wait,
    )  # fmt: skip
    # Never sign what a verifier would refuse (details too big, a control character...).
    ConsentRequestStatement.from_json(json.loads(json.dumps(statement.to_json())))
    token = sign_statement(statement, key, client)
    return ConsentAsk(token=token, hash=jws.statement_hash(token), statement=statement)


# --- approver (and relay): check the request, answer it ---------------------------------------


@dataclass(frozen=True)
class VerifiedConsentRequest:
    """A consent request verified against the directory: every field is safe to show as such."""

    statement: ConsentRequestStatement
    hash: str
    certificate: ClientCertificate


def verify_consent_request(
    token: object,
    *,
    directory: Directory,
    certificate: str,
    now: int,
    enrollment: str | None = None,
) -> VerifiedConsentRequest:
    """Verify a consent request and the certificate of the client that signed it."""
    cert, _ = verify_chain(certificate, directory, now=now, enrollment=enrollment)
    header = jws.read_header(token)
    if header.kid != cert.client.id:
        raise NotAuthorized("consent request is not signed by the certified client")
    statement = verify_statement(token, ConsentRequestStatement, cert.client.sig_pk, cert.client.id)
    if statement.client != cert.client.id or statement.vault != directory.vault:
        raise BindingMismatch("consent request client or vault does not match its certificate")
    if statement.exp - statement.at > MAX_CONSENT_WAIT or statement.exp <= statement.at:
        raise MalformedInput("consent request: validity window out of range")
    if statement.at > now + CLOCK_SKEW or now > statement.exp:
        raise Expired("consent request is not valid at this time")
    assert isinstance(token, str)
    return VerifiedConsentRequest(statement, jws.statement_hash(token), cert)


def read_filed_request(token: str) -> ConsentRequestStatement:
    """The statement of a consent request that verified when it was filed, read strictly again
    (its signature is not checked again: only for the relay's own stored copy)."""
    payload = parse_canonical_json(b64u_decode(token.split(".")[1]), what="consent request")
    return ConsentRequestStatement.from_json(payload)


def answer_consent(
    verified: VerifiedConsentRequest,
    *,
    directory: Directory,
    approver: str,
    key: SigningKey,
    now: int,
    ttl: int | None = None,
) -> str:
    """Consent to a verified request: for its action, details and client, for at most its ttl."""
    s = verified.statement
    if now > s.exp:
        raise Expired("consent request expired before it was answered")
    return issue_consent(
        directory, approver=approver, key=key, action=s.action, details=s.details,
        client=s.client, scope=consent_scope(verified.hash), now=now,
        ttl=min(ttl or s.ttl, s.ttl),
    )  # fmt: skip


def check_consent_answers(
    token: object,
    *,
    directory: Directory,
    request: ConsentRequestStatement,
    request_hash: str,
    now: int,
) -> ConsentStatement:
    """Verify that ``token`` consents to exactly this request, no longer than it asked."""
    consent = verify_consent(
        token, directory=directory, action=request.action, details=request.details,
        client=request.client, now=now,
    )  # fmt: skip
    if consent.scope != consent_scope(request_hash):
        raise BindingMismatch("consent answers another consent request")
    if consent.exp - consent.at > request.ttl:
        raise BindingMismatch("consent lasts longer than was asked for")
    return consent


# --- third party: verify offline --------------------------------------------------------


def consent_bundle(token: str, directory: Directory) -> dict[str, Any]:
    """What a third party needs to verify ``token`` offline from the vault's fingerprint."""
    return {"format": BUNDLE_FORMAT, "consent": token, "directory": list(directory.tokens)}


def _link(value: object) -> str:
    if not isinstance(value, str) or not value.isascii() or len(value) > 1 << 16:
        raise MalformedInput("consent bundle.directory: expected compact JWS links")
    return value


def parse_bundle(value: object) -> tuple[str, tuple[str, ...]]:
    """(consent token, directory links) of a bundle, read strictly (nothing verified yet)."""
    r = Reader(value, "consent bundle")
    if r.raw("format") != BUNDLE_FORMAT:
        raise MalformedInput(f"consent bundle: format is not {BUNDLE_FORMAT}")
    token = r.raw("consent")
    if not isinstance(token, str) or not token.isascii() or len(token) > 1 << 16:
        raise MalformedInput("consent bundle.consent: expected a compact JWS")
    links = tuple(r.items("directory", _link, max_len=MAX_LINKS))
    r.done()
    return token, links


def format_head(head: DirectoryHead) -> str:
    """A directory head as a verifier writes it down: ``SEQ:sha256:…``."""
    return f"{head.seq}:{head.hash}"


def parse_head(text: object) -> DirectoryHead:
    """A known directory head, ``SEQ:sha256:…`` (the statement hash of link ``SEQ``)."""
    seq, _, hash_ = text.partition(":") if isinstance(text, str) else ("", "", "")
    if not (seq.isascii() and seq.isdigit() and len(seq) <= 5 and int(seq) < MAX_LINKS):
        raise MalformedInput("directory head: expected SEQ:sha256:… (a link number, its hash)")
    if seq != str(int(seq)):
        raise MalformedInput("directory head: the link number has leading zeros")
    return DirectoryHead(seq=int(seq), hash=parse_digest(hash_, what="directory head"))


def _holds_head(tokens: tuple[str, ...], head: DirectoryHead) -> None:
    """Refuse a chain that ends before ``head`` or has another link at its place."""
    if head.seq >= len(tokens):
        raise DirectoryRollback(
            f"the directory has {len(tokens)} link(s); a newer one (link {head.seq}) is known"
        )
    if not hmac.compare_digest(jws.statement_hash(tokens[head.seq]), head.hash):
        raise DirectoryFork(f"link {head.seq} differs from the known directory head")


def bundle_directory(
    links: tuple[str, ...],
    *,
    fingerprint: str,
    current: Directory | None = None,
    head: DirectoryHead | None = None,
) -> Directory:
    """The directory a bundle's consent is checked against.

    Alone, the bundle's own ``links``, verified from ``fingerprint``: whoever built
    the bundle chose where they end, so a removal after that end is not seen.
    With ``head`` (a head the verifier already knows, e.g. from an earlier
    bundle or from the relay), the chain must reach it and hold that exact link
    there (:class:`DirectoryRollback` / :class:`DirectoryFork`).  With
    ``current`` (the directory the verifier fetched and verified itself), the
    consent is checked against that one, and the bundle's links must be a prefix
    of it.
    """
    if current is None:
        return verify_directory(links, pinned=fingerprint, cached_head=head)
    if not hmac.compare_digest(current.fingerprint, fingerprint):
        raise DirectoryBroken("the directory fetched is not the pinned vault's")
    if head is not None:
        _holds_head(current.tokens, head)
    if len(links) > len(current.tokens):
        raise DirectoryRollback(
            f"the bundle carries {len(links)} directory link(s), the directory fetched only "
            f"{len(current.tokens)}: the relay is serving an older directory"
        )
    for seq, (carried, fetched) in enumerate(zip(links, current.tokens, strict=False)):
        if carried != fetched:
            raise DirectoryFork(f"the bundle's directory link {seq} differs from the vault's")
    return current


def verify_consent_bundle(
    bundle: object,
    *,
    fingerprint: str,
    action: str,
    details: Mapping[str, Any],
    client: str,
    now: int,
    current: Directory | None = None,
    head: DirectoryHead | None = None,
) -> ConsentStatement:
    """Verify a bundle: the directory (:func:`bundle_directory`: the bundle's own links from
    the pinned ``fingerprint``, or ``current``, and reaching ``head`` if given), then the
    consent against that directory, this action, these details and this client, at ``now``."""
    token, links = parse_bundle(bundle)
    directory = bundle_directory(links, fingerprint=fingerprint, current=current, head=head)
    return verify_consent(
        token, directory=directory, action=action, details=details, client=client, now=now
    )
