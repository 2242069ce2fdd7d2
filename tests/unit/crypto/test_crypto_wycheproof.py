"""Wycheproof vectors (C2SP/wycheproof, Apache-2.0; see tests/vectors/SOURCE.md).

They run through sealbox's own key types and helpers wherever those sit on the
primitive, and through the library primitive where sealbox adds nothing but a
fixed parameter choice (AES-256-GCM with 96-bit nonces and 128-bit tags).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealbox.crypto import aead, hpke, jws, keys
from sealbox.crypto.encoding import b64u_encode
from sealbox.crypto.keys import HpkePrivateKey, HpkePublicKey, VerifyKey
from sealbox.errors import DecryptionFailed, MalformedInput, SignatureInvalid

WYCHEPROOF = Path(__file__).resolve().parents[2] / "vectors" / "wycheproof"


@cache
def _load(name: str) -> dict[str, Any]:
    with (WYCHEPROOF / name).open(encoding="utf-8") as f:
        return json.load(f)


def _cases(name: str, group_filter: Any = None) -> list[Any]:
    data = _load(name)
    out = []
    for group in data["testGroups"]:
        if group_filter is not None and not group_filter(group):
            continue
        for test in group["tests"]:
            out.append(pytest.param(group, test, id=f"tc{test['tcId']}"))
    assert out, f"no vectors selected from {name}"
    return out


# --- Ed25519 ---------------------------------------------------------------------

ED25519 = _cases("ed25519_test.json")


@pytest.mark.parametrize(("group", "test"), ED25519)
def test_ed25519_verify(group: dict[str, Any], test: dict[str, Any]) -> None:
    key = VerifyKey(bytes.fromhex(group["publicKey"]["pk"]))
    sig, msg = bytes.fromhex(test["sig"]), bytes.fromhex(test["msg"])
    if test["result"] == "valid":
        key.verify(sig, msg)
    else:
        assert test["result"] == "invalid"
        # VerifyKey.verify's contract: anything that is not a valid signature, including a
        # signature of the wrong length, is SignatureInvalid.  Length is a *format* error
        # only where a format fixes it (the JWS layer, see below).
        with pytest.raises(SignatureInvalid):
            key.verify(sig, msg)


@pytest.mark.parametrize(
    ("group", "test"),
    [p for p in ED25519 if len(p.values[1]["sig"]) != 128],
)
def test_ed25519_wrong_length_signature_is_malformed_in_jws(
    group: dict[str, Any], test: dict[str, Any]
) -> None:
    key = VerifyKey(bytes.fromhex(group["publicKey"]["pk"]))
    header = b64u_encode(
        b'{"alg":"EdDSA","kid":"apv_aaaaaaaaaaaaaaaaaaaaaaaaaa","typ":"sealbox.item.v1"}'
    )
    token = f"{header}.{b64u_encode(b'{}')}.{b64u_encode(bytes.fromhex(test['sig']))}"
    with pytest.raises(MalformedInput, match="expected 64 bytes"):
        jws.verify(token, key, typ="sealbox.item.v1", kid="apv_aaaaaaaaaaaaaaaaaaaaaaaaaa")


def test_ed25519_vector_counts() -> None:
    results = [p.values[1]["result"] for p in ED25519]
    assert results.count("valid") > 50
    assert results.count("invalid") > 50


# --- X25519 ------------------------------------------------------------------------

X25519 = _cases("x25519_test.json", lambda g: g["curve"] == "curve25519")
ZERO = bytes(32)


@pytest.mark.parametrize(("group", "test"), X25519)
def test_x25519_exchange(group: dict[str, Any], test: dict[str, Any]) -> None:
    assert test["result"] in {"valid", "acceptable"}
    public, shared = bytes.fromhex(test["public"]), bytes.fromhex(test["shared"])
    private = HpkePrivateKey._from_seed(bytes.fromhex(test["private"]))
    library_public = x25519.X25519PublicKey.from_public_bytes(public)
    if shared == ZERO:
        # Exactly the low-order points (with or without bit 255 set): our key type
        # refuses them, and the library refuses the exchange and the HPKE seal.
        assert "ZeroSharedSecret" in test["flags"]
        with pytest.raises(MalformedInput, match="small-order point"):
            HpkePublicKey(public)
        with pytest.raises(ValueError, match="shared key"):
            private._to_library().exchange(library_public)
        with pytest.raises(ValueError, match="shared key"):
            hpke._SUITE.encrypt(b"pt", library_public, b"info")
        return
    pk = HpkePublicKey(public)
    assert private._to_library().exchange(pk._to_library()) == shared
    # Sealing to every other accepted key works (twist points and non-canonical
    # encodings included: RFC 7748 section 5 defines them).
    blob = hpke.seal(pk, b"pt", b"info")
    assert len(blob) == 2 + hpke.OVERHEAD


def test_x25519_rejection_list_is_exactly_the_zero_shared_secret_keys() -> None:
    tests = [p.values[1] for p in X25519]
    zero = {bytes.fromhex(t["public"]) for t in tests if bytes.fromhex(t["shared"]) == ZERO}
    assert len(zero) == 14
    for public in zero:
        assert keys._clear_top_bit(public) in keys._X25519_LOW_ORDER
    assert {keys._clear_top_bit(p) for p in zero} == keys._X25519_LOW_ORDER


def test_x25519_our_public_key_derivation_matches_library() -> None:
    for param in X25519[:20]:
        test = param.values[1]
        seed = bytes.fromhex(test["private"])
        ours = HpkePrivateKey._from_seed(seed).public_key().raw
        library = x25519.X25519PrivateKey.from_private_bytes(seed).public_key()
        assert ours == library.public_bytes_raw()


# --- AES-256-GCM -------------------------------------------------------------------

AES_GCM = _cases(
    "aes_gcm_test.json",
    lambda g: (g["keySize"], g["ivSize"], g["tagSize"]) == (256, 96, 128),
)


@pytest.mark.parametrize(("group", "test"), AES_GCM)
def test_aes_gcm_primitive(group: dict[str, Any], test: dict[str, Any]) -> None:
    key, iv, aad_ = (bytes.fromhex(test[k]) for k in ("key", "iv", "aad"))
    msg, ct, tag = (bytes.fromhex(test[k]) for k in ("msg", "ct", "tag"))
    cipher = AESGCM(key)
    if test["result"] == "valid":
        assert cipher.encrypt(iv, msg, aad_) == ct + tag
        assert cipher.decrypt(iv, ct + tag, aad_) == msg
    else:
        assert test["result"] == "invalid"
        with pytest.raises(InvalidTag):
            cipher.decrypt(iv, ct + tag, aad_)


@pytest.mark.parametrize(("group", "test"), AES_GCM)
def test_aes_gcm_through_field_functions(
    group: dict[str, Any], test: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # field_aad is the only thing in encrypt_field/decrypt_field a vector cannot reach;
    # replace it with the vector's aad and run the rest of our code path unchanged.
    key, iv, aad_ = (bytes.fromhex(test[k]) for k in ("key", "iv", "aad"))
    msg, ct, tag = (bytes.fromhex(test[k]) for k in ("msg", "ct", "tag"))
    monkeypatch.setattr(aead, "field_aad", lambda **_: aad_)
    where = {"vault": "v", "item": "i", "version": 1, "field": "f"}
    if test["result"] == "valid":
        assert aead.encrypt_field(key, msg, random=lambda n: iv, **where) == (iv, ct + tag)
        assert aead.decrypt_field(key, iv, ct + tag, **where) == msg
    else:
        with pytest.raises(DecryptionFailed):
            aead.decrypt_field(key, iv, ct + tag, **where)


# --- HKDF-SHA256 -------------------------------------------------------------------

HKDF = _cases("hkdf_sha256_test.json")


@pytest.mark.parametrize(("group", "test"), HKDF)
def test_hkdf_sha256_extract_expand(group: dict[str, Any], test: dict[str, Any]) -> None:
    ikm, salt, info_ = (bytes.fromhex(test[k]) for k in ("ikm", "salt", "info"))
    prk = hpke._extract(salt, ikm)
    assert len(prk) == 32
    if test["result"] == "valid":
        assert hpke._expand(prk, info_, test["size"]) == bytes.fromhex(test["okm"])
    else:
        assert "SizeTooLarge" in test["flags"]
        assert test["size"] > 255 * 32
        with pytest.raises(ValueError, match="Cannot derive keys larger than"):
            hpke._expand(prk, info_, test["size"])
