// The approvers page: the directory as verified here, pairing a new device with codes, and the
// synced tier's export.
//
// Adding a device signs a directory link with this approver's key. The pairing code is
// computed here from the record the relay lists and is never shown: the person types what
// the new device shows, so a relay that swapped a key cannot get a match by copying a code.

import { appendLink, pairingCode, vaultSafetyCode } from "../sealbox/directory.js";
import { readApproverRecord } from "../sealbox/statements.js";
import * as api from "./api.js";
import * as approver from "./approver.js";
import { action, describe, el, shell, status } from "./ui.js";

const digitsOnly = (text) => String(text).replace(/\s/g, "");

async function showDirectory() {
  const directory = await approver.directory();
  document.getElementById("safety-code").textContent = await vaultSafetyCode(directory.link0);
  const rows = [...directory.approvers.values()].map((r) =>
    el("tr", {}, el("td", {}, r.name), el("td", {}, r.kind), el("td", {}, r.tier), el("td", {}, el("code", {}, r.id))),
  );
  document.querySelector("#approvers tbody").replaceChildren(...rows);
  return directory;
}

async function pairingCard(entry) {
  let record;
  try {
    record = readApproverRecord(entry.approver);
  } catch (error) {
    return el("article", { class: "card unverifiable" }, el("p", {}, `A malformed pairing request was ignored (${describe(error)}).`));
  }
  const codeId = `pairing-code-${entry.id}`;
  const typed = el("input", { id: codeId, inputmode: "numeric", autocomplete: "off" });
  const add = el("button", { type: "button", "aria-label": `Add ${record.name} as an approver` }, "Add this device");
  const refuse = el("button", { type: "button", class: "danger" }, "Refuse");
  const card = el(
    "article",
    { class: "card", "data-pairing": entry.id },
    el("h2", {}, `New approver device: ${record.name}`),
    el("p", {}, `${record.kind}, ${record.tier} tier, ${record.id}`),
    el("p", { class: "reported" }, `reported by server: source address ${entry.reported_by_server?.source_ip ?? "-"}`),
    el("label", { for: codeId }, "Pairing code the new device shows"),
    typed,
    el("div", { class: "actions" }, add, refuse),
  );
  action(add, async () => {
    if (digitsOnly(typed.value) !== digitsOnly(await pairingCode(record))) {
      status("The codes differ: the device was NOT added (someone may have swapped its keys on the way).", { error: true });
      return;
    }
    const directory = await approver.directory();
    const link = await approver.withKeys((keys) =>
      appendLink(directory, "add", record, keys.sig, keys.id, { now: approver.now() }),
    );
    await api.post("/directory", { link });
    status(`Added ${record.name} (${record.id}).`);
    await refresh();
  });
  action(refuse, async () => {
    await api.post(`/pairing-requests/${encodeURIComponent(entry.id)}/deny`);
    status("Refused.");
    await refresh();
  });
  return card;
}

async function refresh() {
  await showDirectory();
  const waiting = (await api.get("/pairing-requests")).pairing_requests ?? [];
  document.getElementById("pairings").replaceChildren(...(await Promise.all(waiting.map(pairingCard))));
  document.getElementById("no-pairings").hidden = waiting.length > 0;
}

async function main() {
  if (!(await shell())) return;
  const mine = await approver.me();
  await refresh();
  if (mine.record.tier === "synced") {
    document.getElementById("export").hidden = false;
    action(document.getElementById("export-button"), async () => {
      // Still wrapped under the passkey: the file opens nothing without it.
      const { head, ...entry } = mine;
      const blob = new Blob([JSON.stringify(entry, null, 2)], { type: "application/json" });
      const link = el("a", { href: URL.createObjectURL(blob), download: `sealbox-approver-${mine.approverId}.json` });
      link.click();
      URL.revokeObjectURL(link.href);
      status("Export downloaded. It is useless without this approver's synced passkey.");
    });
  }
  const stream = new EventSource(api.vaultPath("/approvals/stream"));
  const again = () => refresh().catch((e) => status(describe(e), { error: true }));
  stream.addEventListener("pairing", again);
  stream.addEventListener("directory", again);
}

main().catch((error) => status(describe(error), { error: true }));
