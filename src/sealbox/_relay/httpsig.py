"""RFC 9421 HTTP Message Signatures for requests made with a sealbox key.

Covers ``@method``, ``@target-uri`` and, when there is a body, ``content-digest``
(RFC 9530, SHA-256), with ``created``, a random ``nonce`` and ``keyid`` = the
signer's sealbox id.  The relay refuses a signature older than five minutes or a
nonce it has seen, across restarts.

The signature base is written here directly rather than through a general
RFC 9421 library: a request signs only these fixed components and parameters,
and the library's general machinery (Structured Field serialisation of every
part, a PEM key loaded per request) cost an automated approver more CPU than
all the cryptography of a release.  What is signed is the same bytes, in the
same order, as ``http_message_signatures`` produces (a unit test holds the two
equal), and the relay verifies it with that library.  Every value put in the
base or the headers is checked to be one the format can carry unescaped, so
nothing here can produce a base the verifier would read differently.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from typing import Any

from sealbox.crypto.keys import SigningKey

__all__ = ["COVERED", "LABEL", "sign_request", "signer"]

COVERED = ("@method", "@target-uri")
LABEL = "sealbox"
ALGORITHM = "ed25519"
#: A Structured Field String we write unescaped: printable ASCII without ``"`` or ``\``.
_PLAIN_STRING = re.compile(r"[ !#-\[\]-~]*")
#: An HTTP method token (RFC 9110), upper case as RFC 9421 requires.
_METHOD = re.compile(r"[A-Z]+")


def _sf_string(value: str, what: str) -> str:
    # Escaping would be correct too; refusing keeps the base trivially unambiguous,
    # and every id and nonce sealbox makes is plain.
    if not _PLAIN_STRING.fullmatch(value):
        raise ValueError(f"{what} cannot be signed: not plain printable ASCII")
    return f'"{value}"'


def _derived(value: str, what: str) -> str:
    # RFC 9421 2.2: a derived component is printable, with no surrounding whitespace;
    # a newline would let a value forge a line of the base.
    if not value.isascii() or not value.isprintable() or value != value.strip():
        raise ValueError(f"{what} cannot be signed: not printable ASCII")
    return value


def _target_uri(url: Any) -> str:
    """RFC 9421 ``@target-uri``: the target as it goes on the wire (RFC 9110 §7.1).

    Scheme, host and port, then the path and query exactly as sent; never the
    userinfo or a fragment (neither is sent), and no ``?`` before an empty query
    (the relay cannot tell one was there).
    """
    raw = getattr(url, "raw_path", None)
    if raw is None:  # not an httpx.URL: the text as given
        return str(url)
    target = raw.decode("ascii").removesuffix("?")
    # netloc is host and port (IPv6 in brackets), without the userinfo.
    return f"{url.scheme}://{url.netloc.decode('ascii')}{target}"


def sign_request(
    request: Any,
    *,
    key: SigningKey,
    key_id: str,
    now: float | None = None,
    nonce: str | None = None,
) -> None:
    """Sign an ``httpx.Request`` (or anything with method, url, headers, content) in place."""
    body = getattr(request, "content", b"") or b""
    method = str(request.method)
    if not _METHOD.fullmatch(method):
        raise ValueError("the request method cannot be signed")
    created = int(now if now is not None else time.time())
    components = ['"@method"', '"@target-uri"']
    lines = [
        f'"@method": {method}',
        f'"@target-uri": {_derived(_target_uri(request.url), "the URL")}',
    ]
    if body:
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")
        request.headers["Content-Digest"] = f"sha-256=:{digest}:"
        components.append('"content-digest"')
        lines.append(f'"content-digest": sha-256=:{digest}:')
    params = (
        f"({' '.join(components)});created={created}"
        f';keyid={_sf_string(key_id, "the key id")};alg="{ALGORITHM}"'
        f";nonce={_sf_string(nonce or secrets.token_urlsafe(16), 'the nonce')}"
        f';tag="{LABEL}"'
    )
    lines.append(f'"@signature-params": {params}')
    signature = key.sign("\n".join(lines).encode("ascii"))
    request.headers["Signature-Input"] = f"{LABEL}={params}"
    request.headers["Signature"] = f"{LABEL}=:{base64.b64encode(signature).decode('ascii')}:"


def signer(key: SigningKey, key_id: str) -> Any:
    """A driver's ``authorize``: sign each request with ``key`` as ``key_id``."""

    def authorize(request: Any) -> None:
        sign_request(request, key=key, key_id=key_id)

    return authorize
