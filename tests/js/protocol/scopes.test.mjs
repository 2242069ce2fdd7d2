// Certificate scopes (protocol section 7): strict reading, and the item limits that make
// stage isolation, checked the way src/sealbox/protocol/certificates.py checks them.

import assert from "node:assert/strict";
import { test } from "node:test";

import { SealboxError } from "../../../src/sealbox/web/static/sealbox/errors.js";
import {
  checkPaths,
  limitsOf,
  pathMatches,
} from "../../../src/sealbox/web/static/sealbox/certificates.js";
import { checkPattern } from "../../../src/sealbox/web/static/sealbox/statements.js";

const cert = (scopes) => ({ scopes });
const enrollment = (projects, items) => ({ constraints: { projects, items } });
const refusedWith = (code) => (exc) => exc instanceof SealboxError && exc.code === code;

test("a pattern matches segment by segment, never across a slash", () => {
  assert.ok(pathMatches("shop/dev/db", "shop/dev/*"));
  assert.ok(pathMatches("shop/dev/db", "shop/*/d?"));
  assert.ok(!pathMatches("shop/prod/db", "shop/dev/*"));
  assert.ok(!pathMatches("Shop/dev/db", "shop/dev/*"));
  assert.ok(!pathMatches("shop/dev/x/db", "shop/*/db"));
});

test("a certificate without item scopes has no limit; with them, every path is held", () => {
  assert.deepEqual(limitsOf(cert(["read"])), []);
  checkPaths(cert(["read"]), ["any/where/at-all"]);
  const dev = cert(["items:shop/dev/*", "read"]);
  checkPaths(dev, ["shop/dev/db", "shop/dev/api"]);
  assert.throws(() => checkPaths(dev, ["shop/dev/db", "shop/prod/db"]), refusedWith("certificate_invalid"));
});

test("an enrollment's projects and items bound its machines too", () => {
  const bounds = limitsOf(cert(["read"]), enrollment(["shop"], ["shop/ci/*"]));
  assert.deepEqual(bounds, [["shop/*/*"], ["shop/ci/*"]]);
  checkPaths(cert(["read"]), ["shop/ci/token"], enrollment(["shop"], ["shop/ci/*"]));
  assert.throws(
    () => checkPaths(cert(["read"]), ["shop/prod/db"], enrollment(["shop"], ["shop/ci/*"])),
    refusedWith("certificate_invalid"),
  );
  assert.throws(
    () => checkPaths(cert(["read"]), ["blog/ci/db"], enrollment(["shop"], [])),
    refusedWith("certificate_invalid"),
  );
});

test("patterns are three plain or glob segments and nothing else", () => {
  checkPattern("shop/*/db");
  for (const bad of ["shop/db", "shop/dev/db/x", "shop/[a-z]/db", "shop/../db", ".x/y/z", "a".repeat(201)]) {
    assert.throws(() => checkPattern(bad), refusedWith("malformed"), bad);
  }
});
