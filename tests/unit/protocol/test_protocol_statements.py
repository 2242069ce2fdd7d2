"""Statement dataclasses: round trips, strict parsing, and signing."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealbox.crypto import labels
from sealbox.crypto.encoding import b64u_encode, canonical_json
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.errors import MalformedInput, SignatureInvalid
from sealbox.protocol import ids
from sealbox.protocol.statements import (
    NO_CACHE,
    AccessItem,
    AccessStatement,
    ApproverRecord,
    CacheRequest,
    CheckpointStatement,
    ClientCertificate,
    ClientConstraints,
    ClientInfo,
    ConsentRequestStatement,
    ConsentStatement,
    DenyStatement,
    DirectoryLink,
    EnrollmentConstraints,
    EnrollmentStatement,
    FieldCipher,
    ItemManifest,
    KeySet,
    PolicyStatement,
    ReleaseStatement,
    RequestContext,
    StoreStatement,
    sign_statement,
    verify_statement,
)

NOW = 1_800_000_000
SIG = SigningKey._from_seed(bytes(range(32)))
SIG2 = SigningKey._from_seed(bytes(range(1, 33)))
EPK = HpkePrivateKey._from_seed(bytes(range(2, 34))).public_key()
HPK = HpkePrivateKey._from_seed(bytes(range(3, 35))).public_key()


def _id(kind: str, n: int) -> str:
    return ids.new_id(kind, lambda size: bytes([n]) * size)


def _digest(n: int) -> str:
    return "sha256:" + b64u_encode(bytes([n]) * 32)


VAULT = _id(ids.VAULT, 1)
APV = [_id(ids.APPROVER, 10 + i) for i in range(3)]
CLI = _id(ids.CLIENT, 20)
ENR = _id(ids.ENROLLMENT, 30)
ITM = _id(ids.ITEM, 40)
ITM2 = _id(ids.ITEM, 41)
JTI = _id(ids.JTI, 50)

# --- one realistic instance of every type ------------------------------------------------

APPROVER = ApproverRecord(
    id=APV[0],
    name="Ana's laptop",
    kind="browser",
    tier="device",
    hpke_pk=HPK,
    sig_pk=SIG.verify_key(),
)
LINK0 = DirectoryLink(vault=VAULT, seq=0, prev=None, op="add", approver=APPROVER, at=NOW)
LINK1 = DirectoryLink(
    vault=VAULT,
    seq=1,
    prev=_digest(1),
    op="update",
    approver=dataclasses.replace(APPROVER, name="Ana's new laptop"),
    at=NOW + 5,
)
CLIENT = ClientInfo(id=CLI, kind="agent", name="ci-runner", sig_pk=SIG2.verify_key())
CONSTRAINTS = ClientConstraints(
    not_after=NOW + 86400, cidrs=("10.0.0.0/8", "192.168.1.0/24"), hostname="ci-*.example.org"
)
CERT = ClientCertificate(
    vault=VAULT,
    client=CLIENT,
    scopes=("read", "write"),
    constraints=CONSTRAINTS,
    issuer=APV[0],
    at=NOW,
)
CERT_BY_ENROLLMENT = dataclasses.replace(
    CERT,
    client=dataclasses.replace(CLIENT, kind="machine"),
    constraints=ClientConstraints(not_after=NOW + 600),
    issuer=ENR,
)
ENROLLMENT_CONSTRAINTS = EnrollmentConstraints(
    projects=("app", "web"),
    items=("app/*/db", "web/prod/*"),
    max_uses=100,
    not_after=NOW + 7 * 86400,
    cidrs=("10.0.0.0/8",),
    hostname="runner-*",
)
ENROLLMENT = EnrollmentStatement(
    vault=VAULT,
    id=ENR,
    sig_pk=SIG2.verify_key(),
    constraints=ENROLLMENT_CONSTRAINTS,
    issuer=APV[1],
    at=NOW,
)
FIELDS = {
    "password": FieldCipher(nonce=bytes(range(12)), ct_hash=_digest(2)),
    "user": FieldCipher(nonce=bytes(range(12, 24)), ct_hash=_digest(3)),
}
KEYSET = KeySet(
    threshold=2,
    approvers=(APV[2], APV[0], APV[1]),  # order is the share order, not sorted
    wraps={a: {"password": _digest(4 + i), "user": _digest(7 + i)} for i, a in enumerate(APV)},
)
CONTEXT = RequestContext(
    host="build-1",
    user="ana",
    uid=1000,
    pid=4242,
    ppid=1,
    exe="/usr/bin/psql",
    exe_sha256="0123456789abcdef" * 4,
    argv=("psql", "-h", "db.internal", "-c", "select 1"),
    cwd="/home/ana/app",
    agent_session="sess-42",
)
STORE = StoreStatement(
    jti=JTI,
    vault=VAULT,
    client=CLI,
    item=ITM,
    path="app/prod/db",
    version=2,
    prev=_digest(10),
    type="secret",
    fields=FIELDS,
    keyset=KEYSET,
    purpose="rotate the database password",
    context=CONTEXT,
    at=NOW,
    exp=NOW + 300,
)
MANIFEST = ItemManifest(
    vault=VAULT,
    item=ITM,
    path="app/prod/db",
    version=1,
    prev=None,
    type="canary",
    fields=FIELDS,
    keyset=KEYSET,
    store_request=_digest(11),
    at=NOW,
)
ACCESS = AccessStatement(
    jti=JTI,
    vault=VAULT,
    client=CLI,
    items=(
        AccessItem(item=ITM, path="app/prod/db", version=None, fields=("password", "user")),
        AccessItem(item=ITM2, path="app/prod/api", version=3, fields=("token",)),
    ),
    purpose="run the migration",
    context=CONTEXT,
    epk=EPK,
    cache=CacheRequest(seconds=600, scope="process-tree"),
    at=NOW,
    exp=NOW + 300,
)
RELEASE = ReleaseStatement(
    vault=VAULT,
    request=_digest(12),
    approver=APV[1],
    manifests=(_digest(13), _digest(14)),
    blob=bytes(range(200)),
    cache_until=NOW + 600,
    at=NOW + 10,
)
DENY = DenyStatement(
    vault=VAULT, request=_digest(12), approver=APV[2], reason="not during a freeze", at=NOW
)
CHECKPOINT = CheckpointStatement(vault=VAULT, approver=APV[0], seq=1234, head=_digest(15), at=NOW)
POLICY = PolicyStatement(
    vault=VAULT, approver=APV[0], pattern="app/prod/*", approvers=tuple(sorted(APV)),
    threshold=1, expiry_seconds=300, max_cache_seconds=0, store_needs_approval=True,
    cidrs=("10.1.0.0/16",), hours=("mon-fri 09:00-18:00 Europe/Berlin",), max_reads="10/h",
    cosigner=APV[2], destroy_at=NOW + 86400, rotate_after=5, at=NOW,
)  # fmt: skip
CONSENT = ConsentStatement(
    vault=VAULT,
    approver=APV[0],
    action="deploy",
    details=_digest(16),
    client=CLI,
    scope="prod",
    at=NOW,
    exp=NOW + 60,
)
CONSENT_REQUEST = ConsentRequestStatement(
    jti=ids.new_id(ids.JTI),
    vault=VAULT,
    client=CLI,
    action="deploy",
    details={"service": "api", "replicas": 3, "canary": True, "notes": None, "zones": ["a"]},
    purpose="release 1.4.2",
    ttl=300,
    at=NOW,
    exp=NOW + 300,
)

SIGNED = [
    LINK0,
    LINK1,
    CERT,
    CERT_BY_ENROLLMENT,
    ENROLLMENT,
    STORE,
    dataclasses.replace(STORE, version=1, prev=None, context=RequestContext()),
    MANIFEST,
    dataclasses.replace(MANIFEST, store_request=None, version=7, prev=_digest(9)),
    ACCESS,
    dataclasses.replace(ACCESS, cache=NO_CACHE),
    RELEASE,
    DENY,
    CHECKPOINT,
    CONSENT,
    CONSENT_REQUEST,
    POLICY,
    dataclasses.replace(
        POLICY,
        hours=(),
        max_reads=None,
        cosigner=None,
        destroy_at=None,
        rotate_after=None,
        cidrs=(),
    ),
]
PARTS = [
    APPROVER,
    CLIENT,
    CONSTRAINTS,
    ClientConstraints(not_after=0),
    ENROLLMENT_CONSTRAINTS,
    FIELDS["user"],
    KEYSET,
    CONTEXT,
    RequestContext(),
    ACCESS.items[0],
    ACCESS.items[1],
    ACCESS.cache,
]


def _name(obj: object) -> str:
    return type(obj).__name__


@pytest.mark.parametrize("obj", SIGNED + PARTS, ids=_name)
def test_round_trip(obj: Any) -> None:
    as_json = obj.to_json()
    parsed = type(obj).from_json(as_json)
    assert parsed == obj
    assert parsed.to_json() == as_json
    # The canonical bytes survive a copy through JSON text unchanged.
    assert canonical_json(type(obj).from_json(copy.deepcopy(as_json)).to_json()) == canonical_json(
        as_json
    )


@pytest.mark.parametrize("obj", SIGNED, ids=_name)
def test_sign_and_verify_every_statement_type(obj: Any) -> None:
    token = sign_statement(obj, SIG, APV[0])
    assert verify_statement(token, type(obj), SIG.verify_key(), APV[0]) == obj


def test_every_statement_type_is_covered() -> None:
    assert {o.TYP for o in SIGNED} == labels.ALL_STATEMENT_TYPES


@pytest.mark.parametrize("obj", SIGNED, ids=_name)
def test_statement_read_as_another_type_is_refused(obj: Any) -> None:
    token = sign_statement(obj, SIG, APV[0])
    for other in {type(o) for o in SIGNED} - {type(obj)}:
        with pytest.raises(SignatureInvalid, match="statement type"):
            verify_statement(token, other, SIG.verify_key(), APV[0])


@pytest.mark.parametrize("obj", [DENY, RELEASE, LINK0], ids=_name)
def test_wrong_key_or_kid_is_refused(obj: Any) -> None:
    token = sign_statement(obj, SIG, APV[0])
    with pytest.raises(SignatureInvalid):
        verify_statement(token, type(obj), SIG2.verify_key(), APV[0])
    with pytest.raises(SignatureInvalid, match="kid"):
        verify_statement(token, type(obj), SIG.verify_key(), APV[1])


def test_signed_payload_must_be_valid_for_its_class() -> None:
    # Signed correctly, but the payload does not parse: strict parse after verify.
    bad = dict(DENY.to_json(), extra=1)
    from sealbox.crypto import jws

    token = jws.sign(SIG, DenyStatement.TYP, APV[0], bad)
    with pytest.raises(MalformedInput, match="unknown keys"):
        verify_statement(token, DenyStatement, SIG.verify_key(), APV[0])


TOKEN = sign_statement(ACCESS, SIG, APV[0])
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "


@given(
    position=st.integers(min_value=0, max_value=len(TOKEN) - 1),
    replacement=st.sampled_from(_ALPHABET),
)
def test_any_single_character_change_is_refused(position: int, replacement: str) -> None:
    if TOKEN[position] == replacement:
        replacement = "A" if replacement != "A" else "B"
    tampered = TOKEN[:position] + replacement + TOKEN[position + 1 :]
    with pytest.raises((MalformedInput, SignatureInvalid)):
        verify_statement(tampered, AccessStatement, SIG.verify_key(), APV[0])


def test_single_character_change_in_each_part_is_refused() -> None:
    header, payload, _ = TOKEN.split(".")
    starts = [0, len(header) + 1, len(header) + len(payload) + 2]
    for start in starts:
        for offset in (0, 5):
            i = start + offset
            c = "B" if TOKEN[i] != "B" else "C"
            with pytest.raises((MalformedInput, SignatureInvalid)):
                verify_statement(
                    TOKEN[:i] + c + TOKEN[i + 1 :], AccessStatement, SIG.verify_key(), APV[0]
                )


# --- strict parsing: a valid JSON object, changed in one place ---------------------------

DELETE = object()


def _changed(value: dict[str, Any], path: tuple[Any, ...], new: object) -> dict[str, Any]:
    out = copy.deepcopy(value)
    target: Any = out
    for key in path[:-1]:
        target = target[key]
    if new is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = new
    return out


TYPES: list[tuple[Any, Callable[[], dict[str, Any]]]] = [
    (type(o), o.to_json) for o in SIGNED if o is not LINK1
]


@pytest.mark.parametrize(("cls", "make"), TYPES, ids=[t[0].__name__ for t in TYPES])
def test_every_missing_top_level_key_is_refused(
    cls: Any, make: Callable[[], dict[str, Any]]
) -> None:
    value = make()
    for key in value:
        with pytest.raises(MalformedInput):
            cls.from_json(_changed(value, (key,), DELETE))


@pytest.mark.parametrize(("cls", "make"), TYPES, ids=[t[0].__name__ for t in TYPES])
def test_an_extra_key_is_refused(cls: Any, make: Callable[[], dict[str, Any]]) -> None:
    with pytest.raises(MalformedInput, match="unknown keys"):
        cls.from_json(dict(make(), surprise=None))


# Replacements that are valid values, not wrong types: an empty set of scopes or of
# manifests, and a manifest an approver stored itself.
VALID_ALTERNATIVES: dict[str, list[object]] = {
    "manifests": [[]],
    "scopes": [[]],
    "store_request": [None],
    # A policy's optional axes are null when not set; its lists may be empty.
    "cidrs": [[]],
    "hours": [[]],
    "max_reads": [None],
    "cosigner": [None],
    "destroy_at": [None, 12345],
    "rotate_after": [None, 12345],
    "store_needs_approval": [True],
}


@pytest.mark.parametrize(("cls", "make"), TYPES, ids=[t[0].__name__ for t in TYPES])
def test_every_top_level_key_with_a_wrong_type_is_refused(
    cls: Any, make: Callable[[], dict[str, Any]]
) -> None:
    value = make()
    for key, current in value.items():
        wrong: list[object] = [[], {"x": 1}, True]
        if not isinstance(current, int) or isinstance(current, bool):
            wrong.append(12345)
        if not isinstance(current, str):
            wrong.append("text")
        if current is not None:
            wrong.append(None)
        if isinstance(current, int):
            wrong += [-1, 2**53]
        for bad in wrong:
            if bad in VALID_ALTERNATIVES.get(key, []):
                continue
            if cls is ConsentRequestStatement and key == "details" and isinstance(bad, dict):
                continue  # the action's parameters: any JSON object
            with pytest.raises(MalformedInput):
                cls.from_json(_changed(value, (key,), bad))


@pytest.mark.parametrize("cls", [type(o) for o in SIGNED] + [type(o) for o in PARTS], ids=str)
def test_non_objects_are_refused(cls: Any) -> None:
    for value in (None, [], "x", 1):
        with pytest.raises(MalformedInput):
            cls.from_json(value)


NESTED: list[tuple[Any, dict[str, Any], tuple[Any, ...], object]] = [
    # approver record inside a link
    (DirectoryLink, LINK0.to_json(), ("approver", "id"), CLI),
    (DirectoryLink, LINK0.to_json(), ("approver", "kind"), "phone"),
    (DirectoryLink, LINK0.to_json(), ("approver", "tier"), "cloud"),
    (DirectoryLink, LINK0.to_json(), ("approver", "name"), "Ana\u202e"),
    (DirectoryLink, LINK0.to_json(), ("approver", "name"), "x" * 129),
    (DirectoryLink, LINK0.to_json(), ("approver", "hpke_pk"), SIG.verify_key().to_text()),
    (DirectoryLink, LINK0.to_json(), ("approver", "sig_pk"), HPK.to_text()),
    (DirectoryLink, LINK0.to_json(), ("approver", "extra"), 1),
    (DirectoryLink, LINK0.to_json(), ("op",), "delete"),
    # prev is null exactly for seq 0
    (DirectoryLink, LINK0.to_json(), ("prev",), _digest(1)),
    (DirectoryLink, LINK1.to_json(), ("prev",), None),
    (DirectoryLink, LINK0.to_json(), ("seq",), 1),
    (DirectoryLink, LINK1.to_json(), ("seq",), 0),
    # certificates
    (ClientCertificate, CERT.to_json(), ("issuer",), CLI),
    (ClientCertificate, CERT.to_json(), ("issuer",), "apv_short"),
    (ClientCertificate, CERT.to_json(), ("issuer",), "enr_" + "A" * 26),
    (ClientCertificate, CERT.to_json(), ("issuer",), 7),
    (ClientCertificate, CERT.to_json(), ("issuer",), None),
    (ClientCertificate, CERT.to_json(), ("client", "kind"), "robot"),
    (ClientCertificate, CERT.to_json(), ("client", "id"), APV[0]),
    (ClientCertificate, CERT.to_json(), ("client", "extra"), 1),
    (ClientCertificate, CERT.to_json(), ("scopes",), ["write", "read"]),
    (ClientCertificate, CERT.to_json(), ("scopes",), ["read", "read"]),
    (ClientCertificate, CERT.to_json(), ("scopes",), ["re\x1bad"]),
    (ClientCertificate, CERT.to_json(), ("constraints", "cidrs"), ["192.168.1.0/24", "10.0.0.0/8"]),
    (ClientCertificate, CERT.to_json(), ("constraints", "cidrs"), ["10.0.0.0/8", "10.0.0.0/8"]),
    (ClientCertificate, CERT.to_json(), ("constraints", "hostname"), "h" * 254),
    (ClientCertificate, CERT.to_json(), ("constraints", "not_after"), -1),
    (ClientCertificate, CERT.to_json(), ("constraints", "extra"), 1),
    # enrollments
    (EnrollmentStatement, ENROLLMENT.to_json(), ("issuer",), ENR),
    (EnrollmentStatement, ENROLLMENT.to_json(), ("id",), APV[0]),
    (EnrollmentStatement, ENROLLMENT.to_json(), ("constraints", "max_uses"), 0),
    (EnrollmentStatement, ENROLLMENT.to_json(), ("constraints", "projects"), ["web", "app"]),
    (EnrollmentStatement, ENROLLMENT.to_json(), ("constraints", "items"), ["b", "a"]),
    (EnrollmentStatement, ENROLLMENT.to_json(), ("constraints", "items"), ["a", "a"]),
    (EnrollmentStatement, ENROLLMENT.to_json(), ("constraints", "cidrs"), ["x", "x"]),
    (EnrollmentStatement, ENROLLMENT.to_json(), ("constraints", "extra"), 1),
    # store: version chain, fields, key set, context
    (StoreStatement, STORE.to_json(), ("prev",), None),
    (StoreStatement, STORE.to_json(), ("version",), 1),
    (StoreStatement, STORE.to_json(), ("version",), 0),
    (StoreStatement, STORE.to_json(), ("path",), "app/prod"),
    (StoreStatement, STORE.to_json(), ("type",), "password"),
    (StoreStatement, STORE.to_json(), ("purpose",), "x" * 1025),
    (StoreStatement, STORE.to_json(), ("fields",), {}),
    (StoreStatement, STORE.to_json(), ("fields",), []),
    (StoreStatement, STORE.to_json(), ("fields", "bad name"), FIELDS["user"].to_json()),
    (StoreStatement, STORE.to_json(), ("fields", "user", "nonce"), b64u_encode(bytes(11))),
    (StoreStatement, STORE.to_json(), ("fields", "user", "ct_hash"), "sha256:"),
    (StoreStatement, STORE.to_json(), ("fields", "user", "extra"), 1),
    (StoreStatement, STORE.to_json(), ("keyset", "threshold"), 4),
    (StoreStatement, STORE.to_json(), ("keyset", "threshold"), 0),
    (StoreStatement, STORE.to_json(), ("keyset", "approvers"), []),
    (StoreStatement, STORE.to_json(), ("keyset", "approvers"), [APV[0], APV[0], APV[1]]),
    (StoreStatement, STORE.to_json(), ("keyset", "approvers"), [APV[0], APV[1], CLI]),
    (StoreStatement, STORE.to_json(), ("keyset", "approvers"), [APV[0], APV[1]]),
    (StoreStatement, STORE.to_json(), ("keyset", "wraps", APV[0]), DELETE),
    (StoreStatement, STORE.to_json(), ("keyset", "wraps", _id(ids.APPROVER, 99)), {}),
    (StoreStatement, STORE.to_json(), ("keyset", "wraps", CLI), {}),
    (StoreStatement, STORE.to_json(), ("keyset", "wraps", APV[0], "user"), DELETE),
    (StoreStatement, STORE.to_json(), ("keyset", "wraps", APV[0], "token"), _digest(1)),
    (StoreStatement, STORE.to_json(), ("keyset", "wraps", APV[0], "user"), "nope"),
    (StoreStatement, STORE.to_json(), ("keyset", "wraps", APV[0]), []),
    (StoreStatement, STORE.to_json(), ("keyset", "wraps", APV[0], "bad/name"), _digest(1)),
    (StoreStatement, STORE.to_json(), ("keyset", "extra"), 1),
    (StoreStatement, STORE.to_json(), ("context", "exe_sha256"), "0123456789ABCDEF" * 4),
    (StoreStatement, STORE.to_json(), ("context", "exe_sha256"), "0123456789abcdef" * 3),
    (StoreStatement, STORE.to_json(), ("context", "exe_sha256"), "0123456789abcdeg" * 4),
    (StoreStatement, STORE.to_json(), ("context", "exe_sha256"), "a" * 31 + "z" + "a" * 32),
    (StoreStatement, STORE.to_json(), ("context", "exe_sha256"), "a" * 65),
    (StoreStatement, STORE.to_json(), ("context", "uid"), 2**32),
    (StoreStatement, STORE.to_json(), ("context", "pid"), -1),
    (StoreStatement, STORE.to_json(), ("context", "argv"), ["ok", "\x1b[31m"]),
    (StoreStatement, STORE.to_json(), ("context", "argv"), "psql"),
    (StoreStatement, STORE.to_json(), ("context", "host"), DELETE),
    (StoreStatement, STORE.to_json(), ("context", "extra"), None),
    (StoreStatement, STORE.to_json(), ("context", "cwd"), "/tmp/\u2066x"),
    # manifest: same rules
    (ItemManifest, MANIFEST.to_json(), ("prev",), _digest(1)),
    (ItemManifest, MANIFEST.to_json(), ("version",), 2),
    (ItemManifest, MANIFEST.to_json(), ("store_request",), "sha256:short"),
    (ItemManifest, MANIFEST.to_json(), ("keyset", "wraps", APV[1], "password"), DELETE),
    (ItemManifest, MANIFEST.to_json(), ("fields", "token"), FIELDS["user"].to_json()),
    # access
    (AccessStatement, ACCESS.to_json(), ("items",), []),
    (AccessStatement, ACCESS.to_json(), ("items", 1, "item"), ITM),
    (AccessStatement, ACCESS.to_json(), ("items", 0, "fields"), []),
    (AccessStatement, ACCESS.to_json(), ("items", 0, "fields"), ["user", "password"]),
    (AccessStatement, ACCESS.to_json(), ("items", 0, "fields"), ["user", "user"]),
    (AccessStatement, ACCESS.to_json(), ("items", 0, "fields"), ["../etc"]),
    (AccessStatement, ACCESS.to_json(), ("items", 0, "version"), 0),
    (AccessStatement, ACCESS.to_json(), ("items", 0, "item"), CLI),
    (AccessStatement, ACCESS.to_json(), ("items", 0, "extra"), 1),
    (AccessStatement, ACCESS.to_json(), ("epk",), "sbx-hpke-pk-v1:" + b64u_encode(bytes(32))),
    (AccessStatement, ACCESS.to_json(), ("epk",), SIG.verify_key().to_text()),
    (AccessStatement, ACCESS.to_json(), ("cache", "scope"), "forever"),
    (AccessStatement, ACCESS.to_json(), ("cache", "seconds"), 30 * 86400 + 1),
    (AccessStatement, ACCESS.to_json(), ("cache", "extra"), 1),
    (AccessStatement, ACCESS.to_json(), ("purpose",), "read \u202eevil"),
    # release, deny, checkpoint, consent
    (ReleaseStatement, RELEASE.to_json(), ("manifests",), [_digest(14), _digest(13)]),
    (ReleaseStatement, RELEASE.to_json(), ("manifests",), [_digest(13), _digest(13)]),
    (ReleaseStatement, RELEASE.to_json(), ("manifests",), ["sha256:x"]),
    (ReleaseStatement, RELEASE.to_json(), ("blob",), "AAEC=="),
    (ReleaseStatement, RELEASE.to_json(), ("blob",), "A" * (4 * (1 << 18) // 3 + 8)),
    (ReleaseStatement, RELEASE.to_json(), ("request",), "sha512:" + "A" * 43),
    (ReleaseStatement, RELEASE.to_json(), ("approver",), CLI),
    (DenyStatement, DENY.to_json(), ("reason",), "x" * 1025),
    (DenyStatement, DENY.to_json(), ("reason",), "no\x00"),
    (CheckpointStatement, CHECKPOINT.to_json(), ("head",), _digest(1)[:-1]),
    (ConsentStatement, CONSENT.to_json(), ("details",), "deploy v1"),
    (ConsentStatement, CONSENT.to_json(), ("client",), APV[0]),
    (ConsentStatement, CONSENT.to_json(), ("action",), "x" * 129),
]


@pytest.mark.parametrize(
    ("cls", "value", "path", "new"),
    NESTED,
    ids=[f"{c.__name__}-{'.'.join(map(str, p))}" for c, _, p, _ in NESTED],
)
def test_strict_parse_refuses(
    cls: Any, value: dict[str, Any], path: tuple[Any, ...], new: object
) -> None:
    with pytest.raises(MalformedInput):
        cls.from_json(_changed(value, path, new))


def test_specific_messages_for_the_structural_rules() -> None:
    with pytest.raises(MalformedInput, match="prev is null exactly for seq 0"):
        DirectoryLink.from_json(_changed(LINK0.to_json(), ("prev",), _digest(1)))
    with pytest.raises(MalformedInput, match="prev is null exactly for version 1"):
        StoreStatement.from_json(_changed(STORE.to_json(), ("prev",), None))
    with pytest.raises(MalformedInput, match="threshold <= number of approvers"):
        KeySet.from_json(_changed(KEYSET.to_json(), ("threshold",), 4))
    with pytest.raises(MalformedInput, match="wraps must name exactly the approvers"):
        KeySet.from_json(_changed(KEYSET.to_json(), ("wraps", APV[0]), DELETE))
    with pytest.raises(MalformedInput, match="cover exactly the fields"):
        ItemManifest.from_json(
            _changed(MANIFEST.to_json(), ("keyset", "wraps", APV[1], "password"), DELETE)
        )
    with pytest.raises(MalformedInput, match="sorted and without duplicates"):
        AccessItem.from_json(
            {"item": ITM, "path": "app/prod/db", "version": None, "fields": ["b", "a"]}
        )
    with pytest.raises(MalformedInput, match="at least one field"):
        AccessItem.from_json({"item": ITM, "path": "a/b/c", "version": None, "fields": []})
    with pytest.raises(MalformedInput, match="each at most once"):
        AccessStatement.from_json(_changed(ACCESS.to_json(), ("items", 1, "item"), ITM))
    with pytest.raises(MalformedInput, match="apv_ or enr_"):
        ClientCertificate.from_json(_changed(CERT.to_json(), ("issuer",), CLI))
    with pytest.raises(MalformedInput, match="64 lowercase hex"):
        RequestContext.from_json(_changed(CONTEXT.to_json(), ("exe_sha256",), "A" * 64))
    with pytest.raises(MalformedInput, match="non-empty object"):
        StoreStatement.from_json(_changed(STORE.to_json(), ("fields",), {}))


def test_key_set_limits() -> None:
    many = [_id(ids.APPROVER, i) for i in range(255)]
    ks = KeySet(threshold=255, approvers=tuple(many), wraps={a: {} for a in many})
    assert KeySet.from_json(ks.to_json()) == ks
    with pytest.raises(MalformedInput):
        KeySet.from_json(_changed(ks.to_json(), ("approvers",), [*many, _id(ids.APPROVER, 255)]))
    too_many = {f"f{i}": FIELDS["user"].to_json() for i in range(257)}
    with pytest.raises(MalformedInput, match="too many"):
        StoreStatement.from_json(_changed(STORE.to_json(), ("fields",), too_many))


def test_client_certificate_may_be_issued_by_an_enrollment() -> None:
    value = CERT_BY_ENROLLMENT.to_json()
    assert ClientCertificate.from_json(value).issuer == ENR


# --- property tests -----------------------------------------------------------------------

text = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cf", "Zl", "Zp", "Cs", "Co"),
        blacklist_characters="\u115f\u1160\u3164\uffa0\u2800",
    ).filter(lambda c: not ("\ufe00" <= c <= "\ufe0f" or "\U000e0100" <= c <= "\U000e01ef")),
    max_size=40,
)
small_int = st.integers(min_value=0, max_value=2**32 - 1)
ts = st.integers(min_value=0, max_value=2**53 - 1)
field_name = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,15}", fullmatch=True)
digests = st.binary(min_size=32, max_size=32).map(lambda b: "sha256:" + b64u_encode(b))


def id_of(kind: str) -> st.SearchStrategy[str]:
    return st.binary(min_size=16, max_size=16).map(lambda raw: ids.new_id(kind, lambda n: raw))


contexts = st.builds(
    RequestContext,
    host=st.none() | text,
    user=st.none() | text,
    uid=st.none() | small_int,
    pid=st.none() | small_int,
    ppid=st.none() | small_int,
    exe=st.none() | text,
    exe_sha256=st.none() | st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    argv=st.lists(text, max_size=6).map(tuple),
    cwd=st.none() | text,
    agent_session=st.none() | text,
)
access_items = st.builds(
    AccessItem,
    item=id_of(ids.ITEM),
    path=st.lists(field_name, min_size=3, max_size=3).map("/".join),
    version=st.none() | st.integers(min_value=1, max_value=2**31 - 1),
    fields=st.lists(field_name, min_size=1, max_size=5, unique=True).map(
        lambda f: tuple(sorted(f))
    ),
)
hpke_keys = st.binary(min_size=32, max_size=32).map(
    lambda seed: HpkePrivateKey._from_seed(seed).public_key()
)
sig_keys = st.binary(min_size=32, max_size=32).map(
    lambda seed: SigningKey._from_seed(seed).verify_key()
)


@st.composite
def access_statements(draw: st.DrawFn) -> AccessStatement:
    items = draw(st.lists(access_items, min_size=1, max_size=4, unique_by=lambda i: i.item))
    at = draw(ts)
    return AccessStatement(
        jti=draw(id_of(ids.JTI)),
        vault=draw(id_of(ids.VAULT)),
        client=draw(id_of(ids.CLIENT)),
        items=tuple(items),
        purpose=draw(text),
        context=draw(contexts),
        epk=draw(hpke_keys),
        cache=draw(
            st.builds(
                CacheRequest,
                seconds=st.integers(0, 30 * 86400),
                scope=st.sampled_from(["none", "process-tree", "agent-session", "user"]),
            )
        ),
        at=at,
        exp=draw(ts),
    )


@st.composite
def keysets(draw: st.DrawFn) -> KeySet:
    approvers = draw(st.lists(id_of(ids.APPROVER), min_size=1, max_size=6, unique=True))
    names = draw(st.lists(field_name, min_size=1, max_size=4, unique=True))
    threshold = draw(st.integers(min_value=1, max_value=len(approvers)))
    wraps = {a: {n: draw(digests) for n in names} for a in approvers}
    return KeySet(threshold=threshold, approvers=tuple(approvers), wraps=wraps)


@st.composite
def directory_links(draw: st.DrawFn) -> DirectoryLink:
    seq = draw(st.integers(min_value=0, max_value=10_000))
    approver = ApproverRecord(
        id=draw(id_of(ids.APPROVER)),
        name=draw(text),
        kind=draw(st.sampled_from(["browser", "terminal", "automated"])),
        tier=draw(st.sampled_from(["synced", "device"])),
        hpke_pk=draw(hpke_keys),
        sig_pk=draw(sig_keys),
    )
    return DirectoryLink(
        vault=draw(id_of(ids.VAULT)),
        seq=seq,
        prev=None if seq == 0 else draw(digests),
        op="add" if seq == 0 else draw(st.sampled_from(["add", "remove", "update"])),
        approver=approver,
        at=draw(ts),
    )


def _through_bytes(obj: Any) -> Any:
    """Serialise to the canonical bytes a signer would sign, parse back."""
    from sealbox.crypto.encoding import parse_canonical_json

    return type(obj).from_json(parse_canonical_json(canonical_json(obj.to_json())))


@given(contexts)
def test_property_request_context_round_trip(obj: RequestContext) -> None:
    assert _through_bytes(obj) == obj


@given(access_items)
def test_property_access_item_round_trip(obj: AccessItem) -> None:
    assert _through_bytes(obj) == obj


@given(access_statements())
def test_property_access_statement_round_trip(obj: AccessStatement) -> None:
    assert _through_bytes(obj) == obj


@given(keysets())
def test_property_keyset_round_trip(obj: KeySet) -> None:
    assert _through_bytes(obj) == obj


@given(directory_links())
def test_property_directory_link_round_trip(obj: DirectoryLink) -> None:
    assert _through_bytes(obj) == obj


@given(directory_links())
def test_property_directory_link_signed_round_trip(obj: DirectoryLink) -> None:
    token = sign_statement(obj, SIG, obj.approver.id)
    assert verify_statement(token, DirectoryLink, SIG.verify_key(), obj.approver.id) == obj


@given(keysets(), st.data())
def test_property_keyset_threshold_above_approvers_is_refused(
    ks: KeySet, data: st.DataObject
) -> None:
    value = ks.to_json()
    value["threshold"] = data.draw(st.integers(len(ks.approvers) + 1, 255))
    with pytest.raises(MalformedInput):
        KeySet.from_json(value)


def test_versions_stop_at_the_32_bit_limit() -> None:
    from sealbox.protocol.statements import MAX_VERSION

    ok = {"item": ITM, "path": "app/prod/db", "version": MAX_VERSION, "fields": ["a"]}
    assert AccessItem.from_json(ok).version == MAX_VERSION
    with pytest.raises(MalformedInput, match="version"):
        AccessItem.from_json({**ok, "version": MAX_VERSION + 1})


@pytest.mark.parametrize(
    ("details", "why"),
    [
        (["a list"], "JSON object"),
        ({"ratio": 0.5}, "canonical JSON"),
        ({"blob": "x" * 9000}, "8192 bytes"),
    ],
    ids=["not-an-object", "float", "too-big"],
)
def test_consent_request_details_are_bounded(details: Any, why: str) -> None:
    bad = dict(CONSENT_REQUEST.to_json(), details=details)
    with pytest.raises(MalformedInput, match=why):
        ConsentRequestStatement.from_json(bad)


def test_consent_request_ttl_is_bounded() -> None:
    for ttl in (0, 3601):
        with pytest.raises(MalformedInput, match="ttl"):
            ConsentRequestStatement.from_json(dict(CONSENT_REQUEST.to_json(), ttl=ttl))


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"hours": ["mon-fri 9:00-18:00 Europe/Berlin"]}, "not a time window"),
        ({"hours": ["fri,mon-thu 09:00-18:00 UTC"]}, "canonical"),
        ({"max_reads": "10/60m"}, "canonical"),
        ({"max_reads": "ten"}, "read-rate cap"),
        ({"cosigner": APV[0].replace(APV[0][-1], "z")}, "co-signer"),
        ({"approvers": [APV[1], APV[0]]}, "sorted"),
        ({"threshold": 4}, "threshold"),
        ({"store_needs_approval": 1}, "true or false"),
        ({"rotate_after": 0}, "rotate_after"),
        ({"extra": 1}, "unknown keys"),
    ],
)
def test_a_policy_statement_is_read_strictly(change: dict[str, Any], needle: str) -> None:
    bad = {**POLICY.to_json(), **change}
    with pytest.raises(MalformedInput, match=needle):
        PolicyStatement.from_json(bad)
