// Share links: open a value sealed under the key in the link's fragment.
// Mirrors src/sealbox/crypto/sharelink.py and src/sealbox/protocol/shares.py (protocol.md,
// "Share links").
//
// The key lives only in the fragment (`/s/ID#KEY`), which a browser never sends to any
// server: the relay that serves this page and the ciphertext never receives it.  The aad
// binds the share id, so a ciphertext the relay moves under another share's id fails to
// open even under the right key.

import { codes, SealboxError } from "./errors.js";
import { b64uDecode, b64uEncode, lp } from "./encoding.js";
import { aeadShare, shareOpen } from "./labels.js";

export const SHARE_KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const TAG_BYTES = 16;

const SHARE_ID = /^shr_[a-z2-7]{26}$/;

/** The aad that ties a share's ciphertext to its one share id. */
export function shareAad(shareId) {
  return lp(aeadShare, shareId);
}

/**
 * The open token the relay asks for (base64url): HKDF-SHA256 of the key, info the label
 * and the share id (as src/sealbox/crypto/sharelink.py derives it). One-way: the relay,
 * which stores only its SHA-256, cannot get the key back from it.
 */
export async function openToken(key, shareId) {
  if (!(key instanceof Uint8Array) || key.length !== SHARE_KEY_BYTES) {
    throw new SealboxError(codes.malformed, "share key: expected 32 bytes");
  }
  const subtle = globalThis.crypto.subtle;
  const ikm = await subtle.importKey("raw", key, "HKDF", false, ["deriveBits"]);
  const bits = await subtle.deriveBits(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: lp(shareOpen, shareId) },
    ikm,
    256,
  );
  return b64uEncode(new Uint8Array(bits));
}

/**
 * The share id and key of a share page's location, strictly: the path ends in
 * `/s/shr_…`, the fragment is exactly one 32-byte key in unpadded base64url.
 */
export function parseShareLocation(pathname, hash) {
  const shareId = shareIdOf(pathname);
  const fragment = hash.startsWith("#") ? hash.slice(1) : hash;
  if (fragment.length !== 43) {
    throw new SealboxError(codes.malformed, "the link's key (the part after '#') is missing or cut");
  }
  const key = b64uDecode(fragment, { length: SHARE_KEY_BYTES, what: "share link key" });
  return { shareId, key };
}

/** The share id of a share page's path (`…/s/shr_…`), strictly. */
export function shareIdOf(pathname) {
  const found = /\/s\/([^/]+)$/.exec(pathname);
  if (!found || !SHARE_ID.test(found[1])) {
    throw new SealboxError(codes.malformed, "this is not a share link");
  }
  return found[1];
}

/**
 * Open a share's value: `{nonce, ciphertext}` as the relay answered them (base64url);
 * `decryption_failed` if the key, the id or the bytes are not the ones sealed together.
 */
export async function openShare(key, shareId, answer) {
  if (!answer || answer.id !== shareId) {
    throw new SealboxError(codes.decryption_failed, "the relay answered for another share");
  }
  const nonce = b64uDecode(answer.nonce, { length: NONCE_BYTES, what: "share nonce" });
  const ciphertext = b64uDecode(answer.ciphertext, { what: "share ciphertext" });
  if (!(key instanceof Uint8Array) || key.length !== SHARE_KEY_BYTES) {
    throw new SealboxError(codes.malformed, "share key: expected 32 bytes");
  }
  if (ciphertext.length < TAG_BYTES) {
    throw new SealboxError(codes.decryption_failed, "share ciphertext is too short");
  }
  const subtle = globalThis.crypto.subtle;
  const cryptoKey = await subtle.importKey("raw", key, { name: "AES-GCM" }, false, ["decrypt"]);
  try {
    const plaintext = await subtle.decrypt(
      { name: "AES-GCM", iv: nonce, additionalData: shareAad(shareId), tagLength: 128 },
      cryptoKey,
      ciphertext,
    );
    return new Uint8Array(plaintext);
  } catch {
    throw new SealboxError(codes.decryption_failed, "the share does not decrypt with this link's key");
  }
}
