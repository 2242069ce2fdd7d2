// aead.js against tests/vectors/sealbox/field_aead.json.

import assert from "node:assert/strict";
import { test } from "node:test";

import { decryptField, encryptField, fieldAad, newFieldKey } from "../../../src/sealbox/web/static/sealbox/aead.js";
import { hex, rejectsWithCode, sealboxVectors, toHex } from "./support.mjs";

const vectors = sealboxVectors("field_aead");

function context(c) {
  return { vault: c.vault, item: c.item, version: c.version, field: c.field };
}

test("field_aead.json: encrypt with the recorded nonce gives the recorded ciphertext", async () => {
  assert.ok(vectors.cases.length > 0);
  for (const c of vectors.cases) {
    const aad = fieldAad(context(c));
    assert.equal(toHex(aad), c.aad);
    const { nonce, ciphertext } = await encryptField(hex(c.key), hex(c.plaintext), aad, { nonce: hex(c.nonce) });
    assert.equal(toHex(nonce), c.nonce);
    assert.equal(toHex(ciphertext), c.ciphertext);
    const viaRandom = await encryptField(hex(c.key), hex(c.plaintext), aad, { random: () => hex(c.nonce) });
    assert.equal(toHex(viaRandom.ciphertext), c.ciphertext);
    assert.equal(toHex(await decryptField(hex(c.key), hex(c.nonce), hex(c.ciphertext), aad)), c.plaintext);
  }
});

test("field_aead.json failures raise their recorded codes", async () => {
  assert.ok(vectors.failures.length > 0);
  for (const c of vectors.failures) {
    const aad = fieldAad(context(c));
    assert.equal(toHex(aad), c.aad, c.name);
    await rejectsWithCode(assert, () => decryptField(hex(c.key), hex(c.nonce), hex(c.ciphertext), aad), c.expect, c.name);
  }
});

test("fresh keys and nonces", async () => {
  const key = newFieldKey();
  assert.equal(key.length, 32);
  const aad = fieldAad({ vault: "vlt_a", item: "itm_b", version: 1, field: "password" });
  const a = await encryptField(key, Uint8Array.of(7), aad);
  const b = await encryptField(key, Uint8Array.of(7), aad);
  assert.notEqual(toHex(a.nonce), toHex(b.nonce));
  assert.deepEqual(await decryptField(key, a.nonce, a.ciphertext, aad), Uint8Array.of(7));
  assert.throws(() => newFieldKey(() => new Uint8Array(31)), RangeError);
  await rejectsWithCode(assert, () => encryptField(new Uint8Array(16), Uint8Array.of(1), aad), "malformed", "short key");
});
