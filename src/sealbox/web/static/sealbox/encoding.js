// Canonical byte encodings: UTF-8, base64url, length-prefixed tuples, canonical
// JSON, labelled digests.  Mirrors src/sealbox/crypto/encoding.py (protocol §2).
//
// Every encoding here has exactly one valid form for a given value, and the
// decoders reject every other form.  Accepting a second spelling of the same
// value would let a relay alter the bytes of a signed or hashed object without
// changing its meaning to the parser, which breaks "hash the exact bytes".

import { codes, SealboxError } from "./errors.js";
import { digestPrefix } from "./labels.js";

/** Largest integer magnitude a double (and so JavaScript, and RFC 8785) holds exactly. */
export const MAX_SAFE_INTEGER = Number.MAX_SAFE_INTEGER;
const MAX_PART = 2 ** 32 - 1;
const U64_LIMIT = 1n << 64n;

function malformed(message) {
  return new SealboxError(codes.malformed, message);
}

// A lone surrogate has no UTF-8 form.  TextEncoder would silently replace it by
// U+FFFD, so two different strings would encode (and hash, and sign) the same.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function isWellFormed(text) {
  return !LONE_SURROGATE.test(text);
}

const encoder = new TextEncoder();
// fatal: invalid UTF-8 (overlong forms, surrogates, truncation) throws instead of
// becoming U+FFFD.  ignoreBOM: a leading BOM stays in the text rather than being
// dropped silently, so the bytes and the string always correspond one to one.
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** UTF-8 bytes of a string; a lone surrogate (no UTF-8 form) is `malformed`. */
export function utf8(text) {
  if (typeof text !== "string") {
    throw new TypeError("utf8 expects a string");
  }
  if (!isWellFormed(text)) {
    throw malformed("text: lone surrogate, not encodable as UTF-8");
  }
  return encoder.encode(text);
}

/** The string a UTF-8 byte string encodes, strictly: invalid UTF-8 is `malformed`. */
export function fromUtf8(bytes) {
  requireBytes(bytes, "fromUtf8");
  try {
    return strictDecoder.decode(bytes);
  } catch {
    throw malformed("text: not valid UTF-8");
  }
}

function requireBytes(value, what) {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`${what} expects a Uint8Array`);
  }
}

/** Concatenation of byte strings. */
export function concat(...parts) {
  let total = 0;
  for (const part of parts) {
    requireBytes(part, "concat");
    total += part.length;
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

// --- base64url (protocol §2.1) ---

const B64U_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64U_TEXT = /^[A-Za-z0-9_-]*$/;
const B64U_VALUES = new Map([...B64U_ALPHABET].map((c, i) => [c, i]));

/** base64url without padding (RFC 7515 §2). */
export function b64uEncode(bytes) {
  requireBytes(bytes, "b64uEncode");
  let out = "";
  let i = 0;
  for (; i + 3 <= bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out +=
      B64U_ALPHABET[(n >> 18) & 63] +
      B64U_ALPHABET[(n >> 12) & 63] +
      B64U_ALPHABET[(n >> 6) & 63] +
      B64U_ALPHABET[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += B64U_ALPHABET[(n >> 18) & 63] + B64U_ALPHABET[(n >> 12) & 63];
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out +=
      B64U_ALPHABET[(n >> 18) & 63] + B64U_ALPHABET[(n >> 12) & 63] + B64U_ALPHABET[(n >> 6) & 63];
  }
  return out;
}

/**
 * Decode unpadded base64url, strictly.
 *
 * Rejects padding, characters outside the URL-safe alphabet, a length of 1 mod 4,
 * and non-zero trailing bits (which would give one byte string many encodings).
 * With `length` the decoded value must have exactly that many bytes (keys,
 * nonces, signatures and digests have fixed sizes; a short one is never "close
 * enough").  Every failure is `malformed`.
 */
export function b64uDecode(text, { length = null, what = "value" } = {}) {
  if (typeof text !== "string" || !B64U_TEXT.test(text) || text.length % 4 === 1) {
    throw malformed(`${what}: not unpadded base64url`);
  }
  const out = new Uint8Array(Math.floor((text.length * 3) / 4));
  let bits = 0;
  let buffer = 0;
  let pos = 0;
  for (const c of text) {
    buffer = (buffer << 6) | B64U_VALUES.get(c);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[pos++] = (buffer >> bits) & 0xff;
      buffer &= (1 << bits) - 1;
    }
  }
  // Non-canonical trailing bits: the leftover bits must be zero, exactly as
  // re-encoding must give back the same text in the Python decoder.
  if (buffer !== 0) {
    throw malformed(`${what}: non-canonical base64url`);
  }
  if (length !== null && length !== undefined && out.length !== length) {
    throw malformed(`${what}: expected ${length} bytes, got ${out.length}`);
  }
  return out;
}

// --- length-prefixed tuples (protocol §2.2) ---

function u64(value) {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, value);
  return out;
}

/**
 * Unambiguous concatenation: each part as a 4-byte big-endian length, then its bytes.
 *
 * A string is UTF-8, a Uint8Array is raw bytes, a number or bigint is an 8-byte
 * unsigned big-endian integer (also length-prefixed, so an integer and an 8-byte
 * string never collide in position).  Without the prefixes ("ab", "c") and
 * ("a", "bc") would bind the same bytes, letting a blob move between contexts.
 */
export function lp(...parts) {
  const encoded = [];
  for (const part of parts) {
    let raw;
    if (typeof part === "string") {
      raw = utf8(part);
    } else if (part instanceof Uint8Array) {
      raw = part;
    } else if (typeof part === "number") {
      // Only exact integers: a number beyond 2^53 - 1 may already have lost its
      // low bits, and encoding the rounded value would bind the wrong context.
      if (!Number.isSafeInteger(part) || part < 0) {
        throw new RangeError("lp: integer part out of range");
      }
      raw = u64(BigInt(part));
    } else if (typeof part === "bigint") {
      if (part < 0n || part >= U64_LIMIT) {
        throw new RangeError("lp: integer part out of range");
      }
      raw = u64(part);
    } else {
      // Booleans, null and objects have no agreed encoding (Python refuses bool too).
      throw new TypeError("lp: parts are strings, Uint8Arrays or integers");
    }
    if (raw.length > MAX_PART) {
      throw new RangeError("lp: part too long");
    }
    const prefix = new Uint8Array(4);
    new DataView(prefix.buffer).setUint32(0, raw.length);
    encoded.push(prefix, raw);
  }
  return concat(...encoded);
}

// --- digests (protocol §2.4) ---

/** SHA-256 of `data` under a domain-separation `label` (raw 32 bytes). */
export async function digestBytes(label, data) {
  requireBytes(data, "digestBytes");
  const hash = await globalThis.crypto.subtle.digest("SHA-256", lp(label, data));
  return new Uint8Array(hash);
}

/** Text form of `digestBytes`: `sha256:` then unpadded base64url. */
export async function digest(label, data) {
  return digestPrefix + b64uEncode(await digestBytes(label, data));
}

/** Check that `text` is a digest in its one canonical text form; return it. */
export function parseDigest(text, { what = "digest" } = {}) {
  if (typeof text !== "string" || !text.startsWith(digestPrefix)) {
    throw malformed(`${what}: not a sha256 digest`);
  }
  b64uDecode(text.slice(digestPrefix.length), { length: 32, what });
  return text;
}

/**
 * Equality that takes time independent of where two equal-length values differ.
 *
 * For comparing secrets and MACs (a CSRF token, say): an early exit would tell an
 * attacker how many leading characters were right.  The length is not secret.
 * The only helper here that returns a boolean.
 */
export function constantTimeEqual(a, b) {
  const left = typeof a === "string" ? utf8(a) : a;
  const right = typeof b === "string" ? utf8(b) : b;
  requireBytes(left, "constantTimeEqual");
  requireBytes(right, "constantTimeEqual");
  if (left.length !== right.length) {
    return false;
  }
  let diff = 0;
  for (let i = 0; i < left.length; i++) {
    diff |= left[i] ^ right[i];
  }
  return diff === 0;
}

// --- canonical JSON (protocol §2.3) ---

function isPlainObject(value) {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return false;
  }
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

const ASCII = /^[\x00-\x7f]*$/;

function serialise(value, out) {
  if (value === null) {
    out.push("null");
  } else if (value === true || value === false) {
    out.push(value ? "true" : "false");
  } else if (typeof value === "number") {
    // No floats, and integers only within +-(2^53 - 1): beyond that RFC 8785 (JCS)
    // writes doubles in exponent form and Python writes every digit, so the two
    // would sign different bytes for "the same" statement.
    if (!Number.isSafeInteger(value)) {
      throw new TypeError("canonical JSON: only integers within +-(2^53 - 1) are allowed");
    }
    out.push(String(value)); // -0 prints as "0", as Python's int does.
  } else if (typeof value === "string") {
    if (!isWellFormed(value)) {
      throw new TypeError("canonical JSON: string with a lone surrogate");
    }
    // JSON.stringify escapes exactly what Python's json.dumps(ensure_ascii=False)
    // does: '"', '\\', the short forms \b \f \n \r \t, other C0 controls as
    // lowercase \u00xx; everything else (DEL, U+2028, non-ASCII) stays raw.
    out.push(JSON.stringify(value));
  } else if (Array.isArray(value)) {
    out.push("[");
    value.forEach((item, index) => {
      if (index) out.push(",");
      serialise(item, out);
    });
    out.push("]");
  } else if (isPlainObject(value)) {
    const keys = Object.keys(value);
    for (const key of keys) {
      // ASCII keys only: there sorting by code point (Python) and by UTF-16 code
      // unit (JCS, JavaScript's default sort) coincide.
      if (!ASCII.test(key)) {
        throw new TypeError("canonical JSON: object keys must be ASCII");
      }
    }
    keys.sort();
    out.push("{");
    keys.forEach((key, index) => {
      if (index) out.push(",");
      out.push(JSON.stringify(key), ":");
      serialise(value[key], out);
    });
    out.push("}");
  } else {
    // undefined, bigint, functions, Maps, Dates...: JSON.stringify would drop or
    // coerce them silently, and a signer must never sign something it did not mean.
    throw new TypeError(`canonical JSON: cannot encode a value of type ${typeof value}`);
  }
}

/**
 * The one serialisation of a JSON object that sealbox signs and hashes.
 *
 * Keys sorted, no insignificant white space.  Values are limited to the subset on
 * which this serialisation and RFC 8785 (JCS) agree byte for byte: null,
 * booleans, safe integers, well-formed strings, arrays and plain objects with
 * ASCII keys.  Anything else raises TypeError (a caller bug, as in Python).
 */
export function canonicalJson(value) {
  if (!isPlainObject(value)) {
    throw new TypeError("canonical JSON: the top-level value must be a plain object");
  }
  const out = [];
  serialise(value, out);
  return out.join("");
}

/** UTF-8 bytes of `canonicalJson(value)`. */
export function canonicalBytes(value) {
  return utf8(canonicalJson(value));
}

/**
 * Parse text or UTF-8 bytes that must be exactly `canonicalJson` of a JSON object.
 *
 * Rejects (as `malformed`) invalid UTF-8, a BOM, duplicate keys, floats,
 * exponents, NaN/Infinity, integers beyond +-(2^53 - 1), non-objects, lone
 * surrogate escapes, non-ASCII keys and every spelling that is not the canonical
 * one (white space, key order, escapes, -0, leading zeros).
 *
 * The check is "parse, re-serialise, compare": the input is accepted only if it
 * equals the canonical serialisation of the value it parses to.  That also
 * rejects duplicate keys, on which JSON.parse silently keeps the last one (two
 * parsers keeping different duplicates is a classic signing confusion): the
 * canonical form never repeats a key, so a text with a repeated key can never
 * equal it.
 */
export function parseCanonical(input, { what = "JSON" } = {}) {
  let text;
  if (typeof input === "string") {
    if (!isWellFormed(input)) {
      throw malformed(`${what}: not valid UTF-8`);
    }
    text = input;
  } else if (input instanceof Uint8Array) {
    try {
      text = strictDecoder.decode(input);
    } catch {
      throw malformed(`${what}: not valid JSON`);
    }
  } else {
    throw new TypeError("parseCanonical expects a string or a Uint8Array");
  }
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    // Syntax errors, and RangeError from nesting too deep for the stack.
    throw malformed(`${what}: not valid JSON`);
  }
  if (!isPlainObject(value)) {
    throw malformed(`${what}: not a JSON object`);
  }
  let canonical;
  try {
    canonical = canonicalJson(value);
  } catch {
    // Outside the JCS subset (see canonicalJson), a lone surrogate escape, or
    // nesting that exceeds the stack when re-serialised.
    throw malformed(`${what}: not in canonical form`);
  }
  if (canonical !== text) {
    throw malformed(`${what}: not in canonical form`);
  }
  return value;
}
