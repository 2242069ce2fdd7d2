// The agents page: approve or deny an agent a person asked for, and disable, enable or
// revoke agents.
//
// Approving signs a certificate (kind agent) for exactly the key the relay lists, with the
// scopes the person asked for; the person compares the key's safety code, computed here from
// the key itself (never taken from the relay as text), with the one `sealbox agent create`
// printed.  Disabling, enabling and revoking sign nothing: the relay enforces them at once.

import { certifyAgent } from "../sealbox/certificates.js";
import { parseVerifyKey } from "../sealbox/keys.js";
import * as api from "./api.js";
import * as approver from "./approver.js";
import { action, describe, el, facts, shell, status, when } from "./ui.js";

const requests = document.getElementById("requests");
const all = document.getElementById("agents");
const empty = document.getElementById("empty");

const ITEMS = "items:";
const itemsOf = (scopes) => scopes.filter((s) => s.startsWith(ITEMS)).map((s) => s.slice(ITEMS.length));
const plainOf = (scopes) => scopes.filter((s) => !s.startsWith(ITEMS));

async function requestCard(request) {
  const key = parseVerifyKey(request.sig_pk);
  const scopes = Array.isArray(request.scopes) ? request.scopes.map(String) : [];
  const items = itemsOf(scopes);
  const label = `${request.name} (${request.client_id})`;
  const grantId = `grant-${request.client_id}`;
  const grant = el("input", { id: grantId, type: "text", autocomplete: "off", value: items.join(",") || "*/*/*" });
  const approve = el("button", { type: "button", "aria-label": `Approve agent ${label}` }, "Approve");
  const deny = el("button", { type: "button", class: "danger", "aria-label": `Deny agent ${label}` }, "Deny");
  action(approve, async () => {
    const directory = await approver.directory();
    const certificate = await approver.withKeys((keys) =>
      certifyAgent(directory, request, { issuer: keys.id, signingKey: keys.sig, now: approver.now() }),
    );
    const id = encodeURIComponent(request.client_id);
    await api.post(`/agent-requests/${id}/approve`, { certificate });
    const patterns = grant.value.trim() === "none" ? []
      : grant.value.split(",").map((p) => p.trim()).filter(Boolean);
    for (const pattern of patterns) await api.post(`/clients/${id}/grants`, { pattern });
    status(`Agent ${request.name} approved.`);
    await refresh();
  });
  action(deny, async () => {
    await api.post(`/agent-requests/${encodeURIComponent(request.client_id)}/deny`);
    status(`Agent ${request.name} denied.`);
    await refresh();
  });
  return el("article", { class: "card", "data-agent-request": request.client_id },
    el("h2", {}, String(request.name)),
    facts([
      ["Key safety code", el("strong", { class: "code" }, await key.safetyCode())],
      ["Key fingerprint", el("code", {}, await key.fingerprint())],
      ["Asked by (as the relay reports)", `${request.requested_by_name} (${request.requested_by})`],
      ["Scopes", plainOf(scopes).join(", ")],
      ["Items", items.join(", ") || "any its grants allow"],
      ["Client secret", request.client_secret ? "yes (only its hash is at the relay)" : "no"],
      ["Client id", el("code", {}, String(request.client_id))],
      ["Expires", typeof request.expires_at === "number" ? when(request.expires_at) : "-"],
    ]),
    el("label", { for: grantId }, "Items this agent may ask for (globs, comma-separated, or 'none')"),
    grant,
    el("div", { class: "actions" }, approve, deny));
}

function agentCard(agent) {
  const label = `${agent.name} (${agent.client_id})`;
  const id = encodeURIComponent(agent.client_id);
  const buttons = [];
  if (agent.state === "active" || agent.state === "disabled") {
    const enabled = agent.state === "active";
    const toggle = el("button", { type: "button", class: enabled ? "danger" : "", "aria-label": `${enabled ? "Disable" : "Enable"} agent ${label}` },
      enabled ? "Disable" : "Enable");
    action(toggle, async () => {
      await api.post(`/clients/${id}/${enabled ? "disable" : "enable"}`);
      status(`${agent.name} ${enabled ? "disabled" : "enabled"}.`);
      await refresh();
    });
    const revoke = el("button", { type: "button", class: "danger", "aria-label": `Revoke agent ${label} for good` }, "Revoke");
    action(revoke, async () => {
      if (!window.confirm(`Revoke ${agent.name} for good? It can never be enabled again.`)) return;
      await api.post(`/agents/${id}/revoke`);
      status(`${agent.name} revoked.`);
      await refresh();
    });
    buttons.push(toggle, revoke);
  }
  const bad = agent.state !== "active" && agent.state !== "pending";
  return el("article", { class: "card", "data-agent": agent.client_id },
    el("h2", {}, String(agent.name)),
    facts([
      ["State", el("span", { class: bad ? "state error" : "state" }, String(agent.state))],
      ["Scopes", agent.scopes.map(String).join(", ")],
      ["Client secret", agent.client_secret ? "yes" : "no"],
      ["Asked by", el("code", {}, String(agent.requested_by))],
      ["Key fingerprint", el("code", {}, String(agent.key_fingerprint))],
      ["Client id", el("code", {}, String(agent.client_id))],
      ["Since", when(agent.created_at)],
    ]),
    buttons.length ? el("div", { class: "actions" }, ...buttons) : null);
}

async function refresh() {
  const waiting = (await api.get("/agent-requests")).agent_requests ?? [];
  requests.replaceChildren(...(await Promise.all(waiting.map(requestCard))));
  empty.hidden = waiting.length > 0;
  const agents = (await api.get("/agents")).agents ?? [];
  all.replaceChildren(...agents.map(agentCard));
}

async function main() {
  if (!(await shell())) return;
  await approver.me();
  await refresh();
  const stream = new EventSource(api.vaultPath("/approvals/stream"));
  stream.addEventListener("agent-requests", () => refresh().catch((e) => status(describe(e), { error: true })));
}

main().catch((error) => status(describe(error), { error: true }));
