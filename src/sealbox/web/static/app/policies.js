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

let directory = null;
let policies = [];

const form = document.getElementById("policy-form");
const patternInput = document.getElementById("policy-pattern");
const thresholdInput = document.getElementById("policy-threshold");
const boxes = document.getElementById("policy-approvers");

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
}

function fill(p) {
  patternInput.value = p.pattern;
  thresholdInput.value = String(p.threshold);
  for (const box of boxes.querySelectorAll("input.policy-approver")) box.checked = p.approvers.includes(box.value);
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
  return { pattern, approvers, threshold };
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
