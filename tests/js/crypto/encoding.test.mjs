// encoding.js against tests/vectors/sealbox/encoding.json (and its failure cases).

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  b64uDecode,
  b64uEncode,
  canonicalBytes,
  canonicalJson,
  concat,
  constantTimeEqual,
  digest,
  digestBytes,
  fromUtf8,
  lp,
  parseCanonical,
  parseDigest,
  utf8,
} from "../../../src/sealbox/web/static/sealbox/encoding.js";
import { SealboxError } from "../../../src/sealbox/web/static/sealbox/errors.js";
import { hex, part, rejectsWithCode, sealboxVectors, toHex } from "./support.mjs";

const vectors = sealboxVectors("encoding");

test("length_prefixed vectors", () => {
  for (const c of vectors.length_prefixed) {
    assert.equal(toHex(lp(...c.parts.map(part))), c.encoded, JSON.stringify(c.parts, (k, v) => (typeof v === "bigint" ? String(v) : v)));
  }
});

test("lp refuses what has no agreed encoding", () => {
  assert.throws(() => lp(true), TypeError);
  assert.throws(() => lp(null), TypeError);
  assert.throws(() => lp(-1), RangeError);
  assert.throws(() => lp(1.5), RangeError);
  assert.throws(() => lp(2 ** 53), RangeError);
  assert.throws(() => lp(1n << 64n), RangeError);
  assert.throws(() => lp("\ud800"), SealboxError);
});

test("digest vectors", async () => {
  for (const c of vectors.digest) {
    assert.equal(toHex(await digestBytes(c.label, hex(c.data))), c.digest_hex, c.label);
    assert.equal(await digest(c.label, hex(c.data)), c.digest, c.label);
    assert.equal(await digest(utf8(c.label), hex(c.data)), c.digest, `${c.label} as bytes`);
    assert.equal(parseDigest(c.digest), c.digest);
  }
  await rejectsWithCode(assert, () => parseDigest("sha256:AAAA"), "malformed", "short digest");
  await rejectsWithCode(assert, () => parseDigest("sha512:" + "A".repeat(43)), "malformed", "prefix");
});

test("canonical JSON vectors serialise and parse back", () => {
  for (const c of vectors.canonical_json) {
    const bytes = canonicalBytes(c.value);
    assert.equal(toHex(bytes), c.canonical);
    assert.equal(canonicalJson(c.value), fromUtf8(bytes));
    assert.deepEqual(parseCanonical(bytes), c.value);
    assert.deepEqual(parseCanonical(fromUtf8(bytes)), c.value);
  }
});

test("canonical JSON failures are malformed", async () => {
  assert.ok(vectors.canonical_json_failures.length > 0);
  for (const c of vectors.canonical_json_failures) {
    await rejectsWithCode(assert, () => parseCanonical(hex(c.input)), c.expect, c.name);
  }
});

test("canonicalJson refuses values outside the JCS subset", () => {
  for (const bad of [
    { a: 1.5 },
    { a: 2 ** 53 },
    { a: -(2 ** 53) },
    { a: NaN },
    { a: undefined },
    { a: 1n },
    { a: "\udc00" },
    { "\u00e9": 1 },
    { a: new Map() },
    { a: new Date(0) },
    [],
    "text",
    null,
  ]) {
    assert.throws(() => canonicalJson(bad), TypeError);
  }
  assert.equal(canonicalJson({ b: [1, -0, { d: null, c: true }], a: "\u2028\x7f" }), '{"a":"\u2028\x7f","b":[1,0,{"c":true,"d":null}]}');
});

test("base64url vectors", () => {
  for (const c of vectors.b64u) {
    assert.equal(b64uEncode(hex(c.data)), c.text);
    assert.equal(toHex(b64uDecode(c.text)), c.data);
  }
});

test("base64url failures are malformed", async () => {
  for (const c of vectors.b64u_failures) {
    await rejectsWithCode(assert, () => b64uDecode(c.text, { length: c.length }), c.expect, c.name);
  }
  await rejectsWithCode(assert, () => b64uDecode(null), "malformed", "not a string");
});

test("base64url round-trips every length and byte", () => {
  for (let n = 0; n < 70; n++) {
    const data = Uint8Array.from({ length: n }, (_, i) => (i * 37 + n * 11) & 0xff);
    assert.deepEqual(b64uDecode(b64uEncode(data), { length: n }), data);
    assert.equal(b64uEncode(data), Buffer.from(data).toString("base64url"));
  }
});

test("UTF-8 is strict in both directions", async () => {
  assert.deepEqual(utf8("caf\u00e9"), Uint8Array.of(0x63, 0x61, 0x66, 0xc3, 0xa9));
  assert.equal(fromUtf8(Uint8Array.of(0xef, 0xbb, 0xbf, 0x61)), "\ufeffa");
  for (const bad of [[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82]]) {
    await rejectsWithCode(assert, () => fromUtf8(Uint8Array.from(bad)), "malformed", bad.join());
  }
  await rejectsWithCode(assert, () => utf8("a\ud800b"), "malformed", "lone surrogate");
});

test("concat and constantTimeEqual", () => {
  assert.deepEqual(concat(Uint8Array.of(1), new Uint8Array(0), Uint8Array.of(2, 3)), Uint8Array.of(1, 2, 3));
  assert.equal(constantTimeEqual("abc", "abc"), true);
  assert.equal(constantTimeEqual("abc", "abd"), false);
  assert.equal(constantTimeEqual("abc", "ab"), false);
  assert.equal(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 2)), true);
  assert.equal(constantTimeEqual(Uint8Array.of(1, 2), Uint8Array.of(1, 3)), false);
});
