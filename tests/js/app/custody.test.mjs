// Key custody of a browser approver: keys wrapped under the passkey's PRF open only with that
// PRF output, for that approver id, and come out non-extractable.
import assert from "node:assert/strict";
import { test } from "node:test";

import { labels, unwrapKeys, wrapKeys } from "../../../src/sealbox/web/static/app/custody.js";
import { generateHpkeKey, generateSigningKey, HpkePrivateKey, SigningKey } from "../../../src/sealbox/web/static/sealbox/keys.js";
import * as hpke from "../../../src/sealbox/web/static/sealbox/hpke.js";

const prf = () => crypto.getRandomValues(new Uint8Array(32));

async function made() {
  const sig = await generateSigningKey({ extractable: true });
  const hp = await generateHpkeKey({ extractable: true });
  return { sig, hp, privateKeys: { sig: sig.cryptoKey, hpke: hp.cryptoKey } };
}

test("labels are the documented ones", () => {
  assert.equal(labels.prfSalt, "sealbox/v1/browser/prf-salt");
  assert.equal(labels.keyWrap, "sealbox/v1/browser/key-wrap");
});

test("wrapped keys open with the same PRF output and approver id, non-extractable, and work", async () => {
  const { sig, hp, privateKeys } = await made();
  const secret = prf();
  const wrapped = await wrapKeys(secret, "apv_a", privateKeys);
  const opened = await unwrapKeys(secret, "apv_a", wrapped);
  assert.equal(opened.sig.extractable, false);
  assert.equal(opened.hpke.extractable, false);
  const signer = new SigningKey(opened.sig, sig.publicKey());
  const message = new TextEncoder().encode("sealbox");
  await sig.publicKey().verify(await signer.sign(message), message);
  const blob = await hpke.seal(hp.publicKey(), new Uint8Array([1]), message);
  const opener = new HpkePrivateKey(opened.hpke, hp.publicKey());
  assert.deepEqual(await hpke.open(opener, new Uint8Array([1]), blob), message);
});

test("another PRF output, another approver id, or a changed byte opens nothing", async () => {
  const { privateKeys } = await made();
  const secret = prf();
  const wrapped = await wrapKeys(secret, "apv_a", privateKeys);
  await assert.rejects(unwrapKeys(prf(), "apv_a", wrapped), /does not open/);
  await assert.rejects(unwrapKeys(secret, "apv_b", wrapped), /does not open/);
  const swapped = { sig: wrapped.hpke, hpke: wrapped.sig };
  await assert.rejects(unwrapKeys(secret, "apv_a", swapped), /does not open/);
  const ct = wrapped.sig.ct;
  const flipped = { ...wrapped, sig: { ...wrapped.sig, ct: (ct[0] === "A" ? "B" : "A") + ct.slice(1) } };
  await assert.rejects(unwrapKeys(secret, "apv_a", flipped), /does not open/);
});

test("the wrap never holds the private key in the clear", async () => {
  const { sig, privateKeys } = await made();
  const pkcs8 = await sig.exportPkcs8();
  const wrapped = await wrapKeys(prf(), "apv_a", privateKeys);
  const seed = Buffer.from(pkcs8.slice(-32)).toString("base64url");
  assert.ok(!JSON.stringify(wrapped).includes(seed));
});

test("a PRF output of the wrong length is refused", async () => {
  const { privateKeys } = await made();
  await assert.rejects(wrapKeys(new Uint8Array(16), "apv_a", privateKeys), /32 bytes/);
});

test("the browser's labels are the ones src/sealbox/crypto/labels.py declares", async () => {
  const { readFileSync } = await import("node:fs");
  const python = readFileSync(new URL("../../../src/sealbox/crypto/labels.py", import.meta.url), "utf8");
  for (const label of Object.values(labels)) assert.ok(python.includes(`"${label}"`), label);
});
