// The items page: paths, versions and field names (never values), each version's manifest
// verified here against the directory.

import { verifyManifest } from "../sealbox/store.js";
import * as api from "./api.js";
import * as approver from "./approver.js";
import { action, describe, el, shell, status, when } from "./ui.js";

let directory = null;

async function history(item) {
  const found = await api.get(`/items/${encodeURIComponent(item.id)}/versions`);
  const entries = [];
  for (const version of found.versions) {
    let text;
    try {
      const m = await verifyManifest(version.manifest, directory);
      if (m.item !== item.id || m.version !== version.version) throw new Error("another item's manifest");
      text = `v${m.version} · ${Object.keys(m.fields).join(", ")} · ${m.keyset.threshold} of ${m.keyset.approvers.length} · signed ${when(m.at)}`;
      entries.push(el("li", {}, el("span", { class: "verified" }, "verified"), " ", text));
    } catch (error) {
      entries.push(el("li", { class: "error" }, `v${version.version}: does not verify (${describe(error)})`));
    }
  }
  document.getElementById("history-path").textContent = item.path;
  document.getElementById("versions").replaceChildren(...entries);
  document.getElementById("history").hidden = false;
}

async function main() {
  if (!(await shell())) return;
  directory = await approver.directory();
  const items = (await api.get("/items")).items ?? [];
  const rows = [];
  for (const item of items) {
    const button = el("button", { type: "button", class: "quiet", "aria-label": `History of ${item.path}` }, "History");
    action(button, () => history(item));
    rows.push(el("tr", {}, el("td", {}, el("code", {}, item.path)), el("td", {}, String(item.latest_version)),
      el("td", {}, item.type), el("td", {}, button)));
  }
  document.querySelector("#items tbody").replaceChildren(...rows);
  if (!items.length) status("No items yet: store one from the Store page or with `sealbox store`.");
}

main().catch((error) => status(describe(error), { error: true }));
