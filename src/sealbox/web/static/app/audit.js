// The audit page: events live, a filter, a JSONL export, the log verified here, and a
// checkpoint signed here.
//
// Verifying in the browser recomputes every event's hash from its fields and checks each links
// to the one before; then checks each approver-signed checkpoint (its signature, against the
// directory verified here from the pinned link 0) names an event of the log with that very
// hash, and that the log reaches the head this browser verified last time.  So an event edited,
// removed, reordered or inserted, a log rewritten whole behind a checkpoint, or cut short
// behind a checkpoint or a head seen before, shows here whatever the relay says.  "Sign a
// checkpoint" verifies first, then signs the head with this approver's key (a passkey).

import { checkpointPayload, listCheckpoints, verifyCheckpoint, verifyLog } from "../sealbox/audit.js";
import { signStatement } from "../sealbox/jws.js";
import { TYP } from "../sealbox/statements.js";
import * as approver from "./approver.js";
import * as api from "./api.js";
import { action, describe, el, shell, status, when } from "./ui.js";

const events = [];
const body = document.querySelector("#audit tbody");
const filter = document.getElementById("filter");

function matches(e, q) {
  if (!q) return true;
  return [e.action, e.actor, e.item_id, e.client_id].some((v) => typeof v === "string" && v.includes(q));
}

// Three columns, so a phone shows a whole event without scrolling sideways.
function row(e) {
  const subject = e.item_id || e.client_id;
  return el("tr", { "data-seq": e.seq, "data-action": e.action },
    el("td", {}, String(e.seq)),
    el("td", {}, el("strong", {}, e.action), el("br"), `${when(e.at)} · ${e.severity}`),
    el("td", {}, "by ", el("code", {}, e.actor),
      subject ? [el("br"), "on ", el("code", {}, subject)] : null,
      e.source_ip ? [el("br"), `from ${e.source_ip}`] : null));
}

function render() {
  const q = filter.value.trim();
  body.replaceChildren(...events.filter((e) => matches(e, q)).slice(-500).reverse().map(row));
}

async function load() {
  let after = 0;
  for (;;) {
    const page = await api.get(`/audit?after_seq=${after}&limit=500`);
    events.push(...page.events);
    if (page.events.length < 500) return;
    after = page.next_after_seq;
  }
}

function broken(message) {
  const chain = document.getElementById("chain");
  chain.textContent = message;
  chain.className = "error";
}

// The head this browser verified last, per vault: a relay that later serves less is caught.
const seenKey = () => `sealbox-audit-head:${api.vault}`;

function seenHead() {
  try {
    const kept = JSON.parse(localStorage.getItem(seenKey()) ?? "null");
    return Number.isSafeInteger(kept?.seq) && typeof kept?.hash === "string" ? kept : null;
  } catch {
    return null;
  }
}

async function catchUp() {
  let after = events.at(-1)?.seq ?? 0;
  for (;;) {
    const page = await api.get(`/audit?after_seq=${after}&limit=500`);
    for (const e of page.events) if (e.seq > (events.at(-1)?.seq ?? 0)) events.push(e);
    if (page.events.length < 500) return;
    after = page.next_after_seq;
  }
}

/** Verify the whole log here; resolves to the head verified, or null (shown as broken). */
async function verifyAll() {
  const chain = document.getElementById("chain");
  // Checkpoints first: each then names an event already written, which the events read next hold.
  // Every page of them: the relay lists them oldest first, so the first page alone would miss
  // the newest.
  const listed = await listCheckpoints((path) => api.get(path));
  await catchUp();
  render();
  let directory = null;
  try {
    directory = await approver.directory();
  } catch (error) {
    if (error?.code !== "no_approver_here") throw error;
  }
  const checkpoints = [];
  let skipped = 0;
  try {
    if (directory) {
      for (const entry of listed) {
        try {
          checkpoints.push(await verifyCheckpoint(entry.statement, directory));
        } catch (error) {
          if (error?.code !== "checkpoint_signer_unknown") throw error;
          skipped += 1;
        }
      }
    }
    const seen = seenHead();
    const checked = await verifyLog(events, { checkpoints, known: seen ? [seen] : [] });
    if (checked.head) localStorage.setItem(seenKey(), JSON.stringify(checked.head));
    chain.className = "verified";
    const last = checked.checkpoints.at(-1);
    chain.textContent =
      `Verified in this browser: ${checked.events} events, each hashed and linked to the one ` +
      "before, from the first" +
      (directory
        ? `; ${checked.checkpoints.length} signed checkpoint(s) hold` +
          (last ? ` (the latest at event ${last.seq}, by ${last.approver})` : "") +
          (skipped ? `; ${skipped} by former approvers not counted` : "")
        : "; checkpoints not checked (this browser holds no approver of this vault)") +
      (seen ? `; it reaches event ${seen.seq}, verified here before.` : ".");
    verifiedUpTo = checked.head?.seq ?? 0;
    return checked.head;
  } catch (error) {
    // "malformed": an event of another shape than Python's verifier reads (a type swapped).
    if (error?.code !== "audit_broken" && error?.code !== "malformed") throw error;
    broken(`Not valid: ${error.message}.`);
    return null;
  }
}

async function verifyChain() {
  await verifyAll();
}

async function signCheckpoint() {
  const head = await verifyAll();
  if (!head) return;
  let filed;
  await approver.withKeys(async (keys) => {
    const payload = checkpointPayload({ vault: api.vault, approver: keys.id, head, at: approver.now() });
    const statement = await signStatement(TYP.checkpoint, keys.id, payload, keys.sig);
    filed = await api.post("/audit/checkpoints", { statement });
  });
  status(filed?.created === false
    ? `You had already signed a checkpoint at event ${head.seq}.`
    : `Signed a checkpoint at event ${head.seq}.`);
}

let verifiedUpTo = null;

function exportJsonl() {
  const text = events.map((e) => JSON.stringify(e)).join("\n") + "\n";
  const url = URL.createObjectURL(new Blob([text], { type: "application/x-ndjson" }));
  const link = el("a", { href: url, download: `sealbox-audit-${api.vault}.jsonl`, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  // Revoked later: revoking at once can cancel the download before it has begun.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  status(`Exported ${events.length} events.`);
}

function follow() {
  const last = events.at(-1)?.seq ?? 0;
  const stream = new EventSource(api.vaultPath(`/audit/stream?after_seq=${last}`));
  stream.addEventListener("audit", (message) => {
    let e;
    try {
      e = JSON.parse(message.data);
    } catch {
      return;
    }
    if (!Number.isSafeInteger(e?.seq) || (events.length && e.seq <= events.at(-1).seq)) return;
    events.push(e);
    render();
    if (verifiedUpTo !== null) {
      const chain = document.getElementById("chain");
      chain.className = "";
      chain.textContent = `Verified up to event ${verifiedUpTo}; newer events came since: verify again.`;
      verifiedUpTo = null;
    }
  });
  stream.addEventListener("revoked", () => {
    stream.close();
    status("This approver left the vault: the log is no longer followed.", { error: true });
  });
}

async function main() {
  if (!(await shell())) return;
  await load();
  render();
  filter.addEventListener("input", render);
  action(document.getElementById("verify-chain"), verifyChain);
  action(document.getElementById("sign-checkpoint"), signCheckpoint);
  action(document.getElementById("export-jsonl"), exportJsonl);
  follow();
}

main().catch((error) => status(describe(error), { error: true }));
