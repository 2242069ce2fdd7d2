// share.js: the share page's decryption, against a vector sealed by the Python code
// (tests/unit/crypto/test_crypto_sharelink.py checks the same bytes from its side).

import assert from "node:assert/strict";
import { test } from "node:test";

import { b64uDecode, b64uEncode } from "../../../src/sealbox/web/static/sealbox/encoding.js";
import { openShare, openToken, parseShareLocation, shareAad, shareIdOf } from "../../../src/sealbox/web/static/sealbox/share.js";
import { rejectsWithCode, toHex } from "./support.mjs";

const SHARE_ID = "shr_aaaaaaaaaaaaaaaaaaaaaaaaaa";
const KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
const ANSWER = { id: SHARE_ID, nonce: "ZGVmZ2hpamtsbW5v", ciphertext: "IH6yChbFdu1WAy2N-of2bn_nMmZDAgBr9vX2ys-Sqt4" };
const AAD =
  "000000157365616c626f782f76312f616561642f73686172650000001e7368725f6161616161616161616161616161616161616161616161616161";

test("the aad is the label and the share id, length-prefixed as in Python", () => {
  assert.equal(toHex(shareAad(SHARE_ID)), AAD);
});

test("a share sealed by Python opens with the fragment's key", async () => {
  const { shareId, key } = parseShareLocation(`/s/${SHARE_ID}`, `#${KEY}`);
  assert.equal(shareId, SHARE_ID);
  const value = await openShare(key, shareId, ANSWER);
  assert.equal(new TextDecoder().decode(value), "hello, share ✓");
});

test("another key, another id or altered bytes do not open", async () => {
  const key = b64uDecode(KEY);
  const other = Uint8Array.from(key);
  other[0] ^= 1;
  await rejectsWithCode(assert, () => openShare(other, SHARE_ID, ANSWER), "decryption_failed", "key");
  const moved = "shr_baaaaaaaaaaaaaaaaaaaaaaaaa";
  await rejectsWithCode(assert, () => openShare(key, moved, { ...ANSWER, id: moved }), "decryption_failed", "id");
  await rejectsWithCode(assert, () => openShare(key, SHARE_ID, { ...ANSWER, id: moved }), "decryption_failed", "answer for another share");
  const bytes = b64uDecode(ANSWER.ciphertext);
  bytes[3] ^= 0x80;
  await rejectsWithCode(assert, () => openShare(key, SHARE_ID, { ...ANSWER, ciphertext: b64uEncode(bytes) }), "decryption_failed", "altered");
  await rejectsWithCode(assert, () => openShare(key, SHARE_ID, { ...ANSWER, ciphertext: "AAAA" }), "decryption_failed", "short");
  await rejectsWithCode(assert, () => openShare(key, SHARE_ID, { ...ANSWER, nonce: "AAAA" }), "malformed", "nonce");
});

test("locations are parsed strictly", () => {
  assert.equal(shareIdOf(`/relay/s/${SHARE_ID}`), SHARE_ID);
  for (const path of ["/s/", "/s/shr_short", `/s/${SHARE_ID}/`, `/x/${SHARE_ID}`, `/s/${SHARE_ID.toUpperCase()}`]) {
    assert.throws(() => shareIdOf(path), (e) => e.code === "malformed", path);
  }
  for (const hash of ["", "#", `#${KEY.slice(1)}`, `#${KEY}A`, `#${KEY.slice(0, 42)}+`, `#${KEY.slice(0, 42)}h`]) {
    assert.throws(() => parseShareLocation(`/s/${SHARE_ID}`, hash), (e) => e.code === "malformed", hash);
  }
});

// The open token of the vector's key and id, as tests/unit/crypto/test_crypto_sharelink.py
// derives it with pyca/cryptography.
const OPEN_TOKEN = "LS8qNWj8ejVfXrx1t_Va_MIIE3jNlU3AJiD_Yz06moI";

test("the open token is Python's HKDF of the key, bound to the id", async () => {
  const key = b64uDecode(KEY);
  assert.equal(await openToken(key, SHARE_ID), OPEN_TOKEN);
  assert.notEqual(await openToken(key, "shr_baaaaaaaaaaaaaaaaaaaaaaaaa"), OPEN_TOKEN);
  await rejectsWithCode(assert, () => openToken(key.slice(1), SHARE_ID), "malformed", "short key");
});
