"""sealbox's own vectors (``tests/vectors/sealbox/``): reproducible, and held to other code.

Three kinds of check:

* regeneration: ``generate.py`` run again writes byte-identical files;
* product: every success case is reproduced byte for byte by sealbox (randomness replayed
  at the private ``_…_from_parts`` layers) and opens/verifies, and every negative case makes
  sealbox raise the :class:`SealboxError` whose ``code`` is the case's ``expect``;
* independent: HPKE blobs opened with pyhpke, JWS tokens verified with joserfc and PyJWT,
  field ciphertexts decrypted with pyca's AESGCM under an aad rebuilt here by hand, Shamir
  shares combined with pyshamir (and re-evaluated from the recorded coefficients by a
  GF(2^8) multiply written here), digests and length-prefixed tuples rebuilt with hashlib and
  struct, canonical JSON re-serialised by a small RFC 8785-style writer written here.  The
  flow vectors are opened end to end by such an independent client.  Labels below are spelled
  out from ``docs/protocol.md`` rather than imported from sealbox.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import subprocess
import sys
import warnings
from collections.abc import Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import pyshamir
import pytest
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from joserfc import jws as joserfc_jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import OKPKey
from jwt.api_jws import PyJWS
from pyhpke import AEADId, CipherSuite, KDFId, KEMId

from sealbox.crypto import aead, hpke, jws, shamir
from sealbox.crypto.encoding import (
    b64u_decode,
    b64u_encode,
    canonical_json,
    digest,
    digest_bytes,
    length_prefixed,
    parse_canonical_json,
)
from sealbox.crypto.keys import HpkePrivateKey, SigningKey, VerifyKey
from sealbox.errors import SealboxError
from sealbox.protocol import access, certificates, directory, store
from sealbox.protocol.statements import (
    AccessItem,
    AccessStatement,
    ApproverRecord,
    CacheRequest,
    ClientConstraints,
    ClientInfo,
    RequestContext,
)

HERE = Path(__file__).resolve().parent
VECTORS = HERE / "sealbox"
GENERATE = HERE / "generate.py"
FILES = ("audit.json", "encoding.json", "field_aead.json", "flow.json", "hpke.json", "jws.json",
         "shamir.json")  # fmt: skip


def _load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


HPKE = _load("hpke.json")
AEAD = _load("field_aead.json")
SHAMIR = _load("shamir.json")
JWS = _load("jws.json")
ENCODING = _load("encoding.json")
FLOW = _load("flow.json")
AUDIT = _load("audit.json")
WORLD = FLOW["world"]


def _ids(cases: Sequence[dict[str, Any]]) -> list[str]:
    return [str(c.get("name", i)) for i, c in enumerate(cases)]


def _raises(expect: str, fn: Any, *args: Any, **kwargs: Any) -> None:
    with pytest.raises(SealboxError) as info:
        fn(*args, **kwargs)
    assert info.value.code == expect, f"{type(info.value).__name__}: {info.value}"


class Replay:
    """A byte source that hands back recorded draws, checking each requested length."""

    def __init__(self, draws: Sequence[str]) -> None:
        self._draws = [bytes.fromhex(d) for d in draws]
        self._next = 0

    def __call__(self, n: int) -> bytes:
        draw = self._draws[self._next]
        assert len(draw) == n, "sealbox consumed its randomness in another order"
        self._next += 1
        return draw

    def done(self) -> None:
        assert self._next == len(self._draws), "not every recorded draw was consumed"


# --- independent helpers (no sealbox code) ------------------------------------------------

LABEL_SHARE_WRAP = b"sealbox/v1/hpke/share-wrap"
LABEL_RELEASE = b"sealbox/v1/hpke/release"
LABEL_AEAD_FIELD = b"sealbox/v1/aead/field"
LABEL_STATEMENT = b"sealbox/v1/hash/statement"
LABEL_CIPHERTEXT = b"sealbox/v1/hash/field-ciphertext"
LABEL_WRAP = b"sealbox/v1/hash/share-wrap"
LABEL_VAULT = b"sealbox/v1/fingerprint/vault"

PYHPKE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM)


def lp_by_hand(*parts: bytes | str | int) -> bytes:
    """Length-prefixed tuple: u32 big-endian length, then bytes; ints as u64 big-endian."""
    out = b""
    for part in parts:
        if isinstance(part, int):
            raw = struct.pack(">Q", part)
        elif isinstance(part, str):
            raw = part.encode("utf-8")
        else:
            raw = part
        out += struct.pack(">I", len(raw)) + raw
    return out


def parts_from_json(parts: Sequence[Any]) -> list[bytes | str | int]:
    return [bytes.fromhex(p["hex"]) if isinstance(p, dict) else p for p in parts]


def b64u_by_hand(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def unb64u_by_hand(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def digest_by_hand(label: bytes, data: bytes) -> str:
    return "sha256:" + b64u_by_hand(hashlib.sha256(lp_by_hand(label, data)).digest())


def safety_code_by_hand(raw: bytes) -> str:
    return " ".join(f"{int.from_bytes(raw[i : i + 5], 'big') % 100000:05d}" for i in (0, 5, 10, 15))


def aad_by_hand(vault: str, item: str, version: int, field: str) -> bytes:
    def part(raw: bytes) -> bytes:
        return len(raw).to_bytes(4, "big") + raw

    return (
        part(LABEL_AEAD_FIELD)
        + part(vault.encode("utf-8"))
        + part(item.encode("utf-8"))
        + part(version.to_bytes(8, "big"))
        + part(field.encode("utf-8"))
    )


def pyhpke_open(sk: bytes, blob: bytes, info: bytes) -> bytes:
    key = PYHPKE.kem.deserialize_private_key(sk)
    return PYHPKE.create_recipient_context(blob[:32], key, info).open(blob[32:])


def jws_payload_by_hand(token: str) -> dict[str, Any]:
    return json.loads(unb64u_by_hand(token.split(".")[1]))


def verify_with_joserfc_and_pyjwt(token: str, public_raw: bytes) -> tuple[dict[str, Any], bytes]:
    """Verify ``token`` with two JOSE libraries; return (protected header, payload bytes)."""
    public = Ed25519PublicKey.from_public_bytes(public_raw)
    with warnings.catch_warnings():
        # joserfc flags "EdDSA" as deprecated by RFC 9864; sealbox uses the RFC 8037 name.
        warnings.simplefilter("ignore", SecurityWarning)
        obj = joserfc_jws.deserialize_compact(
            token, OKPKey.import_key(public), algorithms=["EdDSA"]
        )
    decoded = PyJWS().decode_complete(token, public, algorithms=["EdDSA"])
    assert decoded["header"] == obj.protected
    assert decoded["payload"] == obj.payload
    return obj.protected, obj.payload


def gf_mul_by_hand(a: int, b: int) -> int:
    """Carry-less multiply, then reduce mod x^8 + x^4 + x^3 + x + 1."""
    product = 0
    for i in range(8):
        if b >> i & 1:
            product ^= a << i
    for bit in range(14, 7, -1):
        if product >> bit & 1:
            product ^= 0x11B << (bit - 8)
    return product


def to_pyshamir(share: bytes) -> bytearray:
    return bytearray(share[1:] + share[:1])  # ours: x || y; pyshamir: y || x


def combine_by_hand(shares: Sequence[bytes], threshold: int) -> bytes:
    """Threshold 1: every y is the secret; otherwise pyshamir over ``threshold`` shares."""
    if threshold == 1:
        assert len({s[1:] for s in shares}) == 1
        return shares[0][1:]
    return bytes(pyshamir.combine([to_pyshamir(s) for s in shares[:threshold]]))


def jcs_by_hand(value: Any) -> bytes:
    """RFC 8785 serialisation for the float-free values in the vectors."""

    short = {
        "\b": "\\b",
        "\t": "\\t",
        "\n": "\\n",
        "\f": "\\f",
        "\r": "\\r",
        '"': '\\"',
        "\\": "\\\\",
    }

    def string(s: str) -> str:
        out = ['"']
        for ch in s:
            if ch in short:
                out.append(short[ch])
            elif ord(ch) < 0x20:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(ch)
        out.append('"')
        return "".join(out)

    def write(v: Any) -> str:
        if v is None:
            return "null"
        if v is True:
            return "true"
        if v is False:
            return "false"
        if isinstance(v, int):
            assert abs(v) < 2**53
            return str(v)
        if isinstance(v, str):
            return string(v)
        if isinstance(v, list):
            return "[" + ",".join(write(x) for x in v) + "]"
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))
        return "{" + ",".join(f"{string(k)}:{write(v[k])}" for k in keys) + "}"

    return write(value).encode("utf-8")


# --- (a) regeneration ---------------------------------------------------------------------


def test_regenerating_gives_no_diff(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(GENERATE), "--out", str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
    assert sorted(p.name for p in VECTORS.iterdir()) == sorted(FILES)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (VECTORS / name).read_bytes(), name


def test_files_are_sorted_pretty_json_with_trailing_newline() -> None:
    for name in FILES:
        text = (VECTORS / name).read_text(encoding="utf-8")
        assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n", name
    assert sum((VECTORS / n).stat().st_size for n in FILES) < 300_000


# --- hpke.json ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", HPKE["cases"], ids=_ids(HPKE["cases"]))
def test_hpke_case(case: dict[str, Any]) -> None:
    sk, info, blob = (
        bytes.fromhex(case["sk"]),
        bytes.fromhex(case["info"]),
        bytes.fromhex(case["blob"]),
    )
    pt, parts = bytes.fromhex(case["plaintext"]), parts_from_json(case["info_parts"])
    label = case["info_label"].encode("ascii")
    key = HpkePrivateKey._from_seed(sk)
    assert key.public_key().raw.hex() == case["pk"]
    assert hpke.info(label, *parts) == info
    assert hpke._seal_from_parts(key.public_key(), pt, info, bytes.fromhex(case["ikm_e"])) == blob
    assert hpke.open_sealed(key, blob, info) == pt
    # Independent: the info rebuilt by hand, the blob opened by pyhpke.
    assert lp_by_hand(label, *parts) == info
    assert pyhpke_open(sk, blob, info) == pt


@pytest.mark.parametrize("case", HPKE["failures"], ids=_ids(HPKE["failures"]))
def test_hpke_failure(case: dict[str, Any]) -> None:
    sk, info, blob = (
        bytes.fromhex(case["sk"]),
        bytes.fromhex(case["info"]),
        bytes.fromhex(case["blob"]),
    )
    _raises(case["expect"], hpke.open_sealed, HpkePrivateKey._from_seed(sk), blob, info)
    with pytest.raises(Exception):  # noqa: B017, PT011 - pyhpke's errors vary by cause
        pyhpke_open(sk, blob, info)


# --- field_aead.json ----------------------------------------------------------------------


def _aead_context(case: dict[str, Any]) -> dict[str, Any]:
    return {k: case[k] for k in ("vault", "item", "version", "field")}


@pytest.mark.parametrize("case", AEAD["cases"], ids=_ids(AEAD["cases"]))
def test_field_aead_case(case: dict[str, Any]) -> None:
    key, nonce = bytes.fromhex(case["key"]), bytes.fromhex(case["nonce"])
    pt, ct, aad = bytes.fromhex(case["plaintext"]), bytes.fromhex(case["ciphertext"]), case["aad"]
    ctx = _aead_context(case)
    assert aead.field_aad(**ctx).hex() == aad
    assert aead.encrypt_field(key, pt, **ctx, random=Replay([case["nonce"]])) == (nonce, ct)
    assert aead.decrypt_field(key, nonce, ct, **ctx) == pt
    # Independent: the aad rebuilt by hand, AES-GCM straight from pyca.
    assert aad_by_hand(**ctx).hex() == aad
    assert AESGCM(key).decrypt(nonce, ct, aad_by_hand(**ctx)) == pt


@pytest.mark.parametrize("case", AEAD["failures"], ids=_ids(AEAD["failures"]))
def test_field_aead_failure(case: dict[str, Any]) -> None:
    key, nonce, ct = (bytes.fromhex(case[k]) for k in ("key", "nonce", "ciphertext"))
    ctx = _aead_context(case)
    assert aad_by_hand(**ctx).hex() == case["aad"] == aead.field_aad(**ctx).hex()
    _raises(case["expect"], aead.decrypt_field, key, nonce, ct, **ctx)
    with pytest.raises((InvalidTag, ValueError)):
        AESGCM(key).decrypt(nonce, ct, aad_by_hand(**ctx))


# --- shamir.json --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", SHAMIR["cases"], ids=[f"{c['threshold']}-of-{c['holders']}" for c in SHAMIR["cases"]]
)
def test_shamir_case(case: dict[str, Any]) -> None:
    secret, t, n = bytes.fromhex(case["secret"]), case["threshold"], case["holders"]
    shares = [bytes.fromhex(s) for s in case["shares"]]
    replay = Replay([case["coefficients"]])
    assert shamir.split(secret, t, n, replay) == shares
    replay.done()
    for combo in case["combinations"]:
        used = [shares[i] for i in combo["indices"]]
        if combo["expect"] == "success":
            assert shamir.combine(used, t) == secret
            # Independent: pyshamir (all points given), or y itself for threshold 1.
            assert combine_by_hand(used, t) == secret
            if len(used) >= 2:
                assert bytes(pyshamir.combine([to_pyshamir(s) for s in used])) == secret
        else:
            _raises(combo["expect"], shamir.combine, used, t)


@pytest.mark.parametrize(
    "case", SHAMIR["cases"], ids=[f"{c['threshold']}-of-{c['holders']}" for c in SHAMIR["cases"]]
)
def test_shamir_shares_evaluate_the_documented_polynomial(case: dict[str, Any]) -> None:
    secret, t = bytes.fromhex(case["secret"]), case["threshold"]
    coefficients = bytes.fromhex(case["coefficients"])
    assert len(coefficients) == (t - 1) * len(secret)
    for index, share_hex in enumerate(case["shares"]):
        share = bytes.fromhex(share_hex)
        x = index + 1
        assert share[0] == x
        for j, constant in enumerate(secret):
            y, power = constant, 1
            for d in range(1, t):
                power = gf_mul_by_hand(power, x)
                y ^= gf_mul_by_hand(coefficients[j * (t - 1) + d - 1], power)
            assert share[1 + j] == y


@pytest.mark.parametrize("case", SHAMIR["malformed"], ids=_ids(SHAMIR["malformed"]))
def test_shamir_malformed(case: dict[str, Any]) -> None:
    shares = [bytes.fromhex(s) for s in case["shares"]]
    _raises(case["expect"], shamir.combine, shares, case["threshold"])


# --- jws.json -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", JWS["cases"], ids=[c["typ"] for c in JWS["cases"]])
def test_jws_case(case: dict[str, Any]) -> None:
    key = SigningKey._from_seed(bytes.fromhex(case["seed"]))
    token, typ, kid, payload = case["token"], case["typ"], case["kid"], case["payload"]
    assert key.verify_key().raw.hex() == case["public_key"]
    assert jws.sign(key, typ, kid, payload) == token
    assert jws.verify(token, key.verify_key(), typ=typ, kid=kid) == payload
    assert jws.statement_hash(token) == case["statement_hash"]
    # Independent: two JOSE libraries, and the hash rebuilt by hand.
    header, raw_payload = verify_with_joserfc_and_pyjwt(token, bytes.fromhex(case["public_key"]))
    assert header == {"alg": "EdDSA", "kid": kid, "typ": typ}
    assert json.loads(raw_payload) == payload
    assert raw_payload == jcs_by_hand(payload)
    assert unb64u_by_hand(token.split(".")[0]) == jcs_by_hand(header)
    assert digest_by_hand(LABEL_STATEMENT, token.encode("ascii")) == case["statement_hash"]


@pytest.mark.parametrize("case", JWS["failures"], ids=_ids(JWS["failures"]))
def test_jws_failure(case: dict[str, Any]) -> None:
    public = bytes.fromhex(case["public_key"])
    key = VerifyKey(public)
    _raises(case["expect"], jws.verify, case["token"], key, typ=case["typ"], kid=case["kid"])
    # Independent: whether the Ed25519 signature itself is valid, checked with pyca directly.
    parts = case["token"].split(".")
    try:
        signature = unb64u_by_hand(parts[2]) if len(parts) == 3 else b""
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
        Ed25519PublicKey.from_public_bytes(public).verify(signature, signing_input)
        valid = len(parts) == 3 and b64u_by_hand(signature) == parts[2]
    except (InvalidSignature, ValueError, UnicodeError):
        valid = False
    assert valid == case["signature_valid"]
    if valid and json.loads(unb64u_by_hand(parts[0])).get("alg") == "EdDSA":
        # A JOSE library also sees a valid signature: the rejection is sealbox's format rule.
        public_key = Ed25519PublicKey.from_public_bytes(public)
        PyJWS().decode_complete(case["token"], public_key, algorithms=["EdDSA"])


# --- encoding.json ------------------------------------------------------------------------


@pytest.mark.parametrize("case", ENCODING["length_prefixed"])
def test_length_prefixed(case: dict[str, Any]) -> None:
    parts = parts_from_json(case["parts"])
    assert length_prefixed(*parts).hex() == case["encoded"]
    assert lp_by_hand(*parts).hex() == case["encoded"]


@pytest.mark.parametrize("case", ENCODING["digest"])
def test_digest(case: dict[str, Any]) -> None:
    label, data = case["label"].encode("ascii"), bytes.fromhex(case["data"])
    assert digest_bytes(label, data).hex() == case["digest_hex"]
    assert digest(label, data) == case["digest"]
    assert hashlib.sha256(lp_by_hand(label, data)).hexdigest() == case["digest_hex"]
    assert digest_by_hand(label, data) == case["digest"]


@pytest.mark.parametrize("case", ENCODING["canonical_json"])
def test_canonical_json(case: dict[str, Any]) -> None:
    expected = bytes.fromhex(case["canonical"])
    assert canonical_json(case["value"]) == expected
    assert parse_canonical_json(expected) == case["value"]
    assert jcs_by_hand(case["value"]) == expected


@pytest.mark.parametrize(
    "case", ENCODING["canonical_json_failures"], ids=_ids(ENCODING["canonical_json_failures"])
)
def test_canonical_json_failure(case: dict[str, Any]) -> None:
    _raises(case["expect"], parse_canonical_json, bytes.fromhex(case["input"]))


@pytest.mark.parametrize("case", ENCODING["b64u"])
def test_b64u(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["data"])
    assert b64u_encode(data) == case["text"] == b64u_by_hand(data)
    assert b64u_decode(case["text"]) == data == unb64u_by_hand(case["text"])


@pytest.mark.parametrize("case", ENCODING["b64u_failures"], ids=_ids(ENCODING["b64u_failures"]))
def test_b64u_failure(case: dict[str, Any]) -> None:
    _raises(case["expect"], b64u_decode, case["text"], length=case["length"])


# --- flow.json: the world, rebuilt with sealbox --------------------------------------------


class World:
    """The keys and verified objects of flow.json's world, rebuilt with sealbox."""

    def __init__(self, world: dict[str, Any]) -> None:
        self.data = world
        self.records: dict[str, ApproverRecord] = {}
        self.hpke: dict[str, HpkePrivateKey] = {}
        self.sig: dict[str, SigningKey] = {}
        for a in world["approvers"]:
            record = ApproverRecord.from_json(a["record"])
            self.records[record.id] = record
            self.hpke[record.id] = HpkePrivateKey._from_seed(bytes.fromhex(a["hpke_seed"]))
            self.sig[record.id] = SigningKey._from_seed(bytes.fromhex(a["sig_seed"]))
        d = world["directory"]
        self.fingerprint = d["fingerprint"]
        self.directory = directory.verify_directory(d["links"], pinned=self.fingerprint)
        c = world["certificate"]
        self.client_key = SigningKey._from_seed(bytes.fromhex(c["client_seed"]))
        self.client = ClientInfo.from_json(c["client"])
        self.certificate = c["token"]

    def request(self, name: str) -> access.AccessRequest:
        r = self.data["requests"][name]
        payload = jws.verify(
            r["token"], self.client.sig_pk, typ=AccessStatement.TYP, kid=self.client.id
        )
        return access.AccessRequest(
            token=r["token"],
            hash=jws.statement_hash(r["token"]),
            statement=AccessStatement.from_json(payload),
            ephemeral=HpkePrivateKey._from_seed(bytes.fromhex(r["ephemeral_sk"])),
        )

    def directory_from(self, links: Sequence[str] | None) -> directory.Directory:
        if links is None:
            return self.directory
        return directory.verify_directory(links, pinned=self.fingerprint)


def _blobs(mapping: dict[str, str]) -> dict[str, bytes]:
    return {k: unb64u_by_hand(v) for k, v in mapping.items()}


def run_flow_case(case: dict[str, Any], w: World) -> object:
    """Run one negative flow case (``op`` and its inputs) with sealbox."""
    op = case["op"]
    if op == "verify_directory":
        head = case["cached_head"]
        return directory.verify_directory(
            case["tokens"],
            pinned=case["pinned"],
            cached_head=directory.DirectoryHead(**head) if head is not None else None,
        )
    if op == "open_release":
        return access.open_release(
            w.request(case["request"]),
            releases=case["releases"],
            manifests=case["manifests"],
            ciphertexts={i: _blobs(c) for i, c in case["ciphertexts"].items()},
            directory=w.directory_from(case["directory_links"]),
            known_versions=case["known_versions"],
        )
    if op == "verify_store":
        upload = store.StoreUpload(
            statement=case["statement"],
            ciphertexts=_blobs(case["ciphertexts"]),
            wraps={a: _blobs(f) for a, f in case["wraps"].items()},
        )
        return store.verify_store(
            upload,
            directory=w.directory,
            approver=case["approver"],
            hpke_key=w.hpke[case["approver"]],
            certificate=case["certificate"],
            now=case["now"],
        )
    if op == "verify_access":
        return access.verify_access(
            case["token"], directory=w.directory, certificate=case["certificate"], now=case["now"]
        )
    if op == "release":
        request = w.data["requests"][case["request"]]
        verified = access.verify_access(
            request["token"],
            directory=w.directory,
            certificate=w.certificate,
            now=request["verified_at"],
        )
        materials = {
            item: access.ItemMaterial(manifest=m["manifest"], wraps=_blobs(m["wraps"]))
            for item, m in case["materials"].items()
        }
        approver = case["approver"]
        return access.release(
            verified,
            materials=materials,
            directory=w.directory,
            approver=approver,
            hpke_key=w.hpke[approver],
            key=w.sig[approver],
            now=case["now"],
        )
    if op == "verify_deny":
        return access.verify_deny(
            case["token"], directory=w.directory, request_hash=case["request_hash"]
        )
    raise AssertionError(f"unknown op {op!r}")


@pytest.fixture(scope="module")
def world() -> World:
    return World(WORLD)


def test_flow_directory(world: World) -> None:
    d = WORLD["directory"]
    links: list[str] = []
    current = None
    for token, step in zip(d["links"], d["link_ops"], strict=True):
        record, key = world.records[step["approver"]], world.sig[step["signer"]]
        if current is None:
            links.append(directory.genesis_link(WORLD["vault"], record, key, now=step["at"]))
            assert directory.vault_fingerprint(links[0]) == d["fingerprint"]
        else:
            links.append(
                directory.append_link(
                    current, step["op"], record, signer=step["signer"], key=key, now=step["at"]
                )
            )
        assert links[-1] == token
        current = directory.verify_directory(links, pinned=d["fingerprint"])
    assert current is not None
    assert current.safety_code == d["safety_code"]
    assert (current.head.seq, current.head.hash) == (d["head"]["seq"], d["head"]["hash"])
    assert sorted(current.approvers) == d["approvers"]
    for a in WORLD["approvers"]:
        record = ApproverRecord.from_json(a["record"])
        assert record.hpke_pk == world.hpke[record.id].public_key()
        assert record.sig_pk == world.sig[record.id].verify_key()


def test_flow_certificate(world: World) -> None:
    c = WORLD["certificate"]
    token = certificates.issue_certificate(
        world.directory,
        issuer=c["issuer"],
        key=world.sig[c["issuer"]],
        client=world.client,
        scopes=c["scopes"],
        constraints=ClientConstraints.from_json(c["constraints"]),
        now=c["at"],
    )
    assert token == c["token"]
    assert world.client.sig_pk == world.client_key.verify_key()
    cert = certificates.verify_certificate(token, world.directory, now=WORLD["now"])
    assert cert.client == world.client


@pytest.mark.parametrize("name", sorted(WORLD["item_versions"]))
def test_flow_item_version(world: World, name: str) -> None:
    v = WORLD["item_versions"][name]
    p = v["params"]
    values = {k: bytes.fromhex(x) for k, x in p["values"].items()}
    rand, ikm = Replay(v["random_draws"]), Replay(v["ikm_draws"])
    if v["kind"] == "client_store":
        up = store._build_store_from_parts(
            client=p["client"],
            key=world.client_key,
            directory=world.directory,
            item=p["item"],
            path=p["path"],
            version=p["version"],
            prev=p["prev"],
            values=values,
            approvers=p["approvers"],
            threshold=p["threshold"],
            purpose=p["purpose"],
            context=RequestContext.from_json(p["context"]),
            now=p["now"],
            item_type=p["item_type"],
            ttl=p["ttl"],
            random=rand,
            ikm=ikm,
        )
        assert up.statement == v["statement"]
        assert jws.statement_hash(up.statement) == v["statement_hash"]
        verifier = v["verified_by"]
        verified = store.verify_store(
            up,
            directory=world.directory,
            approver=verifier,
            hpke_key=world.hpke[verifier],
            certificate=world.certificate,
            now=v["verified_at"],
        )
        manifest = store.sign_manifest(
            verified,
            directory=world.directory,
            approver=verifier,
            key=world.sig[verifier],
            now=v["verified_at"],
        )
        cts, wraps = up.ciphertexts, up.wraps
    else:
        direct = store._store_as_approver_from_parts(
            directory=world.directory,
            approver=p["approver"],
            key=world.sig[p["approver"]],
            item=p["item"],
            path=p["path"],
            version=p["version"],
            prev=p["prev"],
            values=values,
            approvers=p["approvers"],
            threshold=p["threshold"],
            now=p["now"],
            item_type=p["item_type"],
            random=rand,
            ikm=ikm,
        )
        manifest, cts, wraps = direct.manifest, direct.ciphertexts, direct.wraps
    rand.done()
    ikm.done()
    assert manifest == v["manifest"]
    assert store.manifest_hash(manifest) == v["manifest_hash"]
    assert {f: b64u_encode(c) for f, c in cts.items()} == v["ciphertexts"]
    assert {a: {f: b64u_encode(b) for f, b in w.items()} for a, w in wraps.items()} == v["wraps"]
    store.verify_manifest(manifest, world.directory)


@pytest.mark.parametrize("name", sorted(WORLD["requests"]))
def test_flow_request(world: World, name: str) -> None:
    r = WORLD["requests"][name]
    p = r["params"]
    rand = Replay(r["random_draws"])
    req = access._build_access_from_parts(
        client=p["client"],
        key=world.client_key,
        vault=p["vault"],
        items=[AccessItem.from_json(i) for i in p["items"]],
        purpose=p["purpose"],
        context=RequestContext.from_json(p["context"]),
        now=p["now"],
        cache=CacheRequest.from_json(p["cache"]),
        ttl=p["ttl"],
        random=rand,
    )
    rand.done()
    assert req.token == r["token"]
    assert req.hash == r["hash"]
    assert req.ephemeral.public_key() == world.request(name).ephemeral.public_key()
    verified = access.verify_access(
        req.token, directory=world.directory, certificate=world.certificate, now=r["verified_at"]
    )
    versions = WORLD["item_versions"]
    served = r["served"]
    tokens = []
    for rel in r["releases"]:
        approver = rel["approver"]
        materials = {
            item: access.ItemMaterial(
                manifest=versions[v]["manifest"], wraps=_blobs(versions[v]["wraps"][approver])
            )
            for item, v in served.items()
        }
        ikm = Replay([rel["ikm_e"]])
        token = access._release_from_parts(
            verified,
            materials=materials,
            directory=world.directory,
            approver=approver,
            hpke_key=world.hpke[approver],
            key=world.sig[approver],
            now=rel["now"],
            cache_until=0,
            ikm=ikm,
        )
        ikm.done()
        assert token == rel["token"]
        tokens.append(token)
    out = access.open_release(
        world.request(name),
        releases=tokens,
        manifests={i: versions[v]["manifest"] for i, v in served.items()},
        ciphertexts={i: _blobs(versions[v]["ciphertexts"]) for i, v in served.items()},
        directory=world.directory,
    )
    opened = r["opened"]
    assert {i: {f: x.hex() for f, x in fv.items()} for i, fv in out.values.items()} == opened[
        "values"
    ]
    assert dict(out.versions) == opened["versions"]
    assert out.cache_until == opened["cache_until"]


def test_flow_deny(world: World) -> None:
    d = WORLD["deny"]
    request = world.request(d["request"])
    token = access.deny(
        request.hash,
        directory=world.directory,
        approver=d["approver"],
        key=world.sig[d["approver"]],
        reason=d["reason"],
        now=d["now"],
    )
    assert token == d["token"]
    statement = access.verify_deny(token, directory=world.directory, request_hash=request.hash)
    assert statement.reason == d["reason"]
    assert statement.grounds is None


def test_flow_refusal(world: World) -> None:
    """An approver's signed refusal of a request it found unverifiable: a deny with grounds."""
    d = WORLD["refusal"]
    request = world.request(d["request"])
    token = access.deny(
        request.hash,
        directory=world.directory,
        approver=d["approver"],
        key=world.sig[d["approver"]],
        reason=d["reason"],
        now=d["now"],
        grounds=d["grounds"],
    )
    assert token == d["token"]
    statement = access.verify_deny(token, directory=world.directory, request_hash=request.hash)
    assert (statement.reason, statement.grounds) == (d["reason"], "unverifiable")


@pytest.mark.parametrize("case", FLOW["failures"], ids=_ids(FLOW["failures"]))
def test_flow_failure(world: World, case: dict[str, Any]) -> None:
    _raises(case["expect"], run_flow_case, case, world)


# --- flow.json: an independent client -----------------------------------------------------


def _public_keys_by_hand() -> dict[str, bytes]:
    """kid -> raw Ed25519 public key, from the text forms in the world (decoded by hand)."""
    keys = {}
    for a in WORLD["approvers"]:
        text = a["record"]["sig_pk"]
        assert text.startswith("sbx-ed25519-pk-v1:")
        keys[a["record"]["id"]] = unb64u_by_hand(text.split(":", 1)[1])
    client = WORLD["certificate"]["client"]
    keys[client["id"]] = unb64u_by_hand(client["sig_pk"].split(":", 1)[1])
    return keys


def _all_flow_tokens() -> list[tuple[str, str]]:
    """(what, token) for every signed statement in flow.json."""
    out = [(f"link {i}", t) for i, t in enumerate(WORLD["directory"]["links"])]
    out.append(("certificate", WORLD["certificate"]["token"]))
    for name, v in sorted(WORLD["item_versions"].items()):
        if "statement" in v:
            out.append((f"{name} store", v["statement"]))
        out.append((f"{name} manifest", v["manifest"]))
    for name, r in sorted(WORLD["requests"].items()):
        out.append((f"{name} access", r["token"]))
        out += [(f"{name} release {x['approver']}", x["token"]) for x in r["releases"]]
    out.append(("deny", WORLD["deny"]["token"]))
    out.append(("refusal", WORLD["refusal"]["token"]))
    return out


def test_flow_tokens_verify_with_joserfc_and_pyjwt() -> None:
    keys = _public_keys_by_hand()
    tokens = _all_flow_tokens()
    for case in FLOW["failures"]:
        # Negative cases that carry intact tokens: those verify too (the failure is elsewhere).
        if case["op"] == "verify_deny":
            tokens.append(("deny (negative case)", case["token"]))
    for what, token in tokens:
        kid = json.loads(unb64u_by_hand(token.split(".")[0]))["kid"]
        header, payload = verify_with_joserfc_and_pyjwt(token, keys[kid])
        assert set(header) == {"alg", "kid", "typ"}, what
        assert header["typ"].startswith("sealbox."), what
        assert payload == jcs_by_hand(json.loads(payload)), what


def test_flow_hashes_by_hand() -> None:
    d = WORLD["directory"]
    raw = hashlib.sha256(lp_by_hand(LABEL_VAULT, d["links"][0].encode("ascii"))).digest()
    assert d["fingerprint"] == "sha256:" + b64u_by_hand(raw)
    assert d["safety_code"] == safety_code_by_hand(raw)
    assert d["head"]["hash"] == digest_by_hand(LABEL_STATEMENT, d["links"][-1].encode("ascii"))
    for i in range(1, len(d["links"])):
        prev = digest_by_hand(LABEL_STATEMENT, d["links"][i - 1].encode("ascii"))
        assert jws_payload_by_hand(d["links"][i])["prev"] == prev
    for v in WORLD["item_versions"].values():
        assert v["manifest_hash"] == digest_by_hand(LABEL_STATEMENT, v["manifest"].encode())
        if "statement" in v:
            assert v["statement_hash"] == digest_by_hand(LABEL_STATEMENT, v["statement"].encode())
            assert jws_payload_by_hand(v["manifest"])["store_request"] == v["statement_hash"]
    for r in WORLD["requests"].values():
        assert r["hash"] == digest_by_hand(LABEL_STATEMENT, r["token"].encode("ascii"))


def _open_wraps_by_hand(name: str) -> dict[str, dict[str, bytes]]:
    """Open every wrapped share of version ``name`` with pyhpke: approver -> field -> share."""
    v = WORLD["item_versions"][name]
    m = jws_payload_by_hand(v["manifest"])
    sks = {a["record"]["id"]: bytes.fromhex(a["hpke_seed"]) for a in WORLD["approvers"]}
    keyset = m["keyset"]
    out: dict[str, dict[str, bytes]] = {}
    for position, approver in enumerate(keyset["approvers"]):
        out[approver] = {}
        for field, blob_text in v["wraps"][approver].items():
            blob = unb64u_by_hand(blob_text)
            assert keyset["wraps"][approver][field] == digest_by_hand(LABEL_WRAP, blob)
            info = lp_by_hand(
                LABEL_SHARE_WRAP, m["vault"], m["item"], m["version"], field, approver
            )
            share = pyhpke_open(sks[approver], blob, info)
            assert len(share) == 33
            assert share[0] == position + 1
            out[approver][field] = share
    return out


@pytest.mark.parametrize("name", sorted(WORLD["item_versions"]))
def test_flow_item_version_opens_independently(name: str) -> None:
    v = WORLD["item_versions"][name]
    m = jws_payload_by_hand(v["manifest"])
    assert m["vault"] == WORLD["vault"]
    shares = _open_wraps_by_hand(name)
    threshold, holders = m["keyset"]["threshold"], m["keyset"]["approvers"]
    values = {k: bytes.fromhex(x) for k, x in v["params"]["values"].items()}
    assert set(m["fields"]) == set(values) == set(v["ciphertexts"])
    for field, cipher in m["fields"].items():
        ct = unb64u_by_hand(v["ciphertexts"][field])
        assert cipher["ct_hash"] == digest_by_hand(LABEL_CIPHERTEXT, ct)
        aad = aad_by_hand(m["vault"], m["item"], m["version"], field)
        nonce = unb64u_by_hand(cipher["nonce"])
        # Every set of `threshold` holders rebuilds the same key, which opens the field.
        keys = {
            combine_by_hand([shares[a][field] for a in subset], threshold)
            for subset in combinations(holders, threshold)
        }
        assert len(keys) == 1
        assert AESGCM(keys.pop()).decrypt(nonce, ct, aad) == values[field]


@pytest.mark.parametrize("name", sorted(WORLD["requests"]))
def test_flow_release_opens_independently(name: str) -> None:
    r = WORLD["requests"][name]
    access_payload = jws_payload_by_hand(r["token"])
    ephemeral = bytes.fromhex(r["ephemeral_sk"])
    epk = X25519PrivateKey.from_private_bytes(ephemeral).public_key().public_bytes_raw()
    assert access_payload["epk"] == "sbx-hpke-pk-v1:" + b64u_by_hand(epk)
    versions = WORLD["item_versions"]
    manifests = {
        item: jws_payload_by_hand(versions[v]["manifest"]) for item, v in r["served"].items()
    }
    wrapped = {item: _open_wraps_by_hand(v) for item, v in r["served"].items()}
    collected: dict[tuple[str, str], list[bytes]] = {}
    for rel in r["releases"]:
        payload = jws_payload_by_hand(rel["token"])
        assert payload["request"] == r["hash"]
        assert payload["approver"] == rel["approver"]
        assert payload["manifests"] == sorted(
            {versions[v]["manifest_hash"] for v in r["served"].values()}
        )
        info = lp_by_hand(LABEL_RELEASE, WORLD["vault"], r["hash"], rel["approver"])
        plaintext = pyhpke_open(ephemeral, unb64u_by_hand(payload["blob"]), info)
        assert plaintext.decode("utf-8") == rel["plaintext"]
        body = json.loads(plaintext)
        assert plaintext == jcs_by_hand(body)
        assert body["format"] == "sealbox.release-shares.v1"
        for entry in body["shares"]:
            share = unb64u_by_hand(entry["share"])
            item, field = entry["item"], entry["field"]
            assert entry["version"] == manifests[item]["version"]
            # The share released is exactly the one the approver was wrapped at store time.
            assert share == wrapped[item][rel["approver"]][field]
            collected.setdefault((item, field), []).append(share)
    wanted = {(i["item"], f) for i in access_payload["items"] for f in i["fields"]}
    assert set(collected) == wanted
    opened: dict[str, dict[str, str]] = {}
    for (item, field), shares in sorted(collected.items()):
        m = manifests[item]
        key = combine_by_hand(shares, m["keyset"]["threshold"])
        ct = unb64u_by_hand(versions[r["served"][item]]["ciphertexts"][field])
        nonce = unb64u_by_hand(m["fields"][field]["nonce"])
        pt = AESGCM(key).decrypt(nonce, ct, aad_by_hand(m["vault"], item, m["version"], field))
        opened.setdefault(item, {})[field] = pt.hex()
    assert opened == r["opened"]["values"]
    assert {i: m["version"] for i, m in manifests.items()} == r["opened"]["versions"]


# --- audit.json ---------------------------------------------------------------------------


def test_audit_chain() -> None:
    from sealbox.protocol import audit as au

    prev = AUDIT["genesis"]
    assert prev == "0" * 64
    label = AUDIT["label"].encode("ascii")
    for case in AUDIT["chain"]:
        e = case["event"]
        assert e["prev_hash"] == prev
        assert au.event_hash(prev, e) == case["hash"]
        by_hand = lp_by_hand(label, prev, e["seq"], e["at"], e["actor"], e["action"],
                             e["severity"], e["client_id"] or "", e["item_id"] or "",
                             e["source_ip"] or "", jcs_by_hand(e["detail"]))  # fmt: skip
        assert by_hand.hex() == case["hashed"]
        assert hashlib.sha256(by_hand).hexdigest() == case["hash"]
        assert case["head"] == "sha256:" + b64u_by_hand(bytes.fromhex(case["hash"]))
        assert au.head_digest(case["hash"]) == case["head"]
        prev = case["hash"]
    events = [au.AuditEvent.from_json(c["event"]) for c in AUDIT["chain"]]
    assert au.verify_log(events).head == au.AuditHead(len(events), prev)


@pytest.mark.parametrize("case", AUDIT["tampered"], ids=_ids(AUDIT["tampered"]))
def test_audit_tampered(case: dict[str, Any]) -> None:
    from sealbox.protocol import audit as au

    hashes = {c["event"]["seq"]: c["hash"] for c in AUDIT["chain"]}
    events = [au.AuditEvent.from_json(e) for e in case["events"]]
    known = [au.AuditHead(k, hashes[k]) for k in case["known"]]
    with pytest.raises(au.AuditBroken) as info:
        au.verify_log(events, known=known)
    assert info.value.code == case["expect"]
    assert info.value.seq == case["seq"]


@pytest.mark.parametrize("case", AUDIT["malformed"], ids=_ids(AUDIT["malformed"]))
def test_audit_malformed(case: dict[str, Any]) -> None:
    from sealbox.protocol import audit as au

    _raises(case["expect"], au.AuditEvent.from_json, case["event"])


@pytest.mark.parametrize("case", AUDIT["accepted"], ids=_ids(AUDIT["accepted"]))
def test_audit_accepted(case: dict[str, Any]) -> None:
    """Events at the edges of what is parsed: read, hashed and linked as Python wrote them."""
    from sealbox.protocol import audit as au

    event = au.AuditEvent.from_json(case["event"])
    assert au.event_hash(au.GENESIS, event.to_json()) == case["event"]["hash"]
    assert au.verify_log([event]).head == au.AuditHead(1, case["event"]["hash"])
