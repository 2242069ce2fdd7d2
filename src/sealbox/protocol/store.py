"""Storing an item version: the client seals, an approver checks and signs the manifest.

Client side (:func:`build_store`): for each field a fresh key and AES-256-GCM;
each key split M-of-N; share *i* HPKE-sealed to the *i*-th approver of the
key set; all of it described in a signed store statement.

Approver side (:func:`verify_store`, then :func:`sign_manifest`): verify the
client certificate and statement, check every uploaded blob against the
hashes the client signed, open this approver's own shares, and (with M = 1)
check that they really decrypt the fields.  Only then sign the item
manifest, which is what makes the version exist.

An approver can also store directly (:func:`store_as_approver`): it seals and
signs the manifest itself, with no store statement.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sealbox.crypto import aead, hpke, jws, labels, shamir
from sealbox.crypto.encoding import digest
from sealbox.crypto.keys import HpkePrivateKey, RandomBytes, SigningKey
from sealbox.errors import (
    BindingMismatch,
    Expired,
    MalformedInput,
    ManifestMismatch,
    NotAuthorized,
)
from sealbox.protocol import ids
from sealbox.protocol._reader import bytes_map, nested_bytes_map
from sealbox.protocol.certificates import CLOCK_SKEW, check_context, check_paths, verify_chain
from sealbox.protocol.directory import Directory, DirectoryHead
from sealbox.protocol.statements import (
    ClientCertificate,
    FieldCipher,
    ItemManifest,
    KeySet,
    RequestContext,
    StoreStatement,
    sign_statement,
    verify_statement,
)

__all__ = [
    "MAX_STORE_TTL",
    "SealedFields",
    "StoreUpload",
    "VerifiedManifests",
    "VerifiedStore",
    "build_store",
    "check_blobs",
    "manifest_hash",
    "parse_share",
    "sign_manifest",
    "store_as_approver",
    "verify_manifest",
    "verify_store",
    "wrap_info",
]

#: Longest a store statement may stay valid (seconds).
MAX_STORE_TTL = 86400
SHARE_BYTES = 1 + aead.FIELD_KEY_BYTES


def wrap_info(*, vault: str, item: str, version: int, field: str, approver: str) -> bytes:
    """HPKE ``info`` of one approver's wrapped share of one field of one version."""
    return hpke.info(labels.HPKE_SHARE_WRAP, vault, item, version, field, approver)


def wrap_hash(blob: bytes) -> str:
    return digest(labels.HASH_SHARE_WRAP, blob)


def ciphertext_hash(ciphertext: bytes) -> str:
    return digest(labels.HASH_FIELD_CIPHERTEXT, ciphertext)


def manifest_hash(token: str) -> str:
    return jws.statement_hash(token)


def parse_share(share: bytes, *, keyset: KeySet, approver: str) -> bytes:
    """Check that a share has the form and the ``x`` that ``approver`` must hold."""
    if len(share) != SHARE_BYTES:
        raise MalformedInput("share: wrong length")
    if share[0] != keyset.approvers.index(approver) + 1:
        # A share with another holder's x could be counted twice at combine time.
        raise ManifestMismatch(f"share of {approver} does not carry its key-set position")
    return share


@dataclass(frozen=True)
class SealedFields:
    """Field ciphertexts and wrapped shares of one item version, with what gets signed."""

    fields: Mapping[str, FieldCipher] = field(hash=False)
    keyset: KeySet
    ciphertexts: Mapping[str, bytes] = field(hash=False, repr=False)
    """field name -> AES-GCM ciphertext with tag."""
    wraps: Mapping[str, Mapping[str, bytes]] = field(hash=False, repr=False)
    """approver id -> field name -> HPKE blob of that approver's share."""


def _seal_fields(
    directory: Directory,
    *,
    item: str,
    version: int,
    values: Mapping[str, bytes],
    approvers: Sequence[str],
    threshold: int,
    random: RandomBytes,
    ikm: RandomBytes | None,
) -> SealedFields:
    if not values:
        raise ValueError("an item has at least one field")
    if len(set(approvers)) != len(approvers) or not 1 <= threshold <= len(approvers):
        raise ValueError("need distinct approvers and 1 <= threshold <= len(approvers)")
    records = [directory.approver(a) for a in approvers]
    fields: dict[str, FieldCipher] = {}
    ciphertexts: dict[str, bytes] = {}
    wraps: dict[str, dict[str, bytes]] = {a: {} for a in approvers}
    for name in sorted(values):
        ids.check_field_name(name)
        key = aead.new_field_key(random)
        nonce, ciphertext = aead.encrypt_field(
            key,
            values[name],
            vault=directory.vault,
            item=item,
            version=version,
            field=name,
            random=random,
        )
        fields[name] = FieldCipher(nonce=nonce, ct_hash=ciphertext_hash(ciphertext))
        ciphertexts[name] = ciphertext
        shares = shamir.split(key, threshold, len(approvers), random)
        for record, share in zip(records, shares, strict=True):
            info = wrap_info(
                vault=directory.vault, item=item, version=version, field=name, approver=record.id
            )
            wraps[record.id][name] = (
                hpke.seal(record.hpke_pk, share, info)
                if ikm is None
                else hpke._seal_from_parts(record.hpke_pk, share, info, ikm(32))
            )
    keyset = KeySet(
        threshold=threshold,
        approvers=tuple(approvers),
        wraps={a: {f: wrap_hash(b) for f, b in w.items()} for a, w in wraps.items()},
    )
    return SealedFields(fields=fields, keyset=keyset, ciphertexts=ciphertexts, wraps=wraps)


@dataclass(frozen=True)
class StoreUpload:
    """What a client sends the relay to store one item version."""

    statement: str
    """The signed store statement (compact JWS)."""
    ciphertexts: Mapping[str, bytes] = field(hash=False, repr=False)
    wraps: Mapping[str, Mapping[str, bytes]] = field(hash=False, repr=False)


def build_store(
    *,
    client: str,
    key: SigningKey,
    directory: Directory,
    item: str,
    path: str,
    version: int,
    prev: str | None,
    values: Mapping[str, bytes],
    approvers: Sequence[str],
    threshold: int,
    purpose: str,
    context: RequestContext,
    now: int,
    item_type: str = "secret",
    ttl: int = 300,
) -> StoreUpload:
    """Seal ``values`` as version ``version`` of ``item`` and sign the store statement.

    ``prev`` is the manifest hash of version ``version - 1`` (``None`` for 1).
    """
    return _build_store_from_parts(
        client=client, key=key, directory=directory, item=item, path=path, version=version,
        prev=prev, values=values, approvers=approvers, threshold=threshold, purpose=purpose,
        context=context, now=now, item_type=item_type, ttl=ttl, random=secrets.token_bytes,
        ikm=None,
    )  # fmt: skip


def _build_store_from_parts(
    *,
    client: str,
    key: SigningKey,
    directory: Directory,
    item: str,
    path: str,
    version: int,
    prev: str | None,
    values: Mapping[str, bytes],
    approvers: Sequence[str],
    threshold: int,
    purpose: str,
    context: RequestContext,
    now: int,
    item_type: str,
    ttl: int,
    random: RandomBytes,
    ikm: RandomBytes | None,
) -> StoreUpload:
    if not 0 < ttl <= MAX_STORE_TTL:
        # Approvers refuse a longer window (docs/protocol.md section 8): do not sign one.
        raise ValueError("ttl out of range")
    sealed = _seal_fields(
        directory, item=item, version=version, values=values, approvers=approvers,
        threshold=threshold, random=random, ikm=ikm,
    )  # fmt: skip
    statement = StoreStatement(
        jti=ids.new_id(ids.JTI, random),
        vault=directory.vault,
        client=client,
        item=item,
        path=path,
        version=version,
        prev=prev,
        type=item_type,
        fields=sealed.fields,
        keyset=sealed.keyset,
        purpose=purpose,
        context=context,
        at=now,
        exp=now + ttl,
    )
    # Parse what we are about to sign, so a client never signs what a verifier would refuse.
    StoreStatement.from_json(statement.to_json())
    return StoreUpload(
        statement=sign_statement(statement, key, client),
        ciphertexts=sealed.ciphertexts,
        wraps=sealed.wraps,
    )


def verify_manifest(token: object, directory: Directory) -> ItemManifest:
    """Verify an item manifest: signed by a current approver of this vault.

    The key set may name approvers that have since been removed: their
    shares stop counting (a release must be signed by a current approver),
    while the remaining holders can still release and re-seal.  Whether a
    key set names only members is checked where it matters, when a version
    is stored (:func:`verify_store`).
    """
    header = jws.read_header(token)
    signer = directory.approver(header.kid)
    manifest = verify_statement(token, ItemManifest, signer.sig_pk, signer.id)
    if manifest.vault != directory.vault:
        raise BindingMismatch("manifest belongs to another vault")
    return manifest


class VerifiedManifests:
    """Manifests already verified against a directory, kept so they are not verified again.

    :func:`verify_manifest` depends on nothing but the exact token and the
    directory (which approver keys are current, the vault), and a verified
    directory is fixed by its vault, pinned fingerprint and head: so a token
    verified once against a head gives the same manifest every time against
    that head, and is looked up instead of verified.  A different token (any
    byte changed, signature included) or another head is verified afresh.
    The bindings a caller checks on the manifest (item, path, version,
    fields) are not cached: they are checked on every use.  An automated
    approver or a reading client sees the same few manifests on every
    request, so this saves a signature verification and a JSON parse each.
    """

    def __init__(self, limit: int = 4096) -> None:
        self._limit = limit
        self._seen: dict[tuple[str, str, str, DirectoryHead], ItemManifest] = {}

    def verify(self, token: object, directory: Directory) -> ItemManifest:
        """:func:`verify_manifest`, or its earlier result for this exact token and directory."""
        if not isinstance(token, str):
            return verify_manifest(token, directory)  # raises, as it should
        key = (token, directory.vault, directory.fingerprint, directory.head)
        found = self._seen.get(key)
        if found is None:
            found = verify_manifest(token, directory)
            if len(self._seen) >= self._limit:  # bounded memory: start again
                self._seen.clear()
            self._seen[key] = found
        return found

    def __len__(self) -> int:
        return len(self._seen)


def check_blobs(
    fields: Mapping[str, FieldCipher],
    keyset: KeySet,
    ciphertexts: Mapping[str, bytes],
    wraps: Mapping[str, Mapping[str, bytes]],
) -> None:
    """Raise :class:`ManifestMismatch` unless every blob matches the hash its signer listed."""
    if set(ciphertexts) != set(fields):
        raise ManifestMismatch("uploaded ciphertexts do not match the signed fields")
    for name, cipher in fields.items():
        if ciphertext_hash(ciphertexts[name]) != cipher.ct_hash:
            raise ManifestMismatch(f"ciphertext of field {name!r} does not match its signed hash")
    if set(wraps) != set(keyset.approvers):
        raise ManifestMismatch("uploaded wraps do not match the signed key set")
    for approver, blobs in wraps.items():
        expected = keyset.wraps[approver]
        if set(blobs) != set(expected) or any(
            wrap_hash(blob) != expected[name] for name, blob in blobs.items()
        ):
            raise ManifestMismatch(f"wraps for {approver} do not match their signed hashes")


@dataclass(frozen=True)
class VerifiedStore:
    """A store request this approver has fully checked; safe to show and to sign."""

    statement: StoreStatement
    hash: str
    """Statement hash of the store statement."""
    certificate: ClientCertificate


def verify_store(
    upload: StoreUpload,
    *,
    directory: Directory,
    approver: str,
    hpke_key: HpkePrivateKey,
    certificate: str,
    now: int,
    prev_manifest: str | None = None,
    enrollment: str | None = None,
) -> VerifiedStore:
    """Check a store upload as approver ``approver``; raise on anything wrong.

    ``prev_manifest`` is the manifest of the previous version, which the
    statement's ``prev`` must name (``None`` for a first version).
    """
    cert, delegation = verify_chain(certificate, directory, now=now, enrollment=enrollment)
    header = jws.read_header(upload.statement)
    if header.kid != cert.client.id:
        raise NotAuthorized("store statement is not signed by the certified client")
    statement = verify_statement(
        upload.statement, StoreStatement, cert.client.sig_pk, cert.client.id
    )
    if statement.client != cert.client.id or statement.vault != directory.vault:
        raise BindingMismatch("store statement client or vault does not match its certificate")
    check_context(cert, statement.context)
    check_paths(cert, [statement.path], delegation)
    if statement.at > now + CLOCK_SKEW or now > statement.exp:
        raise Expired("store statement is not valid at this time")
    if statement.exp < statement.at or statement.exp - statement.at > MAX_STORE_TTL:
        # exp before at is as meaningless as a window too long (access refuses both).
        raise MalformedInput("store statement: validity window out of range")
    for member in statement.keyset.approvers:
        directory.approver(member)
    if approver not in statement.keyset.approvers:
        raise NotAuthorized(f"{approver} holds no share of this item")
    _check_prev(statement, prev_manifest, directory)
    check_blobs(
        statement.fields,
        statement.keyset,
        bytes_map(upload.ciphertexts, "uploaded ciphertexts"),
        nested_bytes_map(upload.wraps, "uploaded wraps"),
    )
    _check_own_shares(
        vault=directory.vault, item=statement.item, version=statement.version,
        fields=statement.fields, keyset=statement.keyset, ciphertexts=upload.ciphertexts,
        wraps=upload.wraps[approver], approver=approver, hpke_key=hpke_key,
    )  # fmt: skip
    return VerifiedStore(
        statement=statement, hash=jws.statement_hash(upload.statement), certificate=cert
    )


def _check_prev(statement: StoreStatement, prev_manifest: str | None, directory: Directory) -> None:
    if prev_manifest is None:
        if statement.version != 1:
            raise BindingMismatch("store of a later version without the previous manifest")
        return
    prev = verify_manifest(prev_manifest, directory)
    if prev.item != statement.item or prev.path != statement.path:
        raise BindingMismatch("previous manifest is of another item")
    if statement.version != prev.version + 1 or statement.prev != manifest_hash(prev_manifest):
        raise BindingMismatch("store statement does not follow the previous version")


def _check_own_shares(
    *,
    vault: str,
    item: str,
    version: int,
    fields: Mapping[str, FieldCipher],
    keyset: KeySet,
    ciphertexts: Mapping[str, bytes],
    wraps: Mapping[str, bytes],
    approver: str,
    hpke_key: HpkePrivateKey,
) -> None:
    for name, cipher in fields.items():
        info = wrap_info(vault=vault, item=item, version=version, field=name, approver=approver)
        share = parse_share(
            hpke.open_sealed(hpke_key, wraps[name], info), keyset=keyset, approver=approver
        )
        if keyset.threshold == 1:
            # With M = 1 the share is the whole key: prove the client sealed a
            # key that really opens the field, before vouching for it.
            aead.decrypt_field(
                share[1:], cipher.nonce, ciphertexts[name], vault=vault, item=item,
                version=version, field=name,
            )  # fmt: skip


def sign_manifest(
    verified: VerifiedStore, *, directory: Directory, approver: str, key: SigningKey, now: int
) -> str:
    """Sign the item manifest for a verified store request."""
    if directory.approver(approver).sig_pk != key.verify_key():
        raise ValueError("the signing key is not this approver's directory key")
    s = verified.statement
    manifest = ItemManifest(
        vault=s.vault,
        item=s.item,
        path=s.path,
        version=s.version,
        prev=s.prev,
        type=s.type,
        fields=s.fields,
        keyset=s.keyset,
        store_request=verified.hash,
        at=now,
    )
    return sign_statement(manifest, key, approver)


@dataclass(frozen=True)
class DirectStore:
    """An approver's own store: the manifest plus the blobs for the relay."""

    manifest: str
    ciphertexts: Mapping[str, bytes] = field(hash=False, repr=False)
    wraps: Mapping[str, Mapping[str, bytes]] = field(hash=False, repr=False)


def store_as_approver(
    *,
    directory: Directory,
    approver: str,
    key: SigningKey,
    item: str,
    path: str,
    version: int,
    prev: str | None,
    values: Mapping[str, bytes],
    approvers: Sequence[str],
    threshold: int,
    now: int,
    item_type: str = "secret",
) -> DirectStore:
    """An approver stores an item version itself and signs its manifest directly."""
    return _store_as_approver_from_parts(
        directory=directory, approver=approver, key=key, item=item, path=path, version=version,
        prev=prev, values=values, approvers=approvers, threshold=threshold, now=now,
        item_type=item_type, random=secrets.token_bytes, ikm=None,
    )  # fmt: skip


def _store_as_approver_from_parts(
    *,
    directory: Directory,
    approver: str,
    key: SigningKey,
    item: str,
    path: str,
    version: int,
    prev: str | None,
    values: Mapping[str, bytes],
    approvers: Sequence[str],
    threshold: int,
    now: int,
    item_type: str,
    random: RandomBytes,
    ikm: RandomBytes | None,
) -> DirectStore:
    if directory.approver(approver).sig_pk != key.verify_key():
        raise ValueError("the signing key is not this approver's directory key")
    sealed = _seal_fields(
        directory, item=item, version=version, values=values, approvers=approvers,
        threshold=threshold, random=random, ikm=ikm,
    )  # fmt: skip
    manifest = ItemManifest(
        vault=directory.vault,
        item=item,
        path=path,
        version=version,
        prev=prev,
        type=item_type,
        fields=sealed.fields,
        keyset=sealed.keyset,
        store_request=None,
        at=now,
    )
    ItemManifest.from_json(manifest.to_json())
    return DirectStore(
        manifest=sign_statement(manifest, key, approver),
        ciphertexts=sealed.ciphertexts,
        wraps=sealed.wraps,
    )
