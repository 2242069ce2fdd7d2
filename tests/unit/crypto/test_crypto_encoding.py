"""Each rejection rule of the canonical encodings, one by one."""

from __future__ import annotations

import hashlib
import sys

import pytest

from sealbox.crypto import encoding, labels
from sealbox.crypto.encoding import (
    b64u_decode,
    b64u_encode,
    canonical_json,
    digest,
    digest_bytes,
    length_prefixed,
    parse_canonical_json,
    parse_digest,
)
from sealbox.errors import MalformedInput

# --- base64url -------------------------------------------------------------------------


def test_b64u_known_answers() -> None:
    # RFC 4648 section 10 vectors, unpadded; plus the URL-safe characters.
    for raw, text in [
        (b"", ""),
        (b"f", "Zg"),
        (b"fo", "Zm8"),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg"),
        (b"fooba", "Zm9vYmE"),
        (b"foobar", "Zm9vYmFy"),
        (b"\xfb\xff", "-_8"),
    ]:
        assert b64u_encode(raw) == text
        assert b64u_decode(text) == raw


@pytest.mark.parametrize(
    "text",
    [
        "Zg==",  # padding
        "Zg=",
        "Zm8=",
        "+/8",  # standard alphabet
        "Zm 9v",  # white space
        "Zm9v\n",
        "Zm9v.",
        "Zm9vé",  # non-ASCII
        "Zm9v٣",  # a non-ASCII digit
        "Z",  # length 1 mod 4 cannot be base64
        "Zm9vY",
    ],
)
def test_b64u_rejects_non_alphabet_and_impossible_lengths(text: str) -> None:
    with pytest.raises(MalformedInput, match="not unpadded base64url"):
        b64u_decode(text)


@pytest.mark.parametrize("text", ["Zh", "Zm9", "Zm9vYh", "Zm-", "AB", "AAB"])
def test_b64u_rejects_nonzero_trailing_bits(text: str) -> None:
    with pytest.raises(MalformedInput, match="non-canonical base64url"):
        b64u_decode(text)


@pytest.mark.parametrize("value", [None, b"Zm9v", 3, ["Zm9v"]])
def test_b64u_rejects_non_strings(value: object) -> None:
    with pytest.raises(MalformedInput, match="not unpadded base64url"):
        b64u_decode(value)  # type: ignore[arg-type]


def test_b64u_length_check_and_error_names_the_value() -> None:
    assert b64u_decode("Zm9v", length=3) == b"foo"
    with pytest.raises(MalformedInput, match=r"^nonce: expected 4 bytes, got 3$"):
        b64u_decode("Zm9v", length=4, what="nonce")


# --- length_prefixed ---------------------------------------------------------------------


def test_length_prefixed_layout() -> None:
    assert length_prefixed() == b""
    assert length_prefixed(b"") == bytes(4)
    assert length_prefixed(b"ab", "é", 258) == (
        b"\x00\x00\x00\x02ab"
        + b"\x00\x00\x00\x02\xc3\xa9"
        + b"\x00\x00\x00\x08"
        + bytes(6)
        + b"\x01\x02"
    )
    assert length_prefixed(bytearray(b"x"), memoryview(b"y")) == length_prefixed(b"x", b"y")
    assert length_prefixed(0) == b"\x00\x00\x00\x08" + bytes(8)
    assert length_prefixed(2**64 - 1) == b"\x00\x00\x00\x08" + b"\xff" * 8


def test_length_prefixed_rejects_bool_and_out_of_range_ints() -> None:
    for value in (True, False):
        with pytest.raises(TypeError, match="bool"):
            length_prefixed(value)
    for value in (-1, 2**64):
        with pytest.raises(ValueError, match="out of range"):
            length_prefixed(value)


def test_length_prefixed_rejects_parts_too_long(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real bound is 2**32 - 1 bytes; lower it rather than allocate 4 GiB.
    monkeypatch.setattr(encoding, "_MAX_PART", 3)
    assert length_prefixed(b"abc") == b"\x00\x00\x00\x03abc"
    with pytest.raises(ValueError, match="too long"):
        length_prefixed(b"abcd")
    with pytest.raises(ValueError, match="too long"):
        length_prefixed(1)  # 8 bytes


def test_length_prefixed_max_part_is_the_4_byte_limit() -> None:
    assert encoding._MAX_PART == 2**32 - 1


# --- digests --------------------------------------------------------------------------------


def test_digest_is_sha256_of_length_prefixed_label_and_data() -> None:
    label, data = labels.HASH_STATEMENT, b"abc"
    expected = hashlib.sha256(
        len(label).to_bytes(4, "big") + label + len(data).to_bytes(4, "big") + data
    ).digest()
    assert digest_bytes(label, data) == expected
    assert digest(label, data) == "sha256:" + b64u_encode(expected)
    assert parse_digest(digest(label, data)) == digest(label, data)


def test_digest_separates_labels_and_boundaries() -> None:
    assert digest(labels.HASH_STATEMENT, b"x") != digest(labels.HASH_FIELD_CIPHERTEXT, b"x")
    # Without the length prefix these would collide.
    assert digest(b"ab", b"c") != digest(b"a", b"bc")


@pytest.mark.parametrize(
    "text",
    [
        None,
        42,
        b"sha256:" + b"A" * 43,
        "sha512:" + "A" * 43,
        "SHA256:" + "A" * 43,
        "A" * 43,
    ],
)
def test_parse_digest_rejects_wrong_type_or_prefix(text: object) -> None:
    with pytest.raises(MalformedInput, match=r"^item hash: not a sha256 digest$"):
        parse_digest(text, what="item hash")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sha256:" + "A" * 42, "expected 32 bytes"),
        ("sha256:" + "A" * 44, "expected 32 bytes|not unpadded"),
        ("sha256:" + "A" * 42 + "B", "non-canonical"),
        ("sha256:" + "A" * 43 + "=", "not unpadded"),
        ("sha256:", "expected 32 bytes"),
    ],
)
def test_parse_digest_rejects_bad_bodies(text: str, message: str) -> None:
    with pytest.raises(MalformedInput, match=message):
        parse_digest(text)


# --- canonical JSON --------------------------------------------------------------------------


def test_canonical_json_form() -> None:
    value = {"b": [1, True, None, 'é\n"\\'], "a": {"z": -5, "y": {}}, "": []}
    assert canonical_json(value) == (
        '{"":[],"a":{"y":{},"z":-5},"b":[1,true,null,"é\\n\\"\\\\"]}'.encode()
    )
    assert parse_canonical_json(canonical_json(value)) == value


def test_canonical_json_rejects_floats_and_non_string_keys() -> None:
    for value in [{"a": 1.0}, {"a": [1, {"b": 0.5}]}, {"a": (1, 2.5)}, {"a": float("nan")}]:
        with pytest.raises(TypeError, match="floats"):
            canonical_json(value)
    for value in [{1: "a"}, {"a": {None: 1}}]:
        with pytest.raises(TypeError, match="keys must be ASCII strings"):
            canonical_json(value)  # type: ignore[dict-item]


def test_canonical_json_serialises_tuples_as_lists() -> None:
    assert canonical_json({"a": (1, "b")}) == b'{"a":[1,"b"]}'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xff{}", "not valid JSON"),  # invalid UTF-8
        (b'{"a":"\xed\xa0\x80"}', "not valid JSON"),  # UTF-8-encoded surrogate
        (b"{", "not valid JSON"),
        (b"", "not valid JSON"),
        (b'{"a":1}x', "not valid JSON"),
        (b'{"a":1,"a":2}', "duplicate key"),
        (b'{"a":{"b":1,"b":1}}', "duplicate key"),
        (b'{"a":1.0}', "floats"),
        (b'{"a":1e3}', "floats"),
        (b'{"a":NaN}', "NaN and Infinity"),
        (b'{"a":-Infinity}', "NaN and Infinity"),
        (b'{"a":' + b"9" * 5000 + b"}", "not valid JSON"),  # beyond int digit limit
        (b"[]", "not a JSON object"),
        (b'"a"', "not a JSON object"),
        (b"1", "not a JSON object"),
        (b"null", "not a JSON object"),
        (b'{"a": 1}', "canonical form"),
        (b' {"a":1}', "canonical form"),
        (b'{"a":1}\n', "canonical form"),
        (b'{"b":1,"a":2}', "canonical form"),
        (b'{"a":"\\u00e9"}', "canonical form"),  # escape where the character is canonical
        (b'{"a":"\\/"}', "canonical form"),
        (b'{"a":01}', "not valid JSON"),
        (b'{"a":-0}', "canonical form"),
        (b'{"a":"\\ud800"}', "canonical form"),  # lone surrogate: no UTF-8 form
        (b'{"a":["\\udfff"]}', "canonical form"),
    ],
)
def test_parse_canonical_json_rejections(data: bytes, message: str) -> None:
    with pytest.raises(MalformedInput, match=message):
        parse_canonical_json(data)


def test_parse_canonical_json_error_names_the_value() -> None:
    with pytest.raises(MalformedInput, match=r"^JWS payload: not a JSON object$"):
        parse_canonical_json(b"[]", what="JWS payload")


def test_parse_canonical_json_deep_nesting_never_escapes_as_recursion_error() -> None:
    # Near the interpreter's recursion limit, json.loads may succeed where the
    # re-serialisation for the canonical check does not; every depth must either
    # parse or raise MalformedInput.
    limit = sys.getrecursionlimit()
    outcomes = set()
    for depth in range(1, limit + 20):
        data = b'{"a":' + b"[" * depth + b"]" * depth + b"}"
        try:
            parse_canonical_json(data)
            outcomes.add("ok")
        except MalformedInput:
            outcomes.add("malformed")
    assert outcomes == {"ok", "malformed"}


@pytest.mark.parametrize(
    "value",
    [{"\u00e9": 1}, {"a": 2**53}, {"a": -(2**53)}, {"a": [2**64]}],
    ids=["non-ascii-key", "int-above", "int-below", "nested-int"],
)
def test_canonical_json_stays_inside_the_jcs_subset(value: dict[str, object]) -> None:
    with pytest.raises(TypeError):
        canonical_json(value)


def test_canonical_json_accepts_the_jcs_integer_limits() -> None:
    assert canonical_json({"a": 2**53 - 1, "b": -(2**53) + 1}) == (
        b'{"a":9007199254740991,"b":-9007199254740991}'
    )
