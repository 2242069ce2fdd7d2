"""Per-action consent: an approver's signed yes to one action, checkable by a third party.

A deploy tool or an MCP server that must not act without a person's approval
asks for a consent (CIBA-like), then checks it with :func:`verify_consent`
against the vault directory it pinned, the parameters it is about to act on,
and the client that asked.  The consent carries only a hash of those
parameters, so it reveals nothing the checker does not already know.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from sealbox.crypto import jws, labels
from sealbox.crypto.encoding import canonical_json, digest
from sealbox.crypto.keys import SigningKey
from sealbox.errors import BindingMismatch, Expired, MalformedInput
from sealbox.protocol.certificates import CLOCK_SKEW
from sealbox.protocol.directory import Directory
from sealbox.protocol.statements import ConsentStatement, sign_statement, verify_statement

__all__ = ["MAX_CONSENT_TTL", "consent_details_hash", "issue_consent", "verify_consent"]

#: Longest a consent may stay valid (seconds): it approves one action, soon.
MAX_CONSENT_TTL = 3600


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
