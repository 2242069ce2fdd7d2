"""Key types with strict text encodings, fingerprints and human safety codes.

Two key kinds exist: X25519 keys that HPKE seals to, and Ed25519 keys that
sign statements.  Each has one text form, ``<prefix><base64url raw bytes>``;
the prefix names algorithm and version (see :mod:`sealbox.crypto.labels`), so
a signing key can never be parsed as a sealing key or the other way round.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from sealbox.crypto import labels
from sealbox.crypto.encoding import b64u_decode, b64u_encode, digest, digest_bytes
from sealbox.errors import MalformedInput, SignatureInvalid

__all__ = [
    "HpkePrivateKey",
    "HpkePublicKey",
    "RandomBytes",
    "SigningKey",
    "VerifyKey",
    "safety_code",
]

#: The injectable source of randomness: ``n -> n random bytes``.  Public calls
#: use :func:`secrets.token_bytes`; vector generation passes a seeded stream.
RandomBytes = Callable[[int], bytes]

KEY_BYTES = 32
SIGNATURE_BYTES = 64

# X25519 public keys of small order (RFC 7748 section 6; the list libsodium
# rejects).  Sealing to one of them gives an all-zero or attacker-known shared
# secret, so the text decoder refuses them up front.  X25519 ignores the top
# bit of the encoding (RFC 7748 section 5), so each entry also has a twin with
# bit 255 set; the check below clears that bit before looking a key up here.
_X25519_LOW_ORDER = frozenset(
    bytes.fromhex(h)
    for h in (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    )
)


def _clear_top_bit(raw: bytes) -> bytes:
    """The encoding with bit 255 cleared: the u-coordinate X25519 actually uses."""
    return raw[:31] + bytes([raw[31] & 0x7F])


def _from_text(text: object, prefix: str, what: str) -> bytes:
    if not isinstance(text, str) or not text.startswith(prefix):
        raise MalformedInput(f"{what}: expected text starting with {prefix!r}")
    return b64u_decode(text[len(prefix) :], length=KEY_BYTES, what=what)


def safety_code(raw_digest: bytes) -> str:
    """A short code a person compares on two screens: four groups of five digits.

    Each group is five digest bytes read as a big-endian integer modulo
    100000 (the construction of Signal's safety numbers), giving about 66 bits
    that an attacker would have to match for a key of its own.
    """
    if len(raw_digest) < 20:
        raise ValueError("safety_code needs at least 20 digest bytes")
    groups = (int.from_bytes(raw_digest[i : i + 5], "big") % 100000 for i in range(0, 20, 5))
    return " ".join(f"{g:05d}" for g in groups)


@dataclass(frozen=True)
class HpkePublicKey:
    """An X25519 public key that HPKE seals to."""

    raw: bytes
    """The 32-byte RFC 7748 encoding."""

    def __post_init__(self) -> None:
        if len(self.raw) != KEY_BYTES:
            raise MalformedInput("HPKE public key: expected 32 bytes")
        if _clear_top_bit(self.raw) in _X25519_LOW_ORDER:
            raise MalformedInput("HPKE public key: small-order point")

    @classmethod
    def from_text(cls, text: object) -> HpkePublicKey:
        return cls(_from_text(text, labels.KEY_HPKE_PUBLIC, "HPKE public key"))

    def to_text(self) -> str:
        return labels.KEY_HPKE_PUBLIC + b64u_encode(self.raw)

    def fingerprint(self) -> str:
        """``sha256:`` digest of the text form under the key-fingerprint label."""
        return digest(labels.FINGERPRINT_KEY, self.to_text().encode("ascii"))

    def safety_code(self) -> str:
        return safety_code(digest_bytes(labels.FINGERPRINT_KEY, self.to_text().encode("ascii")))

    def _to_library(self) -> x25519.X25519PublicKey:
        return x25519.X25519PublicKey.from_public_bytes(self.raw)


@dataclass(frozen=True)
class HpkePrivateKey:
    """An X25519 private key: an approver's long-term key or a requester's one-time key."""

    _key: x25519.X25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> HpkePrivateKey:
        return cls._from_seed(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def _from_seed(cls, seed: bytes) -> HpkePrivateKey:
        """Deterministic construction for vectors: the 32 bytes are the RFC 7748 scalar."""
        return cls(x25519.X25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_text(cls, text: object) -> HpkePrivateKey:
        return cls._from_seed(_from_text(text, labels.KEY_HPKE_PRIVATE, "HPKE private key"))

    def to_text(self) -> str:
        raw = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return labels.KEY_HPKE_PRIVATE + b64u_encode(raw)

    def public_key(self) -> HpkePublicKey:
        return HpkePublicKey(self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def _to_library(self) -> x25519.X25519PrivateKey:
        return self._key


# Ed25519 (RFC 8032 section 5.1): the field prime, the curve constant d and sqrt(-1).
_P = 2**255 - 19
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _double(point: tuple[int, int, int]) -> tuple[int, int, int]:
    """Point doubling in projective coordinates (a = -1), no inversion (RFC 8032 5.1.4)."""
    x, y, z = point
    a, b, c = x * x % _P, y * y % _P, 2 * z * z % _P
    h = a + b
    e = (h - (x + y) * (x + y)) % _P
    g = (a - b) % _P
    f = (c + g) % _P
    return e * f % _P, g * h % _P, f * g % _P


@functools.lru_cache(maxsize=4096)
def _check_ed25519_public(raw: bytes) -> None:
    """Refuse public keys that pyca/OpenSSL load but that no honest signer has.

    pyca accepts any 32 bytes as an Ed25519 public key.  That admits
    encodings that are not points at all, non-canonical encodings (one key,
    two spellings), and the eight points of small order, among them the
    identity, under which the signature (R = B, S = 1) verifies for *every*
    message.  A certificate carrying such a key would let anyone sign as that
    client.  Written here because no library in our stack exposes point
    validation; it decodes as RFC 8032 section 5.1.3 does and multiplies by
    the cofactor 8 (three doublings): only small-order points reach the
    identity.  Public keys only, so nothing secret flows through this code,
    and the verdicts are cached (keys recur: directory and certificate keys).
    """
    encoded = int.from_bytes(raw, "little")
    sign, y = encoded >> 255, encoded & ((1 << 255) - 1)
    if y >= _P:
        raise MalformedInput("signing public key: non-canonical encoding")
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    # x = u v^3 (u v^7)^((p - 5) / 8): the square root of u / v with one exponentiation.
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    vx2 = v * x * x % _P
    if vx2 == (-u) % _P and u:
        x = x * _SQRT_M1 % _P
    elif vx2 != u:
        raise MalformedInput("signing public key: not a point on Ed25519")
    if x == 0 and sign:
        raise MalformedInput("signing public key: non-canonical encoding")
    if x & 1 != sign:
        x = _P - x
    point = (x, y, 1)
    for _ in range(3):
        point = _double(point)
    if point[0] == 0 and point[1] == point[2]:
        raise MalformedInput("signing public key: small-order point")


@dataclass(frozen=True)
class VerifyKey:
    """An Ed25519 public key that verifies sealbox statements."""

    raw: bytes
    """The 32-byte RFC 8032 encoding."""

    def __post_init__(self) -> None:
        if len(self.raw) != KEY_BYTES:
            raise MalformedInput("signing public key: expected 32 bytes")
        _check_ed25519_public(self.raw)

    @classmethod
    def from_text(cls, text: object) -> VerifyKey:
        return cls(_from_text(text, labels.KEY_SIGN_PUBLIC, "signing public key"))

    def to_text(self) -> str:
        return labels.KEY_SIGN_PUBLIC + b64u_encode(self.raw)

    def fingerprint(self) -> str:
        return digest(labels.FINGERPRINT_KEY, self.to_text().encode("ascii"))

    def safety_code(self) -> str:
        return safety_code(digest_bytes(labels.FINGERPRINT_KEY, self.to_text().encode("ascii")))

    def to_pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM, for libraries (RFC 9421) that take keys that way."""
        return ed25519.Ed25519PublicKey.from_public_bytes(self.raw).public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )

    def verify(self, signature: bytes, message: bytes) -> None:
        """Raise :class:`SignatureInvalid` unless ``signature`` is valid for ``message``."""
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
        except InvalidSignature:
            raise SignatureInvalid("signature does not verify") from None


@dataclass(frozen=True)
class SigningKey:
    """An Ed25519 private key: an approver's, a client's, or an enrollment delegation key."""

    _key: ed25519.Ed25519PrivateKey = field(repr=False)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls._from_seed(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def _from_seed(cls, seed: bytes) -> SigningKey:
        """Deterministic construction for vectors: the 32-byte RFC 8032 seed."""
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(seed))

    @classmethod
    def from_text(cls, text: object) -> SigningKey:
        return cls._from_seed(_from_text(text, labels.KEY_SIGN_PRIVATE, "signing private key"))

    def to_text(self) -> str:
        raw = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return labels.KEY_SIGN_PRIVATE + b64u_encode(raw)

    def verify_key(self) -> VerifyKey:
        return VerifyKey(self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def to_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM, for libraries (RFC 9421) that take keys that way.

        For handing to a signer in the same process only; never write it out.
        """
        return self._key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
