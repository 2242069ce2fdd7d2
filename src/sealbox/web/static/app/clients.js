// The clients page: who holds a certificate, their grants; disable and enable.
//
// Disabling is the relay's to enforce (it refuses the client's calls at once); it signs
// nothing, so the session's CSRF-checked call is enough.

import * as api from "./api.js";
import { action, describe, el, shell, status } from "./ui.js";

async function row(client) {
  const grants = (await api.get(`/clients/${encodeURIComponent(client.id)}/grants`)).grants ?? [];
  const enabled = !client.disabled;
  const toggle = el(
    "button",
    { type: "button", class: enabled ? "danger" : "", "aria-label": `${enabled ? "Disable" : "Enable"} ${client.name} (${client.id})` },
    enabled ? "Disable" : "Enable",
  );
  action(toggle, async () => {
    await api.post(`/clients/${encodeURIComponent(client.id)}/${enabled ? "disable" : "enable"}`);
    status(`${client.name} ${enabled ? "disabled" : "enabled"}.`);
    await refresh();
  });
  const patterns = grants.map((g) => (typeof g === "string" ? g : g.pattern)).join(", ") || "none";
  return el("tr", {}, el("td", {}, client.name), el("td", {}, client.kind), el("td", {}, el("code", {}, client.id)),
    el("td", {}, enabled ? "enabled" : "disabled"), el("td", {}, patterns), el("td", {}, toggle));
}

async function refresh() {
  const clients = (await api.get("/clients")).clients ?? [];
  document.querySelector("#clients tbody").replaceChildren(...(await Promise.all(clients.map(row))));
}

async function main() {
  if (!(await shell())) return;
  await refresh();
}

main().catch((error) => status(describe(error), { error: true }));
