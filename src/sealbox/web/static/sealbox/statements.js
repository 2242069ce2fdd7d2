// The signed statements of sealbox (docs/protocol.md section 5), read strictly.
//
// A port of src/sealbox/protocol/statements.py, _reader.py and ids.py for the browser
// approver: the same checks, in the same order, with the same error codes.  Each reader
// takes a parsed payload and returns a frozen plain object with the payload's keys; every
// key must be present, no key may be unknown, and every value must have its type, length
// and range.  Unknown keys are an error rather than ignored, so a signer can never be made
// to vouch for a field the verifier silently drops (or the other way round).
//
// In what is returned, public keys are the parsed key objects of keys.js ({text, raw}),
// nonces and blobs are Uint8Array, and everything else is as in the payload.  The
// `*Payload` builders turn such objects back into the exact payload an approver signs.

import { SealboxError } from "./errors.js";
import {
  b64uDecode,
  b64uEncode,
  canonicalBytes,
  parseDigest as parseDigestText,
} from "./encoding.js";
import { parseHpkePublic, parseVerifyKey } from "./keys.js";
import { signStatement, verifyStatement } from "./jws.js";

// --- limits (statements.py, _reader.py) ---------------------------------------------------

// Largest integer a statement carries: JSON numbers beyond 2^53 lose precision here.
export const MAX_INT = Number.MAX_SAFE_INTEGER;
export const MAX_TEXT = 4096;
export const MAX_LIST = 256;
// Shamir's x is one byte.
export const MAX_APPROVERS = 255;
// A 32-bit signed integer: what every database stores natively.
export const MAX_VERSION = 2 ** 31 - 1;
// Bounds the release an approver must seal (one share per field).
export const MAX_ACCESS_FIELDS = 256;
// Longest a consent may stay valid (seconds): it approves one action, soon.
export const MAX_CONSENT_TTL = 3600;
// Largest canonical JSON (bytes) of the details a consent request carries.
export const MAX_CONSENT_DETAILS = 8192;

export const TYP = Object.freeze({
  directory: "sealbox.directory.v1",
  client: "sealbox.client.v1",
  enrollment: "sealbox.enrollment.v1",
  store: "sealbox.store.v1",
  item: "sealbox.item.v1",
  access: "sealbox.access.v1",
  release: "sealbox.release.v1",
  deny: "sealbox.deny.v1",
  checkpoint: "sealbox.checkpoint.v1",
  consent: "sealbox.consent.v1",
  consentRequest: "sealbox.consent-request.v1",
});

export const APPROVER_KINDS = Object.freeze(["browser", "terminal", "automated"]);
export const APPROVER_TIERS = Object.freeze(["synced", "device"]);
export const CLIENT_KINDS = Object.freeze(["human", "agent", "machine"]);
export const DIRECTORY_OPS = Object.freeze(["add", "remove", "update"]);
export const ITEM_TYPES = Object.freeze(["secret", "canary", "managed", "ab"]);
export const CACHE_SCOPES = Object.freeze(["none", "process-tree", "agent-session", "user"]);
// Why a deny was signed when it is not a person's or a rule's decision: the request the
// approver was shown does not verify (protocol section 9).
export const DENY_UNVERIFIABLE = "unverifiable";
export const DENY_GROUNDS = Object.freeze([DENY_UNVERIFIABLE]);

export function malformed(message) {
  return new SealboxError("malformed", message);
}

// --- small helpers ---------------------------------------------------------------------

function isObject(value) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

// Deep-freeze the plain objects and arrays we build (typed arrays and key objects are
// left as they are: a typed array with elements cannot be frozen).
export function freeze(value) {
  if (Array.isArray(value) || isObject(value)) {
    for (const inner of Object.values(value)) freeze(inner);
    return Object.freeze(value);
  }
  return value;
}

function codePointLength(text) {
  let n = 0;
  for (const _ of text) n += 1; // eslint-disable-line no-unused-vars
  return n;
}

// Python sorts text by code point; Array.prototype.sort compares UTF-16 code units, which
// differ above U+FFFF.  Sets must be sorted the Python way to verify alike.
export function compareCodePoints(a, b) {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done === y.done ? 0 : x.done ? -1 : 1;
    const cx = x.value.codePointAt(0);
    const cy = y.value.codePointAt(0);
    if (cx !== cy) return cx < cy ? -1 : 1;
  }
}

export function sortedUnique(values) {
  return [...new Set(values)].sort(compareCodePoints);
}

function checkSortedUnique(values, what) {
  for (let i = 1; i < values.length; i += 1) {
    if (compareCodePoints(values[i - 1], values[i]) >= 0) {
      throw malformed(`${what}: must be sorted and without duplicates`);
    }
  }
  return values;
}

function checkUnique(values, what) {
  if (new Set(values).size !== values.length) throw malformed(`${what}: duplicates`);
  return values;
}

function sameSet(a, b) {
  const sa = new Set(a);
  const sb = new Set(b);
  return sa.size === sb.size && [...sa].every((x) => sb.has(x));
}

function keyText(key) {
  return typeof key === "string" ? key : key.text;
}

// --- display text (protocol section 2.8) ---------------------------------------------------

// Characters that change how text around them is displayed, or hide text: Cc (C0/C1
// controls: ANSI escapes, carriage return), Cf (bidi overrides and isolates, zero-width and
// tag characters), Zl and Zp (render as line breaks), Cs (lone surrogates), Co (private
// use, which renders as whatever the approver's font decides).  A requester could use them
// to hide or fake text on an approver's screen.
const HIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\p{Co}]/u;
// Blank characters whose category looks harmless (Hangul fillers, blank braille) and
// variation selectors, which can smuggle data behind an ordinary-looking letter.
const INVISIBLE = /[\u115f\u1160\u3164\uffa0\u2800\ufe00-\ufe0f\u{e0100}-\u{e01ef}]/u;

export function checkDisplayText(value, what, maxLen = MAX_TEXT) {
  if (typeof value !== "string") throw malformed(`${what}: expected text`);
  // Python counts code points; a UTF-16 length over twice the bound is over it anyway.
  if (value.length > maxLen && (value.length > 2 * maxLen || codePointLength(value) > maxLen)) {
    throw malformed(`${what}: longer than ${maxLen} characters`);
  }
  if (INVISIBLE.test(value) || HIDDEN.test(value)) {
    throw malformed(`${what}: control, format or line-separator characters`);
  }
  return value;
}

// --- identifiers, paths, field names (ids.py, protocol section 2.6-2.7) -----------------------

export const KIND = Object.freeze({
  vault: "vlt",
  approver: "apv",
  client: "cli",
  enrollment: "enr",
  item: "itm",
  jti: "jti",
});
const ID = /^(vlt|apv|cli|enr|itm|jti)_[a-z2-7]{26}$/;
// One path segment or field name: starts with a letter or digit, at most 64 characters,
// nothing a shell or URL must quote.
const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkId(value, kind, what = "id") {
  if (typeof value !== "string" || !ID.test(value) || value.slice(0, 3) !== kind) {
    throw malformed(`${what}: expected a ${kind}_ identifier`);
  }
  return value;
}

function checkSegment(value, what) {
  if (typeof value !== "string" || !SEGMENT.test(value)) {
    throw malformed(`${what}: letters, digits, '.', '_' and '-' only, 1 to 64 characters`);
  }
  return value;
}

export function checkFieldName(value) {
  return checkSegment(value, "field name");
}

// An item path: exactly project/environment/item.
export function checkPath(value) {
  if (typeof value !== "string") throw malformed("item path: expected text");
  const parts = value.split("/");
  if (parts.length !== 3) throw malformed("item path: expected project/environment/item");
  for (const part of parts) checkSegment(part, "item path segment");
  return value;
}

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

function defaultRandom(n) {
  const out = new Uint8Array(n);
  globalThis.crypto.getRandomValues(out);
  return out;
}

// A fresh identifier of `kind` (a KIND value): 128 random bits in lowercase base32.
export function newId(kind, random = defaultRandom) {
  if (!Object.values(KIND).includes(kind)) throw new TypeError(`unknown id kind ${kind}`);
  const raw = random(16);
  if (!(raw instanceof Uint8Array) || raw.length !== 16) {
    throw new TypeError("random source returned the wrong length");
  }
  let bits = 0;
  let value = 0;
  let out = "";
  for (const byte of raw) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return `${kind}_${out}`;
}

// A digest in its one canonical text form ("sha256:" + 43 base64url characters).
export function parseDigest(text, what = "digest") {
  return parseDigestText(text, { what });
}

// --- the strict reader (_reader.py) -----------------------------------------------------------

class Reader {
  constructor(value, what) {
    if (!isObject(value)) throw malformed(`${what}: expected a JSON object`);
    this.data = value;
    this.taken = new Set();
    this.what = what;
  }

  get(key) {
    if (!Object.hasOwn(this.data, key)) throw malformed(`${this.what}: missing '${key}'`);
    this.taken.add(key);
    return this.data[key];
  }

  raw(key) {
    return this.get(key);
  }

  text(key, { maxLen = MAX_TEXT, nullable = false } = {}) {
    const value = this.get(key);
    if (value === null && nullable) return null;
    return checkDisplayText(value, `${this.what}.${key}`, maxLen);
  }

  integer(key, { low = 0, high = MAX_INT, nullable = false } = {}) {
    const value = this.get(key);
    if (value === null && nullable) return null;
    if (typeof value !== "number" || !Number.isInteger(value) || value < low || value > high) {
      throw malformed(`${this.what}.${key}: expected an integer in ${low}..${high}`);
    }
    return value;
  }

  choice(key, allowed) {
    const value = this.get(key);
    if (typeof value !== "string" || !allowed.includes(value)) {
      throw malformed(`${this.what}.${key}: expected one of ${[...allowed].sort().join(", ")}`);
    }
    return value;
  }

  digest(key, { nullable = false } = {}) {
    const value = this.get(key);
    if (value === null && nullable) return null;
    return parseDigest(value, `${this.what}.${key}`);
  }

  b64(key, { length, maxLen = 1 << 20 } = {}) {
    const value = this.get(key);
    if (typeof value === "string" && value.length > Math.floor((maxLen * 4) / 3) + 4) {
      throw malformed(`${this.what}.${key}: too long`);
    }
    return b64uDecode(value, { length, what: `${this.what}.${key}` });
  }

  parsed(key, parse) {
    return parse(this.get(key));
  }

  items(key, parse, { maxLen = MAX_LIST } = {}) {
    const value = this.get(key);
    if (!Array.isArray(value)) throw malformed(`${this.what}.${key}: expected a list`);
    if (value.length > maxLen) throw malformed(`${this.what}.${key}: more than ${maxLen} entries`);
    return value.map((v) => parse(v));
  }

  mapping(key, parseKey, parseValue) {
    const value = this.get(key);
    if (!isObject(value)) throw malformed(`${this.what}.${key}: expected an object`);
    const entries = Object.entries(value);
    if (entries.length > MAX_LIST) {
      throw malformed(`${this.what}.${key}: more than ${MAX_LIST} entries`);
    }
    return Object.fromEntries(entries.map(([k, v]) => [parseKey(k), parseValue(v)]));
  }

  done() {
    const extra = Object.keys(this.data).filter((k) => !this.taken.has(k));
    if (extra.length) throw malformed(`${this.what}: unknown keys ${extra.sort().join(", ")}`);
  }
}

const textItem =
  (what, maxLen = 256) =>
  (v) =>
    checkDisplayText(v, what, maxLen);

// --- directory -----------------------------------------------------------------------------

export function readApproverRecord(value) {
  const r = new Reader(value, "approver");
  const out = {
    id: checkId(r.raw("id"), KIND.approver, "approver.id"),
    name: r.text("name", { maxLen: 128 }),
    kind: r.choice("kind", APPROVER_KINDS),
    tier: r.choice("tier", APPROVER_TIERS),
    hpke_pk: r.parsed("hpke_pk", parseHpkePublic),
    sig_pk: r.parsed("sig_pk", parseVerifyKey),
  };
  r.done();
  return freeze(out);
}

export function approverRecordPayload(record) {
  return {
    id: record.id,
    name: record.name,
    kind: record.kind,
    tier: record.tier,
    hpke_pk: keyText(record.hpke_pk),
    sig_pk: keyText(record.sig_pk),
  };
}

export function readDirectoryLink(value) {
  const r = new Reader(value, "directory link");
  const out = {
    vault: checkId(r.raw("vault"), KIND.vault, "vault"),
    seq: r.integer("seq"),
    prev: r.digest("prev", { nullable: true }),
    op: r.choice("op", DIRECTORY_OPS),
    approver: r.parsed("approver", readApproverRecord),
    at: r.integer("at"),
  };
  r.done();
  if ((out.seq === 0) !== (out.prev === null)) {
    throw malformed("directory link: prev is null exactly for seq 0");
  }
  return freeze(out);
}
readDirectoryLink.typ = TYP.directory;

export function directoryLinkPayload({ vault, seq, prev, op, approver, at }) {
  return { vault, seq, prev, op, approver: approverRecordPayload(approver), at };
}

// --- clients and enrollments -------------------------------------------------------------

export function readClientInfo(value) {
  const r = new Reader(value, "client");
  const out = {
    id: checkId(r.raw("id"), KIND.client, "client.id"),
    kind: r.choice("kind", CLIENT_KINDS),
    name: r.text("name", { maxLen: 128 }),
    sig_pk: r.parsed("sig_pk", parseVerifyKey),
  };
  r.done();
  return freeze(out);
}

// Scopes (src/sealbox/protocol/scopes.py): read, write, items:PATTERN, role:PROJECT:ROLE.
export const ROLES = Object.freeze(["machine-admin", "policy-admin", "viewer", "writer"]);
export const PATTERN_MAX = 200;
const PATTERN_SEGMENT = /^[A-Za-z0-9*?][A-Za-z0-9._*?-]{0,63}$/;

export function checkPattern(pattern, what = "pattern") {
  const parts = typeof pattern === "string" ? pattern.split("/") : [];
  if (
    typeof pattern !== "string" ||
    pattern.length > PATTERN_MAX ||
    parts.length !== 3 ||
    !parts.every((part) => PATTERN_SEGMENT.test(part))
  ) {
    throw malformed(`${what}: expected project/environment/item of A-Z a-z 0-9 . _ - * ?`);
  }
  return pattern;
}

function readScope(value) {
  const text = checkDisplayText(value, "scope", 256);
  if (text === "read" || text === "write") return text;
  if (text.startsWith("items:")) {
    checkPattern(text.slice(6), "client certificate.scope");
    return text;
  }
  if (text.startsWith("role:")) {
    const rest = text.slice(5);
    const at = rest.indexOf(":");
    const project = at < 0 ? rest : rest.slice(0, at);
    const role = at < 0 ? "" : rest.slice(at + 1);
    if (SEGMENT.test(project) && ROLES.includes(role)) return text;
  }
  throw malformed("client certificate.scope: expected read, write, items:PATTERN or role:PROJECT:ROLE");
}

function readItemGlob(value) {
  return checkPattern(checkDisplayText(value, "item glob", PATTERN_MAX), "enrollment constraints.items");
}

export function readClientConstraints(value) {
  const r = new Reader(value, "constraints");
  const out = {
    not_after: r.integer("not_after"),
    cidrs: checkSortedUnique(r.items("cidrs", textItem("cidr", 64)), "constraints.cidrs"),
    hostname: r.text("hostname", { maxLen: 253, nullable: true }),
  };
  r.done();
  return freeze(out);
}

export function readClientCertificate(value) {
  const r = new Reader(value, "client certificate");
  const issuer = r.raw("issuer");
  if (!(typeof issuer === "string" && ["apv_", "enr_"].includes(issuer.slice(0, 4)))) {
    throw malformed("client certificate.issuer: expected an apv_ or enr_ identifier");
  }
  const out = {
    vault: checkId(r.raw("vault"), KIND.vault, "vault"),
    client: r.parsed("client", readClientInfo),
    scopes: checkSortedUnique(r.items("scopes", readScope), "scopes"),
    constraints: r.parsed("constraints", readClientConstraints),
    issuer: checkId(issuer, issuer.slice(0, 3), "issuer"),
    at: r.integer("at"),
  };
  r.done();
  return freeze(out);
}
readClientCertificate.typ = TYP.client;

export function clientCertificatePayload({ vault, client, scopes, constraints, issuer, at }) {
  return {
    vault,
    client: { id: client.id, kind: client.kind, name: client.name, sig_pk: keyText(client.sig_pk) },
    scopes: [...scopes],
    constraints: {
      not_after: constraints.not_after,
      cidrs: [...(constraints.cidrs ?? [])],
      hostname: constraints.hostname ?? null,
    },
    issuer,
    at,
  };
}

export function readEnrollmentConstraints(value) {
  const r = new Reader(value, "enrollment constraints");
  const out = {
    projects: checkSortedUnique(
      r.items("projects", (v) => checkSegment(v, "enrollment constraints.projects")),
      "projects",
    ),
    items: checkSortedUnique(r.items("items", readItemGlob), "items"),
    max_uses: r.integer("max_uses", { low: 1 }),
    not_after: r.integer("not_after"),
    cidrs: checkSortedUnique(r.items("cidrs", textItem("cidr", 64)), "cidrs"),
    hostname: r.text("hostname", { maxLen: 253, nullable: true }),
  };
  r.done();
  return freeze(out);
}

export function readEnrollment(value) {
  const r = new Reader(value, "enrollment");
  const out = {
    vault: checkId(r.raw("vault"), KIND.vault, "vault"),
    id: checkId(r.raw("id"), KIND.enrollment, "enrollment.id"),
    sig_pk: r.parsed("sig_pk", parseVerifyKey),
    constraints: r.parsed("constraints", readEnrollmentConstraints),
    issuer: checkId(r.raw("issuer"), KIND.approver, "issuer"),
    at: r.integer("at"),
  };
  r.done();
  return freeze(out);
}
readEnrollment.typ = TYP.enrollment;

// --- store and item manifests --------------------------------------------------------------

export function readFieldCipher(value) {
  const r = new Reader(value, "field");
  const out = { nonce: r.b64("nonce", { length: 12 }), ct_hash: r.digest("ct_hash") };
  r.done();
  return Object.freeze(out);
}

function fieldHashes(value) {
  const r = new Reader(value, "wrap hashes");
  const out = Object.fromEntries(Object.keys(value).map((k) => [checkFieldName(k), r.digest(k)]));
  r.done();
  return Object.freeze(out);
}

export function readKeySet(value) {
  const r = new Reader(value, "key set");
  const approvers = checkUnique(
    r.items("approvers", (v) => checkId(v, KIND.approver, "key set approver"), {
      maxLen: MAX_APPROVERS,
    }),
    "key set approvers",
  );
  const out = {
    threshold: r.integer("threshold", { low: 1, high: MAX_APPROVERS }),
    approvers,
    wraps: r.mapping("wraps", (k) => checkId(k, KIND.approver, "wraps key"), fieldHashes),
  };
  r.done();
  if (!approvers.length || out.threshold > approvers.length) {
    throw malformed("key set: need 1 <= threshold <= number of approvers");
  }
  if (!sameSet(Object.keys(out.wraps), approvers)) {
    throw malformed("key set: wraps must name exactly the approvers");
  }
  return freeze(out);
}

function readFields(value) {
  if (!isObject(value) || Object.keys(value).length === 0) {
    throw malformed("fields: expected a non-empty object");
  }
  if (Object.keys(value).length > MAX_LIST) throw malformed("fields: too many");
  return Object.freeze(
    Object.fromEntries(
      Object.entries(value).map(([k, v]) => [checkFieldName(k), readFieldCipher(v)]),
    ),
  );
}

export function readRequestContext(value) {
  const r = new Reader(value, "context");
  const exeSha256 = r.text("exe_sha256", { maxLen: 64, nullable: true });
  if (exeSha256 !== null && !/^[0-9a-f]{64}$/.test(exeSha256)) {
    throw malformed("context.exe_sha256: expected 64 lowercase hex digits");
  }
  const out = {
    host: r.text("host", { maxLen: 253, nullable: true }),
    user: r.text("user", { maxLen: 256, nullable: true }),
    uid: r.integer("uid", { high: 2 ** 32 - 1, nullable: true }),
    pid: r.integer("pid", { high: 2 ** 32 - 1, nullable: true }),
    ppid: r.integer("ppid", { high: 2 ** 32 - 1, nullable: true }),
    exe: r.text("exe", { nullable: true }),
    exe_sha256: exeSha256,
    argv: r.items("argv", textItem("argv entry", 4096)),
    cwd: r.text("cwd", { nullable: true }),
    agent_session: r.text("agent_session", { maxLen: 256, nullable: true }),
  };
  r.done();
  return freeze(out);
}

function checkVersionChain(version, prev, what) {
  if ((version === 1) !== (prev === null)) {
    throw malformed(`${what}: prev is null exactly for version 1`);
  }
}

function checkWrapsCoverFields(keyset, fields, what) {
  for (const [approver, wrapped] of Object.entries(keyset.wraps)) {
    if (!sameSet(Object.keys(wrapped), Object.keys(fields))) {
      throw malformed(`${what}: wraps of ${approver} must cover exactly the fields`);
    }
  }
}

export function readStoreStatement(value) {
  const r = new Reader(value, "store statement");
  const out = {
    jti: checkId(r.raw("jti"), KIND.jti, "jti"),
    vault: checkId(r.raw("vault"), KIND.vault, "vault"),
    client: checkId(r.raw("client"), KIND.client, "client"),
    item: checkId(r.raw("item"), KIND.item, "item"),
    path: checkPath(r.raw("path")),
    version: r.integer("version", { low: 1, high: MAX_VERSION }),
    prev: r.digest("prev", { nullable: true }),
    type: r.choice("type", ITEM_TYPES),
    fields: r.parsed("fields", readFields),
    keyset: r.parsed("keyset", readKeySet),
    purpose: r.text("purpose", { maxLen: 1024 }),
    context: r.parsed("context", readRequestContext),
    at: r.integer("at"),
    exp: r.integer("exp"),
  };
  r.done();
  checkVersionChain(out.version, out.prev, "store statement");
  checkWrapsCoverFields(out.keyset, out.fields, "store statement");
  return Object.freeze(out);
}
readStoreStatement.typ = TYP.store;

export function readItemManifest(value) {
  const r = new Reader(value, "item manifest");
  const out = {
    vault: checkId(r.raw("vault"), KIND.vault, "vault"),
    item: checkId(r.raw("item"), KIND.item, "item"),
    path: checkPath(r.raw("path")),
    version: r.integer("version", { low: 1, high: MAX_VERSION }),
    prev: r.digest("prev", { nullable: true }),
    type: r.choice("type", ITEM_TYPES),
    fields: r.parsed("fields", readFields),
    keyset: r.parsed("keyset", readKeySet),
    store_request: r.digest("store_request", { nullable: true }),
    at: r.integer("at"),
  };
  r.done();
  checkVersionChain(out.version, out.prev, "item manifest");
  checkWrapsCoverFields(out.keyset, out.fields, "item manifest");
  return Object.freeze(out);
}
readItemManifest.typ = TYP.item;

function fieldsPayload(fields) {
  return Object.fromEntries(
    Object.entries(fields).map(([name, f]) => [
      name,
      { nonce: f.nonce instanceof Uint8Array ? b64uEncode(f.nonce) : f.nonce, ct_hash: f.ct_hash },
    ]),
  );
}

function keysetPayload(keyset) {
  return {
    threshold: keyset.threshold,
    approvers: [...keyset.approvers],
    wraps: Object.fromEntries(Object.entries(keyset.wraps).map(([a, f]) => [a, { ...f }])),
  };
}

export function itemManifestPayload(m) {
  return {
    vault: m.vault,
    item: m.item,
    path: m.path,
    version: m.version,
    prev: m.prev,
    type: m.type,
    fields: fieldsPayload(m.fields),
    keyset: keysetPayload(m.keyset),
    store_request: m.store_request,
    at: m.at,
  };
}

// --- access, release, deny ---------------------------------------------------------------------

export function readAccessItem(value) {
  const r = new Reader(value, "access item");
  const out = {
    item: checkId(r.raw("item"), KIND.item, "item"),
    // Signed, shown to the approver, and checked against the manifest: the relay resolves
    // paths to ids, and could otherwise answer with another item that has the same fields.
    path: checkPath(r.raw("path")),
    version: r.integer("version", { low: 1, high: MAX_VERSION, nullable: true }),
    fields: checkSortedUnique(r.items("fields", checkFieldName), "access item fields"),
  };
  r.done();
  if (!out.fields.length) throw malformed("access item: ask for at least one field");
  return freeze(out);
}

export function readCacheRequest(value) {
  const r = new Reader(value, "cache");
  const out = {
    seconds: r.integer("seconds", { high: 30 * 86400 }),
    scope: r.choice("scope", CACHE_SCOPES),
  };
  r.done();
  return Object.freeze(out);
}

export function readAccessStatement(value) {
  const r = new Reader(value, "access statement");
  const out = {
    jti: checkId(r.raw("jti"), KIND.jti, "jti"),
    vault: checkId(r.raw("vault"), KIND.vault, "vault"),
    client: checkId(r.raw("client"), KIND.client, "client"),
    items: r.items("items", readAccessItem, { maxLen: 64 }),
    purpose: r.text("purpose", { maxLen: 1024 }),
    context: r.parsed("context", readRequestContext),
    // The one-time key the release is sealed to.
    epk: r.parsed("epk", parseHpkePublic),
    cache: r.parsed("cache", readCacheRequest),
    at: r.integer("at"),
    exp: r.integer("exp"),
  };
  r.done();
  const itemIds = out.items.map((i) => i.item);
  if (!itemIds.length || new Set(itemIds).size !== itemIds.length) {
    throw malformed("access statement: at least one item, each at most once");
  }
  if (out.items.reduce((n, i) => n + i.fields.length, 0) > MAX_ACCESS_FIELDS) {
    throw malformed(`access statement: more than ${MAX_ACCESS_FIELDS} fields in all`);
  }
  return freeze(out);
}
readAccessStatement.typ = TYP.access;

export function readRelease(value) {
  const r = new Reader(value, "release");
  const out = {
    vault: checkId(r.raw("vault"), KIND.vault, "vault"),
    request: r.digest("request"),
    approver: checkId(r.raw("approver"), KIND.approver, "approver"),
    manifests: checkSortedUnique(
      r.items("manifests", (v) => parseDigest(v, "manifest hash"), { maxLen: 64 }),
      "release manifests",
    ),
    blob: r.b64("blob", { maxLen: 1 << 18 }),
    cache_until: r.integer("cache_until"),
    at: r.integer("at"),
  };
  r.done();
  Object.freeze(out.manifests);
  return Object.freeze(out);
}
readRelease.typ = TYP.release;

export function releasePayload({ vault, request, approver, manifests, blob, cache_until, at }) {
  return {
    vault,
    request,
    approver,
    manifests: [...manifests],
    blob: blob instanceof Uint8Array ? b64uEncode(blob) : blob,
    cache_until,
    at,
  };
}

export function readDeny(value) {
  const r = new Reader(value, "deny");
  // Optional, and then one of DENY_GROUNDS only: never null (one meaning, one encoding)
  // nor free text (a client acts on it).
  const grounds =
    isObject(value) && Object.hasOwn(value, "grounds") ? r.choice("grounds", DENY_GROUNDS) : null;
  const out = {
    vault: checkId(r.raw("vault"), KIND.vault, "vault"),
    request: r.digest("request"),
    approver: checkId(r.raw("approver"), KIND.approver, "approver"),
    reason: r.text("reason", { maxLen: 1024 }),
    at: r.integer("at"),
    grounds,
  };
  r.done();
  return Object.freeze(out);
}
readDeny.typ = TYP.deny;

export function denyPayload({ vault, request, approver, reason, at, grounds = null }) {
  const out = { vault, request, approver, reason, at };
  // Absent, never null, for a decided deny: such payloads stay byte for byte what they
  // were before the key existed, so earlier signatures still verify.
  if (grounds !== null && grounds !== undefined) out.grounds = grounds;
  return out;
}

// --- audit checkpoints and consent ----------------------------------------------------------

export function readCheckpoint(value) {
  const r = new Reader(value, "checkpoint");
  const out = {
    vault: checkId(r.raw("vault"), KIND.vault, "vault"),
    approver: checkId(r.raw("approver"), KIND.approver, "approver"),
    seq: r.integer("seq"),
    head: r.digest("head"),
    at: r.integer("at"),
  };
  r.done();
  return Object.freeze(out);
}
readCheckpoint.typ = TYP.checkpoint;

export function readConsent(value) {
  const r = new Reader(value, "consent");
  const out = {
    vault: checkId(r.raw("vault"), KIND.vault, "vault"),
    approver: checkId(r.raw("approver"), KIND.approver, "approver"),
    action: r.text("action", { maxLen: 128 }),
    details: r.digest("details"),
    client: checkId(r.raw("client"), KIND.client, "client"),
    scope: r.text("scope", { maxLen: 256 }),
    at: r.integer("at"),
    exp: r.integer("exp"),
  };
  r.done();
  return Object.freeze(out);
}
readConsent.typ = TYP.consent;

// An action's parameters: a JSON object in the canonical subset, at most 8 KiB of it.
function consentDetails(value) {
  if (!isObject(value)) throw malformed("consent request.details: expected a JSON object");
  let size;
  try {
    size = canonicalBytes(value).length;
  } catch {
    throw malformed("consent request.details: not representable as canonical JSON");
  }
  if (size > MAX_CONSENT_DETAILS) {
    throw malformed(
      `consent request.details: more than ${MAX_CONSENT_DETAILS} bytes of canonical JSON`,
    );
  }
  return freeze(structuredClone(value));
}

export function readConsentRequest(value) {
  const r = new Reader(value, "consent request");
  const out = {
    jti: checkId(r.raw("jti"), KIND.jti, "jti"),
    vault: checkId(r.raw("vault"), KIND.vault, "vault"),
    client: checkId(r.raw("client"), KIND.client, "client"),
    action: r.text("action", { maxLen: 128 }),
    details: r.parsed("details", consentDetails),
    purpose: r.text("purpose", { maxLen: 1024 }),
    ttl: r.integer("ttl", { low: 1, high: MAX_CONSENT_TTL }),
    at: r.integer("at"),
    exp: r.integer("exp"),
  };
  r.done();
  return Object.freeze(out);
}
readConsentRequest.typ = TYP.consentRequest;

// --- signing and verifying under a statement's own typ ------------------------------------------

// Verify `token` as a statement of the reader's type signed by `key` named `kid`, then read
// its payload strictly.  Tying the reader to its typ means one statement can never be read
// as another.
export async function verifyTyped(token, read, key, kid) {
  return read(await verifyStatement(token, { typ: read.typ, kid, key }));
}

// Sign a payload under the reader's typ, after reading it back: never sign what a verifier
// would refuse.
export async function signTyped(read, payload, signingKey, kid) {
  read(payload);
  return signStatement(read.typ, kid, payload, signingKey);
}
