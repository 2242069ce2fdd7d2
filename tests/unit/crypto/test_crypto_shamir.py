"""Shamir over GF(2^8): field arithmetic, known answers, input checks."""

from __future__ import annotations

import itertools

import pytest
from pyshamir import _utils as pyshamir_gf

from sealbox.crypto import shamir
from sealbox.crypto.keys import RandomBytes
from sealbox.errors import MalformedInput, ThresholdNotMet

SECRET = bytes(range(100, 132))


def _stream(data: bytes) -> RandomBytes:
    """A RandomBytes stub that also checks how much was asked for."""

    def random(n: int) -> bytes:
        assert n == len(data)
        return data

    return random


def test_gf_mul_matches_pyshamir_for_all_pairs() -> None:
    for a in range(256):
        for b in range(256):
            assert shamir._gf_mul(a, b) == pyshamir_gf.mul(a, b)


def test_gf_known_products() -> None:
    # FIPS 197 section 4.2: {57} x {83} = {c1}, {57} x {13} = {fe}.
    assert shamir._gf_mul(0x57, 0x83) == 0xC1
    assert shamir._gf_mul(0x57, 0x13) == 0xFE


def test_gf_inverse() -> None:
    assert shamir._gf_inv(0) == 0
    assert shamir._gf_inv(1) == 1
    for a in range(1, 256):
        assert shamir._gf_mul(a, shamir._gf_inv(a)) == 1
        assert shamir._gf_inv(a) == pyshamir_gf.inverse(a)


def _evaluate(constant: int, coefficients: list[int], x: int) -> int:
    # Independent evaluation with pyshamir's field: sum of c_k * x^k.
    acc, power = constant, 1
    for c in coefficients:
        power = pyshamir_gf.mul(power, x)
        acc ^= pyshamir_gf.mul(c, power)
    return acc


@pytest.mark.parametrize(("threshold", "holders"), [(1, 1), (1, 3), (2, 2), (3, 5), (5, 8)])
def test_split_known_answer(threshold: int, holders: int) -> None:
    degree = threshold - 1
    coefficients = bytes((7 * i + 3) % 256 for i in range(degree * len(SECRET)))
    shares = shamir.split(SECRET, threshold, holders, random=_stream(coefficients))
    assert len(shares) == holders
    for index, share in enumerate(shares):
        x = index + 1
        assert share[0] == x
        assert len(share) == 1 + len(SECRET)
        for pos, constant in enumerate(SECRET):
            # Layout of the random stream: degree coefficients per secret byte, x^1 first.
            cs = list(coefficients[pos * degree : (pos + 1) * degree])
            assert share[1 + pos] == _evaluate(constant, cs, x)


def test_split_combine_every_subset() -> None:
    shares = shamir.split(SECRET, 3, 6)
    for subset in itertools.permutations(shares, 3):
        assert shamir.combine(subset, 3) == SECRET


def test_split_is_randomised() -> None:
    assert shamir.split(SECRET, 2, 3) != shamir.split(SECRET, 2, 3)


def test_max_holders() -> None:
    shares = shamir.split(b"\x42", 3, shamir.MAX_HOLDERS)
    assert [s[0] for s in shares] == list(range(1, 256))
    assert shamir.combine(shares[-3:], 3, secret_bytes=1) == b"\x42"
    with pytest.raises(ValueError, match="need 1 <= threshold <= holders <= 255"):
        shamir.split(b"\x42", 3, shamir.MAX_HOLDERS + 1)


@pytest.mark.parametrize(("threshold", "holders"), [(0, 1), (0, 0), (2, 1), (-1, 3), (3, 2)])
def test_split_rejects_bad_parameters(threshold: int, holders: int) -> None:
    with pytest.raises(ValueError, match="need 1 <= threshold <= holders <= 255"):
        shamir.split(SECRET, threshold, holders)


def test_split_rejects_empty_secret_and_short_randomness() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        shamir.split(b"", 1, 1)
    with pytest.raises(ValueError, match="wrong length"):
        shamir.split(SECRET, 2, 2, random=lambda n: bytes(n - 1))
    # Threshold 1 draws no randomness at all.
    assert shamir.split(SECRET, 1, 2, random=_stream(b"")) == [b"\x01" + SECRET, b"\x02" + SECRET]


def test_combine_threshold_checks() -> None:
    shares = shamir.split(SECRET, 3, 4)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="at least 1"):
            shamir.combine(shares, bad)
    with pytest.raises(ThresholdNotMet, match="2 share\\(s\\) given, 3 needed"):
        shamir.combine(shares[:2], 3)
    with pytest.raises(ThresholdNotMet):
        shamir.combine([], 1)


def test_combine_uses_only_the_first_threshold_shares() -> None:
    shares = shamir.split(SECRET, 2, 3)
    # Trailing extra shares are not read, so even garbage there does not matter.
    assert shamir.combine([*shares[:2], b"garbage"], 2) == SECRET


def test_combine_rejects_malformed_shares() -> None:
    shares = shamir.split(SECRET, 2, 3)
    for bad in [shares[0][:-1], shares[0] + b"\x00", b""]:
        with pytest.raises(MalformedInput, match="expected 33 bytes"):
            shamir.combine([bad, shares[1]], 2)
    with pytest.raises(MalformedInput, match="x must not be 0"):
        shamir.combine([b"\x00" + shares[0][1:], shares[1]], 2)
    with pytest.raises(MalformedInput, match="same x"):
        shamir.combine([shares[1], shares[1]], 2)
    with pytest.raises(MalformedInput, match="same x"):
        shamir.combine([shares[0], shares[0][:1] + bytes(32)], 2)


def test_combine_with_other_secret_length() -> None:
    shares = shamir.split(b"abc", 2, 3)
    assert shamir.combine(shares[1:], 2, secret_bytes=3) == b"abc"
    with pytest.raises(MalformedInput, match="expected 33 bytes"):
        shamir.combine(shares, 2)


def test_wrong_share_gives_wrong_secret_not_an_error() -> None:
    # Shamir has no integrity: a substituted y only changes the result.  The protocol
    # layer checks the rebuilt key (it must open the field), not this function.
    shares = shamir.split(SECRET, 2, 2)
    tampered = shares[1][:1] + bytes(b ^ 1 for b in shares[1][1:])
    assert shamir.combine([shares[0], tampered], 2) != SECRET
