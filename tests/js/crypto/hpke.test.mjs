// hpke.js against tests/vectors/sealbox/hpke.json and the official RFC 9180
// vectors (file named by SEALBOX_RFC9180_VECTORS: a missing file fails the test).

import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";

import * as hpke from "../../../src/sealbox/web/static/sealbox/hpke.js";
import { hpkeKeyFromRaw, HpkePublicKey } from "../../../src/sealbox/web/static/sealbox/keys.js";
import { hex, loadJson, part, rejectsWithCode, sealboxVectors, toHex } from "./support.mjs";

const vectors = sealboxVectors("hpke");

test("hpke.json: seal with the recorded ikm_e gives the recorded blob, and it opens", async () => {
  assert.ok(vectors.cases.length > 0);
  for (const c of vectors.cases) {
    const info = hpke.info(c.info_label, ...c.info_parts.map(part));
    assert.equal(toHex(info), c.info, `${c.name}: info`);
    const recipient = await hpkeKeyFromRaw(hex(c.sk));
    assert.equal(toHex(recipient.publicKey().raw), c.pk, `${c.name}: public key`);
    const blob = await hpke.seal(new HpkePublicKey(hex(c.pk)), info, hex(c.plaintext), {
      ikmE: hex(c.ikm_e),
    });
    assert.equal(toHex(blob), c.blob, `${c.name}: blob`);
    const viaRandom = await hpke.seal(recipient.publicKey().text, info, hex(c.plaintext), {
      random: (n) => hex(c.ikm_e).slice(0, n),
    });
    assert.equal(toHex(viaRandom), c.blob, `${c.name}: blob with random()`);
    assert.equal(toHex(await hpke.open(recipient, info, hex(c.blob))), c.plaintext, c.name);
  }
});

test("hpke.json failures raise decryption_failed", async () => {
  assert.ok(vectors.failures.length > 0);
  for (const c of vectors.failures) {
    const key = await hpkeKeyFromRaw(hex(c.sk));
    await rejectsWithCode(assert, () => hpke.open(key, hex(c.info), hex(c.blob)), c.expect, c.name);
  }
});

test("seal without injected randomness opens, and differs each time", async () => {
  const recipient = await hpkeKeyFromRaw(hex("11".repeat(32)));
  const info = hpke.info("sealbox/v1/hpke/release", "vlt_x", 3);
  const pt = Uint8Array.of(1, 2, 3);
  const a = await hpke.seal(recipient.publicKey(), info, pt);
  const b = await hpke.seal(recipient.publicKey(), info, pt);
  assert.notEqual(toHex(a), toHex(b));
  assert.equal(a.length, pt.length + hpke.OVERHEAD);
  assert.deepEqual(await hpke.open(recipient, info, a), pt);
  await assert.rejects(() => hpke.seal(recipient.publicKey(), info, pt, { ikmE: new Uint8Array(31) }), RangeError);
});

// --- RFC 9180 Appendix A vectors ---

function rfcVectors() {
  const path = process.env.SEALBOX_RFC9180_VECTORS;
  assert.ok(path, "SEALBOX_RFC9180_VECTORS must name the RFC 9180 test-vectors.json");
  assert.ok(existsSync(path), `RFC 9180 vectors not found at ${path}`);
  return loadJson(path);
}

test("RFC 9180: base mode X25519 / HKDF-SHA256 / AES-256-GCM, byte for byte", async () => {
  const selected = rfcVectors().filter(
    (v) => v.mode === 0 && v.kem_id === 0x20 && v.kdf_id === 1 && v.aead_id === 2,
  );
  assert.equal(selected.length, 1);
  for (const v of selected) {
    assert.equal(toHex(await hpke.deriveKeyPairBytes(hex(v.ikmE))), v.skEm);
    assert.equal(toHex(await hpke.deriveKeyPairBytes(hex(v.ikmR))), v.skRm);
    const recipient = await hpkeKeyFromRaw(hex(v.skRm));
    assert.equal(toHex(recipient.publicKey().raw), v.pkRm);
    const schedule = await hpke.keySchedule(hex(v.shared_secret), hex(v.info));
    assert.equal(toHex(schedule.key), v.key);
    assert.equal(toHex(schedule.baseNonce), v.base_nonce);
    // Sequence number 0 is the first encryption: its nonce is base_nonce itself.
    const first = v.encryptions[0];
    assert.equal(first.nonce, v.base_nonce);
    const blob = await hpke.sealWithParts(new HpkePublicKey(hex(v.pkRm)), hex(v.info), hex(first.pt), {
      ikmE: hex(v.ikmE),
      aad: hex(first.aad),
    });
    assert.equal(toHex(blob), v.enc + first.ct);
    const opened = await hpke.openWithAad(recipient, hex(v.info), blob, hex(first.aad));
    assert.equal(toHex(opened), first.pt);
    // The same blob under sealbox's empty aad must not open.
    await rejectsWithCode(assert, () => hpke.open(recipient, hex(v.info), blob), "decryption_failed", "aad");
  }
});

test("RFC 9180: DHKEM(X25519, HKDF-SHA256) key derivation and encapsulation in every entry", async () => {
  const selected = rfcVectors().filter((v) => v.kem_id === 0x20);
  assert.ok(selected.length >= 16);
  let encapsulations = 0;
  for (const v of selected) {
    const name = `mode ${v.mode} kdf ${v.kdf_id} aead ${v.aead_id}`;
    // The KEM's own KDF is HKDF-SHA256 whatever the suite's kdf_id: DeriveKeyPair
    // and, in modes without sender authentication, the shared secret are ours to check.
    assert.equal(toHex(await hpke.deriveKeyPairBytes(hex(v.ikmE))), v.skEm, name);
    assert.equal(toHex(await hpke.deriveKeyPairBytes(hex(v.ikmR))), v.skRm, name);
    const ephemeral = await hpke.deriveKeyPair(hex(v.ikmE));
    assert.equal(toHex(ephemeral.publicKey().raw), v.pkEm, name);
    assert.equal(v.enc, v.pkEm, name);
    if (v.mode === 0 || v.mode === 1) {
      // Base and PSK modes share the unauthenticated Encap/Decap.
      const { sharedSecret, enc } = await hpke.encap(new HpkePublicKey(hex(v.pkRm)), { ikmE: hex(v.ikmE) });
      assert.equal(toHex(enc), v.enc, name);
      assert.equal(toHex(sharedSecret), v.shared_secret, name);
      const recipient = await hpkeKeyFromRaw(hex(v.skRm));
      assert.equal(toHex(await hpke.decap(hex(v.enc), recipient)), v.shared_secret, name);
      encapsulations++;
    }
  }
  assert.ok(encapsulations >= 8);
});

test("HKDF-Expand refuses more than 255 blocks", async () => {
  await assert.rejects(() => hpke.expand(new Uint8Array(32), new Uint8Array(0), 255 * 32 + 1), RangeError);
  assert.equal((await hpke.expand(new Uint8Array(32), new Uint8Array(0), 255 * 32)).length, 8160);
});
