"""Storing: build_store, verify_store, sign_manifest, verify_manifest, store_as_approver."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from sealbox.crypto import hpke, jws
from sealbox.crypto.keys import SigningKey
from sealbox.errors import (
    BindingMismatch,
    CertificateInvalid,
    DecryptionFailed,
    Expired,
    MalformedInput,
    ManifestMismatch,
    NotAuthorized,
    SignatureInvalid,
)
from sealbox.protocol import certificates as certs
from sealbox.protocol import directory as dr
from sealbox.protocol import ids
from sealbox.protocol import store as st
from sealbox.protocol.statements import (
    ClientConstraints,
    ItemManifest,
    KeySet,
    RequestContext,
    sign_statement,
)

NOW = 1_800_000_000
SKEW = certs.CLOCK_SKEW


@pytest.mark.parametrize("threshold", [1, 2, 3])
def test_store_happy_path_every_holder_verifies(world: Any, threshold: int) -> None:
    upload = world.upload(threshold=threshold)
    for index, a in enumerate(world.approvers):
        verified = world.verify_upload(upload, by=index)
        assert verified.hash == jws.statement_hash(upload.statement)
        assert verified.certificate.client == world.client.info
        s = verified.statement
        assert s.keyset.threshold == threshold
        assert s.keyset.approvers == tuple(x.id for x in world.approvers)
        assert set(s.fields) == {"user", "password"}
        manifest = st.sign_manifest(
            verified, directory=world.directory, approver=a.id, key=a.sig, now=NOW
        )
        m = st.verify_manifest(manifest, world.directory)
        assert m.store_request == verified.hash
        assert (m.item, m.path, m.version, m.prev, m.type) == (s.item, s.path, 1, None, "secret")
        assert m.fields == s.fields
        assert m.keyset == s.keyset
        assert st.manifest_hash(manifest) == jws.statement_hash(manifest)


def test_store_uses_fresh_keys_and_nonces(world: Any) -> None:
    upload = world.upload({"a": b"same", "b": b"same"})
    assert upload.ciphertexts["a"] != upload.ciphertexts["b"]
    s = world.verify_upload(upload).statement
    assert s.fields["a"].nonce != s.fields["b"].nonce
    assert b"same" not in b"".join(upload.ciphertexts.values())


def test_store_subset_of_approvers(world: Any) -> None:
    holders = [world.approvers[2].id, world.approvers[0].id]
    upload = world.upload(holders=holders, threshold=2)
    assert set(upload.wraps) == set(holders)
    world.verify_upload(upload, by=2)
    world.verify_upload(upload, by=0)
    with pytest.raises(NotAuthorized, match="holds no share"):
        world.verify_upload(upload, by=1)


def test_statement_signed_by_another_client(world: Any, kit: Any) -> None:
    other = kit.new_client("mallory")
    upload = world.upload(client=other)
    with pytest.raises(NotAuthorized, match="not signed by the certified client"):
        world.verify_upload(upload)


def test_statement_signed_by_another_key_under_the_client_id(world: Any) -> None:
    upload = world.resign_store(world.upload(), key=SigningKey.generate())
    with pytest.raises(SignatureInvalid):
        world.verify_upload(upload)


def test_statement_client_or_vault_differs_from_certificate(world: Any) -> None:
    upload = world.upload()
    for change in ({"client": ids.new_id(ids.CLIENT)}, {"vault": ids.new_id(ids.VAULT)}):
        with pytest.raises(BindingMismatch, match="client or vault"):
            world.verify_upload(world.resign_store(upload, **change))


def test_invalid_certificate(world: Any) -> None:
    with pytest.raises(CertificateInvalid, match="not valid at this time"):
        world.verify_upload(world.upload(), now=NOW + 365 * 86400)


@pytest.mark.parametrize("now", [NOW - SKEW, NOW, NOW + 300])
def test_store_window_edges(world: Any, now: int) -> None:
    assert world.verify_upload(world.upload(), now=now)


@pytest.mark.parametrize("now", [NOW - SKEW - 1, NOW + 301])
def test_store_expired_or_future(world: Any, now: int) -> None:
    with pytest.raises(Expired):
        world.verify_upload(world.upload(), now=now)


def test_store_ttl_too_long(world: Any) -> None:
    upload = world.upload()
    ok = world.resign_store(upload, exp=NOW + st.MAX_STORE_TTL)
    assert world.verify_upload(ok)
    too_long = world.resign_store(upload, exp=NOW + st.MAX_STORE_TTL + 1)
    with pytest.raises(MalformedInput, match="validity window"):
        world.verify_upload(too_long)


def test_store_exp_before_at(world: Any) -> None:
    upload = world.resign_store(world.upload(), at=NOW, exp=NOW - 1)
    with pytest.raises(MalformedInput, match="validity window"):
        world.verify_upload(upload, now=NOW - 1)


def test_keyset_approver_not_in_directory(fresh_world: Any) -> None:
    w = fresh_world
    upload = w.upload()
    first = w.approvers[0]
    links = [
        *w.links,
        dr.append_link(
            w.directory, "remove", w.approvers[2].record, signer=first.id, key=first.sig, now=NOW
        ),
    ]
    w.directory = dr.verify_directory(links, pinned=w.fingerprint)
    with pytest.raises(NotAuthorized, match="not a current approver"):
        w.verify_upload(upload, by=0)


def test_altered_ciphertext(world: Any) -> None:
    upload = world.upload()
    cts = dict(upload.ciphertexts)
    cts["password"] = bytes([cts["password"][0] ^ 1]) + cts["password"][1:]
    with pytest.raises(ManifestMismatch, match="password"):
        world.verify_upload(dataclasses.replace(upload, ciphertexts=cts))


@pytest.mark.parametrize("change", ["missing", "extra", "swapped"])
def test_ciphertexts_not_matching_fields(world: Any, change: str) -> None:
    upload = world.upload()
    cts = dict(upload.ciphertexts)
    if change == "missing":
        del cts["user"]
    elif change == "extra":
        cts["token"] = b"\x00" * 32
    else:
        cts["user"], cts["password"] = cts["password"], cts["user"]
    with pytest.raises(ManifestMismatch):
        world.verify_upload(dataclasses.replace(upload, ciphertexts=cts))


@pytest.mark.parametrize(
    "change",
    ["missing approver", "extra approver", "missing field", "extra field", "altered", "swapped"],
)
def test_wraps_not_matching_keyset(world: Any, change: str) -> None:
    upload = world.upload(threshold=2)
    a1, a2 = world.approvers[1].id, world.approvers[2].id
    wraps = {a: dict(w) for a, w in upload.wraps.items()}
    if change == "missing approver":
        del wraps[a2]
    elif change == "extra approver":
        wraps[ids.new_id(ids.APPROVER)] = dict(wraps[a2])
    elif change == "missing field":
        del wraps[a1]["user"]
    elif change == "extra field":
        wraps[a1]["token"] = wraps[a1]["user"]
    elif change == "altered":
        blob = wraps[a1]["user"]
        wraps[a1]["user"] = blob[:-1] + bytes([blob[-1] ^ 1])
    else:
        wraps[a1], wraps[a2] = wraps[a2], wraps[a1]
    with pytest.raises(ManifestMismatch):
        world.verify_upload(dataclasses.replace(upload, wraps=wraps), by=0)


def _with_own_wrap(world: Any, upload: st.StoreUpload, field: str, blob: bytes) -> st.StoreUpload:
    """Replace approver 0's wrap of ``field`` and sign matching hashes, as a lying client can."""
    a0 = world.approvers[0].id
    wraps = {a: dict(w) for a, w in upload.wraps.items()}
    wraps[a0][field] = blob
    statement = world.verify_upload(upload).statement
    keyset = KeySet(
        threshold=statement.keyset.threshold,
        approvers=statement.keyset.approvers,
        wraps={a: {f: st.wrap_hash(b) for f, b in w.items()} for a, w in wraps.items()},
    )
    resigned = world.resign_store(upload, keyset=keyset)
    return dataclasses.replace(resigned, wraps=wraps)


def _seal_to(
    world: Any, upload: st.StoreUpload, field: str, share: bytes, *, approver: int = 0
) -> bytes:
    statement = world.verify_upload(upload).statement
    a = world.approvers[approver]
    info = st.wrap_info(
        vault=world.vault,
        item=statement.item,
        version=1,
        field=field,
        approver=world.approvers[0].id,
    )
    return hpke.seal(a.record.hpke_pk, share, info)


def test_m1_client_seals_a_key_that_does_not_open_the_field(world: Any) -> None:
    upload = world.upload(threshold=1)
    wrong_share = b"\x01" + bytes(range(32))  # right position, wrong key
    lying = _with_own_wrap(
        world, upload, "password", _seal_to(world, upload, "password", wrong_share)
    )
    with pytest.raises(DecryptionFailed):
        world.verify_upload(lying, by=0)
    # Another holder cannot tell: its own share is fine.
    assert world.verify_upload(lying, by=1)


def test_share_with_another_holders_position(world: Any) -> None:
    upload = world.upload(threshold=2)
    bad = _with_own_wrap(
        world, upload, "user", _seal_to(world, upload, "user", b"\x02" + bytes(32))
    )
    with pytest.raises(ManifestMismatch, match="key-set position"):
        world.verify_upload(bad, by=0)


def test_share_of_wrong_length(world: Any) -> None:
    upload = world.upload(threshold=2)
    bad = _with_own_wrap(
        world, upload, "user", _seal_to(world, upload, "user", b"\x01" + bytes(31))
    )
    with pytest.raises(MalformedInput, match="share"):
        world.verify_upload(bad, by=0)


def test_share_sealed_to_another_approver(world: Any) -> None:
    upload = world.upload(threshold=2)
    blob = _seal_to(world, upload, "user", b"\x01" + bytes(32), approver=1)
    bad = _with_own_wrap(world, upload, "user", blob)
    with pytest.raises(DecryptionFailed):
        world.verify_upload(bad, by=0)


def test_share_moved_between_fields(world: Any) -> None:
    upload = world.upload(threshold=1)
    a0 = world.approvers[0].id
    bad = _with_own_wrap(world, upload, "user", upload.wraps[a0]["password"])
    with pytest.raises(DecryptionFailed):
        world.verify_upload(bad, by=0)


# --- version chain ---------------------------------------------------------------------------


def test_version_chain(world: Any) -> None:
    v1 = world.store(threshold=2)
    v2 = world.store(
        {"password": b"rotated"}, threshold=2, item=v1.item, version=2, prev_manifest=v1.manifest
    )
    m2 = st.verify_manifest(v2.manifest, world.directory)
    assert m2.version == 2
    assert m2.prev == v1.hash
    v3 = world.store({"password": b"again"}, item=v1.item, version=3, prev_manifest=v2.manifest)
    assert st.verify_manifest(v3.manifest, world.directory).prev == v2.hash


def test_version_2_without_prev_manifest(world: Any) -> None:
    v1 = world.store()
    upload = world.upload(item=v1.item, version=2, prev=v1.hash)
    with pytest.raises(BindingMismatch, match="without the previous manifest"):
        world.verify_upload(upload)


def test_version_2_with_wrong_prev_hash(world: Any) -> None:
    v1 = world.store()
    other = world.store(item=v1.item)  # another version-1 manifest of the same item
    upload = world.upload(item=v1.item, version=2, prev=other.hash)
    with pytest.raises(BindingMismatch, match="does not follow"):
        world.verify_upload(upload, prev_manifest=v1.manifest)


def test_version_skipping(world: Any) -> None:
    v1 = world.store()
    upload = world.upload(item=v1.item, version=3, prev=v1.hash)
    with pytest.raises(BindingMismatch, match="does not follow"):
        world.verify_upload(upload, prev_manifest=v1.manifest)


def test_version_1_with_a_prev_manifest(world: Any) -> None:
    v1 = world.store()
    upload = world.upload(item=v1.item, version=1)
    with pytest.raises(BindingMismatch):
        world.verify_upload(upload, prev_manifest=v1.manifest)


def test_prev_manifest_of_another_item_or_path(world: Any) -> None:
    v1 = world.store()
    upload = world.upload(version=2, prev=v1.hash)  # fresh item id
    with pytest.raises(BindingMismatch, match="another item"):
        world.verify_upload(upload, prev_manifest=v1.manifest)
    moved = world.upload(item=v1.item, path="app/prod/other", version=2, prev=v1.hash)
    with pytest.raises(BindingMismatch, match="another item"):
        world.verify_upload(moved, prev_manifest=v1.manifest)


def test_prev_manifest_not_signed_by_an_approver(world: Any, kit: Any) -> None:
    v1 = world.store()
    stranger = kit.new_approver("s")
    m = st.verify_manifest(v1.manifest, world.directory)
    forged = sign_statement(m, stranger.sig, stranger.id)
    upload = world.upload(item=v1.item, version=2, prev=st.manifest_hash(forged))
    with pytest.raises(NotAuthorized):
        world.verify_upload(upload, prev_manifest=forged)


# --- verify_manifest ---------------------------------------------------------------------------


def test_verify_manifest_rejections(world: Any, kit: Any) -> None:
    stored = world.store()
    m = st.verify_manifest(stored.manifest, world.directory)
    a = world.approvers[0]
    stranger = kit.new_approver("s")
    with pytest.raises(NotAuthorized):
        st.verify_manifest(sign_statement(m, stranger.sig, stranger.id), world.directory)
    with pytest.raises(SignatureInvalid):
        st.verify_manifest(sign_statement(m, stranger.sig, a.id), world.directory)
    with pytest.raises(BindingMismatch, match="another vault"):
        st.verify_manifest(
            sign_statement(dataclasses.replace(m, vault=ids.new_id(ids.VAULT)), a.sig, a.id),
            world.directory,
        )
    outsider = ids.new_id(ids.APPROVER)
    keyset = KeySet(
        threshold=1,
        approvers=(*m.keyset.approvers, outsider),
        wraps={**m.keyset.wraps, outsider: m.keyset.wraps[a.id]},
    )
    # A key set may name an approver no longer in the directory (removed since the
    # store): the manifest still verifies; that approver's releases never count.
    assert (
        st.verify_manifest(
            sign_statement(dataclasses.replace(m, keyset=keyset), a.sig, a.id), world.directory
        ).keyset.approvers[-1]
        == outsider
    )
    with pytest.raises(SignatureInvalid, match="statement type"):
        st.verify_manifest(jws.sign(a.sig, "sealbox.store.v1", a.id, m.to_json()), world.directory)
    with pytest.raises(MalformedInput):
        st.verify_manifest("garbage", world.directory)


def test_sign_manifest_with_wrong_key(world: Any) -> None:
    verified = world.verify_upload(world.upload())
    a, b = world.approvers[0], world.approvers[1]
    with pytest.raises(ValueError, match="directory key"):
        st.sign_manifest(verified, directory=world.directory, approver=a.id, key=b.sig, now=NOW)


def test_build_store_argument_checks(world: Any) -> None:
    with pytest.raises(ValueError, match="at least one field"):
        world.upload({})
    with pytest.raises(ValueError, match="distinct"):
        world.upload(holders=[world.approvers[0].id, world.approvers[0].id])
    with pytest.raises(ValueError, match="threshold"):
        world.upload(threshold=4)
    with pytest.raises(ValueError, match="threshold"):
        world.upload(threshold=0)
    with pytest.raises(MalformedInput, match="field name"):
        world.upload({"bad name": b"x"})
    with pytest.raises(NotAuthorized):
        world.upload(holders=[ids.new_id(ids.APPROVER)])
    with pytest.raises(MalformedInput):
        world.upload(path="not/a/valid/path")


def test_parse_share() -> None:
    ks = KeySet(threshold=1, approvers=("apv_" + "a" * 26, "apv_" + "b" * 26), wraps={})
    assert st.parse_share(b"\x02" + bytes(32), keyset=ks, approver="apv_" + "b" * 26)
    with pytest.raises(ManifestMismatch):
        st.parse_share(b"\x01" + bytes(32), keyset=ks, approver="apv_" + "b" * 26)
    with pytest.raises(MalformedInput):
        st.parse_share(b"\x02" + bytes(33), keyset=ks, approver="apv_" + "b" * 26)


# --- an approver stores itself ------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [1, 2])
def test_store_as_approver_then_access(world: Any, kit: Any, threshold: int) -> None:
    a = world.approvers[1]
    item = ids.new_id(ids.ITEM)
    direct = st.store_as_approver(
        directory=world.directory, approver=a.id, key=a.sig, item=item, path="web/prod/tls",
        version=1, prev=None, values={"key": b"-----BEGIN", "cert": b"chain"},
        approvers=[x.id for x in world.approvers], threshold=threshold, now=NOW,
        item_type="managed",
    )  # fmt: skip
    m = st.verify_manifest(direct.manifest, world.directory)
    assert m.store_request is None
    assert m.type == "managed"
    assert jws.read_header(direct.manifest).kid == a.id
    stored = kit.Stored(
        item=item, path="web/prod/tls", version=1,
        upload=st.StoreUpload(statement="", ciphertexts=direct.ciphertexts, wraps=direct.wraps),
        manifest=direct.manifest, threshold=threshold, holders=m.keyset.approvers,
    )  # fmt: skip
    request = world.ask((stored, ["cert", "key"]))
    releases = [world.release(request, x, stored) for x in world.approvers[:threshold]]
    out = world.open(request, releases, stored)
    assert out.values == {item: {"key": b"-----BEGIN", "cert": b"chain"}}


def test_store_as_approver_checks(world: Any) -> None:
    a, b = world.approvers[0], world.approvers[1]
    kwargs: dict[str, Any] = {
        "directory": world.directory, "item": ids.new_id(ids.ITEM), "path": "a/b/c",
        "version": 1, "prev": None, "values": {"x": b"1"}, "approvers": [a.id], "threshold": 1,
        "now": NOW,
    }  # fmt: skip
    with pytest.raises(ValueError, match="directory key"):
        st.store_as_approver(approver=a.id, key=b.sig, **kwargs)
    with pytest.raises(MalformedInput, match="prev is null exactly for version 1"):
        st.store_as_approver(approver=a.id, key=a.sig, **{**kwargs, "version": 2})


def test_store_by_enrolled_machine(world: Any) -> None:
    a = world.approvers[0]
    delegation = SigningKey.generate()
    from sealbox.protocol.statements import ClientInfo, EnrollmentConstraints

    enrollment = certs.issue_enrollment(
        world.directory, issuer=a.id, key=a.sig, enrollment_id=ids.new_id(ids.ENROLLMENT),
        delegation_key=delegation.verify_key(),
        constraints=EnrollmentConstraints(
            projects=("app",), items=("app/*/*",), max_uses=1, not_after=NOW + 3600
        ),
        now=NOW,
    )  # fmt: skip
    machine_key = SigningKey.generate()
    machine = ClientInfo(
        id=ids.new_id(ids.CLIENT), kind="machine", name="ci", sig_pk=machine_key.verify_key()
    )
    cert = certs.issue_machine_certificate(
        certs.verify_enrollment(enrollment, world.directory, now=NOW), delegation_key=delegation,
        client=machine, scopes=["write"], constraints=ClientConstraints(not_after=NOW + 600),
        now=NOW,
    )  # fmt: skip
    upload = st.build_store(
        client=machine.id, key=machine_key, directory=world.directory, item=ids.new_id(ids.ITEM),
        path="app/ci/token", version=1, prev=None, values={"token": b"t"},
        approvers=[a.id], threshold=1, purpose="ci", context=RequestContext(), now=NOW,
    )  # fmt: skip
    verified = st.verify_store(
        upload, directory=world.directory, approver=a.id, hpke_key=a.hpke, certificate=cert,
        now=NOW, enrollment=enrollment,
    )  # fmt: skip
    assert verified.certificate.issuer == jws.read_header(cert).kid
    assert isinstance(
        st.verify_manifest(
            st.sign_manifest(
                verified, directory=world.directory, approver=a.id, key=a.sig, now=NOW
            ),
            world.directory,
        ),
        ItemManifest,
    )


@pytest.mark.parametrize("ttl", [0, -5, st.MAX_STORE_TTL + 1])
def test_build_store_ttl_out_of_range(world: Any, ttl: int) -> None:
    with pytest.raises(ValueError, match="ttl"):
        world.upload(ttl=ttl)


def test_build_store_longest_ttl_verifies(world: Any) -> None:
    upload = world.upload(ttl=st.MAX_STORE_TTL)
    assert world.verify_upload(upload, now=NOW + st.MAX_STORE_TTL)


@pytest.mark.parametrize(("pattern", "ok"), [("build-*", True), ("ci-*", False)])
def test_store_host_is_held_to_the_certificate_pattern(world: Any, pattern: str, ok: bool) -> None:
    a = world.approvers[0]
    cert = certs.issue_certificate(
        world.directory, issuer=a.id, key=a.sig, client=world.client.info, scopes=[],
        constraints=ClientConstraints(not_after=NOW + 86_400, hostname=pattern), now=NOW,
    )  # fmt: skip
    upload = world.upload()  # signed context says host "build-1"
    if ok:
        assert world.verify_upload(upload, cert=cert).statement.context.host == "build-1"
    else:
        with pytest.raises(CertificateInvalid, match="host is outside"):
            world.verify_upload(upload, cert=cert)


def test_upload_shapes_are_checked(world: Any) -> None:
    upload = world.upload()
    bad = st.StoreUpload(
        statement=upload.statement,
        ciphertexts={"user": "text"},
        wraps=upload.wraps,  # type: ignore[dict-item]
    )
    with pytest.raises(MalformedInput, match="mapping of names to bytes"):
        world.verify_upload(bad)
    bad = st.StoreUpload(
        statement=upload.statement,
        ciphertexts=upload.ciphertexts,
        wraps={"x": None},  # type: ignore[dict-item]
    )
    with pytest.raises(MalformedInput, match="mapping of names to bytes"):
        world.verify_upload(bad)
