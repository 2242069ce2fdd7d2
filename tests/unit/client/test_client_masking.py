"""Masking of released values in `sealbox run` output, streamed chunk by chunk."""

from __future__ import annotations

import base64
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from sealbox.client.masking import MASK, Masker, forms

SECRET = b"pa55:w/rd+&more"


def _through(masker: Masker, chunks: list[bytes]) -> bytes:
    return b"".join(masker.feed(c) for c in chunks) + masker.flush()


def test_every_form_is_masked() -> None:
    for form in (
        SECRET,
        base64.b64encode(SECRET),
        base64.urlsafe_b64encode(SECRET).rstrip(b"="),
        SECRET.hex().encode(),
        SECRET.hex().upper().encode(),
        quote(SECRET.decode(), safe="").encode(),
    ):
        out = _through(Masker([SECRET]), [b"before " + form + b" after"])
        assert out == b"before " + MASK + b" after", form


def test_a_value_inside_a_longer_base64_text_is_masked() -> None:
    for prefix in (b"", b"u", b"us", b"user:"):
        encoded = base64.b64encode(prefix + SECRET + b"!")
        out = _through(Masker([SECRET]), [encoded])
        assert MASK in out
        # What is left of the encoding does not hold enough to rebuild the value.
        assert base64.b64encode(SECRET)[2:-2] not in out


def test_split_across_chunks_and_byte_by_byte() -> None:
    data = b"x" * 10 + SECRET + b"y" * 10
    for size in (1, 2, 3, 7):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        assert _through(Masker([SECRET]), chunks) == b"x" * 10 + MASK + b"y" * 10


def test_text_that_cannot_be_a_value_is_not_held_back() -> None:
    masker = Masker([SECRET])
    assert masker.feed(b"hello world\n") == b"hello world\n"
    # A possible start of the value waits for the next chunk ...
    assert masker.feed(b"log: pa55") == b"log: "
    # ... and is let out once it turns out not to be the value.
    assert masker.feed(b"port\n") == b"pa55port\n"


def test_short_values_are_not_masked_and_no_values_pass_through() -> None:
    assert forms(b"ab") == set()
    assert _through(Masker([b"ab"]), [b"abc"]) == b"abc"
    assert _through(Masker([]), [b"anything"]) == b"anything"


@given(st.binary(min_size=3, max_size=40), st.binary(max_size=60), st.binary(max_size=60),
       st.integers(min_value=1, max_value=17))  # fmt: skip
def test_the_value_never_survives(secret: bytes, before: bytes, after: bytes, size: int) -> None:
    data = before + secret + after
    chunks = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    assert secret not in _through(Masker([secret]), chunks)
