"""A strict reader for statement payloads.

Each accessor takes one key out of a JSON object and checks its type and
range; :meth:`Reader.done` then refuses any key that was not taken.  Unknown
keys are an error rather than ignored, so a signer can never be made to
vouch for a field the verifier silently drops (or the other way round).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sealbox.crypto.encoding import b64u_decode, parse_digest
from sealbox.errors import MalformedInput

T = TypeVar("T")

#: Largest integer a statement carries (JSON numbers beyond 2^53 lose
#: precision in JavaScript, and the browser approver must read the same value).
MAX_INT = 2**53 - 1
MAX_TEXT = 4096
MAX_LIST = 256

# Unicode categories that change how text around them is displayed, or hide
# text: Cc (C0/C1 controls: ANSI escape sequences, carriage return), Cf (format
# characters: bidirectional overrides and isolates, zero-width characters,
# invisible tag characters), Zl and Zp (line and paragraph separators, which
# render as line breaks), Cs (lone surrogates).  A requester could use them to
# hide or fake text on an approver's screen, so every string a statement
# carries is refused if it holds one.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co"})
# Blank or invisible characters whose category looks harmless (Lo, So, Mn):
# Hangul fillers, the blank braille pattern, and variation selectors (which can
# smuggle data behind an ordinary-looking letter).  Co above is private use,
# which renders as whatever the approver's font decides.
_INVISIBLE = re.compile("[\u115f\u1160\u3164\uffa0\u2800\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def check_display_text(value: object, what: str, *, max_len: int = MAX_TEXT) -> str:
    if not isinstance(value, str):
        raise MalformedInput(f"{what}: expected text")
    if len(value) > max_len:
        raise MalformedInput(f"{what}: longer than {max_len} characters")
    if _INVISIBLE.search(value) or any(
        unicodedata.category(ch) in _HIDDEN_CATEGORIES for ch in value
    ):
        raise MalformedInput(f"{what}: control, format or line-separator characters")
    return value


def bytes_map(value: object, what: str) -> Mapping[str, bytes]:
    """Check that relay-supplied ``value`` maps text to bytes (blobs by field name, say).

    The SDK builds these from what the relay sent; checking the shape here keeps
    a confused or hostile relay from turning into a TypeError deep in a verifier.
    """
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, bytes) for k, v in value.items()
    ):
        raise MalformedInput(f"{what}: expected a mapping of names to bytes")
    return value


def nested_bytes_map(value: object, what: str) -> Mapping[str, Mapping[str, bytes]]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise MalformedInput(f"{what}: expected a mapping of names to mappings")
    for inner in value.values():
        bytes_map(inner, what)
    return value


class Reader:
    def __init__(self, value: object, what: str) -> None:
        if not isinstance(value, dict):
            raise MalformedInput(f"{what}: expected a JSON object")
        self._data: dict[str, Any] = value
        self._taken: set[str] = set()
        self.what = what

    def _get(self, key: str) -> Any:
        if key not in self._data:
            raise MalformedInput(f"{self.what}: missing {key!r}")
        self._taken.add(key)
        return self._data[key]

    def raw(self, key: str) -> Any:
        return self._get(key)

    def text(self, key: str, *, max_len: int = MAX_TEXT, nullable: bool = False) -> Any:
        value = self._get(key)
        if value is None and nullable:
            return None
        return check_display_text(value, f"{self.what}.{key}", max_len=max_len)

    def integer(
        self, key: str, *, low: int = 0, high: int = MAX_INT, nullable: bool = False
    ) -> Any:
        value = self._get(key)
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise MalformedInput(f"{self.what}.{key}: expected an integer in {low}..{high}")
        return value

    def choice(self, key: str, allowed: frozenset[str]) -> str:
        value = self._get(key)
        # Type first: ``in`` on a frozenset hashes the value, and a list or an
        # object from a hostile payload would raise TypeError, not MalformedInput.
        if not isinstance(value, str) or value not in allowed:
            raise MalformedInput(f"{self.what}.{key}: expected one of {sorted(allowed)}")
        return str(value)

    def digest(self, key: str, *, nullable: bool = False) -> Any:
        value = self._get(key)
        if value is None and nullable:
            return None
        return parse_digest(value, what=f"{self.what}.{key}")

    def b64(self, key: str, *, length: int | None = None, max_len: int = 1 << 20) -> bytes:
        value = self._get(key)
        if isinstance(value, str) and len(value) > max_len * 4 // 3 + 4:
            raise MalformedInput(f"{self.what}.{key}: too long")
        return b64u_decode(value, length=length, what=f"{self.what}.{key}")

    def parsed(self, key: str, parse: Callable[[Any], T]) -> T:
        return parse(self._get(key))

    def items(self, key: str, parse: Callable[[Any], T], *, max_len: int = MAX_LIST) -> list[T]:
        value = self._get(key)
        if not isinstance(value, list):
            raise MalformedInput(f"{self.what}.{key}: expected a list")
        if len(value) > max_len:
            raise MalformedInput(f"{self.what}.{key}: more than {max_len} entries")
        return [parse(v) for v in value]

    def mapping(
        self, key: str, parse_key: Callable[[Any], str], parse_value: Callable[[Any], T]
    ) -> dict[str, T]:
        value = self._get(key)
        if not isinstance(value, dict):
            raise MalformedInput(f"{self.what}.{key}: expected an object")
        if len(value) > MAX_LIST:
            raise MalformedInput(f"{self.what}.{key}: more than {MAX_LIST} entries")
        return {parse_key(k): parse_value(v) for k, v in value.items()}

    def done(self) -> None:
        extra = set(self._data) - self._taken
        if extra:
            raise MalformedInput(f"{self.what}: unknown keys {sorted(extra)}")
