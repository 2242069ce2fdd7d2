"""Identifiers, item paths, field names and ``sealbox://`` references, strictly parsed.

Every identifier is a kind prefix and 26 lowercase base32 characters (128
random bits).  The prefix says what kind of object an id names, so an
approver id can never be passed off as a client id.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from typing import Final

from sealbox.crypto.keys import RandomBytes
from sealbox.errors import MalformedInput

__all__ = [
    "APPROVER",
    "CLIENT",
    "ENROLLMENT",
    "ITEM",
    "JTI",
    "VAULT",
    "Reference",
    "check_field_name",
    "check_id",
    "check_path",
    "new_id",
    "parse_reference",
]

VAULT: Final = "vlt"
APPROVER: Final = "apv"
CLIENT: Final = "cli"
ENROLLMENT: Final = "enr"
ITEM: Final = "itm"
JTI: Final = "jti"
_KINDS = frozenset({VAULT, APPROVER, CLIENT, ENROLLMENT, ITEM, JTI})

_ID = re.compile(r"(vlt|apv|cli|enr|itm|jti)_[a-z2-7]{26}")
# One path segment or field name: starts with a letter or digit; at most 64
# characters; no "/", no "..", no white space, nothing a shell or URL must quote.
_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
REFERENCE_SCHEME: Final = "sealbox://"


def new_id(kind: str, random: RandomBytes = secrets.token_bytes) -> str:
    """A fresh identifier of ``kind`` (one of the constants above)."""
    if kind not in _KINDS:
        raise ValueError(f"unknown id kind {kind!r}")
    raw = random(16)
    if len(raw) != 16:
        raise ValueError("random source returned the wrong length")
    return f"{kind}_" + base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def check_id(value: object, kind: str, *, what: str = "id") -> str:
    """Return ``value`` if it is an identifier of ``kind``; raise :class:`MalformedInput`."""
    if not isinstance(value, str) or _ID.fullmatch(value) is None or value[:3] != kind:
        raise MalformedInput(f"{what}: expected a {kind}_ identifier")
    return value


def _check_segment(value: object, what: str) -> str:
    if not isinstance(value, str) or _SEGMENT.fullmatch(value) is None:
        raise MalformedInput(f"{what}: letters, digits, '.', '_' and '-' only, 1 to 64 characters")
    return value


def check_field_name(value: object) -> str:
    return _check_segment(value, "field name")


def check_path(value: object) -> str:
    """An item path ``project/environment/item``: exactly three segments."""
    if not isinstance(value, str):
        raise MalformedInput("item path: expected text")
    parts = value.split("/")
    if len(parts) != 3:
        raise MalformedInput("item path: expected project/environment/item")
    for part in parts:
        _check_segment(part, "item path segment")
    return value


@dataclass(frozen=True)
class Reference:
    """A parsed ``sealbox://project/environment/item[/field]`` reference."""

    path: str
    """``project/environment/item``."""
    field: str | None
    """The one field asked for, or ``None`` for the whole item."""

    def __str__(self) -> str:
        suffix = f"/{self.field}" if self.field is not None else ""
        return f"{REFERENCE_SCHEME}{self.path}{suffix}"


def parse_reference(text: object) -> Reference:
    """Parse a ``sealbox://`` reference; raise :class:`MalformedInput` on anything else."""
    if not isinstance(text, str) or not text.startswith(REFERENCE_SCHEME):
        raise MalformedInput("reference: expected sealbox://project/environment/item[/field]")
    parts = text[len(REFERENCE_SCHEME) :].split("/")
    if len(parts) not in (3, 4):
        raise MalformedInput("reference: expected sealbox://project/environment/item[/field]")
    path = check_path("/".join(parts[:3]))
    field = check_field_name(parts[3]) if len(parts) == 4 else None
    return Reference(path=path, field=field)
