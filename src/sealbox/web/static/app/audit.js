// The audit page: events live, a filter, a JSONL export, and the hash chain verified here.
//
// Verifying in the browser recomputes every event's hash from its fields and checks each
// links to the one before, so an event edited or removed in the middle shows here whatever
// the relay says.  It cannot show a log the relay rewrote whole (hashes recomputed) or cut
// at its end: that needs approver-signed checkpoints, which this page does not check yet.

import { canonicalJson, lp } from "../sealbox/encoding.js";
import { hashAudit } from "../sealbox/labels.js";
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

async function eventHash(e) {
  const data = lp(hashAudit, e.prev_hash, e.seq, e.at, e.actor, e.action, e.severity,
    e.client_id || "", e.item_id || "", e.source_ip || "", canonicalJson(e.detail));
  const raw = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
  return [...raw].map((b) => b.toString(16).padStart(2, "0")).join("");
}

// The hash the first event links to (the relay's GENESIS): 64 zeros.
const GENESIS = "0".repeat(64);

function broken(message) {
  const chain = document.getElementById("chain");
  chain.textContent = message;
  chain.className = "error";
}

async function verifyChain() {
  const chain = document.getElementById("chain");
  let prev = { seq: 0, hash: GENESIS };
  for (const e of events) {
    if (e.seq !== prev.seq + 1 || e.prev_hash !== prev.hash) {
      broken(`The chain breaks before event ${e.seq}: an event is missing or was changed.`);
      return;
    }
    if ((await eventHash(e)) !== e.hash) {
      broken(`Event ${e.seq} does not match its hash: it was changed.`);
      return;
    }
    prev = e;
  }
  chain.className = "verified";
  chain.textContent =
    `Verified in this browser: ${events.length} events, each hashed and linked to the one ` +
    "before, from the first. (A log rewritten whole, or cut at its end, needs signed " +
    "checkpoints to show; this check does not cover that.)";
  verifiedUpTo = prev.seq;
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
  action(document.getElementById("export-jsonl"), exportJsonl);
  follow();
}

main().catch((error) => status(describe(error), { error: true }));
