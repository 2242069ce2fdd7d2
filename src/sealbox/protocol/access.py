"""Access: ask for fields, release them sealed to a one-time key, open the release.

Client (:func:`build_access`): a fresh ephemeral HPKE key pair, and an access
statement naming the items and fields, purpose and context, signed with the
client's certified key.

Approver (:func:`verify_access`, then :func:`release` or :func:`deny`):
verify the certificate and the statement, verify each item manifest, check
its own wrapped shares against the manifest, open them for exactly the
fields asked for, and seal them to the statement's ephemeral key with
``info`` bound to the request hash.

Client again (:func:`open_release`): verify every release and manifest,
combine M shares per field, check every ciphertext against the manifest and
decrypt with its aad.  Any failure raises and nothing is returned: no
partial output, ever.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sealbox.crypto import aead, hpke, jws, labels, shamir
from sealbox.crypto.encoding import b64u_encode, canonical_json, parse_canonical_json
from sealbox.crypto.keys import HpkePrivateKey, RandomBytes, SigningKey
from sealbox.errors import (
    BindingMismatch,
    Expired,
    MalformedInput,
    ManifestMismatch,
    NotAuthorized,
    ThresholdNotMet,
    VersionRollback,
)
from sealbox.protocol import ids
from sealbox.protocol._reader import Reader, bytes_map, nested_bytes_map
from sealbox.protocol.certificates import CLOCK_SKEW, check_context, check_paths, verify_chain
from sealbox.protocol.directory import Directory
from sealbox.protocol.statements import (
    MAX_VERSION,
    NO_CACHE,
    AccessItem,
    AccessStatement,
    CacheRequest,
    ClientCertificate,
    DenyStatement,
    ItemManifest,
    ReleaseStatement,
    RequestContext,
    sign_statement,
    verify_statement,
)
from sealbox.protocol.store import (
    VerifiedManifests,
    ciphertext_hash,
    manifest_hash,
    parse_share,
    verify_manifest,
    wrap_hash,
    wrap_info,
)

__all__ = [
    "MAX_ACCESS_TTL",
    "AccessRequest",
    "ItemMaterial",
    "Released",
    "VerifiedAccess",
    "build_access",
    "deny",
    "open_release",
    "release",
    "release_info",
    "verify_access",
    "verify_deny",
]

#: Longest an access statement may stay valid (seconds).
MAX_ACCESS_TTL = 3600


def release_info(*, vault: str, request: str, approver: str) -> bytes:
    """HPKE ``info`` of a release: bound to the vault, the request hash and the approver."""
    return hpke.info(labels.HPKE_RELEASE, vault, request, approver)


# --- client: ask ------------------------------------------------------------------------


@dataclass(frozen=True)
class AccessRequest:
    """A signed access request and the one-time key that will open its release."""

    token: str
    """The signed access statement (compact JWS)."""
    hash: str
    """Its statement hash: what releases and denials refer to."""
    statement: AccessStatement
    ephemeral: HpkePrivateKey = field(repr=False)
    """Private half of ``statement.epk``; it never leaves the requesting process."""


def build_access(
    *,
    client: str,
    key: SigningKey,
    vault: str,
    items: Sequence[AccessItem],
    purpose: str,
    context: RequestContext,
    now: int,
    cache: CacheRequest = NO_CACHE,
    ttl: int = 300,
) -> AccessRequest:
    """Make a one-time key and sign an access statement for ``items``."""
    return _build_access_from_parts(
        client=client, key=key, vault=vault, items=items, purpose=purpose, context=context,
        now=now, cache=cache, ttl=ttl, random=secrets.token_bytes,
    )  # fmt: skip


def _build_access_from_parts(
    *,
    client: str,
    key: SigningKey,
    vault: str,
    items: Sequence[AccessItem],
    purpose: str,
    context: RequestContext,
    now: int,
    cache: CacheRequest,
    ttl: int,
    random: RandomBytes,
) -> AccessRequest:
    ephemeral = HpkePrivateKey._from_seed(random(32))
    statement = AccessStatement(
        jti=ids.new_id(ids.JTI, random),
        vault=vault,
        client=client,
        items=tuple(items),
        purpose=purpose,
        context=context,
        epk=ephemeral.public_key(),
        cache=cache,
        at=now,
        exp=now + ttl,
    )
    AccessStatement.from_json(statement.to_json())
    if not 0 < ttl <= MAX_ACCESS_TTL:
        raise ValueError("ttl out of range")
    token = sign_statement(statement, key, client)
    return AccessRequest(
        token=token, hash=jws.statement_hash(token), statement=statement, ephemeral=ephemeral
    )


# --- approver: check, release or deny -------------------------------------------------------


@dataclass(frozen=True)
class VerifiedAccess:
    """An access request this approver has verified; every field is safe to show as verified."""

    statement: AccessStatement
    hash: str
    certificate: ClientCertificate


def verify_access(
    token: object,
    *,
    directory: Directory,
    certificate: str,
    now: int,
    enrollment: str | None = None,
) -> VerifiedAccess:
    """Verify an access statement and the certificate of the client that signed it."""
    cert, delegation = verify_chain(certificate, directory, now=now, enrollment=enrollment)
    header = jws.read_header(token)
    if header.kid != cert.client.id:
        raise NotAuthorized("access statement is not signed by the certified client")
    statement = verify_statement(token, AccessStatement, cert.client.sig_pk, cert.client.id)
    if statement.client != cert.client.id or statement.vault != directory.vault:
        raise BindingMismatch("access statement client or vault does not match its certificate")
    check_context(cert, statement.context)
    check_paths(cert, [item.path for item in statement.items], delegation)
    _check_window(statement, now)
    assert isinstance(token, str)
    return VerifiedAccess(statement=statement, hash=jws.statement_hash(token), certificate=cert)


def _check_window(statement: AccessStatement, now: int) -> None:
    if statement.exp - statement.at > MAX_ACCESS_TTL or statement.exp <= statement.at:
        raise MalformedInput("access statement: validity window out of range")
    if statement.at > now + CLOCK_SKEW or now > statement.exp:
        raise Expired("access request is not valid at this time")


@dataclass(frozen=True)
class ItemMaterial:
    """What the relay hands an approver for one requested item."""

    manifest: str
    """The item version's approver-signed manifest."""
    wraps: Mapping[str, bytes] = field(hash=False, repr=False)
    """field name -> this approver's HPKE-wrapped share (at least the fields asked for)."""


def _check_manifest_for(
    item: AccessItem, token: str, directory: Directory, vault: str,
    verified: VerifiedManifests | None,
) -> ItemManifest:  # fmt: skip
    manifest = (
        verify_manifest(token, directory) if verified is None else verified.verify(token, directory)
    )
    if manifest.item != item.item or manifest.vault != vault:
        raise BindingMismatch(f"manifest served for {item.item} is of another item")
    if manifest.path != item.path:
        raise BindingMismatch(f"{item.item} is stored at another path than was asked for")
    if item.version is not None and manifest.version != item.version:
        raise BindingMismatch(
            f"manifest of {item.item} is version {manifest.version}, not asked for"
        )
    missing = set(item.fields) - set(manifest.fields)
    if missing:
        raise ManifestMismatch(f"{item.item} has no field(s) {sorted(missing)}")
    return manifest


def release(
    verified: VerifiedAccess,
    *,
    materials: Mapping[str, ItemMaterial],
    directory: Directory,
    approver: str,
    hpke_key: HpkePrivateKey,
    key: SigningKey,
    now: int,
    cache_until: int = 0,
    verified_manifests: VerifiedManifests | None = None,
) -> str:
    """Open this approver's shares for exactly the fields asked for; seal and sign a release.

    ``verified_manifests``: manifests this process already verified, looked up
    instead of verified again (their bindings to the request are checked anyway).
    """
    return _release_from_parts(
        verified, materials=materials, directory=directory, approver=approver,
        hpke_key=hpke_key, key=key, now=now, cache_until=cache_until, ikm=None,
        verified_manifests=verified_manifests,
    )  # fmt: skip


def _release_from_parts(
    verified: VerifiedAccess,
    *,
    materials: Mapping[str, ItemMaterial],
    directory: Directory,
    approver: str,
    hpke_key: HpkePrivateKey,
    key: SigningKey,
    now: int,
    cache_until: int,
    ikm: RandomBytes | None,
    verified_manifests: VerifiedManifests | None = None,
) -> str:
    s = verified.statement
    if now > s.exp:
        raise Expired("access request expired before release")
    if directory.approver(approver).sig_pk != key.verify_key():
        raise ValueError("the signing key is not this approver's directory key")
    shares: list[dict[str, Any]] = []
    hashes: list[str] = []
    for item in s.items:
        material = materials.get(item.item)
        if not isinstance(material, ItemMaterial):
            raise BindingMismatch(f"no manifest supplied for {item.item}")
        manifest = _check_manifest_for(
            item, material.manifest, directory, s.vault, verified_manifests
        )
        if approver not in manifest.keyset.approvers:
            raise NotAuthorized(f"{approver} holds no share of {item.item}")
        expected = manifest.keyset.wraps[approver]
        wraps = bytes_map(material.wraps, f"wraps of {item.item}")
        for name in item.fields:
            blob = wraps.get(name)
            if blob is None or wrap_hash(blob) != expected[name]:
                raise ManifestMismatch(f"wrapped share of {item.item}/{name} is not the signed one")
            info = wrap_info(
                vault=s.vault, item=item.item, version=manifest.version, field=name,
                approver=approver,
            )  # fmt: skip
            share = parse_share(
                hpke.open_sealed(hpke_key, blob, info), keyset=manifest.keyset, approver=approver
            )
            shares.append(
                {"item": item.item, "version": manifest.version, "field": name,
                 "share": b64u_encode(share)}
            )  # fmt: skip
        hashes.append(manifest_hash(material.manifest))
    plaintext = canonical_json({"format": labels.RELEASE_PLAINTEXT_FORMAT, "shares": shares})
    info = release_info(vault=s.vault, request=verified.hash, approver=approver)
    blob = (
        hpke.seal(s.epk, plaintext, info)
        if ikm is None
        else hpke._seal_from_parts(s.epk, plaintext, info, ikm(32))
    )
    statement = ReleaseStatement(
        vault=s.vault,
        request=verified.hash,
        approver=approver,
        manifests=tuple(sorted(set(hashes))),
        blob=blob,
        cache_until=cache_until,
        at=now,
    )
    ReleaseStatement.from_json(statement.to_json())  # never sign what a verifier would refuse
    return sign_statement(statement, key, approver)


def deny(
    request_hash: str,
    *,
    directory: Directory,
    approver: str,
    key: SigningKey,
    reason: str,
    now: int,
    grounds: str | None = None,
) -> str:
    """Sign a refusal of the request named by ``request_hash``.

    ``grounds="unverifiable"`` marks the refusal of a request that did not verify
    (``reason`` then names the failed check): its client can tell the relay may be
    tampering, instead of waiting for the expiry.
    """
    if directory.approver(approver).sig_pk != key.verify_key():
        raise ValueError("the signing key is not this approver's directory key")
    statement = DenyStatement(
        vault=directory.vault, request=request_hash, approver=approver, reason=reason, at=now,
        grounds=grounds,
    )  # fmt: skip
    DenyStatement.from_json(statement.to_json())
    return sign_statement(statement, key, approver)


def verify_deny(token: object, *, directory: Directory, request_hash: str) -> DenyStatement:
    """Verify that a current approver denied exactly this request."""
    header = jws.read_header(token)
    signer = directory.approver(header.kid)
    statement = verify_statement(token, DenyStatement, signer.sig_pk, signer.id)
    if statement.approver != signer.id or statement.vault != directory.vault:
        raise BindingMismatch("deny approver or vault does not match its signature")
    if statement.request != request_hash:
        raise BindingMismatch("deny refers to another request")
    return statement


# --- client: open -----------------------------------------------------------------------


@dataclass(frozen=True)
class Released:
    """The outcome of a fully verified release."""

    values: Mapping[str, Mapping[str, bytes]] = field(hash=False, repr=False)
    """item id -> field name -> plaintext value."""
    versions: Mapping[str, int] = field(hash=False)
    """item id -> version released (remember it to refuse rollbacks later)."""
    paths: Mapping[str, str] = field(hash=False)
    """item id -> the path the approver-signed manifest stores it at."""
    types: Mapping[str, str] = field(hash=False)
    """item id -> item type (``secret``, ``canary``, ...)."""
    cache_until: int
    """The earliest ``cache_until`` among the releases used."""


def _parse_release_plaintext(data: bytes) -> list[tuple[str, int, str, bytes]]:
    r = Reader(parse_canonical_json(data, what="release plaintext"), "release plaintext")
    if r.raw("format") != labels.RELEASE_PLAINTEXT_FORMAT:
        raise MalformedInput("release plaintext: unknown format")

    def one(value: object) -> tuple[str, int, str, bytes]:
        e = Reader(value, "released share")
        out = (
            ids.check_id(e.raw("item"), ids.ITEM, what="item"),
            e.integer("version", low=1, high=MAX_VERSION),
            ids.check_field_name(e.raw("field")),
            e.b64("share", length=1 + aead.FIELD_KEY_BYTES),
        )
        e.done()
        return out

    shares = r.items("shares", one, max_len=64 * 256)
    r.done()
    return shares


def open_release(
    request: AccessRequest,
    *,
    releases: Sequence[str],
    manifests: Mapping[str, str],
    ciphertexts: Mapping[str, Mapping[str, bytes]],
    directory: Directory,
    known_versions: Mapping[str, int] | None = None,
    verified_manifests: VerifiedManifests | None = None,
) -> Released:
    """Verify releases and manifests, combine shares, decrypt; all or nothing.

    ``manifests`` and ``ciphertexts`` are keyed by item id, as the relay
    serves them.  ``known_versions`` is the highest version this client has
    seen per item; an older one raises :class:`VersionRollback`.
    ``verified_manifests``: manifests this client already verified, looked up
    instead of verified again (their bindings to the request are checked anyway).
    """
    s = request.statement
    known = known_versions or {}
    nested_bytes_map(ciphertexts, "served ciphertexts")
    checked: dict[str, ItemManifest] = {}
    for item in s.items:
        token = manifests.get(item.item)
        if not isinstance(token, str):
            raise BindingMismatch(f"no manifest served for {item.item}")
        manifest = _check_manifest_for(item, token, directory, s.vault, verified_manifests)
        if item.version is None and manifest.version < known.get(item.item, 0):
            # Only "latest" can be rolled back; an explicit older version is history.
            raise VersionRollback(
                f"{item.item}: version {manifest.version} served, "
                f"version {known[item.item]} seen before"
            )
        checked[item.item] = manifest
    expected_hashes = tuple(sorted({manifest_hash(manifests[i]) for i in checked}))
    wanted = {(i.item, f) for i in s.items for f in i.fields}

    # approver id -> (item, field) -> share
    by_approver: dict[str, dict[tuple[str, str], bytes]] = {}
    cache_until: int | None = None
    for token in releases:
        header = jws.read_header(token)
        signer = directory.approver(header.kid)
        rel = verify_statement(token, ReleaseStatement, signer.sig_pk, signer.id)
        if rel.approver != signer.id or rel.vault != s.vault:
            raise BindingMismatch("release approver or vault does not match its signature")
        if rel.request != request.hash:
            raise BindingMismatch("release answers another request")
        if rel.at > s.exp + CLOCK_SKEW:
            raise Expired("release was made after the request expired")
        if rel.manifests != expected_hashes:
            raise BindingMismatch("release vouches for other item versions than were served")
        if signer.id in by_approver:
            raise BindingMismatch(f"two releases from {signer.id}")
        plaintext = hpke.open_sealed(
            request.ephemeral,
            rel.blob,
            release_info(vault=s.vault, request=request.hash, approver=signer.id),
        )
        got: dict[tuple[str, str], bytes] = {}
        for item_id, version, name, share in _parse_release_plaintext(plaintext):
            if (item_id, name) not in wanted or (item_id, name) in got:
                raise BindingMismatch("release holds a share that was not asked for")
            manifest = checked[item_id]
            if version != manifest.version:
                raise BindingMismatch(f"release share of {item_id} is of another version")
            if signer.id not in manifest.keyset.approvers:
                raise NotAuthorized(f"{signer.id} holds no share of {item_id}")
            got[(item_id, name)] = parse_share(share, keyset=manifest.keyset, approver=signer.id)
        if set(got) != wanted:
            raise BindingMismatch("release does not hold exactly the fields asked for")
        by_approver[signer.id] = got
        cache_until = rel.cache_until if cache_until is None else min(cache_until, rel.cache_until)

    values: dict[str, dict[str, bytes]] = {}
    for item in s.items:
        manifest = checked[item.item]
        item_cts = ciphertexts.get(item.item, {})
        values[item.item] = {}
        for name in item.fields:
            shares = [
                got[(item.item, name)]
                for approver_id, got in sorted(by_approver.items())
                if approver_id in manifest.keyset.approvers
            ]
            if len(shares) < manifest.keyset.threshold:
                raise ThresholdNotMet(
                    f"{item.item}: {len(shares)} of {manifest.keyset.threshold} approvals"
                )
            field_key = shamir.combine(shares, manifest.keyset.threshold)
            ciphertext = item_cts.get(name)
            cipher = manifest.fields[name]
            if ciphertext is None or ciphertext_hash(ciphertext) != cipher.ct_hash:
                raise ManifestMismatch(f"ciphertext of {item.item}/{name} is not the signed one")
            values[item.item][name] = aead.decrypt_field(
                field_key, cipher.nonce, ciphertext, vault=s.vault, item=item.item,
                version=manifest.version, field=name,
            )  # fmt: skip
    if cache_until is None:
        raise ThresholdNotMet("no release")
    # An approver may shorten the cache window the client asked for, never extend it.
    cache_until = min(cache_until, s.at + s.cache.seconds) if s.cache.seconds else 0
    return Released(
        values=values,
        versions={i: m.version for i, m in checked.items()},
        paths={i: m.path for i, m in checked.items()},
        types={i: m.type for i, m in checked.items()},
        cache_until=cache_until,
    )
