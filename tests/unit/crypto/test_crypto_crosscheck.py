"""Independent implementations hold ours to the standards, in both directions.

HPKE against pyhpke, JWS against joserfc and PyJWT, Shamir against pyshamir.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
import pyshamir
import pytest
from cryptography.hazmat.bindings._rust import openssl as rust_openssl
from joserfc import jws as joserfc_jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import OKPKey
from jwt.api_jws import PyJWS
from pyhpke import AEADId, CipherSuite, KDFId, KEMId

from sealbox.crypto import hpke, jws, labels, shamir
from sealbox.crypto.encoding import b64u_encode, canonical_json
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.errors import MalformedInput

PYHPKE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM)
RECIPIENT = HpkePrivateKey._from_seed(bytes(range(1, 33)))
INFO = hpke.info(labels.HPKE_SHARE_WRAP, "vault-1", "item-1", 3)
SIGNER = SigningKey._from_seed(bytes(range(100, 132)))
TYP = labels.TYP_ITEM
KID = "apv_aaaaaaaaaaaaaaaaaaaaaaaaaa"
PAYLOAD = {"item": "db-password", "version": 3, "fields": ["user", "pass"], "ok": True, "n": None}


# joserfc warns that "EdDSA" is deprecated by RFC 9864 (in favour of "Ed25519");
# sealbox deliberately uses the RFC 8037 name, so the warning is expected.
def joserfc_warning() -> pytest.WarningsRecorder:
    return pytest.warns(SecurityWarning, match="EdDSA is deprecated")


def _pyhpke_sk(key: HpkePrivateKey) -> Any:
    return PYHPKE.kem.deserialize_private_key(key._to_library().private_bytes_raw())


def _pyhpke_pk(key: HpkePrivateKey) -> Any:
    return PYHPKE.kem.deserialize_public_key(key.public_key().raw)


def _pyhpke_open(key: HpkePrivateKey, blob: bytes, info: bytes) -> bytes:
    enc, ct = blob[: hpke.ENC_BYTES], blob[hpke.ENC_BYTES :]
    return PYHPKE.create_recipient_context(enc, _pyhpke_sk(key), info).open(ct)


# --- HPKE ----------------------------------------------------------------------------


@pytest.mark.parametrize("plaintext", [b"", b"x", bytes(range(256)) * 5])
def test_our_seal_opens_with_pyhpke(plaintext: bytes) -> None:
    blob = hpke.seal(RECIPIENT.public_key(), plaintext, INFO)
    assert _pyhpke_open(RECIPIENT, blob, INFO) == plaintext


@pytest.mark.parametrize("plaintext", [b"", b"x", bytes(range(256)) * 5])
def test_pyhpke_seal_opens_with_ours(plaintext: bytes) -> None:
    enc, ctx = PYHPKE.create_sender_context(_pyhpke_pk(RECIPIENT), INFO)
    blob = enc + ctx.seal(plaintext)
    assert hpke.open_sealed(RECIPIENT, blob, INFO) == plaintext


def test_seal_from_parts_opens_with_library_and_pyhpke() -> None:
    pt = b"deterministic sender"
    blob = hpke._seal_from_parts(RECIPIENT.public_key(), pt, INFO, bytes(range(32, 64)))
    assert hpke.open_sealed(RECIPIENT, blob, INFO) == pt
    assert _pyhpke_open(RECIPIENT, blob, INFO) == pt
    # Same ikmE, same everything: byte-identical output.
    assert blob == hpke._seal_from_parts(RECIPIENT.public_key(), pt, INFO, bytes(range(32, 64)))


def test_seal_from_parts_with_aad_opens_with_library_and_pyhpke() -> None:
    pt, aad = b"with aad", b"associated"
    blob = hpke._seal_from_parts(RECIPIENT.public_key(), pt, INFO, bytes(32), aad=aad)
    sk = RECIPIENT._to_library()
    assert rust_openssl.hpke._decrypt_with_aad(hpke._SUITE, blob, sk, INFO, aad) == pt
    enc, ct = blob[: hpke.ENC_BYTES], blob[hpke.ENC_BYTES :]
    assert PYHPKE.create_recipient_context(enc, _pyhpke_sk(RECIPIENT), INFO).open(ct, aad) == pt


# --- JWS -----------------------------------------------------------------------------


def test_our_token_verifies_with_joserfc() -> None:
    token = jws.sign(SIGNER, TYP, KID, PAYLOAD)
    key = OKPKey.import_key(SIGNER._key.public_key())
    with joserfc_warning():
        obj = joserfc_jws.deserialize_compact(token, key, algorithms=["EdDSA"])
    assert obj.protected == {"alg": "EdDSA", "kid": KID, "typ": TYP}
    assert json.loads(obj.payload) == PAYLOAD


def test_our_token_verifies_with_pyjwt() -> None:
    token = jws.sign(SIGNER, TYP, KID, PAYLOAD)
    public = SIGNER._key.public_key()
    assert jwt.decode(token, public, algorithms=["EdDSA"]) == PAYLOAD
    decoded = PyJWS().decode_complete(token, public, algorithms=["EdDSA"])
    assert decoded["header"] == {"alg": "EdDSA", "kid": KID, "typ": TYP}
    assert decoded["payload"] == canonical_json(PAYLOAD)


def test_our_token_with_other_key_fails_in_pyjwt() -> None:
    token = jws.sign(SIGNER, TYP, KID, PAYLOAD)
    other = SigningKey._from_seed(bytes(32))._key.public_key()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other, algorithms=["EdDSA"])


def _joserfc_token(header: dict[str, str]) -> str:
    key = OKPKey.import_key(SIGNER._key)
    with joserfc_warning():
        return joserfc_jws.serialize_compact(
            header, canonical_json(PAYLOAD), key, algorithms=["EdDSA"]
        )


def test_joserfc_token_with_canonical_header_verifies_with_ours() -> None:
    # joserfc keeps the header's insertion order and writes no spaces, so a header
    # given in sorted order comes out canonical.
    token = _joserfc_token({"alg": "EdDSA", "kid": KID, "typ": TYP})
    assert jws.verify(token, SIGNER.verify_key(), typ=TYP, kid=KID) == PAYLOAD
    assert token == jws.sign(SIGNER, TYP, KID, PAYLOAD)  # Ed25519 is deterministic


def test_joserfc_token_with_unsorted_header_is_rejected_by_ours() -> None:
    token = _joserfc_token({"typ": TYP, "kid": KID, "alg": "EdDSA"})
    # The signature is valid (joserfc itself accepts it) ...
    key = OKPKey.import_key(SIGNER._key.public_key())
    with joserfc_warning():
        joserfc_jws.deserialize_compact(token, key, algorithms=["EdDSA"])
    # ... but the header is not in the one canonical form.
    with pytest.raises(MalformedInput, match="canonical"):
        jws.verify(token, SIGNER.verify_key(), typ=TYP, kid=KID)


def test_manually_built_canonical_token_verifies_with_ours_and_joserfc() -> None:
    header = b64u_encode(canonical_json({"alg": "EdDSA", "kid": KID, "typ": TYP}))
    signing_input = f"{header}.{b64u_encode(canonical_json(PAYLOAD))}"
    token = f"{signing_input}.{b64u_encode(SIGNER.sign(signing_input.encode('ascii')))}"
    assert jws.verify(token, SIGNER.verify_key(), typ=TYP, kid=KID) == PAYLOAD
    key = OKPKey.import_key(SIGNER._key.public_key())
    with joserfc_warning():
        joserfc_jws.deserialize_compact(token, key, algorithms=["EdDSA"])


# --- Shamir --------------------------------------------------------------------------


def _to_pyshamir(share: bytes) -> bytearray:
    return bytearray(share[1:] + share[:1])  # ours: x || y; pyshamir: y || x


def _from_pyshamir(part: bytearray) -> bytes:
    return bytes(part[-1:] + part[:-1])


SECRET = bytes(range(7, 39))


@pytest.mark.parametrize("threshold", [2, 3, 4, 5])
def test_our_shares_combine_with_pyshamir(threshold: int) -> None:
    holders = threshold + 2
    shares = shamir.split(SECRET, threshold, holders)
    for start in range(holders - threshold + 1):
        subset = shares[start : start + threshold]
        assert bytes(pyshamir.combine([_to_pyshamir(s) for s in subset])) == SECRET
    # pyshamir interpolates through every point it is given: all holders work too.
    assert bytes(pyshamir.combine([_to_pyshamir(s) for s in shares])) == SECRET


@pytest.mark.parametrize("threshold", [2, 3, 4, 5])
def test_pyshamir_shares_combine_with_ours(threshold: int) -> None:
    holders = threshold + 2
    parts = pyshamir.split(SECRET, holders, threshold)
    shares = [_from_pyshamir(p) for p in parts]
    for start in range(holders - threshold + 1):
        assert shamir.combine(shares[start:], threshold) == SECRET
    assert shamir.combine(list(reversed(shares)), threshold) == SECRET
