"""Bearer tokens and the relay's at-rest layer: random tokens, their hashes, wrapped data keys.

The at-rest layer is defence in depth for the relay's database: field
ciphertexts and wrapped shares are already sealed to keys the relay never
holds.  It keeps a stolen database file from being even that useful without
the master key, and it binds every stored blob to its row.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealbox.crypto import labels
from sealbox.crypto.encoding import b64u_encode, length_prefixed
from sealbox.errors import DecryptionFailed, MalformedInput

__all__ = [
    "KEY_BYTES",
    "constant_time_equal",
    "key_id",
    "new_key",
    "new_token",
    "open_at_rest",
    "seal_at_rest",
    "token_hash",
    "unwrap_key",
    "wrap_key",
]

KEY_BYTES = 32
_NONCE = 12


def new_token(prefix: str) -> str:
    """A bearer token: a kind prefix (``sbx_at_``, ``sbx_rt_``…) and 256 random bits."""
    return prefix + b64u_encode(_secrets.token_bytes(32))


def token_hash(token: str) -> str:
    """What the relay stores instead of a token: hex SHA-256 under a label."""
    return hashlib.sha256(length_prefixed(labels.HASH_TOKEN, token)).hexdigest()


def constant_time_equal(a: str, b: str) -> bool:
    """Compare two secrets (or their hashes) without a timing side channel."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def new_key() -> bytes:
    return _secrets.token_bytes(KEY_BYTES)


def key_id(key: bytes) -> str:
    """A name for a key that reveals nothing about it (to tell which KEK wrapped a DEK)."""
    return hashlib.sha256(length_prefixed(labels.HASH_KEY_ID, key)).hexdigest()


def _check(key: bytes) -> AESGCM:
    if len(key) != KEY_BYTES:
        raise MalformedInput("at-rest key: expected 32 bytes")
    return AESGCM(key)


def seal_at_rest(key: bytes, data: bytes, *context: str | int) -> bytes:
    """AES-256-GCM with a random nonce; ``context`` (the row identity) is the aad."""
    nonce = _secrets.token_bytes(_NONCE)
    return nonce + _check(key).encrypt(nonce, data, length_prefixed(labels.AEAD_AT_REST, *context))


def open_at_rest(key: bytes, sealed: bytes, *context: str | int) -> bytes:
    if len(sealed) < _NONCE + 16:
        raise DecryptionFailed("at-rest blob is too short")
    try:
        return _check(key).decrypt(
            sealed[:_NONCE], sealed[_NONCE:], length_prefixed(labels.AEAD_AT_REST, *context)
        )
    except InvalidTag:
        raise DecryptionFailed("at-rest blob does not open with this key and row") from None


def wrap_key(kek: bytes, dek: bytes, *context: str) -> bytes:
    return seal_at_rest(kek, dek, "data-key", *context)


def unwrap_key(kek: bytes, wrapped: bytes, *context: str) -> bytes:
    return open_at_rest(kek, wrapped, "data-key", *context)
