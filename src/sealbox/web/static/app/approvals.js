// The approvals page: pending requests, live, verified here, answered with statements signed
// here.
//
// Each request the relay lists is verified in this browser exactly as the terminal approver
// verifies it (certificate against the pinned directory, the client-signed statement, every
// manifest and wrap against its signed hash). Only verified facts are shown as such; what only
// the relay says (source address, how often this requester asked lately, when it arrived) is
// shown apart, as reported by server. A request that does not verify is shown as unverifiable,
// with no approve button.
//
// Consent requests (a client asking for consent to one action) are listed here too: the
// action and its details exactly as the client signed them, verified here, answered with a
// consent (or a deny) signed here.

import {
  denyRequest,
  isRefusable,
  refuseUnverifiable,
  releaseReviewed,
  reviewRequest,
} from "../sealbox/access.js";
import { answerConsent, consentDetailsHash, verifyConsentRequest } from "../sealbox/consent.js";
import { signManifest } from "../sealbox/store.js";
import { SealboxError } from "../sealbox/errors.js";
import * as api from "./api.js";
import * as approver from "./approver.js";
import { PolicyBreach, checkPolicies } from "./policycheck.js";
import { detailsText } from "./details.js";
import { recentText } from "./recent.js";
import { action, describe, el, facts, shell, status, when } from "./ui.js";

const list = document.getElementById("requests");
const empty = document.getElementById("empty");
/** id -> {card, review, entry}: cards stay while their request waits, so typing is never lost. */
const shown = new Map();
let directory = null;
let self = null;

function contextRows(context) {
  if (!context) return [];
  const argv = Array.isArray(context.argv) && context.argv.length ? context.argv.join(" ") : null;
  return [
    ["Host", context.host],
    ["User", context.user === null ? null : `${context.user} (uid ${context.uid ?? "-"})`],
    ["Program", context.exe],
    ["Program SHA-256", context.exe_sha256],
    ["Command line", argv],
    ["Working directory", context.cwd],
    ["Process", context.pid === null ? null : `${context.pid} (parent ${context.ppid ?? "-"})`],
    ["Agent session", context.agent_session],
  ].filter(([, value]) => value !== null && value !== undefined);
}

function approverName(id) {
  const record = directory?.approvers.get(id);
  return record ? `${record.name} (${id})` : id;
}

/** How far an M-of-N request is: counts only the relay keeps (each release it holds is signed,
 *  but this browser does not see them), so they are shown as reported by server. */
function progress(review) {
  const text = `${review.approvals} of ${review.threshold} approval${review.threshold > 1 ? "s" : ""}`;
  return el("p", { class: "progress" }, review.threshold > 1 ? `M-of-N: ${text}` : text);
}

/** The policy of each item: `signed` ones were verified here and held to this browser's clock,
 *  the others are only the relay's word. */
function policyRows(entry, checked, signed) {
  const served = entry.policies && typeof entry.policies === "object" ? entry.policies : {};
  return Object.entries(served).filter(([path]) => Boolean(checked?.get(path)?.signedBy) === signed).map(([path, reported]) => {
    // Signed: what the approver signed (verified here), never what the relay says beside it.
    const p = signed ? checked.get(path).policy : reported;
    const parts = [`${p.threshold} of ${(p.approvers ?? []).length}`];
    if (p.cosigner) parts.push(`co-signer ${approverName(String(p.cosigner))}`);
    if (Array.isArray(p.hours) && p.hours.length) parts.push(`hours ${p.hours.join("; ")}`);
    if (Array.isArray(p.cidrs) && p.cidrs.length) parts.push(`networks ${p.cidrs.join(", ")}`);
    if (p.max_reads) parts.push(`at most ${p.max_reads}`);
    if (typeof p.destroy_at === "number") parts.push(`destroyed ${when(p.destroy_at)}`);
    if (p.rotate_after) parts.push(`rotate after ${p.rotate_after}`);
    parts.push(signed ? `signed by ${approverName(checked.get(path).signedBy)}` : "not signed (no signed policy served)");
    return el("li", {}, `${path}: ${p.pattern ?? "default policy"}: ${parts.join(", ")}`);
  });
}

/** The warning on a read of canaries: nobody has a reason to read one. */
function canaryBanner(paths) {
  return el(
    "div",
    { class: "canary-banner", role: "alert" },
    el("strong", {}, `CANARY: this request reads ${paths.join(", ")}.`),
    el("p", {}, "Nobody has a reason to read a canary: whoever asks may have stolen access. " +
      "Approving gives it the decoy value; the relay then alerts (critical) and freezes the " +
      "project. Denying tells the reader it was caught."),
  );
}

/** Frozen projects, each with a button that lifts its freeze. */
async function showFrozen() {
  const box = document.getElementById("frozen");
  if (!box) return;
  const found = (await api.get("/projects/frozen")).frozen ?? [];
  box.replaceChildren(
    ...found.map((entry) => {
      const why = entry.cause === "canary"
        ? `a canary was released (request ${String(entry.request).slice(0, 12)})`
        : `frozen by ${approverName(entry.frozen_by)}${entry.reason ? `: ${entry.reason}` : ""}`;
      const lift = el("button", { type: "button", "aria-label": `Unfreeze ${entry.project}` }, "Unfreeze");
      action(lift, async () => {
        await api.post(`/projects/${encodeURIComponent(entry.project)}/unfreeze`);
        status(`Unfroze ${entry.project}: requests for its items are answered again.`);
        await showFrozen();
      });
      return el("p", { class: "warning", "data-project": entry.project },
        el("strong", {}, `${entry.project} is FROZEN`), ` since ${when(entry.frozen_at)}; ${why}. `, lift);
    }),
  );
}

function verifiedCard(entry, review) {
  const reading = review.kind === "access";
  const title = reading ? "Read request" : "Store request";
  const items = review.items.map(
    (item) =>
      `${item.path} v${item.version}: ${item.fields.join(", ")}` +
      (item.threshold > 1 ? ` (${item.threshold} of ${item.holders} approvers)` : ""),
  );
  const asked = reading && review.cacheSeconds ? `${review.cacheSeconds} s (${review.cacheScope})` : "no";
  const checked = policyChecks.get(review.id);
  const signedPolicies = policyRows(entry, checked, true);
  const reportedPolicies = policyRows(entry, checked, false);
  // The type comes from each approver-signed manifest verified above, never from the relay.
  const canaries = reading ? review.items.filter((item) => item.type === "canary").map((item) => item.path) : [];
  const card = el(
    "article",
    { class: canaries.length ? "card canary" : "card", "data-request": review.id, "aria-labelledby": `title-${review.id}` },
    el("h2", { id: `title-${review.id}` }, `${title} from ${review.clientName}`),
    ...(canaries.length ? [canaryBanner(canaries)] : []),
    el("p", {}, el("span", { class: "verified" }, "verified"), " signed by the client, certified by an approver"),
    facts([
      ["Client", `${review.clientName} (${review.clientKind}, ${review.clientId})`],
      review.enrolledBy
        ? ["Enrolled by", `${review.issuer} (approver ${approverName(review.enrolledBy)})`]
        : ["Certified by", approverName(review.issuer)],
      ["Scopes", review.scopes.join(", ")],
      ["Purpose", review.purpose],
      [reading ? "Items and fields" : "Item and fields", el("ul", {}, items.map((i) => el("li", {}, i)))],
      ...(reading ? [["Cache asked", asked]] : []),
      ...contextRows(review.context),
      ["Asked at", when(review.at)],
      ["Expires", when(review.expiresAt)],
      ...(signedPolicies.length ? [["Signed policy", el("ul", { class: "policies signed" }, signedPolicies)]] : []),
    ]),
    el(
      "div",
      { class: "reported-box" },
      el("p", { class: "reported" }, "reported by server (not verified)"),
      progress(review),
      facts([
        ["Source address", String(review.reportedByServer?.source_ip ?? "-")],
        ["This requester", recentText(review.reportedByServer?.recent)],
        ["Received", typeof entry.created_at === "number" ? when(entry.created_at) : "-"],
        ...(reportedPolicies.length ? [["Policy", el("ul", { class: "policies" }, reportedPolicies)]] : []),
      ]),
    ),
  );
  if (entry.answered) {
    card.append(el("p", { class: "note" }, "You have answered; waiting for other approvers."));
    return card;
  }
  const verb = reading ? "Approve" : "Approve and sign the manifest";
  const approve = el("button", { type: "button", "aria-label": `${verb}: ${title.toLowerCase()} from ${review.clientName}` }, verb);
  const reasonId = `reason-${review.id}`;
  const reason = el("input", { id: reasonId, type: "text", maxlength: "500", autocomplete: "off" });
  const deny = el(
    "button",
    { type: "button", class: "danger", "aria-label": `Deny: ${title.toLowerCase()} from ${review.clientName}` },
    "Deny",
  );
  card.append(
    el("div", { class: "actions" },
      approve,
      el("label", { for: reasonId }, "Reason for a denial (shown to the requester)"),
      reason,
      deny,
    ),
  );
  action(approve, () => answer(review.id, "approve"));
  action(deny, () => answer(review.id, "deny", reason.value.trim() || "denied in the console"));
  return card;
}


function consentCard(entry, review) {
  const s = review.statement;
  const cert = review.certificate;
  const client = cert.client;
  const card = el(
    "article",
    { class: "card consent", "data-request": review.id, "aria-labelledby": `title-${review.id}` },
    el("h2", { id: `title-${review.id}` }, `Consent to ${s.action} for ${client.name}`),
    el("p", {}, el("span", { class: "verified" }, "verified"), " signed by the client, certified by an approver"),
    facts([
      ["Client", `${client.name} (${client.kind}, ${client.id})`],
      ["Certified by", approverName(cert.issuer)],
      ["Action", s.action],
      ["Purpose", s.purpose],
      ["Details", el("pre", { class: "details", dir: "ltr" }, detailsText(s.details))],
      ["Details hash", review.detailsHash],
      ["Consent lasts", `${s.ttl} s once given, for this action and these details only`],
      ["Asked at", when(s.at)],
      ["Expires", when(s.exp)],
    ]),
    el(
      "div",
      { class: "reported-box" },
      el("p", { class: "reported" }, "reported by server (not verified)"),
      facts([
        ["Source address", String(entry.reported_by_server?.source_ip ?? "-")],
        ["This requester", recentText(entry.reported_by_server?.recent)],
        ["Received", typeof entry.created_at === "number" ? when(entry.created_at) : "-"],
      ]),
    ),
  );
  const consent = el(
    "button",
    { type: "button", "aria-label": `Consent: ${s.action} for ${client.name}` },
    "Consent",
  );
  const reasonId = `reason-${review.id}`;
  const reason = el("input", { id: reasonId, type: "text", maxlength: "500", autocomplete: "off" });
  const deny = el(
    "button",
    { type: "button", class: "danger", "aria-label": `Refuse consent: ${s.action} for ${client.name}` },
    "Refuse",
  );
  card.append(
    el("div", { class: "actions" },
      consent,
      el("label", { for: reasonId }, "Reason for a refusal (shown to the requester)"),
      reason,
      deny,
    ),
  );
  action(consent, () => answer(review.id, "consent"));
  action(deny, () => answer(review.id, "deny", reason.value.trim() || "refused in the console"));
  return card;
}

async function examineConsent(entry) {
  const verify = async (dir) => {
    const verified = await verifyConsentRequest(entry.statement, {
      directory: dir, certificate: entry.certificate, enrollment: entry.enrollment ?? null,
      now: approver.now(),
    });
    if (verified.hash !== `sha256:${entry.id}`) {
      throw new SealboxError("binding_mismatch", "the relay listed the consent request under another id");
    }
    return {
      ...verified,
      id: entry.id,
      kind: "consent",
      detailsHash: await consentDetailsHash(verified.statement.details),
    };
  };
  try {
    return { review: await verify(directory) };
  } catch (error) {
    if (!isRefusable(error)) throw error;
    directory = await approver.directory();
    try {
      return { review: await verify(directory) };
    } catch (again) {
      if (!isRefusable(again)) throw again;
      return { unverifiable: again };
    }
  }
}

function unverifiableCard(entry, error) {
  const id = typeof entry.id === "string" ? entry.id : "";
  const card = el(
    "article",
    { class: "card unverifiable", "data-request": id, "aria-labelledby": `title-${id}` },
    el("h2", { id: `title-${id}` }, "This request does not verify"),
    el(
      "p",
      {},
      `Check failed: ${error.code}. ${error.message}. What the relay shows is not what the client ` +
        "signed, or not what an approver signed: the relay, or something between the client and " +
        "the relay, may be tampering. It cannot be approved.",
    ),
    el("p", { class: "reported" }, `reported by server: ${entry.kind ?? "?"} request ${id}`),
  );
  const refuse = el(
    "button",
    { type: "button", class: "danger", "aria-label": `Refuse unverifiable request ${id}` },
    "Refuse it (signed, tells the client at once)",
  );
  card.append(refuse);
  action(refuse, () => answer(id, "refuse", error.code));
  return card;
}

// request id -> its items' policies as checked here (policycheck.js).
const policyChecks = new Map();

async function examine(entry) {
  const review = async (dir) => {
    const now = approver.now();
    const verified = await reviewRequest(entry, { directory: dir, approverId: self.approverId, hpkePrivate: null, now });
    policyChecks.set(verified.id, await checkPolicies(entry, verified.items.map((i) => i.path), dir, now));
    return verified;
  };
  try {
    return await examineWith(review);
  } catch (error) {
    // A request the signed policy forbids: the relay should have refused it.
    if (error instanceof PolicyBreach) return { unverifiable: error };
    throw error;
  }
}

async function examineWith(review) {
  try {
    return { review: await review(directory) };
  } catch (error) {
    if (!isRefusable(error)) throw error;
    // Perhaps signed by an approver added a moment ago: look again with a fresh directory.
    directory = await approver.directory();
    try {
      return { review: await review(directory) };
    } catch (again) {
      if (!isRefusable(again)) throw again;
      return { unverifiable: again };
    }
  }
}

async function answer(id, what, detail) {
  const current = shown.get(id);
  if (!current) return;
  const fresh = await approver.directory();
  let sent;
  await approver.withKeys(async (keys) => {
    const common = { directory: fresh, approverId: keys.id, signingKey: keys.sig, now: approver.now() };
    if (what === "refuse") {
      const deny = await refuseUnverifiable({ requestId: id, code: detail, ...common });
      sent = await api.post(`/${current.entry.kind}-requests/${id}/deny`, { deny });
    } else if (what === "deny") {
      const deny = await denyRequest({ requestId: id, reason: detail, ...common });
      sent = await api.post(`/${current.review.kind}-requests/${id}/deny`, { deny });
    } else if (what === "consent") {
      // Checked again against the directory of this moment, then signed for exactly it.
      const verified = await verifyConsentRequest(current.entry.statement, {
        directory: fresh, certificate: current.entry.certificate,
        enrollment: current.entry.enrollment ?? null, now: common.now,
      });
      const consent = await answerConsent(verified, common);
      sent = await api.post(`/consent-requests/${id}/consent`, { consent });
    } else if (current.review.kind === "access") {
      // Checked again against the directory of this moment: the card may have been drawn
      // before an approver (perhaps the client's certifier) left.
      const review = await reviewRequest(current.entry, {
        directory: fresh, approverId: keys.id, hpkePrivate: null, now: common.now,
      });
      // The signed policies are checked again at this moment: a card drawn inside a window
      // or before a destroy date is not released after it (throws PolicyBreach).
      await checkPolicies(current.entry, review.items.map((i) => i.path), fresh, common.now);
      const release = await releaseReviewed(review, { ...common, hpkePrivate: keys.hpke });
      sent = await api.post(`/access-requests/${id}/release`, { release });
    } else {
      // A store is checked again with this approver's key: its own shares must open and
      // decrypt the fields before it signs anything.
      const full = await reviewRequest(current.entry, {
        directory: fresh, approverId: keys.id, hpkePrivate: keys.hpke, now: common.now,
      });
      const manifest = await signManifest(full.store, common);
      sent = await api.post(`/store-requests/${id}/manifest`, { manifest });
    }
  });
  const words = { approve: "Approved", deny: "Denied", refuse: "Refused", consent: "Consented" }[what];
  status(`${words}: request ${id}${sent?.state ? ` is now ${sent.state}` : ""}.`);
  await refresh();
}

let notified = new Set();

function announce(entry) {
  if (notified.has(entry.id)) return;
  notified.add(entry.id);
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  // Names only: a notification never carries a value, and the relay's listing is not trusted
  // beyond "something waits".
  new Notification("sealbox: a request waits for you", {
    body: `${{ store: "Store", consent: "Consent" }[entry.kind] ?? "Read"} request; open the console to check it.`,
    tag: `sealbox-${entry.id}`,
  });
}

let refreshing = null;

async function refresh() {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    const listed = (await api.get("/approvals")).requests ?? [];
    showFrozen().catch((error) => status(describe(error), { error: true }));
    const consents = ((await api.get("/consent-approvals")).consent_requests ?? [])
      .filter((entry) => typeof entry?.id === "string")
      .map((entry) => ({ ...entry, kind: "consent" }));
    const ids = new Set();
    for (const entry of [...listed, ...consents]) {
      if (typeof entry?.id !== "string") continue;
      ids.add(entry.id);
      const known = shown.get(entry.id);
      if (known && known.answered === Boolean(entry.answered) && known.approvals === entry.approvals) continue;
      let card;
      let examined;
      const consent = entry.kind === "consent";
      try {
        examined = consent ? await examineConsent(entry) : await examine(entry);
      } catch (error) {
        if (error?.code === "expired") continue;
        throw error;
      }
      if (!examined.review) card = unverifiableCard(entry, examined.unverifiable);
      else if (consent) card = consentCard(entry, examined.review);
      else card = verifiedCard(entry, examined.review);
      if (known) known.card.replaceWith(card);
      else list.append(card);
      shown.set(entry.id, {
        card, entry, review: examined.review ?? null,
        answered: Boolean(entry.answered), approvals: entry.approvals,
      });
      announce(entry);
    }
    for (const [id, { card }] of shown) {
      if (!ids.has(id)) {
        card.remove();
        shown.delete(id);
      }
    }
    empty.hidden = shown.size > 0;
  })();
  try {
    await refreshing;
  } finally {
    refreshing = null;
  }
}

function listen() {
  const stream = new EventSource(api.vaultPath("/approvals/stream"));
  const again = () => refresh().catch((error) => status(describe(error), { error: true }));
  stream.addEventListener("request", again);
  stream.addEventListener("consent-requests", again);
  stream.addEventListener("directory", async () => {
    // Every card is verified again under the new directory (a removal may void a certificate).
    directory = await approver.directory();
    for (const { card } of shown.values()) card.remove();
    shown.clear();
    again();
  });
  const dropped = "The live connection to the relay dropped; reconnecting…";
  stream.onerror = () => status(dropped);
  stream.onopen = () => {
    // Clear only this page's own warning, never the outcome of an answer.
    if (document.getElementById("status")?.textContent === dropped) status("");
    again();
  };
}

async function main() {
  if (!(await shell())) return;
  const notify = document.getElementById("notify");
  if (!("Notification" in window)) notify.hidden = true;
  else if (Notification.permission !== "default") notify.hidden = true;
  notify.addEventListener("click", async () => {
    await Notification.requestPermission();
    notify.hidden = Notification.permission !== "default";
  });
  self = await approver.me();
  directory = await approver.directory();
  await refresh();
  await showFrozen();
  listen();
}

main().catch((error) => status(describe(error), { error: true }));
