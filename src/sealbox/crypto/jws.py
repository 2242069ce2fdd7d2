"""Signed statements: JWS compact serialisation (RFC 7515), ``alg`` EdDSA (RFC 8037).

Written on the Ed25519 primitive rather than through a JOSE library because
sealbox needs less than a library accepts: exactly one algorithm, exactly one
header (``{"alg":"EdDSA","kid":…,"typ":…}``, canonical JSON), no ``crit``, no
JWK embedding, no unencoded payloads.  Anything else is rejected before the
signature is even looked at, which closes algorithm-confusion and header
injection outright.  The tests verify our tokens with joserfc and PyJWT and
check that ours verifies theirs, so the format stays standard JWS.

Verification checks the exact received bytes, then parses: the payload must
be canonical JSON (see :mod:`sealbox.crypto.encoding`), so no two byte
strings carry the same statement.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sealbox.crypto import labels
from sealbox.crypto.encoding import (
    b64u_decode,
    b64u_encode,
    canonical_json,
    digest,
    parse_canonical_json,
)
from sealbox.crypto.keys import SIGNATURE_BYTES, SigningKey, VerifyKey
from sealbox.errors import MalformedInput, SignatureInvalid

__all__ = ["MAX_JWS_CHARS", "UnverifiedHeader", "read_header", "sign", "statement_hash", "verify"]

#: Upper bound on a compact JWS sealbox will look at.  Statements are small;
#: the bound keeps a hostile peer from making us parse megabytes.
MAX_JWS_CHARS = 1 << 20

ALG = "EdDSA"
#: A signer is named by a sealbox id: three-letter kind, "_", 26 base32 characters.
_KID = re.compile(r"[a-z]{3}_[a-z2-7]{26}")


@dataclass(frozen=True)
class UnverifiedHeader:
    """The protected header of a token that has NOT been verified yet.

    Only for choosing which key to verify with (by ``kid``) and which parser
    to use (by ``typ``); never act on anything else before :func:`verify`.
    """

    typ: str
    kid: str


def _header_bytes(typ: str, kid: str) -> bytes:
    return canonical_json({"alg": ALG, "kid": kid, "typ": typ})


def sign(key: SigningKey, typ: str, kid: str, payload: Mapping[str, Any]) -> str:
    """Sign ``payload`` as a statement of type ``typ`` by the key named ``kid``."""
    if typ not in labels.ALL_STATEMENT_TYPES:
        raise ValueError(f"unknown statement type {typ!r}")
    signing_input = (
        b64u_encode(_header_bytes(typ, kid)) + "." + b64u_encode(canonical_json(payload))
    )
    signature = key.sign(signing_input.encode("ascii"))
    return signing_input + "." + b64u_encode(signature)


def _split(token: object) -> tuple[str, str, str]:
    if not isinstance(token, str):
        raise MalformedInput("statement: expected a compact JWS string")
    if len(token) > MAX_JWS_CHARS:
        raise MalformedInput("statement: too large")
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedInput("statement: expected three dot-separated parts")
    return parts[0], parts[1], parts[2]


def read_header(token: object) -> UnverifiedHeader:
    """Parse the protected header strictly, without verifying anything."""
    header_b64, _, _ = _split(token)
    header = parse_canonical_json(b64u_decode(header_b64, what="JWS header"), what="JWS header")
    if set(header) != {"alg", "kid", "typ"}:
        # No crit, jwk, x5u, b64 or any other parameter: each of them changes
        # how a verifier should treat the token, and sealbox wants none of that.
        raise MalformedInput("JWS header: must have exactly alg, kid and typ")
    if header["alg"] != ALG:
        raise MalformedInput("JWS header: alg must be EdDSA")
    typ, kid = header["typ"], header["kid"]
    if not isinstance(typ, str) or typ not in labels.ALL_STATEMENT_TYPES:
        raise MalformedInput("JWS header: unknown statement type")
    if not isinstance(kid, str) or _KID.fullmatch(kid) is None:
        # The kid is read before any signature check and ends up in error
        # messages and logs: only the short, plain form of a sealbox id passes.
        raise MalformedInput("JWS header: kid must be a sealbox identifier")
    return UnverifiedHeader(typ=typ, kid=kid)


def verify(token: object, key: VerifyKey, *, typ: str, kid: str) -> dict[str, Any]:
    """Verify ``token`` as a ``typ`` statement signed by ``key`` under ``kid``; return its payload.

    Raises :class:`MalformedInput` for anything not in the one canonical
    form, and :class:`SignatureInvalid` for a wrong type, a wrong ``kid`` or a
    signature that does not verify.  Never returns a boolean.
    """
    header = read_header(token)
    header_b64, payload_b64, signature_b64 = _split(token)
    if header.typ != typ:
        # A valid signature on another statement type must not be accepted
        # here: the same key signs several kinds of statement.
        raise SignatureInvalid(f"statement type is {header.typ}, expected {typ}")
    if header.kid != kid:
        raise SignatureInvalid("statement kid does not name the expected signer")
    signature = b64u_decode(signature_b64, length=SIGNATURE_BYTES, what="JWS signature")
    # Decoded before the signature check so that the signing input is known to be
    # base64url (hence ASCII); parsed only after it verifies.
    payload = b64u_decode(payload_b64, what="JWS payload")
    key.verify(signature, f"{header_b64}.{payload_b64}".encode("ascii"))
    return parse_canonical_json(payload, what="JWS payload")


def statement_hash(token: str) -> str:
    """The hash that names a statement: over the exact compact JWS characters."""
    _split(token)
    try:
        raw = token.encode("ascii")
    except UnicodeEncodeError:
        raise MalformedInput("statement: not ASCII") from None
    return digest(labels.HASH_STATEMENT, raw)
