"""The client verifies a directory chain again whenever anything in it changed.

An unchanged chain (the very links verified before, against the same head) is
reused; a grown chain, a forked one, or a rolled-back one is verified in full
and, if it does not verify, refused.
"""

from __future__ import annotations

from typing import Any

import pytest

from sealbox.client import _flows as flows
from sealbox.client._flows import Call, ClientState, Reply
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.errors import DirectoryFork, DirectoryRollback
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.statements import ApproverRecord

NOW = 1_800_000_000


def _approver(name: str) -> tuple[ApproverRecord, SigningKey]:
    sig = SigningKey.generate()
    record = ApproverRecord(
        id=ids.new_id(ids.APPROVER), name=name, kind="terminal", tier="synced",
        hpke_pk=HpkePrivateKey.generate().public_key(), sig_pk=sig.verify_key(),
    )  # fmt: skip
    return record, sig


@pytest.fixture
def chain() -> dict[str, Any]:
    vault = ids.new_id(ids.VAULT)
    first, key = _approver("first")
    link0 = dirs.genesis_link(vault, first, key, now=NOW)
    fingerprint = dirs.vault_fingerprint(link0)
    d0 = dirs.verify_directory([link0], pinned=fingerprint)

    def grow(name: str) -> str:
        return dirs.append_link(d0, "add", _approver(name)[0], signer=first.id, key=key, now=NOW)

    return {"vault": vault, "fingerprint": fingerprint, "link0": link0, "d0": d0, "grow": grow}


def _state(chain: dict[str, Any]) -> ClientState:
    return ClientState(
        vault=chain["vault"], client_id=ids.new_id(ids.CLIENT), key=SigningKey.generate(),
        fingerprint=chain["fingerprint"], head=chain["d0"].head,
    )  # fmt: skip


def _fetch(state: ClientState, links: list[str]) -> dirs.Directory:
    """Drive ``directory_flow`` (fresh) against a relay that serves ``links``."""
    flow = flows.directory_flow(state, fresh=True)
    call = next(flow)
    assert isinstance(call, Call)
    assert call.path.endswith("/directory")
    try:
        flow.send(Reply(200, {"links": links}))
    except StopIteration as stop:
        result: dirs.Directory = stop.value
        return result
    raise AssertionError("the flow asked for more than the directory")


@pytest.fixture
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The length of every chain fully verified."""
    seen: list[int] = []
    real = dirs.verify_directory

    def counting(tokens: Any, **kw: Any) -> dirs.Directory:
        seen.append(len(tokens))
        return real(tokens, **kw)

    monkeypatch.setattr(flows.dirs, "verify_directory", counting)
    return seen


def test_an_unchanged_chain_is_verified_once(chain: dict[str, Any],
                                             verifications: list[int]) -> None:  # fmt: skip
    state = _state(chain)
    first = _fetch(state, [chain["link0"]])
    assert _fetch(state, [chain["link0"]]) is first
    assert verifications == [1]


def test_a_grown_chain_is_verified_and_moves_the_head(
    chain: dict[str, Any], verifications: list[int]
) -> None:
    state = _state(chain)
    _fetch(state, [chain["link0"]])
    grown = _fetch(state, [chain["link0"], chain["grow"]("second")])
    assert verifications == [1, 2]
    assert state.directory_head == grown.head
    assert grown.head.seq == 1


def test_a_fork_or_a_rollback_after_a_cached_chain_is_refused(
    chain: dict[str, Any], verifications: list[int]
) -> None:
    state = _state(chain)
    _fetch(state, [chain["link0"], chain["grow"]("second")])
    with pytest.raises(DirectoryFork):
        _fetch(state, [chain["link0"], chain["grow"]("another second")])
    with pytest.raises(DirectoryRollback):
        _fetch(state, [chain["link0"]])
    assert verifications == [2, 2, 1]
