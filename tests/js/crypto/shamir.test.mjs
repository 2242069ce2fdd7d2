// shamir.js against tests/vectors/sealbox/shamir.json.

import assert from "node:assert/strict";
import { test } from "node:test";

import { combine, split } from "../../../src/sealbox/web/static/sealbox/shamir.js";
import { hex, rejectsWithCode, sealboxVectors, toHex } from "./support.mjs";

const vectors = sealboxVectors("shamir");

test("shamir.json: split with the recorded coefficients gives the recorded shares", () => {
  assert.ok(vectors.cases.length > 0);
  for (const c of vectors.cases) {
    const coefficients = hex(c.coefficients);
    let drawn = 0;
    const shares = split(hex(c.secret), c.threshold, c.holders, (n) => {
      drawn += n;
      return coefficients.slice(0, n);
    });
    assert.equal(drawn, coefficients.length);
    assert.deepEqual(shares.map(toHex), c.shares, `${c.threshold} of ${c.holders}`);
  }
});

test("shamir.json: every combination gives the secret or its recorded error", async () => {
  for (const c of vectors.cases) {
    for (const combo of c.combinations) {
      const used = combo.indices.map((i) => hex(c.shares[i]));
      const name = `${c.threshold} of ${c.holders}, shares ${combo.indices}`;
      if (combo.expect === "success") {
        assert.equal(toHex(combine(used, c.threshold)), c.secret, name);
      } else {
        await rejectsWithCode(assert, () => combine(used, c.threshold), combo.expect, name);
      }
    }
  }
});

test("shamir.json: malformed share sets", async () => {
  assert.ok(vectors.malformed.length > 0);
  for (const c of vectors.malformed) {
    await rejectsWithCode(assert, () => combine(c.shares.map(hex), c.threshold), c.expect, c.name);
  }
});

test("split and combine round-trip with fresh randomness; bad parameters are refused", () => {
  const secret = globalThis.crypto.getRandomValues(new Uint8Array(32));
  const shares = split(secret, 3, 5);
  assert.deepEqual(combine([shares[4], shares[1], shares[2]], 3), secret);
  assert.notDeepEqual(combine([shares[4], shares[1]], 2), secret);
  assert.throws(() => split(secret, 0, 3), RangeError);
  assert.throws(() => split(secret, 4, 3), RangeError);
  assert.throws(() => split(secret, 1, 256), RangeError);
  assert.throws(() => split(new Uint8Array(0), 1, 1), RangeError);
  assert.throws(() => split(secret, 2, 2, () => new Uint8Array(1)), RangeError);
  assert.throws(() => combine(shares, 0), RangeError);
});
