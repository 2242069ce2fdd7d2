// The store page: a person stores an item from this browser.
//
// Values are typed or pasted here, encrypted here with fresh field keys, the keys split among
// the item's approvers (the policy the relay advises, each checked against the verified
// directory) and wrapped to each; this approver signs the manifest directly. The relay gets
// ciphertext, wraps and the signed manifest, never a value.

import { checkFieldName, checkPath, KIND, newId } from "../sealbox/statements.js";
import { manifestHash, storeAsApprover, verifyManifest } from "../sealbox/store.js";
import { directoryApprover } from "../sealbox/directory.js";
import * as api from "./api.js";
import * as approver from "./approver.js";
import { action, describe, el, shell, status } from "./ui.js";

const fields = document.getElementById("fields");
let rows = 0;

function addField(name = "") {
  rows += 1;
  const nameId = `field-name-${rows}`;
  const valueId = `field-value-${rows}`;
  const remove = el("button", { type: "button", class: "quiet", "aria-label": `Remove field ${rows}` }, "Remove");
  const row = el(
    "div",
    { class: "field-row" },
    el("label", { for: nameId }, `Field ${rows} name`),
    el("input", { id: nameId, class: "field-name", autocomplete: "off", value: name }),
    el("label", { for: valueId }, `Field ${rows} value (encrypted in this browser)`),
    el("textarea", { id: valueId, class: "field-value", rows: "2", autocomplete: "off", spellcheck: "false" }),
    remove,
  );
  remove.addEventListener("click", () => row.remove());
  fields.append(row);
}

/** The latest version's verified manifest of `path`, or null for a new item. */
async function latest(path, directory) {
  const found = (await api.get(`/items?path=${encodeURIComponent(path)}`)).items ?? [];
  if (found.length === 0) return null;
  const item = found[0];
  const history = await api.get(`/items/${encodeURIComponent(item.id)}/versions`);
  const last = history.versions.at(-1);
  const manifest = await verifyManifest(last.manifest, directory);
  if (manifest.item !== item.id || manifest.path !== path) {
    throw new Error(`the relay served another item's manifest for ${path}`);
  }
  return { item: item.id, manifest, token: last.manifest };
}

/** The approvers the relay advises for `path`, each checked against the verified directory. */
async function holdersOf(path, directory) {
  const policy = await api.get(`/policy?path=${encodeURIComponent(path)}`);
  const holders = [...policy.approvers].sort();
  for (const id of holders) directoryApprover(directory, id);
  if (!holders.length || !(Number.isInteger(policy.threshold) && policy.threshold >= 1 && policy.threshold <= holders.length)) {
    throw new Error(`the policy for ${path} names no approvers that can hold shares`);
  }
  return { holders, threshold: policy.threshold };
}

/** Say, before anything is typed, who will hold the shares of the item at the path given. */
async function preview() {
  const node = document.getElementById("policy-preview");
  const path = document.getElementById("item-path").value.trim();
  let pathOk = true;
  try {
    checkPath(path);
  } catch {
    pathOk = false;
  }
  if (!pathOk) {
    node.textContent = "";
    return;
  }
  try {
    const directory = await approver.directory();
    const { holders, threshold } = await holdersOf(path, directory);
    if (document.getElementById("item-path").value.trim() !== path) return;
    const names = holders.map((id) => directory.approvers.get(id).name).join(", ");
    node.textContent = `Shares go to ${names}; ${threshold} of ${holders.length} must approve each read.`;
  } catch (error) {
    node.textContent = `No store is possible at ${path}: ${describe(error)}`;
  }
}

async function store() {
  const path = checkPath(document.getElementById("item-path").value.trim());
  const values = {};
  for (const row of fields.querySelectorAll(".field-row")) {
    const name = checkFieldName(row.querySelector(".field-name").value.trim());
    if (Object.hasOwn(values, name)) throw new Error(`field ${name} is given twice`);
    values[name] = row.querySelector(".field-value").value;
  }
  if (Object.keys(values).length === 0) throw new Error("give at least one field");
  const directory = await approver.directory();
  const before = await latest(path, directory);
  // Advice from the relay: each named approver must be a verified member of the directory.
  const { holders, threshold } = await holdersOf(path, directory);
  const prev = before ? await manifestHash(before.token) : null;
  const upload = await approver.withKeys((keys) =>
    storeAsApprover({
      directory,
      approverId: keys.id,
      signingKey: keys.sig,
      item: before ? before.item : newId(KIND.item),
      path,
      version: before ? before.manifest.version + 1 : 1,
      prev,
      values,
      approvers: holders,
      threshold,
      now: approver.now(),
    }),
  );
  const b64 = (map) => Object.fromEntries(Object.entries(map).map(([k, v]) => [k, api.b64u(v)]));
  const stored = await api.post("/items", {
    manifest: upload.manifest,
    ciphertexts: b64(upload.ciphertexts),
    wraps: Object.fromEntries(Object.entries(upload.wraps).map(([a, fs]) => [a, b64(fs)])),
  });
  for (const box of fields.querySelectorAll(".field-value")) box.value = "";
  status(`Stored ${stored.path} version ${stored.version}.`);
}

async function main() {
  if (!(await shell())) return;
  await approver.me();
  addField("password");
  document.getElementById("add-field").addEventListener("click", () => addField());
  const button = document.getElementById("store-button");
  document.getElementById("store-form").addEventListener("submit", (event) => event.preventDefault());
  action(button, store);
  document.getElementById("item-path").addEventListener("change", () => preview());
}

main().catch((error) => status(describe(error), { error: true }));
