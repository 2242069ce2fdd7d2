"""Identifiers, item paths, field names and ``sealbox://`` references, strictly parsed.

Every identifier is a kind prefix and 26 lowercase base32 characters (128
random bits).  The prefix says what kind of object an id names, so an
approver id can never be passed off as a client id.
"""

from __future__ import annotations

import base64
import re
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Final

from sealbox.crypto.keys import RandomBytes
from sealbox.errors import InvalidInput, MalformedInput

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
    "check_segment",
    "new_id",
    "parse_reference",
    "slug",
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


def check_segment(value: object, what: str) -> str:
    """A path segment (a project, environment or item name, or a field name)."""
    if not isinstance(value, str) or _SEGMENT.fullmatch(value) is None:
        raise MalformedInput(f"{what}: letters, digits, '.', '_' and '-' only, 1 to 64 characters")
    return value


def check_field_name(value: object) -> str:
    return check_segment(value, "field name")


def check_path(value: object) -> str:
    """An item path ``project/environment/item``: exactly three segments."""
    if not isinstance(value, str):
        raise MalformedInput("item path: expected text")
    parts = value.split("/")
    if len(parts) != 3:
        raise MalformedInput("item path: expected project/environment/item")
    for part in parts:
        check_segment(part, "item path segment")
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


REFERENCE_FORM: Final = (
    "expected sealbox://PROJECT/ENV/ITEM[/FIELD], e.g. sealbox://shop/prod/db/password"
)
# What a person may have put in front of the path instead of "sealbox://": another or
# misspelt scheme ("sealbx://", "https://", "SEALBOX://"), or a scheme with too few slashes.
_SCHEME_LIKE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/*")


def _makes_reference(rest: str) -> bool:
    """Whether ``sealbox://`` followed by ``rest`` is a valid reference."""
    parts = rest.split("/")
    return len(parts) in (3, 4) and all(_SEGMENT.fullmatch(p) for p in parts)


def _invalid_reference(problem: str, *, meant: str | None = None) -> InvalidInput:
    hint = (
        f"Did you mean {meant}?"
        if meant is not None
        else "Each part is letters, digits, '.', '_' or '-'; leave out /FIELD to get the "
        "only field of an item that has one."
    )
    return InvalidInput(f"{problem}; {REFERENCE_FORM}", hint=hint)


def parse_reference(text: object) -> Reference:
    """Parse a ``sealbox://`` reference; raise :class:`InvalidInput` on anything else.

    References are what people type (on a command line, in an env file, in code), so the
    error says what is wrong with this one and, where a fix is plain (a bare path, a
    misspelt scheme), which reference was probably meant.  The text is shown as ``repr``,
    cut short: it is never a secret value, but it may hold characters a terminal acts on.
    """
    if not isinstance(text, str):
        raise _invalid_reference(f"a reference must be text, not {type(text).__name__}")
    shown = repr(text if len(text) <= 80 else text[:77] + "...")
    if not text.startswith(REFERENCE_SCHEME):
        scheme = _SCHEME_LIKE.match(text)
        rest = (text[scheme.end() :] if scheme else text).strip("/")
        meant = f"{REFERENCE_SCHEME}{rest}" if _makes_reference(rest) else None
        problem = (
            f"{shown} does not start with {REFERENCE_SCHEME}"
            if scheme or meant is None
            else f"{shown} is an item path, not a reference"
        )
        raise _invalid_reference(problem, meant=meant)
    parts = text[len(REFERENCE_SCHEME) :].split("/")
    if len(parts) not in (3, 4):
        raise _invalid_reference(f"{shown} has {len(parts)} part(s) after {REFERENCE_SCHEME}, "
                                 "not 3 or 4")  # fmt: skip
    names = ("project", "environment", "item", "field")
    for name, part in zip(names, parts, strict=False):
        if _SEGMENT.fullmatch(part) is None:
            rule = "is empty" if not part else (
                "may hold only letters, digits, '.', '_' and '-', start with a letter or "
                "digit, and be at most 64 characters"
            )  # fmt: skip
            raise _invalid_reference(f"{shown}: the {name} part {rule}")
    return Reference(path="/".join(parts[:3]), field=parts[3] if len(parts) == 4 else None)


ITEM_FORM: Final = "expected sealbox://PROJECT/ENV/ITEM, e.g. sealbox://shop/prod/db"


def parse_item_path(text: object) -> str:
    """An item a person named, as ``sealbox://project/environment/item`` or the bare path;
    raise :class:`InvalidInput` saying what is wrong (a field, a misspelt scheme, ...)."""
    if not isinstance(text, str):
        raise InvalidInput(f"an item must be text, not {type(text).__name__}; {ITEM_FORM}")
    shown = repr(text if len(text) <= 80 else text[:77] + "...")
    rest = text[len(REFERENCE_SCHEME) :] if text.startswith(REFERENCE_SCHEME) else text
    scheme = None if text.startswith(REFERENCE_SCHEME) else _SCHEME_LIKE.match(text)
    if scheme is not None:
        rest = text[scheme.end() :].strip("/")
    parts = rest.split("/")
    valid = all(_SEGMENT.fullmatch(p) for p in parts)
    if valid and len(parts) == 4:
        item = f"{REFERENCE_SCHEME}{'/'.join(parts[:3])}"
        raise InvalidInput(f"{shown} names a field; this command takes a whole item; {ITEM_FORM}",
                           hint=f"Use {item}.")  # fmt: skip
    if not valid or len(parts) != 3:
        raise InvalidInput(f"{shown} is not an item; {ITEM_FORM}",
                           hint="Each part is letters, digits, '.', '_' or '-'.")  # fmt: skip
    if scheme is not None:
        raise InvalidInput(f"{shown} does not start with {REFERENCE_SCHEME}; {ITEM_FORM}",
                           hint=f"Did you mean {REFERENCE_SCHEME}{rest}?")  # fmt: skip
    return rest


def slug(name: str) -> str:
    """A profile-style name from a display name: ``Deploy Bot`` -> ``deploy-bot`` ("" if none)."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", plain.lower()).strip("-")[:64].strip("-")
