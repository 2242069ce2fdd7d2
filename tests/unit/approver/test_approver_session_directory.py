"""An approver verifies the directory again whenever the relay serves a changed chain."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sealbox.approver.keystore import ApproverKeys
from sealbox.approver.session import ApproverSession
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.errors import DirectoryFork
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.statements import ApproverRecord

NOW = 1_800_000_000


def _approver(name: str) -> tuple[ApproverRecord, SigningKey, HpkePrivateKey]:
    sig, hpke = SigningKey.generate(), HpkePrivateKey.generate()
    record = ApproverRecord(
        id=ids.new_id(ids.APPROVER), name=name, kind="automated", tier="synced",
        hpke_pk=hpke.public_key(), sig_pk=sig.verify_key(),
    )  # fmt: skip
    return record, sig, hpke


def test_unchanged_chain_reused_changed_chain_verified(monkeypatch: pytest.MonkeyPatch) -> None:
    vault = ids.new_id(ids.VAULT)
    record, sig, hpke = _approver("bot")
    link0 = dirs.genesis_link(vault, record, sig, now=NOW)
    d0 = dirs.verify_directory([link0], pinned=dirs.vault_fingerprint(link0))

    def grow(name: str) -> str:
        return dirs.append_link(d0, "add", _approver(name)[0], signer=record.id, key=sig, now=NOW)

    served: list[list[str]] = [[link0]]
    http = httpx.Client(transport=httpx.MockTransport(
        lambda request: httpx.Response(200, json={"links": served[-1]})
    ))  # fmt: skip
    keys = ApproverKeys(server="http://relay.test", vault=vault,
                        fingerprint=dirs.vault_fingerprint(link0), record=record, hpke=hpke,
                        sig=sig)  # fmt: skip
    verified: list[int] = []
    real = dirs.verify_directory

    def counting(tokens: Any, **kw: Any) -> dirs.Directory:
        verified.append(len(tokens))
        return real(tokens, **kw)

    monkeypatch.setattr(dirs, "verify_directory", counting)
    session = ApproverSession(keys, http=http)
    first = session.directory(fresh=True)
    session.forget_directory()  # the relay said the directory changed; it did not
    assert session.directory() is first
    assert verified == [1]
    served.append([link0, grow("second")])
    assert session.directory(fresh=True).head.seq == 1
    assert verified == [1, 2]
    served.append([link0, grow("another second")])
    with pytest.raises(DirectoryFork):
        session.directory(fresh=True)
    assert verified == [1, 2, 2]
    session.close()
