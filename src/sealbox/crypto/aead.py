"""Field encryption: AES-256-GCM under a fresh key per field per version.

The aad binds the vault, item id, version and field name, so a ciphertext
moved by the relay to another field, version, item or vault fails to open
even under the right key.
"""

from __future__ import annotations

import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealbox.crypto import labels
from sealbox.crypto.encoding import length_prefixed
from sealbox.crypto.keys import RandomBytes
from sealbox.errors import DecryptionFailed, MalformedInput

__all__ = [
    "FIELD_KEY_BYTES",
    "NONCE_BYTES",
    "decrypt_field",
    "encrypt_field",
    "field_aad",
    "new_field_key",
]

FIELD_KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


def field_aad(*, vault: str, item: str, version: int, field: str) -> bytes:
    """The aad that ties a field ciphertext to its one place."""
    return length_prefixed(labels.AEAD_FIELD, vault, item, version, field)


def new_field_key(random: RandomBytes = secrets.token_bytes) -> bytes:
    """A fresh 256-bit field key."""
    key = random(FIELD_KEY_BYTES)
    if len(key) != FIELD_KEY_BYTES:
        raise ValueError("random source returned the wrong length")
    return key


def encrypt_field(
    key: bytes,
    plaintext: bytes,
    *,
    vault: str,
    item: str,
    version: int,
    field: str,
    random: RandomBytes = secrets.token_bytes,
) -> tuple[bytes, bytes]:
    """Encrypt one field value; return ``(nonce, ciphertext_with_tag)``.

    A key is used for exactly one field of one version, so a random 96-bit
    nonce is far from any collision bound; it is random anyway so that a
    caller bug that reuses a key does not also reuse a nonce.
    """
    nonce = random(NONCE_BYTES)
    if len(nonce) != NONCE_BYTES:
        raise ValueError("random source returned the wrong length")
    aad = field_aad(vault=vault, item=item, version=version, field=field)
    return nonce, AESGCM(_check_key(key)).encrypt(nonce, plaintext, aad)


def decrypt_field(
    key: bytes, nonce: bytes, ciphertext: bytes, *, vault: str, item: str, version: int, field: str
) -> bytes:
    """Decrypt one field value; raise :class:`DecryptionFailed` on any mismatch."""
    if len(nonce) != NONCE_BYTES:
        raise MalformedInput("field nonce: expected 12 bytes")
    if len(ciphertext) < TAG_BYTES:
        raise DecryptionFailed("field ciphertext is too short")
    aad = field_aad(vault=vault, item=item, version=version, field=field)
    try:
        return AESGCM(_check_key(key)).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise DecryptionFailed(f"field {field!r} does not decrypt in this context") from None


def _check_key(key: bytes) -> bytes:
    if len(key) != FIELD_KEY_BYTES:
        raise MalformedInput("field key: expected 32 bytes")
    return key
