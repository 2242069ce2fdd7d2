// keys.js: strict text forms, small-order rejection, fingerprints and safety
// codes (expected values computed by src/sealbox/crypto/keys.py), private keys.

import assert from "node:assert/strict";
import { test } from "node:test";

import { b64uEncode } from "../../../src/sealbox/web/static/sealbox/encoding.js";
import {
  fingerprint,
  generateHpkeKey,
  generateSigningKey,
  HpkePublicKey,
  hpkeKeyFromRaw,
  importPkcs8,
  parseHpkePublic,
  parseVerifyKey,
  safetyCode,
  signingKeyFromSeed,
  VerifyKey,
} from "../../../src/sealbox/web/static/sealbox/keys.js";
import { hex, rejectsWithCode, toHex } from "./support.mjs";

const SEED = Uint8Array.from({ length: 32 }, (_, i) => i);
// keys.py: HpkePrivateKey._from_seed(bytes(range(32))) and SigningKey._from_seed(...).
const PYTHON = {
  hpke: {
    text: "sbx-hpke-pk-v1:j0DFrbaPJWJK5bIU6nZ6bslNgp09e14a0bpvPiE4KF8",
    fingerprint: "sha256:FdVnwJlc7UFF5fBqvDRdhU9Q1uG2zKChRjV-x6zulIM",
    safetyCode: "59737 69157 70109 48321",
  },
  sig: {
    text: "sbx-ed25519-pk-v1:A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg",
    fingerprint: "sha256:0cEbgwrnJLteE7IwhcozoZSR0yNHT1C3bV1psUJAI4U",
    safetyCode: "70570 04467 53107 19395",
  },
};

test("keys from fixed bytes match keys.py: text, fingerprint, safety code", async () => {
  const hpkeKey = await hpkeKeyFromRaw(SEED);
  const sigKey = await signingKeyFromSeed(SEED);
  for (const [key, want] of [
    [hpkeKey.publicKey(), PYTHON.hpke],
    [sigKey.publicKey(), PYTHON.sig],
  ]) {
    assert.equal(key.text, want.text);
    assert.equal(await key.fingerprint(), want.fingerprint);
    assert.equal(await fingerprint(want.text), want.fingerprint);
    assert.equal(await key.safetyCode(), want.safetyCode);
  }
  assert.equal(parseHpkePublic(PYTHON.hpke.text).text, PYTHON.hpke.text);
  assert.equal(parseVerifyKey(PYTHON.sig.text).text, PYTHON.sig.text);
  assert.equal(JSON.stringify({ k: sigKey.publicKey() }), `{"k":"${PYTHON.sig.text}"}`);
  assert.equal(JSON.stringify(sigKey), '"[SigningKey]"');
});

test("text forms are strict: prefix, base64url, length", async () => {
  const body = PYTHON.hpke.text.slice("sbx-hpke-pk-v1:".length);
  for (const bad of [
    PYTHON.sig.text, // a signing key is never a sealing key
    `sbx-hpke-pk-v2:${body}`,
    `sbx-hpke-pk-v1:${body}=`,
    `sbx-hpke-pk-v1:${body.slice(0, -1)}`,
    `sbx-hpke-pk-v1:${body}AA`,
    `sbx-hpke-pk-v1:${body.slice(0, -1)}9`, // non-zero trailing bits
    ` ${PYTHON.hpke.text}`,
    null,
  ]) {
    await rejectsWithCode(assert, () => parseHpkePublic(bad), "malformed", String(bad));
  }
  await rejectsWithCode(assert, () => parseVerifyKey(PYTHON.hpke.text), "malformed", "hpke as sig");
  await rejectsWithCode(assert, () => fingerprint("sbx-nothing:AAAA"), "malformed", "fingerprint");
});

// RFC 7748 §6 / libsodium's list, and each with bit 255 set (X25519 ignores it).
const X25519_SMALL_ORDER = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

test("small-order X25519 keys and their bit-255 twins are refused", async () => {
  for (const h of X25519_SMALL_ORDER) {
    const raw = hex(h);
    const twin = Uint8Array.from(raw);
    twin[31] |= 0x80;
    for (const key of [raw, twin]) {
      await rejectsWithCode(assert, () => new HpkePublicKey(key), "malformed", toHex(key));
      await rejectsWithCode(assert, () => parseHpkePublic(`sbx-hpke-pk-v1:${b64uEncode(key)}`), "malformed", toHex(key));
    }
  }
});

// Verdicts of keys.py's _check_ed25519_public for each encoding.
const ED25519_REFUSED = [
  ["identity", "0100000000000000000000000000000000000000000000000000000000000000", "small-order point"],
  ["identity, sign bit set", "0100000000000000000000000000000000000000000000000000000000000080", "non-canonical encoding"],
  ["order 2", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", "small-order point"],
  ["order 4", "0000000000000000000000000000000000000000000000000000000000000000", "small-order point"],
  ["order 4, other sign", "0000000000000000000000000000000000000000000000000000000000000080", "small-order point"],
  ["order 8", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a", "small-order point"],
  ["order 8, other sign", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa", "small-order point"],
  ["order 8'", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", "small-order point"],
  ["order 8', other sign", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85", "small-order point"],
  ["y = p", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", "non-canonical encoding"],
  ["y = p + 1", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", "non-canonical encoding"],
  ["y = 2^255 - 1", "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", "non-canonical encoding"],
  ["y = 2, not on the curve", "0200000000000000000000000000000000000000000000000000000000000000", "not a point on Ed25519"],
];

test("Ed25519 keys that are not canonical points of large order are refused", async () => {
  for (const [name, h, reason] of ED25519_REFUSED) {
    for (let attempt = 0; attempt < 2; attempt++) {
      // Twice: the second verdict comes from the cache and must be the same.
      let error = null;
      try {
        new VerifyKey(hex(h));
      } catch (caught) {
        error = caught;
      }
      assert.equal(error?.code, "malformed", name);
      assert.ok(error.message.endsWith(reason), `${name}: ${error.message}`);
    }
    await rejectsWithCode(assert, () => parseVerifyKey(`sbx-ed25519-pk-v1:${b64uEncode(hex(h))}`), "malformed", name);
  }
});

test("safetyCode reads four 5-byte groups modulo 100000", () => {
  const bytes = new Uint8Array(32).fill(0xff);
  // 2^40 - 1 = 1099511627775 -> 27775
  assert.equal(safetyCode(bytes), "27775 27775 27775 27775");
  assert.equal(safetyCode(new Uint8Array(20)), "00000 00000 00000 00000");
  assert.throws(() => safetyCode(new Uint8Array(19)), RangeError);
});

test("generated keys sign, seal, export only when extractable, and re-import", async () => {
  const sig = await generateSigningKey();
  assert.equal(sig.extractable, false);
  await assert.rejects(() => sig.exportPkcs8(), TypeError);
  const message = Uint8Array.of(1, 2, 3);
  await sig.publicKey().verify(await sig.sign(message), message);

  const exportable = await generateSigningKey({ extractable: true });
  const pkcs8 = await exportable.exportPkcs8();
  const restored = await importPkcs8("sig", pkcs8);
  assert.equal(restored.extractable, false);
  assert.equal(restored.publicKey().text, exportable.publicKey().text);
  await exportable.publicKey().verify(await restored.sign(message), message);

  const hpkeKey = await generateHpkeKey({ extractable: true });
  const hpkeRestored = await importPkcs8("hpke", await hpkeKey.exportPkcs8());
  assert.equal(hpkeRestored.publicKey().text, hpkeKey.publicKey().text);
  assert.equal((await generateHpkeKey()).extractable, false);

  await rejectsWithCode(assert, () => importPkcs8("hpke", pkcs8), "malformed", "Ed25519 PKCS#8 as X25519");
  await rejectsWithCode(assert, () => importPkcs8("sig", Uint8Array.of(1, 2, 3)), "malformed", "garbage");
  await rejectsWithCode(assert, () => signingKeyFromSeed(new Uint8Array(31)), "malformed", "short seed");
  await assert.rejects(() => importPkcs8("rsa", pkcs8), TypeError);
});

test("verify raises signature_invalid for a wrong signature, message or length", async () => {
  const key = await signingKeyFromSeed(SEED);
  const message = Uint8Array.of(9, 9);
  const signature = await key.sign(message);
  await key.publicKey().verify(signature, message);
  const flipped = Uint8Array.from(signature);
  flipped[0] ^= 1;
  for (const [sig, msg, name] of [
    [flipped, message, "flipped signature"],
    [signature, Uint8Array.of(9, 8), "other message"],
    [signature.subarray(0, 63), message, "63 bytes"],
    [new Uint8Array(0), message, "empty"],
  ]) {
    await rejectsWithCode(assert, () => key.publicKey().verify(sig, msg), "signature_invalid", name);
  }
});
