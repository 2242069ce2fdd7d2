"""RFC 9421 HTTP Message Signatures for requests made with a sealbox key.

Covers ``@method``, ``@target-uri`` and, when there is a body, ``content-digest``
(RFC 9530, SHA-256), with ``created``, a random ``nonce`` and ``keyid`` = the
signer's sealbox id.  The relay refuses a signature older than five minutes or a
nonce it has seen, across restarts.
"""

from __future__ import annotations

import datetime
import secrets
from typing import Any

import http_message_signatures as hms
from http_message_signatures import algorithms

from sealbox.crypto.keys import SigningKey

__all__ = ["COVERED", "sign_request"]

COVERED = ("@method", "@target-uri")


class _OneKey(hms.HTTPSignatureKeyResolver):
    def __init__(self, key: SigningKey) -> None:
        self._pem = key.to_pem()

    def resolve_private_key(self, key_id: str) -> Any:
        return self._pem


def sign_request(
    request: Any,
    *,
    key: SigningKey,
    key_id: str,
    now: float | None = None,
    nonce: str | None = None,
) -> None:
    """Sign an ``httpx.Request`` (or anything with method, url, headers) in place."""
    body = getattr(request, "content", b"") or b""
    signer = hms.HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519, key_resolver=_OneKey(key)
    )
    created = datetime.datetime.fromtimestamp(
        now if now is not None else datetime.datetime.now(datetime.UTC).timestamp(), datetime.UTC
    )
    signer.sign(
        request,
        key_id=key_id,
        created=created,
        nonce=nonce or secrets.token_urlsafe(16),
        label="sealbox",
        tag="sealbox",
        covered_component_ids=COVERED,
        body=body if body else None,
    )
