// The approvers page: the directory as verified here, pairing a new device with codes, and the
// synced tier's export.
//
// Adding a device signs a directory link with this approver's key. The pairing code is
// computed here from the record the relay lists and is never shown: the person types what
// the new device shows, so a relay that swapped a key cannot get a match by copying a code.

import { appendLink, pairingCode, vaultSafetyCode } from "../sealbox/directory.js";
import { readApproverRecord } from "../sealbox/statements.js";
import { blobsFromWire, removalAction, resealAsApprover, verifyManifest } from "../sealbox/store.js";
import * as api from "./api.js";
import * as approver from "./approver.js";
import { action, describe, el, shell, status } from "./ui.js";

const digitsOnly = (text) => String(text).replace(/\s/g, "");

/** Every item's latest verified manifest with what removing `target` does to it. */
async function planRemoval(directory, target, selfId) {
  const plans = [];
  for (const item of (await api.get("/items")).items ?? []) {
    const history = await api.get(`/items/${encodeURIComponent(item.id)}/versions`);
    const token = history.versions.at(-1).manifest;
    const manifest = await verifyManifest(token, directory);
    plans.push({ token, manifest, action: removalAction(manifest, { directory, target, approverId: selfId }) });
  }
  return plans;
}

/**
 * Remove `record` from the directory, then store again (for the remaining holders) every
 * 1-of-N item this approver can open alone, as `sealbox approver remove` does: all with one
 * use of the passkey. An item that would keep fewer holders than its threshold is never
 * removed from under its readers: the removal is refused.
 */
async function remove(record) {
  const self = await approver.me();
  const directory = await approver.directory();
  const plans = await planRemoval(directory, record.id, self.approverId);
  const stranded = plans.filter((p) => p.action === "stranded").map((p) => p.manifest.path);
  if (stranded.length) {
    throw new Error(
      `Removing ${record.name} would leave ${stranded.join(", ")} with fewer holders than ` +
        "their threshold: they could never be read again. Store them for other approvers first.",
    );
  }
  const resealed = plans.filter((p) => p.action === "reseal").length;
  if (!window.confirm(`Remove ${record.name} (${record.id}) from the approvers? ` +
      `${resealed} item(s) will be stored again for the remaining holders.`)) {
    status("Nothing was removed.");
    return;
  }
  const done = [];
  await approver.withKeys(async (keys) => {
    const link = await appendLink(directory, "remove", record, keys.sig, keys.id, { now: approver.now() });
    await api.post("/directory", { link });
    done.push(`removed ${record.name}`);
    const after = await approver.directory();
    for (const plan of plans.filter((p) => p.action === "reseal")) {
      const m = plan.manifest;
      const at = `/items/${encodeURIComponent(m.item)}/versions/${m.version}`;
      const wraps = (await api.get(`${at}/wraps/${encodeURIComponent(keys.id)}`)).wraps;
      const ciphertexts = (await api.get(`${at}/ciphertexts`)).ciphertexts;
      const upload = await resealAsApprover({
        manifest: plan.token, directory: after, approverId: keys.id, hpkePrivate: keys.hpke,
        signingKey: keys.sig, wraps: blobsFromWire(wraps, "wraps"),
        ciphertexts: blobsFromWire(ciphertexts, "ciphertexts"), now: approver.now(),
      });
      const b64 = (map) => Object.fromEntries(Object.entries(map).map(([k, v]) => [k, api.b64u(v)]));
      await api.post("/items", {
        manifest: upload.manifest,
        ciphertexts: b64(upload.ciphertexts),
        wraps: Object.fromEntries(Object.entries(upload.wraps).map(([a, fs]) => [a, b64(fs)])),
      });
      done.push(`re-sealed ${m.path} as version ${m.version + 1}`);
    }
  });
  const warned = plans.filter((p) => p.action === "warn").map((p) => p.manifest.path);
  if (warned.length) done.push(`still readable, but only another holder can re-seal: ${warned.join(", ")}`);
  status(`Done: ${done.join("; ")}.`);
  await refresh();
}

async function showDirectory() {
  const directory = await approver.directory();
  const self = await approver.me();
  document.getElementById("safety-code").textContent = await vaultSafetyCode(directory.link0);
  const rows = [...directory.approvers.values()].map((r) => {
    let control = el("span", { class: "note" }, r.id === self.approverId ? "this browser" : "");
    if (r.id !== self.approverId) {
      control = el("button", { type: "button", class: "danger", "aria-label": `Remove ${r.name}` }, "Remove");
      action(control, () => remove(r));
    }
    return el("tr", {}, el("td", {}, r.name), el("td", {}, r.kind), el("td", {}, r.tier),
      el("td", {}, el("code", {}, r.id)), el("td", {}, control));
  });
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
