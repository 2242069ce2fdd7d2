"""Masking released values in a child process's output (``sealbox run``).

Each value is masked as itself and in the forms it is commonly printed in:
base64 (standard and URL-safe, padded or not), hexadecimal (either case)
and URL encoding.  Inside a longer base64 text a value's encoding depends
on its offset modulo 3, so for values of 6 bytes or more the characters
that every offset determines are masked too: ``base64("user:" + value)``
does not leak ``value``.

Values shorter than 3 bytes are not masked (every ``a`` in the output would
be).  Output is streamed: bytes are held back only while they could still
be the start of a value, so a value split across two writes is masked and
interactive output is not delayed.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "Masker", "forms"]

MASK = b"<concealed by sealbox>"
MIN_MASKED = 3
MIN_EMBEDDED = 6


def _b64_cores(value: bytes) -> list[bytes]:
    """For each offset k (mod 3), the base64 characters that depend on ``value`` alone."""
    cores = []
    n = len(value)
    for k in range(3):
        start = -(-8 * k // 6)
        end = (8 * (k + n)) // 6
        encoded = base64.b64encode(b"\0" * k + value)
        for alphabet in (encoded, encoded.translate(bytes.maketrans(b"+/", b"-_"))):
            core = alphabet[start:end]
            if len(core) >= 8:
                cores.append(core)
    return cores


def forms(value: bytes) -> set[bytes]:
    """Every form of ``value`` that is masked."""
    if len(value) < MIN_MASKED:
        return set()
    std = base64.b64encode(value)
    url = base64.urlsafe_b64encode(value)
    out = {value, std, url, std.rstrip(b"="), url.rstrip(b"="),
           value.hex().encode(), value.hex().upper().encode()}  # fmt: skip
    try:
        text = value.decode()
    except UnicodeDecodeError:
        text = None
    if text is not None:
        out.add(quote(text, safe="").encode())
        out.add(quote_plus(text, safe="").encode())
    if len(value) >= MIN_EMBEDDED:
        out.update(_b64_cores(value))
    return {f for f in out if len(f) >= MIN_MASKED}


class Masker:
    """Replaces every form of every value in a stream of bytes with :data:`MASK`."""

    def __init__(self, values: Iterable[bytes]) -> None:
        patterns = set()
        for value in values:
            patterns |= forms(value)
        # Longest first: a value's base64 is masked whole, not around a shorter match.
        self._patterns = sorted(patterns, key=len, reverse=True)
        self._regex = (
            re.compile(b"|".join(re.escape(p) for p in self._patterns)) if patterns else None
        )
        self._longest = max((len(p) for p in self._patterns), default=0)
        self._held = b""

    def _hold_from(self, data: bytes) -> int:
        """Where the tail that could still grow into a pattern starts (``len`` if none)."""
        for start in range(max(0, len(data) - self._longest + 1), len(data)):
            tail = data[start:]
            if any(p.startswith(tail) for p in self._patterns):
                return start
        return len(data)

    def feed(self, chunk: bytes) -> bytes:
        """Masked output for ``chunk``; may hold back the end of it until the next call."""
        if self._regex is None:
            return chunk
        data = self._regex.sub(MASK, self._held + chunk)
        cut = self._hold_from(data)
        self._held = data[cut:]
        return data[:cut]

    def flush(self) -> bytes:
        """Whatever is held back (the stream has ended, so it cannot be a whole value)."""
        held, self._held = self._held, b""
        return held
