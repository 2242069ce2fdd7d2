"""Field AEAD: aad binding, input checks, failure mapping."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealbox.crypto import aead, labels
from sealbox.crypto.encoding import length_prefixed
from sealbox.crypto.keys import RandomBytes
from sealbox.errors import DecryptionFailed, MalformedInput

KEY = bytes(range(32))
WHERE = {"vault": "vault-1", "item": "db", "version": 7, "field": "password"}


def _fixed(value: bytes) -> RandomBytes:
    return lambda n: value


def test_field_aad_layout() -> None:
    assert aead.field_aad(**WHERE) == length_prefixed(
        labels.AEAD_FIELD, "vault-1", "db", 7, "password"
    )


def test_encrypt_field_is_aes_256_gcm_with_the_field_aad() -> None:
    nonce = bytes(range(12))
    got = aead.encrypt_field(KEY, b"hunter2", random=_fixed(nonce), **WHERE)
    assert got == (nonce, AESGCM(KEY).encrypt(nonce, b"hunter2", aead.field_aad(**WHERE)))
    assert aead.decrypt_field(KEY, *got, **WHERE) == b"hunter2"


def test_default_randomness() -> None:
    key = aead.new_field_key()
    assert len(key) == aead.FIELD_KEY_BYTES == 32
    assert key != aead.new_field_key()
    n1, c1 = aead.encrypt_field(key, b"x", **WHERE)
    n2, c2 = aead.encrypt_field(key, b"x", **WHERE)
    assert len(n1) == aead.NONCE_BYTES == 12
    assert n1 != n2
    assert c1 != c2


def test_new_field_key_with_injected_random() -> None:
    assert aead.new_field_key(_fixed(KEY)) == KEY
    for bad in [bytes(31), bytes(33)]:
        with pytest.raises(ValueError, match="wrong length"):
            aead.new_field_key(_fixed(bad))


def test_encrypt_rejects_bad_random_and_bad_key() -> None:
    for bad in [bytes(11), bytes(13)]:
        with pytest.raises(ValueError, match="wrong length"):
            aead.encrypt_field(KEY, b"x", random=_fixed(bad), **WHERE)
    for key in [b"", bytes(16), bytes(24), bytes(33)]:
        with pytest.raises(MalformedInput, match="field key: expected 32 bytes"):
            aead.encrypt_field(key, b"x", **WHERE)


def test_decrypt_input_checks() -> None:
    nonce, ct = aead.encrypt_field(KEY, b"value", **WHERE)
    for bad_nonce in [b"", nonce[:11], nonce + b"\x00"]:
        with pytest.raises(MalformedInput, match="field nonce: expected 12 bytes"):
            aead.decrypt_field(KEY, bad_nonce, ct, **WHERE)
    for short in [b"", ct[:15]]:
        with pytest.raises(DecryptionFailed, match="too short"):
            aead.decrypt_field(KEY, nonce, short, **WHERE)
    for key in [bytes(16), bytes(31)]:
        with pytest.raises(MalformedInput, match="field key: expected 32 bytes"):
            aead.decrypt_field(key, nonce, ct, **WHERE)


def test_empty_plaintext_is_just_a_tag() -> None:
    nonce, ct = aead.encrypt_field(KEY, b"", **WHERE)
    assert len(ct) == aead.TAG_BYTES
    assert aead.decrypt_field(KEY, nonce, ct, **WHERE) == b""


def test_wrong_key_or_moved_ciphertext_fails() -> None:
    nonce, ct = aead.encrypt_field(KEY, b"value", **WHERE)
    with pytest.raises(DecryptionFailed, match="field 'password' does not decrypt"):
        aead.decrypt_field(bytes(32), nonce, ct, **WHERE)
    for name, value in [("vault", "vault-2"), ("item", "db2"), ("version", 8), ("field", "user")]:
        with pytest.raises(DecryptionFailed):
            aead.decrypt_field(KEY, nonce, ct, **{**WHERE, name: value})


def test_parts_cannot_shift_between_vault_and_item() -> None:
    nonce, ct = aead.encrypt_field(KEY, b"v", vault="ab", item="c", version=1, field="f")
    with pytest.raises(DecryptionFailed):
        aead.decrypt_field(KEY, nonce, ct, vault="a", item="bc", version=1, field="f")


def test_error_carries_no_secret_material() -> None:
    nonce, ct = aead.encrypt_field(KEY, b"TOPSECRET", **WHERE)
    with pytest.raises(DecryptionFailed) as info:
        aead.decrypt_field(bytes(32), nonce, ct, **WHERE)
    assert "TOPSECRET" not in str(info.value)
    assert KEY.hex() not in str(info.value)
    assert info.value.__cause__ is None
