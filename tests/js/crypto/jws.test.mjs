// jws.js against tests/vectors/sealbox/jws.json (every failure with its error code).

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  peekHeader,
  signStatement,
  statementHash,
  verifyStatement,
} from "../../../src/sealbox/web/static/sealbox/jws.js";
import { signingKeyFromSeed, VerifyKey } from "../../../src/sealbox/web/static/sealbox/keys.js";
import { hex, rejectsWithCode, sealboxVectors, toHex } from "./support.mjs";

const vectors = sealboxVectors("jws");

test("jws.json: signing from the seed gives the recorded token, which verifies", async () => {
  assert.ok(vectors.cases.length > 0);
  for (const c of vectors.cases) {
    const key = await signingKeyFromSeed(hex(c.seed));
    assert.equal(toHex(key.publicKey().raw), c.public_key);
    // Ed25519 is deterministic (RFC 8032), so the token is reproduced byte for byte.
    assert.equal(await signStatement(c.typ, c.kid, c.payload, key), c.token, c.typ);
    const payload = await verifyStatement(c.token, { typ: c.typ, kid: c.kid, key: new VerifyKey(hex(c.public_key)) });
    assert.deepEqual(payload, c.payload);
    assert.equal(await statementHash(c.token), c.statement_hash);
    assert.deepEqual(peekHeader(c.token), { typ: c.typ, kid: c.kid });
  }
});

test("jws.json failures raise their recorded codes", async () => {
  assert.ok(vectors.failures.length > 0);
  for (const c of vectors.failures) {
    await rejectsWithCode(
      assert,
      () => verifyStatement(c.token, { typ: c.typ, kid: c.kid, key: new VerifyKey(hex(c.public_key)) }),
      c.expect,
      c.name,
    );
  }
});

test("verifyStatement takes the key's text form too, and refuses oversize tokens", async () => {
  const c = vectors.cases[0];
  const text = new VerifyKey(hex(c.public_key)).text;
  assert.deepEqual(await verifyStatement(c.token, { typ: c.typ, kid: c.kid, key: text }), c.payload);
  await rejectsWithCode(
    assert,
    () => verifyStatement("a".repeat((1 << 20) + 1), { typ: c.typ, kid: c.kid, key: text }),
    "malformed",
    "too large",
  );
  await rejectsWithCode(assert, () => statementHash(`${c.token}\u00e9`), "malformed", "not ASCII");
  await rejectsWithCode(assert, () => peekHeader(42), "malformed", "not a string");
});

test("signStatement refuses unknown statement types", async () => {
  const key = await signingKeyFromSeed(hex(vectors.cases[0].seed));
  await assert.rejects(() => signStatement("sealbox.unknown.v1", vectors.cases[0].kid, {}, key), RangeError);
});
