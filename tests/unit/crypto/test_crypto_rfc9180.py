"""RFC 9180 official test vectors for the one suite sealbox uses.

The vectors ship with the ``cryptography-vectors`` package (the pyca project's
copy of the RFC's test-vectors.json).  Only mode 0 (base), DHKEM(X25519,
HKDF-SHA256), HKDF-SHA256, AES-256-GCM applies to sealbox.
"""

from __future__ import annotations

import json
from typing import Any

import cryptography_vectors
import pytest
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from sealbox.crypto import hpke
from sealbox.crypto.keys import HpkePrivateKey, HpkePublicKey


def _load_vector() -> dict[str, Any]:
    with cryptography_vectors.open_vector_file("HPKE/test-vectors.json", "r") as f:
        vectors = json.load(f)
    selected = [
        v
        for v in vectors
        if v["mode"] == 0 and v["kem_id"] == 0x20 and v["kdf_id"] == 1 and v["aead_id"] == 2
    ]
    assert len(selected) == 1, "expected exactly one base-mode X25519/SHA256/AES256 vector"
    return selected[0]


VECTOR = _load_vector()


def h(name: str) -> bytes:
    return bytes.fromhex(VECTOR[name])


def first_encryption() -> dict[str, bytes]:
    enc0 = VECTOR["encryptions"][0]
    # Sequence number 0 uses the base nonce unchanged: the only one sealbox ever uses.
    assert bytes.fromhex(enc0["nonce"]) == h("base_nonce")
    return {k: bytes.fromhex(v) for k, v in enc0.items()}


def test_suite_identifiers_match_the_vector() -> None:
    assert (
        VECTOR["kem_id"],
        VECTOR["kdf_id"],
        VECTOR["aead_id"],
    ) == (hpke._KEM_ID, hpke._KDF_ID, hpke._AEAD_ID)
    assert h("enc") == h("pkEm")


def test_seal_from_parts_reproduces_enc_and_ciphertext() -> None:
    e = first_encryption()
    pk = HpkePublicKey(h("pkRm"))
    blob = hpke._seal_from_parts(pk, e["pt"], h("info"), h("ikmE"), aad=e["aad"])
    assert blob[: hpke.ENC_BYTES] == h("enc")
    assert blob[hpke.ENC_BYTES :] == e["ct"]
    assert blob == h("enc") + e["ct"]


def test_library_opens_vector_ciphertext_with_aad() -> None:
    # The public pyca API has no aad parameter; this private hook is test-only.
    e = first_encryption()
    sk = HpkePrivateKey._from_seed(h("skRm"))._to_library()
    pt = rust_openssl.hpke._decrypt_with_aad(
        hpke._SUITE, h("enc") + e["ct"], sk, h("info"), e["aad"]
    )
    assert pt == e["pt"]


def test_recipient_key_from_seed_matches_vector() -> None:
    sk = HpkePrivateKey._from_seed(h("skRm"))
    assert sk.public_key().raw == h("pkRm")
    assert sk.public_key() == HpkePublicKey(h("pkRm"))


def test_derive_key_pair_matches_vector() -> None:
    sk_e = hpke._derive_key_pair(h("ikmE"))
    assert sk_e.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()) == h("skEm")
    assert sk_e.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) == h("pkEm")
    sk_r = hpke._derive_key_pair(h("ikmR"))
    assert sk_r.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()) == h("skRm")


def test_key_schedule_matches_vector() -> None:
    key, base_nonce = hpke._key_schedule(h("shared_secret"), h("info"))
    assert key == h("key")
    assert base_nonce == h("base_nonce")


def test_seal_from_parts_with_empty_aad_opens_through_public_api() -> None:
    pt = b"sealbox uses an empty aad"
    blob = hpke._seal_from_parts(HpkePublicKey(h("pkRm")), pt, h("info"), h("ikmE"))
    assert hpke.open_sealed(HpkePrivateKey._from_seed(h("skRm")), blob, h("info")) == pt


def test_seal_from_parts_rejects_short_ikm() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        hpke._seal_from_parts(HpkePublicKey(h("pkRm")), b"x", b"info", h("ikmE")[:31])
