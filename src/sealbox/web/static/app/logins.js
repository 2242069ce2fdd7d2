// The logins page: approve a `sealbox login`, or a machine's `sealbox machine register`, by
// certifying its key.
//
// The person compares two things with the terminal: the user (or registration) code, and the
// key's safety code, computed here from the key the relay lists (never taken from the relay as
// text). Only when the typed code matches does approving sign a client certificate for that key.
// A machine's certificate says kind "machine" and carries the scopes its bootstrap token asked
// for plus one items: scope per asked pattern, so the certificate itself limits what it may ask.

import { certifyLogin, issueCertificate, loginScopes } from "../sealbox/certificates.js";
import { parseVerifyKey } from "../sealbox/keys.js";
import { SealboxError } from "../sealbox/errors.js";
import { KIND, checkId } from "../sealbox/statements.js";
import * as api from "./api.js";
import * as approver from "./approver.js";
import { action, describe, el, facts, shell, status, when } from "./ui.js";

const codeInput = document.getElementById("user-code");
const list = document.getElementById("logins");
const empty = document.getElementById("empty");
const machineList = document.getElementById("machines");
const noMachines = document.getElementById("no-machines");
const MACHINE_DAYS = 90;

const normal = (code) => String(code).toUpperCase().replace(/[^A-Z]/g, "");

// The login URL and QR code lead here with the user code. It only marks that login: the code
// is still typed from the person's terminal, so a link someone else sent ("please approve
// my login") is never one click away from certifying their key (RFC 8628 §5.4).
const fromLink = new URLSearchParams(location.search).get("user_code") ?? "";

async function card(login) {
  const key = parseVerifyKey(login.sig_pk);
  const code = String(login.user_code);
  // A login started with an invite is certified with exactly the invite's role (the relay
  // refuses any other certificate for it); its project is its grant, so none is asked for.
  const invited = login.role != null ? loginScopes(login) : null;
  const grantId = `grant-${normal(code)}`;
  const grant = el("input", { id: grantId, type: "text", value: "*/*/*", autocomplete: "off" });
  const approve = el("button", { type: "button", "aria-label": `Approve login ${code}` }, "Approve");
  const deny = el("button", { type: "button", class: "danger", "aria-label": `Deny login ${code}` }, "Deny");
  const linked = fromLink !== "" && normal(fromLink) === normal(code);
  const node = el(
    "article",
    { class: linked ? "card from-link" : "card", "data-user-code": code },
    linked ? el("p", { class: "note" }, "The link you opened is for this login.") : null,
    el("h2", {}, `Login ${code}`),
    facts([
      ["User code", el("strong", { class: "code" }, code)],
      ["Key safety code", el("strong", { class: "code" }, await key.safetyCode())],
      ["Key fingerprint", el("code", {}, await key.fingerprint())],
      ["Name (as the client gave it)", String(login.client_name ?? "")],
      ["Client id", String(login.client_id ?? "")],
      ["Expires", typeof login.expires_at === "number" ? when(login.expires_at) : "-"],
      ...(invited
        ? [
            ["Invited as", el("strong", {}, `${login.role} of project ${login.project}`)],
            ["Scopes it will get", invited.join(" ")],
          ]
        : []),
    ]),
    invited ? null : el("label", { for: grantId }, "Items this person may ask for (a glob, or 'none')"),
    invited ? null : grant,
    el("div", { class: "actions" }, approve, deny),
  );
  action(approve, async () => {
    if (normal(codeInput.value) !== normal(code)) {
      status("Type the user code the person's terminal shows, above: it does not match this login.", { error: true });
      codeInput.focus();
      return;
    }
    const directory = await approver.directory();
    const certificate = await approver.withKeys((keys) =>
      certifyLogin(directory, login, { issuer: keys.id, signingKey: keys.sig, now: approver.now() }),
    );
    await api.post(`/device-requests/${encodeURIComponent(code)}/approve`, { certificate });
    const pattern = invited ? "none" : grant.value.trim();
    if (pattern && pattern !== "none") {
      await api.post(`/clients/${encodeURIComponent(login.client_id)}/grants`, { pattern });
    }
    status(`Login ${code} approved.`);
    await refresh();
  });
  action(deny, async () => {
    await api.post(`/device-requests/${encodeURIComponent(code)}/deny`);
    status(`Login ${code} denied.`);
    await refresh();
  });
  return node;
}

// What a waiting machine asks to have certified. Nothing here is trusted: the id and key are
// read strictly, the name is cut to what a certificate holds, and the patterns become items:
// scopes that the certificate parser checks again.
function machineCertificate(directory, entry, { issuer, signingKey, now }) {
  const client = Object.freeze({
    id: checkId(entry?.client_id, KIND.client, "client id"),
    kind: "machine",
    name: [...String(entry?.name)].slice(0, 128).join(""),
    sig_pk: parseVerifyKey(entry?.sig_pk),
  });
  // Only read and write come from the relay's listing: an items: scope slipped in there would
  // widen the item limits shown, and a role: scope is no machine's (approver/machines.py).
  const access = entry?.scopes ?? [];
  if (!access.every((s) => s === "read" || s === "write")) {
    throw new SealboxError("malformed", "a machine's access scopes are read and write only");
  }
  const scopes = [...access, ...(entry?.grants ?? []).map((g) => `items:${g}`)];
  return issueCertificate(directory, {
    issuer,
    signingKey,
    client,
    scopes,
    constraints: { not_after: now + MACHINE_DAYS * 86400, cidrs: [], hostname: null },
    now,
  });
}

async function machineCard(entry) {
  const key = parseVerifyKey(entry.sig_pk);
  const code = String(entry.user_code);
  const asks = `${(entry.grants ?? []).join(", ")} (${(entry.scopes ?? []).join(", ")})`;
  const approve = el("button", { type: "button", "aria-label": `Approve machine ${code}` }, "Approve");
  const deny = el("button", { type: "button", class: "danger", "aria-label": `Deny machine ${code}` }, "Deny");
  const node = el(
    "article",
    { class: "card", "data-registration-code": code },
    el("h2", {}, `Machine ${code}`),
    facts([
      ["Registration code", el("strong", { class: "code" }, code)],
      ["Key safety code", el("strong", { class: "code" }, await key.safetyCode())],
      ["Key fingerprint", el("code", {}, await key.fingerprint())],
      ["Name (as the machine gave it)", String(entry.name ?? "")],
      ["Token made for", String(entry.token_name ?? "")],
      ["Asks for", asks],
      ["Client id", String(entry.client_id ?? "")],
      ["Source IP (reported by server, not verified)", String(entry.reported_by_server?.source_ip ?? "-")],
      ["Expires", typeof entry.expires_at === "number" ? when(entry.expires_at) : "-"],
    ]),
    el("div", { class: "actions" }, approve, deny),
  );
  action(approve, async () => {
    if (normal(codeInput.value) !== normal(code)) {
      status("Type the registration code the machine shows, above: it does not match this machine.", { error: true });
      codeInput.focus();
      return;
    }
    const directory = await approver.directory();
    const certificate = await approver.withKeys((keys) =>
      machineCertificate(directory, entry, { issuer: keys.id, signingKey: keys.sig, now: approver.now() }),
    );
    await api.post(`/machine-registrations/${encodeURIComponent(entry.client_id)}/approve`, { certificate });
    status(`Machine ${code} approved.`);
    await refresh();
  });
  action(deny, async () => {
    await api.post(`/machine-registrations/${encodeURIComponent(entry.client_id)}/deny`);
    status(`Machine ${code} denied.`);
    await refresh();
  });
  return node;
}

async function refresh() {
  const logins = (await api.get("/device-requests")).device_requests ?? [];
  list.replaceChildren(...(await Promise.all(logins.map(card))));
  empty.hidden = logins.length > 0;
  const waiting = (await api.get("/machine-registrations")).machine_registrations ?? [];
  machineList.replaceChildren(...(await Promise.all(waiting.map(machineCard))));
  noMachines.hidden = waiting.length > 0;
}

// An invite: the relay makes the one-time code and keeps only its hash; it is shown here once.
function inviting() {
  const section = document.getElementById("invite");
  const shown = document.getElementById("invite-code");
  section.hidden = false;
  action(document.getElementById("invite-button"), async () => {
    const project = document.getElementById("invite-project").value.trim();
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(project)) {
      throw new Error("A project is letters, digits, '.', '_' or '-' (no '/').");
    }
    const role = document.getElementById("invite-role").value;
    const hours = Number(document.getElementById("invite-hours").value);
    if (!Number.isInteger(hours) || hours < 1 || hours > 168) {
      throw new Error("An invite is valid for 1 to 168 hours.");
    }
    const made = await api.post("/invites", { project, role, expires_seconds: hours * 3600 });
    shown.textContent = `sealbox login --server ${made.server} --invite ${made.code}`;
    shown.hidden = false;
    status(`Invite to ${made.project} as ${made.role} made, valid until ${when(made.expires_at)}: give it privately.`);
  });
}

// A bootstrap token, made by this approver's console session: shown once, with the two ways
// to use it (the command trusts nothing; the served script trusts the relay).
const tokenForm = document.getElementById("token-form");
tokenForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = document.getElementById("make-token");
  button.disabled = true;
  try {
    const grants = document.getElementById("machine-grants").value.split(/\s+/).filter(Boolean);
    const scopes = document.getElementById("machine-write").checked ? ["read", "write"] : ["read"];
    const made = await api.post("/bootstrap-tokens", {
      name: document.getElementById("machine-name").value.trim(),
      grants,
      scopes,
    });
    document.getElementById("token-value").textContent = made.token;
    document.getElementById("token-register").textContent =
      `SEALBOX_BOOTSTRAP_TOKEN=${made.token} sealbox machine register --server ${made.server}`;
    document.getElementById("token-script").textContent = `curl -sSL '${made.script_url}' | sh`;
    document.getElementById("token-made").hidden = false;
    status(`Token made for ${made.name}; it expires ${when(made.expires_at)}.`);
  } catch (error) {
    status(describe(error), { error: true });
  } finally {
    button.disabled = false;
  }
});

async function main() {
  if (!(await shell())) return;
  await approver.me();
  inviting();
  await refresh();
  const stream = new EventSource(api.vaultPath("/approvals/stream"));
  stream.addEventListener("device-requests", () => refresh().catch((e) => status(describe(e), { error: true })));
}

main().catch((error) => status(describe(error), { error: true }));
