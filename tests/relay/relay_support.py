"""Helpers shared by the relay tests (imported by name: test directories are not packages)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.statements import ApproverRecord


class Clock:
    """A settable clock for the relay under test."""

    def __init__(self, now: float | None = None) -> None:
        # Near the real time: RFC 9421 libraries also check "created" against it.
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


class Approver:
    def __init__(self, name: str = "laptop") -> None:
        self.hpke = HpkePrivateKey.generate()
        self.sig = SigningKey.generate()
        self.record = ApproverRecord(
            id=ids.new_id(ids.APPROVER), name=name, kind="terminal", tier="synced",
            hpke_pk=self.hpke.public_key(), sig_pk=self.sig.verify_key(),
        )  # fmt: skip

    @property
    def id(self) -> str:
        return self.record.id


class Vault:
    """A vault set up through the API, with its first approver."""

    def __init__(self, vault: str, first: Approver, link0: str) -> None:
        self.id = vault
        self.approvers = [first]
        self.links = [link0]
        self.fingerprint = dirs.vault_fingerprint(link0)

    def directory(self) -> dirs.Directory:
        return dirs.verify_directory(self.links, pinned=self.fingerprint)


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error", "message", "hint"}, body
    return dict(body)
