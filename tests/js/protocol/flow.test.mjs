// Replays tests/vectors/sealbox/flow.json through the browser's protocol modules: verify the
// world's directory, certificate, store statements, manifests and access statements;
// reproduce byte for byte every statement an approver signs in it (links, the certificate,
// manifests, releases, the deny and the refusal); and check that every failure case of an
// approver-side operation raises the expected code.
//
// Failure ops covered: verify_directory, verify_store, verify_access, release, verify_deny.
// Not covered: open_release, the requesting client's operation (combining releases and
// decrypting values), which a browser approver never performs.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { SealboxError } from "../../../src/sealbox/web/static/sealbox/errors.js";
import { b64uDecode, fromUtf8 } from "../../../src/sealbox/web/static/sealbox/encoding.js";
import * as hpke from "../../../src/sealbox/web/static/sealbox/hpke.js";
import {
  hpkeKeyFromRaw,
  signingKeyFromSeed,
} from "../../../src/sealbox/web/static/sealbox/keys.js";
import {
  appendLink,
  genesisLink,
  pairingCode,
  requireRecord,
  vaultFingerprint,
  vaultSafetyCode,
  verifyDirectory,
} from "../../../src/sealbox/web/static/sealbox/directory.js";
import {
  issueCertificate,
  verifyCertificate,
} from "../../../src/sealbox/web/static/sealbox/certificates.js";
import {
  ciphertextHash,
  manifestHash,
  openOwnValues,
  removalAction,
  resealAsApprover,
  signManifest,
  storeAsApprover,
  verifyManifest,
  verifyStore,
} from "../../../src/sealbox/web/static/sealbox/store.js";
import {
  deny,
  refuseUnverifiable,
  release,
  releaseInfo,
  verifyAccess,
  verifyDeny,
} from "../../../src/sealbox/web/static/sealbox/access.js";

const FLOW = JSON.parse(
  readFileSync(new URL("../../vectors/sealbox/flow.json", import.meta.url), "utf8"),
);
const W = FLOW.world;

const hex = (text) => Uint8Array.from(text.match(/../g) ?? [], (b) => parseInt(b, 16));
const b64 = (text) => b64uDecode(text);
const mapValues = (obj, fn) => Object.fromEntries(Object.entries(obj).map(([k, v]) => [k, fn(v)]));
const toHex = (bytes) => Buffer.from(bytes).toString("hex");

// The recorded draws, served again as one byte stream (zero-length draws included), so a
// reproduction consumes exactly what the Python consumed, in the same order.
function replay(draws) {
  const all = Buffer.concat(draws.map((d) => Buffer.from(d, "hex")));
  let pos = 0;
  const source = (n) => {
    if (pos + n > all.length) throw new Error("replay: more randomness drawn than recorded");
    const out = Uint8Array.from(all.subarray(pos, pos + n));
    pos += n;
    return out;
  };
  source.left = () => all.length - pos;
  return source;
}

async function expectCode(code, promiseOrFn) {
  await assert.rejects(
    async () => (typeof promiseOrFn === "function" ? promiseOrFn() : promiseOrFn),
    (exc) => {
      assert.ok(exc instanceof SealboxError, `expected SealboxError, got ${exc}`);
      assert.equal(exc.code, code, exc.message);
      return true;
    },
  );
}

let world;
async function setup() {
  if (world) return world;
  const ids = W.approvers.map((a) => a.record.id);
  const sig = {};
  const hpkeKeys = {};
  const records = {};
  for (const a of W.approvers) {
    sig[a.record.id] = await signingKeyFromSeed(hex(a.sig_seed));
    hpkeKeys[a.record.id] = await hpkeKeyFromRaw(hex(a.hpke_seed));
    records[a.record.id] = a.record;
  }
  const d = await verifyDirectory(W.directory.links, { pinned: W.directory.fingerprint });
  world = { ids, sig, hpke: hpkeKeys, records, d, cert: W.certificate.token };
  return world;
}

test("the directory verifies to the recorded approvers, head and codes", async () => {
  const { d, ids, records } = await setup();
  assert.equal(d.vault, W.vault);
  assert.deepEqual([...d.approvers.keys()].sort(), W.directory.approvers);
  assert.deepEqual({ ...d.head }, W.directory.head);
  assert.equal(d.link0, W.directory.links[0]);
  assert.equal(await vaultFingerprint(d.link0), W.directory.fingerprint);
  assert.equal(await vaultSafetyCode(d.link0), W.directory.safety_code);
  assert.throws(() => d.approvers.set("x", 1), TypeError);
  assert.ok(Object.isFrozen(d));
  // A record read from the directory and its payload form give the same pairing code.
  const a0 = ids[0];
  assert.equal(await pairingCode(d.approvers.get(a0)), await pairingCode(records[a0]));
  assert.match(await pairingCode(records[a0]), /^\d{5} \d{5} \d{5} \d{5}$/);
  // The cached head is accepted when it is the chain's own.
  await verifyDirectory(W.directory.links, {
    pinned: W.directory.fingerprint,
    cachedHead: W.directory.head,
  });
});

test("every directory link is reproduced byte for byte", async () => {
  const { sig, records } = await setup();
  const links = W.directory.links;
  const ops = W.directory.link_ops;
  assert.equal(
    await genesisLink(W.vault, records[ops[0].approver], sig[ops[0].signer], { now: ops[0].at }),
    links[0],
  );
  for (let i = 1; i < links.length; i += 1) {
    const prefix = await verifyDirectory(links.slice(0, i), { pinned: W.directory.fingerprint });
    const link = await appendLink(
      prefix,
      ops[i].op,
      records[ops[i].approver],
      sig[ops[i].signer],
      ops[i].signer,
      { now: ops[i].at },
    );
    assert.equal(link, links[i]);
  }
});

test("building a link the verifier would refuse is refused", async () => {
  const { sig, records, ids, d } = await setup();
  // Adding an approver already in the set, removing the last one, updating someone else.
  await expectCode(
    "directory_broken",
    appendLink(d, "add", records[ids[1]], sig[ids[0]], ids[0], { now: W.now }),
  );
  await expectCode(
    "directory_broken",
    appendLink(d, "update", records[ids[1]], sig[ids[0]], ids[0], { now: W.now }),
  );
  const one = await verifyDirectory(W.directory.links.slice(0, 1), {
    pinned: W.directory.fingerprint,
  });
  await expectCode(
    "directory_broken",
    appendLink(one, "remove", records[ids[0]], sig[ids[0]], ids[0], { now: W.now }),
  );
  // The wrong key for the signer is a programming error, not a protocol one.
  await assert.rejects(
    appendLink(d, "add", records[ids[3]], sig[ids[1]], ids[0], { now: W.now }),
    TypeError,
  );
  await assert.rejects(
    genesisLink(W.vault, records[ids[0]], sig[ids[1]], { now: W.now }),
    TypeError,
  );
  // A remove that the verifier accepts: a later chain verifies without that approver.
  const removal = await appendLink(d, "remove", records[ids[2]], sig[ids[0]], ids[0], {
    now: W.now,
  });
  const after = await verifyDirectory([...W.directory.links, removal], {
    pinned: W.directory.fingerprint,
  });
  assert.equal(after.approvers.has(ids[2]), false);
  assert.equal(after.head.seq, 3);
});

test("the certificate verifies and is reproduced byte for byte", async () => {
  const { d, sig } = await setup();
  const C = W.certificate;
  const cert = await verifyCertificate(C.token, d, { now: W.now });
  assert.equal(cert.client.id, C.client.id);
  assert.equal(cert.client.sig_pk.text, C.client.sig_pk);
  assert.deepEqual([...cert.scopes], C.scopes);
  assert.equal(cert.issuer, C.issuer);
  const token = await issueCertificate(d, {
    issuer: C.issuer,
    signingKey: sig[C.issuer],
    client: C.client,
    scopes: ["write", "read"],
    constraints: C.constraints,
    now: C.at,
  });
  assert.equal(token, C.token);
  await expectCode(
    "certificate_invalid",
    verifyCertificate(C.token, d, { now: C.constraints.not_after + 1 }),
  );
  await expectCode("certificate_invalid", verifyCertificate(C.token, d, { now: C.at - 301 }));
});

test("client store statements verify and their manifests are reproduced byte for byte", async () => {
  const { d, hpke: hk, sig, cert } = await setup();
  for (const [name, v] of Object.entries(W.item_versions)) {
    if (v.kind !== "client_store") continue;
    const upload = {
      statement: v.statement,
      ciphertexts: mapValues(v.ciphertexts, b64),
      wraps: mapValues(v.wraps, (w) => mapValues(w, b64)),
    };
    const verified = await verifyStore(upload, {
      directory: d,
      approverId: v.verified_by,
      hpkePrivate: hk[v.verified_by],
      certificate: cert,
      now: v.verified_at,
    });
    assert.equal(verified.hash, v.statement_hash, name);
    assert.equal(verified.statement.path, v.params.path);
    assert.deepEqual(
      Object.keys(verified.statement.fields).sort(),
      Object.keys(v.params.values).sort(),
    );
    const manifest = await signManifest(verified, {
      directory: d,
      approverId: v.verified_by,
      signingKey: sig[v.verified_by],
      now: v.verified_at,
    });
    assert.equal(manifest, v.manifest, name);
    assert.equal(await manifestHash(manifest), v.manifest_hash);
    const m = await verifyManifest(v.manifest, d);
    assert.equal(m.store_request, v.statement_hash);
  }
});

test("an approver's direct store is reproduced byte for byte", async () => {
  const { d, sig } = await setup();
  const v = W.item_versions["item1-v2"];
  const p = v.params;
  const random = replay(v.random_draws);
  const ikm = replay(v.ikm_draws);
  const out = await storeAsApprover({
    directory: d,
    approverId: p.approver,
    signingKey: sig[p.approver],
    item: p.item,
    path: p.path,
    version: p.version,
    prev: p.prev,
    values: mapValues(p.values, hex),
    approvers: p.approvers,
    threshold: p.threshold,
    now: p.now,
    itemType: p.item_type,
    random,
    ikm,
  });
  assert.equal(random.left(), 0);
  assert.equal(ikm.left(), 0);
  assert.equal(out.manifest, v.manifest);
  assert.deepEqual(
    mapValues(out.ciphertexts, toHex),
    mapValues(mapValues(v.ciphertexts, b64), toHex),
  );
  assert.deepEqual(
    mapValues(out.wraps, (w) => mapValues(w, toHex)),
    mapValues(v.wraps, (w) => mapValues(w, (x) => toHex(b64(x)))),
  );
  const m = await verifyManifest(out.manifest, d);
  assert.equal(m.store_request, null);
  assert.equal(m.fields.password.ct_hash, await ciphertextHash(out.ciphertexts.password));
});

function materialsOf(request) {
  const manifests = {};
  const wrapsBy = {};
  for (const [item, vname] of Object.entries(request.served)) {
    manifests[item] = W.item_versions[vname].manifest;
    wrapsBy[item] = W.item_versions[vname].wraps;
  }
  return { manifests, wrapsBy };
}

test("access statements verify and every release is reproduced byte for byte", async () => {
  const { d, hpke: hk, sig, cert } = await setup();
  for (const [name, r] of Object.entries(W.requests)) {
    const verified = await verifyAccess(r.token, {
      directory: d,
      certificate: cert,
      now: r.verified_at,
    });
    assert.equal(verified.hash, r.hash, name);
    assert.equal(verified.statement.purpose, r.params.purpose);
    assert.equal(verified.statement.context.host, "build-7");
    assert.equal(verified.certificate.client.id, r.params.client);
    const { manifests, wrapsBy } = materialsOf(r);
    for (const rel of r.releases) {
      const wraps = mapValues(wrapsBy, (byApprover) => mapValues(byApprover[rel.approver], b64));
      const random = replay([rel.ikm_e]);
      const token = await release({
        verified,
        manifests,
        wraps,
        directory: d,
        approverId: rel.approver,
        hpkePrivate: hk[rel.approver],
        signingKey: sig[rel.approver],
        now: rel.now,
        cacheUntil: 0,
        random,
      });
      assert.equal(token, rel.token, `${name} / ${rel.approver}`);
      // The sealed plaintext is the recorded one (opened with the one-time key).
      const eph = await hpkeKeyFromRaw(hex(r.ephemeral_sk));
      const payload = JSON.parse(fromUtf8(b64(token.split(".")[1])));
      const plain = await hpke.open(
        eph,
        releaseInfo({ vault: W.vault, request: r.hash, approver: rel.approver }),
        b64(payload.blob),
      );
      assert.equal(fromUtf8(plain), rel.plaintext);
    }
  }
});

test("the deny and the refusal are reproduced byte for byte and verify", async () => {
  const { d, sig } = await setup();
  const D = W.deny;
  const token = await deny({
    requestHash: W.requests[D.request].hash,
    approverId: D.approver,
    signingKey: sig[D.approver],
    reason: D.reason,
    now: D.now,
    directory: d,
  });
  assert.equal(token, D.token);
  const read = await verifyDeny(token, { directory: d, requestHash: W.requests[D.request].hash });
  assert.equal(read.grounds, null);
  // Without a directory (the brief's form): the vault is given, the same bytes come out.
  assert.equal(
    await deny({
      vault: W.vault,
      requestHash: W.requests[D.request].hash,
      approverId: D.approver,
      signingKey: sig[D.approver],
      reason: D.reason,
      now: D.now,
    }),
    D.token,
  );
  const R = W.refusal;
  const code = R.reason.split(": ").pop();
  const refusal = await refuseUnverifiable({
    requestId: W.requests[R.request].hash.slice("sha256:".length),
    code,
    directory: d,
    approverId: R.approver,
    signingKey: sig[R.approver],
    now: R.now,
  });
  assert.equal(refusal, R.token);
  const r = await verifyDeny(refusal, { directory: d, requestHash: W.requests[R.request].hash });
  assert.equal(r.grounds, "unverifiable");
});

// --- the failure cases --------------------------------------------------------------------

const COVERED = new Set([
  "verify_directory",
  "verify_store",
  "verify_access",
  "release",
  "verify_deny",
]);
const NOT_COVERED = new Set(["open_release"]);

test("every failure op is either covered or knowingly left out", () => {
  for (const f of FLOW.failures) {
    assert.ok(COVERED.has(f.op) || NOT_COVERED.has(f.op), `unknown op ${f.op}`);
  }
});

for (const f of FLOW.failures.filter((c) => COVERED.has(c.op))) {
  test(`failure: ${f.name} -> ${f.expect}`, async () => {
    const { d, hpke: hk, sig } = await setup();
    if (f.op === "verify_directory") {
      await expectCode(
        f.expect,
        verifyDirectory(f.tokens, { pinned: f.pinned, cachedHead: f.cached_head }),
      );
    } else if (f.op === "verify_store") {
      const upload = {
        statement: f.statement,
        ciphertexts: mapValues(f.ciphertexts, b64),
        wraps: mapValues(f.wraps, (w) => mapValues(w, b64)),
      };
      await expectCode(
        f.expect,
        verifyStore(upload, {
          directory: d,
          approverId: f.approver,
          hpkePrivate: hk[f.approver],
          certificate: f.certificate,
          now: f.now,
        }),
      );
    } else if (f.op === "verify_access") {
      await expectCode(
        f.expect,
        verifyAccess(f.token, { directory: d, certificate: f.certificate, now: f.now }),
      );
    } else if (f.op === "release") {
      const r = W.requests[f.request];
      const verified = await verifyAccess(r.token, {
        directory: d,
        certificate: W.certificate.token,
        now: r.verified_at,
      });
      await expectCode(
        f.expect,
        release({
          verified,
          manifests: mapValues(f.materials, (m) => m.manifest),
          wraps: mapValues(f.materials, (m) => mapValues(m.wraps, b64)),
          directory: d,
          approverId: f.approver,
          hpkePrivate: hk[f.approver],
          signingKey: sig[f.approver],
          now: f.now,
        }),
      );
    } else if (f.op === "verify_deny") {
      await expectCode(
        f.expect,
        verifyDeny(f.token, { directory: d, requestHash: f.request_hash }),
      );
    }
  });
}

test("removing an approver: the plan, and re-sealing what this approver can open alone", async () => {
  const { d, hpke: hk, sig, ids, records } = await setup();
  const [a0, a1, a2] = ids;
  const v1 = W.item_versions["item1-v1"];
  const v2 = W.item_versions["item1-v2"];
  const api = W.item_versions["item2-v1"];
  const plan = async (v, target, me) =>
    removalAction(await verifyManifest(v.manifest, d), { directory: d, target, approverId: me });
  assert.equal(await plan(v2, a2, a1), "keep");
  assert.equal(await plan(v2, a0, a1), "reseal");
  assert.equal(await plan(v2, a0, a0), "warn");
  assert.equal(await plan(api, a0, a1), "warn");
  const removal = await appendLink(d, "remove", records[a0], sig[a1], a1, { now: W.now + 500 });
  const after = await verifyDirectory([...W.directory.links, removal], {
    pinned: W.directory.fingerprint,
  });
  assert.equal(after.approvers.has(a0), false);
  requireRecord(after, records[a1]);
  assert.throws(
    () => requireRecord(after, records[a0]),
    (e) => e.code === "binding_mismatch",
  );
  assert.throws(
    () => requireRecord(after, { ...records[a1], name: "someone else" }),
    (e) => e.code === "binding_mismatch",
  );
  // With a0 gone, removing a2 too would leave the 2-of-3 item one holder: stranded.
  const apiManifest = await verifyManifest(api.manifest, d);
  assert.equal(
    removalAction(apiManifest, { directory: after, target: a2, approverId: a1 }),
    "stranded",
  );
  // A manifest signed by the removed approver no longer verifies.
  await expectCode("not_authorized", verifyManifest(api.manifest, after));

  const wire = (m) => mapValues(m, b64);
  const out = await resealAsApprover({
    manifest: v2.manifest,
    directory: after,
    approverId: a1,
    hpkePrivate: hk[a1],
    signingKey: sig[a1],
    wraps: wire(v2.wraps[a1]),
    ciphertexts: wire(v2.ciphertexts),
    now: W.now + 600,
  });
  const m3 = await verifyManifest(out.manifest, after);
  assert.equal(m3.version, 3);
  assert.equal(m3.prev, v2.manifest_hash);
  assert.deepEqual([...m3.keyset.approvers], [a1]);
  const opened = await openOwnValues({
    manifest: out.manifest,
    directory: after,
    approverId: a1,
    hpkePrivate: hk[a1],
    wraps: out.wraps[a1],
    ciphertexts: out.ciphertexts,
  });
  assert.deepEqual(mapValues(opened.values, toHex), v2.params.values);
  // What does not match its signed hash is refused; so is an item needing two approvers.
  await expectCode(
    "manifest_mismatch",
    openOwnValues({
      manifest: v1.manifest,
      directory: d,
      approverId: a1,
      hpkePrivate: hk[a1],
      wraps: wire(v2.wraps[a1]),
      ciphertexts: wire(v1.ciphertexts),
    }),
  );
  await expectCode(
    "manifest_mismatch",
    openOwnValues({
      manifest: v1.manifest,
      directory: d,
      approverId: a1,
      hpkePrivate: hk[a1],
      wraps: wire(v1.wraps[a1]),
      ciphertexts: wire(v2.ciphertexts),
    }),
  );
  await expectCode(
    "threshold_not_met",
    openOwnValues({
      manifest: api.manifest,
      directory: d,
      approverId: a1,
      hpkePrivate: hk[a1],
      wraps: wire(api.wraps[a1]),
      ciphertexts: wire(api.ciphertexts),
    }),
  );
});
