"""JSON Web Tokens signed with Ed25519 (RFC 7519, ``alg`` EdDSA of RFC 8037): client assertions.

An agent authenticates to the token endpoint with a JWT it signs with its own
key (RFC 7523 §2.2, ``private_key_jwt``).  Unlike sealbox statements
(:mod:`.jws`), these come from any JOSE library a CI tool or an agent
framework happens to use, so the payload is ordinary JSON, not canonical, and
the header may carry ``typ`` and ``kid``.

Verification is written here on the Ed25519 primitive rather than through a
JOSE library.  The relay needs exactly one algorithm and one key per client,
and a library that accepts several algorithms and header-embedded keys
(``jwk``, ``x5c``, ``jku``) is the classic source of algorithm-confusion and
key-injection bugs; authlib's JOSE module is also deprecated (in favour of
joserfc, which sealbox does not ship), and the project's one importer of pyca
is :mod:`sealbox.crypto`.  Anything but ``{alg: EdDSA | Ed25519[, typ:
JWT][, kid]}`` is refused before the signature is looked at (``Ed25519`` is
RFC 9864's fully-specified name for the same algorithm with this key type).
The tests sign assertions with joserfc and PyJWT and check that the relay
accepts them, and verify ours with both, so the format stays standard.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sealbox.crypto.encoding import b64u_decode, b64u_encode
from sealbox.crypto.keys import SIGNATURE_BYTES, SigningKey, VerifyKey
from sealbox.errors import MalformedInput

__all__ = ["MAX_JWT_CHARS", "read_jwt", "sign_jwt", "verify_jwt"]

#: Longest assertion looked at: real ones are a few hundred characters.
MAX_JWT_CHARS = 4096
_HEADER_NAMES = frozenset({"alg", "typ", "kid"})
_ALGS = frozenset({"EdDSA", "Ed25519"})


def sign_jwt(key: SigningKey, claims: Mapping[str, Any], *, kid: str | None = None) -> str:
    """A compact JWT over ``claims``, signed EdDSA with ``key``."""
    header: dict[str, str] = {"alg": "EdDSA", "typ": "JWT"}
    if kid is not None:
        header["kid"] = kid
    signing_input = (
        b64u_encode(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64u_encode(json.dumps(dict(claims), separators=(",", ":")).encode())
    )
    return signing_input + "." + b64u_encode(key.sign(signing_input.encode("ascii")))


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            # Two values for one claim: which one a verifier reads is library-dependent,
            # the textbook way to make two parties disagree about one token.
            raise MalformedInput(f"JWT: member {name!r} appears twice")
        out[name] = value
    return out


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError):
        raise MalformedInput(f"JWT: the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedInput(f"JWT: the {what} is not a JSON object")
    return value


def read_jwt(token: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a JWT, NOT verified: only to learn whose key verifies it."""
    if not isinstance(token, str) or len(token) > MAX_JWT_CHARS:
        raise MalformedInput("JWT: expected a compact JWT of at most 4096 characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedInput("JWT: expected three dot-separated parts")
    header = _json_object(b64u_decode(parts[0], what="JWT header"), "header")
    if not set(header) <= _HEADER_NAMES:
        # No crit, jwk, jku, x5c, x5u, b64, cty: each changes how the token is to be
        # verified or whose key verifies it, and the relay takes the key from its own records.
        raise MalformedInput("JWT: the header may carry only alg, typ and kid")
    if header.get("alg") not in _ALGS:
        # Only Ed25519: "none", HMAC with the public key as secret, and RSA/EC
        # confusions are all refused by name before anything else happens.
        raise MalformedInput("JWT: alg must be EdDSA (or Ed25519)")
    typ = header.get("typ")
    if typ is not None and (not isinstance(typ, str) or typ.upper() != "JWT"):
        raise MalformedInput("JWT: typ, if given, must be JWT")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or len(kid) > 200):
        raise MalformedInput("JWT: kid must be short text")
    claims = _json_object(b64u_decode(parts[1], what="JWT payload"), "payload")
    b64u_decode(parts[2], length=SIGNATURE_BYTES, what="JWT signature")
    return header, claims


def verify_jwt(token: object, key: VerifyKey) -> dict[str, Any]:
    """The claims of ``token`` if ``key`` signed it; raises, never returns a bool.

    Checks only the form and the signature: what the claims must say (issuer,
    audience, times, single use) is the caller's to check.
    """
    _, claims = read_jwt(token)
    assert isinstance(token, str)
    header_b64, payload_b64, signature_b64 = token.split(".")
    signature = b64u_decode(signature_b64, length=SIGNATURE_BYTES, what="JWT signature")
    key.verify(signature, f"{header_b64}.{payload_b64}".encode("ascii"))
    return claims
