// Client certificates and enrollment delegations (docs/protocol.md section 7).  A port of
// src/sealbox/protocol/certificates.py.
//
// A client key may sign store and access statements only under a certificate that a
// *current* approver signed, or that an enrollment delegation key signed within the limits
// an approver set for it.  Removing an approver from the directory therefore voids the
// certificates it issued.  Every failure here is certificate_invalid.

import { SealboxError } from "./errors.js";
import { peekHeader } from "./jws.js";
import { parseVerifyKey } from "./keys.js";
import { directoryApprover } from "./directory.js";
import {
  KIND,
  checkId,
  checkPattern,
  clientCertificatePayload,
  readClientCertificate,
  readEnrollment,
  readEnrollmentConstraints,
  signTyped,
  sortedUnique,
  verifyTyped,
} from "./statements.js";

// How far in the future a statement's `at` may lie (clocks disagree a little).
export const CLOCK_SKEW = 300;
// How long a certificate for a person's login lasts (its refresh tokens end with it);
// the terminal approver's CERTIFICATE_DAYS.
export const CERTIFICATE_DAYS = 30;

const invalid = (message) => new SealboxError("certificate_invalid", message);

function wrapped(prefix, exc) {
  if (exc instanceof SealboxError) return invalid(`${prefix}: ${exc.message}`);
  return exc;
}

// Verify an enrollment against the directory.
export async function verifyEnrollment(token, directory, { now }) {
  let header;
  let enrollment;
  try {
    header = peekHeader(token);
    const issuer = directoryApprover(directory, header.kid);
    enrollment = await verifyTyped(token, readEnrollment, issuer.sig_pk, issuer.id);
  } catch (exc) {
    throw wrapped("enrollment does not verify", exc);
  }
  if (enrollment.issuer !== header.kid || enrollment.vault !== directory.vault) {
    throw invalid("enrollment issuer or vault does not match its signature");
  }
  if (enrollment.at > now + CLOCK_SKEW || now > enrollment.constraints.not_after) {
    throw invalid("enrollment is not valid at this time");
  }
  return enrollment;
}

// Verify a client certificate against a verified directory (and its enrollment, if the
// certificate is delegated); return the certificate read strictly.
export async function verifyCertificate(token, directory, options = {}) {
  return (await verifyChain(token, directory, options)).cert;
}

// verifyCertificate, returning the enrollment a delegated certificate verified under too.
export async function verifyChain(token, directory, { now, enrollment = null } = {}) {
  let header;
  try {
    header = peekHeader(token);
  } catch (exc) {
    throw wrapped("certificate is malformed", exc);
  }
  let delegation = null;
  let signerKey;
  if (header.kid.startsWith(`${KIND.enrollment}_`)) {
    if (enrollment === null || enrollment === undefined) {
      throw invalid("certificate is signed by an enrollment that was not supplied");
    }
    delegation = await verifyEnrollment(enrollment, directory, { now });
    if (delegation.id !== header.kid) throw invalid("certificate is signed by another enrollment");
    signerKey = delegation.sig_pk;
  } else {
    try {
      signerKey = directoryApprover(directory, header.kid).sig_pk;
    } catch (exc) {
      throw wrapped("certificate issuer", exc);
    }
  }
  let cert;
  try {
    cert = await verifyTyped(token, readClientCertificate, signerKey, header.kid);
  } catch (exc) {
    throw wrapped("certificate does not verify", exc);
  }
  if (cert.issuer !== header.kid || cert.vault !== directory.vault) {
    throw invalid("certificate issuer or vault does not match its signature");
  }
  if (cert.at > now + CLOCK_SKEW || now > cert.constraints.not_after) {
    throw invalid("certificate is not valid at this time");
  }
  if (delegation !== null) checkWithin(cert, delegation);
  return { cert, delegation };
}

// The item-path limits of a certificate's `items:` scopes and of its enrollment's projects
// and items: a list of pattern lists, each of which a path must match one of (empty: none).
export function limitsOf(cert, enrollment = null) {
  const out = [];
  const own = cert.scopes.filter((s) => s.startsWith("items:")).map((s) => s.slice(6));
  if (own.length) out.push(own);
  if (enrollment !== null) {
    const { projects, items } = enrollment.constraints;
    if (projects.length) out.push(projects.map((p) => `${p}/*/*`));
    if (items.length) out.push([...items]);
  }
  return out;
}

// Whether item `path` matches `pattern` segment by segment, case-sensitively.
export function pathMatches(path, pattern) {
  const a = path.split("/");
  const b = pattern.split("/");
  return a.length === b.length && a.every((part, i) => fnmatchCase(part, b[i]));
}

// Stage isolation: every item path a statement names lies within its certificate's limits.
export function checkPaths(cert, paths, enrollment = null) {
  const bounds = limitsOf(cert, enrollment);
  for (const path of paths) {
    if (!bounds.every((patterns) => patterns.some((p) => pathMatches(path, p)))) {
      throw invalid(`${path} is outside the items its certificate allows`);
    }
  }
}

function checkWithin(cert, enrollment) {
  const limits = enrollment.constraints;
  if (cert.client.kind !== "machine") throw invalid("an enrollment may certify machines only");
  if (cert.constraints.not_after > limits.not_after) {
    throw invalid("certificate outlives its enrollment");
  }
  if (
    limits.cidrs.length &&
    !(
      cert.constraints.cidrs.length && cert.constraints.cidrs.every((c) => limits.cidrs.includes(c))
    )
  ) {
    throw invalid("certificate allows networks its enrollment does not");
  }
  if (limits.hostname !== null && cert.constraints.hostname !== limits.hostname) {
    throw invalid("certificate allows hosts its enrollment does not");
  }
}

// Hold a client-signed request context to its certificate's host-name pattern.
//
// The pattern is a case-insensitive shell glob (`ci-*.example.com`), matched as Python's
// fnmatch does.  A certificate with a pattern refuses a request that does not name its
// host.  The CIDR constraint concerns the source address only the relay observes: it is the
// relay's to enforce (and the approver shows the address as reported by the server).
export function checkContext(cert, context) {
  const pattern = cert.constraints.hostname;
  if (pattern === null) return;
  const host = context.host;
  if (host === null || !fnmatchCase(host.toLowerCase(), pattern.toLowerCase())) {
    throw invalid("the request's host is outside what its certificate allows");
  }
}

// --- fnmatch (a port of CPython's fnmatch.translate, 3.11/3.12) -----------------------------

const SYNTAX = new Set([..."^$\\.*+?()[]{}|/"]);

function escapeChar(ch) {
  return SYNTAX.has(ch) ? `\\${ch}` : ch;
}

// Python builds the inside of a set with only "\\" and "-" escaped; a JavaScript class in
// "u" mode also needs "]" and "[" escaped wherever they stand for themselves.
function classBody(chunks) {
  const esc = (s) => [...s].map((c) => ("\\-][^".includes(c) ? `\\${c}` : c)).join("");
  return chunks.map(esc).join("-");
}

export function fnmatchTranslate(pat) {
  const chars = [...pat];
  const n = chars.length;
  let i = 0;
  let out = "";
  let lastStar = false;
  while (i < n) {
    const c = chars[i];
    i += 1;
    if (c === "*") {
      if (!lastStar) out += ".*";
      lastStar = true;
      continue;
    }
    lastStar = false;
    if (c === "?") {
      out += ".";
    } else if (c === "[") {
      let j = i;
      if (j < n && chars[j] === "!") j += 1;
      if (j < n && chars[j] === "]") j += 1;
      while (j < n && chars[j] !== "]") j += 1;
      if (j >= n) {
        out += "\\[";
        continue;
      }
      let negate = false;
      let start = i;
      if (chars[start] === "!") {
        negate = true;
        start += 1;
      }
      const inner = chars.slice(start, j);
      i = j + 1;
      // Split on "-" into ranges as Python does: "a-c-e" is the range a-c then the
      // characters "-" and "e"; a range written backwards matches nothing.
      let chunks;
      if (!inner.includes("-")) {
        chunks = [inner.join("")];
      } else {
        chunks = [];
        let from = 0;
        let k = 1; // the first character is never a range separator
        for (;;) {
          k = inner.indexOf("-", k);
          if (k < 0) break;
          chunks.push(inner.slice(from, k).join(""));
          from = k + 1;
          k += 3;
        }
        const rest = inner.slice(from).join("");
        if (rest) chunks.push(rest);
        else chunks[chunks.length - 1] += "-";
        for (let m = chunks.length - 1; m > 0; m -= 1) {
          const left = [...chunks[m - 1]];
          const right = [...chunks[m]];
          if (left[left.length - 1].codePointAt(0) > right[0].codePointAt(0)) {
            chunks[m - 1] = left.slice(0, -1).join("") + right.slice(1).join("");
            chunks.splice(m, 1);
          }
        }
      }
      const body = classBody(chunks);
      if (!body && !negate) out += "(?!)";
      else if (!body) out += ".";
      else out += `[${negate ? "^" : ""}${body}]`;
    } else {
      out += escapeChar(c);
    }
  }
  return `^(?:${out})$`;
}

export function fnmatchCase(name, pattern) {
  return new RegExp(fnmatchTranslate(pattern), "su").test(name);
}

// --- issuing (what an approver signs when approving a login) ---------------------------------

function checkIssuer(directory, issuer, signingKey) {
  if (directoryApprover(directory, issuer).sig_pk.text !== signingKey.publicKey().text) {
    throw new TypeError("the signing key is not the issuer's directory key");
  }
}

// An approver certifies a client key (after a person compared its code).  `client` is
// {id, kind, name, sig_pk} (sig_pk as text or a VerifyKey); `constraints` is
// {not_after, cidrs = [], hostname = null}.
export async function issueCertificate(
  directory,
  { issuer, signingKey, client, scopes, constraints, now },
) {
  checkIssuer(directory, issuer, signingKey);
  const payload = clientCertificatePayload({
    vault: directory.vault,
    client,
    scopes: sortedUnique(scopes),
    constraints,
    issuer,
    at: now,
  });
  return signTyped(readClientCertificate, payload, signingKey, issuer);
}

// The client a pending login (RFC 8628 device request, as the relay lists it under
// /device-requests) asks to have certified: a person's CLI, kind "human".  Nothing here is
// trusted: the id and key are read strictly, the name is cut to what a certificate holds
// (and must then pass the display-text rules), and a person compares the key's safety code
// (keys.js safetyCode over its fingerprint) with the one the CLI shows.
export function clientFromLogin(login) {
  const name = [...String(login?.client_name)].slice(0, 128).join("");
  return Object.freeze({
    id: checkId(login?.client_id, KIND.client, "client id"),
    kind: "human",
    name,
    sig_pk: parseVerifyKey(login?.sig_pk),
  });
}

// What each role brings into a member's certificate besides its role:<project>:<role> and
// items:<project>/*/* scopes (src/sealbox/protocol/members.py ROLE_SCOPES).  No role reads
// a value: reading is always a release.
export const ROLE_SCOPES = Object.freeze({
  viewer: Object.freeze([]),
  writer: Object.freeze(["read", "write"]),
  "machine-admin": Object.freeze(["read"]),
  "policy-admin": Object.freeze(["read"]),
});

// A member's whole set of scopes from its roles ({project: [role, ...]}), sorted: what
// sealbox.protocol.members.member_scopes gives.  An unknown role is refused here; a project
// that is no path segment, when the certificate is read back before it is signed.
export function memberScopes(roles) {
  const out = new Set();
  for (const [project, held] of Object.entries(roles)) {
    for (const role of held) {
      if (!Object.hasOwn(ROLE_SCOPES, role)) {
        throw new SealboxError("malformed", `unknown role: ${String(role).slice(0, 32)}`);
      }
      out.add(`role:${project}:${role}`);
      for (const scope of ROLE_SCOPES[role]) out.add(scope);
    }
    if (held.length > 0) out.add(`items:${checkPattern(`${project}/*/*`, "project")}`);
  }
  return [...out].sort();
}

// The scopes to certify a pending login with: for a login started with an invite, exactly
// the invite's role (the relay refuses any other certificate for it); otherwise `scopes`.
export function loginScopes(login, scopes = ["read", "write"]) {
  if (login?.project == null && login?.role == null) return scopes;
  if (typeof login.project !== "string" || typeof login.role !== "string") {
    throw new SealboxError("malformed", "the relay listed an invite without its project and role");
  }
  return memberScopes({ [login.project]: [login.role] });
}

// The certificate that approves a login, as the terminal approver signs it: scopes
// read and write (an invited login: exactly its role's), no network or host constraint,
// valid for `days` days.
export async function certifyLogin(
  directory,
  login,
  { issuer, signingKey, now, scopes = ["read", "write"], days = CERTIFICATE_DAYS },
) {
  return issueCertificate(directory, {
    issuer,
    signingKey,
    client: clientFromLogin(login),
    scopes: loginScopes(login, scopes),
    constraints: { not_after: now + days * 86400, cidrs: [], hostname: null },
    now,
  });
}

// An approver lets a delegation key certify ephemeral machines (CI runs) within
// `constraints` ({projects, items, max_uses, not_after, cidrs = [], hostname = null}):
// a port of issue_enrollment.  `delegationKey` is the delegation key's public half.
export async function issueEnrollment(
  directory,
  { issuer, signingKey, enrollmentId, delegationKey, constraints, now },
) {
  checkIssuer(directory, issuer, signingKey);
  const limits = {
    projects: sortedUnique(constraints.projects ?? []),
    items: sortedUnique(constraints.items ?? []),
    max_uses: constraints.max_uses,
    not_after: constraints.not_after,
    cidrs: sortedUnique(constraints.cidrs ?? []),
    hostname: constraints.hostname ?? null,
  };
  readEnrollmentConstraints(limits);
  const payload = {
    vault: directory.vault,
    id: checkId(enrollmentId, KIND.enrollment, "enrollment id"),
    sig_pk: typeof delegationKey === "string" ? delegationKey : delegationKey.text,
    constraints: limits,
    issuer,
    at: now,
  };
  return signTyped(readEnrollment, payload, signingKey, issuer);
}

// How long an agent's certificate lasts (its access tokens never outlive it), as the terminal
// approver signs it.
export const AGENT_CERTIFICATE_DAYS = 90;

// The agent a person asked for (as the relay lists it under /agent-requests), kind "agent".
// Nothing here is trusted: the id and key are read strictly, and the person compares the
// key's safety code with the one their `sealbox agent create` printed.
export function clientFromAgentRequest(request) {
  const name = [...String(request?.name)].slice(0, 128).join("");
  return Object.freeze({
    id: checkId(request?.client_id, KIND.client, "client id"),
    kind: "agent",
    name,
    sig_pk: parseVerifyKey(request?.sig_pk),
  });
}

// The certificate that approves an agent: the scopes it asked for (the relay refuses any it
// did not ask for), no network or host constraint, valid for `days` days.
export async function certifyAgent(
  directory,
  request,
  { issuer, signingKey, now, days = AGENT_CERTIFICATE_DAYS },
) {
  const scopes = Array.isArray(request?.scopes) ? request.scopes.map(String) : [];
  return issueCertificate(directory, {
    issuer,
    signingKey,
    client: clientFromAgentRequest(request),
    scopes,
    constraints: { not_after: now + days * 86400, cidrs: [], hostname: null },
    now,
  });
}
