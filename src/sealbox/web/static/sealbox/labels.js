// Every domain-separation string and format version sealbox uses; mirrors
// src/sealbox/crypto/labels.py (same names, in camelCase).
//
// A label names exactly one use of one key or hash, so bytes derived under one
// label are never accepted under another: a blob or signature lifted from one
// context fails everywhere else.  Labels are versioned; a format change gets a
// new /v2/ label rather than a reinterpretation of v1.  The Python module keeps
// byte labels as `bytes`; here they are ASCII strings, which `lp` and `digest`
// encode as the same bytes.

export const protocolVersion = 1;

// --- HPKE `info` prefixes (RFC 9180 base mode) ---
/** Wrapping a field key (or Shamir share) to one approver at store time. */
export const hpkeShareWrap = "sealbox/v1/hpke/share-wrap";
/** Sealing released shares to the requester's one-time key. */
export const hpkeRelease = "sealbox/v1/hpke/release";

// --- AEAD `aad` prefixes ---
/** Field ciphertext under its per-field, per-version key. */
export const aeadField = "sealbox/v1/aead/field";
/** A key file sealed under a passphrase-derived key (Argon2id). */
export const aeadKeyFile = "sealbox/v1/aead/key-file";
/** The relay's at-rest layer: blobs and data keys, bound to their row. */
export const aeadAtRest = "sealbox/v1/aead/at-rest";
/** A share link's value under the key in the link's fragment, bound to the share id. */
export const aeadShare = "sealbox/v1/aead/share";
/** HKDF info for a share link's open token (derived from the link's key, bound to the id). */
export const shareOpen = "sealbox/v1/share/open";

// --- Hashes ---
/** Hash of a compact JWS statement (request hash, link hash, manifest hash...). */
export const hashStatement = "sealbox/v1/hash/statement";
/** Hash of a field ciphertext, as listed in store statements and manifests. */
export const hashFieldCiphertext = "sealbox/v1/hash/field-ciphertext";
/** Hash of an HPKE-wrapped share, as listed in store statements and manifests. */
export const hashShareWrap = "sealbox/v1/hash/share-wrap";
/** Hash of consent details (the action's parameters). */
export const hashConsentDetails = "sealbox/v1/hash/consent-details";
/** What the relay stores instead of a bearer token. */
export const hashToken = "sealbox/v1/hash/token";
/** The public name of an at-rest key. */
export const hashKeyId = "sealbox/v1/hash/key-id";
/** Hash chain of the relay's audit events. */
export const hashAudit = "sealbox/v1/hash/audit";
/** Fingerprint of the vault: the hash of directory link 0. */
export const fingerprintVault = "sealbox/v1/fingerprint/vault";
/** Fingerprint of a public key (its text form, prefix included). */
export const fingerprintKey = "sealbox/v1/fingerprint/key";
/** Pairing code of an approver device: its id and both public keys, compared by a person. */
export const fingerprintApprover = "sealbox/v1/fingerprint/approver";

// --- A browser approver's key custody (protocol.md section 14) ---
/** The PRF input every browser approver evaluates on its passkey: SHA-256 of this label. */
export const browserPrfSalt = "sealbox/v1/browser/prf-salt";
/** HKDF info of the key wrapping a browser approver's private keys, and their AEAD aad. */
export const browserKeyWrap = "sealbox/v1/browser/key-wrap";
/** Format tag of a browser approver's stored record and of its export. */
export const browserKeyRecord = "sealbox.browser-approver.v1";

// --- Text encodings of keys: the prefix names algorithm and version, so a key
// of one kind can never be parsed as another. ---
export const keyHpkePublic = "sbx-hpke-pk-v1:";
export const keyHpkePrivate = "sbx-hpke-sk-v1:";
export const keySignPublic = "sbx-ed25519-pk-v1:";
export const keySignPrivate = "sbx-ed25519-sk-v1:";
/** Text prefix of every hash and fingerprint value (the algorithm is named in the text). */
export const digestPrefix = "sha256:";

// --- Signed statement types (the JWS `typ` header) ---
export const typDirectory = "sealbox.directory.v1";
export const typClient = "sealbox.client.v1";
export const typEnrollment = "sealbox.enrollment.v1";
export const typStore = "sealbox.store.v1";
export const typItem = "sealbox.item.v1";
export const typAccess = "sealbox.access.v1";
export const typRelease = "sealbox.release.v1";
export const typDeny = "sealbox.deny.v1";
export const typCheckpoint = "sealbox.checkpoint.v1";
export const typConsent = "sealbox.consent.v1";
export const typConsentRequest = "sealbox.consent-request.v1";
export const typPolicy = "sealbox.policy.v1";

/** Every statement type (a frozen array: a frozen Set could still be added to). */
export const allStatementTypes = Object.freeze([
  typDirectory,
  typClient,
  typEnrollment,
  typStore,
  typItem,
  typAccess,
  typRelease,
  typDeny,
  typCheckpoint,
  typConsent,
  typConsentRequest,
  typPolicy,
]);

// --- Plaintext formats inside HPKE ---
/** Format tag inside the release plaintext (the shares sealed to the one-time key). */
export const releasePlaintextFormat = "sealbox.release-shares.v1";
