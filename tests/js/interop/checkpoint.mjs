// For tests/unit/web/test_js_audit_interop.py: sign a checkpoint as flow.json's first approver
// (this browser code), or verify one Python signed and check a log with it; JSON on stdout.
//   node checkpoint.mjs sign SEQ HASH
//   node checkpoint.mjs verify TOKEN   (the log: audit.json's chain)

import { readFileSync } from "node:fs";

import { checkpointPayload, verifyCheckpoint, verifyLog } from "../../../src/sealbox/web/static/sealbox/audit.js";
import { verifyDirectory } from "../../../src/sealbox/web/static/sealbox/directory.js";
import { signStatement } from "../../../src/sealbox/web/static/sealbox/jws.js";
import { signingKeyFromSeed } from "../../../src/sealbox/web/static/sealbox/keys.js";
import { TYP } from "../../../src/sealbox/web/static/sealbox/statements.js";

const read = (name) =>
  JSON.parse(readFileSync(new URL(`../../vectors/sealbox/${name}.json`, import.meta.url), "utf8"));
const W = read("flow").world;
const hex = (text) => Uint8Array.from(text.match(/../g) ?? [], (b) => parseInt(b, 16));
const [command, ...args] = process.argv.slice(2);

if (command === "sign") {
  const a = W.approvers[0];
  const key = await signingKeyFromSeed(hex(a.sig_seed));
  const payload = checkpointPayload({
    vault: W.vault, approver: a.record.id, head: { seq: Number(args[0]), hash: args[1] }, at: W.now,
  });
  console.log(JSON.stringify({ token: await signStatement(TYP.checkpoint, a.record.id, payload, key) }));
} else {
  const directory = await verifyDirectory(W.directory.links, { pinned: W.directory.fingerprint });
  try {
    const checkpoint = await verifyCheckpoint(args[0], directory);
    const checked = await verifyLog(read("audit").chain.map((c) => c.event), { checkpoints: [checkpoint] });
    console.log(JSON.stringify({ ok: true, seq: checkpoint.seq, head: checked.head }));
  } catch (error) {
    console.log(JSON.stringify({ ok: false, code: error.code, seq: error.seq ?? null }));
  }
}
