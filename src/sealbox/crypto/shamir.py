"""Shamir secret sharing over GF(2^8), byte-wise, for 32-byte field keys.

A share is ``x || y``: one byte ``x`` in 1..255 (the holder's position plus
one), then one byte of ``y`` per secret byte.  The field is GF(2^8) with the
AES polynomial x^8 + x^4 + x^3 + x + 1 (0x11B), the same as HashiCorp Vault's
and pyshamir's, which the tests use as the independent implementation.

Threshold 1 is a polynomial of degree 0: every share's ``y`` *is* the secret,
which is exactly "every holder has the whole key".

Written here rather than imported: the maintained Python packages either use
secret-indexed log/exp tables, put ``x`` at the end of the share, or refuse a
threshold of 1, and the whole algorithm is forty lines that the tests hold to
pyshamir in both directions.  Multiplication below is a fixed sequence of
eight shift-and-xor rounds with no table lookup indexed by secret bytes.
(CPython gives no constant-time guarantee; the approver device that runs this
is outside the relay's reach, which is what the threat model relies on.)
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from sealbox.crypto.keys import RandomBytes
from sealbox.errors import MalformedInput, ThresholdNotMet

__all__ = ["MAX_HOLDERS", "combine", "split"]

MAX_HOLDERS = 255


def _gf_mul(a: int, b: int) -> int:
    """Multiply in GF(2^8) mod 0x11B: eight rounds, no secret-dependent branches."""
    product = 0
    for _ in range(8):
        product ^= -(b & 1) & a
        high = -((a >> 7) & 1)
        a = ((a << 1) ^ (high & 0x1B)) & 0xFF
        b >>= 1
    return product


def _gf_inv(a: int) -> int:
    """Inverse in GF(2^8) as a^254 (a fixed 13-multiplication chain); 0 maps to 0."""
    a2 = _gf_mul(a, a)
    a4 = _gf_mul(a2, a2)
    a8 = _gf_mul(a4, a4)
    a16 = _gf_mul(a8, a8)
    a32 = _gf_mul(a16, a16)
    a64 = _gf_mul(a32, a32)
    a128 = _gf_mul(a64, a64)
    result = _gf_mul(a128, a64)
    result = _gf_mul(result, a32)
    result = _gf_mul(result, a16)
    result = _gf_mul(result, a8)
    result = _gf_mul(result, a4)
    return _gf_mul(result, a2)


def split(
    secret: bytes, threshold: int, holders: int, random: RandomBytes = secrets.token_bytes
) -> list[bytes]:
    """Split ``secret`` into ``holders`` shares, any ``threshold`` of which rebuild it.

    Share ``i`` (0-based) has ``x = i + 1``; the caller gives share ``i`` to
    the ``i``-th holder of an ordered list.
    """
    if not secret:
        raise ValueError("secret must not be empty")
    if not 1 <= threshold <= holders <= MAX_HOLDERS:
        raise ValueError("need 1 <= threshold <= holders <= 255")
    degree = threshold - 1
    coefficients = random(degree * len(secret))
    if len(coefficients) != degree * len(secret):
        raise ValueError("random source returned the wrong length")
    shares = []
    for index in range(holders):
        x = index + 1
        y = bytearray(len(secret))
        for pos, constant in enumerate(secret):
            # Horner's rule, highest coefficient first.
            acc = 0
            for d in range(degree - 1, -1, -1):
                acc = _gf_mul(acc, x) ^ coefficients[pos * degree + d]
            y[pos] = _gf_mul(acc, x) ^ constant if degree else constant
        shares.append(bytes([x]) + bytes(y))
    return shares


def combine(shares: Sequence[bytes], threshold: int, *, secret_bytes: int = 32) -> bytes:
    """Rebuild the secret from at least ``threshold`` shares (the first ``threshold`` are used).

    Raises :class:`ThresholdNotMet` with fewer shares, and
    :class:`MalformedInput` for shares of the wrong length, ``x = 0`` or two
    shares with the same ``x`` (which would make interpolation meaningless).
    """
    if threshold < 1:
        raise ValueError("threshold must be at least 1")
    if len(shares) < threshold:
        raise ThresholdNotMet(f"{len(shares)} share(s) given, {threshold} needed")
    used = list(shares[:threshold])
    xs: list[int] = []
    for share in used:
        if len(share) != secret_bytes + 1:
            raise MalformedInput(f"share: expected {secret_bytes + 1} bytes")
        if share[0] == 0:
            raise MalformedInput("share: x must not be 0")
        if share[0] in xs:
            raise MalformedInput("share: two shares with the same x")
        xs.append(share[0])
    if threshold == 1:
        # Degree 0: the one share's y is the secret (the basis below would be [1]).
        return bytes(used[0][1:])
    # Lagrange basis at 0: l_j(0) = prod_{m != j} x_m / (x_m - x_j); in GF(2^8) minus is xor.
    basis = []
    for j, x_j in enumerate(xs):
        num, den = 1, 1
        for m, x_m in enumerate(xs):
            if m != j:
                num = _gf_mul(num, x_m)
                den = _gf_mul(den, x_m ^ x_j)
        basis.append(_gf_mul(num, _gf_inv(den)))
    secret = bytearray(secret_bytes)
    for pos in range(secret_bytes):
        acc = 0
        for j, share in enumerate(used):
            acc ^= _gf_mul(share[1 + pos], basis[j])
        secret[pos] = acc
    return bytes(secret)
