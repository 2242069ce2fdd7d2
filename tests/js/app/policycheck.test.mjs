// The approvals page's own check of a signed policy: windows in their zone (DST), the destroy
// date, and a policy that does not verify or does not cover the item.
import assert from "node:assert/strict";
import { test } from "node:test";

import { PolicyBreach, checkPolicies, inWindow } from "../../../src/sealbox/web/static/app/policycheck.js";
import { signStatement } from "../../../src/sealbox/web/static/sealbox/jws.js";
import { generateSigningKey } from "../../../src/sealbox/web/static/sealbox/keys.js";
import { typPolicy } from "../../../src/sealbox/web/static/sealbox/labels.js";

const APPROVER = "apv_aaaaaaaaaaaaaaaaaaaaaaaaaa";
const VAULT = "vlt_bbbbbbbbbbbbbbbbbbbbbbbbbb";
const at = (iso) => Math.floor(Date.parse(iso) / 1000);

test("a window is read in its own zone and follows daylight saving time", () => {
  // Tuesday 1 December 2026, 09:00 in Berlin (CET, UTC+1) is 08:00 UTC.
  assert.equal(inWindow("mon-fri 09:00-18:00 Europe/Berlin", at("2026-12-01T08:00:00Z")), true);
  assert.equal(inWindow("mon-fri 09:00-18:00 Europe/Berlin", at("2026-12-01T07:59:00Z")), false);
  assert.equal(inWindow("mon-fri 09:00-18:00 Europe/Berlin", at("2026-12-01T17:00:00Z")), false);
  // In summer (CEST, UTC+2) the same window starts at 07:00 UTC.
  assert.equal(inWindow("mon-fri 09:00-18:00 Europe/Berlin", at("2026-07-01T07:00:00Z")), true);
  // A range wraps over the weekend; the day is the zone's day.
  assert.equal(inWindow("fri-mon 00:00-24:00 UTC", at("2026-12-06T12:00:00Z")), true);
  assert.equal(inWindow("sun 19:00-20:00 America/New_York", at("2026-11-30T00:30:00Z")), true);
  assert.throws(() => inWindow("weekdays 9-5", 0), PolicyBreach);
});

async function signed(key, fields) {
  const payload = {
    vault: VAULT, approver: APPROVER, pattern: "app/prod/*", approvers: [APPROVER], threshold: 1,
    expiry_seconds: 300, max_cache_seconds: 0, store_needs_approval: true, cidrs: [], hours: [],
    max_reads: null, cosigner: null, destroy_at: null, rotate_after: null, at: 1, ...fields,
  };
  return signStatement(typPolicy, APPROVER, payload, key);
}

test("a signed policy is verified and held to this clock; an unsigned one is only reported", async () => {
  const key = await generateSigningKey();
  const directory = { vault: VAULT, approvers: new Map([[APPROVER, { id: APPROVER, sig_pk: key.publicKey() }]]) };
  const now = at("2026-12-01T10:00:00Z"); // a Tuesday
  const entry = (statement) => ({ policies: { "app/prod/db": { pattern: "app/prod/*", statement } } });

  const open = await signed(key, { hours: ["tue 00:00-24:00 UTC"] });
  const checked = await checkPolicies(entry(open), ["app/prod/db"], directory, now);
  assert.equal(checked.get("app/prod/db").signedBy, APPROVER);

  const closed = await signed(key, { hours: ["mon,wed-sun 00:00-24:00 UTC"] });
  await assert.rejects(checkPolicies(entry(closed), ["app/prod/db"], directory, now),
    (e) => e instanceof PolicyBreach && e.code === "policy_outside_hours");
  const past = await signed(key, { destroy_at: now - 1 });
  await assert.rejects(checkPolicies(entry(past), ["app/prod/db"], directory, now),
    (e) => e instanceof PolicyBreach && e.code === "item_destroyed");
  const elsewhere = await signed(key, { pattern: "web/*/*" });
  await assert.rejects(checkPolicies(entry(elsewhere), ["app/prod/db"], directory, now),
    (e) => e.code === "binding_mismatch");
  const forged = `${open.slice(0, -4)}${open.endsWith("AAAA") ? "BBBB" : "AAAA"}`;
  await assert.rejects(checkPolicies(entry(forged), ["app/prod/db"], directory, now),
    (e) => e.code === "signature_invalid");

  const unsigned = await checkPolicies(entry(null), ["app/prod/db"], directory, now);
  assert.equal(unsigned.get("app/prod/db").signedBy, null);
});

test("a window reads exactly as the relay's parser reads it, or is malformed", () => {
  const now = at("2026-12-01T10:00:00Z");
  for (const text of [
    "mon-mon 09:00-18:00 UTC", // a range of one day
    "mon 09:60-18:00 UTC", // not a minute
    "mon 25:00-26:00 UTC", // not an hour
    "mon 24:01-24:30 UTC",
    "mon 18:00-09:00 UTC", // over midnight is two windows
    "mon 09:00-09:00 UTC",
    "mon 09:00-18:00 Nowhere/Land", // unknown zone: RangeError inside Intl
    "mon 09:00-18:00 localtime",
    "mon 09:00-18:00 posix/Europe/Berlin",
    "mon 09:00-18:00 right/UTC",
  ]) {
    assert.throws(() => inWindow(text, now), (error) => error instanceof PolicyBreach && error.code === "malformed", text);
  }
  assert.equal(inWindow("tue 00:00-24:00 UTC", now), true);
});

test("the most specific signed policy served is picked here, and an older one than seen is refused", async () => {
  const stored = new Map();
  globalThis.localStorage = {
    getItem: (k) => (stored.has(k) ? stored.get(k) : null),
    setItem: (k, v) => stored.set(k, String(v)),
  };
  try {
    const key = await generateSigningKey();
    const directory = { vault: VAULT, approvers: new Map([[APPROVER, { id: APPROVER, sig_pk: key.publicKey() }]]) };
    const now = at("2026-12-01T10:00:00Z"); // a Tuesday
    const broad = await signed(key, { pattern: "app/*/*", at: 5 });
    const shut = await signed(key, { hours: ["wed 00:00-24:00 UTC"], at: 5 });
    // The relay names the broad one as applying; the specific (closed) one is served too.
    const steered = { policies: { "app/prod/db": { pattern: "app/*/*", statement: broad, statements: [broad, shut] } } };
    await assert.rejects(checkPolicies(steered, ["app/prod/db"], directory, now), (e) => e.code === "policy_outside_hours");
    const open = await signed(key, { hours: ["tue 00:00-24:00 UTC"], at: 9 });
    const fine = { policies: { "app/prod/db": { statement: open, statements: [open, broad] } } };
    const checked = await checkPolicies(fine, ["app/prod/db"], directory, now);
    assert.equal(checked.get("app/prod/db").pattern, "app/prod/*");
    // Seen at 9 for app/prod/*: the one from 5 is a rollback now.
    const older = { policies: { "app/prod/db": { statement: shut, statements: [shut] } } };
    await assert.rejects(checkPolicies(older, ["app/prod/db"], directory, now), (e) => e.code === "policy_rollback");
    // None served: said so.
    const none = await checkPolicies({ policies: {} }, ["app/prod/db"], directory, now);
    assert.equal(none.get("app/prod/db").noSignedPolicy, true);
  } finally {
    delete globalThis.localStorage;
  }
});
