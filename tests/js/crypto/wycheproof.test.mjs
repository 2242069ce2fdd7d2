// Wycheproof vectors (C2SP/wycheproof, Apache-2.0; tests/vectors/SOURCE.md) run
// through the browser core: X25519 through keys.js and hpke.js, Ed25519 through
// VerifyKey.verify, AES-256-GCM through the field functions, HKDF-SHA256 through
// hpke.js's Extract/Expand.

import assert from "node:assert/strict";
import { test } from "node:test";

import { decryptField, encryptField } from "../../../src/sealbox/web/static/sealbox/aead.js";
import { concat } from "../../../src/sealbox/web/static/sealbox/encoding.js";
import * as hpke from "../../../src/sealbox/web/static/sealbox/hpke.js";
import { HpkePublicKey, hpkeKeyFromRaw, VerifyKey } from "../../../src/sealbox/web/static/sealbox/keys.js";
import { hex, rejectsWithCode, toHex, wycheproof } from "./support.mjs";

function cases(name, groupFilter = () => true) {
  const out = [];
  for (const group of wycheproof(name).testGroups) {
    if (!groupFilter(group)) continue;
    for (const t of group.tests) out.push({ group, t, id: `${name} tc${t.tcId}` });
  }
  assert.ok(out.length > 0, `no vectors selected from ${name}`);
  return out;
}

test("Wycheproof Ed25519: valid signatures verify, invalid ones raise signature_invalid", async () => {
  const all = cases("ed25519_test");
  assert.ok(all.filter((c) => c.t.result === "valid").length > 50);
  assert.ok(all.filter((c) => c.t.result === "invalid").length > 50);
  for (const { group, t, id } of all) {
    const key = new VerifyKey(hex(group.publicKey.pk));
    if (t.result === "valid") {
      await key.verify(hex(t.sig), hex(t.msg));
    } else {
      assert.equal(t.result, "invalid", id);
      await rejectsWithCode(assert, () => key.verify(hex(t.sig), hex(t.msg)), "signature_invalid", id);
    }
  }
});

test("Wycheproof X25519: shared secrets match; exactly the zero-secret keys are refused", async () => {
  const zeroKeys = new Set();
  for (const { t, id } of cases("x25519_test", (g) => g.curve === "curve25519")) {
    assert.ok(["valid", "acceptable"].includes(t.result), id);
    const privateKey = await hpkeKeyFromRaw(hex(t.private));
    if (/^0+$/.test(t.shared)) {
      assert.ok(t.flags.includes("ZeroSharedSecret"), id);
      zeroKeys.add(t.public);
      await rejectsWithCode(assert, () => new HpkePublicKey(hex(t.public)), "malformed", id);
      continue;
    }
    const publicKey = new HpkePublicKey(hex(t.public));
    const shared = await globalThis.crypto.subtle.deriveBits(
      { name: "X25519", public: await publicKey.cryptoKey() },
      privateKey.cryptoKey,
      256,
    );
    assert.equal(toHex(new Uint8Array(shared)), t.shared, id);
    // Sealing to every accepted key works (twist points and non-canonical
    // encodings included: RFC 7748 §5 defines them).
    const blob = await hpke.seal(publicKey, Uint8Array.of(1), Uint8Array.of(2, 3));
    assert.equal(blob.length, 2 + hpke.OVERHEAD, id);
  }
  // The seven small-order encodings and their bit-255 twins.
  assert.equal(zeroKeys.size, 14);
});

test("Wycheproof AES-256-GCM (96-bit nonce, 128-bit tag) through the field functions", async () => {
  for (const { t, id } of cases("aes_gcm_test", (g) => g.keySize === 256 && g.ivSize === 96 && g.tagSize === 128)) {
    const [key, iv, aad, msg, ct, tag] = [t.key, t.iv, t.aad, t.msg, t.ct, t.tag].map(hex);
    const sealed = concat(ct, tag);
    if (t.result === "valid") {
      const { ciphertext } = await encryptField(key, msg, aad, { nonce: iv });
      assert.equal(toHex(ciphertext), toHex(sealed), id);
      assert.equal(toHex(await decryptField(key, iv, sealed, aad)), t.msg, id);
    } else {
      assert.equal(t.result, "invalid", id);
      await rejectsWithCode(assert, () => decryptField(key, iv, sealed, aad), "decryption_failed", id);
    }
  }
});

test("Wycheproof HKDF-SHA256 through hpke.js's Extract and Expand", async () => {
  for (const { t, id } of cases("hkdf_sha256_test")) {
    const prk = await hpke.extract(hex(t.salt), hex(t.ikm));
    assert.equal(prk.length, 32, id);
    if (t.result === "valid") {
      assert.equal(toHex(await hpke.expand(prk, hex(t.info), t.size)), t.okm, id);
    } else {
      assert.ok(t.flags.includes("SizeTooLarge") && t.size > 255 * 32, id);
      await assert.rejects(() => hpke.expand(prk, hex(t.info), t.size), RangeError, id);
    }
  }
});
