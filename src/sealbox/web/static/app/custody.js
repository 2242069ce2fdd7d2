// Key custody of a browser approver: its private keys exist at rest only wrapped under its
// passkey.
//
// The Ed25519 (signing) and X25519 (HPKE) private keys are made here with WebCrypto. At rest,
// IndexedDB holds each one's PKCS#8 encoding sealed with AES-256-GCM under a key derived from
// the passkey's PRF output (HKDF-SHA256, labelled, bound to the approver id). The PRF output
// comes only from the authenticator, with the credential present and the person verified, and
// never leaves this page. So what the browser keeps is useless without the passkey.
//
// For each use (withKeys) the keys are unwrapped as non-extractable CryptoKeys, used, and
// dropped: no page code ever holds private key bytes after setup. The formats are in
// docs/protocol.md ("Browser approvers").

import { b64uDecode, b64uEncode, lp } from "../sealbox/encoding.js";
import { browserKeyRecord, browserKeyWrap, browserPrfSalt } from "../sealbox/labels.js";

export const labels = Object.freeze({
  prfSalt: browserPrfSalt,
  keyWrap: browserKeyWrap,
  keyRecord: browserKeyRecord,
});

const DB_NAME = "sealbox";
const STORE = "approvers";

function database() {
  return new Promise((resolve, reject) => {
    const opening = indexedDB.open(DB_NAME, 1);
    opening.onupgradeneeded = () => opening.result.createObjectStore(STORE, { keyPath: "vault" });
    opening.onsuccess = () => resolve(opening.result);
    opening.onerror = () => reject(opening.error);
  });
}

async function transact(mode, work) {
  const db = await database();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const request = work(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(request?.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** This browser's approver of `vault` (public parts and wrapped keys), or null. */
export function loadApprover(vault) {
  return transact("readonly", (s) => s.get(vault)).then((found) => found ?? null);
}

export function saveApprover(entry) {
  return transact("readwrite", (s) => s.put(entry));
}

export function forgetApprover(vault) {
  return transact("readwrite", (s) => s.delete(vault));
}

/** The AES-256-GCM key that wraps `approverId`'s private keys, from the passkey's PRF output. */
async function wrappingKey(prf, approverId) {
  if (!(prf instanceof Uint8Array) || prf.length !== 32) {
    throw new Error("the passkey's PRF output must be 32 bytes");
  }
  const ikm = await crypto.subtle.importKey("raw", prf, "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: lp(labels.keyWrap, approverId) },
    ikm,
    { name: "AES-GCM", length: 256 },
    false,
    ["wrapKey", "unwrapKey"],
  );
}

/** The AEAD associated data of one wrapped key: which approver, which key. */
function keyAad(approverId, which) {
  return lp(labels.keyWrap, approverId, which);
}

const ALGORITHMS = { sig: { name: "Ed25519" }, hpke: { name: "X25519" } };
const USAGES = { sig: ["sign"], hpke: ["deriveBits"] };

/**
 * Seal freshly made private CryptoKeys (extractable only for this) under the passkey's PRF.
 * Returns {sig: {nonce, ct}, hpke: {nonce, ct}} in base64url.
 */
export async function wrapKeys(prf, approverId, privateKeys) {
  const key = await wrappingKey(prf, approverId);
  const out = {};
  for (const which of ["sig", "hpke"]) {
    const nonce = crypto.getRandomValues(new Uint8Array(12));
    const ct = await crypto.subtle.wrapKey("pkcs8", privateKeys[which], key, {
      name: "AES-GCM",
      iv: nonce,
      additionalData: keyAad(approverId, which),
    });
    out[which] = { nonce: b64uEncode(nonce), ct: b64uEncode(new Uint8Array(ct)) };
  }
  return out;
}

/** The wrapped keys opened as non-extractable CryptoKeys {sig, hpke}; throws if the PRF is wrong. */
export async function unwrapKeys(prf, approverId, wrapped) {
  const key = await wrappingKey(prf, approverId);
  const out = {};
  for (const which of ["sig", "hpke"]) {
    const entry = wrapped[which];
    try {
      out[which] = await crypto.subtle.unwrapKey(
        "pkcs8",
        b64uDecode(entry.ct, { what: "wrapped key" }),
        key,
        { name: "AES-GCM", iv: b64uDecode(entry.nonce, { length: 12 }), additionalData: keyAad(approverId, which) },
        ALGORITHMS[which],
        false,
        USAGES[which],
      );
    } catch {
      throw new Error(
        "This passkey does not open this approver's keys (another passkey, or the keys were changed).",
      );
    }
  }
  return out;
}

