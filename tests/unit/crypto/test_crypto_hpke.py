"""HPKE seal/open: context binding, failure mapping, the wire layout."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519

from sealbox.crypto import hpke, keys, labels
from sealbox.crypto.encoding import length_prefixed
from sealbox.crypto.keys import HpkePrivateKey
from sealbox.errors import DecryptionFailed

RECIPIENT = HpkePrivateKey._from_seed(bytes(range(1, 33)))
OTHER = HpkePrivateKey._from_seed(bytes(range(2, 34)))
INFO = hpke.info(labels.HPKE_SHARE_WRAP, "vault", "item", 1, "approver")


def test_constants() -> None:
    assert hpke.ENC_BYTES == 32
    assert hpke.TAG_BYTES == 16
    assert hpke.OVERHEAD == 48


def test_info_is_length_prefixed_label_and_parts() -> None:
    assert hpke.info(labels.HPKE_RELEASE, "a", 2) == length_prefixed(labels.HPKE_RELEASE, "a", 2)
    assert hpke.info(labels.HPKE_RELEASE) == length_prefixed(labels.HPKE_RELEASE)
    assert hpke.info(labels.HPKE_RELEASE, "ab", "c") != hpke.info(labels.HPKE_RELEASE, "a", "bc")


@pytest.mark.parametrize("plaintext", [b"", b"\x00", bytes(range(256)) * 40])
def test_round_trip_and_layout(plaintext: bytes) -> None:
    blob = hpke.seal(RECIPIENT.public_key(), plaintext, INFO)
    assert len(blob) == len(plaintext) + hpke.OVERHEAD
    assert hpke.open_sealed(RECIPIENT, blob, INFO) == plaintext


def test_seal_is_randomised() -> None:
    a = hpke.seal(RECIPIENT.public_key(), b"same", INFO)
    b = hpke.seal(RECIPIENT.public_key(), b"same", INFO)
    assert a != b
    assert a[: hpke.ENC_BYTES] != b[: hpke.ENC_BYTES]


def test_wrong_key_fails() -> None:
    blob = hpke.seal(RECIPIENT.public_key(), b"secret", INFO)
    with pytest.raises(DecryptionFailed, match="does not open for this key and context"):
        hpke.open_sealed(OTHER, blob, INFO)


def test_blob_moved_to_another_context_fails() -> None:
    blob = hpke.seal(RECIPIENT.public_key(), b"secret", INFO)
    for other in [
        hpke.info(labels.HPKE_RELEASE, "vault", "item", 1, "approver"),
        hpke.info(labels.HPKE_SHARE_WRAP, "vault", "item", 2, "approver"),
        hpke.info(labels.HPKE_SHARE_WRAP, "vault", "item", 1, "approver2"),
        b"",
    ]:
        with pytest.raises(DecryptionFailed):
            hpke.open_sealed(RECIPIENT, blob, other)


@pytest.mark.parametrize("length", [0, 1, 32, 47])
def test_too_short_blob(length: int) -> None:
    blob = hpke.seal(RECIPIENT.public_key(), b"", INFO)
    assert len(blob) == 48
    with pytest.raises(DecryptionFailed, match="too short"):
        hpke.open_sealed(RECIPIENT, blob[:length], INFO)


@pytest.mark.parametrize("point", sorted(keys._X25519_LOW_ORDER), ids=lambda p: p.hex()[:8])
def test_low_order_enc_is_decryption_failed(point: bytes) -> None:
    # The library raises ValueError for the all-zero DH output; it must come out as
    # DecryptionFailed like every other failure.
    blob = hpke.seal(RECIPIENT.public_key(), b"secret", INFO)
    with pytest.raises(DecryptionFailed):
        hpke.open_sealed(RECIPIENT, point + blob[hpke.ENC_BYTES :], INFO)


def test_truncated_or_extended_ciphertext_fails() -> None:
    blob = hpke.seal(RECIPIENT.public_key(), b"secret", INFO)
    for bad in [blob[:-1], blob + b"\x00", blob[: hpke.ENC_BYTES] + blob[hpke.ENC_BYTES + 1 :]]:
        with pytest.raises(DecryptionFailed):
            hpke.open_sealed(RECIPIENT, bad, INFO)


def test_seal_from_parts_enc_is_the_derived_ephemeral_key() -> None:
    ikm = bytes(range(100, 132))
    blob = hpke._seal_from_parts(RECIPIENT.public_key(), b"x", INFO, ikm)
    expected = hpke._derive_key_pair(ikm).public_key().public_bytes_raw()
    assert blob[: hpke.ENC_BYTES] == expected
    # Longer ikm is allowed (RFC 9180 only requires at least Nsk bytes of entropy).
    longer = hpke._seal_from_parts(RECIPIENT.public_key(), b"x", INFO, ikm + b"more")
    assert hpke.open_sealed(RECIPIENT, longer, INFO) == b"x"


def test_derive_key_pair_returns_library_key() -> None:
    assert isinstance(hpke._derive_key_pair(bytes(32)), x25519.X25519PrivateKey)


def test_error_messages_carry_no_secret_material() -> None:
    blob = hpke.seal(RECIPIENT.public_key(), b"TOPSECRET", INFO)
    with pytest.raises(DecryptionFailed) as info:
        hpke.open_sealed(OTHER, blob, INFO)
    assert "TOPSECRET" not in str(info.value)
    assert blob.hex() not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
