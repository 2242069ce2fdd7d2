"""Masking released values in a child process's output (``sealbox run``).

Each value is masked as itself and in the forms it is commonly printed in:
base64 (standard and URL-safe, padded or not), hexadecimal (either case),
URL encoding and the inside of a JSON string (as Python, JavaScript, Go and
PHP escape it: ``\\uXXXX`` in either case, ``\\/``).  Inside a longer base64
text a value's encoding depends on its offset modulo 3, so for values of 6
bytes or more the characters that every offset determines are masked too:
``base64("user:" + value)`` does not leak ``value``.

A form of 8 bytes or more is masked wherever it appears.  A shorter one is
masked only as a whole word, that is where the bytes on either side are not
ASCII letters or digits (or it starts or ends there itself; the letter that
ends a terminal escape sequence such as ``ESC[31m`` does not count): a short
value such as ``app`` is masked in ``user=app`` but leaves ``my application``
alone.
Values shorter than 3 bytes are not masked at all (every ``a`` in the output
would be).  :func:`notice` says so in words, naming no value.

Output is streamed and never reordered: bytes are held back only while they
could still become (part of) a masked form, that is the longest tail of what
was fed that a form could start at, so a value split across two writes is
masked and interactive output is not delayed.  A short form at the very end
waits for one more byte (or the end of the stream), which decides whether
it is a whole word.
"""

from __future__ import annotations

import base64
import json
import re
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "MIN_MASKED", "WORD_ONLY_BELOW", "Masker", "forms", "notice"]

MASK = b"<concealed by sealbox>"
#: Values shorter than this are not masked.
MIN_MASKED = 3
#: Forms shorter than this are masked only as whole words.
WORD_ONLY_BELOW = 8
MIN_EMBEDDED = 6

_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
# Length of the prefixes kept in a set to rule out most positions quickly.
_HEAD = 4


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


def _upper_unicode_escapes(text: str) -> str:
    return re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), text)


def _json_forms(text: str) -> set[str]:
    """The inside of a JSON string holding ``text``, as common encoders write it.

    Python's json and JavaScript's JSON.stringify (non-ASCII as is or as
    ``\\uXXXX``), Go's encoding/json (also ``<``, ``>``, ``&``, U+2028 and
    U+2029 as ``\\u003c``…),
    PHP's json_encode (``/`` as ``\\/``) and encoders that print hex digits in
    upper case.
    """
    out = set()
    for ensure_ascii in (True, False):
        plain = json.dumps(text, ensure_ascii=ensure_ascii)[1:-1]
        html = plain.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        html = html.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        for escaped in (plain, html):
            for slashes in (escaped, escaped.replace("/", "\\/")):
                out.add(slashes)
                out.add(_upper_unicode_escapes(slashes))
    return out


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
        out.update(form.encode() for form in _json_forms(text))
    if len(value) >= MIN_EMBEDDED:
        out.update(_b64_cores(value))
    return {f for f in out if len(f) >= MIN_MASKED}


def notice(values: Iterable[bytes]) -> str | None:
    """What a person should know about how ``values`` are masked; names none of them."""
    values = list(values)
    short = sum(MIN_MASKED <= len(v) < WORD_ONLY_BELOW for v in values)
    tiny = sum(0 < len(v) < MIN_MASKED for v in values)
    parts = []
    if short:
        parts.append(
            f"1 value shorter than {WORD_ONLY_BELOW} bytes is masked only as a whole word"
            if short == 1
            else f"{short} values shorter than {WORD_ONLY_BELOW} bytes are masked only "
            "as whole words"
        )
    if tiny:
        parts.append(
            f"1 value shorter than {MIN_MASKED} bytes is not masked"
            if tiny == 1
            else f"{tiny} values shorter than {MIN_MASKED} bytes are not masked"
        )
    return "; ".join(parts) or None


# The end of a terminal escape sequence (ECMA-48): a control sequence such as
# the colour change ESC [ 3 1 m, or a two- or three-byte one such as ESC ( B.
_ESCAPE_END = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|[ -/]*[0-~])\Z")
#: How many bytes before a position are kept to tell whether a word starts there.
_CONTEXT = 64


def _starts_word(data: bytes, i: int) -> bool:
    """Whether a word can start at ``data[i]``: not after a letter or digit.

    A letter that ends an escape sequence does not count: a short value is
    still a word in ``ESC[31mapp``, a coloured ``app``.
    """
    if i == 0 or data[i - 1] not in _WORD:
        return True
    return _ESCAPE_END.search(data, max(0, i - _CONTEXT), i) is not None


def _word_end(form: bytes) -> bytes:
    """What must follow a short ``form`` for it to end a word (its start: ``_starts_word``)."""
    # A form that ends with punctuation already ends a word.
    return rb"(?![A-Za-z0-9])" if form[-1] in _WORD else b""


def _compile(patterns: Iterable[bytes]) -> re.Pattern[bytes]:
    """One regular expression for all ``patterns``, as a trie: at any position, longest first.

    A flat alternation makes the engine try every pattern at every position; a
    trie tries one byte at a time (ten times faster with a hundred forms; the
    standard library has no multi-pattern matcher such as Aho-Corasick).
    """
    trie: dict[int | None, Any] = {}
    for pattern in patterns:
        node = trie
        for byte in pattern:
            node = node.setdefault(byte, {})
        node[None] = pattern

    def render(node: dict[int | None, Any]) -> bytes:
        run = bytearray()
        # A run of bytes with one way on is written out in a loop, not by recursion:
        # a form may be thousands of bytes long (the hex of a private key).
        while len(node) == 1 and None not in node:
            [(byte, node)] = node.items()
            assert byte is not None
            run.append(byte)
        # Going on is tried before ending here, so at any position the longest form wins.
        ways = [render_from(b, node[b]) for b in sorted(k for k in node if k is not None)]
        if None in node:
            ended = node[None]
            ways.append(_word_end(ended) if len(ended) < WORD_ONLY_BELOW else b"")
        rest = ways[0] if len(ways) == 1 else b"(?:" + b"|".join(ways) + b")"
        return re.escape(bytes(run)) + rest

    def render_from(byte: int, node: dict[int | None, Any]) -> bytes:
        return re.escape(bytes([byte])) + render(node)

    return re.compile(render(trie))


def _starts_one(sorted_forms: Sequence[bytes], tail: bytes, *, longer: bool) -> bool:
    """Whether some form starts with ``tail`` (and, with ``longer``, goes on past it)."""
    # Forms that start with ``tail`` sort together, from the first one >= ``tail``.
    i = bisect_left(sorted_forms, tail)
    while i < len(sorted_forms) and sorted_forms[i].startswith(tail):
        if not longer or len(sorted_forms[i]) > len(tail):
            return True
        i += 1
    return False


class Masker:
    """Replaces every form of every value in a stream of bytes with :data:`MASK`.

    The result is the same however the stream is cut into chunks: it is what
    masking the whole stream at once (leftmost, longest form first) gives.
    """

    def __init__(self, values: Iterable[bytes]) -> None:
        patterns: set[bytes] = set()
        for value in values:
            patterns |= forms(value)
        self._anywhere = sorted(p for p in patterns if len(p) >= WORD_ONLY_BELOW)
        self._words = sorted(p for p in patterns if len(p) < WORD_ONLY_BELOW)
        self._regex = _compile(patterns) if patterns else None
        self._longest = max(map(len, patterns), default=0)
        self._heads = {p[:_HEAD] for p in patterns}
        self._held = b""
        # The last bytes let out, as they were before masking: whether a short
        # form that comes next is a whole word depends on them.
        self._before = b""

    def _could_start(self, data: bytes, p: int) -> bool:
        """Whether more data could still make a form that starts at ``p`` match there."""
        head = data[p : p + _HEAD]
        if len(head) == _HEAD and head not in self._heads:
            return False
        tail = data[p:]
        if _starts_one(self._anywhere, tail, longer=True):
            return True
        if not self._words or len(tail) > WORD_ONLY_BELOW - 1:
            return False
        if tail[0] in _WORD and not _starts_word(data, p):
            return False  # it would not be a whole word
        # Even a whole short form at the end waits: the next byte decides.
        return _starts_one(self._words, tail, longer=False)

    def _hold_from(self, data: bytes, pos: int) -> int:
        """The first position from ``pos`` on that could still start a form (``len`` if none)."""
        for p in range(max(pos, len(data) - self._longest), len(data)):
            if self._could_start(data, p):
                return p
        return len(data)

    def _mask(self, data: bytes, pos: int, end: bool) -> tuple[bytes, int]:
        """Masked ``data[pos:]`` up to where it is decided, and that position."""
        assert self._regex is not None
        out = []
        hold = len(data) if end else self._hold_from(data, pos)
        scan = pos
        while (found := self._regex.search(data, scan)) and found.start() < hold:
            start = found.start()
            short = found.end() - start < WORD_ONLY_BELOW
            if short and data[start] in _WORD and not _starts_word(data, start):
                # A short form inside a word.  No other form matches here either:
                # every other short one starts with the same byte, and a long one
                # would have been found first.
                scan = start + 1
                continue
            # A form starting before ``hold`` is decided: a longer one starting
            # there would have made that position a place to hold from.
            out += [data[pos:start], MASK]
            pos = scan = found.end()
            if pos > hold:
                hold = self._hold_from(data, pos)
        out.append(data[pos:hold])
        return b"".join(out), hold

    def feed(self, chunk: bytes) -> bytes:
        """Masked output for ``chunk``; may hold back the end of it until the next call."""
        if self._regex is None:
            return chunk
        data = self._before + self._held + chunk
        out, hold = self._mask(data, len(self._before), end=False)
        self._held = data[hold:]
        self._before = data[max(0, hold - _CONTEXT) : hold]
        return out

    def flush(self) -> bytes:
        """Whatever is held back, masked: the stream has ended."""
        if self._regex is None or not self._held:
            return b""
        out, _ = self._mask(self._before + self._held, len(self._before), end=True)
        self._held = self._before = b""
        return out
