"""Key types: strict text forms, low-order rejection, fingerprints, safety codes."""

from __future__ import annotations

import hashlib
import re
import string

import pytest

from sealbox.crypto import keys, labels
from sealbox.crypto.encoding import b64u_encode
from sealbox.crypto.keys import (
    HpkePrivateKey,
    HpkePublicKey,
    SigningKey,
    VerifyKey,
    safety_code,
)
from sealbox.errors import MalformedInput, SignatureInvalid

# RFC 8032 section 7.1, TEST 1.
RFC8032_SK = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PK = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
# RFC 7748 section 6.1 (Alice).
RFC7748_SK = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
RFC7748_PK = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")

B64U = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
SAFETY_CODE = re.compile(r"\d{5} \d{5} \d{5} \d{5}")


# --- Known answers -------------------------------------------------------------------


def test_signing_key_rfc8032() -> None:
    sk = SigningKey._from_seed(RFC8032_SK)
    assert sk.verify_key().raw == RFC8032_PK
    assert sk.sign(b"") == RFC8032_SIG
    VerifyKey(RFC8032_PK).verify(RFC8032_SIG, b"")
    with pytest.raises(SignatureInvalid, match="does not verify"):
        VerifyKey(RFC8032_PK).verify(RFC8032_SIG, b"x")


def test_hpke_private_key_rfc7748() -> None:
    assert HpkePrivateKey._from_seed(RFC7748_SK).public_key().raw == RFC7748_PK


# --- Text forms ----------------------------------------------------------------------


def test_text_round_trips() -> None:
    sk = SigningKey._from_seed(RFC8032_SK)
    assert sk.to_text() == labels.KEY_SIGN_PRIVATE + b64u_encode(RFC8032_SK)
    assert SigningKey.from_text(sk.to_text()).verify_key() == sk.verify_key()
    vk = sk.verify_key()
    assert vk.to_text() == labels.KEY_SIGN_PUBLIC + b64u_encode(RFC8032_PK)
    assert VerifyKey.from_text(vk.to_text()) == vk
    hk = HpkePrivateKey._from_seed(RFC7748_SK)
    assert hk.to_text() == labels.KEY_HPKE_PRIVATE + b64u_encode(RFC7748_SK)
    assert HpkePrivateKey.from_text(hk.to_text()).public_key() == hk.public_key()
    hp = hk.public_key()
    assert hp.to_text() == labels.KEY_HPKE_PUBLIC + b64u_encode(RFC7748_PK)
    assert HpkePublicKey.from_text(hp.to_text()) == hp


def test_generate_gives_distinct_working_keys() -> None:
    a, b = SigningKey.generate(), SigningKey.generate()
    assert a.verify_key() != b.verify_key()
    a.verify_key().verify(a.sign(b"m"), b"m")
    x, y = HpkePrivateKey.generate(), HpkePrivateKey.generate()
    assert x.public_key() != y.public_key()


def test_private_keys_are_not_in_repr() -> None:
    assert b64u_encode(RFC8032_SK) not in repr(SigningKey._from_seed(RFC8032_SK))
    assert b64u_encode(RFC7748_SK) not in repr(HpkePrivateKey._from_seed(RFC7748_SK))


PARSERS = [
    (HpkePublicKey, labels.KEY_HPKE_PUBLIC, RFC7748_PK),
    (HpkePrivateKey, labels.KEY_HPKE_PRIVATE, RFC7748_SK),
    (VerifyKey, labels.KEY_SIGN_PUBLIC, RFC8032_PK),
    (SigningKey, labels.KEY_SIGN_PRIVATE, RFC8032_SK),
]
PARSER_IDS = ["hpke-pk", "hpke-sk", "sign-pk", "sign-sk"]


@pytest.mark.parametrize(("cls", "prefix", "raw"), PARSERS, ids=PARSER_IDS)
def test_from_text_rejects_other_prefixes(cls: type, prefix: str, raw: bytes) -> None:
    body = b64u_encode(raw)
    cls.from_text(prefix + body)  # the right prefix works
    others = {p for _, p, _ in PARSERS} - {prefix}
    for other in [*others, "", prefix.upper(), prefix.replace("v1", "v2"), prefix[:-1]]:
        with pytest.raises(MalformedInput, match="expected text starting with"):
            cls.from_text(other + body)


@pytest.mark.parametrize(("cls", "prefix", "raw"), PARSERS, ids=PARSER_IDS)
def test_from_text_rejects_non_strings(cls: type, prefix: str, raw: bytes) -> None:
    for value in [None, 1, (prefix + b64u_encode(raw)).encode()]:
        with pytest.raises(MalformedInput, match="expected text starting with"):
            cls.from_text(value)


@pytest.mark.parametrize(("cls", "prefix", "raw"), PARSERS, ids=PARSER_IDS)
def test_from_text_rejects_wrong_length(cls: type, prefix: str, raw: bytes) -> None:
    for body in [raw[:31], raw + b"\x00", b""]:
        with pytest.raises(MalformedInput, match="expected 32 bytes"):
            cls.from_text(prefix + b64u_encode(body))


@pytest.mark.parametrize(("cls", "prefix", "raw"), PARSERS, ids=PARSER_IDS)
def test_from_text_rejects_non_canonical_body(cls: type, prefix: str, raw: bytes) -> None:
    body = b64u_encode(raw)
    for bad in [
        body + "=",  # padding
        body[:-1] + B64U[B64U.index(body[-1]) | 1],  # non-zero trailing bits
        " " + body,
        body + "\n",
        body[:10] + "+" + body[11:],
    ]:
        with pytest.raises(MalformedInput, match="base64url"):
            cls.from_text(prefix + bad)


def test_raw_constructors_reject_wrong_length() -> None:
    for bad in [b"", bytes(31), bytes(33)]:
        with pytest.raises(MalformedInput, match="expected 32 bytes"):
            HpkePublicKey(bad)
        with pytest.raises(MalformedInput, match="expected 32 bytes"):
            VerifyKey(bad)


# --- Low-order X25519 points ----------------------------------------------------------


@pytest.mark.parametrize("point", sorted(keys._X25519_LOW_ORDER), ids=lambda p: p.hex()[:8])
def test_low_order_points_are_rejected_with_and_without_bit_255(point: bytes) -> None:
    assert point[31] & 0x80 == 0
    twin = point[:31] + bytes([point[31] | 0x80])
    for raw in (point, twin):
        with pytest.raises(MalformedInput, match="small-order point"):
            HpkePublicKey(raw)
        with pytest.raises(MalformedInput, match="small-order point"):
            HpkePublicKey.from_text(labels.KEY_HPKE_PUBLIC + b64u_encode(raw))


def test_top_bit_of_an_ordinary_key_is_not_a_rejection() -> None:
    # RFC 7748 says to ignore bit 255; the twin of a good key is accepted (and is the
    # same point to X25519).
    twin = RFC7748_PK[:31] + bytes([RFC7748_PK[31] | 0x80])
    assert HpkePublicKey(twin).raw == twin


# --- Ed25519 points -------------------------------------------------------------------


# The eight points of small order, canonically encoded (the seven libsodium blocks,
# with the order-4 point's second sign), and the base point B of RFC 8032.
SMALL_ORDER = {
    "identity": "0100000000000000000000000000000000000000000000000000000000000000",
    "order-2": "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "order-4": "0000000000000000000000000000000000000000000000000000000000000000",
    "order-4-neg": "0000000000000000000000000000000000000000000000000000000000000080",
    "order-8-a": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "order-8-a-neg": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "order-8-b": "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "order-8-b-neg": "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
}
BASE_POINT = bytes.fromhex("5866666666666666666666666666666666666666666666666666666666666666")


@pytest.mark.parametrize("name", sorted(SMALL_ORDER))
def test_verify_key_refuses_small_order_points(name: str) -> None:
    with pytest.raises(MalformedInput, match="small-order point"):
        VerifyKey(bytes.fromhex(SMALL_ORDER[name]))


def test_the_identity_key_is_refused_because_it_verifies_anything() -> None:
    # Why the check exists: under the identity key, (R = B, S = 1) is a valid
    # signature of every message for a cofactorless verifier; a certificate that
    # carried this key would let anyone sign as its client.
    forged = BASE_POINT + (1).to_bytes(32, "little")
    with pytest.raises(MalformedInput):
        VerifyKey(bytes.fromhex(SMALL_ORDER["identity"])).verify(forged, b"any message")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff" * 31 + b"\x7f", "non-canonical"),  # y = 2^255 - 1 >= p
        ((2**255 - 19).to_bytes(32, "little"), "non-canonical"),  # y = p
        ((2**255 - 18).to_bytes(32, "little"), "non-canonical"),  # y = p + 1: the identity again
        (bytes.fromhex("01" + "00" * 30 + "80"), "non-canonical"),  # x = 0 with the sign bit set
        ((2).to_bytes(32, "little"), "not a point"),  # y = 2 has no x on the curve
    ],
    ids=["y-all-ones", "y-is-p", "y-is-p-plus-1", "x-zero-negative", "no-x"],
)
def test_verify_key_refuses_non_points_and_second_spellings(raw: bytes, reason: str) -> None:
    with pytest.raises(MalformedInput, match=reason):
        VerifyKey(raw)


def test_verify_key_accepts_real_keys_of_either_sign() -> None:
    signs = set()
    for seed in range(16):
        raw = SigningKey._from_seed(bytes([seed]) * 32).verify_key().raw
        assert VerifyKey(raw).raw == raw
        signs.add(raw[31] >> 7)
    assert signs == {0, 1}
    assert VerifyKey(BASE_POINT).raw == BASE_POINT


@pytest.mark.parametrize("length", [0, 32, 63, 65, 128])
def test_verify_rejects_wrong_length_signature_as_invalid(length: int) -> None:
    sk = SigningKey._from_seed(RFC8032_SK)
    sig = (sk.sign(b"m") * 2)[:length]
    with pytest.raises(SignatureInvalid):
        sk.verify_key().verify(sig, b"m")


# --- Fingerprints and safety codes -----------------------------------------------------


def _independent_digest(text: str) -> bytes:
    label = labels.FINGERPRINT_KEY
    data = text.encode("ascii")
    framed = len(label).to_bytes(4, "big") + label + len(data).to_bytes(4, "big") + data
    return hashlib.sha256(framed).digest()


def test_fingerprints_and_safety_codes_are_pinned() -> None:
    vk = SigningKey._from_seed(bytes(32)).verify_key()
    assert vk.to_text() == "sbx-ed25519-pk-v1:O2onvM62pC1io6jQKm8Nc2UyFXcd4kOmOsBIoYtZ2ik"
    assert vk.fingerprint() == "sha256:rolAZvVteFEqDiqxovyiUF0jKWP_K8Yl4B7GMQn4Ha0"
    assert vk.safety_code() == "08757 20366 75170 69123"
    hp = HpkePrivateKey._from_seed(bytes(range(32))).public_key()
    assert hp.to_text() == "sbx-hpke-pk-v1:j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8"
    assert hp.fingerprint() == "sha256:FdVnwJlc7UFF5fBqvDRdhU9Q1uG2zKChRjV-x6zulIM"
    assert hp.safety_code() == "59737 69157 70109 48321"


@pytest.mark.parametrize(
    "key",
    [
        SigningKey._from_seed(bytes(32)).verify_key(),
        HpkePrivateKey._from_seed(bytes(range(32))).public_key(),
    ],
    ids=["verify-key", "hpke-key"],
)
def test_fingerprint_and_safety_code_match_independent_computation(
    key: VerifyKey | HpkePublicKey,
) -> None:
    raw = _independent_digest(key.to_text())
    assert key.fingerprint() == "sha256:" + b64u_encode(raw)
    groups = [int.from_bytes(raw[i : i + 5], "big") % 100000 for i in range(0, 20, 5)]
    assert key.safety_code() == " ".join(f"{g:05d}" for g in groups)
    assert SAFETY_CODE.fullmatch(key.safety_code())


def test_fingerprint_separates_key_kinds_with_the_same_bytes() -> None:
    raw = RFC8032_PK  # a valid Ed25519 key, and 32 bytes X25519 accepts too
    assert HpkePublicKey(raw).fingerprint() != VerifyKey(raw).fingerprint()
    assert HpkePublicKey(raw).safety_code() != VerifyKey(raw).safety_code()


def test_safety_code_format_and_edges() -> None:
    assert safety_code(bytes(20)) == "00000 00000 00000 00000"
    assert safety_code(b"\xff" * 20) == "27775 27775 27775 27775"  # 2**40 - 1 mod 100000
    assert safety_code(bytes(20) + b"\xff" * 12) == "00000 00000 00000 00000"  # only 20 used
    for seed in range(20):
        code = SigningKey._from_seed(bytes([seed]) * 32).verify_key().safety_code()
        assert SAFETY_CODE.fullmatch(code)
    with pytest.raises(ValueError, match="at least 20"):
        safety_code(bytes(19))
