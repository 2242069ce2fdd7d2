// End to end inside JavaScript: what the browser seals it opens, what it signs it
// verifies, and one changed byte is refused with the right error code.

import assert from "node:assert/strict";
import { test } from "node:test";

import { b64uDecode, b64uEncode, utf8 } from "../../../src/sealbox/web/static/sealbox/encoding.js";
import * as hpke from "../../../src/sealbox/web/static/sealbox/hpke.js";
import { signStatement, verifyStatement } from "../../../src/sealbox/web/static/sealbox/jws.js";
import { generateHpkeKey, generateSigningKey } from "../../../src/sealbox/web/static/sealbox/keys.js";
import { hpkeShareWrap, typItem } from "../../../src/sealbox/web/static/sealbox/labels.js";
import { rejectsWithCode } from "./support.mjs";

const VAULT = "vlt_aaaaaaaaaaaaaaaaaaaaaaaaaa";
const APPROVER = "apv_bbbbbbbbbbbbbbbbbbbbbbbbbb";

test("HPKE: a value sealed in JS opens in JS; every tampered byte raises decryption_failed", async () => {
  const recipient = await generateHpkeKey();
  const info = hpke.info(hpkeShareWrap, VAULT, "itm_cccccccccccccccccccccccccc", 1, "password", APPROVER);
  const secret = utf8("correct horse battery staple");
  const blob = await hpke.seal(recipient.publicKey(), info, secret);
  assert.deepEqual(await hpke.open(recipient, info, blob), secret);
  for (const index of [0, 31, 32, blob.length - 17, blob.length - 1]) {
    const tampered = Uint8Array.from(blob);
    tampered[index] ^= 0x01;
    await rejectsWithCode(assert, () => hpke.open(recipient, info, tampered), "decryption_failed", `byte ${index}`);
  }
  await rejectsWithCode(assert, () => hpke.open(recipient, info, blob.subarray(0, blob.length - 1)), "decryption_failed", "truncated");
  const otherInfo = hpke.info(hpkeShareWrap, VAULT, "itm_cccccccccccccccccccccccccc", 2, "password", APPROVER);
  await rejectsWithCode(assert, () => hpke.open(recipient, otherInfo, blob), "decryption_failed", "other context");
  await rejectsWithCode(assert, async () => hpke.open(await generateHpkeKey(), info, blob), "decryption_failed", "other key");
});

test("JWS: a statement signed in JS verifies in JS; a one-byte change raises signature_invalid", async () => {
  const key = await generateSigningKey();
  const payload = { item: "itm_cccccccccccccccccccccccccc", version: 1, fields: ["password"], note: "d\u00e9ploiement" };
  const token = await signStatement(typItem, APPROVER, payload, key);
  assert.deepEqual(await verifyStatement(token, { typ: typItem, kid: APPROVER, key: key.publicKey() }), payload);

  const [header, body, signature] = token.split(".");
  // One byte of the payload changed, re-encoded as valid base64url.
  const bytes = b64uDecode(body);
  bytes[10] ^= 0x01;
  const alteredPayload = `${header}.${b64uEncode(bytes)}.${signature}`;
  await rejectsWithCode(
    assert,
    () => verifyStatement(alteredPayload, { typ: typItem, kid: APPROVER, key: key.publicKey() }),
    "signature_invalid",
    "payload byte",
  );
  const sig = b64uDecode(signature);
  sig[5] ^= 0x80;
  const alteredSignature = `${header}.${body}.${b64uEncode(sig)}`;
  await rejectsWithCode(
    assert,
    () => verifyStatement(alteredSignature, { typ: typItem, kid: APPROVER, key: key.publicKey() }),
    "signature_invalid",
    "signature byte",
  );
  const other = await generateSigningKey();
  await rejectsWithCode(
    assert,
    () => verifyStatement(token, { typ: typItem, kid: APPROVER, key: other.publicKey() }),
    "signature_invalid",
    "other key",
  );
});
