"""Access: build_access, verify_access, release, deny, verify_deny, open_release."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from sealbox.crypto import hpke, jws, labels
from sealbox.crypto.encoding import b64u_encode, canonical_json
from sealbox.crypto.keys import HpkePrivateKey
from sealbox.errors import (
    BindingMismatch,
    CertificateInvalid,
    DecryptionFailed,
    Expired,
    MalformedInput,
    ManifestMismatch,
    NotAuthorized,
    SignatureInvalid,
    ThresholdNotMet,
    VersionRollback,
)
from sealbox.protocol import access as ac
from sealbox.protocol import certificates as certs
from sealbox.protocol import ids
from sealbox.protocol import store as st
from sealbox.protocol.statements import (
    AccessItem,
    AccessStatement,
    CacheRequest,
    DenyStatement,
    ReleaseStatement,
    RequestContext,
    sign_statement,
)

NOW = 1_800_000_000
SKEW = certs.CLOCK_SKEW
FOUR = {"host": b"db.internal", "port": b"5432", "user": b"app", "password": b"s3cret"}


# --- helpers --------------------------------------------------------------------------------------


def _share(world: Any, approver: Any, stored: Any, field: str) -> bytes:
    info = st.wrap_info(
        vault=world.vault,
        item=stored.item,
        version=stored.version,
        field=field,
        approver=approver.id,
    )
    return hpke.open_sealed(approver.hpke, stored.upload.wraps[approver.id][field], info)


def _hand_release(
    world: Any,
    request: ac.AccessRequest,
    approver: Any,
    shares: list[dict[str, Any]],
    manifests: list[str],
    *,
    at: int = NOW,
    request_hash: str | None = None,
    vault: str | None = None,
    approver_field: str | None = None,
    epk: Any = None,
) -> str:
    """A release signed by ``approver`` with exactly the given shares, bypassing release()."""
    request_hash = request_hash or request.hash
    plaintext = canonical_json({"format": labels.RELEASE_PLAINTEXT_FORMAT, "shares": shares})
    info = ac.release_info(vault=world.vault, request=request_hash, approver=approver.id)
    statement = ReleaseStatement(
        vault=vault or world.vault,
        request=request_hash,
        approver=approver_field or approver.id,
        manifests=tuple(sorted(st.manifest_hash(m) for m in manifests)),
        blob=hpke.seal(epk or request.statement.epk, plaintext, info),
        cache_until=0,
        at=at,
    )
    return sign_statement(statement, approver.sig, approver.id)


def _entry(world: Any, approver: Any, stored: Any, field: str, **override: Any) -> dict[str, Any]:
    entry = {
        "item": stored.item,
        "version": stored.version,
        "field": field,
        "share": b64u_encode(_share(world, approver, stored, field)),
    }
    entry.update(override)
    return entry


def _resign_access(world: Any, request: ac.AccessRequest, **changes: Any) -> ac.AccessRequest:
    statement = dataclasses.replace(request.statement, **changes)
    token = sign_statement(statement, world.client.key, world.client.id)
    return ac.AccessRequest(
        token=token,
        hash=jws.statement_hash(token),
        statement=statement,
        ephemeral=request.ephemeral,
    )


@pytest.fixture(scope="module")
def m1(world: Any) -> Any:
    """An item every approver holds the whole key of."""
    return world.store(FOUR, threshold=1)


@pytest.fixture(scope="module")
def m2(world: Any) -> Any:
    """A 2-of-3 item."""
    return world.store(FOUR, threshold=2)


# --- happy paths ----------------------------------------------------------------------------------


def test_single_item_single_field(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["password"]))
    out = world.open(request, [world.release(request, world.approvers[0], m1)], m1)
    assert out.values == {m1.item: {"password": b"s3cret"}}
    assert out.versions == {m1.item: 1}
    assert out.cache_until == 0


def test_single_item_four_fields(world: Any, m1: Any) -> None:
    request = world.ask((m1, list(FOUR)))
    out = world.open(request, [world.release(request, world.approvers[2], m1)], m1)
    assert out.values == {m1.item: FOUR}


@pytest.mark.parametrize("index", [0, 1, 2])
def test_m1_any_one_of_three(world: Any, m1: Any, index: int) -> None:
    request = world.ask((m1, ["user", "password"]))
    out = world.open(request, [world.release(request, world.approvers[index], m1)], m1)
    assert out.values == {m1.item: {"user": b"app", "password": b"s3cret"}}


@pytest.mark.parametrize("pair", list(itertools.permutations(range(3), 2)))
def test_2_of_3_any_two(world: Any, m2: Any, pair: tuple[int, int]) -> None:
    request = world.ask((m2, ["host", "password"]))
    releases = [world.release(request, world.approvers[i], m2) for i in pair]
    out = world.open(request, releases, m2)
    assert out.values == {m2.item: {"host": b"db.internal", "password": b"s3cret"}}


def test_2_of_3_with_all_three(world: Any, m2: Any) -> None:
    request = world.ask((m2, ["port"]))
    releases = [world.release(request, a, m2) for a in world.approvers]
    assert world.open(request, releases, m2).values == {m2.item: {"port": b"5432"}}


def test_bundle_of_two_items_with_different_key_sets(world: Any) -> None:
    a0, a1, a2 = world.approvers
    one = world.store({"token": b"t1", "other": b"o"}, threshold=1, holders=[a0.id, a1.id])
    two = world.store({"key": b"k2"}, threshold=2, holders=[a2.id, a0.id, a1.id])
    request = world.ask((one, ["token"]), (two, ["key"]))
    releases = [world.release(request, a, one, two) for a in (a0, a1)]
    out = world.open(request, releases, one, two)
    assert out.values == {one.item: {"token": b"t1"}, two.item: {"key": b"k2"}}
    assert out.versions == {one.item: 1, two.item: 1}
    # a2 holds no share of `one`, so it cannot take part in this bundle.
    with pytest.raises(NotAuthorized, match="holds no share"):
        world.release(request, a2, one, two)


def test_only_requested_fields_are_opened_and_returned(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    a = world.approvers[0]
    release = world.release(request, a, m1)
    out = world.open(request, [release], m1)
    assert out.values == {m1.item: {"user": b"app"}}
    # The sealed blob itself holds one share only.
    rel = jws.verify(release, a.sig.verify_key(), typ=ReleaseStatement.TYP, kid=a.id)
    plaintext = hpke.open_sealed(
        request.ephemeral,
        ReleaseStatement.from_json(rel).blob,
        ac.release_info(vault=world.vault, request=request.hash, approver=a.id),
    )
    shares = ac._parse_release_plaintext(plaintext)
    assert [(i, f) for i, _, f, _ in shares] == [(m1.item, "user")]
    # Material for unrequested fields is not even needed.
    material = {
        m1.item: ac.ItemMaterial(
            manifest=m1.manifest, wraps={"user": m1.upload.wraps[a.id]["user"]}
        )
    }
    assert ac.release(
        world.verify_ask(request), materials=material, directory=world.directory,
        approver=a.id, hpke_key=a.hpke, key=a.sig, now=NOW,
    )  # fmt: skip


def test_explicit_version_and_newer_versions(world: Any) -> None:
    v1 = world.store({"k": b"one"})
    v2 = world.store({"k": b"two"}, item=v1.item, version=2, prev_manifest=v1.manifest)
    request = world.ask((v1, ["k"], 1))
    out = world.open(request, [world.release(request, world.approvers[0], v1)], v1)
    assert out.values == {v1.item: {"k": b"one"}}
    request = world.ask((v2, ["k"], None))
    out = world.open(
        request, [world.release(request, world.approvers[0], v2)], v2, known_versions={v1.item: 2}
    )
    assert out.values == {v1.item: {"k": b"two"}}
    assert out.versions == {v1.item: 2}


def test_cache_until_is_the_earliest(world: Any, m2: Any) -> None:
    request = world.ask((m2, ["user"]), cache=CacheRequest(seconds=3600, scope="user"))
    releases = [
        world.release(request, world.approvers[0], m2, cache_until=NOW + 900),
        world.release(request, world.approvers[1], m2, cache_until=NOW + 60),
    ]
    assert world.open(request, releases, m2).cache_until == NOW + 60


def test_cache_until_never_exceeds_what_the_client_asked(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]), cache=CacheRequest(seconds=30, scope="process-tree"))
    release = world.release(request, world.approvers[0], m1, cache_until=NOW + 900)
    assert world.open(request, [release], m1).cache_until == NOW + 30


def test_no_cache_asked_means_no_cache_whatever_the_release_says(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    release = world.release(request, world.approvers[0], m1, cache_until=NOW + 900)
    assert world.open(request, [release], m1).cache_until == 0


def test_build_access_statement_contents(world: Any, m1: Any) -> None:
    request = ac.build_access(
        client=world.client.id, key=world.client.key, vault=world.vault,
        items=[AccessItem(item=m1.item, path=m1.path, version=None, fields=("user",))],
        purpose="p",
        context=RequestContext(pid=1), now=NOW, cache=CacheRequest(seconds=60, scope="user"),
        ttl=ac.MAX_ACCESS_TTL,
    )  # fmt: skip
    s = request.statement
    assert s.epk == request.ephemeral.public_key()
    assert (s.at, s.exp) == (NOW, NOW + ac.MAX_ACCESS_TTL)
    assert request.hash == jws.statement_hash(request.token)
    verified = world.verify_ask(request)
    assert verified.statement == s
    assert verified.hash == request.hash
    assert verified.certificate.client.id == world.client.id
    # The one-time private key is never part of a printed request.
    assert "ephemeral=" not in repr(request)
    assert "HpkePrivateKey" not in repr(request)


def test_each_request_has_its_own_one_time_key(world: Any, m1: Any) -> None:
    a = world.ask((m1, ["user"]))
    b = world.ask((m1, ["user"]))
    assert a.statement.epk != b.statement.epk
    assert a.statement.jti != b.statement.jti
    assert a.hash != b.hash


@pytest.mark.parametrize("ttl", [0, -1, ac.MAX_ACCESS_TTL + 1])
def test_build_access_ttl_out_of_range(world: Any, m1: Any, ttl: int) -> None:
    with pytest.raises(ValueError, match="ttl"):
        world.ask((m1, ["user"]), ttl=ttl)


def test_build_access_refuses_what_a_verifier_would(world: Any, m1: Any) -> None:
    with pytest.raises(MalformedInput):
        ac.build_access(
            client=world.client.id, key=world.client.key, vault=world.vault, items=[],
            purpose="p", context=RequestContext(), now=NOW,
        )  # fmt: skip
    with pytest.raises(MalformedInput):
        ac.build_access(
            client=world.client.id, key=world.client.key, vault=world.vault,
            items=[AccessItem(item=m1.item, path=m1.path, version=None, fields=("user",))],
            purpose="approve\u202e", context=RequestContext(), now=NOW,
        )  # fmt: skip


# --- verify_access --------------------------------------------------------------------------------


@pytest.mark.parametrize("now", [NOW - SKEW, NOW, NOW + 300])
def test_verify_access_window_edges(world: Any, m1: Any, now: int) -> None:
    assert world.verify_ask(world.ask((m1, ["user"])), now=now)


@pytest.mark.parametrize("now", [NOW - SKEW - 1, NOW + 301])
def test_verify_access_expired_or_future(world: Any, m1: Any, now: int) -> None:
    with pytest.raises(Expired):
        world.verify_ask(world.ask((m1, ["user"])), now=now)


@pytest.mark.parametrize(
    ("at", "exp"), [(NOW, NOW + ac.MAX_ACCESS_TTL + 1), (NOW, NOW - 1), (NOW, NOW)]
)
def test_verify_access_window_out_of_range(world: Any, m1: Any, at: int, exp: int) -> None:
    request = _resign_access(world, world.ask((m1, ["user"])), at=at, exp=exp)
    with pytest.raises(MalformedInput, match="validity window"):
        world.verify_ask(request, now=NOW - 1)


def test_verify_access_signed_by_another_client(world: Any, kit: Any, m1: Any) -> None:
    other = kit.new_client("mallory")
    request = world.ask((m1, ["user"]), client=other)
    with pytest.raises(NotAuthorized, match="certified client"):
        world.verify_ask(request)
    forged = sign_statement(world.ask((m1, ["user"])).statement, other.key, world.client.id)
    with pytest.raises(SignatureInvalid):
        ac.verify_access(forged, directory=world.directory, certificate=world.cert, now=NOW)


@pytest.mark.parametrize("change", ["client", "vault"])
def test_verify_access_client_or_vault_mismatch(world: Any, m1: Any, change: str) -> None:
    value = ids.new_id(ids.CLIENT if change == "client" else ids.VAULT)
    request = _resign_access(world, world.ask((m1, ["user"])), **{change: value})
    with pytest.raises(BindingMismatch, match="client or vault"):
        world.verify_ask(request)


def test_verify_access_with_bad_certificate(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    with pytest.raises(CertificateInvalid):
        ac.verify_access(request.token, directory=world.directory, certificate="x.y.z", now=NOW)


# --- release (approver side) ----------------------------------------------------------------------


def _release(world: Any, request: Any, approver: Any, materials: Any, now: int = NOW) -> str:
    return ac.release(
        world.verify_ask(request), materials=materials, directory=world.directory,
        approver=approver.id, hpke_key=approver.hpke, key=approver.sig, now=now,
    )  # fmt: skip


def test_release_after_expiry(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    verified = world.verify_ask(request)
    a = world.approvers[0]
    with pytest.raises(Expired):
        ac.release(
            verified, materials=world.materials(a.id, m1), directory=world.directory,
            approver=a.id, hpke_key=a.hpke, key=a.sig, now=NOW + 301,
        )  # fmt: skip


def test_release_with_wrong_signing_key(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    a, b = world.approvers[0], world.approvers[1]
    with pytest.raises(ValueError, match="directory key"):
        ac.release(
            world.verify_ask(request), materials=world.materials(a.id, m1),
            directory=world.directory, approver=a.id, hpke_key=a.hpke, key=b.sig, now=NOW,
        )  # fmt: skip


def test_release_with_missing_material(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    with pytest.raises(BindingMismatch, match="no manifest supplied"):
        _release(world, request, world.approvers[0], {})


def test_release_by_approver_not_holding_shares(world: Any) -> None:
    a0, a1, a2 = world.approvers
    stored = world.store({"x": b"1"}, holders=[a0.id, a1.id])
    request = world.ask((stored, ["x"]))
    wraps = {"x": stored.upload.wraps[a0.id]["x"]}
    with pytest.raises(NotAuthorized, match="holds no share"):
        _release(world, request, a2, {stored.item: ac.ItemMaterial(stored.manifest, wraps)})


def test_release_by_non_member(world: Any, kit: Any, m1: Any) -> None:
    stranger = kit.new_approver("stranger")
    request = world.ask((m1, ["user"]))
    with pytest.raises(NotAuthorized):
        _release(world, request, stranger, world.materials(world.approvers[0].id, m1))


@pytest.mark.parametrize("change", ["missing", "other approver's", "other field's", "altered"])
def test_release_with_wrong_wrap(world: Any, m1: Any, change: str) -> None:
    a0, a1 = world.approvers[0], world.approvers[1]
    wraps = dict(m1.upload.wraps[a0.id])
    if change == "missing":
        del wraps["user"]
    elif change == "other approver's":
        wraps["user"] = m1.upload.wraps[a1.id]["user"]
    elif change == "other field's":
        wraps["user"] = wraps["password"]
    else:
        wraps["user"] = wraps["user"][:-1] + bytes([wraps["user"][-1] ^ 1])
    request = world.ask((m1, ["user"]))
    with pytest.raises(ManifestMismatch, match="not the signed one"):
        _release(world, request, a0, {m1.item: ac.ItemMaterial(m1.manifest, wraps)})


def test_release_manifest_of_another_item(world: Any, m1: Any, m2: Any) -> None:
    a = world.approvers[0]
    request = world.ask((m1, ["user"]))
    materials = {m1.item: ac.ItemMaterial(m2.manifest, m2.upload.wraps[a.id])}
    with pytest.raises(BindingMismatch, match="another item"):
        _release(world, request, a, materials)


def test_release_version_mismatch_with_explicit_version(world: Any) -> None:
    v1 = world.store({"k": b"one"})
    v2 = world.store({"k": b"two"}, item=v1.item, version=2, prev_manifest=v1.manifest)
    a = world.approvers[0]
    request = world.ask((v1, ["k"], 1))
    with pytest.raises(BindingMismatch, match="not asked for"):
        _release(world, request, a, world.materials(a.id, v2))
    # and the client refuses a version-2 manifest served for a version-1 request
    good = world.release(request, a, v1)
    with pytest.raises(BindingMismatch, match="not asked for"):
        world.open(
            request,
            [good],
            manifests={v1.item: v2.manifest},
            ciphertexts={v1.item: v2.upload.ciphertexts},
        )


def test_requesting_a_field_the_item_does_not_have(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user", "zzz"]))
    with pytest.raises(ManifestMismatch, match="no field"):
        _release(world, request, world.approvers[0], world.materials(world.approvers[0].id, m1))
    with pytest.raises(ManifestMismatch, match="no field"):
        world.open(request, [], m1)


def test_release_with_forged_manifest(world: Any, kit: Any, m1: Any) -> None:
    stranger = kit.new_approver("s")
    forged = jws.sign(
        stranger.sig, ReleaseStatement.TYP.replace("release", "item"), stranger.id, {}
    )
    request = world.ask((m1, ["user"]))
    a = world.approvers[0]
    with pytest.raises(NotAuthorized):
        _release(world, request, a, {m1.item: ac.ItemMaterial(forged, m1.upload.wraps[a.id])})


# --- open_release (client side) -------------------------------------------------------------------


def test_fewer_than_m_releases(world: Any, m2: Any) -> None:
    request = world.ask((m2, ["user"]))
    one = world.release(request, world.approvers[1], m2)
    with pytest.raises(ThresholdNotMet, match="1 of 2"):
        world.open(request, [one], m2)
    with pytest.raises(ThresholdNotMet):
        world.open(request, [], m2)


def test_no_release_and_no_items(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    empty = dataclasses.replace(request, statement=dataclasses.replace(request.statement, items=()))
    with pytest.raises(ThresholdNotMet, match="no release"):
        world.open(empty, [], m1)


def test_duplicate_release_of_same_approver(world: Any, m2: Any) -> None:
    request = world.ask((m2, ["user"]))
    a = world.approvers[0]
    r1 = world.release(request, a, m2)
    r2 = world.release(request, a, m2)  # a second, different release by the same approver
    assert r1 != r2
    for releases in ([r1, r1], [r1, r2]):
        with pytest.raises(BindingMismatch, match="two releases"):
            world.open(request, releases, m2)


def test_release_for_another_request(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    other = world.ask((m1, ["user"]))
    with pytest.raises(BindingMismatch, match="another request"):
        world.open(request, [world.release(other, world.approvers[0], m1)], m1)


def test_release_sealed_to_another_key(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    a = world.approvers[0]
    rel = _hand_release(
        world, request, a, [_entry(world, a, m1, "user")], [m1.manifest],
        epk=HpkePrivateKey.generate().public_key(),
    )  # fmt: skip
    with pytest.raises(DecryptionFailed):
        world.open(request, [rel], m1)


def test_hand_release_matches_release(world: Any, m1: Any) -> None:
    """The hand-built releases used below are accepted when honest."""
    request = world.ask((m1, ["user"]))
    a = world.approvers[0]
    rel = _hand_release(world, request, a, [_entry(world, a, m1, "user")], [m1.manifest])
    assert world.open(request, [rel], m1).values == {m1.item: {"user": b"app"}}


def test_manifest_rollback(world: Any) -> None:
    v1 = world.store({"k": b"one"})
    request = world.ask((v1, ["k"]))
    rel = world.release(request, world.approvers[0], v1)
    with pytest.raises(VersionRollback):
        world.open(request, [rel], v1, known_versions={v1.item: 2})
    assert world.open(request, [rel], v1, known_versions={v1.item: 1})
    assert world.open(request, [rel], v1, known_versions={ids.new_id(ids.ITEM): 9})


def test_ciphertext_altered(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user", "password"]))
    rel = world.release(request, world.approvers[0], m1)
    cts = dict(m1.upload.ciphertexts)
    cts["password"] = cts["password"][:-1] + bytes([cts["password"][-1] ^ 1])
    with pytest.raises(ManifestMismatch, match="not the signed one"):
        world.open(request, [rel], m1, ciphertexts={m1.item: cts})
    swapped = dict(cts, password=m1.upload.ciphertexts["user"])
    with pytest.raises(ManifestMismatch):
        world.open(request, [rel], m1, ciphertexts={m1.item: swapped})


def test_ciphertext_missing(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user", "password"]))
    rel = world.release(request, world.approvers[0], m1)
    cts = {k: v for k, v in m1.upload.ciphertexts.items() if k != "user"}
    with pytest.raises(ManifestMismatch):
        world.open(request, [rel], m1, ciphertexts={m1.item: cts})
    with pytest.raises(ManifestMismatch):
        world.open(request, [rel], m1, ciphertexts={})


def test_manifest_missing(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    rel = world.release(request, world.approvers[0], m1)
    with pytest.raises(BindingMismatch, match="no manifest served"):
        world.open(request, [rel], m1, manifests={})


def test_release_vouching_for_other_manifests(world: Any) -> None:
    v1 = world.store({"k": b"one"})
    v1b = world.store({"k": b"other"}, item=v1.item)  # a second version-1 manifest
    request = world.ask((v1, ["k"]))
    rel = world.release(request, world.approvers[0], v1)
    with pytest.raises(BindingMismatch, match="other item versions"):
        world.open(request, [rel], v1b)


def test_release_after_request_expiry(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    a = world.approvers[0]
    entries = [_entry(world, a, m1, "user")]
    late = _hand_release(world, request, a, entries, [m1.manifest], at=NOW + 300 + SKEW + 1)
    with pytest.raises(Expired):
        world.open(request, [late], m1)
    edge = _hand_release(world, request, a, entries, [m1.manifest], at=NOW + 300 + SKEW)
    assert world.open(request, [edge], m1)


def test_open_refuses_release_by_non_member(world: Any, kit: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    stranger = kit.new_approver("s")
    rel = _hand_release(world, request, stranger, [], [m1.manifest])
    with pytest.raises(NotAuthorized):
        world.open(request, [rel], m1)


@pytest.mark.parametrize("change", ["approver", "vault"])
def test_release_approver_or_vault_mismatch(world: Any, m1: Any, change: str) -> None:
    request = world.ask((m1, ["user"]))
    a, b = world.approvers[0], world.approvers[1]
    kwargs = {"approver_field": b.id} if change == "approver" else {"vault": ids.new_id(ids.VAULT)}
    rel = _hand_release(world, request, a, [_entry(world, a, m1, "user")], [m1.manifest], **kwargs)
    with pytest.raises(BindingMismatch, match="approver or vault"):
        world.open(request, [rel], m1)


def test_release_from_approver_outside_the_key_set(world: Any) -> None:
    a0, a1, a2 = world.approvers
    stored = world.store({"x": b"1"}, holders=[a0.id, a1.id])
    request = world.ask((stored, ["x"]))
    entry = _entry(world, a0, stored, "x")  # a real share, relayed by a2
    rel = _hand_release(world, request, a2, [entry], [stored.manifest])
    with pytest.raises(NotAuthorized, match="holds no share"):
        world.open(request, [rel], stored)


def test_release_with_a_share_not_asked_for(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    a = world.approvers[0]
    extra = [_entry(world, a, m1, "user"), _entry(world, a, m1, "password")]
    with pytest.raises(BindingMismatch, match="not asked for"):
        world.open(request, [_hand_release(world, request, a, extra, [m1.manifest])], m1)
    twice = [_entry(world, a, m1, "user"), _entry(world, a, m1, "user")]
    with pytest.raises(BindingMismatch, match="not asked for"):
        world.open(request, [_hand_release(world, request, a, twice, [m1.manifest])], m1)


def test_release_missing_a_field(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["password", "user"]))
    a = world.approvers[0]
    rel = _hand_release(world, request, a, [_entry(world, a, m1, "user")], [m1.manifest])
    with pytest.raises(BindingMismatch, match="exactly the fields"):
        world.open(request, [rel], m1)


def test_release_share_of_another_version(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    a = world.approvers[0]
    rel = _hand_release(world, request, a, [_entry(world, a, m1, "user", version=2)], [m1.manifest])
    with pytest.raises(BindingMismatch, match="another version"):
        world.open(request, [rel], m1)


def test_release_share_with_another_holders_x(world: Any, m2: Any) -> None:
    request = world.ask((m2, ["user"]))
    a0, a1 = world.approvers[0], world.approvers[1]
    # a0 relays a1's share as its own: counting it twice would be a forged quorum.
    stolen = _entry(world, a1, m2, "user")
    rel0 = _hand_release(world, request, a0, [stolen], [m2.manifest])
    rel1 = world.release(request, a1, m2)
    with pytest.raises(ManifestMismatch, match="key-set position"):
        world.open(request, [rel0, rel1], m2)


@pytest.mark.parametrize(
    "plaintext",
    [
        {"format": "sealbox.release-shares.v0", "shares": []},
        {"format": labels.RELEASE_PLAINTEXT_FORMAT, "shares": [], "extra": 1},
        {"format": labels.RELEASE_PLAINTEXT_FORMAT, "shares": [{"item": "x"}]},
        {"format": labels.RELEASE_PLAINTEXT_FORMAT},
    ],
)
def test_release_plaintext_strict(world: Any, m1: Any, plaintext: dict[str, Any]) -> None:
    request = world.ask((m1, ["user"]))
    a = world.approvers[0]
    info = ac.release_info(vault=world.vault, request=request.hash, approver=a.id)
    statement = ReleaseStatement(
        vault=world.vault, request=request.hash, approver=a.id, manifests=(m1.hash,),
        blob=hpke.seal(request.statement.epk, canonical_json(plaintext), info), cache_until=0,
        at=NOW,
    )  # fmt: skip
    with pytest.raises(MalformedInput):
        world.open(request, [sign_statement(statement, a.sig, a.id)], m1)


def test_request_for_another_vault_is_refused_on_open(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    moved = dataclasses.replace(
        request, statement=dataclasses.replace(request.statement, vault=ids.new_id(ids.VAULT))
    )
    with pytest.raises(BindingMismatch, match="another item"):
        world.open(moved, [], m1)


def test_open_release_all_or_nothing_for_bundles(world: Any, m1: Any) -> None:
    other = world.store({"z": b"zz"})
    request = world.ask((m1, ["user"]), (other, ["z"]))
    rel = world.release(request, world.approvers[0], m1, other)
    cts = {m1.item: m1.upload.ciphertexts, other.item: {}}
    with pytest.raises(ManifestMismatch):
        world.open(request, [rel], m1, other, ciphertexts=cts)


# --- deny -----------------------------------------------------------------------------------------


def test_deny_and_verify_deny(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    a = world.approvers[2]
    token = ac.deny(
        request.hash, directory=world.directory, approver=a.id, key=a.sig, reason="not now", now=NOW
    )
    statement = ac.verify_deny(token, directory=world.directory, request_hash=request.hash)
    assert statement == DenyStatement(
        vault=world.vault, request=request.hash, approver=a.id, reason="not now", at=NOW
    )


def test_deny_for_another_request(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    other = world.ask((m1, ["user"]))
    a = world.approvers[0]
    token = ac.deny(
        other.hash, directory=world.directory, approver=a.id, key=a.sig, reason="no", now=NOW
    )
    with pytest.raises(BindingMismatch, match="another request"):
        ac.verify_deny(token, directory=world.directory, request_hash=request.hash)


def test_deny_by_non_member_and_forged(world: Any, kit: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    stranger = kit.new_approver("s")
    a, b = world.approvers[0], world.approvers[1]
    deny = DenyStatement(
        vault=world.vault, request=request.hash, approver=stranger.id, reason="x", at=NOW
    )
    with pytest.raises(NotAuthorized):
        ac.verify_deny(
            sign_statement(deny, stranger.sig, stranger.id),
            directory=world.directory,
            request_hash=request.hash,
        )
    with pytest.raises(SignatureInvalid):
        ac.verify_deny(
            sign_statement(dataclasses.replace(deny, approver=a.id), stranger.sig, a.id),
            directory=world.directory, request_hash=request.hash,
        )  # fmt: skip
    with pytest.raises(BindingMismatch, match="approver or vault"):
        ac.verify_deny(
            sign_statement(dataclasses.replace(deny, approver=b.id), a.sig, a.id),
            directory=world.directory, request_hash=request.hash,
        )  # fmt: skip
    with pytest.raises(BindingMismatch, match="approver or vault"):
        ac.verify_deny(
            sign_statement(
                dataclasses.replace(deny, approver=a.id, vault=ids.new_id(ids.VAULT)), a.sig, a.id
            ),
            directory=world.directory,
            request_hash=request.hash,
        )


def test_deny_argument_checks(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    a, b = world.approvers[0], world.approvers[1]
    with pytest.raises(ValueError, match="directory key"):
        ac.deny(
            request.hash, directory=world.directory, approver=a.id, key=b.sig, reason="x", now=NOW
        )
    with pytest.raises(MalformedInput):
        ac.deny(
            request.hash,
            directory=world.directory,
            approver=a.id,
            key=a.sig,
            reason="\x1b[2J",
            now=NOW,
        )
    with pytest.raises(MalformedInput):
        ac.deny(
            "not a hash", directory=world.directory, approver=a.id, key=a.sig, reason="x", now=NOW
        )


def test_access_statement_types_are_not_interchangeable(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    a = world.approvers[0]
    token = ac.deny(
        request.hash, directory=world.directory, approver=a.id, key=a.sig, reason="no", now=NOW
    )
    with pytest.raises(SignatureInvalid, match="statement type"):
        world.open(request, [token], m1)
    assert AccessStatement.TYP != DenyStatement.TYP


def test_release_refuses_what_verifiers_would(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    with pytest.raises(MalformedInput, match="cache_until"):
        world.release(request, world.approvers[0], m1, cache_until=-1)


def test_released_names_path_and_type(world: Any, m1: Any) -> None:
    request = world.ask((m1, ["user"]))
    released = world.open(request, [world.release(request, world.approvers[0], m1)], m1)
    assert released.paths == {m1.item: m1.path}
    assert released.types == {m1.item: "secret"}


def test_access_path_must_match_the_manifest_on_both_sides(world: Any, m1: Any) -> None:
    a = world.approvers[0]
    request = ac.build_access(
        client=world.client.id, key=world.client.key, vault=world.vault,
        items=[AccessItem(item=m1.item, path="app/prod/other", version=None, fields=("user",))],
        purpose="p", context=RequestContext(), now=NOW,
    )  # fmt: skip
    verified = world.verify_ask(request)
    with pytest.raises(BindingMismatch, match="another path"):
        ac.release(
            verified, materials=world.materials(a.id, m1), directory=world.directory,
            approver=a.id, hpke_key=a.hpke, key=a.sig, now=NOW,
        )  # fmt: skip


def test_access_statement_bounds_the_total_number_of_fields(world: Any, m1: Any) -> None:
    s = world.ask((m1, ["user"])).statement
    many = tuple(
        AccessItem(
            item=ids.new_id(ids.ITEM), path="app/prod/x",
            version=None, fields=tuple(sorted(f"f{n:03d}" for n in range(k * 64, k * 64 + 64))),
        )
        for k in range(4)
    )  # fmt: skip
    at_limit = dataclasses.replace(s, items=many)
    assert AccessStatement.from_json(at_limit.to_json()).items == many
    over = dataclasses.replace(s, items=(*many, AccessItem(m1.item, m1.path, None, ("user",))))
    with pytest.raises(MalformedInput, match="more than 256 fields"):
        AccessStatement.from_json(over.to_json())


def test_relay_supplied_shapes_are_checked(world: Any, m1: Any) -> None:
    a = world.approvers[0]
    request = world.ask((m1, ["user"]))
    verified = world.verify_ask(request)
    good = world.materials(a.id, m1)[m1.item]

    def release_with(material: object) -> str:
        return ac.release(
            verified, materials={m1.item: material}, directory=world.directory,  # type: ignore[dict-item]
            approver=a.id, hpke_key=a.hpke, key=a.sig, now=NOW,
        )  # fmt: skip

    with pytest.raises(BindingMismatch, match="no manifest"):
        release_with(good.manifest)
    with pytest.raises(MalformedInput, match="mapping of names to bytes"):
        release_with(ac.ItemMaterial(manifest=good.manifest, wraps={"user": "text"}))  # type: ignore[dict-item]
    release = release_with(good)
    with pytest.raises(MalformedInput, match="mapping of names to bytes"):
        ac.open_release(
            request, releases=[release], manifests={m1.item: m1.manifest},
            ciphertexts={m1.item: {"user": "text"}},  # type: ignore[dict-item]
            directory=world.directory,
        )  # fmt: skip
    with pytest.raises(BindingMismatch, match="no manifest"):
        ac.open_release(
            request, releases=[release], manifests={m1.item: 5},  # type: ignore[dict-item]
            ciphertexts={m1.item: dict(m1.upload.ciphertexts)}, directory=world.directory,
        )  # fmt: skip
