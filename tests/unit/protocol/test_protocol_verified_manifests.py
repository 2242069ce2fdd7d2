"""Manifests verified once are looked up after that, never trusted beyond their exact inputs.

:class:`~sealbox.protocol.store.VerifiedManifests` may skip a verification only
for the very token already verified against the very same directory head.
Each test here changes one input and shows it is verified (and refused) again.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from sealbox.errors import BindingMismatch, NotAuthorized, SignatureInvalid
from sealbox.protocol import access as ac
from sealbox.protocol import directory as dr
from sealbox.protocol import store as st
from sealbox.protocol.statements import sign_statement


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every real manifest verification, by token."""
    seen: list[str] = []
    real = st.verify_manifest

    def counting(token: Any, directory: dr.Directory) -> Any:
        seen.append(token)
        return real(token, directory)

    monkeypatch.setattr(st, "verify_manifest", counting)
    return seen


def test_the_same_token_and_head_is_verified_once(world: Any, calls: list[str]) -> None:
    stored = world.store()
    known = st.VerifiedManifests()
    first = known.verify(stored.manifest, world.directory)
    again = known.verify(stored.manifest, world.directory)
    assert again == first == st.verify_manifest(stored.manifest, world.directory)
    assert calls == [stored.manifest, stored.manifest]  # once by the cache, once above


def test_a_new_directory_head_verifies_again(fresh_world: Any, kit: Any, calls: list[str]) -> None:
    w = fresh_world
    stored = w.store()
    known = st.VerifiedManifests()
    known.verify(stored.manifest, w.directory)
    newcomer = kit.new_approver("newcomer")
    first = w.approvers[0]
    links = [*w.links, dr.append_link(w.directory, "add", newcomer.record, signer=first.id,
                                      key=first.sig, now=kit.NOW)]  # fmt: skip
    grown = dr.verify_directory(links, pinned=w.fingerprint)
    assert grown.head != w.directory.head
    known.verify(stored.manifest, grown)
    assert calls == [stored.manifest, stored.manifest]


def test_a_signer_removed_at_the_new_head_is_refused(fresh_world: Any, calls: list[str]) -> None:
    w = fresh_world
    signer = w.approvers[0]
    stored = w.store(by=0)
    known = st.VerifiedManifests()
    known.verify(stored.manifest, w.directory)
    other = w.approvers[1]
    links = [*w.links, dr.append_link(w.directory, "remove", signer.record, signer=other.id,
                                      key=other.sig, now=w.directory.links[-1].at + 1)]  # fmt: skip
    shrunk = dr.verify_directory(links, pinned=w.fingerprint)
    with pytest.raises(NotAuthorized):
        known.verify(stored.manifest, shrunk)


def test_a_tampered_token_for_the_same_item_is_refused(
    world: Any, kit: Any, calls: list[str]
) -> None:
    stored = world.store()
    known = st.VerifiedManifests()
    manifest = known.verify(stored.manifest, world.directory)
    a = world.approvers[0]
    forged = sign_statement(dataclasses.replace(manifest, path="app/prod/other"),
                            kit.new_approver("s").sig, a.id)  # fmt: skip
    with pytest.raises(SignatureInvalid):
        known.verify(forged, world.directory)
    header, payload, signature = stored.manifest.split(".")
    flipped = f"{header}.{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"
    with pytest.raises(SignatureInvalid):
        known.verify(flipped, world.directory)
    assert len(known) == 1  # what failed is not kept


def test_release_and_open_share_one_verification_and_check_bindings(
    world: Any, kit: Any, m1: Any, calls: list[str]
) -> None:
    known = st.VerifiedManifests()
    request = world.ask((m1, ["password"]))
    approver = world.approvers[0]
    release = ac.release(
        world.verify_ask(request), materials=world.materials(approver.id, m1),
        directory=world.directory, approver=approver.id, hpke_key=approver.hpke,
        key=approver.sig, now=kit.NOW, verified_manifests=known,
    )  # fmt: skip
    out = ac.open_release(
        request, releases=[release], manifests={m1.item: m1.manifest},
        ciphertexts={m1.item: m1.upload.ciphertexts}, directory=world.directory,
        verified_manifests=known,
    )  # fmt: skip
    assert out.values == {m1.item: {"password": b"s3cret"}}
    assert calls.count(m1.manifest) == 1
    # The manifest is known, but a request for the item at another path is refused:
    # the bindings are checked on every use.
    elsewhere = world.ask((dataclasses.replace(m1, path="app/prod/elsewhere"), ["password"]))
    with pytest.raises(BindingMismatch):
        ac.release(
            world.verify_ask(elsewhere), materials=world.materials(approver.id, m1),
            directory=world.directory, approver=approver.id, hpke_key=approver.hpke,
            key=approver.sig, now=kit.NOW, verified_manifests=known,
        )  # fmt: skip
    with pytest.raises(BindingMismatch):
        ac.open_release(
            elsewhere, releases=[release], manifests={m1.item: m1.manifest},
            ciphertexts={m1.item: m1.upload.ciphertexts}, directory=world.directory,
            verified_manifests=known,
        )  # fmt: skip


@pytest.fixture(scope="module")
def m1(world: Any) -> Any:
    return world.store({"user": b"app", "password": b"s3cret"}, threshold=1)
