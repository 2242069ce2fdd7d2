// The audit log as a verifier checks it: event hashes, the chain, approver-signed checkpoints.
// Mirrors src/sealbox/protocol/audit.py; tests/js/protocol/audit.test.mjs holds both to
// tests/vectors/sealbox/audit.json.
//
// Event n carries the hash of event n - 1 (`prev_hash`; the first one 64 zeros) and its own
// hash over that link and every field.  A checkpoint (sealbox.checkpoint.v1) is an approver's
// signature over "event `seq` has hash `head`": a log served later that ends before it
// (truncated), or has another event at its seq (rewritten, forked), is caught.  Failures are
// SealboxError "audit_broken" with `seq`, the first event that fails.

import { b64uDecode, b64uEncode, canonicalBytes, canonicalJson, lp } from "./encoding.js";
import { SealboxError, codes } from "./errors.js";
import { peekHeader, verifyStatement } from "./jws.js";
import { digestPrefix, hashAudit } from "./labels.js";
import { TYP, checkId, KIND, parseDigest } from "./statements.js";

/** The `prev_hash` of a vault's first event. */
export const GENESIS = "0".repeat(64);

function broken(message, seq) {
  const error = new SealboxError("audit_broken", message);
  error.seq = seq;
  return error;
}

function toHex(bytes) {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function fromHex(text) {
  return Uint8Array.from(text.match(/../g), (pair) => parseInt(pair, 16));
}

/** The fields of an event, in order (Python's FIELDS). */
export const FIELDS = Object.freeze(["seq", "at", "actor", "action", "severity", "client_id",
  "item_id", "source_ip", "detail", "prev_hash", "hash"]);
/** Severities, least to most severe. */
export const SEVERITIES = Object.freeze(["info", "notice", "warning", "alert", "critical"]);
const MAX_TEXT = 4096;
const HEX64 = /^[0-9a-f]{64}$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function malformed(message) {
  return new SealboxError(codes.malformed, message);
}

function isPlainObject(value) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function int(value, what, low) {
  // Safe integers only, as Python's from_json (a double beyond 2^53 - 1 is not exact).
  if (!Number.isSafeInteger(value) || value < low) {
    throw malformed(`${what}: expected an integer of at least ${low}`);
  }
  return value;
}

function text(value, what, nullable = false) {
  if (value === null && nullable) return null;
  // Python counts code points; so does this (a surrogate pair is one).
  if (typeof value !== "string" || [...value].length > MAX_TEXT) {
    throw malformed(`${what}: expected text (at most ${MAX_TEXT} characters)`);
  }
  if (LONE_SURROGATE.test(value)) throw malformed(`${what}: not valid text (a lone surrogate)`);
  return value;
}

function hex(value, what) {
  if (typeof value !== "string" || !HEX64.test(value)) {
    throw malformed(`${what}: expected 64 lowercase hex digits`);
  }
  return value;
}

/**
 * One event as the relay serves it, parsed strictly: exactly FIELDS, each of its type, `detail`
 * hashable.  The same events as Python's AuditEvent.from_json, refused alike ("malformed"):
 * the hash's length-prefixed encoding does not tell an integer from an 8-byte string, nor
 * catch a type the relay swapped, so the types are fixed here, before anything is hashed.
 */
export function parseEvent(value) {
  if (!isPlainObject(value)) throw malformed("audit event: expected a JSON object");
  const keys = Object.keys(value);
  const missing = FIELDS.filter((k) => !Object.hasOwn(value, k));
  const extra = keys.filter((k) => !FIELDS.includes(k));
  if (missing.length || extra.length) {
    throw malformed(`audit event: missing [${missing}], unexpected [${extra}]`);
  }
  const seq = int(value.seq, "audit event.seq", 1);
  const what = `audit event ${seq}`;
  if (typeof value.severity !== "string" || !SEVERITIES.includes(value.severity)) {
    throw malformed(`${what}.severity: expected one of ${SEVERITIES.join(", ")}`);
  }
  if (!isPlainObject(value.detail)) throw malformed(`${what}.detail: expected a JSON object`);
  try {
    canonicalBytes(value.detail);
  } catch {
    throw malformed(`${what}.detail: not hashable (floats, big integers, non-ASCII keys)`);
  }
  return Object.freeze({
    seq, at: int(value.at, `${what}.at`, 0),
    actor: text(value.actor, `${what}.actor`), action: text(value.action, `${what}.action`),
    severity: value.severity,
    client_id: text(value.client_id, `${what}.client_id`, true),
    item_id: text(value.item_id, `${what}.item_id`, true),
    source_ip: text(value.source_ip, `${what}.source_ip`, true),
    detail: value.detail, prev_hash: hex(value.prev_hash, `${what}.prev_hash`),
    hash: hex(value.hash, `${what}.hash`),
  });
}

/**
 * One event's hash (lowercase hex), chained to `prevHash`.  Hash only a parsed event
 * (parseEvent): lp encodes the integers seq and at as 8 bytes, as it would an 8-byte string.
 */
export async function eventHash(prevHash, e) {
  const data = lp(hashAudit, prevHash, e.seq, e.at, e.actor, e.action, e.severity,
    e.client_id || "", e.item_id || "", e.source_ip || "", canonicalJson(e.detail));
  return toHex(new Uint8Array(await globalThis.crypto.subtle.digest("SHA-256", data)));
}

/** An event hash as a checkpoint's `head` carries it: `sha256:` and base64url. */
export function headDigest(hexHash) {
  return digestPrefix + b64uEncode(fromHex(hexHash));
}

/** The event hash (hex) a checkpoint's head names. */
export function headHex(head) {
  parseDigest(head, "checkpoint head");
  return toHex(b64uDecode(head.slice(digestPrefix.length), { length: 32, what: "checkpoint head" }));
}

/**
 * A checkpoint's statement, its signature checked against a current approver of `directory`
 * (a directory verified from the pinned link 0). Signed by someone not (or no longer) an
 * approver: "checkpoint_signer_unknown".
 */
export async function verifyCheckpoint(token, directory) {
  let kid;
  try {
    kid = peekHeader(token).kid;
  } catch (error) {
    throw broken(`a checkpoint does not verify: ${error.message}`, 0);
  }
  const record = directory.approvers.get(kid);
  if (record === undefined) {
    const error = new SealboxError("checkpoint_signer_unknown",
      `a checkpoint is signed by ${kid}, not a current approver`);
    error.seq = 0;
    throw error;
  }
  let payload;
  try {
    payload = await verifyStatement(token, { typ: TYP.checkpoint, kid, key: record.sig_pk });
  } catch (error) {
    throw broken(`a checkpoint does not verify: ${error.message}`, 0);
  }
  const keys = Object.keys(payload).sort().join();
  if (keys !== "approver,at,head,seq,vault" || !Number.isSafeInteger(payload.seq) ||
      !Number.isSafeInteger(payload.at) || payload.seq < 0 || payload.at < 0) {
    throw broken("a checkpoint is malformed", 0);
  }
  checkId(payload.vault, KIND.vault, "checkpoint.vault");
  parseDigest(payload.head, "checkpoint.head");
  if (payload.approver !== kid || payload.vault !== directory.vault) {
    throw broken(`checkpoint at seq ${payload.seq} is not this vault's, or not its signer's`,
      payload.seq);
  }
  return Object.freeze({ ...payload });
}

/**
 * Check a run of events from seq 1: each one parsed strictly (parseEvent: "malformed"), its
 * seq, link and hash; then each checkpoint (already verified) and each known head ({seq,
 * hash}) must name an event of the run with that very hash; one beyond the end means the log
 * was truncated. Resolves to {events, head, checkpoints}; rejects with "audit_broken" at the
 * first failure.
 */
export async function verifyLog(events, { checkpoints = [], known = [] } = {}) {
  let prevSeq = 0;
  let prev = GENESIS;
  const hashes = new Map();
  for (const raw of events) {
    const e = parseEvent(raw);
    const expected = prevSeq + 1;
    if (e.seq !== expected) {
      const kind = e.seq > expected ? "missing (deleted, or the log reordered)"
        : "out of order (repeated, reordered or inserted)";
      throw broken(`event ${expected} is ${kind}: event ${e.seq} follows event ${prevSeq}`,
        expected);
    }
    if (e.prev_hash !== prev) {
      throw broken(`event ${e.seq} does not link to event ${prevSeq} (an event was inserted, ` +
        "removed or changed before it)", e.seq);
    }
    if ((await eventHash(prev, e)) !== e.hash) {
      throw broken(`event ${e.seq} was changed after it was written (its hash does not ` +
        "match its fields)", e.seq);
    }
    hashes.set(e.seq, e.hash);
    prevSeq = e.seq;
    prev = e.hash;
  }
  const points = [
    ...checkpoints.map((c) => [c.seq, c.head, `the checkpoint signed by approver ${c.approver}`]),
    ...known.map((k) => [k.seq, headDigest(k.hash), "the head verified before"]),
  ].sort((a, b) => a[0] - b[0]);
  for (const [seq, head, what] of points) {
    if (seq > prevSeq) {
      throw broken(`event ${seq} is missing: the log served ends at event ${prevSeq}, but ` +
        `${what} is at event ${seq} (the log was truncated)`, seq);
    }
    if (seq === 0) continue;
    if (headDigest(hashes.get(seq)) !== head) {
      throw broken(`event ${seq} differs from ${what} (the log was rewritten, or forked)`, seq);
    }
  }
  return Object.freeze({
    events: events.length,
    head: prevSeq ? { seq: prevSeq, hash: prev } : null,
    checkpoints: [...checkpoints].sort((a, b) => a.seq - b.seq),
  });
}

/**
 * Every checkpoint the relay lists (unverified), a page at a time: `get(path)` resolves to the
 * relay's JSON for a GET under the vault.  Pages run by seq, ascending; `next_after_seq` (null
 * on the last page) is where the next begins, as Python's fetch_checkpoints reads them.  Only
 * the first page would leave every later checkpoint (the newest) unchecked.
 */
export async function listCheckpoints(get, { limit = 1000 } = {}) {
  const found = [];
  let after = 0;
  for (;;) {
    const body = await get(`/audit/checkpoints?after_seq=${after}&limit=${limit}`);
    const page = body?.checkpoints;
    if (!Array.isArray(page)) throw malformed("the relay's checkpoint list is not a list");
    found.push(...page);
    const next = body.next_after_seq;
    if (!page.length || !Number.isSafeInteger(next) || next <= after) return found;
    after = next;
  }
}

/** The payload of a new checkpoint of `head` ({seq, hash}) by `approver`. */
export function checkpointPayload({ vault, approver, head, at }) {
  return { vault, approver, seq: head.seq, head: headDigest(head.hash), at };
}
