// The policies page: which approvers hold shares of which items, and how many must agree.
//
// Approvers are named from the directory verified in this browser: an id the relay lists that
// is not a current approver shows as such, and the editor offers only verified approvers. A
// policy is the relay's to enforce (it decides who is asked); it signs nothing, so the
// session's CSRF-checked call is enough. Every store still splits keys among verified
// approvers only (store.js), whatever a policy says.

import * as api from "./api.js";
import * as approver from "./approver.js";
import { action, describe, el, shell, status } from "./ui.js";

// Three segments of letters, digits, '.', '_', '-', '*', '?' (as the relay's check_pattern).
const SEGMENT = /^[A-Za-z0-9._\-*?]+$/;
// The shapes of the other axes; the relay parses them strictly and says what is wrong.
const WINDOW = /^[a-z,-]+ \d{2}:\d{2}-\d{2}:\d{2} [A-Za-z0-9_+\-/]{1,64}$/;
const RATE = /^[1-9]\d{0,5}\/([1-9]\d{0,4})?[smhd]$/;

let directory = null;
let policies = [];

const form = document.getElementById("policy-form");
const patternInput = document.getElementById("policy-pattern");
const thresholdInput = document.getElementById("policy-threshold");
const boxes = document.getElementById("policy-approvers");
const cosignerInput = document.getElementById("policy-cosigner");
const hoursInput = document.getElementById("policy-hours");
const cidrsInput = document.getElementById("policy-cidrs");
const maxReadsInput = document.getElementById("policy-max-reads");
const destroyInput = document.getElementById("policy-destroy-at");
const rotateInput = document.getElementById("policy-rotate-after");

/** What a policy holds beyond who approves: one short phrase per axis that is set. */
function conditions(p) {
  const out = [];
  if (p.cosigner) out.push(`co-signed by ${nameOf(p.cosigner)}`);
  if (p.hours?.length) out.push(`only ${p.hours.join("; ")}`);
  if (p.cidrs?.length) out.push(`from ${p.cidrs.join(", ")}`);
  if (p.max_reads) out.push(`at most ${p.max_reads} per item`);
  if (p.destroy_at) out.push(`destroyed ${new Date(p.destroy_at * 1000).toISOString().slice(0, 16).replace("T", " ")} UTC`);
  if (p.rotate_after) out.push(`rotate after ${p.rotate_after} releases`);
  out.push(p.signed ? "signed by an approver" : "not signed");
  return out.join(" · ");
}

function lines(text) {
  return text.split("\n").map((l) => l.trim()).filter((l) => l);
}

function localInput(seconds) {
  // datetime-local wants the browser's wall-clock time, without a zone.
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function nameOf(id) {
  const record = directory.approvers.get(id);
  return record ? record.name : `${id} (not a current approver)`;
}

function render() {
  const rows = policies.map((p) => {
    const edit = el("button", { type: "button", class: "quiet", "aria-label": `Edit policy ${p.pattern}` }, "Edit");
    const remove = el("button", { type: "button", class: "danger", "aria-label": `Delete policy ${p.pattern}` }, "Delete");
    edit.addEventListener("click", () => fill(p));
    action(remove, async () => {
      await api.call("DELETE", api.vaultPath(`/policies?pattern=${encodeURIComponent(p.pattern)}`));
      status(`Deleted the policy for ${p.pattern}.`);
      await refresh();
    });
    return el("tr", { "data-pattern": p.pattern }, el("td", {}, el("code", {}, p.pattern)),
      el("td", {}, `${p.threshold} of ${p.approvers.length}: ${p.approvers.map(nameOf).join(", ")}`),
      el("td", { class: "conditions" }, conditions(p)),
      el("td", {}, edit, remove));
  });
  document.querySelector("#policies tbody").replaceChildren(...rows);
}

function checkboxes() {
  const rows = [...directory.approvers.values()].map((r) => {
    const id = `policy-approver-${r.id}`;
    return el("label", { for: id, class: "inline" },
      el("input", { id, type: "checkbox", value: r.id, class: "policy-approver" }),
      el("span", {}, `${r.name} (${r.kind}) `, el("code", {}, r.id)));
  });
  boxes.replaceChildren(el("legend", {}, "Approvers who hold shares"), ...rows);
  cosignerInput.replaceChildren(el("option", { value: "" }, "none"),
    ...[...directory.approvers.values()].map((r) => el("option", { value: r.id }, `${r.name} (${r.id})`)));
}

function fill(p) {
  patternInput.value = p.pattern;
  thresholdInput.value = String(p.threshold);
  for (const box of boxes.querySelectorAll("input.policy-approver")) box.checked = p.approvers.includes(box.value);
  cosignerInput.value = p.cosigner ?? "";
  hoursInput.value = (p.hours ?? []).join("\n");
  cidrsInput.value = (p.cidrs ?? []).join("\n");
  maxReadsInput.value = p.max_reads ?? "";
  destroyInput.value = p.destroy_at ? localInput(p.destroy_at) : "";
  rotateInput.value = p.rotate_after ? String(p.rotate_after) : "";
  patternInput.focus();
}

/** The policy the form describes, checked; a clear error for anything the relay would refuse. */
function fromForm() {
  const pattern = patternInput.value.trim();
  const parts = pattern.split("/");
  if (parts.length !== 3 || !parts.every((s) => SEGMENT.test(s)) || pattern.length > 200) {
    throw new Error("The pattern must be project/environment/item: letters, digits, '.', '_', '-', '*' or '?' in each part.");
  }
  const approvers = [...boxes.querySelectorAll("input.policy-approver:checked")].map((b) => b.value).sort();
  if (!approvers.length) throw new Error("Pick at least one approver.");
  const threshold = Number(thresholdInput.value);
  if (!Number.isInteger(threshold) || threshold < 1 || threshold > approvers.length) {
    throw new Error(`The threshold must be a whole number from 1 to ${approvers.length} (the approvers picked).`);
  }
  const cosigner = cosignerInput.value || null;
  if (cosigner && !approvers.includes(cosigner)) throw new Error("The co-signer must be one of the approvers picked.");
  if (cosigner && approvers.length - 1 < threshold) {
    throw new Error("A co-signer approves on top of the threshold: pick more approvers or lower the threshold.");
  }
  const hours = lines(hoursInput.value);
  const bad = hours.find((h) => !WINDOW.test(h));
  if (bad) throw new Error(`"${bad}" is not a time window: write DAYS HH:MM-HH:MM ZONE, e.g. mon-fri 09:00-18:00 Europe/Berlin.`);
  const maxReads = maxReadsInput.value.trim() || null;
  if (maxReads && !RATE.test(maxReads)) throw new Error("The read-rate cap is N/PERIOD, e.g. 10/h, 3/15m or 100/1d.");
  let destroyAt = null;
  if (destroyInput.value) {
    destroyAt = Math.floor(new Date(destroyInput.value).getTime() / 1000);
    if (!(destroyAt > Date.now() / 1000)) throw new Error("The destroy date must lie in the future.");
  }
  const rotate = rotateInput.value.trim() ? Number(rotateInput.value) : null;
  if (rotate !== null && (!Number.isInteger(rotate) || rotate < 1)) throw new Error("Rotate after must be a whole number of releases, at least 1.");
  return { pattern, approvers, threshold, cosigner, hours, cidrs: lines(cidrsInput.value),
    max_reads: maxReads, destroy_at: destroyAt, rotate_after: rotate };
}

async function save() {
  const wanted = fromForm();
  // Replacing a policy keeps what this editor does not show (expiry, cache, store approval).
  const old = policies.find((p) => p.pattern === wanted.pattern);
  const body = old
    ? { ...wanted, expiry_seconds: old.expiry_seconds, max_cache_seconds: old.max_cache_seconds,
        store_needs_approval: old.store_needs_approval }
    : wanted;
  const stored = await api.call("PUT", api.vaultPath("/policies"), body);
  status(`Saved: ${stored.pattern} needs ${stored.threshold} of ${stored.approvers.length} (${stored.approvers.map(nameOf).join(", ")}).`);
  await refresh();
}

async function refresh() {
  policies = (await api.get("/policies")).policies ?? [];
  render();
}

async function main() {
  if (!(await shell())) return;
  directory = await approver.directory();
  checkboxes();
  form.addEventListener("submit", (event) => event.preventDefault());
  action(document.getElementById("policy-save"), save);
  await refresh();
  if (!policies.length) status("No policy yet: every item needs any one approver.");
}

main().catch((error) => status(describe(error), { error: true }));
