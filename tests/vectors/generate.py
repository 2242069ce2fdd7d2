"""Generate sealbox's own test vectors into ``tests/vectors/sealbox/`` (or ``--out DIR``).

    .venv/bin/python tests/vectors/generate.py [--out DIR]

Every byte comes from fixed inputs and one deterministic byte stream, so running this twice
gives identical files, and CI regenerates them and fails on any diff
(``tests/vectors/test_vectors_sealbox.py``).

The byte stream (:class:`Drbg`) is SHA-256 in counter mode, one independent stream per
*name*: block ``i`` of stream ``name`` is::

    SHA-256( lp(DRBG_LABEL, DRBG_SEED, name) || i as 8-byte big-endian )

where ``lp`` is the 4-byte big-endian length-prefixed concatenation of the parts (written out
by hand below, not taken from sealbox).  Blocks are concatenated and handed out in order, so
``stream(n)`` returns the next ``n`` bytes.  Each vector file (and each step of the flow) draws
from its own named stream, so adding a case to one file never changes another.

The randomness sealbox would normally draw itself is injected at its private ``_…_from_parts``
layers; where a test must replay those draws, the file records them (``random_draws``,
``ikm_draws``, ``ikm_e``) in the order the product consumed them.

Files are pretty-printed JSON (indent 2, sorted keys, ASCII) with a trailing newline.  Each
case has an ``expect`` field: ``"success"``, or the ``code`` of the :class:`SealboxError` that a
conforming implementation raises.  Binary values are lowercase hex unless the field name says
``b64u`` or the value is a protocol object that is base64url on the wire (flow uploads).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sealbox.crypto import aead, hpke, jws, labels, shamir
from sealbox.crypto.encoding import (
    b64u_decode,
    b64u_encode,
    canonical_json,
    digest,
    digest_bytes,
    length_prefixed,
    parse_canonical_json,
)
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.errors import SealboxError
from sealbox.protocol import access, directory, ids, store
from sealbox.protocol import certificates as certs
from sealbox.protocol.statements import (
    AccessItem,
    ApproverRecord,
    ClientConstraints,
    ClientInfo,
    DirectoryLink,
    RequestContext,
    sign_statement,
)

DRBG_LABEL = b"sealbox/test-vectors/drbg/v1"
DRBG_SEED = b"sealbox test vectors, seed 1"
#: The fixed "current time" of every vector (2027-01-15T08:00:00Z).
NOW = 1_800_000_000
DEFAULT_OUT = Path(__file__).resolve().parent / "sealbox"
GENERATOR = "tests/vectors/generate.py"


# --- deterministic randomness -------------------------------------------------------------


def _lp(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


class Drbg:
    """SHA-256 counter-mode byte stream named ``name`` (see the module docstring)."""

    def __init__(self, name: str) -> None:
        self._prefix = _lp(DRBG_LABEL, DRBG_SEED, name.encode("utf-8"))
        self._counter = 0
        self._buffer = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buffer) < n:
            block = self._prefix + self._counter.to_bytes(8, "big")
            self._buffer += hashlib.sha256(block).digest()
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


class Recording:
    """Wraps a byte source and remembers every draw, in order."""

    def __init__(self, source: Callable[[int], bytes]) -> None:
        self._source = source
        self.draws: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        out = self._source(n)
        self.draws.append(out)
        return out

    def hex(self) -> list[str]:
        return [d.hex() for d in self.draws]


# --- helpers ------------------------------------------------------------------------------


def _part_json(part: bytes | str | int) -> Any:
    """A length-prefixed part as JSON: text as a string, int as a number, bytes as {"hex"}."""
    if isinstance(part, bytes):
        return {"hex": part.hex()}
    return part


def _expect(code: str, fn: Callable[[], object]) -> str:
    """Check that ``fn`` fails with the sealbox error ``code``; return ``code``.

    The intended code is written in each negative case below; a product that raises
    another one (or nothing) stops the generator rather than writing a wrong vector.
    """
    try:
        fn()
    except SealboxError as exc:
        if exc.code != code:
            raise AssertionError(f"expected {code}, sealbox raised {exc.code}: {exc}") from exc
        return code
    raise AssertionError(f"expected {code}, sealbox raised nothing")


def _flip(data: bytes, index: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[index] ^= 1 << bit
    return bytes(out)


def _swap_char(text: str, index: int) -> str:
    """Replace one base64url character by another (keeps the string valid base64url)."""
    c = text[index]
    return text[:index] + ("A" if c != "A" else "B") + text[index + 1 :]


def b64_decode(text: str) -> bytes:
    """Plain base64url decoding (with padding restored), for taking tokens apart."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _header_b64(header: Mapping[str, Any], *, canonical: bool = True) -> str:
    raw = canonical_json(header) if canonical else json.dumps(header).encode("utf-8")
    return b64u_encode(raw)


def _signed(key: SigningKey, header_b64: str, payload_bytes: bytes) -> str:
    signing_input = f"{header_b64}.{b64u_encode(payload_bytes)}"
    return f"{signing_input}.{b64u_encode(key.sign(signing_input.encode('ascii')))}"


def _doc(description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "generator": GENERATOR,
        "drbg": {
            "label": DRBG_LABEL.decode("ascii"),
            "seed": DRBG_SEED.decode("ascii"),
            "block": "SHA-256(lp(label, seed, stream name) || counter as u64 big-endian)",
        },
        **extra,
    }


# --- hpke.json ----------------------------------------------------------------------------


def gen_hpke() -> dict[str, Any]:
    rng = Drbg("hpke")
    recipient = HpkePrivateKey._from_seed(rng(32))
    other = HpkePrivateKey._from_seed(rng(32))
    vault, item = ids.new_id(ids.VAULT, rng), ids.new_id(ids.ITEM, rng)
    apv = ids.new_id(ids.APPROVER, rng)
    request_hash = digest(labels.HASH_STATEMENT, b"an access statement")
    contexts: list[tuple[str, bytes, list[bytes | str | int]]] = [
        ("share-wrap", labels.HPKE_SHARE_WRAP, [vault, item, 1, "password", apv]),
        ("release", labels.HPKE_RELEASE, [vault, request_hash, apv]),
        ("label-only", labels.HPKE_SHARE_WRAP, []),
        ("mixed-parts", b"sealbox/v1/test/mixed", [b"\x00\xff", "", 0, 2**64 - 1, "caf\u00e9"]),
    ]
    plaintexts = [
        ("share", bytes([2]) + rng(32)),
        ("empty", b""),
        ("one-byte", b"\x00"),
        ("release-json", canonical_json({"format": labels.RELEASE_PLAINTEXT_FORMAT, "shares": []})),
        ("long", rng(1000)),
    ]
    cases: list[dict[str, Any]] = []
    pairs = [(0, 0), (0, 1), (1, 3), (2, 2), (3, 4), (1, 0)]
    for ci, pi in pairs:
        cname, label, parts = contexts[ci]
        pname, pt = plaintexts[pi]
        info = hpke.info(label, *parts)
        ikm_e = rng(32)
        blob = hpke._seal_from_parts(recipient.public_key(), pt, info, ikm_e)
        assert hpke.open_sealed(recipient, blob, info) == pt
        cases.append(
            {
                "name": f"{cname}/{pname}",
                "sk": recipient._to_library().private_bytes_raw().hex(),
                "pk": recipient.public_key().raw.hex(),
                "info_label": label.decode("ascii"),
                "info_parts": [_part_json(p) for p in parts],
                "info": info.hex(),
                "ikm_e": ikm_e.hex(),
                "plaintext": pt.hex(),
                "blob": blob.hex(),
                "expect": "success",
            }
        )
    base = cases[0]
    blob = bytes.fromhex(base["blob"])
    info = bytes.fromhex(base["info"])
    wrong_info = hpke.info(labels.HPKE_SHARE_WRAP, vault, item, 2, "password", apv)
    other_label = hpke.info(labels.HPKE_RELEASE, vault, item, 1, "password", apv)
    negatives = [
        ("flipped bit in enc", recipient, _flip(blob, 0), info),
        ("flipped bit in ciphertext", recipient, _flip(blob, hpke.ENC_BYTES + 5, 3), info),
        ("flipped bit in tag", recipient, _flip(blob, len(blob) - 1, 7), info),
        ("truncated by one byte", recipient, blob[:-1], info),
        ("shorter than enc and tag", recipient, blob[: hpke.OVERHEAD - 1], info),
        ("empty blob", recipient, b"", info),
        ("wrong info: other version", recipient, blob, wrong_info),
        ("wrong info: other label", recipient, blob, other_label),
        ("wrong info: empty", recipient, blob, b""),
        ("wrong key", other, blob, info),
    ]
    failures = []
    for name, key, bad_blob, bad_info in negatives:
        code = _expect(
            "decryption_failed", lambda k=key, b=bad_blob, i=bad_info: hpke.open_sealed(k, b, i)
        )
        failures.append(
            {
                "name": name,
                "sk": key._to_library().private_bytes_raw().hex(),
                "pk": key.public_key().raw.hex(),
                "info": bad_info.hex(),
                "blob": bad_blob.hex(),
                "expect": code,
            }
        )
    return _doc(
        "HPKE RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256) / HKDF-SHA256 / AES-256-GCM, "
        "single shot: blob = enc (32 bytes) || AEAD ciphertext with tag, empty aad, seq 0. "
        "info = lp(info_label, *info_parts); parts are text (UTF-8), integers (8-byte "
        "big-endian) or {hex} bytes. The ephemeral key is DeriveKeyPair(ikm_e) (RFC 9180 "
        "7.1.3). sk is the raw X25519 private key.",
        cases=cases,
        failures=failures,
    )


# --- field_aead.json -------------------------------------------------------------------------


def gen_field_aead() -> dict[str, Any]:
    rng = Drbg("field_aead")
    vault, item = ids.new_id(ids.VAULT, rng), ids.new_id(ids.ITEM, rng)
    inputs = [
        (vault, item, 1, "password", b"correct horse battery staple"),
        (vault, item, 2**53 - 1, "a", b""),
        (vault, ids.new_id(ids.ITEM, rng), 2**32 + 1, "tls.key_pem-2", rng(300)),
        (ids.new_id(ids.VAULT, rng), item, 7, "user", "caf\u00e9 \u2713".encode()),
    ]
    cases = []
    for v, i, version, field, pt in inputs:
        key = aead.new_field_key(rng)
        nonce, ct = aead.encrypt_field(
            key, pt, vault=v, item=i, version=version, field=field, random=rng
        )
        cases.append(
            {
                "key": key.hex(),
                "nonce": nonce.hex(),
                "vault": v,
                "item": i,
                "version": version,
                "field": field,
                "plaintext": pt.hex(),
                "aad": aead.field_aad(vault=v, item=i, version=version, field=field).hex(),
                "ciphertext": ct.hex(),
                "expect": "success",
            }
        )
    b = cases[0]
    key, nonce, ct = (
        bytes.fromhex(b["key"]),
        bytes.fromhex(b["nonce"]),
        bytes.fromhex(b["ciphertext"]),
    )
    ctx = {"vault": b["vault"], "item": b["item"], "version": b["version"], "field": b["field"]}
    variants: list[tuple[str, dict[str, Any], bytes, bytes, bytes]] = [
        ("other vault", {**ctx, "vault": ids.new_id(ids.VAULT, rng)}, key, nonce, ct),
        ("other item", {**ctx, "item": ids.new_id(ids.ITEM, rng)}, key, nonce, ct),
        ("other version", {**ctx, "version": 2}, key, nonce, ct),
        ("other field", {**ctx, "field": "Password"}, key, nonce, ct),
        ("other field, same bytes moved across parts", {**ctx, "field": "passwor"}, key, nonce, ct),
        ("flipped ciphertext bit", ctx, key, nonce, _flip(ct, 0)),
        ("flipped tag bit", ctx, key, nonce, _flip(ct, len(ct) - 1, 6)),
        ("other nonce", ctx, key, _flip(nonce, 11), ct),
        ("wrong key", ctx, rng(32), nonce, ct),
        ("shorter than the tag", ctx, key, nonce, ct[:15]),
        ("nonce of 11 bytes", ctx, key, nonce[:11], ct),
        ("key of 16 bytes", ctx, key[:16], nonce, ct),
    ]
    failures = []
    for name, c, k, n, x in variants:
        want = "malformed" if len(n) != 12 or len(k) != 32 else "decryption_failed"
        code = _expect(want, lambda c=c, k=k, n=n, x=x: aead.decrypt_field(k, n, x, **c))
        failures.append(
            {
                "name": name,
                "key": k.hex(),
                "nonce": n.hex(),
                **c,
                "aad": aead.field_aad(**c).hex(),
                "ciphertext": x.hex(),
                "expect": code,
            }
        )
    return _doc(
        "Field encryption: AES-256-GCM, 12-byte nonce, ciphertext includes the 16-byte tag. "
        "aad = lp('sealbox/v1/aead/field', vault, item, version as u64, field). Failures try "
        "to open a ciphertext in the context given by their vault/item/version/field.",
        cases=cases,
        failures=failures,
    )


# --- shamir.json ----------------------------------------------------------------------------


def gen_shamir() -> dict[str, Any]:
    rng = Drbg("shamir")
    cases = []
    for threshold, holders in [(1, 1), (1, 3), (2, 2), (2, 3), (3, 5), (5, 5), (4, 10)]:
        secret = rng(32)
        rec = Recording(rng)
        shares = shamir.split(secret, threshold, holders, rec)
        coefficients = b"".join(rec.draws)
        combos: list[tuple[list[int], str]] = [
            (list(range(threshold)), "success"),
            (list(range(holders - threshold, holders)), "success"),
            (list(reversed(range(holders))), "success"),
        ]
        if holders - threshold >= 2:
            combos.append(([holders - 1, 0, *range(2, threshold)][:threshold], "success"))
        if threshold > 1:
            combos.append((list(range(threshold - 1)), "threshold_not_met"))
            combos.append(([0, 0, *range(2, threshold)], "malformed"))
        combos.append(([], "threshold_not_met"))
        combinations = []
        seen: list[list[int]] = []
        for indices, expect in combos:
            if indices in seen:
                continue
            seen.append(indices)
            used = [shares[i] for i in indices]
            if expect == "success":
                assert shamir.combine(used, threshold) == secret
            else:
                _expect(expect, lambda u=used, t=threshold: shamir.combine(u, t))
            combinations.append({"indices": indices, "expect": expect})
        cases.append(
            {
                "secret": secret.hex(),
                "threshold": threshold,
                "holders": holders,
                "coefficients": coefficients.hex(),
                "shares": [s.hex() for s in shares],
                "combinations": combinations,
            }
        )
    s = [bytes.fromhex(h) for h in cases[3]["shares"]]  # 2 of 3
    bad = [
        ("x = 0", [bytes([0]) + s[0][1:], s[1]]),
        ("share one byte short", [s[0][:-1], s[1]]),
        ("share one byte long", [s[0], s[1] + b"\x00"]),
        ("same x, different y", [s[1], bytes([s[1][0]]) + s[2][1:]]),
    ]
    malformed = []
    for name, shares in bad:
        code = _expect("malformed", lambda sh=shares: shamir.combine(sh, 2))
        malformed.append(
            {"name": name, "threshold": 2, "shares": [x.hex() for x in shares], "expect": code}
        )
    return _doc(
        "Shamir over GF(2^8) mod x^8+x^4+x^3+x+1, byte-wise, 32-byte secrets. A share is "
        "x (1 byte, holder index + 1) || y (32 bytes). For secret byte j the polynomial is "
        "secret[j] + sum_{d=1}^{t-1} coefficients[j*(t-1) + d-1] * x^d. combine() uses the "
        "first `threshold` of the shares given (`indices` into `shares`).",
        cases=cases,
        malformed=malformed,
    )


# --- jws.json -------------------------------------------------------------------------------


def gen_jws() -> dict[str, Any]:
    rng = Drbg("jws")
    seeds = [rng(32), rng(32)]
    keys = [SigningKey._from_seed(s) for s in seeds]
    apv, cli = ids.new_id(ids.APPROVER, rng), ids.new_id(ids.CLIENT, rng)
    payloads: list[tuple[int, str, str, dict[str, Any]]] = [
        (
            0,
            labels.TYP_ITEM,
            apv,
            {
                "item": ids.new_id(ids.ITEM, rng),
                "version": 3,
                "fields": ["password", "user"],
                "ok": True,
                "none": None,
                "nested": {"b": [1, 2, {"c": "d"}], "a": 0},
            },
        ),
        (
            1,
            labels.TYP_ACCESS,
            cli,
            {
                "purpose": "d\u00e9ploiement \u2713 \u00ab prod \u00bb",
                "quote": 'say "hi"\\',
                "ctl": "tab\there\nnewline\u0001",
                "max": 2**53 - 1,
            },
        ),
        (0, labels.TYP_DIRECTORY, apv, {}),
        (1, labels.TYP_RELEASE, ids.new_id(ids.APPROVER, rng), {"blob": b64u_encode(rng(48))}),
    ]
    cases = []
    for ki, typ, kid, payload in payloads:
        token = jws.sign(keys[ki], typ, kid, payload)
        assert jws.verify(token, keys[ki].verify_key(), typ=typ, kid=kid) == payload
        cases.append(
            {
                "seed": seeds[ki].hex(),
                "public_key": keys[ki].verify_key().raw.hex(),
                "typ": typ,
                "kid": kid,
                "payload": payload,
                "token": token,
                "statement_hash": jws.statement_hash(token),
                "expect": "success",
            }
        )
    base = cases[0]
    key, typ, kid = keys[0], base["typ"], base["kid"]
    payload = base["payload"]
    token = base["token"]
    h, p, sig = token.split(".")
    good_header = {"alg": "EdDSA", "kid": kid, "typ": typ}
    payload_bytes = canonical_json(payload)
    spaced = json.dumps(payload, sort_keys=True).encode("utf-8")
    other_sig = keys[1].sign(f"{h}.{p}".encode("ascii"))
    bad: list[tuple[str, str, bool, dict[str, str]]] = [
        ("payload character altered", f"{h}.{_swap_char(p, 10)}.{sig}", False, {}),
        ("signature character altered", f"{h}.{p}.{_swap_char(sig, 20)}", False, {}),
        ("signed by another key", f"{h}.{p}.{b64u_encode(other_sig)}", False, {}),
        (
            "alg none, empty signature",
            f"{_header_b64({'alg': 'none', 'kid': kid, 'typ': typ})}.{p}.",
            False,
            {},
        ),
        (
            "alg HS256",
            _signed(key, _header_b64({"alg": "HS256", "kid": kid, "typ": typ}), payload_bytes),
            True,
            {},
        ),
        (
            "extra header parameter jwk",
            _signed(
                key,
                _header_b64({**good_header, "jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AA"}}),
                payload_bytes,
            ),
            True,
            {},
        ),
        (
            "extra header parameter crit/b64",
            _signed(key, _header_b64({**good_header, "b64": True, "crit": ["b64"]}), payload_bytes),
            True,
            {},
        ),
        (
            "header keys not sorted",
            _signed(
                key,
                b64u_encode(
                    b'{"typ":"%s","kid":"%s","alg":"EdDSA"}' % (typ.encode(), kid.encode())
                ),
                payload_bytes,
            ),
            True,
            {},
        ),
        (
            "header with white space",
            _signed(key, _header_b64(good_header, canonical=False), payload_bytes),
            True,
            {},
        ),
        (
            "unknown typ in header",
            _signed(key, _header_b64({**good_header, "typ": "sealbox.unknown.v1"}), payload_bytes),
            True,
            {"typ": "sealbox.unknown.v1"},
        ),
        (
            "empty kid in header",
            _signed(key, _header_b64({**good_header, "kid": ""}), payload_bytes),
            True,
            {"kid": ""},
        ),
        ("non-canonical payload (white space)", _signed(key, h, spaced), True, {}),
        (
            "payload with duplicate key",
            _signed(key, h, b'{"a":1,"a":2}'),
            True,
            {},
        ),
        ("payload with a float", _signed(key, h, b'{"a":1.5}'), True, {}),
        ("payload is an array", _signed(key, h, b"[1,2]"), True, {}),
        ("payload with \\u escape for non-ASCII", _signed(key, h, b'{"a":"\\u00e9"}'), True, {}),
        ("wrong typ expected", token, True, {"typ": labels.TYP_RELEASE}),
        ("wrong kid expected", token, True, {"kid": ids.new_id(ids.APPROVER, rng)}),
        ("two parts", f"{h}.{p}", False, {}),
        ("four parts", f"{token}.{sig}", False, {}),
        ("padded signature", f"{token}==", False, {}),
        ("signature of 63 bytes", f"{h}.{p}.{b64u_encode(b64_decode(sig)[:63])}", False, {}),
        ("not ASCII", f"{h}.{p}\u00e9.{sig}", False, {}),
    ]
    signature_failures = {
        "payload character altered",
        "signature character altered",
        "signed by another key",
        "wrong typ expected",
        "wrong kid expected",
    }
    failures = []
    for name, bad_token, signature_valid, expected in bad:
        exp_typ, exp_kid = expected.get("typ", typ), expected.get("kid", kid)
        want = "malformed" if name not in signature_failures else "signature_invalid"
        code = _expect(
            want,
            lambda t=bad_token, y=exp_typ, k=exp_kid: jws.verify(t, key.verify_key(), typ=y, kid=k),
        )
        failures.append(
            {
                "name": name,
                "public_key": key.verify_key().raw.hex(),
                "token": bad_token,
                "typ": exp_typ,
                "kid": exp_kid,
                "signature_valid": signature_valid,
                "expect": code,
            }
        )
    return _doc(
        "Compact JWS, alg EdDSA (Ed25519), header exactly canonical "
        '{"alg":"EdDSA","kid":kid,"typ":typ}, payload canonical JSON. statement_hash = '
        "digest('sealbox/v1/hash/statement', token ASCII). Failures are verified against "
        "public_key expecting typ and kid; signature_valid says whether the Ed25519 "
        "signature over the first two parts is valid (the rejection is then sealbox's "
        "stricter format rule).",
        cases=cases,
        failures=failures,
    )


# --- encoding.json ------------------------------------------------------------------------


def gen_encoding() -> dict[str, Any]:
    rng = Drbg("encoding")
    lp_inputs: list[list[bytes | str | int]] = [
        [],
        [""],
        [b""],
        ["ab", "c"],
        ["a", "bc"],
        [0],
        [1, 2**64 - 1],
        [b"\x00\x00\x00\x00\x00\x00\x00\x07"],
        [7],
        ["caf\u00e9", "\U0001f512"],
        [labels.AEAD_FIELD, "vlt", "itm", 3, "password"],
        [rng(40)],
    ]
    lp_cases = [
        {"parts": [_part_json(p) for p in parts], "encoded": length_prefixed(*parts).hex()}
        for parts in lp_inputs
    ]
    digest_inputs = [
        (labels.HASH_STATEMENT, b""),
        (labels.HASH_STATEMENT, b"a.b.c"),
        (labels.HASH_FIELD_CIPHERTEXT, rng(64)),
        (labels.HASH_SHARE_WRAP, rng(81)),
        (labels.FINGERPRINT_KEY, b"sbx-ed25519-pk-v1:" + b"A" * 43),
        (labels.FINGERPRINT_VAULT, b"x" * 1000),
    ]
    digest_cases = [
        {
            "label": label.decode("ascii"),
            "data": data.hex(),
            "digest_hex": digest_bytes(label, data).hex(),
            "digest": digest(label, data),
        }
        for label, data in digest_inputs
    ]
    json_values: list[dict[str, Any]] = [
        {},
        {"b": 1, "a": 2, "c": {"z": None, "y": [True, False, None]}},
        {"text": "caf\u00e9 \u2713 \U0001f512", "E": 1, "e": 2, "_": 3},
        {"ctl": "\x00\x01\x1f\x7f\b\f\n\r\t", "q": '"\\/'},
        {"ints": [0, -1, 2**53 - 1, -(2**53) + 1], "empty": [], "obj": {}},
        {"u2028": "\u2028\u2029"},
    ]
    json_cases = [{"value": v, "canonical": canonical_json(v).hex()} for v in json_values]
    bad_json = [
        ("white space after colon", b'{"a": 1}'),
        ("white space around", b' {"a":1}'),
        ("trailing newline", b'{"a":1}\n'),
        ("keys not sorted", b'{"b":1,"a":2}'),
        ("duplicate key", b'{"a":1,"a":1}'),
        ("float", b'{"a":1.0}'),
        ("exponent", b'{"a":1e2}'),
        ("NaN", b'{"a":NaN}'),
        ("Infinity", b'{"a":Infinity}'),
        ("array at top level", b"[]"),
        ("string at top level", b'"a"'),
        ("escaped non-ASCII", b'{"a":"\\u00e9"}'),
        ("escaped slash", b'{"a":"\\/"}'),
        ("uppercase hex escape", b'{"a":"\\u001F"}'),
        ("lone surrogate escape", b'{"a":"\\ud800"}'),
        ("invalid UTF-8", b'{"a":"\xff"}'),
        ("overlong UTF-8", b'{"a":"\xc0\xaf"}'),
        ("UTF-8 BOM", b'\xef\xbb\xbf{"a":1}'),
        ("negative zero", b'{"a":-0}'),
        ("leading zero", b'{"a":01}'),
        ("empty input", b""),
        ("non-ASCII key", b'{"\xc3\xa9":1}'),
        ("integer beyond 2^53 - 1", b'{"a":9007199254740992}'),
        ("integer below -(2^53 - 1)", b'{"a":-9007199254740992}'),
    ]
    json_failures = []
    for name, data in bad_json:
        code = _expect("malformed", lambda d=data: parse_canonical_json(d))
        json_failures.append({"name": name, "input": data.hex(), "expect": code})

    b64_cases = [
        {"data": d.hex(), "text": b64u_encode(d)}
        for d in [b"", b"\x00", b"\xff\xff", b"\xfb\xff\xbf", rng(31), rng(32), rng(33)]
    ]
    bad_b64: list[tuple[str, str, int | None]] = [
        ("padding", "AA==", None),
        ("single padding", "AAA=", None),
        ("non-zero trailing bits (1 byte)", "AB", None),
        ("non-zero trailing bits (2 bytes)", "AAB", None),
        ("length 1 mod 4", "AAAAA", None),
        ("standard alphabet +", "+w", None),
        ("standard alphabet /", "_/8", None),
        ("white space", "AA AA", None),
        ("newline", "AAAA\n", None),
        ("non-ASCII", "AA\u00e9A", None),
        ("wrong length", "AAAA", 4),
        ("wrong length (empty)", "", 32),
    ]
    b64_failures = []
    for name, text, length in bad_b64:
        code = _expect("malformed", lambda t=text, n=length: b64u_decode(t, length=n))
        b64_failures.append({"name": name, "text": text, "length": length, "expect": code})
    return _doc(
        "Encodings. length_prefixed: for each part a 4-byte big-endian length then its bytes; "
        "text parts are UTF-8, integer parts 8-byte unsigned big-endian, {hex} parts raw bytes. "
        "digest = 'sha256:' + b64u(SHA-256(lp(label, data))). canonical_json: sorted keys, no "
        "white space, raw UTF-8 (no \\u escapes above U+001F), lowercase \\u00xx for other "
        "control characters; canonical_json_failures must be rejected by a strict parser. "
        "b64u: unpadded URL-safe base64; b64u_failures must be rejected (length, when not "
        "null, is the exact decoded length required).",
        length_prefixed=lp_cases,
        digest=digest_cases,
        canonical_json=json_cases,
        canonical_json_failures=json_failures,
        b64u=b64_cases,
        b64u_failures=b64_failures,
    )


# --- flow.json ----------------------------------------------------------------------------


CONTEXT = RequestContext(
    host="build-7",
    user="ci",
    uid=1000,
    pid=4242,
    ppid=1,
    exe="/usr/bin/sealbox",
    exe_sha256="0123456789abcdef" * 4,
    argv=("sealbox", "run", "--", "psql"),
    cwd="/srv/app",
    agent_session=None,
)


def _wraps_json(wraps: Mapping[str, Mapping[str, bytes]]) -> dict[str, dict[str, str]]:
    return {a: {f: b64u_encode(b) for f, b in w.items()} for a, w in wraps.items()}


def _cts_json(cts: Mapping[str, bytes]) -> dict[str, str]:
    return {f: b64u_encode(c) for f, c in cts.items()}


def gen_flow() -> dict[str, Any]:
    rng = Drbg("flow")
    vault = ids.new_id(ids.VAULT, rng)
    specs = [
        ("Ana's laptop", "browser", "synced"),
        ("build bot", "automated", "device"),
        ("ops terminal", "terminal", "device"),
        ("intruder", "terminal", "device"),
    ]
    approvers = []
    records: dict[str, ApproverRecord] = {}
    hpke_keys: dict[str, HpkePrivateKey] = {}
    sig_keys: dict[str, SigningKey] = {}
    for name, kind, tier in specs:
        hseed, sseed = rng(32), rng(32)
        aid = ids.new_id(ids.APPROVER, rng)
        h, s = HpkePrivateKey._from_seed(hseed), SigningKey._from_seed(sseed)
        rec = ApproverRecord(
            id=aid, name=name, kind=kind, tier=tier, hpke_pk=h.public_key(), sig_pk=s.verify_key()
        )
        records[aid], hpke_keys[aid], sig_keys[aid] = rec, h, s
        approvers.append(
            {"hpke_seed": hseed.hex(), "sig_seed": sseed.hex(), "record": rec.to_json()}
        )
    a0, a1, a2, a3 = list(records)

    # Directory: a0 founds the vault, then adds a1 and a2.
    link_at = [NOW - 3000, NOW - 2000, NOW - 1000]
    links = [directory.genesis_link(vault, records[a0], sig_keys[a0], now=link_at[0])]
    fingerprint = directory.vault_fingerprint(links[0])
    d = directory.verify_directory(links, pinned=fingerprint)
    for aid, at in ((a1, link_at[1]), (a2, link_at[2])):
        links.append(
            directory.append_link(d, "add", records[aid], signer=a0, key=sig_keys[a0], now=at)
        )
        d = directory.verify_directory(links, pinned=fingerprint)
    d_two = directory.verify_directory(links[:2], pinned=fingerprint)
    # A fork: the relay shows another client a link 2 that adds the intruder instead.
    fork_link = directory.append_link(
        d_two, "add", records[a3], signer=a0, key=sig_keys[a0], now=link_at[2]
    )
    # The intruder signs its own addition (it is not an approver as of link 1).
    rogue_link = sign_statement(
        DirectoryLink(
            vault=vault, seq=2, prev=d_two.head.hash, op="add", approver=records[a3], at=link_at[2]
        ),
        sig_keys[a3],
        a3,
    )
    directory_json = {
        "links": links,
        "link_ops": [
            {"op": "add", "approver": a0, "signer": a0, "at": link_at[0]},
            {"op": "add", "approver": a1, "signer": a0, "at": link_at[1]},
            {"op": "add", "approver": a2, "signer": a0, "at": link_at[2]},
        ],
        "fingerprint": fingerprint,
        "safety_code": d.safety_code,
        "head": {"seq": d.head.seq, "hash": d.head.hash},
        "approvers": sorted(d.approvers),
    }

    # Client certificate, issued by a1.
    cseed = rng(32)
    ckey = SigningKey._from_seed(cseed)
    cid = ids.new_id(ids.CLIENT, rng)
    client_info = ClientInfo(id=cid, kind="agent", name="ci runner", sig_pk=ckey.verify_key())
    constraints = ClientConstraints(
        not_after=NOW + 86400, cidrs=("10.0.0.0/8", "192.168.0.0/16"), hostname="build-*"
    )
    cert_at = NOW - 500
    cert = certs.issue_certificate(
        d,
        issuer=a1,
        key=sig_keys[a1],
        client=client_info,
        scopes=["write", "read"],
        constraints=constraints,
        now=cert_at,
    )
    certificates_json = {
        "client_seed": cseed.hex(),
        "client": client_info.to_json(),
        "issuer": a1,
        "scopes": ["read", "write"],
        "constraints": constraints.to_json(),
        "at": cert_at,
        "token": cert,
    }

    # Item versions.
    item1, item2 = ids.new_id(ids.ITEM, rng), ids.new_id(ids.ITEM, rng)
    versions: dict[str, dict[str, Any]] = {}
    uploads: dict[str, store.StoreUpload] = {}
    manifests: dict[str, str] = {}
    store_specs = [
        (
            "item1-v1",
            item1,
            "app/prod/db",
            1,
            {"user": b"app", "password": b"correct horse"},
            [a0, a1, a2],
            1,
            a2,
            "initial setup",
        ),
        (
            "item2-v1",
            item2,
            "app/prod/api",
            1,
            {"api_key": b"sk_live_0123456789", "signing_key": Drbg("flow/values")(64)},
            [a2, a0, a1],
            2,
            a0,
            "rotate API credentials",
        ),
    ]
    for name, item, path, version, values, holders, threshold, verifier, purpose in store_specs:
        rand = Recording(Drbg(f"flow/store/{name}/random"))
        ikm = Recording(Drbg(f"flow/store/{name}/ikm"))
        params = {
            "client": cid,
            "item": item,
            "path": path,
            "version": version,
            "prev": None,
            "values": {k: v.hex() for k, v in values.items()},
            "approvers": holders,
            "threshold": threshold,
            "purpose": purpose,
            "context": CONTEXT.to_json(),
            "now": NOW,
            "item_type": "secret",
            "ttl": 300,
        }
        up = store._build_store_from_parts(
            client=cid,
            key=ckey,
            directory=d,
            item=item,
            path=path,
            version=version,
            prev=None,
            values=values,
            approvers=holders,
            threshold=threshold,
            purpose=purpose,
            context=CONTEXT,
            now=NOW,
            item_type="secret",
            ttl=300,
            random=rand,
            ikm=ikm,
        )
        verify_at = NOW + 60
        v = store.verify_store(
            up,
            directory=d,
            approver=verifier,
            hpke_key=hpke_keys[verifier],
            certificate=cert,
            now=verify_at,
        )
        manifest = store.sign_manifest(
            v, directory=d, approver=verifier, key=sig_keys[verifier], now=verify_at
        )
        uploads[name], manifests[name] = up, manifest
        versions[name] = {
            "kind": "client_store",
            "params": params,
            "random_draws": rand.hex(),
            "ikm_draws": ikm.hex(),
            "statement": up.statement,
            "statement_hash": jws.statement_hash(up.statement),
            "ciphertexts": _cts_json(up.ciphertexts),
            "wraps": _wraps_json(up.wraps),
            "verified_by": verifier,
            "verified_at": verify_at,
            "manifest": manifest,
            "manifest_hash": store.manifest_hash(manifest),
        }
    # Version 2 of item 1, stored directly by approver a1, held by a0 and a1 only.
    rand = Recording(Drbg("flow/store/item1-v2/random"))
    ikm = Recording(Drbg("flow/store/item1-v2/ikm"))
    v2_values = {"user": b"app", "password": b"battery staple 2"}
    direct = store._store_as_approver_from_parts(
        directory=d,
        approver=a1,
        key=sig_keys[a1],
        item=item1,
        path="app/prod/db",
        version=2,
        prev=versions["item1-v1"]["manifest_hash"],
        values=v2_values,
        approvers=[a0, a1],
        threshold=1,
        now=NOW + 90,
        item_type="secret",
        random=rand,
        ikm=ikm,
    )
    manifests["item1-v2"] = direct.manifest
    versions["item1-v2"] = {
        "kind": "approver_store",
        "params": {
            "approver": a1,
            "item": item1,
            "path": "app/prod/db",
            "version": 2,
            "prev": versions["item1-v1"]["manifest_hash"],
            "values": {k: v.hex() for k, v in v2_values.items()},
            "approvers": [a0, a1],
            "threshold": 1,
            "now": NOW + 90,
            "item_type": "secret",
        },
        "random_draws": rand.hex(),
        "ikm_draws": ikm.hex(),
        "ciphertexts": _cts_json(direct.ciphertexts),
        "wraps": _wraps_json(direct.wraps),
        "manifest": direct.manifest,
        "manifest_hash": store.manifest_hash(direct.manifest),
    }
    all_cts = {n: dict(uploads[n].ciphertexts) for n in uploads}
    all_cts["item1-v2"] = dict(direct.ciphertexts)
    all_wraps = {n: uploads[n].wraps for n in uploads}
    all_wraps["item1-v2"] = direct.wraps

    # Access requests and releases.
    request_specs = [
        (
            "single",
            [AccessItem(item1, "app/prod/db", None, ("password",))],
            {item1: "item1-v2"},
            [a0],
            "psql migration",
        ),
        (
            "threshold",
            [AccessItem(item2, "app/prod/api", 1, ("api_key", "signing_key"))],
            {item2: "item2-v1"},
            [a1, a2],
            "deploy api",
        ),
        (
            "multi",
            [
                AccessItem(item1, "app/prod/db", 1, ("password", "user")),
                AccessItem(item2, "app/prod/api", None, ("api_key",)),
            ],
            {item1: "item1-v1", item2: "item2-v1"},
            [a2, a0],
            "nightly job",
        ),
    ]
    requests: dict[str, dict[str, Any]] = {}
    reqs: dict[str, access.AccessRequest] = {}
    rels: dict[str, list[str]] = {}
    access_at, verify_at, release_at = NOW + 100, NOW + 120, NOW + 130
    for name, items, served, releasers, purpose in request_specs:
        rand = Recording(Drbg(f"flow/access/{name}/random"))
        req = access._build_access_from_parts(
            client=cid,
            key=ckey,
            vault=vault,
            items=items,
            purpose=purpose,
            context=CONTEXT,
            now=access_at,
            cache=access.NO_CACHE,
            ttl=300,
            random=rand,
        )
        va = access.verify_access(req.token, directory=d, certificate=cert, now=verify_at)
        releases = []
        release_tokens = []
        for approver in releasers:
            ikm = Recording(Drbg(f"flow/release/{name}/{approver}"))
            materials = {
                item: access.ItemMaterial(
                    manifest=manifests[vname], wraps=all_wraps[vname][approver]
                )
                for item, vname in served.items()
            }
            token = access._release_from_parts(
                va,
                materials=materials,
                directory=d,
                approver=approver,
                hpke_key=hpke_keys[approver],
                key=sig_keys[approver],
                now=release_at,
                cache_until=0,
                ikm=ikm,
            )
            blob = b64_decode(json.loads(b64_decode(token.split(".")[1]))["blob"])
            plaintext = hpke.open_sealed(
                req.ephemeral,
                blob,
                access.release_info(vault=vault, request=req.hash, approver=approver),
            )
            release_tokens.append(token)
            releases.append(
                {
                    "approver": approver,
                    "now": release_at,
                    "ikm_e": ikm.draws[0].hex(),
                    "token": token,
                    "plaintext": plaintext.decode("utf-8"),
                }
            )
        out = access.open_release(
            req,
            releases=release_tokens,
            manifests={i: manifests[v] for i, v in served.items()},
            ciphertexts={i: all_cts[v] for i, v in served.items()},
            directory=d,
        )
        reqs[name], rels[name] = req, release_tokens
        requests[name] = {
            "params": {
                "client": cid,
                "vault": vault,
                "items": [i.to_json() for i in items],
                "purpose": purpose,
                "context": CONTEXT.to_json(),
                "now": access_at,
                "cache": access.NO_CACHE.to_json(),
                "ttl": 300,
            },
            "random_draws": rand.hex(),
            "ephemeral_sk": req.ephemeral._to_library().private_bytes_raw().hex(),
            "token": req.token,
            "hash": req.hash,
            "verified_at": verify_at,
            "served": served,
            "releases": releases,
            "opened": {
                "values": {i: {f: v.hex() for f, v in fv.items()} for i, fv in out.values.items()},
                "versions": dict(out.versions),
                "cache_until": out.cache_until,
            },
        }
    deny_token = access.deny(
        reqs["single"].hash,
        directory=d,
        approver=a2,
        key=sig_keys[a2],
        reason="change freeze until Monday",
        now=release_at,
    )
    deny_json = {
        "request": "single",
        "approver": a2,
        "reason": "change freeze until Monday",
        "now": release_at,
        "token": deny_token,
    }
    # An approver's signed refusal of a request it found unverifiable (grounds), and one
    # whose grounds are not the one value allowed.
    refusal_reason = "the request does not verify: signature_invalid"
    refusal_token = access.deny(
        reqs["multi"].hash,
        directory=d,
        approver=a1,
        key=sig_keys[a1],
        reason=refusal_reason,
        now=release_at,
        grounds="unverifiable",
    )
    refusal_json = {
        "request": "multi",
        "approver": a1,
        "reason": refusal_reason,
        "grounds": "unverifiable",
        "now": release_at,
        "token": refusal_token,
    }

    # --- negative cases ---------------------------------------------------------------
    # Each names the error code it must raise; the test runs them against sealbox.
    failures: list[dict[str, Any]] = []
    head = {"seq": d.head.seq, "hash": d.head.hash}

    def dir_case(name: str, expect: str, tokens: Sequence[str], pinned: str, cached: Any) -> None:
        failures.append(
            {
                "name": name,
                "op": "verify_directory",
                "tokens": list(tokens),
                "pinned": pinned,
                "cached_head": cached,
                "expect": expect,
            }
        )

    dir_case(
        "directory rollback: link 2 hidden", "directory_rollback", links[:2], fingerprint, head
    )
    dir_case(
        "directory fork: another link 2",
        "directory_fork",
        [*links[:2], fork_link],
        fingerprint,
        head,
    )
    dir_case(
        "directory pinned to another vault",
        "directory_broken",
        links,
        digest(labels.FINGERPRINT_VAULT, b"x"),
        None,
    )
    dir_case(
        "directory link signed by a non-member",
        "directory_broken",
        [*links[:2], rogue_link],
        fingerprint,
        None,
    )
    dir_case(
        "directory links out of order",
        "directory_broken",
        [links[0], links[2], links[1]],
        fingerprint,
        None,
    )
    dir_case(
        "directory link 1 dropped", "directory_broken", [links[0], links[2]], fingerprint, None
    )
    dir_case("directory empty", "directory_broken", [], fingerprint, None)

    def served_json(name: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
        served = requests[name]["served"]
        return (
            {i: manifests[v] for i, v in served.items()},
            {i: _cts_json(all_cts[v]) for i, v in served.items()},
        )

    def open_case(name: str, expect: str, request: str, releases: list[str], **over: Any) -> None:
        m, c = served_json(request)
        failures.append(
            {
                "name": name,
                "op": "open_release",
                "request": request,
                "releases": releases,
                "manifests": over.get("manifests", m),
                "ciphertexts": over.get("ciphertexts", c),
                "known_versions": over.get("known_versions", {}),
                "directory_links": over.get("directory_links"),
                "expect": expect,
            }
        )

    open_case(
        "release for another request",
        "binding_mismatch",
        "multi",
        [rels["threshold"][0], rels["multi"][1]],
    )
    open_case(
        "one release for a 2-of-3 item", "threshold_not_met", "threshold", rels["threshold"][:1]
    )
    open_case("no release at all", "threshold_not_met", "single", [])
    c_thr = served_json("threshold")[1][item2]
    altered = b64u_encode(_flip(all_cts["item2-v1"]["api_key"], 0))
    open_case(
        "ciphertext altered",
        "manifest_mismatch",
        "threshold",
        rels["threshold"],
        ciphertexts={item2: {**c_thr, "api_key": altered}},
    )
    open_case(
        "ciphertext of another field served",
        "manifest_mismatch",
        "threshold",
        rels["threshold"],
        ciphertexts={item2: {**c_thr, "api_key": c_thr["signing_key"]}},
    )
    open_case(
        "ciphertext missing",
        "manifest_mismatch",
        "threshold",
        rels["threshold"],
        ciphertexts={item2: {"api_key": c_thr["api_key"]}},
    )
    open_case(
        "two releases from the same approver",
        "binding_mismatch",
        "threshold",
        [rels["threshold"][0], rels["threshold"][0]],
    )
    v1_served = {
        "manifests": {item1: manifests["item1-v1"]},
        "ciphertexts": {item1: _cts_json(all_cts["item1-v1"])},
    }
    open_case(
        "version rollback: v1 served after v2 was seen",
        "version_rollback",
        "single",
        rels["single"],
        known_versions={item1: 2},
        **v1_served,
    )
    open_case(
        "older version served than the release vouches for",
        "binding_mismatch",
        "single",
        rels["single"],
        **v1_served,
    )
    open_case(
        "manifest of another item served",
        "binding_mismatch",
        "single",
        rels["single"],
        manifests={item1: manifests["item2-v1"]},
    )
    h, p, s = rels["single"][0].split(".")
    open_case(
        "release token altered", "signature_invalid", "single", [f"{h}.{_swap_char(p, 40)}.{s}"]
    )
    open_case(
        "directory served without link 2: a manifest and a release name a non-member",
        "not_authorized",
        "multi",
        rels["multi"],
        directory_links=links[:2],
    )

    v1 = versions["item1-v1"]

    def store_case(name: str, expect: str, **over: Any) -> None:
        failures.append(
            {
                "name": name,
                "op": "verify_store",
                "statement": v1["statement"],
                "ciphertexts": over.get("ciphertexts", v1["ciphertexts"]),
                "wraps": over.get("wraps", v1["wraps"]),
                "approver": over.get("approver", a0),
                "certificate": cert,
                "now": over.get("now", NOW + 60),
                "expect": expect,
            }
        )

    altered = b64u_encode(_flip(all_cts["item1-v1"]["user"], 1))
    store_case(
        "store ciphertext altered",
        "manifest_mismatch",
        ciphertexts={**v1["ciphertexts"], "user": altered},
    )
    store_case(
        "store wraps of two approvers swapped",
        "manifest_mismatch",
        wraps={**v1["wraps"], a0: v1["wraps"][a1], a1: v1["wraps"][a0]},
    )
    store_case("store statement expired", "expired", now=NOW + 301)
    store_case("store verified by an approver holding no share", "not_authorized", approver=a3)
    store_case(
        "store verified after the certificate expired", "certificate_invalid", now=NOW + 86401
    )

    def access_case(name: str, expect: str, token: str, now: int) -> None:
        failures.append(
            {
                "name": name,
                "op": "verify_access",
                "token": token,
                "certificate": cert,
                "now": now,
                "expect": expect,
            }
        )

    access_case("access request expired", "expired", reqs["single"].token, access_at + 301)
    access_case("access request from the future", "expired", reqs["single"].token, access_at - 301)
    h, p, s = reqs["single"].token.split(".")
    access_case(
        "access token altered", "signature_invalid", f"{h}.{_swap_char(p, 30)}.{s}", verify_at
    )

    def release_case(
        name: str, expect: str, request: str, approver: str, materials: Any, now: int = release_at
    ) -> None:
        failures.append(
            {
                "name": name,
                "op": "release",
                "request": request,
                "approver": approver,
                "materials": materials,
                "now": now,
                "expect": expect,
            }
        )

    w2 = _wraps_json(all_wraps["item2-v1"])[a0]
    w1 = _wraps_json(all_wraps["item1-v2"])[a0]
    release_case(
        "release with another field's wrap",
        "manifest_mismatch",
        "threshold",
        a0,
        {item2: {"manifest": manifests["item2-v1"], "wraps": {**w2, "api_key": w2["signing_key"]}}},
    )
    release_case(
        "release with a manifest of another item",
        "binding_mismatch",
        "threshold",
        a0,
        {item2: {"manifest": manifests["item1-v1"], "wraps": w2}},
    )
    release_case(
        "release by an approver holding no share",
        "not_authorized",
        "single",
        a2,
        {item1: {"manifest": manifests["item1-v2"], "wraps": w1}},
    )
    release_case(
        "release after the request expired",
        "expired",
        "single",
        a0,
        {item1: {"manifest": manifests["item1-v2"], "wraps": w1}},
        now=access_at + 301,
    )
    failures.append(
        {
            "name": "deny checked against another request",
            "op": "verify_deny",
            "token": deny_token,
            "request_hash": reqs["multi"].hash,
            "expect": "binding_mismatch",
        }
    )
    refusal_claims = json.loads(b64_decode(refusal_token.split(".")[1]))
    unknown_grounds = _signed(
        sig_keys[a1],
        _header_b64({"alg": "EdDSA", "kid": a1, "typ": labels.TYP_DENY}),
        canonical_json({**refusal_claims, "grounds": "tampered"}),
    )
    failures.append(
        {
            "name": "deny with grounds other than unverifiable",
            "op": "verify_deny",
            "token": unknown_grounds,
            "request_hash": reqs["multi"].hash,
            "expect": "malformed",
        }
    )

    world = {
        "now": NOW,
        "vault": vault,
        "approvers": approvers,
        "directory": directory_json,
        "certificate": certificates_json,
        "item_versions": versions,
        "requests": requests,
        "deny": deny_json,
        "refusal": refusal_json,
    }
    return _doc(
        "One complete deterministic world: a vault with three approvers (a fourth, the "
        "intruder, is never added), a certified client, item versions stored 1-of-3, 2-of-3 "
        "and (directly by an approver) 1-of-2, access requests with their releases and the "
        'values they open to, a deny, and a refusal (a deny with grounds "unverifiable"). '
        "Blobs in uploads are base64url as on the wire. "
        "random_draws / ikm_draws / ikm_e are the injected randomness in the order sealbox "
        "consumed it. failures: each names an operation (op) with its inputs and the error "
        "code it must raise; the world's directory and keys are used unless the case "
        "overrides them.",
        world=world,
        failures=failures,
    )


# --- main ---------------------------------------------------------------------------------


# --- audit.json ---------------------------------------------------------------------------


def gen_audit() -> dict[str, Any]:
    """Audit event hashes (a chain), checkpoint heads, and tampered logs a verifier refuses."""
    from sealbox.protocol import audit as au

    rows: list[dict[str, Any]] = [
        {"at": NOW, "actor": "relay", "action": "vault.created", "severity": "info",
         "client_id": None, "item_id": None, "source_ip": None, "detail": {}},
        {"at": NOW + 1, "actor": "apv_aaaaaaaaaaaaaaaaaaaaaaaaaa", "action": "access.release",
         "severity": "notice", "client_id": "cli_bbbbbbbbbbbbbbbbbbbbbbbbbb",
         "item_id": "itm_cccccccccccccccccccccccccc", "source_ip": "2001:db8::1",
         "detail": {"request": "r1", "items": [{"path": "app/prod/db"}], "approvals": 1}},
        {"at": NOW + 2, "actor": "anonymous", "action": "auth.refused", "severity": "warning",
         "client_id": None, "item_id": None, "source_ip": "10.0.0.7",
         "detail": {"error": "signature_invalid", "note": "ünïcödé ☃ \" , \n"}},
        {"at": NOW + 3, "actor": "relay", "action": "canary.read", "severity": "critical",
         "client_id": "cli_bbbbbbbbbbbbbbbbbbbbbbbbbb", "item_id": None, "source_ip": "",
         "detail": {"nested": {"b": [1, -2, 9007199254740991], "a": None, "t": True}}},
        {"at": 0, "actor": "", "action": "x", "severity": "alert", "client_id": None,
         "item_id": None, "source_ip": None, "detail": {"z": "last"}},
    ]  # fmt: skip
    events: list[dict[str, Any]] = []
    prev = au.GENESIS
    for seq, row in enumerate(rows, start=1):
        event = {"seq": seq, **row, "prev_hash": prev}
        event["hash"] = prev = au.event_hash(prev, event)
        events.append({name: event[name] for name in au.FIELDS})
    chain = [
        {"event": e, "hash": e["hash"], "head": au.head_digest(e["hash"]),
         "hashed": length_prefixed(
             labels.HASH_AUDIT, e["prev_hash"], e["seq"], e["at"], e["actor"], e["action"],
             e["severity"], e["client_id"] or "", e["item_id"] or "", e["source_ip"] or "",
             canonical_json(e["detail"])).hex()}
        for e in events
    ]  # fmt: skip

    def tampered(name: str, log: list[dict[str, Any]], seq: int, **kw: Any) -> dict[str, Any]:
        parsed = [au.AuditEvent.from_json(e) for e in log]
        known = [au.AuditHead(k, events[k - 1]["hash"]) for k in kw.get("known", [])]
        code = _expect("audit_broken", lambda: au.verify_log(parsed, known=known))
        try:
            au.verify_log(parsed, known=known)
        except au.AuditBroken as exc:
            if exc.seq != seq:
                raise AssertionError(f"{name}: expected seq {seq}, got {exc.seq}") from exc
        return {"name": name, "events": log, "known": kw.get("known", []), "expect": code,
                "seq": seq}  # fmt: skip

    edited = dict(events[2], actor="relay")
    tampers = [
        tampered("deleted", events[:2] + events[3:], 3),
        tampered("changed", [events[0], events[1], edited, *events[3:]], 3),
        tampered("reordered", [events[0], events[2], events[1], *events[3:]], 2),
        tampered("repeated", [*events[:3], events[2], *events[3:]], 4),
        tampered("first_missing", events[1:], 1),
        tampered("truncated_behind_known_head", events[:3], 5, known=[5]),
        tampered("relinked", [events[0], dict(events[1], prev_hash="ab" * 32), *events[2:]], 2),
    ]

    def _same_hash(event: dict[str, Any], **edit: Any) -> dict[str, Any]:
        row = dict(event, **edit)
        row["hash"] = au.event_hash(row["prev_hash"], row)
        return row

    malformed = []
    for name, event in (
        ("extra_field", dict(events[0], extra=1)),
        ("missing_hash", {k: v for k, v in events[0].items() if k != "hash"}),
        ("seq_zero", dict(events[0], seq=0)),
        ("bool_seq", dict(events[0], seq=True)),
        ("unknown_severity", dict(events[0], severity="loud")),
        ("detail_not_object", dict(events[0], detail=[1])),
        ("uppercase_hash", dict(events[0], hash=events[0]["hash"].upper())),
        ("null_actor", dict(events[0], actor=None)),
        # Types a verifier must not take as they come: lp hashes the integer 1 and the string
        # "\0\0\0\0\0\0\0\1" alike, and a JavaScript verifier would hash whatever it got.
        ("at_as_string", dict(events[0], at=str(events[0]["at"]))),
        # The hash is right for at = 0x01020304: only the type tells the two apart.
        (
            "at_as_8_byte_string_same_hash",
            dict(_same_hash(events[0], at=0x01020304), at="\0\0\0\0\1\2\3\4"),
        ),
        ("seq_as_string", dict(events[0], seq="1")),
        ("at_negative", dict(events[0], at=-1)),
        ("at_beyond_2_53", dict(events[0], at=2**53)),
        ("seq_beyond_2_53", dict(events[0], seq=2**53)),
        ("actor_number", dict(events[0], actor=7)),
        ("client_id_zero", dict(events[0], client_id=0)),
        ("client_id_false", dict(events[0], client_id=False)),
        ("item_id_empty_list", dict(events[0], item_id=[])),
        ("source_ip_object", dict(events[0], source_ip={})),
        ("severity_null", dict(events[0], severity=None)),
        ("actor_lone_surrogate", dict(events[0], actor="apv_\ud800")),
        ("action_lone_low_surrogate", dict(events[0], action="x\udc00y")),
        ("detail_lone_surrogate", dict(events[0], detail={"note": "\ud83d"})),
        ("detail_float", dict(events[0], detail={"n": 1.5})),
        ("detail_big_integer", dict(events[0], detail={"n": 2**53})),
        ("detail_non_ascii_key", dict(events[0], detail={"ключ": 1})),
        ("detail_null", dict(events[0], detail=None)),
        ("actor_too_long", dict(events[0], actor="a" * 4097)),
        # 4097 code points (Python counts them; so must JavaScript, not UTF-16 units).
        ("actor_too_long_astral", dict(events[0], actor="a" * 4001 + "\U0001f600" * 96)),
        ("prev_hash_short", dict(events[0], prev_hash="0" * 63)),
        ("event_array", [events[0]]),  # type: ignore[list-item]
        ("event_null", None),  # type: ignore[list-item]
    ):
        code = _expect("malformed", lambda e=event: au.AuditEvent.from_json(e))  # type: ignore[misc]
        malformed.append({"name": name, "event": event, "expect": code})
    # At the edges, accepted alike (their hashes are Python's).
    accepted = []
    for name, edit in (
        # 4096 code points, 4192 UTF-16 units.
        ("actor_4096_astral", {"actor": "a" * 4000 + "\U0001f600" * 96}),
        ("actor_4096", {"actor": "a" * 4096}),
        ("at_2_53_minus_1", {"at": 2**53 - 1}),
        ("empty_strings", {"client_id": "", "item_id": "", "source_ip": "", "action": ""}),
        ("detail_unicode_values", {"detail": {"a": "\U0001f600 \u00e9", "b": [None, True]}}),
    ):
        row = dict(events[0], **edit)
        row["hash"] = au.event_hash(au.GENESIS, row)
        au.AuditEvent.from_json(row)
        accepted.append({"name": name, "event": row})
    return _doc(
        "Audit log: each event's hash is SHA-256 of lp(label, prev_hash, seq, at, actor, "
        "action, severity, client_id or '', item_id or '', source_ip or '', "
        "canonical_json(detail)) (integers as 8-byte big-endian); the first event links to "
        "64 zeros; a checkpoint's head is sha256: and base64url of the hash bytes.",
        label=labels.HASH_AUDIT.decode("ascii"), genesis=au.GENESIS, chain=chain,
        tampered=tampers, malformed=malformed, accepted=accepted,
    )  # fmt: skip


GENERATORS: dict[str, Callable[[], dict[str, Any]]] = {
    "hpke.json": gen_hpke,
    "field_aead.json": gen_field_aead,
    "shamir.json": gen_shamir,
    "jws.json": gen_jws,
    "encoding.json": gen_encoding,
    "flow.json": gen_flow,
    "audit.json": gen_audit,
}


def dump(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, generate in GENERATORS.items():
        (args.out / name).write_text(dump(generate()), encoding="utf-8", newline="\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
