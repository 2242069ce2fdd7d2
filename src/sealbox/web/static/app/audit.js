// The audit page: events live, a filter, a JSONL export, and the hash chain verified here.
//
// Verifying in the browser recomputes every event's hash from its fields and checks each
// links to the one before, so an edited or removed event shows here whatever the relay says.

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

function render() {
  const q = filter.value.trim();
  const rows = events.filter((e) => matches(e, q)).slice(-500).reverse().map((e) =>
    el("tr", {}, el("td", {}, String(e.seq)), el("td", {}, when(e.at)), el("td", {}, e.action),
      el("td", {}, e.severity), el("td", {}, e.actor), el("td", {}, e.item_id || e.client_id || "-"),
      el("td", {}, e.source_ip || "-")));
  body.replaceChildren(...rows);
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

async function verifyChain() {
  const chain = document.getElementById("chain");
  let prev = null;
  for (const e of events) {
    if (prev !== null && (e.seq !== prev.seq + 1 || e.prev_hash !== prev.hash)) {
      chain.textContent = `The chain breaks before event ${e.seq}: an event is missing or was changed.`;
      chain.className = "error";
      return;
    }
    if ((await eventHash(e)) !== e.hash) {
      chain.textContent = `Event ${e.seq} does not match its hash: it was changed.`;
      chain.className = "error";
      return;
    }
    prev = e;
  }
  chain.className = "";
  chain.textContent = `Verified in this browser: ${events.length} events, each hashed and linked to the one before.`;
}

async function main() {
  if (!(await shell())) return;
  await load();
  render();
  filter.addEventListener("input", render);
  action(document.getElementById("verify-chain"), verifyChain);
  action(document.getElementById("export-jsonl"), async () => {
    const text = events.map((e) => JSON.stringify(e)).join("\n") + "\n";
    const link = el("a", { href: URL.createObjectURL(new Blob([text], { type: "application/jsonl" })), download: "sealbox-audit.jsonl" });
    link.click();
    URL.revokeObjectURL(link.href);
  });
  const last = events.at(-1)?.seq ?? 0;
  const stream = new EventSource(api.vaultPath(`/audit/stream?after_seq=${last}`));
  stream.addEventListener("audit", (message) => {
    const e = JSON.parse(message.data);
    if (events.length && e.seq <= events.at(-1).seq) return;
    events.push(e);
    render();
  });
}

main().catch((error) => status(describe(error), { error: true }));
