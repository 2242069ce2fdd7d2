// Strict reading of statements (protocol section 5, display text 2.8), identifiers, host
// patterns, and the approver's review of what /approvals lists, on flow.json's world.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { SealboxError } from "../../../src/sealbox/web/static/sealbox/errors.js";
import { b64uDecode, b64uEncode } from "../../../src/sealbox/web/static/sealbox/encoding.js";
import {
  hpkeKeyFromRaw,
  signingKeyFromSeed,
} from "../../../src/sealbox/web/static/sealbox/keys.js";
import { verifyDirectory } from "../../../src/sealbox/web/static/sealbox/directory.js";
import {
  certifyAgent,
  certifyLogin,
  checkContext,
  clientFromLogin,
  fnmatchCase,
  verifyCertificate,
} from "../../../src/sealbox/web/static/sealbox/certificates.js";
import { signManifest } from "../../../src/sealbox/web/static/sealbox/store.js";
import {
  denyRequest,
  isRefusable,
  releaseCacheUntil,
  releaseReviewed,
  reviewRequest,
  verifyDeny,
} from "../../../src/sealbox/web/static/sealbox/access.js";
import {
  KIND,
  checkDisplayText,
  checkId,
  checkPath,
  compareCodePoints,
  newId,
  readAccessStatement,
  readDeny,
  readDirectoryLink,
  readItemManifest,
  readKeySet,
  readRequestContext,
} from "../../../src/sealbox/web/static/sealbox/statements.js";

const FLOW = JSON.parse(
  readFileSync(new URL("../../vectors/sealbox/flow.json", import.meta.url), "utf8"),
);
const W = FLOW.world;
const hex = (text) => Uint8Array.from(text.match(/../g) ?? [], (b) => parseInt(b, 16));
const payloadOf = (token) =>
  JSON.parse(Buffer.from(b64uDecode(token.split(".")[1])).toString("utf8"));
const clone = (value) => JSON.parse(JSON.stringify(value));

function throwsCode(code, fn) {
  assert.throws(fn, (exc) => {
    assert.ok(exc instanceof SealboxError, String(exc));
    assert.equal(exc.code, code, exc.message);
    return true;
  });
}

async function rejectsCode(code, promise) {
  await assert.rejects(promise, (exc) => {
    assert.ok(exc instanceof SealboxError, String(exc));
    assert.equal(exc.code, code, exc.message);
    return true;
  });
}

test("display text refuses what hides or fakes text on an approver's screen", () => {
  for (const ok of ["Ana's laptop", "zoë", "日本語", "🎉 launch", "a b", "x".repeat(128)]) {
    assert.equal(checkDisplayText(ok, "name", 128), ok);
  }
  const bad = [
    "esc\x1b[2J",
    "cr\r",
    "nul\0",
    "del\x7f",
    "c1\x85",
    "rlo\u202e",
    "isolate\u2066",
    "zwsp\u200b",
    "bom\ufeff",
    "tag\u{e0041}",
    "ls\u2028",
    "ps\u2029",
    "pua\ue000",
    "pua\u{f0000}",
    "filler\u3164",
    "filler\u115f",
    "braille\u2800",
    "vs\ufe0f",
    "vs\u{e0100}",
    "lone\ud800",
    "x".repeat(129),
  ];
  for (const text of bad) throwsCode("malformed", () => checkDisplayText(text, "name", 128));
  // Lengths are code points, as in Python: 128 emoji fit, 129 do not.
  assert.equal(checkDisplayText("🎉".repeat(128), "name", 128).length, 256);
  throwsCode("malformed", () => checkDisplayText("🎉".repeat(129), "name", 128));
  throwsCode("malformed", () => checkDisplayText(7, "name"));
});

test("identifiers, paths and code-point order", () => {
  // The same ids Python's ids.new_id makes from the same bytes.
  const id = newId(KIND.approver, () => new Uint8Array(16).fill(0xff));
  assert.equal(id, `apv_${"7".repeat(25)}4`);
  assert.equal(
    newId(KIND.approver, (n) => Uint8Array.from({ length: n }, (_, i) => i)),
    "apv_aaaqeayeaudaocajbifqydiob4",
  );
  assert.equal(checkId(id, KIND.approver), id);
  throwsCode("malformed", () => checkId(id, KIND.client));
  throwsCode("malformed", () => checkId(`${id}\n`, KIND.approver));
  assert.match(newId(KIND.item), /^itm_[a-z2-7]{26}$/);
  assert.equal(checkPath("app/prod/db"), "app/prod/db");
  for (const p of ["app/prod", "app/prod/db/x", "app//db", "app/prod/.db", "app/prod/d b"]) {
    throwsCode("malformed", () => checkPath(p));
  }
  // U+FFFD sorts before U+1F389 by code point, after it by UTF-16 unit.
  assert.equal(compareCodePoints("\ufffd", "\u{1f389}"), -1);
  assert.deepEqual(["\u{1f389}", "\ufffd"].sort(compareCodePoints), ["\ufffd", "\u{1f389}"]);
});

test("readers refuse unknown and missing keys, wrong types and broken sets", () => {
  const link = payloadOf(W.directory.links[1]);
  assert.equal(readDirectoryLink(link).seq, 1);
  assert.ok(Object.isFrozen(readDirectoryLink(link).approver));
  throwsCode("malformed", () => readDirectoryLink({ ...link, extra: 1 }));
  const { at, ...noAt } = link;
  assert.equal(typeof at, "number");
  throwsCode("malformed", () => readDirectoryLink(noAt));
  throwsCode("malformed", () => readDirectoryLink({ ...link, seq: 1.5 }));
  throwsCode("malformed", () => readDirectoryLink({ ...link, seq: true }));
  throwsCode("malformed", () => readDirectoryLink({ ...link, seq: 2 ** 53 }));
  throwsCode("malformed", () => readDirectoryLink({ ...link, prev: null }));
  throwsCode("malformed", () => readDirectoryLink({ ...link, op: "grant" }));
  throwsCode("malformed", () =>
    readDirectoryLink({ ...link, approver: { ...link.approver, kind: ["browser"] } }),
  );
  throwsCode("malformed", () =>
    readDirectoryLink({ ...link, approver: { ...link.approver, name: "a\u202eb" } }),
  );
  throwsCode("malformed", () =>
    readDirectoryLink({
      ...link,
      approver: { ...link.approver, hpke_pk: `sbx-hpke-pk-v1:${"A".repeat(43)}` },
    }),
  );

  const manifest = payloadOf(W.item_versions["item2-v1"].manifest);
  assert.equal(readItemManifest(manifest).keyset.threshold, 2);
  const ks = manifest.keyset;
  throwsCode("malformed", () => readKeySet({ ...ks, threshold: 4 }));
  throwsCode("malformed", () => readKeySet({ ...ks, threshold: 0 }));
  throwsCode("malformed", () =>
    readKeySet({ ...ks, approvers: [...ks.approvers, ks.approvers[0]] }),
  );
  const [first, ...rest] = Object.keys(ks.wraps);
  throwsCode("malformed", () =>
    readKeySet({ ...ks, wraps: Object.fromEntries(rest.map((a) => [a, ks.wraps[a]])) }),
  );
  const fewer = clone(manifest);
  delete fewer.keyset.wraps[first].api_key;
  throwsCode("malformed", () => readItemManifest(fewer));
  throwsCode("malformed", () => readItemManifest({ ...manifest, version: 0 }));
  throwsCode("malformed", () => readItemManifest({ ...manifest, version: 2 ** 31 }));
  throwsCode("malformed", () => readItemManifest({ ...manifest, fields: {} }));
  const badNonce = clone(manifest);
  badNonce.fields.api_key.nonce = b64uEncode(new Uint8Array(11));
  throwsCode("malformed", () => readItemManifest(badNonce));

  const accessPayload = payloadOf(W.requests.multi.token);
  assert.equal(readAccessStatement(accessPayload).items.length, 2);
  const unsorted = clone(accessPayload);
  unsorted.items[0].fields = ["user", "password"];
  throwsCode("malformed", () => readAccessStatement(unsorted));
  const twice = clone(accessPayload);
  twice.items[1] = { ...twice.items[0] };
  throwsCode("malformed", () => readAccessStatement(twice));
  throwsCode("malformed", () => readAccessStatement({ ...accessPayload, items: [] }));
  throwsCode("malformed", () =>
    readAccessStatement({ ...accessPayload, cache: { seconds: 30 * 86400 + 1, scope: "user" } }),
  );
  const ctx = accessPayload.context;
  throwsCode("malformed", () => readRequestContext({ ...ctx, exe_sha256: "AB".repeat(32) }));
  throwsCode("malformed", () => readRequestContext({ ...ctx, argv: ["ok", "bad\x1b"] }));
  throwsCode("malformed", () => readRequestContext({ ...ctx, uid: -1 }));

  const denyPayload = payloadOf(W.refusal.token);
  assert.equal(readDeny(denyPayload).grounds, "unverifiable");
  assert.equal(readDeny(payloadOf(W.deny.token)).grounds, null);
  throwsCode("malformed", () => readDeny({ ...denyPayload, grounds: null }));
  throwsCode("malformed", () => readDeny({ ...denyPayload, grounds: "tampered" }));
});

test("host patterns are case-insensitive shell globs, as Python's fnmatch", () => {
  assert.equal(fnmatchCase("build-7", "build-*"), true);
  assert.equal(fnmatchCase("build-7", "build-?"), true);
  assert.equal(fnmatchCase("build-17", "build-?"), false);
  assert.equal(fnmatchCase("ci-b", "ci-[a-c]"), true);
  assert.equal(fnmatchCase("ci-b", "ci-[!a-c]"), false);
  assert.equal(fnmatchCase("ci-b", "ci-[c-a]"), false);
  assert.equal(fnmatchCase("a.b", "a?b"), true);
  assert.equal(fnmatchCase("axb", "a.b"), false);
  assert.equal(fnmatchCase("ci-[", "ci-["), true);
  const cert = { constraints: { hostname: "Build-*" } };
  checkContext(cert, { host: "BUILD-7" });
  throwsCode("certificate_invalid", () => checkContext(cert, { host: "laptop" }));
  throwsCode("certificate_invalid", () => checkContext(cert, { host: null }));
  checkContext({ constraints: { hostname: null } }, { host: null });
});

let keys;
async function world() {
  if (keys) return keys;
  const sig = {};
  const hk = {};
  for (const a of W.approvers) {
    sig[a.record.id] = await signingKeyFromSeed(hex(a.sig_seed));
    hk[a.record.id] = await hpkeKeyFromRaw(hex(a.hpke_seed));
  }
  const d = await verifyDirectory(W.directory.links, { pinned: W.directory.fingerprint });
  keys = { sig, hpke: hk, d };
  return keys;
}

function accessEntry(name, approver) {
  const r = W.requests[name];
  const items = {};
  for (const [item, vname] of Object.entries(r.served)) {
    items[item] = {
      manifest: W.item_versions[vname].manifest,
      wraps: W.item_versions[vname].wraps[approver],
    };
  }
  return {
    kind: "access",
    id: r.hash.slice("sha256:".length),
    certificate: W.certificate.token,
    statement: r.token,
    items,
    threshold: 2,
    approvals: 1,
    reported_by_server: { source_ip: "10.1.2.3" },
  };
}

test("review of an access entry shows verified facts and releases byte for byte", async () => {
  const { d, sig, hpke } = await world();
  const r = W.requests.multi;
  for (const rel of r.releases) {
    const review = await reviewRequest(accessEntry("multi", rel.approver), {
      directory: d,
      approverId: rel.approver,
      hpkePrivate: hpke[rel.approver],
      now: r.verified_at,
    });
    assert.equal(review.kind, "access");
    assert.equal(review.purpose, "nightly job");
    assert.equal(review.clientName, "ci runner");
    assert.equal(review.clientKind, "agent");
    assert.equal(review.issuer, W.certificate.issuer);
    assert.deepEqual([...review.scopes], ["read", "write"]);
    assert.deepEqual(
      review.items.map((i) => [i.path, i.version, [...i.fields], i.threshold, i.holders]),
      [
        ["app/prod/db", 1, ["password", "user"], 1, 3],
        ["app/prod/api", 1, ["api_key"], 2, 3],
      ],
    );
    assert.equal(review.reportedByServer.source_ip, "10.1.2.3");
    assert.equal(review.threshold, 2);
    assert.equal(releaseCacheUntil(review, { now: rel.now }), 0);
    const ikm = hex(rel.ikm_e);
    const token = await releaseReviewed(review, {
      directory: d,
      approverId: rel.approver,
      hpkePrivate: hpke[rel.approver],
      signingKey: sig[rel.approver],
      now: rel.now,
      random: () => ikm,
    });
    assert.equal(token, rel.token);
  }
});

test("review refuses an entry filed under another id, or serving another item", async () => {
  const { d, hpke } = await world();
  const a0 = W.approvers[0].record.id;
  const args = {
    directory: d,
    approverId: a0,
    hpkePrivate: hpke[a0],
    now: W.requests.single.verified_at,
  };
  const renamed = { ...accessEntry("single", a0), id: W.requests.multi.hash.slice(7) };
  await rejectsCode("binding_mismatch", reviewRequest(renamed, args));
  const swapped = accessEntry("single", a0);
  const [item] = Object.keys(swapped.items);
  swapped.items[item] = { ...swapped.items[item], manifest: W.item_versions["item2-v1"].manifest };
  await rejectsCode("binding_mismatch", reviewRequest(swapped, args));
  const missing = accessEntry("single", a0);
  missing.items = {};
  await rejectsCode("binding_mismatch", reviewRequest(missing, args));
  await rejectsCode(
    "malformed",
    reviewRequest({ ...accessEntry("single", a0), kind: "login" }, args),
  );
  // Too late by this device's clock: expired, which is not grounds for a signed refusal.
  const late = reviewRequest(accessEntry("single", a0), {
    ...args,
    now: W.requests.single.params.now + 301,
  });
  await rejectsCode("expired", late);
  await late.catch((exc) => assert.equal(isRefusable(exc), false));
  assert.equal(isRefusable(new SealboxError("signature_invalid", "x")), true);
  assert.equal(isRefusable(new SealboxError("directory_broken", "x")), false);
  assert.equal(isRefusable(new TypeError("x")), false);
});

test("review of a store entry verifies the upload and signs the recorded manifest", async () => {
  const { d, sig, hpke } = await world();
  const v = W.item_versions["item1-v1"];
  const entry = {
    kind: "store",
    id: v.statement_hash.slice(7),
    certificate: W.certificate.token,
    statement: v.statement,
    ciphertexts: v.ciphertexts,
    wraps: v.wraps,
  };
  const review = await reviewRequest(entry, {
    directory: d,
    approverId: v.verified_by,
    hpkePrivate: hpke[v.verified_by],
    now: v.verified_at,
  });
  assert.equal(review.kind, "store");
  assert.deepEqual(
    review.items.map((i) => [i.path, i.version, [...i.fields].sort()]),
    [["app/prod/db", 1, ["password", "user"]]],
  );
  const manifest = await signManifest(review.store, {
    directory: d,
    approverId: v.verified_by,
    signingKey: sig[v.verified_by],
    now: v.verified_at,
  });
  assert.equal(manifest, v.manifest);
  const swapped = {
    ...entry,
    wraps: { ...v.wraps, [W.approvers[0].record.id]: v.wraps[W.approvers[1].record.id] },
  };
  await rejectsCode(
    "manifest_mismatch",
    reviewRequest(swapped, {
      directory: d,
      approverId: v.verified_by,
      hpkePrivate: hpke[v.verified_by],
      now: v.verified_at,
    }),
  );
});

test("a login is certified as the terminal approver does", async () => {
  const { d, sig } = await world();
  const a1 = W.approvers[1].record.id;
  const login = {
    client_id: W.certificate.client.id,
    client_name: "n".repeat(200),
    sig_pk: W.certificate.client.sig_pk,
    user_code: "ABCD-EFGH",
  };
  assert.equal(clientFromLogin(login).name.length, 128);
  const token = await certifyLogin(d, login, { issuer: a1, signingKey: sig[a1], now: W.now });
  const cert = await verifyCertificate(token, d, { now: W.now });
  assert.equal(cert.client.kind, "human");
  assert.equal(cert.constraints.not_after, W.now + 30 * 86400);
  assert.deepEqual([...cert.scopes], ["read", "write"]);
  throwsCode("malformed", () => clientFromLogin({ ...login, client_id: W.approvers[0].record.id }));
  throwsCode("malformed", () => clientFromLogin({ ...login, sig_pk: "sbx-ed25519-pk-v1:AAAA" }));
  // An approver not (or no longer) in the directory cannot certify.
  const a3 = W.approvers[3].record.id;
  await rejectsCode(
    "not_authorized",
    certifyLogin(d, login, { issuer: a3, signingKey: sig[a3], now: W.now }),
  );
});

test("an agent is certified with the scopes it asked for, as kind agent", async () => {
  const { d, sig } = await world();
  const a1 = W.approvers[1].record.id;
  const request = {
    client_id: W.certificate.client.id,
    name: "Deploy Bot",
    sig_pk: W.certificate.client.sig_pk,
    scopes: ["read", "items:shop/prod/*"],
  };
  const token = await certifyAgent(d, request, { issuer: a1, signingKey: sig[a1], now: W.now });
  const cert = await verifyCertificate(token, d, { now: W.now });
  assert.equal(cert.client.kind, "agent");
  assert.equal(cert.client.name, "Deploy Bot");
  assert.equal(cert.constraints.not_after, W.now + 90 * 86400);
  assert.deepEqual([...cert.scopes], ["items:shop/prod/*", "read"]);
  await assert.rejects(
    certifyAgent(d, { ...request, scopes: ["read", "items:../x"] }, {
      issuer: a1, signingKey: sig[a1], now: W.now,
    }),
  );
});

test("a person's deny carries the reason cut to 500 characters and verifies", async () => {
  const { d, sig } = await world();
  const a2 = W.approvers[2].record.id;
  const token = await denyRequest({
    requestId: W.requests.single.hash.slice(7),
    reason: "é".repeat(600),
    directory: d,
    approverId: a2,
    signingKey: sig[a2],
    now: W.now,
  });
  const deny = await verifyDeny(token, { directory: d, requestHash: W.requests.single.hash });
  assert.equal([...deny.reason].length, 500);
  assert.equal(deny.grounds, null);
  await rejectsCode(
    "malformed",
    denyRequest({
      requestId: W.requests.single.hash.slice(7),
      reason: "line\u2028break",
      directory: d,
      approverId: a2,
      signingKey: sig[a2],
      now: W.now,
    }),
  );
});
