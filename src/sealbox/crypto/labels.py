"""Every domain-separation string and format version sealbox uses, in one place.

A label names exactly one use of one key or hash.  Bytes derived under one
label can never be accepted under another, so a blob or a signature lifted
from one context fails everywhere else.  Labels are versioned: a change in
any format gets a new ``/v2/`` label rather than a reinterpretation of v1.
"""

from __future__ import annotations

from typing import Final

PROTOCOL_VERSION: Final = 1

# --- HPKE ``info`` prefixes (RFC 9180 base mode) ----------------------------
#: Wrapping a field key (or Shamir share) to one approver at store time.
HPKE_SHARE_WRAP: Final = b"sealbox/v1/hpke/share-wrap"
#: Sealing released shares to the requester's one-time key.
HPKE_RELEASE: Final = b"sealbox/v1/hpke/release"

# --- AEAD ``aad`` prefixes --------------------------------------------------
#: Field ciphertext under its per-field, per-version key.
AEAD_FIELD: Final = b"sealbox/v1/aead/field"

#: A key file sealed under a passphrase-derived key (Argon2id).
AEAD_KEY_FILE: Final = b"sealbox/v1/aead/key-file"
#: The relay's at-rest layer: blobs and data keys, bound to their row.
AEAD_AT_REST: Final = b"sealbox/v1/aead/at-rest"
#: A share link's value under the key in the link's fragment, bound to the share id.
AEAD_SHARE: Final = b"sealbox/v1/aead/share"
#: HKDF info for a share link's open token (derived from the link's key, bound to the id).
SHARE_OPEN: Final = b"sealbox/v1/share/open"

# --- Hashes ------------------------------------------------------------------
#: Hash of a compact JWS statement (request hash, link hash, manifest hash...).
HASH_STATEMENT: Final = b"sealbox/v1/hash/statement"
#: Hash of a field ciphertext, as listed in store statements and manifests.
HASH_FIELD_CIPHERTEXT: Final = b"sealbox/v1/hash/field-ciphertext"
#: Hash of an HPKE-wrapped share, as listed in store statements and manifests.
HASH_SHARE_WRAP: Final = b"sealbox/v1/hash/share-wrap"
#: Hash of consent details (the action's parameters).
HASH_CONSENT_DETAILS: Final = b"sealbox/v1/hash/consent-details"
#: What the relay stores instead of a bearer token.
HASH_TOKEN: Final = b"sealbox/v1/hash/token"
#: The public name of an at-rest key (which master key wrapped a data key).
HASH_KEY_ID: Final = b"sealbox/v1/hash/key-id"
#: Hash chain of the relay's audit events.
HASH_AUDIT: Final = b"sealbox/v1/hash/audit"
#: Fingerprint of the vault: the hash of directory link 0.
FINGERPRINT_VAULT: Final = b"sealbox/v1/fingerprint/vault"
#: Fingerprint of a public key (prefixed by the key's text-encoding prefix).
FINGERPRINT_KEY: Final = b"sealbox/v1/fingerprint/key"
#: Pairing code of an approver device: its id and both public keys, compared by a person.
FINGERPRINT_APPROVER: Final = b"sealbox/v1/fingerprint/approver"

# --- A browser approver's key custody (used only in the browser; see protocol.md §14) ----
#: The PRF input every browser approver evaluates on its passkey: SHA-256 of this label.
BROWSER_PRF_SALT: Final = b"sealbox/v1/browser/prf-salt"
#: HKDF info (with the approver id) of the key that wraps its private keys, and the AEAD
#: associated data (with the approver id and "sig" or "hpke") of each wrapped key.
BROWSER_KEY_WRAP: Final = b"sealbox/v1/browser/key-wrap"
#: Format tag of a browser approver's stored record and of its export (synced tier).
BROWSER_KEY_RECORD: Final = "sealbox.browser-approver.v1"

# --- Text encodings of keys ---------------------------------------------------
#: Prefixes of the text forms of keys.  The prefix names the algorithm and the
#: version, so a key of one kind can never be parsed as another.
KEY_HPKE_PUBLIC: Final = "sbx-hpke-pk-v1:"
KEY_HPKE_PRIVATE: Final = "sbx-hpke-sk-v1:"
KEY_SIGN_PUBLIC: Final = "sbx-ed25519-pk-v1:"
KEY_SIGN_PRIVATE: Final = "sbx-ed25519-sk-v1:"
#: Text prefix of every hash and fingerprint value (algorithm named in the text).
DIGEST_PREFIX: Final = "sha256:"

# --- Signed statement types (the JWS ``typ`` header) ----------------------------
TYP_DIRECTORY: Final = "sealbox.directory.v1"
TYP_CLIENT: Final = "sealbox.client.v1"
TYP_ENROLLMENT: Final = "sealbox.enrollment.v1"
TYP_STORE: Final = "sealbox.store.v1"
TYP_ITEM: Final = "sealbox.item.v1"
TYP_ACCESS: Final = "sealbox.access.v1"
TYP_RELEASE: Final = "sealbox.release.v1"
TYP_DENY: Final = "sealbox.deny.v1"
TYP_CHECKPOINT: Final = "sealbox.checkpoint.v1"
TYP_CONSENT: Final = "sealbox.consent.v1"
TYP_CONSENT_REQUEST: Final = "sealbox.consent-request.v1"
TYP_POLICY: Final = "sealbox.policy.v1"

ALL_STATEMENT_TYPES: Final = frozenset(
    {
        TYP_DIRECTORY,
        TYP_CLIENT,
        TYP_ENROLLMENT,
        TYP_STORE,
        TYP_ITEM,
        TYP_ACCESS,
        TYP_RELEASE,
        TYP_DENY,
        TYP_CHECKPOINT,
        TYP_CONSENT,
        TYP_CONSENT_REQUEST,
        TYP_POLICY,
    }
)

# --- Plaintext formats inside HPKE -------------------------------------------------
#: Format tag inside the release plaintext (the shares sealed to the one-time key).
RELEASE_PLAINTEXT_FORMAT: Final = "sealbox.release-shares.v1"
