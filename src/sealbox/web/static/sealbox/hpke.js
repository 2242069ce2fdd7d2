// HPKE (RFC 9180) base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.
// Mirrors src/sealbox/crypto/hpke.py (protocol §4.1).
//
// Written by hand because WebCrypto has no HPKE.  It is built from the WebCrypto
// primitives only: X25519 deriveBits for the DH, HMAC-SHA256 for HKDF (WebCrypto's
// own HKDF always runs Extract and Expand together, and RFC 9180's labelled
// schedule needs them apart), AES-256-GCM for the AEAD.  LabeledExtract,
// LabeledExpand and DeriveKeyPair follow RFC 9180 §4 and §7.1.3 literally, so an
// injected `ikmE` reproduces the RFC's vectors and sealbox's hpke.json byte for
// byte; the tests hold this module to both.
//
// sealbox seals single messages: the wire form is `enc || ciphertext || tag`
// (32-byte encapsulated key, then the AEAD output), sequence number 0, empty AEAD
// aad.  Context is bound only through `info` (see `info()` below), so a blob
// sealed for one context never opens in another.
//
// The API is `seal` and `open`.  The RFC's building blocks (extract, expand,
// labeledExtract, labeledExpand, deriveKeyPair, keySchedule, encap, decap) and
// the aad-taking `sealWithParts` / `openWithAad` are exported so the tests can
// check each step against the RFC's intermediate values; nothing else needs them.

import { codes, SealboxError } from "./errors.js";
import { concat, lp, utf8 } from "./encoding.js";
import {
  generateHpkeKey,
  HpkePrivateKey,
  HpkePublicKey,
  hpkeKeyFromRaw,
  parseHpkePublic,
} from "./keys.js";

export const ENC_BYTES = 32;
export const TAG_BYTES = 16;
/** Bytes a sealed blob adds to its plaintext. */
export const OVERHEAD = ENC_BYTES + TAG_BYTES;

const subtle = () => globalThis.crypto.subtle;
const HASH_BYTES = 32;

// RFC 9180 identifiers of the suite (§7.1-7.3): KEM 0x0020, KDF 0x0001, AEAD 0x0002.
const KEM_SUITE_ID = concat(utf8("KEM"), Uint8Array.of(0x00, 0x20));
const HPKE_SUITE_ID = concat(utf8("HPKE"), Uint8Array.of(0x00, 0x20, 0x00, 0x01, 0x00, 0x02));
const HPKE_V1 = utf8("HPKE-v1");
const MODE_BASE = Uint8Array.of(0x00);

/** The HPKE `info` for a context: the label and every part, length-prefixed. */
export function info(label, ...parts) {
  return lp(label, ...parts);
}

// --- HKDF-SHA256 on HMAC (RFC 5869) ---

async function hmac(key, data) {
  // WebCrypto refuses an empty HMAC key; HMAC pads every key shorter than the
  // block with zeros, so HashLen zero bytes is the same key (RFC 5869 §2.2 also
  // names that as the default salt).
  const keyBytes = key.length ? key : new Uint8Array(HASH_BYTES);
  const cryptoKey = await subtle().importKey(
    "raw",
    keyBytes,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await subtle().sign("HMAC", cryptoKey, data));
}

/** HKDF-Extract(salt, ikm). */
export async function extract(salt, ikm) {
  return hmac(salt, ikm);
}

/** HKDF-Expand(prk, info, length), length at most 255 * 32. */
export async function expand(prk, infoBytes, length) {
  if (!Number.isInteger(length) || length < 0 || length > 255 * HASH_BYTES) {
    throw new RangeError("HKDF-Expand: cannot derive keys larger than 8160 bytes");
  }
  const out = new Uint8Array(length);
  let block = new Uint8Array(0);
  for (let i = 1, filled = 0; filled < length; i++) {
    block = await hmac(prk, concat(block, infoBytes, Uint8Array.of(i)));
    out.set(block.subarray(0, Math.min(block.length, length - filled)), filled);
    filled += block.length;
  }
  return out;
}

/** RFC 9180 §4: LabeledExtract. */
export async function labeledExtract(suiteId, salt, label, ikm) {
  return extract(salt, concat(HPKE_V1, suiteId, utf8(label), ikm));
}

/** RFC 9180 §4: LabeledExpand. */
export async function labeledExpand(suiteId, prk, label, infoBytes, length) {
  const lengthBytes = Uint8Array.of(length >> 8, length & 0xff);
  return expand(prk, concat(lengthBytes, HPKE_V1, suiteId, utf8(label), infoBytes), length);
}

/** RFC 9180 §7.1.3 DeriveKeyPair for X25519: the private scalar from `ikm`. */
export async function deriveKeyPairBytes(ikm) {
  const dkpPrk = await labeledExtract(KEM_SUITE_ID, new Uint8Array(0), "dkp_prk", ikm);
  return labeledExpand(KEM_SUITE_ID, dkpPrk, "sk", new Uint8Array(0), 32);
}

/** DeriveKeyPair as an HpkePrivateKey (non-extractable). */
export async function deriveKeyPair(ikm) {
  const sk = await deriveKeyPairBytes(ikm);
  try {
    return await hpkeKeyFromRaw(sk);
  } finally {
    sk.fill(0);
  }
}

/** RFC 9180 §5.1 key schedule, base mode (no PSK): `{key, baseNonce}`. */
export async function keySchedule(sharedSecret, infoBytes) {
  const empty = new Uint8Array(0);
  const pskIdHash = await labeledExtract(HPKE_SUITE_ID, empty, "psk_id_hash", empty);
  const infoHash = await labeledExtract(HPKE_SUITE_ID, empty, "info_hash", infoBytes);
  const context = concat(MODE_BASE, pskIdHash, infoHash);
  const secret = await labeledExtract(HPKE_SUITE_ID, sharedSecret, "secret", empty);
  const key = await labeledExpand(HPKE_SUITE_ID, secret, "key", context, 32);
  const baseNonce = await labeledExpand(HPKE_SUITE_ID, secret, "base_nonce", context, 12);
  secret.fill(0);
  return { key, baseNonce };
}

async function dh(privateKey, publicRaw) {
  const publicKey = await subtle().importKey("raw", publicRaw, { name: "X25519" }, true, []);
  const bits = new Uint8Array(
    await subtle().deriveBits({ name: "X25519", public: publicKey }, privateKey.cryptoKey, 256),
  );
  // RFC 9180 §7.1.4: an all-zero DH output (a small-order peer key) MUST be
  // refused; WebCrypto should already throw, this does not rely on it.
  if (bits.every((b) => b === 0)) {
    throw new Error("X25519: all-zero shared secret");
  }
  return bits;
}

/** DHKEM ExtractAndExpand (RFC 9180 §4.1). */
async function kemSharedSecret(dhBytes, enc, recipientRaw) {
  const eaePrk = await labeledExtract(KEM_SUITE_ID, new Uint8Array(0), "eae_prk", dhBytes);
  return labeledExpand(KEM_SUITE_ID, eaePrk, "shared_secret", concat(enc, recipientRaw), 32);
}

async function aesGcmKey(raw, usage) {
  return subtle().importKey("raw", raw, { name: "AES-GCM" }, false, [usage]);
}

function checkBytes(value, what) {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`);
}

/**
 * DHKEM Encap (RFC 9180 §4.1): `{sharedSecret, enc}` for `recipientPublic`
 * (HpkePublicKey or its text form).  With `ikmE` the ephemeral key is
 * DeriveKeyPair(ikmE) (vectors); without, a fresh key pair whose private half
 * never leaves WebCrypto.
 */
export async function encap(recipientPublic, { ikmE } = {}) {
  const recipient =
    typeof recipientPublic === "string" ? parseHpkePublic(recipientPublic) : recipientPublic;
  if (!(recipient instanceof HpkePublicKey)) {
    throw new TypeError("seal needs an HpkePublicKey (or its text form)");
  }
  let ephemeral;
  if (ikmE === undefined || ikmE === null) {
    ephemeral = await generateHpkeKey();
  } else {
    checkBytes(ikmE, "ikmE");
    if (ikmE.length < 32) throw new RangeError("ikmE must have at least 32 bytes");
    ephemeral = await deriveKeyPair(ikmE);
  }
  const enc = ephemeral.publicKey().raw;
  const recipientRaw = recipient.raw;
  const dhBytes = await dh(ephemeral, recipientRaw);
  const sharedSecret = await kemSharedSecret(dhBytes, enc, recipientRaw);
  dhBytes.fill(0);
  return { sharedSecret, enc };
}

/** DHKEM Decap (RFC 9180 §4.1): the shared secret for `enc` and the recipient's key. */
export async function decap(enc, recipientPrivate) {
  const dhBytes = await dh(recipientPrivate, enc);
  const sharedSecret = await kemSharedSecret(dhBytes, enc, recipientPrivate.publicKey().raw);
  dhBytes.fill(0);
  return sharedSecret;
}

/**
 * RFC 9180 SealBase with an optional fixed ephemeral key and aad.
 * `aad` exists only so the tests can replay the RFC vectors (which use a
 * non-empty aad); sealbox itself always seals with an empty aad.
 */
export async function sealWithParts(recipientPublic, infoBytes, plaintext, { ikmE, aad } = {}) {
  checkBytes(infoBytes, "info");
  checkBytes(plaintext, "plaintext");
  const { sharedSecret, enc } = await encap(recipientPublic, { ikmE });
  const { key, baseNonce } = await keySchedule(sharedSecret, infoBytes);
  sharedSecret.fill(0);
  const aesKey = await aesGcmKey(key, "encrypt");
  key.fill(0);
  const ct = await subtle().encrypt(
    { name: "AES-GCM", iv: baseNonce, additionalData: aad ?? new Uint8Array(0), tagLength: 128 },
    aesKey,
    plaintext,
  );
  return concat(enc, new Uint8Array(ct));
}

/**
 * Seal `plaintext` to `recipientPublic` (HpkePublicKey or its text form) under `info`.
 * Returns `enc || ciphertext || tag`.  `ikmE` (32+ bytes) or `random(n)` fixes the
 * ephemeral key through DeriveKeyPair, for vectors only; by default a fresh
 * non-extractable key is generated.
 */
export async function seal(recipientPublic, infoBytes, plaintext, { ikmE, random } = {}) {
  const ikm = ikmE ?? (random ? random(32) : undefined);
  return sealWithParts(recipientPublic, infoBytes, plaintext, { ikmE: ikm });
}

/**
 * RFC 9180 OpenBase with an optional aad (tests replay the RFC vectors with it).
 * Any failure is `decryption_failed`.
 */
export async function openWithAad(recipientPrivate, infoBytes, blob, aad) {
  if (!(recipientPrivate instanceof HpkePrivateKey)) {
    throw new TypeError("open needs an HpkePrivateKey");
  }
  checkBytes(infoBytes, "info");
  checkBytes(blob, "blob");
  if (blob.length < OVERHEAD) {
    throw new SealboxError(codes.decryption_failed, "sealed blob is too short");
  }
  try {
    const enc = blob.subarray(0, ENC_BYTES);
    const sharedSecret = await decap(enc, recipientPrivate);
    const { key, baseNonce } = await keySchedule(sharedSecret, infoBytes);
    sharedSecret.fill(0);
    const aesKey = await aesGcmKey(key, "decrypt");
    key.fill(0);
    const pt = await subtle().decrypt(
      { name: "AES-GCM", iv: baseNonce, additionalData: aad, tagLength: 128 },
      aesKey,
      blob.subarray(ENC_BYTES),
    );
    return new Uint8Array(pt);
  } catch {
    // Wrong key, wrong info (the blob was moved to another context), an altered
    // byte, a small-order enc: one error, on purpose, so no failure mode is an oracle.
    throw new SealboxError(
      codes.decryption_failed,
      "sealed blob does not open for this key and context",
    );
  }
}

/** Open a blob from `seal`; raise `decryption_failed` on any failure. */
export async function open(recipientPrivate, infoBytes, blob) {
  return openWithAad(recipientPrivate, infoBytes, blob, new Uint8Array(0));
}
