"""The approver directory chain: genesis, append, verification, rollback and fork."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from sealbox.crypto import jws
from sealbox.errors import (
    DirectoryBroken,
    DirectoryFork,
    DirectoryRollback,
    MalformedInput,
    NotAuthorized,
)
from sealbox.protocol import directory as dr
from sealbox.protocol import ids
from sealbox.protocol.statements import DirectoryLink, sign_statement

NOW = 1_800_000_000
SAFETY_CODE = re.compile(r"^\d{5}( \d{5}){3}$")


def _chain(kit: Any, n: int = 3) -> tuple[list[Any], list[str], str, dr.Directory]:
    approvers = [kit.new_approver(f"a{i}") for i in range(n)]
    vault = ids.new_id(ids.VAULT)
    links = [dr.genesis_link(vault, approvers[0].record, approvers[0].sig, now=NOW)]
    pinned = dr.vault_fingerprint(links[0])
    d = dr.verify_directory(links, pinned=pinned)
    for i, a in enumerate(approvers[1:], start=1):
        links.append(
            dr.append_link(
                d, "add", a.record, signer=approvers[0].id, key=approvers[0].sig, now=NOW + i
            )
        )
        d = dr.verify_directory(links, pinned=pinned)
    return approvers, links, pinned, d


def _forge(d: dr.Directory, signer: Any, **fields: Any) -> str:
    """A link signed by ``signer`` without append_link's own checks."""
    base: dict[str, Any] = {
        "vault": d.vault,
        "seq": d.head.seq + 1,
        "prev": d.head.hash,
        "op": "add",
        "approver": None,
        "at": NOW + 100,
    }
    base.update(fields)
    return sign_statement(DirectoryLink(**base), signer.sig, signer.id)


def test_genesis_alone(kit: Any) -> None:
    a = kit.new_approver("first")
    vault = ids.new_id(ids.VAULT)
    link0 = dr.genesis_link(vault, a.record, a.sig, now=NOW)
    pinned = dr.vault_fingerprint(link0)
    d = dr.verify_directory([link0], pinned=pinned)
    assert d.vault == vault
    assert d.fingerprint == pinned
    assert dict(d.approvers) == {a.id: a.record}
    assert d.head == dr.DirectoryHead(seq=0, hash=jws.statement_hash(link0))
    assert d.tokens == (link0,)
    assert d.approver(a.id) == a.record
    assert SAFETY_CODE.match(d.safety_code)
    assert d.safety_code == dr.vault_safety_code(link0)


def test_add_update_remove(kit: Any) -> None:
    approvers, links, pinned, d = _chain(kit)
    assert set(d.approvers) == {a.id for a in approvers}
    assert d.head.seq == 2
    code = d.safety_code
    # update: approver 1 rotates its keys, signing with its old key
    rotated = kit.new_approver("rotated")
    new_record = dataclasses.replace(rotated.record, id=approvers[1].id, name="a1 (new phone)")
    links.append(
        dr.append_link(
            d, "update", new_record, signer=approvers[1].id, key=approvers[1].sig, now=NOW + 10
        )
    )
    d = dr.verify_directory(links, pinned=pinned)
    assert d.approver(approvers[1].id) == new_record
    # remove approver 2, signed by the rotated approver 1 key
    links.append(
        dr.append_link(
            d, "remove", approvers[2].record, signer=approvers[1].id, key=rotated.sig, now=NOW + 11
        )
    )
    d = dr.verify_directory(links, pinned=pinned)
    assert set(d.approvers) == {approvers[0].id, approvers[1].id}
    assert d.head == dr.DirectoryHead(seq=4, hash=jws.statement_hash(links[-1]))
    with pytest.raises(NotAuthorized):
        d.approver(approvers[2].id)
    # The safety code names the vault (link 0), not the current set.
    assert d.safety_code == code
    assert SAFETY_CODE.match(code)


def test_safety_code_differs_between_vaults(kit: Any) -> None:
    _, _, _, d1 = _chain(kit, 1)
    _, _, _, d2 = _chain(kit, 1)
    assert d1.fingerprint != d2.fingerprint
    assert d1.safety_code != d2.safety_code


def test_verify_with_cached_head_accepts_same_or_longer(kit: Any) -> None:
    _, links, pinned, d = _chain(kit)
    for seq in range(len(links)):
        head = dr.DirectoryHead(seq=seq, hash=jws.statement_hash(links[seq]))
        assert dr.verify_directory(links, pinned=pinned, cached_head=head).head == d.head


def test_wrong_pinned_fingerprint(kit: Any) -> None:
    _, links, _, _ = _chain(kit)
    _, _, other_pin, _ = _chain(kit, 1)
    with pytest.raises(DirectoryBroken, match="pinned"):
        dr.verify_directory(links, pinned=other_pin)
    with pytest.raises(DirectoryBroken):
        dr.verify_directory(links, pinned="sha256:" + "A" * 43)


def test_empty_chain(kit: Any) -> None:
    with pytest.raises(DirectoryBroken, match="empty"):
        dr.verify_directory([], pinned="sha256:" + "A" * 43)


def test_chain_too_long(monkeypatch: pytest.MonkeyPatch, kit: Any) -> None:
    _, links, pinned, _ = _chain(kit)
    monkeypatch.setattr(dr, "MAX_LINKS", 2)
    with pytest.raises(DirectoryBroken, match="longer"):
        dr.verify_directory(links, pinned=pinned)


def test_link0_not_a_token(kit: Any) -> None:
    with pytest.raises(DirectoryBroken, match="link 0"):
        dr.verify_directory(["caf\u00e9"], pinned="sha256:" + "A" * 43)


def test_link0_garbage_matching_pin() -> None:
    garbage = "a.b.c"
    with pytest.raises(DirectoryBroken, match="link 0 does not verify"):
        dr.verify_directory([garbage], pinned=dr.vault_fingerprint(garbage))


def test_link_signed_by_non_member(kit: Any) -> None:
    _, links, pinned, d = _chain(kit)
    stranger = kit.new_approver("stranger")
    forged = _forge(d, stranger, approver=stranger.record)
    with pytest.raises(DirectoryBroken, match="not an approver"):
        dr.verify_directory([*links, forged], pinned=pinned)


def test_link_signed_by_member_id_with_other_key(kit: Any) -> None:
    approvers, links, pinned, d = _chain(kit)
    stranger = kit.new_approver("stranger")
    token = sign_statement(
        DirectoryLink(
            vault=d.vault, seq=3, prev=d.head.hash, op="add", approver=stranger.record, at=NOW + 9
        ),
        stranger.sig,
        approvers[0].id,
    )
    with pytest.raises(DirectoryBroken, match="link 3 does not verify"):
        dr.verify_directory([*links, token], pinned=pinned)


def test_link_signed_by_removed_approver(kit: Any) -> None:
    approvers, links, pinned, d = _chain(kit)
    links.append(
        dr.append_link(
            d,
            "remove",
            approvers[2].record,
            signer=approvers[0].id,
            key=approvers[0].sig,
            now=NOW + 5,
        )
    )
    d = dr.verify_directory(links, pinned=pinned)
    newcomer = kit.new_approver("newcomer")
    forged = _forge(d, approvers[2], approver=newcomer.record)
    with pytest.raises(DirectoryBroken, match="not an approver"):
        dr.verify_directory([*links, forged], pinned=pinned)
    # and append_link refuses it up front
    with pytest.raises(NotAuthorized):
        dr.append_link(
            d, "add", newcomer.record, signer=approvers[2].id, key=approvers[2].sig, now=NOW + 6
        )


@pytest.mark.parametrize("seq_delta", [1, -1, -2, -3])
def test_wrong_seq(kit: Any, seq_delta: int) -> None:
    approvers, links, pinned, d = _chain(kit)
    newcomer = kit.new_approver("n")
    forged = _forge(d, approvers[0], approver=newcomer.record, seq=d.head.seq + 1 + seq_delta)
    with pytest.raises(DirectoryBroken):
        dr.verify_directory([*links, forged], pinned=pinned)


def test_wrong_prev(kit: Any) -> None:
    approvers, links, pinned, d = _chain(kit)
    newcomer = kit.new_approver("n")
    forged = _forge(d, approvers[0], approver=newcomer.record, prev=jws.statement_hash(links[0]))
    with pytest.raises(DirectoryBroken, match="does not chain"):
        dr.verify_directory([*links, forged], pinned=pinned)


def test_reordered_links(kit: Any) -> None:
    _, links, pinned, _ = _chain(kit)
    with pytest.raises(DirectoryBroken, match="does not chain"):
        dr.verify_directory([links[0], links[2], links[1]], pinned=pinned)


def test_other_vault(kit: Any) -> None:
    approvers, links, pinned, d = _chain(kit)
    newcomer = kit.new_approver("n")
    forged = _forge(d, approvers[0], approver=newcomer.record, vault=ids.new_id(ids.VAULT))
    with pytest.raises(DirectoryBroken, match="another vault"):
        dr.verify_directory([*links, forged], pinned=pinned)


def test_time_going_backwards(kit: Any) -> None:
    approvers, links, pinned, d = _chain(kit)
    newcomer = kit.new_approver("n")
    forged = _forge(d, approvers[0], approver=newcomer.record, at=NOW + 1)
    with pytest.raises(DirectoryBroken, match="dated before"):
        dr.verify_directory([*links, forged], pinned=pinned)
    same_time = _forge(d, approvers[0], approver=newcomer.record, at=NOW + 2)
    assert dr.verify_directory([*links, same_time], pinned=pinned).head.seq == 3


def test_add_existing_id(kit: Any) -> None:
    approvers, links, pinned, d = _chain(kit)
    fresh = kit.new_approver("n")
    dup = dataclasses.replace(fresh.record, id=approvers[1].id)
    with pytest.raises(DirectoryBroken, match="already an approver"):
        dr.append_link(d, "add", dup, signer=approvers[0].id, key=approvers[0].sig, now=NOW + 9)
    forged = _forge(d, approvers[0], approver=dup)
    with pytest.raises(DirectoryBroken, match="already an approver"):
        dr.verify_directory([*links, forged], pinned=pinned)


@pytest.mark.parametrize("which", ["hpke_pk", "sig_pk"])
def test_add_with_reused_key(kit: Any, which: str) -> None:
    approvers, links, pinned, d = _chain(kit)
    fresh = kit.new_approver("n")
    reused = dataclasses.replace(fresh.record, **{which: getattr(approvers[1].record, which)})
    with pytest.raises(DirectoryBroken, match="key already used"):
        dr.append_link(d, "add", reused, signer=approvers[0].id, key=approvers[0].sig, now=NOW + 9)
    forged = _forge(d, approvers[0], approver=reused)
    with pytest.raises(DirectoryBroken, match="key already used"):
        dr.verify_directory([*links, forged], pinned=pinned)


@pytest.mark.parametrize("which", ["hpke_pk", "sig_pk"])
def test_update_to_another_approvers_key(kit: Any, which: str) -> None:
    approvers, _, _, d = _chain(kit)
    stolen = dataclasses.replace(
        approvers[1].record, **{which: getattr(approvers[2].record, which)}
    )
    with pytest.raises(DirectoryBroken, match="key already used"):
        dr.append_link(
            d, "update", stolen, signer=approvers[1].id, key=approvers[1].sig, now=NOW + 9
        )


def test_update_keeping_own_key_is_fine(kit: Any) -> None:
    approvers, links, pinned, d = _chain(kit)
    renamed = dataclasses.replace(approvers[1].record, name="renamed")
    links.append(
        dr.append_link(
            d, "update", renamed, signer=approvers[1].id, key=approvers[1].sig, now=NOW + 9
        )
    )
    assert dr.verify_directory(links, pinned=pinned).approver(approvers[1].id).name == "renamed"


def test_update_of_another_approver_is_refused(kit: Any) -> None:
    # One device must not re-key the others: every later M-of-N store would be
    # sealed to keys it alone holds.
    approvers, links, pinned, d = _chain(kit)
    rekeyed = dataclasses.replace(approvers[1].record, name="rekeyed")
    with pytest.raises(DirectoryBroken, match="may update only itself"):
        dr.append_link(
            d, "update", rekeyed, signer=approvers[0].id, key=approvers[0].sig, now=NOW + 9
        )
    # Signed anyway, by hand: verifiers refuse the chain.
    link = DirectoryLink(
        vault=d.vault, seq=d.head.seq + 1, prev=d.head.hash, op="update", approver=rekeyed,
        at=NOW + 9,
    )  # fmt: skip
    forged = sign_statement(link, approvers[0].sig, approvers[0].id)
    with pytest.raises(DirectoryBroken, match="may update only itself"):
        dr.verify_directory([*links, forged], pinned=pinned)


def test_remove_last_approver(kit: Any) -> None:
    approvers, links, pinned, d = _chain(kit, 1)
    with pytest.raises(DirectoryBroken, match="last approver"):
        dr.append_link(
            d,
            "remove",
            approvers[0].record,
            signer=approvers[0].id,
            key=approvers[0].sig,
            now=NOW + 1,
        )
    forged = _forge(d, approvers[0], approver=approvers[0].record, op="remove")
    with pytest.raises(DirectoryBroken, match="last approver"):
        dr.verify_directory([*links, forged], pinned=pinned)


def test_remove_with_mismatched_record(kit: Any) -> None:
    approvers, links, pinned, d = _chain(kit)
    renamed = dataclasses.replace(approvers[2].record, name="not as listed")
    with pytest.raises(DirectoryBroken, match="not in the set as listed"):
        dr.append_link(
            d, "remove", renamed, signer=approvers[0].id, key=approvers[0].sig, now=NOW + 9
        )
    stranger = kit.new_approver("s")
    forged = _forge(d, approvers[0], approver=stranger.record, op="remove")
    with pytest.raises(DirectoryBroken, match="not in the set as listed"):
        dr.verify_directory([*links, forged], pinned=pinned)


def test_update_non_member(kit: Any) -> None:
    approvers, links, pinned, d = _chain(kit)
    stranger = kit.new_approver("s")
    with pytest.raises(DirectoryBroken, match="not in the set"):
        dr.append_link(
            d, "update", stranger.record, signer=approvers[0].id, key=approvers[0].sig, now=NOW + 9
        )
    forged = _forge(d, approvers[0], approver=stranger.record, op="update")
    with pytest.raises(DirectoryBroken, match="updates an approver not in the set"):
        dr.verify_directory([*links, forged], pinned=pinned)


@pytest.mark.parametrize("op", ["remove", "update"])
def test_link0_must_be_self_add(kit: Any, op: str) -> None:
    a = kit.new_approver("first")
    link = DirectoryLink(
        vault=ids.new_id(ids.VAULT), seq=0, prev=None, op=op, approver=a.record, at=NOW
    )
    token = sign_statement(link, a.sig, a.id)
    with pytest.raises(DirectoryBroken, match="first approver adding itself"):
        dr.verify_directory([token], pinned=dr.vault_fingerprint(token))


def test_link0_signed_by_another_key(kit: Any) -> None:
    a, b = kit.new_approver("a"), kit.new_approver("b")
    link = DirectoryLink(
        vault=ids.new_id(ids.VAULT), seq=0, prev=None, op="add", approver=a.record, at=NOW
    )
    for token in (sign_statement(link, b.sig, a.id), sign_statement(link, b.sig, b.id)):
        with pytest.raises(DirectoryBroken, match="link 0 does not verify"):
            dr.verify_directory([token], pinned=dr.vault_fingerprint(token))


def test_link0_with_seq_1(kit: Any) -> None:
    a = kit.new_approver("a")
    link = DirectoryLink(
        vault=ids.new_id(ids.VAULT),
        seq=1,
        prev="sha256:" + "A" * 43,
        op="add",
        approver=a.record,
        at=NOW,
    )
    token = sign_statement(link, a.sig, a.id)
    with pytest.raises(DirectoryBroken, match="does not chain"):
        dr.verify_directory([token], pinned=dr.vault_fingerprint(token))


def test_link_of_another_type_in_the_chain(kit: Any) -> None:
    approvers, links, pinned, _ = _chain(kit)
    other = jws.sign(approvers[0].sig, "sealbox.deny.v1", approvers[0].id, {"x": 1})
    with pytest.raises(DirectoryBroken, match="link 3 does not verify"):
        dr.verify_directory([*links, other], pinned=pinned)


def test_rollback(kit: Any) -> None:
    _, links, pinned, d = _chain(kit)
    head = d.head
    for cut in range(1, len(links)):
        with pytest.raises(DirectoryRollback):
            dr.verify_directory(links[:cut], pinned=pinned, cached_head=head)
    assert issubclass(DirectoryRollback, DirectoryBroken)


def test_fork(kit: Any) -> None:
    approvers, links, pinned, d = _chain(kit)
    # A second link 2 that adds someone else: same seq, other hash.
    base = dr.verify_directory(links[:2], pinned=pinned)
    other = kit.new_approver("other")
    fork = dr.append_link(
        base, "add", other.record, signer=approvers[0].id, key=approvers[0].sig, now=NOW + 2
    )
    forked = [*links[:2], fork]
    assert dr.verify_directory(forked, pinned=pinned).head.seq == 2  # valid on its own
    with pytest.raises(DirectoryFork):
        dr.verify_directory(forked, pinned=pinned, cached_head=d.head)
    # the fork is detected even when the relay adds links on top of it
    longer = dr.verify_directory(forked, pinned=pinned)
    more = kit.new_approver("more")
    forked.append(
        dr.append_link(
            longer, "add", more.record, signer=approvers[0].id, key=approvers[0].sig, now=NOW + 3
        )
    )
    with pytest.raises(DirectoryFork):
        dr.verify_directory(forked, pinned=pinned, cached_head=d.head)
    assert issubclass(DirectoryFork, DirectoryBroken)


def test_append_link_signer_checks(kit: Any) -> None:
    approvers, _, _, d = _chain(kit)
    stranger = kit.new_approver("s")
    with pytest.raises(NotAuthorized):
        dr.append_link(d, "add", stranger.record, signer=stranger.id, key=stranger.sig, now=NOW + 9)
    with pytest.raises(ValueError, match="signer's directory key"):
        dr.append_link(
            d, "add", stranger.record, signer=approvers[0].id, key=approvers[1].sig, now=NOW + 9
        )


def test_genesis_with_wrong_key(kit: Any) -> None:
    a, b = kit.new_approver("a"), kit.new_approver("b")
    with pytest.raises(ValueError, match="link 0"):
        dr.genesis_link(ids.new_id(ids.VAULT), a.record, b.sig, now=NOW)


def test_fingerprint_of_non_ascii() -> None:
    from sealbox.errors import MalformedInput

    with pytest.raises(MalformedInput):
        dr.vault_fingerprint("caf\u00e9")
    with pytest.raises(MalformedInput):
        dr.vault_safety_code(None)  # type: ignore[arg-type]


def test_append_link_refuses_what_verifiers_would(kit: Any) -> None:
    from sealbox.errors import MalformedInput

    approvers, _, _, d = _chain(kit)
    a0 = approvers[0]
    with pytest.raises(MalformedInput, match="op"):
        dr.append_link(d, "delete", approvers[1].record, signer=a0.id, key=a0.sig, now=NOW + 9)
    shady = dataclasses.replace(kit.new_approver("x").record, name="Ana\x1b[8m")
    with pytest.raises(MalformedInput, match="control"):
        dr.append_link(d, "add", shady, signer=a0.id, key=a0.sig, now=NOW + 9)
    with pytest.raises(MalformedInput):
        dr.append_link(d, "add", kit.new_approver("y").record, signer=a0.id, key=a0.sig, now=-1)


def test_genesis_refuses_what_verifiers_would(kit: Any) -> None:
    from sealbox.errors import MalformedInput

    a = kit.new_approver("first")
    shady = dataclasses.replace(a.record, name="\u202eevil")
    with pytest.raises(MalformedInput):
        dr.genesis_link(ids.new_id(ids.VAULT), shady, a.sig, now=NOW)
    with pytest.raises(MalformedInput):
        dr.genesis_link("vlt_not_an_id", a.record, a.sig, now=NOW)


@pytest.mark.parametrize("pinned", [None, "sha256:\u00e9", 5])
def test_pinned_fingerprint_must_be_ascii_text(kit: Any, pinned: object) -> None:
    _, links, _, _ = _chain(kit)
    with pytest.raises(MalformedInput, match="pinned vault fingerprint"):
        dr.verify_directory(links, pinned=pinned)  # type: ignore[arg-type]


def test_verified_directory_exposes_its_parsed_links(kit: Any) -> None:
    _, links, pinned, _ = _chain(kit)
    d = dr.verify_directory(links, pinned=pinned)
    assert [link.seq for link in d.links] == list(range(len(links)))
    assert d.links[0].op == "add"


def test_pairing_code_covers_the_id_and_both_keys(kit: Any) -> None:
    phone = kit.new_approver("phone")
    code = dr.pairing_code(phone.record)
    assert re.fullmatch(r"\d{5} \d{5} \d{5} \d{5}", code)
    assert dr.pairing_code(dataclasses.replace(phone.record, name="renamed")) == code
    other = kit.new_approver("other")
    for swapped in (
        dataclasses.replace(phone.record, id=other.id),
        dataclasses.replace(phone.record, hpke_pk=other.record.hpke_pk),
        dataclasses.replace(phone.record, sig_pk=other.record.sig_pk),
    ):
        assert dr.pairing_code(swapped) != code
