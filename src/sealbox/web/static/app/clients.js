// The clients page: who holds a certificate, their grants; disable and enable, add and remove
// grants; people's roles in projects (set and revoked by signing a new certificate here).
//
// Disabling and grants are the relay's to enforce (it refuses the client's calls at once, and
// a grant only lets a client ask: an approver still answers every request); they sign
// nothing, so the session's CSRF-checked call is enough.

import { ROLE_SCOPES, issueCertificate, memberScopes, verifyCertificate } from "../sealbox/certificates.js";
import * as api from "./api.js";
import * as approver from "./approver.js";
import { action, describe, el, facts, shell, status, when } from "./ui.js";

const ROLES = Object.keys(ROLE_SCOPES);
const PROJECT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

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

// A person's roles (project -> roles), read from its certificate verified here against the
// directory this browser verified: never from what the relay says about it.
function rolesOf(cert) {
  const out = {};
  for (const scope of cert.scopes) {
    if (!scope.startsWith("role:")) continue;
    const [project, role] = scope.slice(5).split(":");
    (out[project] ??= []).push(role);
  }
  return out;
}

// Sign the person's same key again with the scopes of `roles` (same expiry and constraints:
// a role change neither lengthens nor widens its life), and have the relay replace it.
async function recertify(cert, roles) {
  const directory = await approver.directory();
  const certificate = await approver.withKeys((keys) =>
    issueCertificate(directory, {
      issuer: keys.id,
      signingKey: keys.sig,
      client: cert.client,
      scopes: memberScopes(roles),
      constraints: cert.constraints,
      now: Math.max(approver.now(), cert.at),
    }),
  );
  await api.call("PUT", api.vaultPath(`/clients/${encodeURIComponent(cert.client.id)}/certificate`), { certificate });
}

async function roleControls(client) {
  const served = await api.get(`/clients/${encodeURIComponent(client.id)}`);
  const cert = await verifyCertificate(served.certificate, await approver.directory(), { now: approver.now() });
  if (cert.client.id !== client.id) throw new Error("The relay served a certificate for another client.");
  const roles = rolesOf(cert);
  const label = `${client.name} (${client.id})`;
  const held = Object.keys(roles).sort();
  const list = held.length
    ? el("ul", { class: "roles" }, held.map((project) => {
        const revoke = el("button", { type: "button", class: "quiet", "aria-label": `Revoke ${label}'s roles in ${project}` }, "Revoke");
        action(revoke, async () => {
          const left = Object.fromEntries(Object.entries(roles).filter(([p]) => p !== project));
          await recertify(cert, left);
          if (Object.keys(left).length === 0 && !client.disabled) {
            await api.post(`/clients/${encodeURIComponent(client.id)}/disable`);
            status(`${client.name} holds no role any more and is disabled.`);
          } else {
            status(`${client.name} no longer holds a role in ${project}.`);
          }
          await refresh();
        });
        return el("li", {}, el("code", {}, project), `: ${roles[project].sort().join(", ")} `, revoke);
      }))
    : el("span", {}, "none");
  const projectId = `role-project-${client.id}`;
  const roleId = `role-name-${client.id}`;
  const project = el("input", { id: projectId, autocomplete: "off", maxlength: "64", placeholder: "shop" });
  const role = el("select", { id: roleId }, ROLES.map((name) => el("option", { value: name }, name)));
  const set = el("button", { type: "button", class: "quiet", "aria-label": `Set ${label}'s role` }, "Set role");
  action(set, async () => {
    const name = project.value.trim();
    if (!PROJECT.test(name)) throw new Error("A project is letters, digits, '.', '_' or '-' (no '/').");
    await recertify(cert, { ...roles, [name]: [role.value] });
    status(`${client.name} is now ${role.value} of ${name}.`);
    await refresh();
  });
  return {
    fact: ["Roles", list],
    controls: [
      el("label", { for: projectId }, `Project to give ${client.name} a role in`),
      project,
      el("label", { for: roleId }, "Role (no role reads a value: reading is always a release)"),
      role,
      set,
    ],
  };
}

async function card(client) {
  const grants = (await api.get(`/clients/${encodeURIComponent(client.id)}/grants`)).grants ?? [];
  // People are members of projects with roles; machines and agents are not.
  let members = null;
  if (client.kind === "human") {
    try {
      members = await roleControls(client);
    } catch (error) {
      // A certificate that does not verify here gives no role, whatever the relay says.
      members = { fact: ["Roles", el("span", { class: "error" }, `none (${describe(error)})`)], controls: [] };
    }
  }
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
      ...(members ? [members.fact] : []),
    ]),
    el("label", { for: inputId }, `Let ${client.name} ask for (project/environment/item glob)`),
    input, add, ...(members ? members.controls : []), toggle);
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
