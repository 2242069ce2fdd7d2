// Storing an item version (docs/protocol.md section 8), approver side.  A port of the
// approver half of src/sealbox/protocol/store.py.
//
// A client's store request: verifyStore checks the client certificate and statement, every
// uploaded blob against the hashes the client signed, opens this approver's own shares and
// (with M = 1) checks that they really decrypt the fields; only then does signManifest sign
// the item manifest, which is what makes the version exist.
//
// An approver can also store directly (storeAsApprover): it encrypts, splits, wraps each
// share to its holder and signs the manifest itself, with no store statement.

import { SealboxError } from "./errors.js";
import { b64uDecode, digest } from "./encoding.js";
import * as hpke from "./hpke.js";
import * as aead from "./aead.js";
import * as shamir from "./shamir.js";
import { hashFieldCiphertext, hashShareWrap, hpkeShareWrap } from "./labels.js";
import { peekHeader, statementHash } from "./jws.js";
import { directoryApprover } from "./directory.js";
import { CLOCK_SKEW, checkContext, checkPaths, verifyChain } from "./certificates.js";
import {
  checkFieldName,
  itemManifestPayload,
  readItemManifest,
  readStoreStatement,
  signTyped,
  verifyTyped,
} from "./statements.js";

// Longest a store statement may stay valid (seconds).
export const MAX_STORE_TTL = 86400;
export const FIELD_KEY_BYTES = 32;
export const NONCE_BYTES = 12;
export const SHARE_BYTES = 1 + FIELD_KEY_BYTES;

const error = (code, message) => new SealboxError(code, message);

export function defaultRandom(n) {
  const out = new Uint8Array(n);
  globalThis.crypto.getRandomValues(out);
  return out;
}

function draw(random, n) {
  const out = random(n);
  if (!(out instanceof Uint8Array) || out.length !== n) {
    throw new TypeError("random source returned the wrong length");
  }
  return out;
}

// HPKE info of one approver's wrapped share of one field of one version.
export function wrapInfo({ vault, item, version, field, approver }) {
  return hpke.info(hpkeShareWrap, vault, item, version, field, approver);
}

export async function wrapHash(blob) {
  return digest(hashShareWrap, blob);
}

export async function ciphertextHash(ciphertext) {
  return digest(hashFieldCiphertext, ciphertext);
}

export async function manifestHash(token) {
  return statementHash(token);
}

// Check that a share has the form and the x that `approver` must hold.
export function parseShare(share, { keyset, approver }) {
  if (!(share instanceof Uint8Array) || share.length !== SHARE_BYTES) {
    throw error("malformed", "share: wrong length");
  }
  if (share[0] !== keyset.approvers.indexOf(approver) + 1) {
    // A share with another holder's x could be counted twice at combine time.
    throw error("manifest_mismatch", `share of ${approver} does not carry its key-set position`);
  }
  return share;
}

// --- shapes of what the relay hands over ------------------------------------------------------

function isMap(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    !Array.isArray(value) &&
    !(value instanceof Uint8Array)
  );
}

// Relay-supplied blobs must map names to bytes: checking the shape here keeps a confused or
// hostile relay from turning into a TypeError deep in a verifier.
export function bytesMap(value, what) {
  if (!isMap(value) || !Object.values(value).every((v) => v instanceof Uint8Array)) {
    throw error("malformed", `${what}: expected a mapping of names to bytes`);
  }
  return value;
}

export function nestedBytesMap(value, what) {
  if (!isMap(value)) throw error("malformed", `${what}: expected a mapping of names to mappings`);
  for (const inner of Object.values(value)) bytesMap(inner, what);
  return value;
}

// A relay-served map of names to base64url blobs (as /approvals lists them), decoded
// strictly; null or absent is empty, anything else malformed.
export function blobsFromWire(value, what) {
  if (value === null || value === undefined) return {};
  if (!isMap(value)) throw error("malformed", `the relay's request has no valid ${what}`);
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, b64uDecode(v, { what })]));
}

// --- verifying ------------------------------------------------------------------------------

// Verify an item manifest: signed by a current approver of this vault.  Its key set may
// name approvers removed since: their shares stop counting (a release must be signed by a
// current approver); that a key set names only members is checked when a version is stored.
export async function verifyManifest(token, directory) {
  const header = peekHeader(token);
  const signer = directoryApprover(directory, header.kid);
  const manifest = await verifyTyped(token, readItemManifest, signer.sig_pk, signer.id);
  if (manifest.vault !== directory.vault) {
    throw error("binding_mismatch", "manifest belongs to another vault");
  }
  return manifest;
}

function sameSet(a, b) {
  const sa = new Set(a);
  const sb = new Set(b);
  return sa.size === sb.size && [...sa].every((x) => sb.has(x));
}

// Raise manifest_mismatch unless every blob matches the hash its signer listed.
export async function checkBlobs(fields, keyset, ciphertexts, wraps) {
  if (!sameSet(Object.keys(ciphertexts), Object.keys(fields))) {
    throw error("manifest_mismatch", "uploaded ciphertexts do not match the signed fields");
  }
  for (const [name, cipher] of Object.entries(fields)) {
    if ((await ciphertextHash(ciphertexts[name])) !== cipher.ct_hash) {
      throw error(
        "manifest_mismatch",
        `ciphertext of field '${name}' does not match its signed hash`,
      );
    }
  }
  if (!sameSet(Object.keys(wraps), keyset.approvers)) {
    throw error("manifest_mismatch", "uploaded wraps do not match the signed key set");
  }
  for (const [approver, blobs] of Object.entries(wraps)) {
    const expected = keyset.wraps[approver];
    let ok = sameSet(Object.keys(blobs), Object.keys(expected));
    for (const [name, blob] of Object.entries(blobs)) {
      if (ok && (await wrapHash(blob)) !== expected[name]) ok = false;
    }
    if (!ok)
      throw error("manifest_mismatch", `wraps for ${approver} do not match their signed hashes`);
  }
}

async function checkPrev(statement, prevManifest, directory) {
  if (prevManifest === null || prevManifest === undefined) {
    if (statement.version !== 1) {
      throw error("binding_mismatch", "store of a later version without the previous manifest");
    }
    return;
  }
  const prev = await verifyManifest(prevManifest, directory);
  if (prev.item !== statement.item || prev.path !== statement.path) {
    throw error("binding_mismatch", "previous manifest is of another item");
  }
  if (
    statement.version !== prev.version + 1 ||
    statement.prev !== (await manifestHash(prevManifest))
  ) {
    throw error("binding_mismatch", "store statement does not follow the previous version");
  }
}

async function checkOwnShares({
  vault,
  item,
  version,
  fields,
  keyset,
  ciphertexts,
  wraps,
  approver,
  hpkePrivate,
}) {
  for (const [name, cipher] of Object.entries(fields)) {
    const info = wrapInfo({ vault, item, version, field: name, approver });
    const share = parseShare(await hpke.open(hpkePrivate, info, wraps[name]), { keyset, approver });
    if (keyset.threshold === 1) {
      // With M = 1 the share is the whole key: prove the client sealed a key that really
      // opens the field, before vouching for it.
      const aad = aead.fieldAad({ vault, item, version, field: name });
      const plain = await aead.decryptField(
        share.subarray(1),
        cipher.nonce,
        ciphertexts[name],
        aad,
      );
      plain.fill(0);
    }
    share.fill(0);
  }
}

// Check a client's store request as approver `approverId`; raise on anything wrong.
//
// `upload` is {statement, ciphertexts: {field: bytes}, wraps: {approver: {field: bytes}}};
// `prevManifest` is the manifest of the previous version, which the statement's prev must
// name (null for a first version).  Returns {statement, hash, certificate}, all verified.
export async function verifyStore(
  upload,
  { directory, approverId, hpkePrivate, certificate, now, prevManifest = null, enrollment = null },
) {
  const { cert, delegation } = await verifyChain(certificate, directory, { now, enrollment });
  const header = peekHeader(upload.statement);
  if (header.kid !== cert.client.id) {
    throw error("not_authorized", "store statement is not signed by the certified client");
  }
  const statement = await verifyTyped(
    upload.statement,
    readStoreStatement,
    cert.client.sig_pk,
    cert.client.id,
  );
  if (statement.client !== cert.client.id || statement.vault !== directory.vault) {
    throw error(
      "binding_mismatch",
      "store statement client or vault does not match its certificate",
    );
  }
  checkContext(cert, statement.context);
  checkPaths(cert, [statement.path], delegation);
  if (statement.at > now + CLOCK_SKEW || now > statement.exp) {
    throw error("expired", "store statement is not valid at this time");
  }
  if (statement.exp < statement.at || statement.exp - statement.at > MAX_STORE_TTL) {
    // exp before at is as meaningless as a window too long (access refuses both).
    throw error("malformed", "store statement: validity window out of range");
  }
  for (const member of statement.keyset.approvers) directoryApprover(directory, member);
  if (!statement.keyset.approvers.includes(approverId)) {
    throw error("not_authorized", `${approverId} holds no share of this item`);
  }
  await checkPrev(statement, prevManifest, directory);
  const ciphertexts = bytesMap(upload.ciphertexts, "uploaded ciphertexts");
  const wraps = nestedBytesMap(upload.wraps, "uploaded wraps");
  await checkBlobs(statement.fields, statement.keyset, ciphertexts, wraps);
  if (hpkePrivate === null) {
    // A preview, for showing the request before the person unlocks this approver's keys (a
    // browser approver's keys open only with its passkey).  Nothing may be signed on it:
    // signManifest refuses a result whose own shares were not opened.
    return Object.freeze({
      statement,
      hash: await statementHash(upload.statement),
      certificate: cert,
      sharesOpened: false,
    });
  }
  await checkOwnShares({
    vault: directory.vault,
    item: statement.item,
    version: statement.version,
    fields: statement.fields,
    keyset: statement.keyset,
    ciphertexts,
    wraps: wraps[approverId],
    approver: approverId,
    hpkePrivate,
  });
  return Object.freeze({
    statement,
    hash: await statementHash(upload.statement),
    certificate: cert,
    sharesOpened: true,
  });
}

function checkSigner(directory, approverId, signingKey) {
  if (directoryApprover(directory, approverId).sig_pk.text !== signingKey.publicKey().text) {
    throw new TypeError("the signing key is not this approver's directory key");
  }
}

// Sign the item manifest for a verified store request (what verifyStore returned):
// the statement's item, copied, with store_request set to its hash.
export async function signManifest(verified, { directory, approverId, signingKey, now }) {
  if (verified.sharesOpened !== true) {
    throw new TypeError("a store is signed only after this approver's own shares opened");
  }
  checkSigner(directory, approverId, signingKey);
  const s = verified.statement;
  const payload = itemManifestPayload({
    vault: s.vault,
    item: s.item,
    path: s.path,
    version: s.version,
    prev: s.prev,
    type: s.type,
    fields: s.fields,
    keyset: s.keyset,
    store_request: verified.hash,
    at: now,
  });
  return signTyped(readItemManifest, payload, signingKey, approverId);
}

// --- storing directly ---------------------------------------------------------------------

function encodeValue(value) {
  if (value instanceof Uint8Array) return value;
  if (typeof value === "string") return new TextEncoder().encode(value);
  throw new TypeError("field values are Uint8Array or text");
}

// Seal every field (sorted by name, as the Python does, so the draws line up): a fresh
// 256-bit key and 96-bit nonce, AES-256-GCM with the field aad, the key split M-of-N over
// the ordered approvers, share i HPKE-sealed to approver i under the share-wrap info.
async function sealFields(directory, { item, version, values, approvers, threshold, random, ikm }) {
  const names = Object.keys(values).sort();
  if (!names.length) throw new TypeError("an item has at least one field");
  if (
    new Set(approvers).size !== approvers.length ||
    !Number.isInteger(threshold) ||
    threshold < 1 ||
    threshold > approvers.length
  ) {
    throw new TypeError("need distinct approvers and 1 <= threshold <= approvers.length");
  }
  const records = approvers.map((a) => directoryApprover(directory, a));
  const fields = {};
  const ciphertexts = {};
  const wraps = Object.fromEntries(approvers.map((a) => [a, {}]));
  for (const name of names) {
    checkFieldName(name);
    const key = draw(random, FIELD_KEY_BYTES);
    const nonce = draw(random, NONCE_BYTES);
    const aad = aead.fieldAad({ vault: directory.vault, item, version, field: name });
    const { ciphertext } = await aead.encryptField(key, encodeValue(values[name]), aad, { nonce });
    fields[name] = { nonce, ct_hash: await ciphertextHash(ciphertext) };
    ciphertexts[name] = ciphertext;
    const shares = shamir.split(key, threshold, approvers.length, random);
    for (let i = 0; i < records.length; i += 1) {
      const info = wrapInfo({
        vault: directory.vault,
        item,
        version,
        field: name,
        approver: records[i].id,
      });
      const options = ikm ? { ikmE: draw(ikm, 32) } : {};
      wraps[records[i].id][name] = await hpke.seal(records[i].hpke_pk, info, shares[i], options);
      shares[i].fill(0);
    }
    key.fill(0);
  }
  const hashes = {};
  for (const [a, w] of Object.entries(wraps)) {
    hashes[a] = {};
    for (const [f, blob] of Object.entries(w)) hashes[a][f] = await wrapHash(blob);
  }
  return {
    fields,
    keyset: { threshold, approvers: [...approvers], wraps: hashes },
    ciphertexts,
    wraps,
  };
}

// An approver stores an item version itself and signs its manifest directly
// (store_request null).  `values` maps field names to bytes (or text, as UTF-8);
// `approvers` is the ordered key set (approver i holds x = i + 1).  Returns
// {manifest, ciphertexts, wraps} for the relay (POST /items).
//
// `random(n)` (keys, nonces, Shamir coefficients) and `ikm(n)` (each wrap's HPKE
// ephemeral key) are injectable only so the vectors can be reproduced; by default both
// come from crypto.getRandomValues (HPKE then generates its own ephemeral keys).
export async function storeAsApprover({
  directory,
  approverId,
  signingKey,
  item,
  path,
  version,
  prev = null,
  values,
  approvers,
  threshold,
  now,
  itemType = "secret",
  random = defaultRandom,
  ikm = null,
}) {
  checkSigner(directory, approverId, signingKey);
  const sealed = await sealFields(directory, {
    item,
    version,
    values,
    approvers,
    threshold,
    random,
    ikm,
  });
  const payload = itemManifestPayload({
    vault: directory.vault,
    item,
    path,
    version,
    prev,
    type: itemType,
    fields: sealed.fields,
    keyset: sealed.keyset,
    store_request: null,
    at: now,
  });
  const manifest = await signTyped(readItemManifest, payload, signingKey, approverId);
  return Object.freeze({ manifest, ciphertexts: sealed.ciphertexts, wraps: sealed.wraps });
}

// --- reading back and re-sealing (what removing an approver does) -------------------------------

// Open the values of an item version this approver can open alone (threshold 1): its own
// wrapped shares, checked against the manifest's hashes, and the ciphertexts, checked
// against their signed hashes before decrypting.  `manifest` is the token; `wraps` this
// approver's wraps (field -> bytes); `ciphertexts` field -> bytes.  Returns field -> bytes.
export async function openOwnValues({
  manifest: token,
  directory,
  approverId,
  hpkePrivate,
  wraps,
  ciphertexts,
}) {
  const manifest = await verifyManifest(token, directory);
  const expected = manifest.keyset.wraps[approverId];
  if (expected === undefined)
    throw error("not_authorized", `${approverId} holds no share of ${manifest.path}`);
  if (manifest.keyset.threshold !== 1) {
    throw error(
      "threshold_not_met",
      `${manifest.path} needs ${manifest.keyset.threshold} approvers to open`,
    );
  }
  const mine = bytesMap(wraps, "wraps");
  const cts = bytesMap(ciphertexts, "ciphertexts");
  const values = {};
  for (const [name, cipher] of Object.entries(manifest.fields)) {
    if (!Object.hasOwn(mine, name) || (await wrapHash(mine[name])) !== expected[name]) {
      throw error(
        "manifest_mismatch",
        `wrapped share of ${manifest.path}/${name} is not the signed one`,
      );
    }
    if (!Object.hasOwn(cts, name) || (await ciphertextHash(cts[name])) !== cipher.ct_hash) {
      throw error(
        "manifest_mismatch",
        `ciphertext of ${manifest.path}/${name} is not the signed one`,
      );
    }
    const at = {
      vault: manifest.vault,
      item: manifest.item,
      version: manifest.version,
      field: name,
    };
    const share = parseShare(
      await hpke.open(hpkePrivate, wrapInfo({ ...at, approver: approverId }), mine[name]),
      {
        keyset: manifest.keyset,
        approver: approverId,
      },
    );
    values[name] = await aead.decryptField(
      share.subarray(1),
      cipher.nonce,
      cts[name],
      aead.fieldAad(at),
    );
    share.fill(0);
  }
  return { manifest, values };
}

// What removing `target` means for one item version (approver/admin.py's plan): "keep" (not
// a holder), "reseal" (this approver can store it again for the remaining holders),
// "stranded" (fewer holders than the threshold would remain: it could never be read again),
// "warn" (still readable, but only another holder can re-seal it).
export function removalAction(manifest, { directory, target, approverId }) {
  const holders = manifest.keyset.approvers;
  if (!holders.includes(target)) return "keep";
  const remaining = holders.filter((a) => a !== target && directory.approvers.has(a));
  if (remaining.length < manifest.keyset.threshold) return "stranded";
  if (manifest.keyset.threshold === 1 && holders.includes(approverId) && approverId !== target)
    return "reseal";
  return "warn";
}

// Store the next version of an item this approver can open alone, sealed for the holders
// still in `directory` (the directory after the removal), as approver/admin.py re-seals.
// Returns what storeAsApprover returns, for POST /items.
export async function resealAsApprover({
  manifest: token,
  directory,
  approverId,
  hpkePrivate,
  signingKey,
  wraps,
  ciphertexts,
  now,
  random,
  ikm,
}) {
  const { manifest, values } = await openOwnValues({
    manifest: token,
    directory,
    approverId,
    hpkePrivate,
    wraps,
    ciphertexts,
  });
  try {
    return await storeAsApprover({
      directory,
      approverId,
      signingKey,
      item: manifest.item,
      path: manifest.path,
      version: manifest.version + 1,
      prev: await manifestHash(token),
      values,
      approvers: manifest.keyset.approvers.filter((a) => directory.approvers.has(a)),
      threshold: 1,
      now,
      itemType: manifest.type,
      random,
      ikm,
    });
  } finally {
    for (const v of Object.values(values)) v.fill(0);
  }
}
