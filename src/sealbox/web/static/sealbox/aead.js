// Field encryption: AES-256-GCM under a fresh key per field per version.
// Mirrors src/sealbox/crypto/aead.py (protocol §4.2).
//
// The aad binds the vault, item id, version and field name, so a ciphertext
// moved by the relay to another field, version, item or vault fails to open even
// under the right key.

import { codes, SealboxError } from "./errors.js";
import { lp } from "./encoding.js";
import { aeadField } from "./labels.js";

export const FIELD_KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

const subtle = () => globalThis.crypto.subtle;

/** Default randomness: n bytes from the platform CSPRNG. */
export function randomBytes(n) {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

function draw(random, n) {
  const out = random(n);
  if (!(out instanceof Uint8Array) || out.length !== n) {
    throw new RangeError("random source returned the wrong length");
  }
  return out;
}

/** The aad that ties a field ciphertext to its one place. */
export function fieldAad({ vault, item, version, field }) {
  return lp(aeadField, vault, item, version, field);
}

/** A fresh 256-bit field key (raw bytes: it is Shamir-split and wrapped next). */
export function newFieldKey(random = randomBytes) {
  return draw(random, FIELD_KEY_BYTES);
}

async function importKey(key, usage) {
  if (!(key instanceof Uint8Array) || key.length !== FIELD_KEY_BYTES) {
    throw new SealboxError(codes.malformed, "field key: expected 32 bytes");
  }
  return subtle().importKey("raw", key, { name: "AES-GCM" }, false, [usage]);
}

/**
 * Encrypt one field value under `aad` (from `fieldAad`); returns `{nonce, ciphertext}`
 * (the ciphertext includes the 16-byte tag).
 *
 * A key is used for exactly one field of one version, so a random 96-bit nonce is
 * far from any collision bound; it is random anyway so that a caller bug that
 * reuses a key does not also reuse a nonce.  `nonce` or `random` are injected by
 * vectors only.
 */
export async function encryptField(key, plaintext, aad, { nonce, random = randomBytes } = {}) {
  const iv = nonce ?? draw(random, NONCE_BYTES);
  if (!(iv instanceof Uint8Array) || iv.length !== NONCE_BYTES) {
    throw new RangeError("field nonce: expected 12 bytes");
  }
  const cryptoKey = await importKey(key, "encrypt");
  const ciphertext = await subtle().encrypt(
    { name: "AES-GCM", iv, additionalData: aad, tagLength: 128 },
    cryptoKey,
    plaintext,
  );
  return { nonce: Uint8Array.from(iv), ciphertext: new Uint8Array(ciphertext) };
}

/**
 * Decrypt one field value; `decryption_failed` on any mismatch (key, context,
 * altered bytes), `malformed` for a nonce or key of the wrong length.  The checks
 * run in the order of aead.py, so both raise the same code for the same input.
 */
export async function decryptField(key, nonce, ciphertext, aad) {
  if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_BYTES) {
    throw new SealboxError(codes.malformed, "field nonce: expected 12 bytes");
  }
  if (!(ciphertext instanceof Uint8Array) || ciphertext.length < TAG_BYTES) {
    throw new SealboxError(codes.decryption_failed, "field ciphertext is too short");
  }
  const cryptoKey = await importKey(key, "decrypt");
  try {
    const plaintext = await subtle().decrypt(
      { name: "AES-GCM", iv: nonce, additionalData: aad, tagLength: 128 },
      cryptoKey,
      ciphertext,
    );
    return new Uint8Array(plaintext);
  } catch {
    throw new SealboxError(codes.decryption_failed, "field does not decrypt in this context");
  }
}
