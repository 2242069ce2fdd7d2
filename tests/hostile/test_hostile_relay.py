# The module docstring is a Markdown table, one attack per line.
# ruff: noqa: E501
"""Hostile relay: every attack of DESIGN section 3.2, run on real objects with real crypto.

The relay carries every object between the parties (directory links,
certificates, store uploads, manifests, wrapped shares, access statements,
releases, denials) and holds keys of its own.  Each row below takes the honest
objects of the world in ``conftest.py``, tampers with them as the relay could,
hands them to the honest receiving party, and asserts that its check raises
exactly the listed class from ``sealbox.errors`` (``type(exc) is cls``, not a
subclass or a parent).  Building the tampered objects must itself succeed, so a
refusal always comes from the receiving party's check.

The world: approvers a0, a1, a2 (directory links 0..2; a0 founded the vault);
a human client certified by a1; item1 (M = 1 over a0, a1, a2; versions 1 and
2), item2 (2-of-3; versions 1 and 2), item3 (M = 1 over a0, a1); "request 1"
(req_latest) and "request 2" (req_other) are two requests by the client for
item1/password, latest version; a0 released request 1 with version 2.  Vault 2
is a second vault in which a0 (same id, same keys) is also an approver.  The
relay has its own Ed25519 and X25519 keys, its own ``apv_`` and ``cli_`` ids.

Rows that are not literally in the DESIGN table are filed under the row whose
defence they test: forged or altered client certificates and enrollments under
"swap the requester's ephemeral key" (the approver verifies the request
against a certificate an approver signed); denials and store uploads under
"forge" / "replay" / "move".  "Refused by" names the party and the sealbox
function whose check raises.

| DESIGN §3.2 row | test id | attack | refused by | raises (exact class) |
|---|---|---|---|---|
| read a secret | `read-wrap-with-relay-key` | open an approver's wrapped field key with a relay-generated HPKE key | HPKE open: `hpke.open_sealed` | `DecryptionFailed` |
| read a secret | `read-release-with-relay-key` | open a release blob (sealed to the requester's one-time key) with a relay key | HPKE open: `hpke.open_sealed` | `DecryptionFailed` |
| read a secret | `read-field-with-guessed-key` | decrypt a stored field ciphertext under a key of the relay's choosing | AES-GCM open: `aead.decrypt_field` | `DecryptionFailed` |
| read a secret | `read-share-with-relay-key` | open a share link's stored ciphertext under a key of its own (the link's key is only in the URL fragment, never sent to it) | recipient: `sharelink.open_share` | `DecryptionFailed` |
| swap the requester's ephemeral key for its own | `epk-swapped-signature-kept` | put the relay's HPKE key as epk in the access payload, keep the client signature | approver: `access.verify_access` | `SignatureInvalid` |
| swap the requester's ephemeral key for its own | `epk-swapped-resigned-as-client` | swap epk and re-sign with the relay's key under the client's kid | approver: `access.verify_access` | `SignatureInvalid` |
| swap the requester's ephemeral key for its own | `epk-swapped-resigned-as-relay` | swap epk and re-sign as itself (its own cli_ id and key) next to the client's certificate | approver: `access.verify_access` | `NotAuthorized` |
| swap the requester's ephemeral key for its own | `epk-swapped-with-relay-certificate` | swap epk, sign as itself, and present a certificate for its own key that it signed as a1 | approver: `access.verify_access` | `CertificateInvalid` |
| swap the requester's ephemeral key for its own | `certificate-signed-by-relay` | a client certificate signed by the relay as its own approver id | approver: `access.verify_access` | `CertificateInvalid` |
| swap the requester's ephemeral key for its own | `certificate-signed-by-relay-as-approver` | a client certificate signed with the relay's key under a1's kid | approver: `access.verify_access` | `CertificateInvalid` |
| swap the requester's ephemeral key for its own | `certificate-client-key-swapped` | put its own key in the client's certificate (signature kept), sign the request with it | approver: `access.verify_access` | `CertificateInvalid` |
| swap the requester's ephemeral key for its own | `certificate-issuer-removed` | a certificate issued by a1, presented after a1 was removed from the directory | approver: `access.verify_access` | `CertificateInvalid` |
| swap the requester's ephemeral key for its own | `certificate-of-other-vault` | the same client's certificate from vault 2 (issued by a0, who is in both vaults) | approver: `access.verify_access` | `CertificateInvalid` |
| swap the requester's ephemeral key for its own | `enrollment-certificate-for-human` | a certificate for a human client signed by an enrollment delegation key | approver: `access.verify_access` | `CertificateInvalid` |
| swap the requester's ephemeral key for its own | `enrollment-withheld` | an enrollment-signed machine certificate presented without its enrollment | approver: `certificates.verify_certificate` | `CertificateInvalid` |
| swap the requester's ephemeral key for its own | `enrollment-forged-by-relay` | an enrollment signed by the relay as its own approver id, and a machine cert under it | approver: `certificates.verify_certificate` | `CertificateInvalid` |
| swap the requester's ephemeral key for its own | `enrollment-forged-as-approver` | an enrollment signed with the relay's key under a0's kid, and a machine cert under it | approver: `certificates.verify_certificate` | `CertificateInvalid` |
| swap the requester's ephemeral key for its own | `enrollment-delegation-key-swapped` | put its own delegation key into the honest enrollment (signature kept) | approver: `certificates.verify_certificate` | `CertificateInvalid` |
| substitute an approver public key (so clients encrypt to it) | `directory-link-added-by-relay` | append a link adding its own approver record, signed by itself | client / approver: `directory.verify_directory` | `DirectoryBroken` |
| substitute an approver public key (so clients encrypt to it) | `directory-link-added-as-approver` | append a link adding its own record, signed with its key under approver a0's kid | client / approver: `directory.verify_directory` | `DirectoryBroken` |
| substitute an approver public key (so clients encrypt to it) | `directory-update-rotates-to-relay-key` | append an 'update' giving approver a1 the relay's HPKE key, signed as a1 with its own key | client / approver: `directory.verify_directory` | `DirectoryBroken` |
| substitute an approver public key (so clients encrypt to it) | `directory-hpke-key-swapped-in-link` | replace a1's hpke_pk inside existing link 1 (signature kept) | client / approver: `directory.verify_directory` | `DirectoryBroken` |
| substitute an approver public key (so clients encrypt to it) | `directory-signing-key-swapped-in-link` | replace a2's sig_pk inside existing link 2 (signature kept) | client / approver: `directory.verify_directory` | `DirectoryBroken` |
| substitute an approver public key (so clients encrypt to it) | `directory-other-link0` | serve a link 0 of its own (same vault id, relay approver) instead of the pinned one | client / approver: `directory.verify_directory` | `DirectoryBroken` |
| substitute an approver public key (so clients encrypt to it) | `directory-link-dropped` | drop link 1 from the middle of the chain | client / approver: `directory.verify_directory` | `DirectoryBroken` |
| substitute an approver public key (so clients encrypt to it) | `directory-links-reordered` | serve links 1 and 2 in swapped order | client / approver: `directory.verify_directory` | `DirectoryBroken` |
| substitute an approver public key (so clients encrypt to it) | `store-keyset-names-relay-approver` | a client fooled into sealing to a relay approver id: the approver refuses the store | approver: `store.verify_store` | `NotAuthorized` |
| substitute an approver public key (so clients encrypt to it) | `directory-rollback-hides-remove` | serve links 0..2 to a client that has seen link 3 (which removes a1) | client / approver: `directory.verify_directory` | `DirectoryRollback` |
| substitute an approver public key (so clients encrypt to it) | `directory-rollback-to-link0` | serve only link 0 to a client that has seen link 2 | client / approver: `directory.verify_directory` | `DirectoryRollback` |
| substitute an approver public key (so clients encrypt to it) | `directory-fork-same-length` | serve the other valid link 3 (provoked by withholding) to a client that saw the first | client / approver: `directory.verify_directory` | `DirectoryFork` |
| substitute an approver public key (so clients encrypt to it) | `directory-fork-longer` | serve a longer chain built on the other link 3 | client / approver: `directory.verify_directory` | `DirectoryFork` |
| forge a release or a "fake secret" | `release-forged-as-approver` | seal fake shares to the (public) epk; sign the release with its key under a0's kid | requester: `access.open_release` | `SignatureInvalid` |
| forge a release or a "fake secret" | `release-by-relay-approver` | a release from the relay's own approver id (not in the directory) | requester: `access.open_release` | `NotAuthorized` |
| forge a release or a "fake secret" | `release-blob-resealed-signature-kept` | replace the blob of a0's honest release by fake shares sealed to epk; keep a0's signature | requester: `access.open_release` | `SignatureInvalid` |
| forge a release or a "fake secret" | `release-kid-relabelled` | attribute a0's release to a1 by rewriting the header kid | requester: `access.open_release` | `SignatureInvalid` |
| forge a release or a "fake secret" | `release-fake-handed-to-approver` | hand a0 a share it re-sealed to a0's public key (right info) instead of the stored wrap | approver: `access.release` | `ManifestMismatch` |
| forge a release or a "fake secret" | `release-header-alg-none` | a release with header alg 'none' and no signature | requester: `access.open_release` | `MalformedInput` |
| forge a release or a "fake secret" | `release-header-embedded-jwk` | a relay-signed release whose header carries the relay's own key as 'jwk' | requester: `access.open_release` | `MalformedInput` |
| forge a release or a "fake secret" | `release-payload-reencoded` | re-encode a0's release payload with the same meaning (spaces) and keep the signature | requester: `access.open_release` | `SignatureInvalid` |
| forge a release or a "fake secret" | `fake-manifest-by-relay-approver` | a whole fake version 3 (manifest signed as its own approver id, its ciphertext, a release) | requester: `access.open_release` | `NotAuthorized` |
| forge a release or a "fake secret" | `path-swap-approver-refuses` | resolve the client's path app/prod/db to item3's id (app/staging/cache, same field): the approver sees the signed path | approver: `access.release` | `BindingMismatch` |
| forge a release or a "fake secret" | `path-swap-client-refuses` | same swap, released by an approver anyway: the client checks the manifest path | requester: `access.open_release` | `BindingMismatch` |
| forge a release or a "fake secret" | `fake-manifest-as-approver` | a fake version 3 whose manifest it signs with its key under a0's kid | requester: `access.open_release` | `SignatureInvalid` |
| forge a release or a "fake secret" | `fake-manifest-handed-to-approver` | hand a0 the fake manifest (under a0's kid) so it releases against it | approver: `access.release` | `SignatureInvalid` |
| forge a release or a "fake secret" | `fake-ciphertext-honest-manifest` | honest manifest and release, but its own ciphertext (right nonce and aad, its key) | requester: `access.open_release` | `ManifestMismatch` |
| forge a release or a "fake secret" | `manifest-of-other-item` | serve item2's (honest) manifest as item1's | requester: `access.open_release` | `BindingMismatch` |
| forge a release or a "fake secret" | `manifest-of-other-vault` | serve a0's honest manifest from vault 2 (same approver, same item id) in vault 1 | requester: `access.open_release` | `BindingMismatch` |
| forge a release or a "fake secret" | `deny-forged-as-approver` | a deny made by the relay, signed with its key under a2's kid | requester: `access.verify_deny` | `SignatureInvalid` |
| forge a release or a "fake secret" | `deny-forged-by-relay-approver` | a deny signed by the relay as its own approver id | requester: `access.verify_deny` | `NotAuthorized` |
| forge a release or a "fake secret" | `release-presented-as-deny` | a0's release handed to the client as a deny (statement-type confusion) | requester: `access.verify_deny` | `SignatureInvalid` |
| forge a release or a "fake secret" | `deny-presented-as-release` | a2's deny handed to the client as a release | requester: `access.open_release` | `SignatureInvalid` |
| forge a release or a "fake secret" | `deny-typ-relabelled-as-release` | a2's deny with its header typ rewritten to the release type | requester: `access.open_release` | `SignatureInvalid` |
| forge a release or a "fake secret" | `release-blob-with-extra-field` | re-seal a blob holding shares for 'password' and 'user' into a0's release | requester: `access.open_release` | `SignatureInvalid` |
| forge a release or a "fake secret" | `release-manifests-widened` | add version 1's manifest hash to the manifests a0's release vouches for | requester: `access.open_release` | `SignatureInvalid` |
| forge a release or a "fake secret" | `release-cache-until-extended` | extend cache_until in a0's release to thirty days | requester: `access.open_release` | `SignatureInvalid` |
| forge a release or a "fake secret" | `store-ciphertext-replaced` | replace the 'password' ciphertext of an upload by its own | approver: `store.verify_store` | `ManifestMismatch` |
| forge a release or a "fake secret" | `store-threshold-altered` | raise the key set's threshold in the signed store statement (signature kept) | approver: `store.verify_store` | `SignatureInvalid` |
| forge a release or a "fake secret" | `store-path-altered` | move the upload to another path in the signed store statement (signature kept) | approver: `store.verify_store` | `SignatureInvalid` |
| forge a release or a "fake secret" | `store-resigned-as-client` | re-sign the store statement with the relay's key under the client's kid | approver: `store.verify_store` | `SignatureInvalid` |
| forge a release or a "fake secret" | `store-routed-to-non-holder` | ask a2 to approve a store whose key set is a0, a1 only | approver: `store.verify_store` | `NotAuthorized` |
| forge a release or a "fake secret" | `release-asked-of-non-holder` | ask a2 to release item3, of which it holds no share | approver: `access.release` | `NotAuthorized` |
| move a ciphertext to another item / field / version / vault | `ciphertext-of-other-field` | serve field 'user' ciphertext as field 'password' | requester: `access.open_release` | `ManifestMismatch` |
| move a ciphertext to another item / field / version / vault | `ciphertext-of-other-version` | serve version 1's 'password' ciphertext under version 2's manifest | requester: `access.open_release` | `ManifestMismatch` |
| move a ciphertext to another item / field / version / vault | `ciphertext-of-other-item` | serve item2's 'password' ciphertext as item1's | requester: `access.open_release` | `ManifestMismatch` |
| move a ciphertext to another item / field / version / vault | `ciphertext-of-other-vault` | serve vault 2's ciphertext of the same item id as vault 1's | requester: `access.open_release` | `ManifestMismatch` |
| move a ciphertext to another item / field / version / vault | `aead-aad-of-other-field` | right key and nonce, aad of field 'user' (AEAD binding) | AES-GCM open: `aead.decrypt_field` | `DecryptionFailed` |
| move a ciphertext to another item / field / version / vault | `aead-aad-of-other-version` | right key and nonce, aad of version 2 (AEAD binding) | AES-GCM open: `aead.decrypt_field` | `DecryptionFailed` |
| move a ciphertext to another item / field / version / vault | `aead-aad-of-other-item` | right key and nonce, aad of item2 (AEAD binding) | AES-GCM open: `aead.decrypt_field` | `DecryptionFailed` |
| move a ciphertext to another item / field / version / vault | `aead-aad-of-other-vault` | right key and nonce, aad of vault 2 (AEAD binding) | AES-GCM open: `aead.decrypt_field` | `DecryptionFailed` |
| move a ciphertext to another item / field / version / vault | `wrap-of-other-field-to-approver` | hand a0 its wrap of field 'user' as its wrap of 'password' | approver: `access.release` | `ManifestMismatch` |
| move a ciphertext to another item / field / version / vault | `wrap-of-other-approver-to-approver` | hand a0 the wraps sealed to a1 | approver: `access.release` | `ManifestMismatch` |
| move a ciphertext to another item / field / version / vault | `wrap-of-other-version-to-approver` | hand a0 version 1's wraps together with version 2's manifest | approver: `access.release` | `ManifestMismatch` |
| move a ciphertext to another item / field / version / vault | `hpke-wrap-info-of-other-field` | open a0's wrap of field 'user' as its wrap of 'password' (a0's key) | HPKE open: `hpke.open_sealed` | `DecryptionFailed` |
| move a ciphertext to another item / field / version / vault | `hpke-wrap-info-of-other-version` | open a0's wrap of version 2 as its wrap of version 1 (a0's key) | HPKE open: `hpke.open_sealed` | `DecryptionFailed` |
| move a ciphertext to another item / field / version / vault | `hpke-wrap-info-of-other-item` | open a0's wrap of item2 as its wrap of item1 (a0's key) | HPKE open: `hpke.open_sealed` | `DecryptionFailed` |
| move a ciphertext to another item / field / version / vault | `hpke-wrap-info-of-other-vault` | open a0's wrap from vault 2 as its wrap in vault 1 (a0's key) | HPKE open: `hpke.open_sealed` | `DecryptionFailed` |
| move a ciphertext to another item / field / version / vault | `hpke-wrap-info-of-other-approver` | open a0's own wrap under the info that names a1 (a0's key) | HPKE open: `hpke.open_sealed` | `DecryptionFailed` |
| move a ciphertext to another item / field / version / vault | `hpke-release-info-of-other-approver` | open a0's release blob as if a1 had sealed it (right one-time key) | HPKE open: `hpke.open_sealed` | `DecryptionFailed` |
| move a ciphertext to another item / field / version / vault | `store-ciphertexts-swapped` | swap the 'user' and 'password' ciphertexts of an upload | approver: `store.verify_store` | `ManifestMismatch` |
| move a ciphertext to another item / field / version / vault | `store-wraps-swapped-between-approvers` | swap a0's and a1's wraps in an upload | approver: `store.verify_store` | `ManifestMismatch` |
| move a ciphertext to another item / field / version / vault | `store-wraps-swapped-between-fields` | swap a0's wraps of 'user' and 'password' in an upload | approver: `store.verify_store` | `ManifestMismatch` |
| move a ciphertext to another item / field / version / vault | `share-served-under-other-id` | answer the open of one share link with another share's ciphertext | recipient: `sharelink.open_share` | `DecryptionFailed` |
| replay an old release or serve an old version | `release-replayed-to-other-request` | deliver a0's release of request 1 to request 2 (same client, same item) | requester: `access.open_release` | `BindingMismatch` |
| replay an old release or serve an old version | `release-blob-with-other-ephemeral-key` | request 1's release blob opened with request 2's one-time key and info | HPKE open: `hpke.open_sealed` | `DecryptionFailed` |
| replay an old release or serve an old version | `release-blob-with-other-request-info` | request 1's release blob opened with request 1's key but request 2's info | HPKE open: `hpke.open_sealed` | `DecryptionFailed` |
| replay an old release or serve an old version | `release-blob-moved-into-other-release` | put request 1's blob into a0's honest release of request 2 | requester: `access.open_release` | `SignatureInvalid` |
| replay an old release or serve an old version | `release-request-hash-rewritten` | rewrite the request hash in a0's release of request 1 to request 2's | requester: `access.open_release` | `SignatureInvalid` |
| replay an old release or serve an old version | `old-version-when-newer-seen` | hand approver and client version 1 although the client has seen version 2 | requester: `access.open_release` | `VersionRollback` |
| replay an old release or serve an old version | `old-version-for-explicit-version-at-approver` | the client asked for version 2; the relay hands the approver version 1 | approver: `access.release` | `BindingMismatch` |
| replay an old release or serve an old version | `old-version-for-explicit-version-at-client` | the client asked for version 2 and got a v2 release; the relay serves the v1 manifest | requester: `access.open_release` | `BindingMismatch` |
| replay an old release or serve an old version | `release-vouches-for-other-version` | the release is for version 2; the relay serves version 1's manifest and ciphertexts | requester: `access.open_release` | `BindingMismatch` |
| replay an old release or serve an old version | `threshold-releases-of-mixed-versions` | 2-of-3 item: hand a0 version 1 and a1 version 2, serve version 2 to the client | requester: `access.open_release` | `BindingMismatch` |
| replay an old release or serve an old version | `store-previous-manifest-withheld` | hand the approver a version-2 store without the version-1 manifest | approver: `store.verify_store` | `BindingMismatch` |
| replay an old release or serve an old version | `store-previous-manifest-of-other-item` | hand the approver another item's manifest as the previous version | approver: `store.verify_store` | `BindingMismatch` |
| replay an old release or serve an old version | `store-previous-manifest-not-predecessor` | hand the approver version 2's own manifest as its predecessor | approver: `store.verify_store` | `BindingMismatch` |
| replay an old release or serve an old version | `deny-replayed-for-other-request` | present a2's deny of request 1 as a deny of request 2 | requester: `access.verify_deny` | `BindingMismatch` |
| replay an old release or serve an old version | `deny-request-hash-rewritten` | rewrite the request hash inside a2's deny (signature kept) | requester: `access.verify_deny` | `SignatureInvalid` |
| show the approver a false "who/why" | `access-purpose-changed` | change purpose in the access payload (signature kept) | approver: `access.verify_access` | `SignatureInvalid` |
| show the approver a false "who/why" | `access-argv-changed` | change context.argv in the access payload (signature kept) | approver: `access.verify_access` | `SignatureInvalid` |
| show the approver a false "who/why" | `access-host-changed` | change context.host in the access payload (signature kept) | approver: `access.verify_access` | `SignatureInvalid` |
| show the approver a false "who/why" | `access-user-changed` | change context.user in the access payload (signature kept) | approver: `access.verify_access` | `SignatureInvalid` |
| show the approver a false "who/why" | `access-items-changed` | change items.0.fields in the access payload (signature kept) | approver: `access.verify_access` | `SignatureInvalid` |
| show the approver a false "who/why" | `access-cache-changed` | change cache in the access payload (signature kept) | approver: `access.verify_access` | `SignatureInvalid` |
| show the approver a false "who/why" | `access-paired-with-other-client-certificate` | show the request as coming from 'release-bot' by pairing it with that client's certificate | approver: `access.verify_access` | `NotAuthorized` |
| show the approver a false "who/why" | `certificate-client-name-changed` | rename the client in its certificate (signature kept) | approver: `access.verify_access` | `CertificateInvalid` |
| show the approver a false "who/why" | `display-purpose-ansi-erase-line` | client-signed purpose carrying ansi erase line characters | approver: `access.verify_access` | `MalformedInput` |
| show the approver a false "who/why" | `display-purpose-c1-csi` | client-signed purpose carrying c1 csi characters | approver: `access.verify_access` | `MalformedInput` |
| show the approver a false "who/why" | `display-purpose-carriage-return` | client-signed purpose carrying carriage return characters | approver: `access.verify_access` | `MalformedInput` |
| show the approver a false "who/why" | `display-purpose-newline` | client-signed purpose carrying newline characters | approver: `access.verify_access` | `MalformedInput` |
| show the approver a false "who/why" | `display-purpose-bidi-rlo` | client-signed purpose carrying bidi rlo characters | approver: `access.verify_access` | `MalformedInput` |
| show the approver a false "who/why" | `display-purpose-bidi-isolate` | client-signed purpose carrying bidi isolate characters | approver: `access.verify_access` | `MalformedInput` |
| show the approver a false "who/why" | `display-purpose-bidi-rlm` | client-signed purpose carrying bidi rlm characters | approver: `access.verify_access` | `MalformedInput` |
| show the approver a false "who/why" | `display-purpose-arabic-letter-mark` | client-signed purpose carrying arabic letter mark characters | approver: `access.verify_access` | `MalformedInput` |
| show the approver a false "who/why" | `display-host-bell` | client-signed host carrying bell characters | approver: `access.verify_access` | `MalformedInput` |
| show the approver a false "who/why" | `display-argv-ansi-hide` | client-signed argv carrying ansi hide characters | approver: `access.verify_access` | `MalformedInput` |
| show the approver a false "who/why" | `display-user-bidi-rli` | client-signed user carrying bidi rli characters | approver: `access.verify_access` | `MalformedInput` |
| show the approver a false "who/why" | `display-cwd-osc-title` | client-signed cwd carrying osc title characters | approver: `access.verify_access` | `MalformedInput` |
| show the approver a false "who/why" | `display-purpose-line-separator-u2028` | client-signed purpose carrying line separator u2028 characters **(not refused today)** | approver: `access.verify_access` | `MalformedInput` |
| show the approver a false "who/why" | `display-purpose-paragraph-separator-u2029` | client-signed purpose carrying paragraph separator u2029 characters **(not refused today)** | approver: `access.verify_access` | `MalformedInput` |
| show the approver a false "who/why" | `display-purpose-unicode-tag-characters` | client-signed purpose carrying unicode tag characters characters **(not refused today)** | approver: `access.verify_access` | `MalformedInput` |
| show the approver a false "who/why" | `display-deny-reason-ansi` | an approver-signed deny whose reason carries ANSI escapes (shown to the requester) | requester: `access.verify_deny` | `MalformedInput` |
| show the approver a false "who/why" | `access-host-outside-certificate-constraint` | certificate allows hosts 'ci-*'; the signed request says host 'ops-laptop' **(not refused today)** | approver: `access.verify_access` | `CertificateInvalid` |
| replay a request or a machine's HTTP call | `access-replayed-after-expiry` | deliver (or re-deliver) an access request after its exp | approver: `access.verify_access` | `Expired` |
| replay a request or a machine's HTTP call | `store-replayed-after-expiry` | replay a store upload after its exp | approver: `store.verify_store` | `Expired` |
| withhold or delay | `threshold-one-of-two-releases` | 2-of-3 item: deliver only a0's release | requester: `access.open_release` | `ThresholdNotMet` |
| withhold or delay | `threshold-same-release-twice` | 2-of-3 item: deliver a0's release twice to make up the count | requester: `access.open_release` | `BindingMismatch` |
| withhold or delay | `threshold-release-relabelled-as-third-approver` | 2-of-3 item: deliver a0's release plus a copy relabelled as a2's | requester: `access.open_release` | `SignatureInvalid` |
| withhold or delay | `threshold-no-release` | deliver the manifest and ciphertexts but no release at all | requester: `access.open_release` | `ThresholdNotMet` |
| withhold or delay | `release-after-expiry` | verified in time, but the relay hands over the item material after exp | approver: `access.release` | `Expired` |

Not refused by the protocol layer, by design (see the tests at the end):

- a byte-identical replay of a valid access token within its window verifies
  again; single use of ``jti`` is the relay's job (DESIGN 3.2, "jti ... persisted
  until expiry").  ``test_replayed_access_is_dedupable_by_jti`` pins that the
  relay can dedupe (stable jti and request hash); past ``exp`` the approver
  refuses by itself (``access-replayed-after-expiry``).
- dropping a release or a denial is "withhold or delay": out of scope for
  confidentiality.  A dropped deny cannot make a secret leak: any release that
  still reaches the requester was signed by an approver that chose to release.
- the one-time key ``epk`` is public, so the relay *can* seal shares of its
  choosing to it (``test_relay_can_seal_to_epk_so_only_signatures_stop_a_forged_release``);
  only the approver's signature over the blob stops a forged release.

Rows marked "not refused today" fail at the time of writing: they state the
behaviour the threat model requires, and the product does not implement it yet.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from sealbox.crypto import aead, hpke, jws, labels, sharelink
from sealbox.crypto.encoding import b64u_decode, b64u_encode, canonical_json, parse_canonical_json
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.errors import (
    BindingMismatch,
    CertificateInvalid,
    DecryptionFailed,
    DirectoryBroken,
    DirectoryFork,
    DirectoryRollback,
    Expired,
    MalformedInput,
    ManifestMismatch,
    NotAuthorized,
    SealboxError,
    SignatureInvalid,
    ThresholdNotMet,
    VersionRollback,
)
from sealbox.protocol import access as ac
from sealbox.protocol import certificates as certs
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids, shares
from sealbox.protocol import store as st
from sealbox.protocol.directory import Directory
from sealbox.protocol.statements import (
    AccessItem,
    ApproverRecord,
    ClientCertificate,
    ClientConstraints,
    ClientInfo,
    DenyStatement,
    DirectoryLink,
    EnrollmentConstraints,
    EnrollmentStatement,
    FieldCipher,
    ItemManifest,
    KeySet,
    ReleaseStatement,
    RequestContext,
    StoreStatement,
    sign_statement,
)

#: The honest world of ``conftest.py`` (a ``World``); typed loosely because
#: conftest modules are not importable by name.
World = Any
Thunk = Callable[[], object]

# --- DESIGN section 3.2, left column, word for word -------------------------------------

READ = "read a secret"
EPK = "swap the requester's ephemeral key for its own"
APPROVER_KEY = "substitute an approver public key (so clients encrypt to it)"
FORGE = 'forge a release or a "fake secret"'
MOVE = "move a ciphertext to another item / field / version / vault"
OLD = "replay an old release or serve an old version"
WHO = 'show the approver a false "who/why"'
REPLAY = "replay a request or a machine's HTTP call"
WITHHOLD = "withhold or delay"
DESIGN_ROWS = (READ, EPK, APPROVER_KEY, FORGE, MOVE, OLD, WHO, REPLAY, WITHHOLD)

#: The attack cases of the suite's brief (1..16), each covered by at least one row.
CASES = range(1, 17)


@dataclass(frozen=True)
class Attack:
    """One row: what the relay does, who refuses it, and with which exact error."""

    id: str
    case: int
    threat: str
    raises: type[SealboxError]
    by: str
    """The honest party's check that refuses (a sealbox function)."""
    tamper: Callable[[World], Thunk]
    """Takes the honest world, builds the tampered objects, returns the honest check."""
    match: str | None
    what: str


ROWS: list[Attack] = []


def attack(
    id: str,
    *,
    case: int,
    threat: str,
    raises: type[SealboxError],
    by: str,
    match: str | None = None,
) -> Callable[[Callable[[World], Thunk]], Callable[[World], Thunk]]:
    def register(fn: Callable[[World], Thunk]) -> Callable[[World], Thunk]:
        what = (fn.__doc__ or "").strip().splitlines()[0]
        ROWS.append(Attack(id, case, threat, raises, by, fn, match, what))
        return fn

    return register


# --- What the relay can do to a compact JWS it carries ------------------------------------


def payload_of(token: str) -> dict[str, Any]:
    return parse_canonical_json(b64u_decode(token.split(".")[1]))


def splice(token: str, mutate: Callable[[dict[str, Any]], None]) -> str:
    """Change the payload, keep the original header and signature."""
    header, _, signature = token.split(".")
    body = copy.deepcopy(payload_of(token))
    mutate(body)
    return f"{header}.{b64u_encode(canonical_json(body))}.{signature}"


def resign(
    token: str, key: Any, kid: str, mutate: Callable[[dict[str, Any]], None] | None = None
) -> str:
    """Re-sign the (possibly changed) payload with a key the relay holds, under ``kid``."""
    body = copy.deepcopy(payload_of(token))
    if mutate is not None:
        mutate(body)
    return jws.sign(key, jws.read_header(token).typ, kid, body)


def reheader(token: str, *, kid: str | None = None, typ: str | None = None) -> str:
    """Change the protected header (kid or typ), keep payload and signature."""
    old = jws.read_header(token)
    _, body, signature = token.split(".")
    header = canonical_json({"alg": "EdDSA", "kid": kid or old.kid, "typ": typ or old.typ})
    return f"{b64u_encode(header)}.{body}.{signature}"


def setter(*path: str | int, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(body: dict[str, Any]) -> None:
        target: Any = body
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


# --- The honest parties' checks ------------------------------------------------------------


def approver_verifies_access(
    w: World,
    token: str,
    *,
    certificate: str | None = None,
    directory: Directory | None = None,
    now: int | None = None,
    enrollment: str | None = None,
) -> Thunk:
    return lambda: ac.verify_access(
        token,
        directory=directory or w.directory,
        certificate=w.cert if certificate is None else certificate,
        now=w.now if now is None else now,
        enrollment=enrollment,
    )


def approver_releases(
    w: World, request: ac.AccessRequest, materials: dict[str, ac.ItemMaterial], *, party: int = 0
) -> Thunk:
    p = w.a[party]
    verified = ac.verify_access(request.token, directory=w.directory, certificate=w.cert, now=w.now)
    return lambda: ac.release(
        verified,
        materials=materials,
        directory=w.directory,
        approver=p.id,
        hpke_key=p.hpke,
        key=p.sig,
        now=w.now,
    )


def client_opens(
    w: World,
    request: ac.AccessRequest,
    releases: list[str],
    manifests: dict[str, str],
    ciphertexts: dict[str, Any],
    *,
    known_versions: dict[str, int] | None = None,
) -> Thunk:
    return lambda: ac.open_release(
        request,
        releases=releases,
        manifests=manifests,
        ciphertexts=ciphertexts,
        directory=w.directory,
        known_versions=known_versions,
    )


def client_opens_latest(
    w: World,
    *,
    releases: list[str] | None = None,
    manifest: str | None = None,
    ciphertexts: dict[str, bytes] | None = None,
    request: ac.AccessRequest | None = None,
) -> Thunk:
    """The client opens req_latest; everything not given is what an honest relay serves."""
    return client_opens(
        w,
        request or w.req_latest,
        [w.rel_latest] if releases is None else releases,
        {w.item1: w.man1v2 if manifest is None else manifest},
        {w.item1: w.up1v2.ciphertexts if ciphertexts is None else ciphertexts},
    )


def approver_verifies_store(
    w: World,
    upload: st.StoreUpload,
    *,
    party: int = 0,
    prev_manifest: str | None = None,
    now: int | None = None,
) -> Thunk:
    p = w.a[party]
    return lambda: st.verify_store(
        upload,
        directory=w.directory,
        approver=p.id,
        hpke_key=p.hpke,
        certificate=w.cert,
        now=w.now if now is None else now,
        prev_manifest=prev_manifest,
    )


def client_verifies_directory(
    w: World, tokens: list[str] | tuple[str, ...], cached_head: dirs.DirectoryHead | None = None
) -> Thunk:
    return lambda: dirs.verify_directory(tokens, pinned=w.fingerprint, cached_head=cached_head)


# --- What the relay can make with its own keys ------------------------------------------------


def relay_share_blob(
    w: World,
    request: ac.AccessRequest,
    approver: str,
    *,
    fields: tuple[str, ...] = ("password",),
    x: int = 1,
    version: int = 2,
) -> bytes:
    """Shares of the relay's choosing, sealed to the request's (public!) ephemeral key."""
    shares = [
        {
            "item": w.item1,
            "version": version,
            "field": name,
            "share": b64u_encode(bytes([x]) + secrets.token_bytes(aead.FIELD_KEY_BYTES)),
        }
        for name in fields
    ]
    plaintext = canonical_json({"format": labels.RELEASE_PLAINTEXT_FORMAT, "shares": shares})
    info = ac.release_info(vault=w.vault, request=request.hash, approver=approver)
    return hpke.seal(request.statement.epk, plaintext, info)


def relay_release(w: World, *, approver: str, kid: str, manifest: str | None = None) -> str:
    """A complete release for req_latest made and signed by the relay."""
    statement = ReleaseStatement(
        vault=w.vault,
        request=w.req_latest.hash,
        approver=approver,
        manifests=(st.manifest_hash(manifest or w.man1v2),),
        blob=relay_share_blob(w, w.req_latest, approver),
        cache_until=0,
        at=w.now,
    )
    return sign_statement(statement, w.relay.sig, kid)


@dataclass(frozen=True)
class FakeVersion:
    manifest: str
    ciphertexts: dict[str, bytes]


def relay_fake_version(w: World, *, kid: str) -> FakeVersion:
    """A "version 3" of item1 that the relay made up: its own key, value and manifest."""
    key = aead.new_field_key()
    nonce, ciphertext = aead.encrypt_field(
        key, b"attacker-chosen value", vault=w.vault, item=w.item1, version=3, field="password"
    )
    manifest = ItemManifest(
        vault=w.vault,
        item=w.item1,
        path="app/prod/db",
        version=3,
        prev=st.manifest_hash(w.man1v2),
        type="secret",
        fields={"password": FieldCipher(nonce=nonce, ct_hash=st.ciphertext_hash(ciphertext))},
        keyset=KeySet(
            threshold=1,
            approvers=(w.a[0].id,),
            wraps={w.a[0].id: {"password": st.wrap_hash(b"relay-made wrap")}},
        ),
        store_request=None,
        at=w.now,
    )
    return FakeVersion(
        manifest=sign_statement(manifest, w.relay.sig, kid),
        ciphertexts={"password": ciphertext},
    )


def field_key_of(w: World, upload: st.StoreUpload, *, item: str, version: int, name: str) -> bytes:
    """The field key of an M = 1 item, as approver a0 (a key holder) recovers it."""
    a0 = w.a[0]
    info = st.wrap_info(vault=w.vault, item=item, version=version, field=name, approver=a0.id)
    return hpke.open_sealed(a0.hpke, upload.wraps[a0.id][name], info)[1:]


def with_directory(w: World, extra: list[Any]) -> Directory:
    """A *client-side* view of the directory that also lists records the relay slipped in."""
    d = w.directory
    return Directory(
        vault=d.vault,
        fingerprint=d.fingerprint,
        approvers={**d.approvers, **{p.record.id: p.record for p in extra}},
        head=d.head,
        tokens=d.tokens,
    )


def new_record(name: str) -> ApproverRecord:
    """A fresh approver record (keys thrown away): someone an approver might add."""
    return ApproverRecord(
        id=ids.new_id(ids.APPROVER), name=name, kind="terminal", tier="synced",
        hpke_pk=HpkePrivateKey.generate().public_key(), sig_pk=SigningKey.generate().verify_key(),
    )  # fmt: skip


def hand_signed_access(w: World, mutate: Callable[[dict[str, Any]], None]) -> str:
    """An access statement the *client* signed over a payload built by hand (no builder checks)."""
    body = copy.deepcopy(payload_of(w.req_latest.token))
    mutate(body)
    return jws.sign(w.client_key, labels.TYP_ACCESS, w.client_id, body)


# =====================================================================================
# 1. Read a secret
# =====================================================================================


@attack(
    "read-wrap-with-relay-key",
    case=1, threat=READ, raises=DecryptionFailed, by="hpke.open_sealed",
)  # fmt: skip
def _(w: World) -> Thunk:
    """open an approver's wrapped field key with a relay-generated HPKE key"""
    a0 = w.a[0].id
    info = st.wrap_info(vault=w.vault, item=w.item1, version=2, field="password", approver=a0)
    return lambda: hpke.open_sealed(w.relay.hpke, w.up1v2.wraps[a0]["password"], info)


@attack(
    "read-release-with-relay-key",
    case=1, threat=READ, raises=DecryptionFailed, by="hpke.open_sealed",
)  # fmt: skip
def _(w: World) -> Thunk:
    """open a release blob (sealed to the requester's one-time key) with a relay key"""
    blob = ReleaseStatement.from_json(payload_of(w.rel_latest)).blob
    info = ac.release_info(vault=w.vault, request=w.req_latest.hash, approver=w.a[0].id)
    return lambda: hpke.open_sealed(w.relay.hpke, blob, info)


@attack(
    "read-field-with-guessed-key",
    case=1, threat=READ, raises=DecryptionFailed, by="aead.decrypt_field",
)  # fmt: skip
def _(w: World) -> Thunk:
    """decrypt a stored field ciphertext under a key of the relay's choosing"""
    nonce = ItemManifest.from_json(payload_of(w.man1v2)).fields["password"].nonce
    ct = w.up1v2.ciphertexts["password"]
    return lambda: aead.decrypt_field(
        secrets.token_bytes(32), nonce, ct, vault=w.vault, item=w.item1, version=2, field="password"
    )


def _share(value: bytes) -> tuple[str, bytes, bytes, bytes]:
    """An honest sender's share: (id, key kept in the link, nonce, ciphertext the relay holds)."""
    share_id = shares.new_share_id()
    key = sharelink.new_share_key()
    return share_id, key, *sharelink.seal_share(key, value, share_id=share_id)


@attack(
    "read-share-with-relay-key",
    case=1, threat=READ, raises=DecryptionFailed, by="sharelink.open_share",
)  # fmt: skip
def _(w: World) -> Thunk:
    """open a share link's stored ciphertext under a key of its own (the link's key is only in the URL fragment, never sent to it)"""
    share_id, _key, nonce, ct = _share(w.all_plaintexts()[0])
    return lambda: sharelink.open_share(secrets.token_bytes(32), nonce, ct, share_id=share_id)


@attack(
    "share-served-under-other-id",
    case=7, threat=MOVE, raises=DecryptionFailed, by="sharelink.open_share",
)  # fmt: skip
def _(w: World) -> Thunk:
    """answer the open of one share link with another share's ciphertext"""
    asked, key, _nonce, _ct = _share(w.all_plaintexts()[0])
    # The relay holds its own share of the same sender, made with the same key by a buggy or
    # coerced client: even then the aad's share id keeps the ciphertext to its own link.
    other = shares.new_share_id()
    nonce, ct = sharelink.seal_share(key, b"another value", share_id=other)
    return lambda: sharelink.open_share(key, nonce, ct, share_id=asked)


# =====================================================================================
# 2. Swap the requester's ephemeral key
# =====================================================================================


@attack(
    "epk-swapped-signature-kept",
    case=2, threat=EPK, raises=SignatureInvalid, by="access.verify_access",
)  # fmt: skip
def _(w: World) -> Thunk:
    """put the relay's HPKE key as epk in the access payload, keep the client signature"""
    token = splice(w.req_latest.token, setter("epk", value=w.relay.hpke.public_key().to_text()))
    return approver_verifies_access(w, token)


@attack(
    "epk-swapped-resigned-as-client",
    case=2, threat=EPK, raises=SignatureInvalid, by="access.verify_access",
)  # fmt: skip
def _(w: World) -> Thunk:
    """swap epk and re-sign with the relay's key under the client's kid"""
    token = resign(
        w.req_latest.token, w.relay.sig, w.client_id,
        setter("epk", value=w.relay.hpke.public_key().to_text()),
    )  # fmt: skip
    return approver_verifies_access(w, token)


@attack(
    "epk-swapped-resigned-as-relay",
    case=2, threat=EPK, raises=NotAuthorized, by="access.verify_access",
    match="not signed by the certified client",
)  # fmt: skip
def _(w: World) -> Thunk:
    """swap epk and re-sign as itself (its own cli_ id and key) next to the client's certificate"""

    def mutate(body: dict[str, Any]) -> None:
        body["epk"] = w.relay.hpke.public_key().to_text()
        body["client"] = w.relay_client_id

    token = resign(w.req_latest.token, w.relay_client_key, w.relay_client_id, mutate)
    return approver_verifies_access(w, token)


@attack(
    "epk-swapped-with-relay-certificate",
    case=2, threat=EPK, raises=CertificateInvalid, by="access.verify_access",
)  # fmt: skip
def _(w: World) -> Thunk:
    """swap epk, sign as itself, and present a certificate for its own key that it signed as a1"""
    info = ClientInfo(
        id=w.relay_client_id, kind="human", name="ana",
        sig_pk=w.relay_client_key.verify_key(),
    )  # fmt: skip
    cert = sign_statement(
        ClientCertificate(
            vault=w.vault, client=info, scopes=("read",),
            constraints=ClientConstraints(not_after=w.now + 3600), issuer=w.a[1].id, at=w.now,
        ),
        w.relay.sig, w.a[1].id,
    )  # fmt: skip

    def mutate(body: dict[str, Any]) -> None:
        body["epk"] = w.relay.hpke.public_key().to_text()
        body["client"] = w.relay_client_id

    token = resign(w.req_latest.token, w.relay_client_key, w.relay_client_id, mutate)
    return approver_verifies_access(w, token, certificate=cert)


# =====================================================================================
# 3. Substitute an approver public key
# =====================================================================================


def _relay_link(w: World, *, kid: str, op: str = "add", record: Any = None) -> str:
    link = DirectoryLink(
        vault=w.vault,
        seq=w.directory.head.seq + 1,
        prev=w.directory.head.hash,
        op=op,
        approver=record or w.relay.record,
        at=w.now,
    )
    return sign_statement(link, w.relay.sig, kid)


@attack(
    "directory-link-added-by-relay",
    case=3, threat=APPROVER_KEY, raises=DirectoryBroken, by="directory.verify_directory",
    match="not an approver",
)  # fmt: skip
def _(w: World) -> Thunk:
    """append a link adding its own approver record, signed by itself"""
    return client_verifies_directory(w, [*w.links, _relay_link(w, kid=w.relay.id)])


@attack(
    "directory-link-added-as-approver",
    case=3, threat=APPROVER_KEY, raises=DirectoryBroken, by="directory.verify_directory",
)  # fmt: skip
def _(w: World) -> Thunk:
    """append a link adding its own record, signed with its key under approver a0's kid"""
    return client_verifies_directory(w, [*w.links, _relay_link(w, kid=w.a[0].id)])


@attack(
    "directory-update-rotates-to-relay-key",
    case=3, threat=APPROVER_KEY, raises=DirectoryBroken, by="directory.verify_directory",
)  # fmt: skip
def _(w: World) -> Thunk:
    """append an 'update' giving approver a1 the relay's HPKE key, signed as a1 with its own key"""
    record = replace(w.a[1].record, hpke_pk=w.relay.hpke.public_key())
    return client_verifies_directory(
        w, [*w.links, _relay_link(w, kid=w.a[1].id, op="update", record=record)]
    )


@attack(
    "directory-hpke-key-swapped-in-link",
    case=3, threat=APPROVER_KEY, raises=DirectoryBroken, by="directory.verify_directory",
)  # fmt: skip
def _(w: World) -> Thunk:
    """replace a1's hpke_pk inside existing link 1 (signature kept)"""
    link1 = splice(
        w.links[1], setter("approver", "hpke_pk", value=w.relay.hpke.public_key().to_text())
    )
    return client_verifies_directory(w, [w.links[0], link1, w.links[2]])


@attack(
    "directory-signing-key-swapped-in-link",
    case=3, threat=APPROVER_KEY, raises=DirectoryBroken, by="directory.verify_directory",
)  # fmt: skip
def _(w: World) -> Thunk:
    """replace a2's sig_pk inside existing link 2 (signature kept)"""
    link2 = splice(
        w.links[2], setter("approver", "sig_pk", value=w.relay.sig.verify_key().to_text())
    )
    return client_verifies_directory(w, [*w.links[:2], link2])


@attack(
    "directory-other-link0",
    case=3, threat=APPROVER_KEY, raises=DirectoryBroken, by="directory.verify_directory",
    match="pinned",
)  # fmt: skip
def _(w: World) -> Thunk:
    """serve a link 0 of its own (same vault id, relay approver) instead of the pinned one"""
    return client_verifies_directory(
        w, [dirs.genesis_link(w.vault, w.relay.record, w.relay.sig, now=w.now)]
    )


@attack(
    "directory-link-dropped",
    case=3, threat=APPROVER_KEY, raises=DirectoryBroken, by="directory.verify_directory",
)  # fmt: skip
def _(w: World) -> Thunk:
    """drop link 1 from the middle of the chain"""
    return client_verifies_directory(w, [w.links[0], w.links[2]])


@attack(
    "directory-links-reordered",
    case=3, threat=APPROVER_KEY, raises=DirectoryBroken, by="directory.verify_directory",
)  # fmt: skip
def _(w: World) -> Thunk:
    """serve links 1 and 2 in swapped order"""
    return client_verifies_directory(w, [w.links[0], w.links[2], w.links[1]])


@attack(
    "store-keyset-names-relay-approver",
    case=3, threat=APPROVER_KEY, raises=NotAuthorized, by="store.verify_store",
    match="not a current approver",
)  # fmt: skip
def _(w: World) -> Thunk:
    """a client fooled into sealing to a relay approver id: the approver refuses the store"""
    upload = st.build_store(
        client=w.client_id, key=w.client_key, directory=with_directory(w, [w.relay]),
        item=ids.new_id(ids.ITEM), path="app/prod/new", version=1, prev=None,
        values={"password": b"x"}, approvers=[w.a[0].id, w.relay.id], threshold=1,
        purpose="p", context=RequestContext(), now=w.now,
    )  # fmt: skip
    return approver_verifies_store(w, upload)


# =====================================================================================
# 4. Roll back or fork the directory
# =====================================================================================


@attack(
    "directory-rollback-hides-remove",
    case=4, threat=APPROVER_KEY, raises=DirectoryRollback, by="directory.verify_directory",
)  # fmt: skip
def _(w: World) -> Thunk:
    """serve links 0..2 to a client that has seen link 3 (which removes a1)"""
    return client_verifies_directory(w, w.links, cached_head=w.directory_removed.head)


@attack(
    "directory-rollback-to-link0",
    case=4, threat=APPROVER_KEY, raises=DirectoryRollback, by="directory.verify_directory",
)  # fmt: skip
def _(w: World) -> Thunk:
    """serve only link 0 to a client that has seen link 2"""
    return client_verifies_directory(w, w.links[:1], cached_head=w.directory.head)


@attack(
    "directory-fork-same-length",
    case=4, threat=APPROVER_KEY, raises=DirectoryFork, by="directory.verify_directory",
)  # fmt: skip
def _(w: World) -> Thunk:
    """serve the other valid link 3 (provoked by withholding) to a client that saw the first"""
    cached = dirs.verify_directory([*w.links, w.fork_x], pinned=w.fingerprint).head
    return client_verifies_directory(w, [*w.links, w.fork_y], cached_head=cached)


@attack(
    "directory-fork-longer",
    case=4, threat=APPROVER_KEY, raises=DirectoryFork, by="directory.verify_directory",
)  # fmt: skip
def _(w: World) -> Thunk:
    """serve a longer chain built on the other link 3"""
    cached = dirs.verify_directory([*w.links, w.fork_x], pinned=w.fingerprint).head
    branch = dirs.verify_directory([*w.links, w.fork_y], pinned=w.fingerprint)
    a0 = w.a[0]
    link4 = dirs.append_link(
        branch, "add", new_record("z"), signer=a0.id, key=a0.sig, now=w.now + 30
    )
    return client_verifies_directory(w, [*w.links, w.fork_y, link4], cached_head=cached)


# =====================================================================================
# 5. Forge a release
# =====================================================================================


@attack(
    "release-forged-as-approver",
    case=5, threat=FORGE, raises=SignatureInvalid, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """seal fake shares to the (public) epk; sign the release with its key under a0's kid"""
    return client_opens_latest(w, releases=[relay_release(w, approver=w.a[0].id, kid=w.a[0].id)])


@attack(
    "release-by-relay-approver",
    case=5, threat=FORGE, raises=NotAuthorized, by="access.open_release",
    match="not a current approver",
)  # fmt: skip
def _(w: World) -> Thunk:
    """a release from the relay's own approver id (not in the directory)"""
    return client_opens_latest(w, releases=[relay_release(w, approver=w.relay.id, kid=w.relay.id)])


@attack(
    "release-blob-resealed-signature-kept",
    case=5, threat=FORGE, raises=SignatureInvalid, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """replace the blob of a0's honest release by fake shares sealed to epk; keep a0's signature"""
    blob = relay_share_blob(w, w.req_latest, w.a[0].id)
    return client_opens_latest(
        w, releases=[splice(w.rel_latest, setter("blob", value=b64u_encode(blob)))]
    )


@attack(
    "release-kid-relabelled",
    case=5, threat=FORGE, raises=SignatureInvalid, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """attribute a0's release to a1 by rewriting the header kid"""
    return client_opens_latest(w, releases=[reheader(w.rel_latest, kid=w.a[1].id)])


@attack(
    "release-fake-handed-to-approver",
    case=5, threat=FORGE, raises=ManifestMismatch, by="access.release",
    match="not the signed one",
)  # fmt: skip
def _(w: World) -> Thunk:
    """hand a0 a share it re-sealed to a0's public key (right info) instead of the stored wrap"""
    a0 = w.a[0]
    info = st.wrap_info(vault=w.vault, item=w.item1, version=2, field="password", approver=a0.id)
    fake = hpke.seal(a0.record.hpke_pk, bytes([1]) + secrets.token_bytes(32), info)
    material = ac.ItemMaterial(manifest=w.man1v2, wraps={"password": fake})
    return approver_releases(w, w.req_latest, {w.item1: material})


@attack(
    "release-header-alg-none",
    case=5, threat=FORGE, raises=MalformedInput, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """a release with header alg 'none' and no signature"""
    header = canonical_json({"alg": "none", "kid": w.a[0].id, "typ": labels.TYP_RELEASE})
    body = w.rel_latest.split(".")[1]
    return client_opens_latest(w, releases=[f"{b64u_encode(header)}.{body}."])


@attack(
    "release-header-embedded-jwk",
    case=5, threat=FORGE, raises=MalformedInput, by="access.open_release",
    match="exactly alg, kid and typ",
)  # fmt: skip
def _(w: World) -> Thunk:
    """a relay-signed release whose header carries the relay's own key as 'jwk'"""
    forged = relay_release(w, approver=w.a[0].id, kid=w.a[0].id)
    _, body, signature = forged.split(".")
    header = canonical_json(
        {
            "alg": "EdDSA",
            "jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64u_encode(w.relay.sig.verify_key().raw)},
            "kid": w.a[0].id,
            "typ": labels.TYP_RELEASE,
        }
    )
    return client_opens_latest(w, releases=[f"{b64u_encode(header)}.{body}.{signature}"])


@attack(
    "release-payload-reencoded",
    case=5, threat=FORGE, raises=SignatureInvalid, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """re-encode a0's release payload with the same meaning (spaces) and keep the signature"""
    header, _, signature = w.rel_latest.split(".")
    spaced = json.dumps(payload_of(w.rel_latest), sort_keys=True, indent=1).encode()
    return client_opens_latest(w, releases=[f"{header}.{b64u_encode(spaced)}.{signature}"])


# =====================================================================================
# 6. Forge a "fake secret"
# =====================================================================================


@attack(
    "fake-manifest-by-relay-approver",
    case=6, threat=FORGE, raises=NotAuthorized, by="access.open_release",
    match="not a current approver",
)  # fmt: skip
def _(w: World) -> Thunk:
    """a whole fake version 3 (manifest signed as its own approver id, its ciphertext, a release)"""
    fake = relay_fake_version(w, kid=w.relay.id)
    release = relay_release(w, approver=w.relay.id, kid=w.relay.id, manifest=fake.manifest)
    return client_opens_latest(
        w, releases=[release], manifest=fake.manifest, ciphertexts=fake.ciphertexts
    )


@attack(
    "fake-manifest-as-approver",
    case=6, threat=FORGE, raises=SignatureInvalid, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """a fake version 3 whose manifest it signs with its key under a0's kid"""
    fake = relay_fake_version(w, kid=w.a[0].id)
    release = relay_release(w, approver=w.a[0].id, kid=w.a[0].id, manifest=fake.manifest)
    return client_opens_latest(
        w, releases=[release], manifest=fake.manifest, ciphertexts=fake.ciphertexts
    )


@attack(
    "fake-manifest-handed-to-approver",
    case=6, threat=FORGE, raises=SignatureInvalid, by="access.release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """hand a0 the fake manifest (under a0's kid) so it releases against it"""
    fake = relay_fake_version(w, kid=w.a[0].id)
    material = ac.ItemMaterial(manifest=fake.manifest, wraps=w.up1v2.wraps[w.a[0].id])
    return approver_releases(w, w.req_latest, {w.item1: material})


@attack(
    "fake-ciphertext-honest-manifest",
    case=6, threat=FORGE, raises=ManifestMismatch, by="access.open_release",
    match="not the signed one",
)  # fmt: skip
def _(w: World) -> Thunk:
    """honest manifest and release, but its own ciphertext (right nonce and aad, its key)"""
    nonce = ItemManifest.from_json(payload_of(w.man1v2)).fields["password"].nonce
    ciphertext = aead.encrypt_field(
        aead.new_field_key(), b"attacker-chosen", vault=w.vault, item=w.item1, version=2,
        field="password", random=lambda n: nonce if n == 12 else secrets.token_bytes(n),
    )[1]  # fmt: skip
    return client_opens_latest(w, ciphertexts={"password": ciphertext})


@attack(
    "manifest-of-other-item",
    case=6, threat=FORGE, raises=BindingMismatch, by="access.open_release",
    match="another item",
)  # fmt: skip
def _(w: World) -> Thunk:
    """serve item2's (honest) manifest as item1's"""
    return client_opens_latest(w, manifest=w.man2, ciphertexts=w.up2.ciphertexts)


@attack(
    "manifest-of-other-vault",
    case=6, threat=FORGE, raises=BindingMismatch, by="access.open_release",
    match="another vault",
)  # fmt: skip
def _(w: World) -> Thunk:
    """serve a0's honest manifest from vault 2 (same approver, same item id) in vault 1"""
    return client_opens_latest(w, manifest=w.man_v2, ciphertexts=w.up_v2.ciphertexts)


# =====================================================================================
# 7. Move a ciphertext to another field / version / item / vault
# =====================================================================================


@attack(
    "ciphertext-of-other-field",
    case=7, threat=MOVE, raises=ManifestMismatch, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """serve field 'user' ciphertext as field 'password'"""
    return client_opens_latest(w, ciphertexts={"password": w.up1v2.ciphertexts["user"]})


@attack(
    "ciphertext-of-other-version",
    case=7, threat=MOVE, raises=ManifestMismatch, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """serve version 1's 'password' ciphertext under version 2's manifest"""
    return client_opens_latest(w, ciphertexts={"password": w.up1.ciphertexts["password"]})


@attack(
    "ciphertext-of-other-item",
    case=7, threat=MOVE, raises=ManifestMismatch, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """serve item2's 'password' ciphertext as item1's"""
    return client_opens_latest(w, ciphertexts={"password": w.up2.ciphertexts["password"]})


@attack(
    "ciphertext-of-other-vault",
    case=7, threat=MOVE, raises=ManifestMismatch, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """serve vault 2's ciphertext of the same item id as vault 1's"""
    return client_opens_latest(w, ciphertexts={"password": w.up_v2.ciphertexts["password"]})


def _aead_moved(moved: Callable[[World], dict[str, Any]]) -> Callable[[World], Thunk]:
    def tamper(w: World) -> Thunk:
        key = field_key_of(w, w.up1, item=w.item1, version=1, name="password")
        nonce = ItemManifest.from_json(payload_of(w.man1)).fields["password"].nonce
        where = {"vault": w.vault, "item": w.item1, "version": 1, "field": "password", **moved(w)}
        ct = w.up1.ciphertexts["password"]
        return lambda: aead.decrypt_field(key, nonce, ct, **where)

    return tamper


_AEAD_MOVES: tuple[tuple[str, Callable[[World], dict[str, Any]], str], ...] = (
    ("field", lambda w: {"field": "user"}, "field 'user'"),
    ("version", lambda w: {"version": 2}, "version 2"),
    ("item", lambda w: {"item": w.item2}, "item2"),
    ("vault", lambda w: {"vault": w.vault2}, "vault 2"),
)
for _name, _moved, _what in _AEAD_MOVES:
    _fn = _aead_moved(_moved)
    _fn.__doc__ = f"right key and nonce, aad of {_what} (AEAD binding)"
    attack(
        f"aead-aad-of-other-{_name}",
        case=7, threat=MOVE, raises=DecryptionFailed, by="aead.decrypt_field",
    )(_fn)  # fmt: skip


@attack(
    "wrap-of-other-field-to-approver",
    case=7, threat=MOVE, raises=ManifestMismatch, by="access.release",
    match="not the signed one",
)  # fmt: skip
def _(w: World) -> Thunk:
    """hand a0 its wrap of field 'user' as its wrap of 'password'"""
    wraps = {"password": w.up1v2.wraps[w.a[0].id]["user"]}
    return approver_releases(w, w.req_latest, {w.item1: ac.ItemMaterial(w.man1v2, wraps)})


@attack(
    "wrap-of-other-approver-to-approver",
    case=7, threat=MOVE, raises=ManifestMismatch, by="access.release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """hand a0 the wraps sealed to a1"""
    wraps = w.up1v2.wraps[w.a[1].id]
    return approver_releases(w, w.req_latest, {w.item1: ac.ItemMaterial(w.man1v2, wraps)})


@attack(
    "wrap-of-other-version-to-approver",
    case=7, threat=MOVE, raises=ManifestMismatch, by="access.release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """hand a0 version 1's wraps together with version 2's manifest"""
    wraps = w.up1.wraps[w.a[0].id]
    return approver_releases(w, w.req_latest, {w.item1: ac.ItemMaterial(w.man1v2, wraps)})


def _hpke_moved(kind: str) -> Callable[[World], Thunk]:
    def tamper(w: World) -> Thunk:
        a0 = w.a[0]
        info: dict[str, Any] = {
            "vault": w.vault, "item": w.item1, "version": 1, "field": "password",
            "approver": a0.id,
        }  # fmt: skip
        blob = {
            "field": w.up1.wraps[a0.id]["user"],
            "version": w.up1v2.wraps[a0.id]["password"],
            "item": w.up2.wraps[a0.id]["password"],
            "vault": w.up_v2.wraps[a0.id]["password"],
            # a1's blob is sealed to a1's key, so moving it fails twice; instead keep a0's
            # own blob and ask for it under a1's id: only the info differs.
            "approver": w.up1.wraps[a0.id]["password"],
        }[kind]
        if kind == "approver":
            info["approver"] = w.a[1].id
        return lambda: hpke.open_sealed(a0.hpke, blob, st.wrap_info(**info))

    return tamper


for _kind, _doc in (
    ("field", "open a0's wrap of field 'user' as its wrap of 'password' (a0's key)"),
    ("version", "open a0's wrap of version 2 as its wrap of version 1 (a0's key)"),
    ("item", "open a0's wrap of item2 as its wrap of item1 (a0's key)"),
    ("vault", "open a0's wrap from vault 2 as its wrap in vault 1 (a0's key)"),
    ("approver", "open a0's own wrap under the info that names a1 (a0's key)"),
):
    _fn = _hpke_moved(_kind)
    _fn.__doc__ = _doc
    attack(
        f"hpke-wrap-info-of-other-{_kind}",
        case=7, threat=MOVE, raises=DecryptionFailed, by="hpke.open_sealed",
    )(_fn)  # fmt: skip


@attack(
    "hpke-release-info-of-other-approver",
    case=7, threat=MOVE, raises=DecryptionFailed, by="hpke.open_sealed",
)  # fmt: skip
def _(w: World) -> Thunk:
    """open a0's release blob as if a1 had sealed it (right one-time key)"""
    blob = ReleaseStatement.from_json(payload_of(w.rel_latest)).blob
    info = ac.release_info(vault=w.vault, request=w.req_latest.hash, approver=w.a[1].id)
    return lambda: hpke.open_sealed(w.req_latest.ephemeral, blob, info)


# =====================================================================================
# 8. Replay an old release
# =====================================================================================


@attack(
    "release-replayed-to-other-request",
    case=8, threat=OLD, raises=BindingMismatch, by="access.open_release",
    match="another request",
)  # fmt: skip
def _(w: World) -> Thunk:
    """deliver a0's release of request 1 to request 2 (same client, same item)"""
    return client_opens_latest(w, request=w.req_other, releases=[w.rel_latest])


@attack(
    "release-blob-with-other-ephemeral-key",
    case=8, threat=OLD, raises=DecryptionFailed, by="hpke.open_sealed",
)  # fmt: skip
def _(w: World) -> Thunk:
    """request 1's release blob opened with request 2's one-time key and info"""
    blob = ReleaseStatement.from_json(payload_of(w.rel_latest)).blob
    info = ac.release_info(vault=w.vault, request=w.req_other.hash, approver=w.a[0].id)
    return lambda: hpke.open_sealed(w.req_other.ephemeral, blob, info)


@attack(
    "release-blob-with-other-request-info",
    case=8, threat=OLD, raises=DecryptionFailed, by="hpke.open_sealed",
)  # fmt: skip
def _(w: World) -> Thunk:
    """request 1's release blob opened with request 1's key but request 2's info"""
    blob = ReleaseStatement.from_json(payload_of(w.rel_latest)).blob
    info = ac.release_info(vault=w.vault, request=w.req_other.hash, approver=w.a[0].id)
    return lambda: hpke.open_sealed(w.req_latest.ephemeral, blob, info)


@attack(
    "release-blob-moved-into-other-release",
    case=8, threat=OLD, raises=SignatureInvalid, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """put request 1's blob into a0's honest release of request 2"""
    blob = payload_of(w.rel_latest)["blob"]
    release = splice(w.rel_other, setter("blob", value=blob))
    return client_opens_latest(w, request=w.req_other, releases=[release])


@attack(
    "release-request-hash-rewritten",
    case=8, threat=OLD, raises=SignatureInvalid, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """rewrite the request hash in a0's release of request 1 to request 2's"""
    release = splice(w.rel_latest, setter("request", value=w.req_other.hash))
    return client_opens_latest(w, request=w.req_other, releases=[release])


# =====================================================================================
# 9. Serve an old version
# =====================================================================================


@attack(
    "old-version-when-newer-seen",
    case=9, threat=OLD, raises=VersionRollback, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """hand approver and client version 1 although the client has seen version 2"""
    return client_opens(
        w, w.req_latest, [w.rel_latest_v1], {w.item1: w.man1}, {w.item1: w.up1.ciphertexts},
        known_versions={w.item1: 2},
    )  # fmt: skip


@attack(
    "old-version-for-explicit-version-at-approver",
    case=9, threat=OLD, raises=BindingMismatch, by="access.release",
    match="not asked for",
)  # fmt: skip
def _(w: World) -> Thunk:
    """the client asked for version 2; the relay hands the approver version 1"""
    material = w.material(w.up1, w.man1, w.a[0].id)
    return approver_releases(w, w.req_v2, {w.item1: material})


@attack(
    "old-version-for-explicit-version-at-client",
    case=9, threat=OLD, raises=BindingMismatch, by="access.open_release",
    match="not asked for",
)  # fmt: skip
def _(w: World) -> Thunk:
    """the client asked for version 2 and got a v2 release; the relay serves the v1 manifest"""
    release = w.release_by(w.a[0], w.req_v2, w.item1, w.up1v2, w.man1v2)
    return client_opens(w, w.req_v2, [release], {w.item1: w.man1}, {w.item1: w.up1.ciphertexts})


@attack(
    "release-vouches-for-other-version",
    case=9, threat=OLD, raises=BindingMismatch, by="access.open_release",
    match="other item versions",
)  # fmt: skip
def _(w: World) -> Thunk:
    """the release is for version 2; the relay serves version 1's manifest and ciphertexts"""
    return client_opens_latest(w, manifest=w.man1, ciphertexts=w.up1.ciphertexts)


@attack(
    "threshold-releases-of-mixed-versions",
    case=9, threat=OLD, raises=BindingMismatch, by="access.open_release",
    match="other item versions",
)  # fmt: skip
def _(w: World) -> Thunk:
    """2-of-3 item: hand a0 version 1 and a1 version 2, serve version 2 to the client"""
    a1_v2 = w.release_by(w.a[1], w.req_m2, w.item2, w.up2v2, w.man2v2)
    return client_opens(
        w, w.req_m2, [w.rel_m2[w.a[0].id], a1_v2], {w.item2: w.man2v2},
        {w.item2: w.up2v2.ciphertexts},
    )  # fmt: skip


@attack(
    "store-previous-manifest-withheld",
    case=9, threat=OLD, raises=BindingMismatch, by="store.verify_store",
)  # fmt: skip
def _(w: World) -> Thunk:
    """hand the approver a version-2 store without the version-1 manifest"""
    return approver_verifies_store(w, w.up1v2, prev_manifest=None)


@attack(
    "store-previous-manifest-of-other-item",
    case=9, threat=OLD, raises=BindingMismatch, by="store.verify_store",
)  # fmt: skip
def _(w: World) -> Thunk:
    """hand the approver another item's manifest as the previous version"""
    return approver_verifies_store(w, w.up1v2, prev_manifest=w.man2)


@attack(
    "store-previous-manifest-not-predecessor",
    case=9, threat=OLD, raises=BindingMismatch, by="store.verify_store",
)  # fmt: skip
def _(w: World) -> Thunk:
    """hand the approver version 2's own manifest as its predecessor"""
    return approver_verifies_store(w, w.up1v2, prev_manifest=w.man1v2)


# =====================================================================================
# 10. Show the approver a false who/why
# =====================================================================================


def _context_changed(path: tuple[str | int, ...], value: Any) -> Callable[[World], Thunk]:
    def tamper(w: World) -> Thunk:
        return approver_verifies_access(w, splice(w.req_latest.token, setter(*path, value=value)))

    return tamper


for _id, _path, _value in (
    ("purpose", ("purpose",), "rotate the backup key"),
    ("argv", ("context", "argv"), ["pg_dump", "--all"]),
    ("host", ("context", "host"), "build-server-01"),
    ("user", ("context", "user"), "root"),
    ("items", ("items", 0, "fields"), ["password", "user"]),
    ("cache", ("cache",), {"scope": "user", "seconds": 86400}),
):
    _fn = _context_changed(_path, _value)
    _fn.__doc__ = f"change {'.'.join(map(str, _path))} in the access payload (signature kept)"
    attack(
        f"access-{_id}-changed",
        case=10, threat=WHO, raises=SignatureInvalid, by="access.verify_access",
    )(_fn)  # fmt: skip


@attack(
    "access-paired-with-other-client-certificate",
    case=10, threat=WHO, raises=NotAuthorized, by="access.verify_access",
    match="not signed by the certified client",
)  # fmt: skip
def _(w: World) -> Thunk:
    """show the request as coming from 'release-bot' by pairing it with that client's certificate"""
    return approver_verifies_access(w, w.req_latest.token, certificate=w.other_cert)


@attack(
    "certificate-client-name-changed",
    case=10, threat=WHO, raises=CertificateInvalid, by="access.verify_access",
)  # fmt: skip
def _(w: World) -> Thunk:
    """rename the client in its certificate (signature kept)"""
    cert = splice(w.cert, setter("client", "name", value="release-bot"))
    return approver_verifies_access(w, w.req_latest.token, certificate=cert)


#: Characters that rewrite what a terminal or browser shows.  Refused even when the
#: client itself signed them: the statement is then malformed, not merely unverified.
DISPLAY_ATTACKS = (
    ("purpose", "ansi-erase-line", ("purpose",), "deploy\x1b[2K\rread-only check"),
    ("purpose", "c1-csi", ("purpose",), "deploy\x9b2Kread-only check"),
    ("purpose", "carriage-return", ("purpose",), "deploy\rread-only check"),
    ("purpose", "newline", ("purpose",), "deploy\nhost: trusted-ci"),
    ("purpose", "bidi-rlo", ("purpose",), "read \u202egnp.exe"),
    ("purpose", "bidi-isolate", ("purpose",), "read \u2066x\u2069"),
    ("purpose", "bidi-rlm", ("purpose",), "read\u200fonly"),
    ("purpose", "arabic-letter-mark", ("purpose",), "read\u061conly"),
    ("host", "bell", ("context", "host"), "laptop\x07"),
    ("argv", "ansi-hide", ("context", "argv"), ["psql", "\x1b[8mDROP DATABASE\x1b[0m"]),
    ("user", "bidi-rli", ("context", "user"), "\u2067root"),
    ("cwd", "osc-title", ("context", "cwd"), "/srv\x1b]0;trusted\x07"),
)

#: Also mandatory line breaks (UAX #14 class BK, like "\n") and invisible tag
#: characters: the same "fake a line / hide text" attack, not refused today.
DISPLAY_ATTACKS_NOT_REFUSED_TODAY = (
    ("purpose", "line-separator-u2028", ("purpose",), "deploy\u2028host: trusted-ci"),
    ("purpose", "paragraph-separator-u2029", ("purpose",), "deploy\u2029host: trusted-ci"),
    ("purpose", "unicode-tag-characters", ("purpose",), "deploy\U000e0069\U000e0067\U000e006e"),
)


def _client_signed_display(path: tuple[str | int, ...], value: Any) -> Callable[[World], Thunk]:
    def tamper(w: World) -> Thunk:
        return approver_verifies_access(w, hand_signed_access(w, setter(*path, value=value)))

    return tamper


for _where, _id, _path, _value in DISPLAY_ATTACKS + DISPLAY_ATTACKS_NOT_REFUSED_TODAY:
    _fn = _client_signed_display(_path, _value)
    _fn.__doc__ = f"client-signed {_where} carrying {_id.replace('-', ' ')} characters"
    attack(
        f"display-{_where}-{_id}",
        case=10, threat=WHO, raises=MalformedInput, by="access.verify_access",
    )(_fn)  # fmt: skip


@attack(
    "display-deny-reason-ansi",
    case=10, threat=WHO, raises=MalformedInput, by="access.verify_deny",
)  # fmt: skip
def _(w: World) -> Thunk:
    """an approver-signed deny whose reason carries ANSI escapes (shown to the requester)"""
    body = copy.deepcopy(payload_of(w.deny_latest))
    body["reason"] = "ok\x1b[2K\rAPPROVED"
    a2 = w.a[2]
    token = jws.sign(a2.sig, labels.TYP_DENY, a2.id, body)
    return lambda: ac.verify_deny(token, directory=w.directory, request_hash=w.req_latest.hash)


@attack(
    "access-host-outside-certificate-constraint",
    case=10, threat=WHO, raises=CertificateInvalid, by="access.verify_access",
)  # fmt: skip
def _(w: World) -> Thunk:
    """certificate allows hosts 'ci-*'; the signed request says host 'ops-laptop'"""
    return approver_verifies_access(w, w.req_latest.token, certificate=w.hostname_cert)


# =====================================================================================
# 11. Drop shares below M (withhold)
# =====================================================================================


@attack(
    "threshold-one-of-two-releases",
    case=11, threat=WITHHOLD, raises=ThresholdNotMet, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """2-of-3 item: deliver only a0's release"""
    return client_opens(
        w, w.req_m2, [w.rel_m2[w.a[0].id]], {w.item2: w.man2}, {w.item2: w.up2.ciphertexts}
    )


@attack(
    "threshold-same-release-twice",
    case=11, threat=WITHHOLD, raises=BindingMismatch, by="access.open_release",
    match="two releases",
)  # fmt: skip
def _(w: World) -> Thunk:
    """2-of-3 item: deliver a0's release twice to make up the count"""
    rel = w.rel_m2[w.a[0].id]
    return client_opens(w, w.req_m2, [rel, rel], {w.item2: w.man2}, {w.item2: w.up2.ciphertexts})


@attack(
    "threshold-release-relabelled-as-third-approver",
    case=11, threat=WITHHOLD, raises=SignatureInvalid, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """2-of-3 item: deliver a0's release plus a copy relabelled as a2's"""
    rel = w.rel_m2[w.a[0].id]
    return client_opens(
        w, w.req_m2, [rel, reheader(rel, kid=w.a[2].id)], {w.item2: w.man2},
        {w.item2: w.up2.ciphertexts},
    )  # fmt: skip


@attack(
    "threshold-no-release",
    case=11, threat=WITHHOLD, raises=ThresholdNotMet, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """deliver the manifest and ciphertexts but no release at all"""
    return client_opens_latest(w, releases=[])


# =====================================================================================
# 12. Replay a request
# =====================================================================================
# A byte-identical replay of a valid access token inside its window is valid
# protocol: single use of jti is the relay's job (DESIGN 3.2, "jti ... persisted
# until expiry").  test_replayed_access_is_dedupable_by_jti checks that the
# relay *can* dedupe.  A replay (or a delay) beyond exp is refused here.


@attack(
    "access-replayed-after-expiry",
    case=12, threat=REPLAY, raises=Expired, by="access.verify_access",
)  # fmt: skip
def _(w: World) -> Thunk:
    """deliver (or re-deliver) an access request after its exp"""
    exp = w.req_latest.statement.exp
    return approver_verifies_access(w, w.req_latest.token, now=exp + 1)


@attack(
    "release-after-expiry",
    case=12, threat=WITHHOLD, raises=Expired, by="access.release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """verified in time, but the relay hands over the item material after exp"""
    a0 = w.a[0]
    verified = ac.verify_access(
        w.req_latest.token, directory=w.directory, certificate=w.cert, now=w.now
    )
    material = w.material(w.up1v2, w.man1v2, a0.id)
    exp = w.req_latest.statement.exp
    return lambda: ac.release(
        verified, materials={w.item1: material}, directory=w.directory, approver=a0.id,
        hpke_key=a0.hpke, key=a0.sig, now=exp + 1,
    )  # fmt: skip


@attack(
    "store-replayed-after-expiry",
    case=12, threat=REPLAY, raises=Expired, by="store.verify_store",
)  # fmt: skip
def _(w: World) -> Thunk:
    """replay a store upload after its exp"""
    exp = StoreStatement.from_json(payload_of(w.up1.statement)).exp
    return approver_verifies_store(w, w.up1, now=exp + 1)


# =====================================================================================
# 13. Certificate attacks
# =====================================================================================


def _relay_cert(w: World, kid: str, issuer: str) -> str:
    cert = ClientCertificate(
        vault=w.vault, client=w.client_info, scopes=("read",),
        constraints=ClientConstraints(not_after=w.now + 3600), issuer=issuer, at=w.now,
    )  # fmt: skip
    return sign_statement(cert, w.relay.sig, kid)


@attack(
    "certificate-signed-by-relay",
    case=13, threat=EPK, raises=CertificateInvalid, by="access.verify_access",
)  # fmt: skip
def _(w: World) -> Thunk:
    """a client certificate signed by the relay as its own approver id"""
    return approver_verifies_access(
        w, w.req_latest.token, certificate=_relay_cert(w, w.relay.id, w.relay.id)
    )


@attack(
    "certificate-signed-by-relay-as-approver",
    case=13, threat=EPK, raises=CertificateInvalid, by="access.verify_access",
)  # fmt: skip
def _(w: World) -> Thunk:
    """a client certificate signed with the relay's key under a1's kid"""
    return approver_verifies_access(
        w, w.req_latest.token, certificate=_relay_cert(w, w.a[1].id, w.a[1].id)
    )


@attack(
    "certificate-client-key-swapped",
    case=13, threat=EPK, raises=CertificateInvalid, by="access.verify_access",
)  # fmt: skip
def _(w: World) -> Thunk:
    """put its own key in the client's certificate (signature kept), sign the request with it"""
    relay_pk = w.relay_client_key.verify_key().to_text()
    cert = splice(w.cert, setter("client", "sig_pk", value=relay_pk))
    token = resign(
        w.req_latest.token, w.relay_client_key, w.client_id,
        setter("epk", value=w.relay.hpke.public_key().to_text()),
    )  # fmt: skip
    return approver_verifies_access(w, token, certificate=cert)


@attack(
    "certificate-issuer-removed",
    case=13, threat=EPK, raises=CertificateInvalid, by="access.verify_access",
)  # fmt: skip
def _(w: World) -> Thunk:
    """a certificate issued by a1, presented after a1 was removed from the directory"""
    return approver_verifies_access(w, w.req_latest.token, directory=w.directory_removed)


@attack(
    "certificate-of-other-vault",
    case=13, threat=EPK, raises=CertificateInvalid, by="access.verify_access",
)  # fmt: skip
def _(w: World) -> Thunk:
    """the same client's certificate from vault 2 (issued by a0, who is in both vaults)"""
    return approver_verifies_access(w, w.req_latest.token, certificate=w.cert_v2)


@attack(
    "enrollment-certificate-for-human",
    case=13, threat=EPK, raises=CertificateInvalid, by="access.verify_access",
    match="machines only",
)  # fmt: skip
def _(w: World) -> Thunk:
    """a certificate for a human client signed by an enrollment delegation key"""
    return approver_verifies_access(
        w, w.req_latest.token, certificate=w.human_cert_by_enrollment, enrollment=w.enrollment
    )


@attack(
    "enrollment-withheld",
    case=13, threat=EPK, raises=CertificateInvalid, by="certificates.verify_certificate",
)  # fmt: skip
def _(w: World) -> Thunk:
    """an enrollment-signed machine certificate presented without its enrollment"""
    return lambda: certs.verify_certificate(w.machine_cert, w.directory, now=w.now)


def _relay_enrollment(w: World, kid: str) -> tuple[str, str]:
    relay_delegation = w.relay_client_key
    enrollment = sign_statement(
        EnrollmentStatement(
            vault=w.vault, id=w.enrollment_id, sig_pk=relay_delegation.verify_key(),
            constraints=EnrollmentConstraints(
                projects=("app",), items=("*",), max_uses=1000, not_after=w.now + 3600
            ),
            issuer=kid, at=w.now,
        ),
        w.relay.sig, kid,
    )  # fmt: skip
    cert = sign_statement(
        ClientCertificate(
            vault=w.vault,
            client=ClientInfo(
                id=w.relay_client_id, kind="machine", name="ci-43",
                sig_pk=relay_delegation.verify_key(),
            ),
            scopes=("read",), constraints=ClientConstraints(not_after=w.now + 3600),
            issuer=w.enrollment_id, at=w.now,
        ),
        relay_delegation, w.enrollment_id,
    )  # fmt: skip
    return enrollment, cert


@attack(
    "enrollment-forged-by-relay",
    case=13, threat=EPK, raises=CertificateInvalid, by="certificates.verify_certificate",
)  # fmt: skip
def _(w: World) -> Thunk:
    """an enrollment signed by the relay as its own approver id, and a machine cert under it"""
    enrollment, cert = _relay_enrollment(w, w.relay.id)
    return lambda: certs.verify_certificate(cert, w.directory, now=w.now, enrollment=enrollment)


@attack(
    "enrollment-forged-as-approver",
    case=13, threat=EPK, raises=CertificateInvalid, by="certificates.verify_certificate",
)  # fmt: skip
def _(w: World) -> Thunk:
    """an enrollment signed with the relay's key under a0's kid, and a machine cert under it"""
    enrollment, cert = _relay_enrollment(w, w.a[0].id)
    return lambda: certs.verify_certificate(cert, w.directory, now=w.now, enrollment=enrollment)


@attack(
    "enrollment-delegation-key-swapped",
    case=13, threat=EPK, raises=CertificateInvalid, by="certificates.verify_certificate",
)  # fmt: skip
def _(w: World) -> Thunk:
    """put its own delegation key into the honest enrollment (signature kept)"""
    _, cert = _relay_enrollment(w, w.a[0].id)
    relay_pk = w.relay_client_key.verify_key().to_text()
    enrollment = splice(w.enrollment, setter("sig_pk", value=relay_pk))
    return lambda: certs.verify_certificate(cert, w.directory, now=w.now, enrollment=enrollment)


# =====================================================================================
# 14. Strip, move or forge a deny
# =====================================================================================
# Dropping a deny outright is "withhold": out of scope for confidentiality
# (DESIGN 3.2), since any release that still arrives was made by an approver.


@attack(
    "deny-replayed-for-other-request",
    case=14, threat=OLD, raises=BindingMismatch, by="access.verify_deny",
    match="another request",
)  # fmt: skip
def _(w: World) -> Thunk:
    """present a2's deny of request 1 as a deny of request 2"""
    return lambda: ac.verify_deny(
        w.deny_latest, directory=w.directory, request_hash=w.req_other.hash
    )


@attack(
    "deny-request-hash-rewritten",
    case=14, threat=OLD, raises=SignatureInvalid, by="access.verify_deny",
)  # fmt: skip
def _(w: World) -> Thunk:
    """rewrite the request hash inside a2's deny (signature kept)"""
    token = splice(w.deny_latest, setter("request", value=w.req_other.hash))
    return lambda: ac.verify_deny(token, directory=w.directory, request_hash=w.req_other.hash)


@attack(
    "deny-forged-as-approver",
    case=14, threat=FORGE, raises=SignatureInvalid, by="access.verify_deny",
)  # fmt: skip
def _(w: World) -> Thunk:
    """a deny made by the relay, signed with its key under a2's kid"""
    a2 = w.a[2].id
    token = sign_statement(
        DenyStatement(vault=w.vault, request=w.req_other.hash, approver=a2, reason="no", at=w.now),
        w.relay.sig, a2,
    )  # fmt: skip
    return lambda: ac.verify_deny(token, directory=w.directory, request_hash=w.req_other.hash)


@attack(
    "deny-forged-by-relay-approver",
    case=14, threat=FORGE, raises=NotAuthorized, by="access.verify_deny",
)  # fmt: skip
def _(w: World) -> Thunk:
    """a deny signed by the relay as its own approver id"""
    r = w.relay.id
    token = sign_statement(
        DenyStatement(vault=w.vault, request=w.req_other.hash, approver=r, reason="no", at=w.now),
        w.relay.sig, r,
    )  # fmt: skip
    return lambda: ac.verify_deny(token, directory=w.directory, request_hash=w.req_other.hash)


@attack(
    "release-presented-as-deny",
    case=14, threat=FORGE, raises=SignatureInvalid, by="access.verify_deny",
    match="statement type",
)  # fmt: skip
def _(w: World) -> Thunk:
    """a0's release handed to the client as a deny (statement-type confusion)"""
    return lambda: ac.verify_deny(
        w.rel_latest, directory=w.directory, request_hash=w.req_latest.hash
    )


@attack(
    "deny-presented-as-release",
    case=14, threat=FORGE, raises=SignatureInvalid, by="access.open_release",
    match="statement type",
)  # fmt: skip
def _(w: World) -> Thunk:
    """a2's deny handed to the client as a release"""
    return client_opens_latest(w, releases=[w.deny_latest])


@attack(
    "deny-typ-relabelled-as-release",
    case=14, threat=FORGE, raises=SignatureInvalid, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """a2's deny with its header typ rewritten to the release type"""
    return client_opens_latest(w, releases=[reheader(w.deny_latest, typ=labels.TYP_RELEASE)])


# =====================================================================================
# 15. Widen a release
# =====================================================================================


@attack(
    "release-blob-with-extra-field",
    case=15, threat=FORGE, raises=SignatureInvalid, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """re-seal a blob holding shares for 'password' and 'user' into a0's release"""
    blob = relay_share_blob(w, w.req_latest, w.a[0].id, fields=("password", "user"))
    return client_opens_latest(
        w, releases=[splice(w.rel_latest, setter("blob", value=b64u_encode(blob)))]
    )


@attack(
    "release-manifests-widened",
    case=15, threat=FORGE, raises=SignatureInvalid, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """add version 1's manifest hash to the manifests a0's release vouches for"""
    hashes = sorted([st.manifest_hash(w.man1), st.manifest_hash(w.man1v2)])
    return client_opens_latest(
        w, releases=[splice(w.rel_latest, setter("manifests", value=hashes))]
    )


@attack(
    "release-cache-until-extended",
    case=15, threat=FORGE, raises=SignatureInvalid, by="access.open_release",
)  # fmt: skip
def _(w: World) -> Thunk:
    """extend cache_until in a0's release to thirty days"""
    release = splice(w.rel_latest, setter("cache_until", value=w.now + 30 * 86400))
    return client_opens_latest(w, releases=[release])


# =====================================================================================
# 16. Mutate a store upload
# =====================================================================================


def _upload(w: World, *, ciphertexts: Any = None, wraps: Any = None, statement: Any = None) -> Any:
    up = w.up1
    return st.StoreUpload(
        statement=statement or up.statement,
        ciphertexts=dict(up.ciphertexts) if ciphertexts is None else ciphertexts,
        wraps={a: dict(f) for a, f in up.wraps.items()} if wraps is None else wraps,
    )


@attack(
    "store-ciphertexts-swapped",
    case=16, threat=MOVE, raises=ManifestMismatch, by="store.verify_store",
)  # fmt: skip
def _(w: World) -> Thunk:
    """swap the 'user' and 'password' ciphertexts of an upload"""
    ct = w.up1.ciphertexts
    return approver_verifies_store(
        w, _upload(w, ciphertexts={"user": ct["password"], "password": ct["user"]})
    )


@attack(
    "store-wraps-swapped-between-approvers",
    case=16, threat=MOVE, raises=ManifestMismatch, by="store.verify_store",
)  # fmt: skip
def _(w: World) -> Thunk:
    """swap a0's and a1's wraps in an upload"""
    a0, a1, a2 = (p.id for p in w.a)
    wraps = {a0: w.up1.wraps[a1], a1: w.up1.wraps[a0], a2: w.up1.wraps[a2]}
    return approver_verifies_store(w, _upload(w, wraps=wraps))


@attack(
    "store-wraps-swapped-between-fields",
    case=16, threat=MOVE, raises=ManifestMismatch, by="store.verify_store",
)  # fmt: skip
def _(w: World) -> Thunk:
    """swap a0's wraps of 'user' and 'password' in an upload"""
    a0 = w.a[0].id
    wraps = {a: dict(f) for a, f in w.up1.wraps.items()}
    wraps[a0] = {"user": w.up1.wraps[a0]["password"], "password": w.up1.wraps[a0]["user"]}
    return approver_verifies_store(w, _upload(w, wraps=wraps))


@attack(
    "store-ciphertext-replaced",
    case=16, threat=FORGE, raises=ManifestMismatch, by="store.verify_store",
)  # fmt: skip
def _(w: World) -> Thunk:
    """replace the 'password' ciphertext of an upload by its own"""
    ct = dict(w.up1.ciphertexts)
    ct["password"] = secrets.token_bytes(len(ct["password"]))
    return approver_verifies_store(w, _upload(w, ciphertexts=ct))


@attack(
    "store-threshold-altered",
    case=16, threat=FORGE, raises=SignatureInvalid, by="store.verify_store",
)  # fmt: skip
def _(w: World) -> Thunk:
    """raise the key set's threshold in the signed store statement (signature kept)"""
    statement = splice(w.up1.statement, setter("keyset", "threshold", value=3))
    return approver_verifies_store(w, _upload(w, statement=statement))


@attack(
    "store-path-altered",
    case=16, threat=FORGE, raises=SignatureInvalid, by="store.verify_store",
)  # fmt: skip
def _(w: World) -> Thunk:
    """move the upload to another path in the signed store statement (signature kept)"""
    statement = splice(w.up1.statement, setter("path", value="app/prod/other"))
    return approver_verifies_store(w, _upload(w, statement=statement))


@attack(
    "store-resigned-as-client",
    case=16, threat=FORGE, raises=SignatureInvalid, by="store.verify_store",
)  # fmt: skip
def _(w: World) -> Thunk:
    """re-sign the store statement with the relay's key under the client's kid"""
    statement = resign(w.up1.statement, w.relay.sig, w.client_id)
    return approver_verifies_store(w, _upload(w, statement=statement))


@attack(
    "store-routed-to-non-holder",
    case=16, threat=FORGE, raises=NotAuthorized, by="store.verify_store",
    match="holds no share",
)  # fmt: skip
def _(w: World) -> Thunk:
    """ask a2 to approve a store whose key set is a0, a1 only"""
    return approver_verifies_store(w, w.up3, party=2)


@attack(
    "release-asked-of-non-holder",
    case=16, threat=FORGE, raises=NotAuthorized, by="access.release",
    match="holds no share",
)  # fmt: skip
def _(w: World) -> Thunk:
    """ask a2 to release item3, of which it holds no share"""
    request = ac.build_access(
        client=w.client_id, key=w.client_key, vault=w.vault,
        items=[AccessItem(item=w.item3, path="app/staging/cache", version=None, fields=("password",))],
        purpose="p", context=RequestContext(), now=w.now,
    )  # fmt: skip
    material = ac.ItemMaterial(manifest=w.man3, wraps=w.up3.wraps[w.a[0].id])
    return approver_releases(w, request, {w.item3: material}, party=2)


@attack(
    "path-swap-approver-refuses",
    case=6, threat=FORGE, raises=BindingMismatch, by="access.release",
    match="another path",
)  # fmt: skip
def _(w: World) -> Thunk:
    """resolve the client's path app/prod/db to item3's id (app/staging/cache, same field)"""
    request = _path_swapped_request(w)
    material = ac.ItemMaterial(manifest=w.man3, wraps=w.up3.wraps[w.a[0].id])
    return approver_releases(w, request, {w.item3: material})


@attack(
    "path-swap-client-refuses",
    case=6, threat=FORGE, raises=BindingMismatch, by="access.open_release",
    match="another path",
)  # fmt: skip
def _(w: World) -> Thunk:
    """same swap, released by an approver anyway: the client checks the manifest path"""
    request = _path_swapped_request(w)
    a0 = w.a[0]
    # An approver that skipped the path check (built by hand from honest parts).
    share = hpke.open_sealed(
        a0.hpke, w.up3.wraps[a0.id]["password"],
        st.wrap_info(vault=w.vault, item=w.item3, version=1, field="password", approver=a0.id),
    )  # fmt: skip
    plaintext = canonical_json({
        "format": labels.RELEASE_PLAINTEXT_FORMAT,
        "shares": [{"item": w.item3, "version": 1, "field": "password",
                    "share": b64u_encode(share)}],
    })  # fmt: skip
    blob = hpke.seal(
        request.statement.epk, plaintext,
        ac.release_info(vault=w.vault, request=request.hash, approver=a0.id),
    )  # fmt: skip
    release = sign_statement(
        ReleaseStatement(
            vault=w.vault, request=request.hash, approver=a0.id,
            manifests=(st.manifest_hash(w.man3),), blob=blob, cache_until=0, at=w.now,
        ),
        a0.sig, a0.id,
    )  # fmt: skip
    return client_opens(w, request, [release], {w.item3: w.man3}, {w.item3: w.up3.ciphertexts})


def _path_swapped_request(w: World) -> ac.AccessRequest:
    return ac.build_access(
        client=w.client_id, key=w.client_key, vault=w.vault,
        items=[AccessItem(item=w.item3, path="app/prod/db", version=None, fields=("password",))],
        purpose="prod migration", context=RequestContext(), now=w.now,
    )  # fmt: skip


# =====================================================================================
# The tests
# =====================================================================================


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_hostile_relay(world: World, row: Attack) -> None:
    # Building the tampered objects must itself succeed: the error has to come
    # from the honest party's check, never from the attack's own construction.
    check = row.tamper(world)
    with pytest.raises(row.raises) as caught:
        check()
    assert type(caught.value) is row.raises, (
        f"{row.id}: expected exactly {row.raises.__name__}, got {type(caught.value).__name__}: "
        f"{caught.value}"
    )
    if row.match is not None:
        assert re.search(row.match, str(caught.value)), str(caught.value)
    # Errors never echo the bytes they refused.
    for secret in world.all_plaintexts():
        assert secret.decode() not in str(caught.value)


def test_rows_cover_every_design_row_and_case() -> None:
    assert {r.threat for r in ROWS} == set(DESIGN_ROWS)
    assert {r.case for r in ROWS} == set(CASES)
    assert len({r.id for r in ROWS}) == len(ROWS), "row ids must be unique"


def test_module_table_lists_every_row() -> None:
    """The table in the module docstring (copied to docs/threat-model.md) matches ROWS."""
    doc = __doc__ or ""
    for row in ROWS:
        line = next((ln for ln in doc.splitlines() if f"`{row.id}`" in ln), None)
        assert line is not None, f"{row.id} missing from the module docstring table"
        assert f"`{row.raises.__name__}`" in line, f"{row.id}: wrong error class in the table"
        assert f"`{row.by}`" in line, f"{row.id}: wrong refusing check in the table"
    listed = set(re.findall(r"^\| [^|]+ \| `([a-z0-9-]+)` \|", doc, flags=re.MULTILINE))
    assert listed == {r.id for r in ROWS}, "the table lists rows that no longer exist"


# --- Honest controls: the same world opens, so every refusal above is the attack's doing ---------


def test_honest_world_opens(world: World) -> None:
    w = world
    out = client_opens_latest(w)()
    assert out.values == {w.item1: {"password": w.values1v2["password"]}}
    assert out.versions == {w.item1: 2}
    m2 = client_opens(
        w, w.req_m2, list(w.rel_m2.values()), {w.item2: w.man2}, {w.item2: w.up2.ciphertexts}
    )()
    assert m2.values == {w.item2: {"password": w.values2["password"]}}
    old = client_opens(
        w, w.req_latest, [w.rel_latest_v1], {w.item1: w.man1}, {w.item1: w.up1.ciphertexts},
        known_versions={w.item1: 1},
    )()  # fmt: skip
    assert old.values == {w.item1: {"password": w.values1["password"]}}
    m2v2 = [w.release_by(p, w.req_m2, w.item2, w.up2v2, w.man2v2) for p in w.a[1:]]
    out = client_opens(
        w, w.req_m2, m2v2, {w.item2: w.man2v2}, {w.item2: w.up2v2.ciphertexts},
        known_versions={w.item2: 2},
    )()  # fmt: skip
    assert out.values == {w.item2: {"password": w.values2v2["password"]}}
    v2 = w.release_by(w.a[1], w.req_v2, w.item1, w.up1v2, w.man1v2)
    assert client_opens(w, w.req_v2, [v2], {w.item1: w.man1v2}, {w.item1: w.up1v2.ciphertexts})()


def test_honest_checks_pass(world: World) -> None:
    w = world
    assert dirs.verify_directory(w.links, pinned=w.fingerprint, cached_head=w.directory.head)
    longer = dirs.verify_directory(
        [*w.links, w.fork_x], pinned=w.fingerprint, cached_head=w.directory.head
    )
    assert longer.head.seq == 3
    assert dirs.verify_directory(
        w.links_removed, pinned=w.fingerprint, cached_head=w.directory.head
    ).approvers.keys() == {w.a[0].id, w.a[2].id}
    approver_verifies_access(w, w.req_latest.token)()
    approver_verifies_access(w, w.req_latest.token, certificate=w.cert_v2, directory=w.directory2)
    certs.verify_certificate(w.machine_cert, w.directory, now=w.now, enrollment=w.enrollment)
    assert ac.verify_deny(w.deny_latest, directory=w.directory, request_hash=w.req_latest.hash)
    approver_verifies_store(w, w.up1v2, prev_manifest=w.man1)()
    approver_verifies_store(w, w.up3, party=1)()
    assert st.verify_manifest(w.man3, w.directory).item == w.item3


def test_relay_can_seal_to_epk_so_only_signatures_stop_a_forged_release(world: World) -> None:
    """The epk is public: the relay's fake shares *do* open; only the signature stops them."""
    w = world
    blob = relay_share_blob(w, w.req_latest, w.a[0].id)
    info = ac.release_info(vault=w.vault, request=w.req_latest.hash, approver=w.a[0].id)
    assert hpke.open_sealed(w.req_latest.ephemeral, blob, info)


# --- Read a secret: what the relay holds never contains a value or a key ------------------------


def _relay_holdings(w: World) -> list[bytes]:
    """Every byte string the relay stores or carries in this world, JWS payloads decoded."""
    tokens: list[str] = [
        *w.links, *w.links_removed, w.fork_x, w.fork_y, w.cert, w.other_cert, w.hostname_cert,
        w.cert_v2, w.enrollment, w.machine_cert, w.human_cert_by_enrollment,
        w.man1, w.man1v2, w.man2, w.man3, w.man_v2, w.rel_latest, w.rel_latest_v1, w.rel_other,
        *w.rel_m2.values(), w.deny_latest,
    ]  # fmt: skip
    blobs: list[bytes] = []
    for up in (w.up1, w.up1v2, w.up2, w.up3):
        tokens.append(up.statement)
        blobs.extend(up.ciphertexts.values())
        blobs.extend(b for wraps in up.wraps.values() for b in wraps.values())
    blobs.extend(w.up_v2.ciphertexts.values())
    blobs.extend(b for wraps in w.up_v2.wraps.values() for b in wraps.values())
    for request in (w.req_latest, w.req_other, w.req_v2, w.req_m2):
        tokens.append(request.token)
    for token in tokens:
        blobs.append(token.encode("ascii"))
        blobs.append(canonical_json(payload_of(token)))
        body = payload_of(token)
        if "blob" in body:
            blobs.append(b64u_decode(body["blob"]))
    return blobs


def test_relay_never_holds_plaintext_or_keys(world: World) -> None:
    w = world
    held = _relay_holdings(w)
    secrets_ = list(w.all_plaintexts())
    # The field keys of the M = 1 items (what a0 recovers from its wraps), and every share
    # a0 released, must not appear either.
    for up, item, version in ((w.up1, w.item1, 1), (w.up1v2, w.item1, 2), (w.up3, w.item3, 1)):
        for name in up.ciphertexts:
            secrets_.append(field_key_of(w, up, item=item, version=version, name=name))
    for request, release in ((w.req_latest, w.rel_latest), (w.req_m2, w.rel_m2[w.a[0].id])):
        rel = ReleaseStatement.from_json(payload_of(release))
        info = ac.release_info(vault=w.vault, request=request.hash, approver=rel.approver)
        opened = hpke.open_sealed(request.ephemeral, rel.blob, info)
        shares = parse_canonical_json(opened)["shares"]
        secrets_.extend(b64u_decode(s["share"]) for s in shares)
    for secret in secrets_:
        encoded = b64u_encode(secret).encode()
        for blob in held:
            assert secret not in blob
            assert encoded[:-2] not in blob


def test_replayed_access_is_dedupable_by_jti(world: World) -> None:
    """Verifying the same access token twice succeeds with the same hash and jti.

    This is valid protocol on purpose: single use is enforced by the relay
    persisting jti until exp (DESIGN 3.2, "replay a request").  The test pins
    what the relay needs to do that: a stable jti and request hash, and an
    exp after which the approver refuses by itself (row access-replayed-after-expiry).
    """
    w = world
    first = approver_verifies_access(w, w.req_latest.token)()
    second = approver_verifies_access(w, w.req_latest.token)()
    assert first.hash == second.hash == w.req_latest.hash
    assert first.statement.jti == second.statement.jti == w.req_latest.statement.jti
    assert first.statement.jti != w.req_other.statement.jti
    assert ids.check_id(first.statement.jti, ids.JTI)
