"""Property tests (Hypothesis) of the crypto layer's encodings and round trips."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from sealbox.crypto import aead, hpke, jws, labels, shamir
from sealbox.crypto.encoding import (
    b64u_decode,
    b64u_encode,
    canonical_json,
    length_prefixed,
    parse_canonical_json,
)
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.errors import DecryptionFailed, MalformedInput, SignatureInvalid, ThresholdNotMet

B64U = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"

RECIPIENT = HpkePrivateKey._from_seed(bytes(range(1, 33)))
SIGNER = SigningKey._from_seed(bytes(range(64, 96)))
FIELD_KEY = bytes(range(200, 232))

# --- base64url ------------------------------------------------------------------------


@given(st.binary(max_size=200))
def test_b64u_round_trip(data: bytes) -> None:
    text = b64u_encode(data)
    assert "=" not in text
    assert set(text) <= set(B64U)
    assert b64u_decode(text) == data
    assert b64u_decode(text, length=len(data)) == data


@given(st.binary(min_size=1, max_size=100).filter(lambda d: len(d) % 3 != 0), st.data())
def test_b64u_rejects_nonzero_trailing_bits(data: bytes, draw: st.DataObject) -> None:
    text = b64u_encode(data)
    # One leftover byte: last char has 4 unused low bits; two leftover bytes: 2.
    unused = 4 if len(data) % 3 == 1 else 2
    bits = draw.draw(st.integers(1, (1 << unused) - 1))
    last = B64U.index(text[-1])
    assert last & ((1 << unused) - 1) == 0
    mutated = text[:-1] + B64U[last | bits]
    with pytest.raises(MalformedInput, match="non-canonical"):
        b64u_decode(mutated)


@given(st.binary(min_size=1, max_size=100))
def test_b64u_rejects_padding_and_standard_alphabet(data: bytes) -> None:
    text = b64u_encode(data)
    if len(text) % 4:
        with pytest.raises(MalformedInput, match="not unpadded"):
            b64u_decode(text + "=" * (-len(text) % 4))
    standard = text.replace("-", "+").replace("_", "/")
    if standard != text:
        with pytest.raises(MalformedInput, match="not unpadded"):
            b64u_decode(standard)


@given(st.text(alphabet=B64U, max_size=50))
def test_b64u_decode_accepts_only_what_encode_produces(text: str) -> None:
    try:
        data = b64u_decode(text)
    except MalformedInput:
        return
    assert b64u_encode(data) == text


# --- length_prefixed --------------------------------------------------------------------

PART = st.one_of(st.binary(max_size=20), st.text(max_size=10), st.integers(0, 2**64 - 1))


def _as_bytes(part: bytes | str | int) -> bytes:
    if isinstance(part, int):
        return part.to_bytes(8, "big")
    if isinstance(part, str):
        return part.encode("utf-8")
    return part


def _split_prefixed(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i : i + 4], "big")
        out.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    assert i == len(data)
    return out


@given(st.lists(PART, max_size=6))
def test_length_prefixed_decodes_back_to_its_parts(parts: list[bytes | str | int]) -> None:
    assert _split_prefixed(length_prefixed(*parts)) == [_as_bytes(p) for p in parts]


@given(st.lists(PART, max_size=5), st.lists(PART, max_size=5))
def test_length_prefixed_is_injective(a: list[Any], b: list[Any]) -> None:
    # The encoding is injective on the byte values of the parts (a str and its UTF-8
    # bytes, or an int and its 8-byte big-endian form, are the same value on purpose:
    # the type of each position is fixed by the caller).
    if [_as_bytes(p) for p in a] != [_as_bytes(p) for p in b]:
        assert length_prefixed(*a) != length_prefixed(*b)
    else:
        assert length_prefixed(*a) == length_prefixed(*b)


@given(st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8))
def test_length_prefixed_separates_concatenations(x: str, y: str) -> None:
    assert length_prefixed(x + y) != length_prefixed(x, y)


# --- canonical JSON ----------------------------------------------------------------------

# The JCS subset canonical_json accepts: ASCII keys, integers within +-(2^53 - 1).
JSON_KEY = st.text(st.characters(codec="ascii"), max_size=8)
JSON_SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), st.text(max_size=20)
)
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(JSON_KEY, inner, max_size=4)
    ),
    max_leaves=20,
)
JSON_OBJECT = st.dictionaries(JSON_KEY, JSON_VALUE, max_size=6)


@given(JSON_OBJECT)
def test_canonical_json_round_trip(value: dict[str, Any]) -> None:
    data = canonical_json(value)
    assert parse_canonical_json(data) == value
    assert canonical_json(parse_canonical_json(data)) == data


@given(JSON_OBJECT, st.sampled_from(["ascii", "spaces", "indent", "unsorted"]))
def test_other_spellings_are_rejected(value: dict[str, Any], style: str) -> None:
    kwargs: dict[str, Any] = {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False}
    if style == "ascii":
        kwargs["ensure_ascii"] = True
    elif style == "spaces":
        kwargs["separators"] = (", ", ": ")
    elif style == "indent":
        kwargs["indent"] = 1
    else:
        kwargs["sort_keys"] = False
        value = dict(reversed(list(value.items())))
    other = json.dumps(value, **kwargs).encode("utf-8")
    if other == canonical_json(value):
        assert parse_canonical_json(other) == value
    else:
        with pytest.raises(MalformedInput, match="canonical form"):
            parse_canonical_json(other)


# --- HPKE ------------------------------------------------------------------------------


@given(st.binary(max_size=300), st.binary(max_size=50))
def test_hpke_round_trip(plaintext: bytes, info: bytes) -> None:
    blob = hpke.seal(RECIPIENT.public_key(), plaintext, info)
    assert len(blob) == len(plaintext) + hpke.OVERHEAD
    assert hpke.open_sealed(RECIPIENT, blob, info) == plaintext


@given(st.binary(max_size=50), st.binary(max_size=20), st.binary(max_size=20))
def test_hpke_other_info_fails(plaintext: bytes, info: bytes, other: bytes) -> None:
    assume(info != other)
    blob = hpke.seal(RECIPIENT.public_key(), plaintext, info)
    with pytest.raises(DecryptionFailed):
        hpke.open_sealed(RECIPIENT, blob, other)


@given(st.binary(max_size=40), st.data())
def test_hpke_any_bit_flip_fails(plaintext: bytes, data: st.DataObject) -> None:
    blob = hpke.seal(RECIPIENT.public_key(), plaintext, b"info")
    pos = data.draw(st.integers(0, len(blob) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(blob)
    flipped[pos] ^= 1 << bit
    with pytest.raises(DecryptionFailed):
        hpke.open_sealed(RECIPIENT, bytes(flipped), b"info")


def test_hpke_every_bit_flip_fails() -> None:
    blob = hpke._seal_from_parts(RECIPIENT.public_key(), b"0123456789", b"info", bytes(32))
    for pos in range(len(blob)):
        for bit in range(8):
            flipped = bytearray(blob)
            flipped[pos] ^= 1 << bit
            # Includes bit 255 of enc, which X25519 itself ignores: enc is also bound
            # through the KEM context, so the blob still fails.
            with pytest.raises(DecryptionFailed):
                hpke.open_sealed(RECIPIENT, bytes(flipped), b"info")


# --- Field AEAD ------------------------------------------------------------------------

CONTEXT = st.fixed_dictionaries(
    {
        "vault": st.text(max_size=10),
        "item": st.text(max_size=10),
        "version": st.integers(0, 2**64 - 1),
        "field": st.text(max_size=10),
    }
)


@given(st.binary(max_size=200), CONTEXT)
def test_field_round_trip(plaintext: bytes, where: dict[str, Any]) -> None:
    nonce, ct = aead.encrypt_field(FIELD_KEY, plaintext, **where)
    assert len(nonce) == aead.NONCE_BYTES
    assert len(ct) == len(plaintext) + aead.TAG_BYTES
    assert aead.decrypt_field(FIELD_KEY, nonce, ct, **where) == plaintext


@given(st.binary(max_size=50), CONTEXT, st.sampled_from(["vault", "item", "version", "field"]))
def test_field_fails_when_any_context_part_differs(
    plaintext: bytes, where: dict[str, Any], name: str
) -> None:
    nonce, ct = aead.encrypt_field(FIELD_KEY, plaintext, **where)
    moved = dict(where)
    if name == "version":
        moved[name] = (where[name] + 1) % 2**64
    else:
        moved[name] = where[name] + "x"
    with pytest.raises(DecryptionFailed):
        aead.decrypt_field(FIELD_KEY, nonce, ct, **moved)


@given(CONTEXT, CONTEXT)
def test_field_contexts_differ_exactly_when_aad_differs(
    a: dict[str, Any], b: dict[str, Any]
) -> None:
    assert (aead.field_aad(**a) == aead.field_aad(**b)) == (a == b)


@given(st.binary(max_size=30), st.data())
def test_field_any_bit_flip_fails(plaintext: bytes, data: st.DataObject) -> None:
    where = {"vault": "v", "item": "i", "version": 1, "field": "f"}
    nonce, ct = aead.encrypt_field(FIELD_KEY, plaintext, **where)
    joined = bytearray(nonce + ct)
    pos = data.draw(st.integers(0, len(joined) - 1))
    joined[pos] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(DecryptionFailed):
        aead.decrypt_field(FIELD_KEY, bytes(joined[:12]), bytes(joined[12:]), **where)


def test_field_every_bit_flip_fails() -> None:
    where = {"vault": "v", "item": "i", "version": 1, "field": "f"}
    nonce, ct = aead.encrypt_field(FIELD_KEY, b"secret", random=lambda n: bytes(n), **where)
    joined = nonce + ct
    for pos in range(len(joined)):
        for bit in range(8):
            flipped = bytearray(joined)
            flipped[pos] ^= 1 << bit
            with pytest.raises(DecryptionFailed):
                aead.decrypt_field(FIELD_KEY, bytes(flipped[:12]), bytes(flipped[12:]), **where)


# --- Shamir ----------------------------------------------------------------------------


@st.composite
def split_case(draw: st.DrawFn) -> tuple[bytes, int, list[bytes]]:
    holders = draw(st.integers(1, 8))
    threshold = draw(st.integers(1, holders))
    secret = draw(st.binary(min_size=32, max_size=32))
    return secret, threshold, shamir.split(secret, threshold, holders)


@given(split_case(), st.data())
def test_shamir_any_threshold_subset_reconstructs(
    case: tuple[bytes, int, list[bytes]], data: st.DataObject
) -> None:
    secret, threshold, shares = case
    subset = data.draw(st.permutations(shares))[: data.draw(st.integers(threshold, len(shares)))]
    assert shamir.combine(subset, threshold) == secret


@given(split_case(), st.data())
def test_shamir_fewer_than_threshold_raises(
    case: tuple[bytes, int, list[bytes]], data: st.DataObject
) -> None:
    _, threshold, shares = case
    count = data.draw(st.integers(0, threshold - 1))
    with pytest.raises(ThresholdNotMet):
        shamir.combine(shares[:count], threshold)


@given(st.binary(min_size=32, max_size=32), st.integers(1, 8))
def test_shamir_threshold_one_every_share_is_the_secret(secret: bytes, holders: int) -> None:
    shares = shamir.split(secret, 1, holders)
    for i, share in enumerate(shares):
        assert share == bytes([i + 1]) + secret
        assert shamir.combine([share], 1) == secret


@given(split_case(), st.data())
def test_shamir_duplicate_x_raises(
    case: tuple[bytes, int, list[bytes]], data: st.DataObject
) -> None:
    _, threshold, shares = case
    assume(threshold >= 2)
    subset = list(shares[:threshold])
    src = data.draw(st.integers(0, threshold - 1))
    dst = data.draw(st.integers(0, threshold - 1).filter(lambda i: i != src))
    # Same x, and either the same y (a replayed share) or another y.
    tail = data.draw(st.one_of(st.just(subset[src][1:]), st.binary(min_size=32, max_size=32)))
    subset[dst] = subset[src][:1] + tail
    with pytest.raises(MalformedInput, match="same x"):
        shamir.combine(subset, threshold)


# --- JWS -------------------------------------------------------------------------------

KID = "apv_" + "a" * 26
JWS_PAYLOAD = st.dictionaries(JSON_KEY, JSON_SCALAR, max_size=4)


def _flip(token: str, pos: int, bit: int) -> str:
    return token[:pos] + chr(ord(token[pos]) ^ (1 << bit)) + token[pos + 1 :]


def _assert_rejected(token: str) -> None:
    with pytest.raises((MalformedInput, SignatureInvalid)):
        jws.verify(token, SIGNER.verify_key(), typ=labels.TYP_ITEM, kid=KID)


@given(JWS_PAYLOAD, st.data())
def test_jws_any_bit_flip_fails(payload: dict[str, Any], data: st.DataObject) -> None:
    token = jws.sign(SIGNER, labels.TYP_ITEM, KID, payload)
    assert jws.verify(token, SIGNER.verify_key(), typ=labels.TYP_ITEM, kid=KID) == payload
    pos = data.draw(st.integers(0, len(token) - 1))
    _assert_rejected(_flip(token, pos, data.draw(st.integers(0, 7))))


def test_jws_every_bit_flip_fails() -> None:
    token = jws.sign(SIGNER, labels.TYP_ITEM, KID, {"a": [1, "two"], "b": None})
    for pos in range(len(token)):
        for bit in range(8):
            _assert_rejected(_flip(token, pos, bit))
