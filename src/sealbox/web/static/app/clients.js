// The clients page: who holds a certificate, their grants; disable and enable, add and remove
// grants.
//
// Disabling and grants are the relay's to enforce (it refuses the client's calls at once, and
// a grant only lets a client ask: an approver still answers every request); they sign
// nothing, so the session's CSRF-checked call is enough.

import * as api from "./api.js";
import { action, describe, el, facts, shell, status, when } from "./ui.js";

// Three segments of letters, digits, '.', '_', '-', '*', '?' (as the relay's check_pattern).
const SEGMENT = /^[A-Za-z0-9._\-*?]+$/;

function checkPattern(pattern) {
  const parts = pattern.split("/");
  if (parts.length !== 3 || !parts.every((s) => SEGMENT.test(s)) || pattern.length > 200) {
    throw new Error("A grant is project/environment/item: letters, digits, '.', '_', '-', '*' or '?' in each part.");
  }
  return pattern;
}

function grantList(client, grants) {
  if (!grants.length) return el("span", {}, "none");
  return el("ul", { class: "grants" }, grants.map((pattern) => {
    const remove = el("button", { type: "button", class: "quiet", "aria-label": `Remove grant ${pattern} from ${client.name} (${client.id})` }, "Remove");
    action(remove, async () => {
      await api.call("DELETE", api.vaultPath(`/clients/${encodeURIComponent(client.id)}/grants?pattern=${encodeURIComponent(pattern)}`));
      status(`${client.name} may no longer ask for ${pattern}.`);
      await refresh();
    });
    return el("li", {}, el("code", {}, pattern), " ", remove);
  }));
}

async function card(client) {
  const grants = (await api.get(`/clients/${encodeURIComponent(client.id)}/grants`)).grants ?? [];
  const enabled = !client.disabled;
  const label = `${client.name} (${client.id})`;
  const toggle = el("button", { type: "button", class: enabled ? "danger" : "", "aria-label": `${enabled ? "Disable" : "Enable"} ${label}` },
    enabled ? "Disable" : "Enable");
  action(toggle, async () => {
    await api.post(`/clients/${encodeURIComponent(client.id)}/${enabled ? "disable" : "enable"}`);
    status(`${client.name} ${enabled ? "disabled" : "enabled"}.`);
    await refresh();
  });
  const inputId = `grant-${client.id}`;
  const input = el("input", { id: inputId, autocomplete: "off", maxlength: "200", placeholder: "app/prod/*" });
  const add = el("button", { type: "button", class: "quiet", "aria-label": `Add grant to ${label}` }, "Add grant");
  action(add, async () => {
    const pattern = checkPattern(input.value.trim());
    await api.post(`/clients/${encodeURIComponent(client.id)}/grants`, { pattern });
    status(`${client.name} may ask for ${pattern}.`);
    await refresh();
  });
  return el("article", { class: "card", "data-client": client.id },
    el("h2", {}, client.name),
    facts([
      ["Kind", client.kind],
      ["Id", el("code", {}, client.id)],
      ["Key fingerprint", el("code", {}, client.key_fingerprint)],
      ["Since", when(client.created_at)],
      ["State", el("span", { class: enabled ? "state" : "state error" }, enabled ? "enabled" : "disabled")],
      ["Grants", grantList(client, grants)],
    ]),
    el("label", { for: inputId }, `Let ${client.name} ask for (project/environment/item glob)`),
    input, add, toggle);
}

async function refresh() {
  const clients = (await api.get("/clients")).clients ?? [];
  const cards = await Promise.all(clients.map(card));
  document.getElementById("clients").replaceChildren(...cards);
  return clients;
}

async function main() {
  if (!(await shell())) return;
  const clients = await refresh();
  if (!clients.length) status("No client yet: `sealbox login` asks for one.");
}

main().catch((error) => status(describe(error), { error: true }));
