// audit.js against tests/vectors/sealbox/audit.json (the hash Python computes, event for
// event), every tampered log, and checkpoints signed and verified on flow.json's world.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  GENESIS,
  checkpointPayload,
  eventHash,
  headDigest,
  headHex,
  listCheckpoints,
  parseEvent,
  verifyCheckpoint,
  verifyLog,
} from "../../../src/sealbox/web/static/sealbox/audit.js";
import { verifyDirectory } from "../../../src/sealbox/web/static/sealbox/directory.js";
import { signStatement } from "../../../src/sealbox/web/static/sealbox/jws.js";
import { signingKeyFromSeed } from "../../../src/sealbox/web/static/sealbox/keys.js";
import { TYP } from "../../../src/sealbox/web/static/sealbox/statements.js";

const read = (name) =>
  JSON.parse(readFileSync(new URL(`../../vectors/sealbox/${name}.json`, import.meta.url), "utf8"));
const AUDIT = read("audit");
const W = read("flow").world;
const hex = (text) => Uint8Array.from(text.match(/../g) ?? [], (b) => parseInt(b, 16));
const events = AUDIT.chain.map((c) => c.event);

async function rejectsAt(promise, seq, pattern) {
  await assert.rejects(promise, (error) => {
    assert.equal(error.code, "audit_broken", error.message);
    assert.equal(error.seq, seq, error.message);
    if (pattern) assert.match(error.message, pattern);
    return true;
  });
}

test("the event hash is Python's, event for event", async () => {
  assert.equal(AUDIT.genesis, GENESIS);
  let prev = GENESIS;
  for (const c of AUDIT.chain) {
    assert.equal(c.event.prev_hash, prev);
    assert.equal(await eventHash(prev, c.event), c.hash, `event ${c.event.seq}`);
    assert.equal(headDigest(c.hash), c.head);
    assert.equal(headHex(c.head), c.hash);
    prev = c.hash;
  }
  const checked = await verifyLog(events);
  assert.deepEqual(checked.head, { seq: events.length, hash: prev });
});

test("every tampered log is refused at the seq Python names", async () => {
  const hashes = new Map(AUDIT.chain.map((c) => [c.event.seq, c.hash]));
  for (const c of AUDIT.tampered) {
    const known = c.known.map((seq) => ({ seq, hash: hashes.get(seq) }));
    await rejectsAt(verifyLog(c.events, { known }), c.seq);
  }
});

async function signer(index) {
  const a = W.approvers[index];
  return { id: a.record.id, key: await signingKeyFromSeed(hex(a.sig_seed)) };
}

async function checkpoint(index, seq, { vault = W.vault, hash = AUDIT.chain[seq - 1].hash } = {}) {
  const { id, key } = await signer(index);
  const payload = checkpointPayload({ vault, approver: id, head: { seq, hash }, at: W.now });
  return signStatement(TYP.checkpoint, id, payload, key);
}

test("checkpoints: signed here, verified against the directory, held against the log", async () => {
  const directory = await verifyDirectory(W.directory.links, { pinned: W.directory.fingerprint });
  const three = await verifyCheckpoint(await checkpoint(0, 3), directory);
  const five = await verifyCheckpoint(await checkpoint(1, 5), directory);
  const checked = await verifyLog(events, { checkpoints: [five, three] });
  assert.deepEqual(checked.checkpoints.map((c) => c.seq), [3, 5]);
  // Truncated behind a checkpoint.
  await rejectsAt(verifyLog(events.slice(0, 4), { checkpoints: [five] }), 5, /truncated/);
  // Another head at that seq.
  const forged = await verifyCheckpoint(await checkpoint(0, 4, { hash: AUDIT.chain[1].hash }),
    directory);
  await rejectsAt(verifyLog(events, { checkpoints: [forged] }), 4, /differs from the checkpoint/);
  // Another vault's; a broken signature; not a checkpoint at all.
  const other = await checkpoint(0, 3, { vault: "vlt_" + "a".repeat(26) });
  await rejectsAt(verifyCheckpoint(other, directory), 3, /not this vault's/);
  const token = await checkpoint(0, 3);
  await rejectsAt(verifyCheckpoint(token.slice(0, -4) + "AAAA", directory), 0);
  await rejectsAt(verifyCheckpoint("garbage", directory), 0);
});

test("every event Python refuses is refused here too, before it is hashed", async () => {
  assert.ok(AUDIT.malformed.length >= 30);
  for (const c of AUDIT.malformed) {
    assert.throws(() => parseEvent(c.event), (error) => {
      assert.equal(error.code, c.expect, `${c.name}: ${error.message}`);
      return true;
    }, c.name);
    await assert.rejects(verifyLog([c.event]), (error) => {
      assert.equal(error.code, "malformed", `${c.name}: ${error.message}`);
      return true;
    }, c.name);
  }
});

test("every event Python accepts at the edges is accepted, with Python's hash", async () => {
  assert.ok(AUDIT.accepted.length >= 5);
  for (const c of AUDIT.accepted) {
    const e = parseEvent(c.event);
    assert.equal(await eventHash(GENESIS, e), c.event.hash, c.name);
    const checked = await verifyLog([c.event]);
    assert.deepEqual(checked.head, { seq: 1, hash: c.event.hash }, c.name);
  }
});

test("checkpoints are read page after page, as the relay lists them", async () => {
  // The relay's paging: by seq, ascending; a full page ends on a whole seq.
  const rows = [1, 2, 2, 3, 5, 5, 5, 8, 9].map((seq, i) => ({ seq, statement: `t${i}` }));
  const asked = [];
  const get = async (path) => {
    asked.push(path);
    const query = new URLSearchParams(path.split("?")[1]);
    const after = Number(query.get("after_seq"));
    const limit = Number(query.get("limit"));
    let found = rows.filter((r) => r.seq > after).slice(0, limit);
    let next = null;
    if (found.length === limit) {
      const whole = found.filter((r) => r.seq < found.at(-1).seq);
      found = whole.length ? whole : found;
      next = found.at(-1).seq;
    }
    return { checkpoints: found, next_after_seq: next };
  };
  assert.deepEqual(await listCheckpoints(get, { limit: 3 }), rows);
  assert.ok(asked.length > 2, asked.join(" "));
  assert.equal(asked[0], "/audit/checkpoints?after_seq=0&limit=3");
  assert.deepEqual((await listCheckpoints(get)).map((r) => r.statement), rows.map((r) => r.statement));
  await assert.rejects(listCheckpoints(async () => ({ checkpoints: "no" })), { code: "malformed" });
  // A relay that sends the same page forever is read once.
  const stuck = await listCheckpoints(async () => ({ checkpoints: rows.slice(0, 1), next_after_seq: 0 }));
  assert.equal(stuck.length, 1);
});
