// Key types with strict text encodings, fingerprints and human safety codes;
// mirrors src/sealbox/crypto/keys.py (protocol §2.5).
//
// Two key kinds exist: X25519 keys that HPKE seals to, and Ed25519 keys that
// sign statements.  Each public key has one text form, `<prefix><base64url raw>`;
// the prefix names algorithm and version (labels.js), so a signing key can never
// be parsed as a sealing key or the other way round.
//
// Private keys are WebCrypto CryptoKeys.  Created non-extractable (the default),
// their bytes never reach JavaScript again: the browser keeps them, and a script
// injected later can use them only while the page still holds the object.
// WebCrypto cannot compute a public key from a private one, so where a private
// key is built from bytes it is imported once as extractable, its public half
// read from the JWK export (`x`), and then imported again with the extractability
// the caller asked for.

import { codes, SealboxError } from "./errors.js";
import { b64uDecode, b64uEncode, digest, digestBytes, utf8 } from "./encoding.js";
import { fingerprintKey, keyHpkePublic, keySignPublic } from "./labels.js";

export const KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;

const subtle = () => globalThis.crypto.subtle;
const ED25519 = { name: "Ed25519" };
const X25519 = { name: "X25519" };

function malformed(message) {
  return new SealboxError(codes.malformed, message);
}

function hexBytes(text) {
  return Uint8Array.from(text.match(/../g), (h) => parseInt(h, 16));
}

function hexOf(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// X25519 public keys of small order (RFC 7748 §6; the list libsodium rejects).
// Sealing to one of them gives an all-zero or attacker-known shared secret, so
// the parser refuses them up front.  X25519 ignores the top bit of the encoding
// (RFC 7748 §5), so each entry also has a twin with bit 255 set; the check clears
// that bit before looking a key up here.
const X25519_LOW_ORDER = new Set([
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
]);

/** The encoding with bit 255 cleared: the u-coordinate X25519 actually uses. */
function clearTopBit(raw) {
  const out = Uint8Array.from(raw);
  out[31] &= 0x7f;
  return out;
}

// --- Ed25519 public key validation (RFC 8032 §5.1) ---

const P = (1n << 255n) - 19n;
const mod = (a) => ((a % P) + P) % P;

function powMod(base, exponent) {
  let result = 1n;
  let b = mod(base);
  let e = exponent;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % P;
    b = (b * b) % P;
    e >>= 1n;
  }
  return result;
}

const D = mod(-121665n * powMod(121666n, P - 2n));
const SQRT_M1 = powMod(2n, (P - 1n) / 4n);

/** Point doubling in projective coordinates (a = -1), no inversion (RFC 8032 §5.1.4). */
function double([x, y, z]) {
  const a = (x * x) % P;
  const b = (y * y) % P;
  const c = (2n * z * z) % P;
  const h = a + b;
  const e = mod(h - (x + y) * (x + y));
  const g = mod(a - b);
  const f = (c + g) % P;
  return [(e * f) % P, (g * h) % P, (f * g) % P];
}

function littleEndian(bytes) {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]);
  return n;
}

// Verdicts are cached by key (keys recur: directory and certificate keys).  Only
// public keys pass through here, so nothing secret is kept.
const ED25519_VERDICTS = new Map();
const ED25519_CACHE_SIZE = 4096;

/**
 * Refuse public keys that WebCrypto loads but that no honest signer has.
 *
 * WebCrypto (like pyca) accepts any 32 bytes as an Ed25519 public key.  That
 * admits encodings that are not points at all, non-canonical encodings (one key,
 * two spellings), and the eight points of small order, among them the identity,
 * under which the signature (R = B, S = 1) verifies for *every* message.  A
 * certificate carrying such a key would let anyone sign as that client.  The
 * check decodes as RFC 8032 §5.1.3 does and multiplies by the cofactor 8 (three
 * doublings): only small-order points reach the identity.  Same logic as
 * `_check_ed25519_public` in keys.py.
 */
function checkEd25519Public(raw) {
  const cacheKey = hexOf(raw);
  const cached = ED25519_VERDICTS.get(cacheKey);
  if (cached !== undefined) {
    if (cached !== null) throw malformed(cached);
    return;
  }
  const verdict = ed25519Verdict(raw);
  if (ED25519_VERDICTS.size >= ED25519_CACHE_SIZE) ED25519_VERDICTS.clear();
  ED25519_VERDICTS.set(cacheKey, verdict);
  if (verdict !== null) throw malformed(verdict);
}

/** null for an acceptable key, else the reason it is refused. */
function ed25519Verdict(raw) {
  const encoded = littleEndian(raw);
  const sign = encoded >> 255n;
  const y = encoded & ((1n << 255n) - 1n);
  if (y >= P) return "signing public key: non-canonical encoding";
  const u = mod(y * y - 1n);
  const v = mod(D * y * y + 1n);
  // x = u v^3 (u v^7)^((p - 5) / 8): the square root of u / v with one exponentiation.
  let x = (((u * powMod(v, 3n)) % P) * powMod(u * powMod(v, 7n), (P - 5n) / 8n)) % P;
  const vx2 = (((v * x) % P) * x) % P;
  if (vx2 === mod(-u) && u !== 0n) {
    x = (x * SQRT_M1) % P;
  } else if (vx2 !== u) {
    return "signing public key: not a point on Ed25519";
  }
  if (x === 0n && sign === 1n) return "signing public key: non-canonical encoding";
  if ((x & 1n) !== sign) x = P - x;
  let point = [x, y, 1n];
  for (let i = 0; i < 3; i++) point = double(point);
  if (point[0] === 0n && point[1] === point[2]) return "signing public key: small-order point";
  return null;
}

function fromText(text, prefix, what) {
  if (typeof text !== "string" || !text.startsWith(prefix)) {
    throw malformed(`${what}: expected text starting with ${JSON.stringify(prefix)}`);
  }
  return b64uDecode(text.slice(prefix.length), { length: KEY_BYTES, what });
}

function checkRaw(raw, what) {
  if (!(raw instanceof Uint8Array) || raw.length !== KEY_BYTES) {
    throw malformed(`${what}: expected 32 bytes`);
  }
  return Uint8Array.from(raw); // A private copy: the caller's array may change later.
}

/**
 * A short code a person compares on two screens: four groups of five digits.
 *
 * Each group is five digest bytes read as a big-endian integer modulo 100000 (the
 * construction of Signal's safety numbers), about 66 bits that an attacker would
 * have to match with a key of its own.
 */
export function safetyCode(digestBytesValue) {
  if (!(digestBytesValue instanceof Uint8Array) || digestBytesValue.length < 20) {
    throw new RangeError("safetyCode needs at least 20 digest bytes");
  }
  const groups = [];
  for (let i = 0; i < 20; i += 5) {
    let n = 0;
    for (let j = i; j < i + 5; j++) n = n * 256 + digestBytesValue[j]; // < 2^40: exact
    groups.push(String(n % 100000).padStart(5, "0"));
  }
  return groups.join(" ");
}

class PublicKeyBase {
  #raw;

  constructor(raw, prefix) {
    this.#raw = raw;
    /** The text form: prefix and unpadded base64url of the raw bytes. */
    this.text = prefix + b64uEncode(raw);
  }

  /** The 32 raw bytes (a fresh copy each time, so no caller can alter the key). */
  get raw() {
    return Uint8Array.from(this.#raw);
  }

  /** `sha256:` digest of the text form under the key-fingerprint label. */
  async fingerprint() {
    return digest(fingerprintKey, utf8(this.text));
  }

  async safetyCode() {
    return safetyCode(await digestBytes(fingerprintKey, utf8(this.text)));
  }

  toString() {
    return this.text;
  }

  toJSON() {
    return this.text;
  }
}

/** An X25519 public key that HPKE seals to. */
export class HpkePublicKey extends PublicKeyBase {
  constructor(raw) {
    const bytes = checkRaw(raw, "HPKE public key");
    if (X25519_LOW_ORDER.has(hexOf(clearTopBit(bytes)))) {
      throw malformed("HPKE public key: small-order point");
    }
    super(bytes, keyHpkePublic);
    Object.freeze(this);
  }

  /** A WebCrypto X25519 public CryptoKey (for deriveBits). */
  async cryptoKey() {
    return subtle().importKey("raw", this.raw, X25519, true, []);
  }
}

/** An Ed25519 public key that verifies sealbox statements. */
export class VerifyKey extends PublicKeyBase {
  constructor(raw) {
    const bytes = checkRaw(raw, "signing public key");
    checkEd25519Public(bytes);
    super(bytes, keySignPublic);
    Object.freeze(this);
  }

  /** A WebCrypto Ed25519 public CryptoKey. */
  async cryptoKey() {
    return subtle().importKey("raw", this.raw, ED25519, true, ["verify"]);
  }

  /** Raise `signature_invalid` unless `signature` is valid for `message`; returns nothing. */
  async verify(signature, message) {
    if (!(signature instanceof Uint8Array) || !(message instanceof Uint8Array)) {
      throw new TypeError("verify expects Uint8Arrays");
    }
    let ok = false;
    if (signature.length === SIGNATURE_BYTES) {
      try {
        ok = await subtle().verify(ED25519, await this.cryptoKey(), signature, message);
      } catch {
        ok = false;
      }
    }
    if (!ok) {
      throw new SealboxError(codes.signature_invalid, "signature does not verify");
    }
  }
}

/** Parse the text form of an HPKE public key, strictly (`malformed` otherwise). */
export function parseHpkePublic(text) {
  return new HpkePublicKey(fromText(text, keyHpkePublic, "HPKE public key"));
}

/** Parse the text form of a signing public key, strictly (`malformed` otherwise). */
export function parseVerifyKey(text) {
  return new VerifyKey(fromText(text, keySignPublic, "signing public key"));
}

/** Fingerprint of a public key given as its text form (or as a key object). */
export async function fingerprint(key) {
  const text = typeof key === "string" ? key : key?.text;
  const parsed =
    typeof text === "string" && text.startsWith(keyHpkePublic)
      ? parseHpkePublic(text)
      : parseVerifyKey(text);
  return parsed.fingerprint();
}

// --- private keys ---

// PKCS#8 (RFC 8410) for a bare 32-byte Ed25519 seed / X25519 scalar: WebCrypto
// imports private OKP keys only as PKCS#8 or JWK, never as raw bytes.
const PKCS8_PREFIX = {
  sig: hexBytes("302e020100300506032b657004220420"),
  hpke: hexBytes("302e020100300506032b656e04220420"),
};
const ALGORITHM = { sig: ED25519, hpke: X25519 };
const USAGES = { sig: ["sign"], hpke: ["deriveBits"] };

async function publicRawOf(extractableKey) {
  const jwk = await subtle().exportKey("jwk", extractableKey);
  return b64uDecode(jwk.x, { length: KEY_BYTES, what: "public key" });
}

class PrivateKeyBase {
  #key;
  #public;

  constructor(cryptoKey, publicKey) {
    this.#key = cryptoKey;
    this.#public = publicKey;
    Object.freeze(this);
  }

  /** The WebCrypto private CryptoKey. */
  get cryptoKey() {
    return this.#key;
  }

  get extractable() {
    return this.#key.extractable;
  }

  publicKey() {
    return this.#public;
  }

  /** PKCS#8 bytes, for wrapping under the passkey-derived key; only if extractable. */
  async exportPkcs8() {
    if (!this.#key.extractable) {
      throw new TypeError("this private key is not extractable");
    }
    return new Uint8Array(await subtle().exportKey("pkcs8", this.#key));
  }

  toJSON() {
    // Never serialise a private key by accident (logs, postMessage, storage).
    return `[${this.constructor.name}]`;
  }
}

/** An Ed25519 private key: an approver's signing key. */
export class SigningKey extends PrivateKeyBase {
  /** Ed25519 signature (64 bytes) over `message`. */
  async sign(message) {
    if (!(message instanceof Uint8Array)) throw new TypeError("sign expects a Uint8Array");
    return new Uint8Array(await subtle().sign(ED25519, this.cryptoKey, message));
  }
}

/** An X25519 private key: an approver's long-term key or a one-time key. */
export class HpkePrivateKey extends PrivateKeyBase {}

async function fromPkcs8(kind, pkcs8, extractable) {
  let probe;
  try {
    probe = await subtle().importKey("pkcs8", pkcs8, ALGORITHM[kind], true, USAGES[kind]);
  } catch {
    throw malformed(`${kind === "sig" ? "signing" : "HPKE"} private key: not a valid PKCS#8 key`);
  }
  const publicRaw = await publicRawOf(probe);
  const key = extractable
    ? probe
    : await subtle().importKey("pkcs8", pkcs8, ALGORITHM[kind], false, USAGES[kind]);
  return kind === "sig"
    ? new SigningKey(key, new VerifyKey(publicRaw))
    : new HpkePrivateKey(key, new HpkePublicKey(publicRaw));
}

/**
 * Import a PKCS#8 private key (as unwrapped from the browser's key store).
 * `kind` is "sig" (Ed25519) or "hpke" (X25519).  Bytes WebCrypto refuses, or a
 * key of the other kind, are `malformed`.
 */
export async function importPkcs8(kind, bytes, { extractable = false } = {}) {
  if (kind !== "sig" && kind !== "hpke") throw new TypeError('kind must be "sig" or "hpke"');
  if (!(bytes instanceof Uint8Array)) throw new TypeError("importPkcs8 expects a Uint8Array");
  return fromPkcs8(kind, bytes, extractable);
}

function fromRaw(kind, raw, extractable) {
  if (!(raw instanceof Uint8Array) || raw.length !== KEY_BYTES) {
    throw malformed(`${kind === "sig" ? "signing" : "HPKE"} private key: expected 32 bytes`);
  }
  const pkcs8 = new Uint8Array(PKCS8_PREFIX[kind].length + KEY_BYTES);
  pkcs8.set(PKCS8_PREFIX[kind]);
  pkcs8.set(raw, PKCS8_PREFIX[kind].length);
  return fromPkcs8(kind, pkcs8, extractable).finally(() => pkcs8.fill(0));
}

/** Ed25519 key from its 32-byte RFC 8032 seed (vectors, or a key restored from text). */
export async function signingKeyFromSeed(seed32, { extractable = false } = {}) {
  return fromRaw("sig", seed32, extractable);
}

/** X25519 key from its 32-byte RFC 7748 scalar. */
export async function hpkeKeyFromRaw(raw32, { extractable = false } = {}) {
  return fromRaw("hpke", raw32, extractable);
}

async function generate(kind, extractable) {
  const pair = await subtle().generateKey(ALGORITHM[kind], extractable, USAGES[kind]);
  const publicRaw = new Uint8Array(await subtle().exportKey("raw", pair.publicKey));
  return kind === "sig"
    ? new SigningKey(pair.privateKey, new VerifyKey(publicRaw))
    : new HpkePrivateKey(pair.privateKey, new HpkePublicKey(publicRaw));
}

/** A fresh Ed25519 signing key (non-extractable unless asked). */
export async function generateSigningKey({ extractable = false } = {}) {
  return generate("sig", extractable);
}

/** A fresh X25519 key (non-extractable unless asked). */
export async function generateHpkeKey({ extractable = false } = {}) {
  return generate("hpke", extractable);
}
