// The policy that applies to each item of a request, as an approver in this browser checks it.
//
// A policy an approver signed (`sealbox.policy.v1`) is verified against the directory verified
// in this browser; then, by this browser's clock, a request outside its time windows or past
// its destroy date is refused: the relay should have refused it. Anything else about a policy
// (networks, read-rate caps, rotation counts) depends on what only the relay sees.

import { peekHeader, verifyStatement } from "../sealbox/jws.js";
import { typPolicy } from "../sealbox/labels.js";

const DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const SHORT = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };
const WINDOW = /^([a-z,-]+) (\d{2}):(\d{2})-(\d{2}):(\d{2}) ([A-Za-z0-9_+\-/]{1,64})$/;

/** A request the signed policy forbids; `code` names the axis, as the relay's refusal would. */
export class PolicyBreach extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function fail(message) {
  return new PolicyBreach("malformed", message);
}

function parseDays(spec) {
  const days = new Set();
  for (const part of spec.split(",")) {
    const [first, last, extra] = part.split("-");
    if (extra !== undefined || !DAYS.includes(first) || (last !== undefined && !DAYS.includes(last))) {
      throw fail(`the signed window's days ${spec} do not read`);
    }
    // As sealbox.protocol.policy_rules: a range of one day ("mon-mon") is refused.
    if (last === first) throw fail(`the signed window's day range ${part} names one day`);
    let day = DAYS.indexOf(first);
    const end = last === undefined ? day : DAYS.indexOf(last);
    for (;;) {
      days.add(day);
      if (day === end) break;
      day = (day + 1) % 7;
    }
  }
  return days;
}

// Zone names that mean this system's own setting, not a place (refused as Python refuses them).
const LOCAL_ZONES = new Set(["localtime", "posixrules", "Factory"]);

function minutes(hours, mins, text) {
  const h = Number(hours);
  const m = Number(mins);
  if (m > 59 || h > 24 || (h === 24 && m !== 0)) {
    throw fail(`the signed window ${text} has ${hours}:${mins}, not a time of day (00:00 to 24:00)`);
  }
  return h * 60 + m;
}

/** Whether Unix time `at` lies in the window (the same rule as sealbox.protocol.policy_rules). */
export function inWindow(text, at) {
  const found = WINDOW.exec(text);
  if (!found) throw fail(`the signed window ${text} does not read`);
  const [, spec, h1, m1, h2, m2, zone] = found;
  const days = parseDays(spec);
  const start = minutes(h1, m1, text);
  const end = minutes(h2, m2, text);
  if (start >= end) throw fail(`the signed window ${text} does not start before it ends`);
  if (LOCAL_ZONES.has(zone) || zone.startsWith("posix/") || zone.startsWith("right/")) {
    throw fail(`the signed window's zone ${zone} is not an IANA time zone`);
  }
  let format;
  try {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone: zone, weekday: "short", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    });
  } catch (error) {
    if (error instanceof RangeError) throw fail(`the signed window's zone ${zone} is not known here`);
    throw error;
  }
  const parts = Object.fromEntries(format.formatToParts(new Date(at * 1000)).map((p) => [p.type, p.value]));
  const minute = Number(parts.hour) * 60 + Number(parts.minute);
  return days.has(SHORT[parts.weekday]) && start <= minute && minute < end;
}

function globMatches(path, pattern) {
  const p = path.split("/");
  const g = pattern.split("/");
  if (p.length !== g.length) return false;
  return g.every((segment, i) => {
    const re = new RegExp(`^${segment.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]")}$`);
    return re.test(p[i]);
  });
}

// Of the patterns matching a path, the largest applies: the relay's own rule
// (sealbox.protocol.policies.specificity): longest, then fewest wildcards, then the text.
function specificity(pattern) {
  return [pattern.length, -((pattern.match(/[*?]/g) || []).length), pattern];
}

function moreSpecific(a, b) {
  const [x, y] = [specificity(a), specificity(b)];
  for (let i = 0; i < 3; i++) {
    if (x[i] !== y[i]) return x[i] > y[i] ? 1 : -1;
  }
  return 0;
}

/** The newest signed policy `at` this browser has seen, per vault and pattern (localStorage). */
const SEEN_KEY = "sealbox.policies.seen";

function loadSeen() {
  try {
    const kept = JSON.parse(globalThis.localStorage?.getItem(SEEN_KEY) ?? "{}");
    return kept && typeof kept === "object" ? kept : {};
  } catch {
    return {};
  }
}

function saveSeen(seen) {
  try {
    globalThis.localStorage?.setItem(SEEN_KEY, JSON.stringify(seen));
  } catch {
    // Storage full or refused: the check then holds for this page's life only.
  }
}

/** path -> {pattern, signedBy (null: the relay's word), policy} for the request's items.
 *  Of the signed statements served for a path (`statements`, and `statement`), the most
 *  specific one is picked here, by the relay's rule; one older than a statement seen before
 *  for its pattern is refused (policy_rollback).  A path with no signed policy served says so
 *  (noSignedPolicy).  Throws PolicyBreach for a request the signed policy forbids, and the
 *  verification error for a signed policy that does not verify or does not cover the item. */
export async function checkPolicies(entry, paths, directory, now) {
  const served = entry.policies && typeof entry.policies === "object" ? entry.policies : {};
  const seen = loadSeen();
  const vaultSeen = seen[directory.vault] && typeof seen[directory.vault] === "object" ? seen[directory.vault] : {};
  const newest = {};
  const out = new Map();
  for (const path of paths) {
    const reported = served[path];
    if (!reported || typeof reported !== "object") {
      out.set(path, { pattern: null, signedBy: null, policy: {}, noSignedPolicy: true });
      continue;
    }
    const tokens = (Array.isArray(reported.statements) ? reported.statements : []).filter((t) => typeof t === "string");
    if (typeof reported.statement === "string" && !tokens.includes(reported.statement)) tokens.push(reported.statement);
    let chosen = null;
    for (const token of tokens.slice(0, 64)) {
      const signer = directory.approvers.get(peekHeader(token).kid);
      if (!signer) continue; // signed by an approver no longer here: only the relay's word
      const signed = await verifyStatement(token, { typ: typPolicy, kid: signer.id, key: signer.sig_pk });
      if (signed.approver !== signer.id || signed.vault !== directory.vault) {
        throw new PolicyBreach("binding_mismatch", "the policy's approver or vault does not match its signature");
      }
      if (typeof signed.pattern !== "string" || !globMatches(path, signed.pattern)) {
        throw new PolicyBreach("binding_mismatch", `the relay served a policy for ${signed.pattern}, not ${path}`);
      }
      const before = vaultSeen[signed.pattern];
      if (typeof before === "number" && typeof signed.at === "number" && signed.at < before) {
        throw new PolicyBreach("policy_rollback", `the relay served an older signed policy for ${signed.pattern} than this browser has seen`);
      }
      if (typeof signed.at === "number") newest[signed.pattern] = Math.max(newest[signed.pattern] ?? -1, signed.at);
      const order = chosen === null ? 1 : moreSpecific(signed.pattern, chosen.pattern);
      if (order > 0 || (order === 0 && signed.at > chosen.at)) chosen = signed;
    }
    if (chosen === null) {
      out.set(path, { pattern: reported.pattern ?? null, signedBy: null, policy: reported, noSignedPolicy: true });
      continue;
    }
    if (typeof chosen.destroy_at === "number" && now >= chosen.destroy_at) {
      throw new PolicyBreach("item_destroyed", `${path} is past its signed destroy date`);
    }
    const hours = Array.isArray(chosen.hours) ? chosen.hours : [];
    if (hours.length && !hours.some((h) => inWindow(h, now))) {
      throw new PolicyBreach("policy_outside_hours", `${path} may be asked for only within: ${hours.join("; ")}`);
    }
    out.set(path, { pattern: chosen.pattern, signedBy: chosen.approver, policy: chosen });
  }
  if (Object.keys(newest).length) {
    for (const [pattern, at] of Object.entries(newest)) vaultSeen[pattern] = Math.max(vaultSeen[pattern] ?? -1, at);
    seen[directory.vault] = vaultSeen;
    saveSeen(seen);
  }
  return out;
}
