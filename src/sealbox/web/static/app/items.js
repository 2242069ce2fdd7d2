// The items page: paths, versions and field names (never values), each version's manifest
// verified here against the directory.

import { peekHeader } from "../sealbox/jws.js";
import { manifestHash, verifyManifest } from "../sealbox/store.js";
import * as api from "./api.js";
import * as approver from "./approver.js";
import { action, describe, el, shell, status, when } from "./ui.js";

let directory = null;

/**
 * Every version of `item`, each verified here: signed by a current approver, for this item
 * and this version, and chained to the version before (prev = that manifest's hash), so a
 * relay that swaps, reorders or drops a version shows it as not verifying.
 */
async function history(item) {
  const found = await api.get(`/items/${encodeURIComponent(item.id)}/versions`);
  const entries = [];
  let before = null;
  for (const version of found.versions) {
    try {
      const m = await verifyManifest(version.manifest, directory);
      if (m.item !== item.id || m.path !== item.path) {
        throw new Error(`the manifest is another item's (${m.path})`);
      }
      if (m.version !== version.version) {
        throw new Error(`the manifest is version ${m.version}, listed as ${version.version}`);
      }
      const expected = before === null ? null : await manifestHash(before);
      if (m.prev !== expected) {
        throw new Error(m.version === 1 ? "version 1 names a previous version" : "it does not follow the version before");
      }
      const text = `v${m.version} · fields ${Object.keys(m.fields).join(", ")} · ${m.keyset.threshold} of ${m.keyset.approvers.length} approvers · signed by ${signer(version.manifest)} ${when(m.at)}`;
      entries.push(el("li", { "data-version": version.version }, el("span", { class: "verified" }, "verified"), " ", text));
    } catch (error) {
      entries.push(el("li", { class: "error", "data-version": version.version }, `v${version.version}: does not verify (${describe(error)})`));
    }
    before = version.manifest;
  }
  document.getElementById("history-path").textContent = item.path;
  document.getElementById("versions").replaceChildren(...entries);
  document.getElementById("history").hidden = false;
}

/** The name of a verified manifest's signer, from the verified directory. */
function signer(token) {
  const kid = peekHeader(token).kid;
  return directory.approvers.get(kid)?.name ?? kid;
}

async function main() {
  if (!(await shell())) return;
  directory = await approver.directory();
  const items = (await api.get("/items")).items ?? [];
  const rows = [];
  for (const item of items) {
    const button = el("button", { type: "button", class: "quiet", "aria-label": `History of ${item.path}` }, "History");
    action(button, () => history(item));
    // The type only when it is not a plain secret: three columns fit a phone.
    rows.push(el("tr", { "data-path": item.path }, el("td", {}, el("code", {}, item.path),
      item.type === "secret" ? null : ` (${item.type})`), el("td", {}, String(item.latest_version)),
      el("td", {}, button)));
  }
  document.querySelector("#items tbody").replaceChildren(...rows);
  if (!items.length) status("No items yet: store one from the Store page or with `sealbox store`.");
}

main().catch((error) => status(describe(error), { error: true }));
