"""The signed statements of sealbox (DESIGN section 3.1), as frozen dataclasses.

Each statement type has a ``TYP`` (the JWS ``typ`` header), ``to_json`` (the
payload that is signed) and a strict ``from_json``: every key present, no
key unknown, every value of the right type, length and range.  Use
:func:`sign_statement` and :func:`verify_statement` rather than the JWS layer
directly: they tie the payload class to its ``typ`` so that one statement
can never be read as another.

Lists that are sets by meaning (field names, scopes, manifest hashes) must
be sorted and free of duplicates: one meaning, one encoding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar

from sealbox.crypto import jws, labels
from sealbox.crypto.encoding import b64u_encode, canonical_json, parse_digest
from sealbox.crypto.keys import HpkePublicKey, SigningKey, VerifyKey
from sealbox.errors import MalformedInput
from sealbox.protocol import ids, policy_rules, scopes
from sealbox.protocol._reader import MAX_LIST, Reader, check_display_text

__all__ = [
    "DENY_GROUNDS",
    "DENY_UNVERIFIABLE",
    "AccessItem",
    "AccessStatement",
    "ApproverRecord",
    "CacheRequest",
    "CheckpointStatement",
    "ClientCertificate",
    "ClientConstraints",
    "ClientInfo",
    "ConsentRequestStatement",
    "ConsentStatement",
    "DenyStatement",
    "DirectoryLink",
    "EnrollmentConstraints",
    "EnrollmentStatement",
    "FieldCipher",
    "ItemManifest",
    "KeySet",
    "PolicyStatement",
    "ReleaseStatement",
    "RequestContext",
    "Statement",
    "StoreStatement",
    "sign_statement",
    "verify_statement",
]

APPROVER_KINDS = frozenset({"browser", "terminal", "automated"})
APPROVER_TIERS = frozenset({"synced", "device"})
CLIENT_KINDS = frozenset({"human", "agent", "machine"})
DIRECTORY_OPS = frozenset({"add", "remove", "update"})
ITEM_TYPES = frozenset({"secret", "canary", "managed", "ab"})
CACHE_SCOPES = frozenset({"none", "process-tree", "agent-session", "user"})
#: Largest number of approvers one item's key set may name (Shamir's x is one byte).
MAX_APPROVERS = 255
#: Highest item version: a 32-bit signed integer, what every database stores natively.
MAX_VERSION = 2**31 - 1
#: Most fields one access statement may ask for, over all its items.
MAX_ACCESS_FIELDS = 256
#: Longest a consent may stay valid (seconds): it approves one action, soon.
MAX_CONSENT_TTL = 3600
#: Largest canonical JSON of the details a consent request carries: what an approver reads
#: and a third party hashes again, so a plan or a payment, not a file.
MAX_CONSENT_DETAILS = 8192


class Statement(Protocol):
    TYP: ClassVar[str]

    def to_json(self) -> dict[str, Any]: ...


S = TypeVar("S", bound="_Parsable")


class _Parsable(Protocol):
    TYP: ClassVar[str]

    def to_json(self) -> dict[str, Any]: ...

    @classmethod
    def from_json(cls: type[S], value: object) -> S: ...


def sign_statement(statement: Statement, key: SigningKey, kid: str) -> str:
    """Sign ``statement`` under its own ``typ``; return the compact JWS."""
    return jws.sign(key, statement.TYP, kid, statement.to_json())


def verify_statement(token: object, cls: type[S], key: VerifyKey, kid: str) -> S:
    """Verify ``token`` as a ``cls`` statement signed by ``key`` named ``kid``; parse strictly."""
    return cls.from_json(jws.verify(token, key, typ=cls.TYP, kid=kid))


# --- small parsers ----------------------------------------------------------------


def _sorted_unique(values: list[str], what: str) -> tuple[str, ...]:
    if values != sorted(set(values)):
        raise MalformedInput(f"{what}: must be sorted and without duplicates")
    return tuple(values)


def _unique(values: list[str], what: str) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        raise MalformedInput(f"{what}: duplicates")
    return tuple(values)


def _text_item(what: str, max_len: int = 256) -> Any:
    return lambda v: check_display_text(v, what, max_len=max_len)


def _scope(value: object) -> str:
    text = _text_item("scope", scopes.SCOPE_MAX)(value)
    try:
        return scopes.check_scope(text)
    except ValueError as exc:
        raise MalformedInput(f"client certificate.{exc}") from None


def _project(value: object) -> str:
    return ids.check_segment(value, "enrollment constraints.projects")


def _item_glob(value: object) -> str:
    text = _text_item("item glob", scopes.PATTERN_MAX)(value)
    try:
        return scopes.check_pattern(text)
    except ValueError as exc:
        raise MalformedInput(f"enrollment constraints.items: {exc}") from None


def _hpke_pk(value: object) -> HpkePublicKey:
    return HpkePublicKey.from_text(value)


def _sig_pk(value: object) -> VerifyKey:
    return VerifyKey.from_text(value)


# --- directory ---------------------------------------------------------------------


@dataclass(frozen=True)
class ApproverRecord:
    """One approver device as the directory lists it."""

    id: str
    """``apv_…``."""
    name: str
    """A person-chosen label (``"Ana's laptop"``)."""
    kind: str
    """``browser``, ``terminal`` or ``automated``."""
    tier: str
    """``synced`` (exportable, passphrase-protected backup) or ``device`` (non-extractable)."""
    hpke_pk: HpkePublicKey
    """What store seals field keys (or shares) to."""
    sig_pk: VerifyKey
    """What verifies this approver's manifests, releases, certificates and links."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "tier": self.tier,
            "hpke_pk": self.hpke_pk.to_text(),
            "sig_pk": self.sig_pk.to_text(),
        }

    @classmethod
    def from_json(cls, value: object) -> ApproverRecord:
        r = Reader(value, "approver")
        out = cls(
            id=ids.check_id(r.raw("id"), ids.APPROVER, what="approver.id"),
            name=r.text("name", max_len=128),
            kind=r.choice("kind", APPROVER_KINDS),
            tier=r.choice("tier", APPROVER_TIERS),
            hpke_pk=r.parsed("hpke_pk", _hpke_pk),
            sig_pk=r.parsed("sig_pk", _sig_pk),
        )
        r.done()
        return out


@dataclass(frozen=True)
class DirectoryLink:
    """One link of the hash-chained approver directory (``sealbox.directory.v1``)."""

    TYP: ClassVar[str] = labels.TYP_DIRECTORY
    vault: str
    seq: int
    """0 for the genesis link, then +1 per link."""
    prev: str | None
    """Statement hash of link ``seq - 1``; ``None`` only for link 0."""
    op: str
    """``add``, ``remove`` or ``update``."""
    approver: ApproverRecord
    at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "vault": self.vault,
            "seq": self.seq,
            "prev": self.prev,
            "op": self.op,
            "approver": self.approver.to_json(),
            "at": self.at,
        }

    @classmethod
    def from_json(cls, value: object) -> DirectoryLink:
        r = Reader(value, "directory link")
        out = cls(
            vault=ids.check_id(r.raw("vault"), ids.VAULT, what="vault"),
            seq=r.integer("seq"),
            prev=r.digest("prev", nullable=True),
            op=r.choice("op", DIRECTORY_OPS),
            approver=r.parsed("approver", ApproverRecord.from_json),
            at=r.integer("at"),
        )
        r.done()
        if (out.seq == 0) != (out.prev is None):
            raise MalformedInput("directory link: prev is null exactly for seq 0")
        return out


# --- clients and enrollments ----------------------------------------------------------


@dataclass(frozen=True)
class ClientInfo:
    id: str
    """``cli_…``."""
    kind: str
    """``human``, ``agent`` or ``machine``."""
    name: str
    sig_pk: VerifyKey
    """The client's own key; it signs store and access statements."""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "sig_pk": self.sig_pk.to_text(),
        }

    @classmethod
    def from_json(cls, value: object) -> ClientInfo:
        r = Reader(value, "client")
        out = cls(
            id=ids.check_id(r.raw("id"), ids.CLIENT, what="client.id"),
            kind=r.choice("kind", CLIENT_KINDS),
            name=r.text("name", max_len=128),
            sig_pk=r.parsed("sig_pk", _sig_pk),
        )
        r.done()
        return out


@dataclass(frozen=True)
class ClientConstraints:
    not_after: int
    """Unix time after which the certificate is void."""
    cidrs: tuple[str, ...] = ()
    """Source networks the relay must see requests come from (empty: any)."""
    hostname: str | None = None
    """A glob the requester's reported host name must match (``None``: any)."""

    def to_json(self) -> dict[str, Any]:
        return {"not_after": self.not_after, "cidrs": list(self.cidrs), "hostname": self.hostname}

    @classmethod
    def from_json(cls, value: object) -> ClientConstraints:
        r = Reader(value, "constraints")
        out = cls(
            not_after=r.integer("not_after"),
            cidrs=_sorted_unique(r.items("cidrs", _text_item("cidr", 64)), "constraints.cidrs"),
            hostname=r.text("hostname", max_len=253, nullable=True),
        )
        r.done()
        return out


@dataclass(frozen=True)
class ClientCertificate:
    """An approver's (or enrollment key's) word that a client key may ask.

    Statement type ``sealbox.client.v1``.
    """

    TYP: ClassVar[str] = labels.TYP_CLIENT
    vault: str
    client: ClientInfo
    scopes: tuple[str, ...]
    constraints: ClientConstraints
    issuer: str
    """The ``apv_…`` or ``enr_…`` id whose key signed this certificate."""
    at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "vault": self.vault,
            "client": self.client.to_json(),
            "scopes": list(self.scopes),
            "constraints": self.constraints.to_json(),
            "issuer": self.issuer,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, value: object) -> ClientCertificate:
        r = Reader(value, "client certificate")
        issuer = r.raw("issuer")
        if not (isinstance(issuer, str) and issuer[:4] in ("apv_", "enr_")):
            raise MalformedInput("client certificate.issuer: expected an apv_ or enr_ identifier")
        out = cls(
            vault=ids.check_id(r.raw("vault"), ids.VAULT, what="vault"),
            client=r.parsed("client", ClientInfo.from_json),
            scopes=_sorted_unique(r.items("scopes", _scope), "scopes"),
            constraints=r.parsed("constraints", ClientConstraints.from_json),
            issuer=ids.check_id(issuer, issuer[:3], what="issuer"),
            at=r.integer("at"),
        )
        r.done()
        return out


@dataclass(frozen=True)
class EnrollmentConstraints:
    projects: tuple[str, ...]
    """Projects the enrolled machines may ask in."""
    items: tuple[str, ...]
    """Item path globs the enrolled machines may ask for."""
    max_uses: int
    not_after: int
    cidrs: tuple[str, ...] = ()
    hostname: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "projects": list(self.projects),
            "items": list(self.items),
            "max_uses": self.max_uses,
            "not_after": self.not_after,
            "cidrs": list(self.cidrs),
            "hostname": self.hostname,
        }

    @classmethod
    def from_json(cls, value: object) -> EnrollmentConstraints:
        r = Reader(value, "enrollment constraints")
        out = cls(
            projects=_sorted_unique(r.items("projects", _project), "projects"),
            items=_sorted_unique(r.items("items", _item_glob), "items"),
            max_uses=r.integer("max_uses", low=1),
            not_after=r.integer("not_after"),
            cidrs=_sorted_unique(r.items("cidrs", _text_item("cidr", 64)), "cidrs"),
            hostname=r.text("hostname", max_len=253, nullable=True),
        )
        r.done()
        return out


@dataclass(frozen=True)
class EnrollmentStatement:
    """A delegation key that may sign machine certificates (``sealbox.enrollment.v1``)."""

    TYP: ClassVar[str] = labels.TYP_ENROLLMENT
    vault: str
    id: str
    """``enr_…``: the ``kid`` of the certificates the delegation key signs."""
    sig_pk: VerifyKey
    constraints: EnrollmentConstraints
    issuer: str
    """The approver that signed this enrollment."""
    at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "vault": self.vault,
            "id": self.id,
            "sig_pk": self.sig_pk.to_text(),
            "constraints": self.constraints.to_json(),
            "issuer": self.issuer,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, value: object) -> EnrollmentStatement:
        r = Reader(value, "enrollment")
        out = cls(
            vault=ids.check_id(r.raw("vault"), ids.VAULT, what="vault"),
            id=ids.check_id(r.raw("id"), ids.ENROLLMENT, what="enrollment.id"),
            sig_pk=r.parsed("sig_pk", _sig_pk),
            constraints=r.parsed("constraints", EnrollmentConstraints.from_json),
            issuer=ids.check_id(r.raw("issuer"), ids.APPROVER, what="issuer"),
            at=r.integer("at"),
        )
        r.done()
        return out


# --- store and item manifests ---------------------------------------------------------


@dataclass(frozen=True)
class FieldCipher:
    """What a signer vouches for about one field's ciphertext."""

    nonce: bytes
    """The 12-byte AES-GCM nonce."""
    ct_hash: str
    """Labelled SHA-256 of the ciphertext (with tag)."""

    def to_json(self) -> dict[str, Any]:
        return {"nonce": b64u_encode(self.nonce), "ct_hash": self.ct_hash}

    @classmethod
    def from_json(cls, value: object) -> FieldCipher:
        r = Reader(value, "field")
        out = cls(nonce=r.b64("nonce", length=12), ct_hash=r.digest("ct_hash"))
        r.done()
        return out


@dataclass(frozen=True)
class KeySet:
    """Who holds the keys of one item version, and how many must agree."""

    threshold: int
    """M of M-of-N; 1 means every approver holds the whole key."""
    approvers: tuple[str, ...]
    """Ordered: the i-th approver holds the Shamir share with x = i + 1."""
    wraps: Mapping[str, Mapping[str, str]] = field(hash=False)
    """approver id -> field name -> labelled hash of that approver's HPKE-wrapped share."""

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "approvers": list(self.approvers),
            "wraps": {a: dict(f) for a, f in self.wraps.items()},
        }

    @classmethod
    def from_json(cls, value: object) -> KeySet:
        r = Reader(value, "key set")
        approvers = _unique(
            r.items(
                "approvers",
                lambda v: ids.check_id(v, ids.APPROVER, what="key set approver"),
                max_len=MAX_APPROVERS,
            ),
            "key set approvers",
        )
        out = cls(
            threshold=r.integer("threshold", low=1, high=MAX_APPROVERS),
            approvers=approvers,
            wraps=r.mapping(
                "wraps",
                lambda k: ids.check_id(k, ids.APPROVER, what="wraps key"),
                _field_hashes,
            ),
        )
        r.done()
        if not approvers or out.threshold > len(approvers):
            raise MalformedInput("key set: need 1 <= threshold <= number of approvers")
        if set(out.wraps) != set(approvers):
            raise MalformedInput("key set: wraps must name exactly the approvers")
        return out


def _field_hashes(value: object) -> dict[str, str]:
    r = Reader(value, "wrap hashes")
    if not isinstance(value, dict):  # pragma: no cover - Reader already refuses
        raise MalformedInput("wrap hashes: expected an object")
    out = {ids.check_field_name(k): r.digest(k) for k in list(value)}
    r.done()
    return out


def _fields(value: object) -> dict[str, FieldCipher]:
    if not isinstance(value, dict) or not value:
        raise MalformedInput("fields: expected a non-empty object")
    if len(value) > MAX_LIST:
        raise MalformedInput("fields: too many")
    return {ids.check_field_name(k): FieldCipher.from_json(v) for k, v in value.items()}


@dataclass(frozen=True)
class RequestContext:
    """Who and what is asking, as the requesting process describes itself.

    Every key is present in the payload; a value is ``null`` when unknown.
    Approvers show these as *verified* only in the sense that the client
    signed them; the client's host is trusted at the moment of use.
    """

    host: str | None = None
    user: str | None = None
    uid: int | None = None
    pid: int | None = None
    ppid: int | None = None
    exe: str | None = None
    exe_sha256: str | None = None
    argv: tuple[str, ...] = ()
    cwd: str | None = None
    agent_session: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "user": self.user,
            "uid": self.uid,
            "pid": self.pid,
            "ppid": self.ppid,
            "exe": self.exe,
            "exe_sha256": self.exe_sha256,
            "argv": list(self.argv),
            "cwd": self.cwd,
            "agent_session": self.agent_session,
        }

    @classmethod
    def from_json(cls, value: object) -> RequestContext:
        r = Reader(value, "context")
        exe_sha256 = r.text("exe_sha256", max_len=64, nullable=True)
        if exe_sha256 is not None and (
            len(exe_sha256) != 64 or exe_sha256.strip("0123456789abcdef")
        ):
            raise MalformedInput("context.exe_sha256: expected 64 lowercase hex digits")
        out = cls(
            host=r.text("host", max_len=253, nullable=True),
            user=r.text("user", max_len=256, nullable=True),
            uid=r.integer("uid", high=2**32 - 1, nullable=True),
            pid=r.integer("pid", high=2**32 - 1, nullable=True),
            ppid=r.integer("ppid", high=2**32 - 1, nullable=True),
            exe=r.text("exe", nullable=True),
            exe_sha256=exe_sha256,
            argv=tuple(r.items("argv", _text_item("argv entry", 4096))),
            cwd=r.text("cwd", nullable=True),
            agent_session=r.text("agent_session", max_len=256, nullable=True),
        )
        r.done()
        return out


@dataclass(frozen=True)
class StoreStatement:
    """A client's signed request to store one item version (``sealbox.store.v1``)."""

    TYP: ClassVar[str] = labels.TYP_STORE
    jti: str
    vault: str
    client: str
    item: str
    path: str
    version: int
    prev: str | None
    """Statement hash of the previous version's manifest; ``None`` for version 1."""
    type: str
    fields: Mapping[str, FieldCipher] = field(hash=False)
    keyset: KeySet
    purpose: str
    context: RequestContext
    at: int
    exp: int

    def to_json(self) -> dict[str, Any]:
        return {
            "jti": self.jti,
            "vault": self.vault,
            "client": self.client,
            "item": self.item,
            "path": self.path,
            "version": self.version,
            "prev": self.prev,
            "type": self.type,
            "fields": {k: v.to_json() for k, v in self.fields.items()},
            "keyset": self.keyset.to_json(),
            "purpose": self.purpose,
            "context": self.context.to_json(),
            "at": self.at,
            "exp": self.exp,
        }

    @classmethod
    def from_json(cls, value: object) -> StoreStatement:
        r = Reader(value, "store statement")
        out = cls(
            jti=ids.check_id(r.raw("jti"), ids.JTI, what="jti"),
            vault=ids.check_id(r.raw("vault"), ids.VAULT, what="vault"),
            client=ids.check_id(r.raw("client"), ids.CLIENT, what="client"),
            item=ids.check_id(r.raw("item"), ids.ITEM, what="item"),
            path=ids.check_path(r.raw("path")),
            version=r.integer("version", low=1, high=MAX_VERSION),
            prev=r.digest("prev", nullable=True),
            type=r.choice("type", ITEM_TYPES),
            fields=r.parsed("fields", _fields),
            keyset=r.parsed("keyset", KeySet.from_json),
            purpose=r.text("purpose", max_len=1024),
            context=r.parsed("context", RequestContext.from_json),
            at=r.integer("at"),
            exp=r.integer("exp"),
        )
        r.done()
        _check_version_chain(out.version, out.prev, "store statement")
        _check_wraps_cover_fields(out.keyset, out.fields, "store statement")
        return out


def _check_version_chain(version: int, prev: str | None, what: str) -> None:
    if (version == 1) != (prev is None):
        raise MalformedInput(f"{what}: prev is null exactly for version 1")


def _check_wraps_cover_fields(keyset: KeySet, fields: Mapping[str, Any], what: str) -> None:
    for approver, wrapped in keyset.wraps.items():
        if set(wrapped) != set(fields):
            raise MalformedInput(f"{what}: wraps of {approver} must cover exactly the fields")


@dataclass(frozen=True)
class ItemManifest:
    """An approver's word on one item version (``sealbox.item.v1``)."""

    TYP: ClassVar[str] = labels.TYP_ITEM
    vault: str
    item: str
    path: str
    version: int
    prev: str | None
    type: str
    fields: Mapping[str, FieldCipher] = field(hash=False)
    keyset: KeySet
    store_request: str | None
    """Statement hash of the store statement approved; ``None`` when an approver stored itself."""
    at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "vault": self.vault,
            "item": self.item,
            "path": self.path,
            "version": self.version,
            "prev": self.prev,
            "type": self.type,
            "fields": {k: v.to_json() for k, v in self.fields.items()},
            "keyset": self.keyset.to_json(),
            "store_request": self.store_request,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, value: object) -> ItemManifest:
        r = Reader(value, "item manifest")
        out = cls(
            vault=ids.check_id(r.raw("vault"), ids.VAULT, what="vault"),
            item=ids.check_id(r.raw("item"), ids.ITEM, what="item"),
            path=ids.check_path(r.raw("path")),
            version=r.integer("version", low=1, high=MAX_VERSION),
            prev=r.digest("prev", nullable=True),
            type=r.choice("type", ITEM_TYPES),
            fields=r.parsed("fields", _fields),
            keyset=r.parsed("keyset", KeySet.from_json),
            store_request=r.digest("store_request", nullable=True),
            at=r.integer("at"),
        )
        r.done()
        _check_version_chain(out.version, out.prev, "item manifest")
        _check_wraps_cover_fields(out.keyset, out.fields, "item manifest")
        return out


# --- access, release, deny ------------------------------------------------------------


@dataclass(frozen=True)
class AccessItem:
    item: str
    path: str
    """The ``project/environment/item`` path the client means.  Signed, shown to the
    approver, and checked against the manifest: the relay resolves paths to ids, and
    without this it could answer with the id of another item that has the same fields."""
    version: int | None
    """A specific version, or ``None`` for the latest."""
    fields: tuple[str, ...]
    """Sorted, unique, non-empty: exactly the fields to release."""

    def to_json(self) -> dict[str, Any]:
        return {
            "item": self.item,
            "path": self.path,
            "version": self.version,
            "fields": list(self.fields),
        }

    @classmethod
    def from_json(cls, value: object) -> AccessItem:
        r = Reader(value, "access item")
        out = cls(
            item=ids.check_id(r.raw("item"), ids.ITEM, what="item"),
            path=ids.check_path(r.raw("path")),
            version=r.integer("version", low=1, high=MAX_VERSION, nullable=True),
            fields=_sorted_unique(r.items("fields", ids.check_field_name), "access item fields"),
        )
        r.done()
        if not out.fields:
            raise MalformedInput("access item: ask for at least one field")
        return out


@dataclass(frozen=True)
class CacheRequest:
    seconds: int
    """0 for no caching."""
    scope: str
    """``none``, ``process-tree``, ``agent-session`` or ``user``."""

    def to_json(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "scope": self.scope}

    @classmethod
    def from_json(cls, value: object) -> CacheRequest:
        r = Reader(value, "cache")
        out = cls(
            seconds=r.integer("seconds", high=30 * 86400), scope=r.choice("scope", CACHE_SCOPES)
        )
        r.done()
        return out


NO_CACHE = CacheRequest(seconds=0, scope="none")


@dataclass(frozen=True)
class AccessStatement:
    """A client's signed request for some fields of some items (``sealbox.access.v1``)."""

    TYP: ClassVar[str] = labels.TYP_ACCESS
    jti: str
    vault: str
    client: str
    items: tuple[AccessItem, ...]
    purpose: str
    context: RequestContext
    epk: HpkePublicKey
    """The one-time key the release is sealed to; its private half never leaves the process."""
    cache: CacheRequest
    at: int
    exp: int

    def to_json(self) -> dict[str, Any]:
        return {
            "jti": self.jti,
            "vault": self.vault,
            "client": self.client,
            "items": [i.to_json() for i in self.items],
            "purpose": self.purpose,
            "context": self.context.to_json(),
            "epk": self.epk.to_text(),
            "cache": self.cache.to_json(),
            "at": self.at,
            "exp": self.exp,
        }

    @classmethod
    def from_json(cls, value: object) -> AccessStatement:
        r = Reader(value, "access statement")
        out = cls(
            jti=ids.check_id(r.raw("jti"), ids.JTI, what="jti"),
            vault=ids.check_id(r.raw("vault"), ids.VAULT, what="vault"),
            client=ids.check_id(r.raw("client"), ids.CLIENT, what="client"),
            items=tuple(r.items("items", AccessItem.from_json, max_len=64)),
            purpose=r.text("purpose", max_len=1024),
            context=r.parsed("context", RequestContext.from_json),
            epk=r.parsed("epk", _hpke_pk),
            cache=r.parsed("cache", CacheRequest.from_json),
            at=r.integer("at"),
            exp=r.integer("exp"),
        )
        r.done()
        item_ids = [i.item for i in out.items]
        if not item_ids or len(set(item_ids)) != len(item_ids):
            raise MalformedInput("access statement: at least one item, each at most once")
        if sum(len(i.fields) for i in out.items) > MAX_ACCESS_FIELDS:
            # Bounds the release an approver must seal (one share per field).
            raise MalformedInput(f"access statement: more than {MAX_ACCESS_FIELDS} fields in all")
        return out


@dataclass(frozen=True)
class ReleaseStatement:
    """An approver's signed answer to one access request (``sealbox.release.v1``)."""

    TYP: ClassVar[str] = labels.TYP_RELEASE
    vault: str
    request: str
    """Statement hash of the access statement answered."""
    approver: str
    manifests: tuple[str, ...]
    """Statement hashes of the item manifests whose shares are inside ``blob`` (sorted)."""
    blob: bytes
    """HPKE-sealed to the access statement's ``epk``, ``info`` bound to the request hash."""
    cache_until: int
    """Until when a local cache may keep the values (0: not at all)."""
    at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "vault": self.vault,
            "request": self.request,
            "approver": self.approver,
            "manifests": list(self.manifests),
            "blob": b64u_encode(self.blob),
            "cache_until": self.cache_until,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, value: object) -> ReleaseStatement:
        r = Reader(value, "release")
        out = cls(
            vault=ids.check_id(r.raw("vault"), ids.VAULT, what="vault"),
            request=r.digest("request"),
            approver=ids.check_id(r.raw("approver"), ids.APPROVER, what="approver"),
            manifests=_sorted_unique(
                r.items("manifests", lambda v: _digest_item(v, "manifest hash"), max_len=64),
                "release manifests",
            ),
            blob=r.b64("blob", max_len=1 << 18),
            cache_until=r.integer("cache_until"),
            at=r.integer("at"),
        )
        r.done()
        return out


def _digest_item(value: object, what: str) -> str:
    return parse_digest(value, what=what)


#: Why a deny was signed, when it is not a person's or a rule's decision.  ``unverifiable``: the
#: request the approver was shown does not verify (a tampered one-time key, purpose, wrap,
#: signature...), so it says so instead of leaving the client to wait for the expiry.
DENY_UNVERIFIABLE = "unverifiable"
DENY_GROUNDS = frozenset({DENY_UNVERIFIABLE})


@dataclass(frozen=True)
class DenyStatement:
    """An approver's signed refusal of one request (``sealbox.deny.v1``)."""

    TYP: ClassVar[str] = labels.TYP_DENY
    vault: str
    request: str
    approver: str
    reason: str
    at: int
    grounds: str | None = None
    """``None``: decided (by a person or a rule).  ``"unverifiable"``: refused because the
    request shown did not verify; ``reason`` then names the failed check."""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "vault": self.vault,
            "request": self.request,
            "approver": self.approver,
            "reason": self.reason,
            "at": self.at,
        }
        if self.grounds is not None:
            # Absent, never null, for a decided deny: such payloads stay byte for byte what
            # they were before the key existed, so earlier signatures still verify.
            out["grounds"] = self.grounds
        return out

    @classmethod
    def from_json(cls, value: object) -> DenyStatement:
        r = Reader(value, "deny")
        # Optional, and then one of DENY_GROUNDS only: never null (one meaning, one
        # encoding) nor free text (a client acts on it, so it must not be open to reading).
        grounds = (
            r.choice("grounds", DENY_GROUNDS)
            if isinstance(value, dict) and "grounds" in value
            else None
        )
        out = cls(
            vault=ids.check_id(r.raw("vault"), ids.VAULT, what="vault"),
            request=r.digest("request"),
            approver=ids.check_id(r.raw("approver"), ids.APPROVER, what="approver"),
            reason=r.text("reason", max_len=1024),
            at=r.integer("at"),
            grounds=grounds,
        )
        r.done()
        return out


# --- audit checkpoints and consent ------------------------------------------------------


@dataclass(frozen=True)
class CheckpointStatement:
    """An approver's signature over the audit chain head (``sealbox.checkpoint.v1``)."""

    TYP: ClassVar[str] = labels.TYP_CHECKPOINT
    vault: str
    approver: str
    seq: int
    head: str
    """Hash of the audit event at ``seq``."""
    at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "vault": self.vault,
            "approver": self.approver,
            "seq": self.seq,
            "head": self.head,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, value: object) -> CheckpointStatement:
        r = Reader(value, "checkpoint")
        out = cls(
            vault=ids.check_id(r.raw("vault"), ids.VAULT, what="vault"),
            approver=ids.check_id(r.raw("approver"), ids.APPROVER, what="approver"),
            seq=r.integer("seq"),
            head=r.digest("head"),
            at=r.integer("at"),
        )
        r.done()
        return out


@dataclass(frozen=True)
class ConsentStatement:
    """Per-action approval a third party can verify (``sealbox.consent.v1``)."""

    TYP: ClassVar[str] = labels.TYP_CONSENT
    vault: str
    approver: str
    action: str
    """What is approved, e.g. ``deploy``."""
    details: str
    """Labelled hash of the action's parameters, computed by the party that will check it."""
    client: str
    scope: str
    at: int
    exp: int

    def to_json(self) -> dict[str, Any]:
        return {
            "vault": self.vault,
            "approver": self.approver,
            "action": self.action,
            "details": self.details,
            "client": self.client,
            "scope": self.scope,
            "at": self.at,
            "exp": self.exp,
        }

    @classmethod
    def from_json(cls, value: object) -> ConsentStatement:
        r = Reader(value, "consent")
        out = cls(
            vault=ids.check_id(r.raw("vault"), ids.VAULT, what="vault"),
            approver=ids.check_id(r.raw("approver"), ids.APPROVER, what="approver"),
            action=r.text("action", max_len=128),
            details=r.digest("details"),
            client=ids.check_id(r.raw("client"), ids.CLIENT, what="client"),
            scope=r.text("scope", max_len=256),
            at=r.integer("at"),
            exp=r.integer("exp"),
        )
        r.done()
        return out


def _consent_details(value: object) -> dict[str, Any]:
    """An action's parameters: a JSON object in the canonical subset, at most 8 KiB of it."""
    if not isinstance(value, dict):
        raise MalformedInput("consent request.details: expected a JSON object")
    try:
        size = len(canonical_json(value))
    except (TypeError, ValueError):
        raise MalformedInput(
            "consent request.details: not representable as canonical JSON"
        ) from None
    if size > MAX_CONSENT_DETAILS:
        raise MalformedInput(
            f"consent request.details: more than {MAX_CONSENT_DETAILS} bytes of canonical JSON"
        )
    return value


@dataclass(frozen=True)
class ConsentRequestStatement:
    """A client's signed request for an approver's consent to one action
    (``sealbox.consent-request.v1``).

    It carries the action's full ``details``, so the approver is shown what the client
    signed, not what the relay says; the consent then carries only their hash.
    """

    TYP: ClassVar[str] = labels.TYP_CONSENT_REQUEST
    jti: str
    vault: str
    client: str
    action: str
    details: Mapping[str, Any] = field(hash=False)
    """The action's parameters (a JSON object, canonical, at most 8 KiB)."""
    purpose: str
    ttl: int
    """How long the consent asked for should stay valid (seconds); an approver may shorten it."""
    at: int
    exp: int
    """Until when the request waits for an answer."""

    def to_json(self) -> dict[str, Any]:
        return {
            "jti": self.jti,
            "vault": self.vault,
            "client": self.client,
            "action": self.action,
            "details": self.details,
            "purpose": self.purpose,
            "ttl": self.ttl,
            "at": self.at,
            "exp": self.exp,
        }

    @classmethod
    def from_json(cls, value: object) -> ConsentRequestStatement:
        r = Reader(value, "consent request")
        out = cls(
            jti=ids.check_id(r.raw("jti"), ids.JTI, what="jti"),
            vault=ids.check_id(r.raw("vault"), ids.VAULT, what="vault"),
            client=ids.check_id(r.raw("client"), ids.CLIENT, what="client"),
            action=r.text("action", max_len=128),
            details=r.parsed("details", _consent_details),
            purpose=r.text("purpose", max_len=1024),
            ttl=r.integer("ttl", low=1, high=MAX_CONSENT_TTL),
            at=r.integer("at"),
            exp=r.integer("exp"),
        )
        r.done()
        return out


# --- release policies ----------------------------------------------------------------------------


def _window_text(value: object) -> str:
    # Only the canonical spelling: one policy, one encoding, so a signature covers exactly
    # what every reader evaluates.
    try:
        window = policy_rules.parse_window(value)  # type: ignore[arg-type]
    except ValueError as exc:
        raise MalformedInput(f"policy.hours: {exc}") from None
    if window.text() != value:
        raise MalformedInput(f"policy.hours: {value!r} is not in canonical form")
    return window.text()


def _rate_text(value: object) -> str | None:
    if value is None:
        return None
    try:
        rate = policy_rules.parse_rate(value)  # type: ignore[arg-type]
    except ValueError as exc:
        raise MalformedInput(f"policy.max_reads: {exc}") from None
    if rate.text() != value:
        raise MalformedInput(f"policy.max_reads: {value!r} is not in canonical form")
    return rate.text()


@dataclass(frozen=True)
class PolicyStatement:
    """A release policy as an approver set it (``sealbox.policy.v1``).

    The relay stores it with the policy and serves it with pending requests, so
    an approver can check by its own clock what the relay should have checked
    (the time windows and the destroy date) and tell the signed policy from
    what the relay merely reports.
    """

    TYP: ClassVar[str] = labels.TYP_POLICY
    vault: str
    approver: str
    """Who set it (the signer)."""
    pattern: str
    approvers: tuple[str, ...]
    threshold: int
    expiry_seconds: int
    max_cache_seconds: int
    store_needs_approval: bool
    cidrs: tuple[str, ...]
    hours: tuple[str, ...]
    max_reads: str | None
    cosigner: str | None
    destroy_at: int | None
    rotate_after: int | None
    at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "vault": self.vault,
            "approver": self.approver,
            "pattern": self.pattern,
            "approvers": list(self.approvers),
            "threshold": self.threshold,
            "expiry_seconds": self.expiry_seconds,
            "max_cache_seconds": self.max_cache_seconds,
            "store_needs_approval": self.store_needs_approval,
            "cidrs": list(self.cidrs),
            "hours": list(self.hours),
            "max_reads": self.max_reads,
            "cosigner": self.cosigner,
            "destroy_at": self.destroy_at,
            "rotate_after": self.rotate_after,
            "at": self.at,
        }

    @classmethod
    def from_json(cls, value: object) -> PolicyStatement:
        r = Reader(value, "policy")
        needs = r.raw("store_needs_approval")
        if not isinstance(needs, bool):
            raise MalformedInput("policy.store_needs_approval: expected true or false")
        cosigner = r.raw("cosigner")
        out = cls(
            vault=ids.check_id(r.raw("vault"), ids.VAULT, what="vault"),
            approver=ids.check_id(r.raw("approver"), ids.APPROVER, what="approver"),
            pattern=r.parsed("pattern", _item_glob),
            approvers=_sorted_unique(
                r.items(
                    "approvers",
                    lambda v: ids.check_id(v, ids.APPROVER, what="approver"),
                    max_len=64,
                ),
                "policy approvers",
            ),
            threshold=r.integer("threshold", low=1, high=64),
            expiry_seconds=r.integer("expiry_seconds"),
            max_cache_seconds=r.integer("max_cache_seconds"),
            store_needs_approval=needs,
            cidrs=_sorted_unique(
                r.items("cidrs", _text_item("cidr", 64), max_len=64), "policy cidrs"
            ),
            hours=_unique(
                r.items("hours", _window_text, max_len=policy_rules.MAX_WINDOWS), "policy hours"
            ),
            max_reads=_rate_text(r.raw("max_reads")),
            cosigner=None
            if cosigner is None
            else ids.check_id(cosigner, ids.APPROVER, what="co-signer"),
            destroy_at=r.integer("destroy_at", high=policy_rules.MAX_DESTROY_AT, nullable=True),
            rotate_after=r.integer("rotate_after", low=1, nullable=True),
            at=r.integer("at"),
        )
        if out.threshold > len(out.approvers):
            raise MalformedInput("policy: threshold above the number of approvers")
        if out.cosigner is not None and out.cosigner not in out.approvers:
            raise MalformedInput("policy: the co-signer is not one of its approvers")
        r.done()
        return out
