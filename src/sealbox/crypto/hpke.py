"""HPKE (RFC 9180) base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.

sealbox seals single messages, so the wire form is the one of pyca's
single-shot API: ``enc || ciphertext`` (32-byte encapsulated key, then the
AEAD ciphertext with its 16-byte tag), sequence number 0, empty AEAD aad.
Context is bound only through ``info``, built by :func:`info` from a label
and length-prefixed parts, so a blob sealed for one context never opens in
another.

Sealing and opening go through ``cryptography.hazmat.primitives.hpke``.
That API draws the ephemeral key itself, which is right for use but makes
reproducible test vectors impossible; :func:`_seal_from_parts` is therefore a
small hand-written RFC 9180 sender whose ephemeral key comes from ``ikmE``
(RFC 9180 section 7.1.3, DeriveKeyPair).  It is used only where randomness is
injected (vector generation), and the tests hold it to the RFC's own vectors
byte for byte and open its output with pyca and with pyhpke.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hpke import AEAD, KDF, KEM, Suite
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sealbox.crypto.encoding import length_prefixed
from sealbox.crypto.keys import HpkePrivateKey, HpkePublicKey
from sealbox.errors import DecryptionFailed, MalformedInput

__all__ = ["ENC_BYTES", "OVERHEAD", "info", "open_sealed", "seal"]

ENC_BYTES = 32
TAG_BYTES = 16
#: Bytes a sealed blob adds to its plaintext.
OVERHEAD = ENC_BYTES + TAG_BYTES

_SUITE = Suite(KEM.X25519, KDF.HKDF_SHA256, AEAD.AES_256_GCM)

# RFC 9180 identifiers of the suite above (sections 7.1-7.3).
_KEM_ID = 0x0020
_KDF_ID = 0x0001
_AEAD_ID = 0x0002
_KEM_SUITE_ID = b"KEM" + _KEM_ID.to_bytes(2, "big")
_HPKE_SUITE_ID = (
    b"HPKE" + _KEM_ID.to_bytes(2, "big") + _KDF_ID.to_bytes(2, "big") + _AEAD_ID.to_bytes(2, "big")
)
_MODE_BASE = b"\x00"


def info(label: bytes, *parts: bytes | str | int) -> bytes:
    """The HPKE ``info`` for a context: the label and every part, length-prefixed."""
    return length_prefixed(label, *parts)


def seal(public_key: HpkePublicKey, plaintext: bytes, info: bytes) -> bytes:
    """Seal ``plaintext`` to ``public_key`` with a fresh ephemeral key."""
    return _SUITE.encrypt(plaintext, public_key._to_library(), info)


def open_sealed(private_key: HpkePrivateKey, blob: bytes, info: bytes) -> bytes:
    """Open a blob from :func:`seal`; raise :class:`DecryptionFailed` on any failure.

    Failure covers a wrong key, a wrong ``info`` (the blob was moved to
    another context), and any altered byte.  The reason is not told apart,
    on purpose.
    """
    if len(blob) < OVERHEAD:
        raise DecryptionFailed("sealed blob is too short")
    try:
        return _SUITE.decrypt(blob, private_key._to_library(), info)
    except (InvalidTag, ValueError):
        raise DecryptionFailed("sealed blob does not open for this key and context") from None


# --- Deterministic sender (vectors only) -----------------------------------------


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def _expand(prk: bytes, info_: bytes, length: int) -> bytes:
    return HKDFExpand(hashes.SHA256(), length, info_).derive(prk)


def _labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def _labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info_: bytes, length: int) -> bytes:
    labeled_info = length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info_
    return _expand(prk, labeled_info, length)


def _derive_key_pair(ikm: bytes) -> x25519.X25519PrivateKey:
    """RFC 9180 section 7.1.3 DeriveKeyPair for X25519."""
    dkp_prk = _labeled_extract(_KEM_SUITE_ID, b"", b"dkp_prk", ikm)
    sk = _labeled_expand(_KEM_SUITE_ID, dkp_prk, b"sk", b"", 32)
    return x25519.X25519PrivateKey.from_private_bytes(sk)


def _key_schedule(shared_secret: bytes, info_: bytes) -> tuple[bytes, bytes]:
    """RFC 9180 section 5.1, base mode (no PSK): returns (key, base_nonce)."""
    psk_id_hash = _labeled_extract(_HPKE_SUITE_ID, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(_HPKE_SUITE_ID, b"", b"info_hash", info_)
    context = _MODE_BASE + psk_id_hash + info_hash
    secret = _labeled_extract(_HPKE_SUITE_ID, shared_secret, b"secret", b"")
    key = _labeled_expand(_HPKE_SUITE_ID, secret, b"key", context, 32)
    base_nonce = _labeled_expand(_HPKE_SUITE_ID, secret, b"base_nonce", context, 12)
    return key, base_nonce


def _seal_from_parts(
    public_key: HpkePublicKey, plaintext: bytes, info: bytes, ikm_e: bytes, aad: bytes = b""
) -> bytes:
    """RFC 9180 SealBase with the ephemeral key derived from ``ikm_e``.

    ``aad`` exists only so the tests can replay the RFC vectors (which use a
    non-empty aad); sealbox itself always seals with an empty aad.
    """
    if len(ikm_e) < 32:
        raise ValueError("ikm_e must have at least 32 bytes")
    sk_e = _derive_key_pair(ikm_e)
    pk_r = public_key._to_library()
    try:
        dh = sk_e.exchange(pk_r)
    except ValueError:  # pragma: no cover - small-order keys are refused by HpkePublicKey
        raise MalformedInput("HPKE public key: small-order point") from None
    enc = sk_e.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    kem_context = enc + public_key.raw
    eae_prk = _labeled_extract(_KEM_SUITE_ID, b"", b"eae_prk", dh)
    shared_secret = _labeled_expand(_KEM_SUITE_ID, eae_prk, b"shared_secret", kem_context, 32)
    key, base_nonce = _key_schedule(shared_secret, info)
    return enc + AESGCM(key).encrypt(base_nonce, plaintext, aad)
