"""Share links: one value sealed under a key that travels only in the link's fragment.

The sender's client makes a fresh 256-bit key, seals the value with AES-256-GCM
and uploads only the nonce and ciphertext; the key goes into the link's
fragment (``/s/ID#KEY``), which a browser never sends to any server.  The aad
binds the label and the share id, so a ciphertext the relay moves under
another share's id fails to open even under the right key.

The relay's part is an optional passphrase, checked as access control on top
(the value's secrecy never depends on it): it keeps only an Argon2id hash and
checks a guess with argon2's own verification, which compares in constant time.

Opening also needs the link's *open token*: HKDF-SHA256 of the key (info: the
versioned label and the share id), which the sender's client derives and whose
SHA-256 alone it uploads.  The share id alone (from an audit entry, an access
log, or a link whose fragment was cut) therefore cannot spend or destroy a
share.  The token is a one-way derivation of the key, and the relay sees only
its hash at create and the token itself at open: neither gives the key back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sealbox.crypto import labels
from sealbox.crypto.encoding import length_prefixed
from sealbox.crypto.keys import RandomBytes
from sealbox.errors import DecryptionFailed, MalformedInput, NotAuthorized

__all__ = [
    "NONCE_BYTES",
    "OPEN_TOKEN_BYTES",
    "SHARE_KEY_BYTES",
    "TAG_BYTES",
    "check_open_token",
    "hash_passphrase",
    "new_share_key",
    "open_share",
    "open_token",
    "open_token_hash",
    "seal_share",
    "share_aad",
    "verify_passphrase",
]

SHARE_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
OPEN_TOKEN_BYTES = 32

#: Argon2id at OWASP's first recommended setting (19 MiB, t=2, p=1): the relay computes one
#: per creation and per guess, so a lower memory cost than a key file's bounds what a burst
#: of opens (each source address is rate limited) can take, and a share dies at its first
#: wrong guess anyway, so the hash resists only an offline attack on a stolen database.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32,
                         salt_len=16)  # fmt: skip
#: The only hash prefix the relay wrote: a stored hash with other parameters is refused
#: rather than verified, so a tampered row cannot make one check cost gigabytes.
_HASH_PREFIX = "$argon2id$v=19$m=19456,t=2,p=1$"


def share_aad(share_id: str) -> bytes:
    """The aad that ties a share's ciphertext to its one share id."""
    return length_prefixed(labels.AEAD_SHARE, share_id)


def open_token(key: bytes, *, share_id: str) -> bytes:
    """The token that opening the share needs: HKDF-SHA256 of the key, bound to the id.

    One-way: the relay, which sees this token (and stores only its hash), cannot
    get the key back from it, so the value stays out of its reach.
    """
    return HKDF(
        algorithm=hashes.SHA256(), length=OPEN_TOKEN_BYTES, salt=None,
        info=length_prefixed(labels.SHARE_OPEN, share_id),
    ).derive(_check_key(key))  # fmt: skip


def open_token_hash(token: bytes) -> bytes:
    """What the relay stores for an open token: its SHA-256."""
    if len(token) != OPEN_TOKEN_BYTES:
        raise MalformedInput("share open token: expected 32 bytes")
    return hashlib.sha256(token).digest()


def check_open_token(stored_hash: bytes, token: bytes | None) -> bool:
    """Whether ``token`` is the one whose hash the relay stored, compared in constant time."""
    if token is None or len(token) != OPEN_TOKEN_BYTES:
        return False
    return hmac.compare_digest(hashlib.sha256(token).digest(), stored_hash)


def new_share_key(random: RandomBytes = secrets.token_bytes) -> bytes:
    """A fresh 256-bit share key (it will live in the link's fragment only)."""
    key = random(SHARE_KEY_BYTES)
    if len(key) != SHARE_KEY_BYTES:
        raise ValueError("random source returned the wrong length")
    return key


def seal_share(
    key: bytes, plaintext: bytes, *, share_id: str, random: RandomBytes = secrets.token_bytes
) -> tuple[bytes, bytes]:
    """Seal a share's value; return ``(nonce, ciphertext_with_tag)``.

    A key seals exactly one value, so the random nonce only guards against a
    caller that reuses a key by mistake.
    """
    nonce = random(NONCE_BYTES)
    if len(nonce) != NONCE_BYTES:
        raise ValueError("random source returned the wrong length")
    return nonce, AESGCM(_check_key(key)).encrypt(nonce, plaintext, share_aad(share_id))


def open_share(key: bytes, nonce: bytes, ciphertext: bytes, *, share_id: str) -> bytes:
    """Open a share's value; :class:`DecryptionFailed` on a wrong key, id or altered bytes."""
    if len(nonce) != NONCE_BYTES:
        raise MalformedInput("share nonce: expected 12 bytes")
    if len(ciphertext) < TAG_BYTES:
        raise DecryptionFailed("share ciphertext is too short")
    try:
        return AESGCM(_check_key(key)).decrypt(nonce, ciphertext, share_aad(share_id))
    except InvalidTag:
        raise DecryptionFailed(
            "the share does not decrypt with this link's key",
            hint="Check that the whole link was copied, including the part after '#'.",
        ) from None


def _normalise(passphrase: str) -> bytes:
    # A browser and a terminal may hand over the same typed text in different Unicode
    # forms (composed or not): both sides hash the NFC form.
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def hash_passphrase(passphrase: str) -> str:
    """The Argon2id hash (PHC string, fresh random salt) the relay stores for a share."""
    if not passphrase:
        raise ValueError("the passphrase must not be empty")
    return _HASHER.hash(_normalise(passphrase))


def verify_passphrase(encoded: str, passphrase: str) -> None:
    """Raise :class:`NotAuthorized` unless ``passphrase`` matches ``encoded``."""
    if not encoded.startswith(_HASH_PREFIX):
        raise MalformedInput("share passphrase hash: not one this relay writes")
    try:
        _HASHER.verify(encoded, _normalise(passphrase))
    except VerifyMismatchError:
        raise NotAuthorized("the passphrase does not match") from None
    except (InvalidHashError, VerificationError):
        raise MalformedInput("share passphrase hash: does not parse") from None


def _check_key(key: bytes) -> bytes:
    if len(key) != SHARE_KEY_BYTES:
        raise MalformedInput("share key: expected 32 bytes")
    return key
