"""Canonical byte encodings: base64url, length-prefixed tuples, canonical JSON, digests.

Every encoding here has exactly one valid form for a given value, and the
decoders reject every other form.  Accepting a second spelling of the same
value would let a relay alter the bytes of a signed or hashed object without
changing its meaning to the parser, which breaks "hash the exact bytes".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from sealbox.crypto import labels
from sealbox.errors import MalformedInput

__all__ = [
    "b64u_decode",
    "b64u_encode",
    "canonical_json",
    "digest",
    "digest_bytes",
    "length_prefixed",
    "parse_canonical_json",
    "parse_digest",
]

_B64U_ALPHABET = re.compile(r"[A-Za-z0-9_-]*")
_MAX_PART = 2**32 - 1
#: Largest integer magnitude a double (and so JavaScript, and RFC 8785) holds exactly.
MAX_SAFE_INTEGER = 2**53 - 1


def b64u_encode(data: bytes) -> str:
    """base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str, *, length: int | None = None, what: str = "value") -> bytes:
    """Decode unpadded base64url, strictly.

    Rejects padding, characters outside the URL-safe alphabet, and non-zero
    trailing bits (which would give one byte string many encodings).  With
    ``length`` the decoded value must have exactly that many bytes.
    """
    if not isinstance(text, str) or _B64U_ALPHABET.fullmatch(text) is None or len(text) % 4 == 1:
        raise MalformedInput(f"{what}: not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - the regex already excludes these
        raise MalformedInput(f"{what}: not unpadded base64url") from None
    # Non-canonical trailing bits: re-encoding must give back the same text.
    if b64u_encode(data) != text:
        raise MalformedInput(f"{what}: non-canonical base64url")
    if length is not None and len(data) != length:
        raise MalformedInput(f"{what}: expected {length} bytes, got {len(data)}")
    return data


def length_prefixed(*parts: bytes | str | int) -> bytes:
    """Unambiguous concatenation: each part as a 4-byte big-endian length, then its bytes.

    Text is UTF-8; integers are 8-byte unsigned big-endian, length-prefixed
    like the rest.  Without the prefixes ``("ab", "c")`` and ``("a", "bc")``
    would bind the same bytes, letting a blob move between contexts.

    The encoding carries no type: an integer and an 8-byte string (or bytes)
    with the same bytes collide, ``length_prefixed(1) ==
    length_prefixed("\x00" * 7 + "\x01")``.  So every structure hashed or signed
    this way must fix each position's type when it is parsed (strict parsing
    that refuses a string where an integer belongs, and the reverse), never
    hash values whose types came from untrusted input unchecked.
    """
    out = bytearray()
    for part in parts:
        if isinstance(part, bool):
            raise TypeError("length_prefixed does not encode bool")
        if isinstance(part, int):
            if not 0 <= part < 2**64:
                raise ValueError("integer part out of range")
            raw = part.to_bytes(8, "big")
        elif isinstance(part, str):
            raw = part.encode("utf-8")
        else:
            raw = bytes(part)
        if len(raw) > _MAX_PART:
            raise ValueError("part too long")
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


def digest_bytes(label: bytes, data: bytes) -> bytes:
    """SHA-256 of ``data`` under a domain-separation ``label`` (raw 32 bytes)."""
    return hashlib.sha256(length_prefixed(label, data)).digest()


def digest(label: bytes, data: bytes) -> str:
    """Text form of :func:`digest_bytes`: ``sha256:`` then unpadded base64url."""
    return labels.DIGEST_PREFIX + b64u_encode(digest_bytes(label, data))


def parse_digest(text: object, *, what: str = "digest") -> str:
    """Check that ``text`` is a digest in its one canonical text form; return it."""
    if not isinstance(text, str) or not text.startswith(labels.DIGEST_PREFIX):
        raise MalformedInput(f"{what}: not a sha256 digest")
    b64u_decode(text[len(labels.DIGEST_PREFIX) :], length=32, what=what)
    return text


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """The one serialisation of a JSON object that sealbox signs and hashes.

    Keys sorted, no insignificant white space, UTF-8.  Values are limited to
    the subset on which this serialisation and RFC 8785 (JCS) agree byte for
    byte, so any JCS library (in the browser approver, say) produces the same
    bytes: no floats; integers within +-(2^53 - 1), which JCS would write as
    doubles beyond; object keys in ASCII, where sorting by code point (ours)
    and by UTF-16 code unit (JCS) coincide.  Anything else raises TypeError.
    """
    _check_jcs_subset(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _check_jcs_subset(value: object) -> None:
    if isinstance(value, float):
        raise TypeError("floats are not allowed in sealbox statements")
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SAFE_INTEGER:
        raise TypeError("integers beyond 2^53 - 1 are not allowed in sealbox statements")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise TypeError("JSON object keys must be ASCII strings")
            _check_jcs_subset(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_jcs_subset(item)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Two parsers may keep different duplicates; signing one and acting on the other
            # is a classic confusion attack.
            raise MalformedInput("duplicate key in JSON object")
        result[key] = value
    return result


def _no_floats(_: str) -> Any:
    raise MalformedInput("floats are not allowed")


def _no_constants(_: str) -> Any:
    raise MalformedInput("NaN and Infinity are not allowed")


def parse_canonical_json(data: bytes, *, what: str = "JSON") -> dict[str, Any]:
    """Parse bytes that must be exactly :func:`canonical_json` of a JSON object.

    Rejects invalid UTF-8, duplicate keys, floats, non-objects, and any
    spelling that is not the canonical one (white space, key order, escapes).
    """
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicate_keys,
            parse_float=_no_floats,
            parse_constant=_no_constants,
        )
    except MalformedInput:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedInput(f"{what}: not valid JSON") from None
    if not isinstance(value, dict):
        raise MalformedInput(f"{what}: not a JSON object")
    try:
        canonical = canonical_json(value)
    except (TypeError, ValueError, RecursionError):
        # Outside the JCS subset (see canonical_json).  Also: a lone surrogate
        # escape (``"\\ud800"``) parses but has no UTF-8 form, and nesting just
        # under the parser's limit can exceed it when re-serialised.
        raise MalformedInput(f"{what}: not in canonical form") from None
    if canonical != data:
        raise MalformedInput(f"{what}: not in canonical form")
    return value
