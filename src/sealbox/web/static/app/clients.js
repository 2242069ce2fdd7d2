// The clients page: who holds a certificate, their grants; disable and enable, add and remove
// grants; people's roles in projects (set and revoked by signing a new certificate here).
// And the CI enrollments: make one (a delegation key made here, the statement signed
// with this approver's key after the passkey verifies the person; the token shown once and
// kept nowhere), list them with their uses, revoke one.
//
// Disabling and grants are the relay's to enforce (it refuses the client's calls at once, and
// a grant only lets a client ask: an approver still answers every request); they sign
// nothing, so the session's CSRF-checked call is enough.

import {
  ROLE_SCOPES,
  issueCertificate,
  issueEnrollment,
  memberScopes,
  verifyCertificate,
  verifyEnrollment,
} from "../sealbox/certificates.js";
import { enrollmentToken } from "../sealbox/enrollment_token.js";
import { generateSigningKey } from "../sealbox/keys.js";
import { KIND, newId } from "../sealbox/statements.js";
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

// --- CI enrollments ------------------------------------------------------------------------

const list = (text) => text.split(",").map((s) => s.trim()).filter(Boolean);

// The limits as typed, checked before anything is signed (as `sealbox ci enrollment create`).
function limitsFromForm() {
  const projects = list(document.getElementById("enroll-projects").value);
  const items = list(document.getElementById("enroll-items").value).map(checkPattern);
  if (!projects.length && !items.length) {
    throw new Error("Name the projects or items the machines may ask for.");
  }
  for (const item of items) {
    if (projects.length && !projects.includes(item.split("/")[0])) {
      throw new Error(`${item} is outside the projects ${projects.join(", ")}.`);
    }
  }
  const maxUses = Number(document.getElementById("enroll-max-uses").value);
  const days = Number(document.getElementById("enroll-days").value);
  if (!Number.isInteger(maxUses) || maxUses < 1) throw new Error("The number of runs is at least 1.");
  if (!Number.isInteger(days) || days < 1 || days > 366) throw new Error("It lasts 1 to 366 days.");
  const hostname = document.getElementById("enroll-hostname").value.trim();
  return {
    projects,
    items,
    max_uses: maxUses,
    not_after: approver.now() + days * 86400,
    cidrs: list(document.getElementById("enroll-cidrs").value),
    hostname: hostname || null,
  };
}

async function makeEnrollment() {
  const constraints = limitsFromForm();
  const directory = await approver.directory();
  // The delegation key is made here and leaves this page only inside the token.
  const delegation = await generateSigningKey({ extractable: true });
  const enrollment = newId(KIND.enrollment);
  const statement = await approver.withKeys((keys) =>
    issueEnrollment(directory, {
      issuer: keys.id, signingKey: keys.sig, enrollmentId: enrollment,
      delegationKey: delegation.publicKey(), constraints, now: approver.now(),
    }),
  );
  await api.post("/enrollments", { statement });
  const token = await enrollmentToken({
    server: document.getElementById("enroll-server").value.trim(),
    vault: directory.vault, fingerprint: directory.fingerprint, enrollment,
    signingKey: delegation,
  });
  document.getElementById("enroll-token-text").textContent = token;
  document.getElementById("enroll-token").hidden = false;
  status(`Enrollment ${enrollment} made: copy its token now.`);
  await refreshEnrollments();
}

// An enrollment: its limits from its statement, verified here against the directory; only
// its counts and revocation are the relay's word. Revoking signs nothing: the relay enforces it.
function enrollmentCard(enrollment, signed) {
  const active = !enrollment.revoked_at;
  const revoke = el("button", { type: "button", class: "danger", "aria-label": `Revoke enrollment ${enrollment.id}` }, "Revoke");
  action(revoke, async () => {
    const done = await api.post(`/enrollments/${encodeURIComponent(enrollment.id)}/revoke`);
    status(`Enrollment ${enrollment.id} revoked; ${done.machines_disabled ?? 0} machine(s) disabled.`);
    await Promise.all([refresh(), refreshEnrollments()]);
  });
  const any = (values) => (values?.length ? values.join(", ") : "any");
  const limits = signed?.constraints;
  const rows = signed
    ? [
        ["Made by", el("code", {}, signed.issuer)],
        ["Projects", any(limits.projects)],
        ["Items", any(limits.items)],
        ["Uses", `${enrollment.uses} of ${limits.max_uses}`],
        ["Networks", any(limits.cidrs)],
        ["Host names", limits.hostname ?? "any"],
        ["Until", when(limits.not_after)],
      ]
    : [["Statement", el("span", { class: "state error" }, "does not verify now (expired, or its approver was removed)")]];
  return el("article", { class: "card", "data-enrollment": enrollment.id },
    el("h3", {}, el("code", {}, enrollment.id)),
    facts([
      ...rows,
      ["Machines", String(enrollment.machines)],
      ["State", el("span", { class: active ? "state" : "state error" }, active ? "active" : "revoked")],
    ]),
    ...(active ? [revoke] : []));
}

async function refreshEnrollments() {
  const enrollments = (await api.get("/enrollments")).enrollments ?? [];
  const directory = enrollments.length ? await approver.directory() : null;
  const cards = await Promise.all(enrollments.map(async (enrollment) => {
    let signed = null;
    try {
      signed = await verifyEnrollment(enrollment.statement, directory, { now: approver.now() });
      if (signed.id !== enrollment.id) signed = null;
    } catch {
      signed = null;
    }
    return enrollmentCard(enrollment, signed);
  }));
  document.getElementById("enrollments").replaceChildren(...cards);
  return enrollments;
}

async function main() {
  if (!(await shell())) return;
  document.getElementById("enroll-server").value = location.origin;
  document.getElementById("enroll-form").addEventListener("submit", (event) => event.preventDefault());
  action(document.getElementById("enroll-button"), makeEnrollment);
  await refreshEnrollments();
  const clients = await refresh();
  if (!clients.length) status("No client yet: `sealbox login` asks for one.");
}

main().catch((error) => status(describe(error), { error: true }));
