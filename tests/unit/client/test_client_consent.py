"""The client's consent flow against a scripted relay: it returns only a consent that verifies
against its pinned directory and binds to exactly the request it made."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from sealbox._relay.calls import Call, Reply
from sealbox.cli import exits
from sealbox.client._flows import ClientState
from sealbox.client.consent import ConsentGrant, check_grant, consent_flow, verify_grant
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.errors import (
    BindingMismatch,
    Denied,
    DirectoryRollback,
    RefusedByApprover,
    SignatureInvalid,
)
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.access import deny
from sealbox.protocol.consent import consent_scope, format_head, issue_consent, read_filed_request
from sealbox.protocol.statements import DENY_UNVERIFIABLE, ApproverRecord

NOW = int(time.time())
PLAN = {"service": "api", "replicas": 3}

Answer = Callable[[Any, str], dict[str, Any]]
"""(the filed request statement, its id) -> the relay's final status body."""


class World:
    def __init__(self) -> None:
        self.sig = SigningKey.generate()
        self.record = ApproverRecord(
            id=ids.new_id(ids.APPROVER), name="laptop", kind="terminal", tier="device",
            hpke_pk=HpkePrivateKey.generate().public_key(), sig_pk=self.sig.verify_key(),
        )  # fmt: skip
        self.vault = ids.new_id(ids.VAULT)
        self.links = [dirs.genesis_link(self.vault, self.record, self.sig, now=NOW - 100)]
        self.directory = dirs.verify_directory(
            self.links, pinned=dirs.vault_fingerprint(self.links[0])
        )
        self.client = ids.new_id(ids.CLIENT)
        self.key = SigningKey.generate()

    def state(self) -> ClientState:
        return ClientState(
            vault=self.vault, client_id=self.client, key=self.key,
            fingerprint=self.directory.fingerprint, head=self.directory.head,
        )  # fmt: skip

    def consent(self, statement: Any, request_hash: str, **kw: Any) -> str:
        args: dict[str, Any] = {
            "approver": self.record.id, "key": self.sig, "action": statement.action,
            "details": statement.details, "client": statement.client,
            # Signed now, not at import: the flow checks the consent at the real clock.
            "scope": consent_scope(request_hash), "now": int(time.time()), "ttl": statement.ttl,
        }  # fmt: skip
        args.update(kw)
        return issue_consent(self.directory, **args)


def drive(w: World, answer: Answer) -> ConsentGrant:
    """Run the flow against a relay that files the request and answers with ``answer``."""
    flow = consent_flow(w.state(), "deploy", PLAN, purpose="release", ttl=60)
    reply: Reply | None = None
    filed: Any = None
    while True:
        try:
            call: Call = flow.send(reply) if reply is not None else next(flow)
        except StopIteration as done:
            result: ConsentGrant = done.value
            return result
        if call.path.endswith("/directory"):
            reply = Reply(200, {"links": w.links, "head": len(w.links) - 1})
        elif call.method == "POST" and call.path.endswith("/consent-requests"):
            token = call.json["statement"]
            from sealbox.crypto import jws

            filed = (read_filed_request(token), jws.statement_hash(token))
            reply = Reply(201, {"id": filed[1].removeprefix("sha256:"), "state": "pending"})
        elif call.method == "GET":
            reply = Reply(200, answer(*filed))
        else:  # a withdrawal after a failure
            reply = Reply(200, {"state": "cancelled"})


def test_a_consent_that_binds_is_returned_and_verifies_offline() -> None:
    w = World()
    grant = drive(w, lambda s, h: {"state": "delivered", "consent": w.consent(s, h)})
    assert (grant.action, grant.approver, grant.expires_at - grant.at) == (
        "deploy", w.record.id, 60,
    )  # fmt: skip
    consent = verify_grant(grant.bundle_json(), fingerprint=w.directory.fingerprint,
                           action="deploy", details=PLAN, client=w.client,
                           now=int(time.time()))  # fmt: skip
    assert consent.approver == w.record.id


@pytest.mark.parametrize(
    ("swap", "error"),
    [
        (lambda w, s, h: w.consent(s, h, details={**PLAN, "replicas": 30}), BindingMismatch),
        (lambda w, s, h: w.consent(s, h, scope=consent_scope("sha256:" + "A" * 43)),
         BindingMismatch),
        (lambda w, s, h: w.consent(s, h, ttl=61), BindingMismatch),
    ],
    ids=["other-details", "other-request", "longer"],
)  # fmt: skip
def test_a_relay_that_swaps_the_consent_is_caught(swap: Any, error: type) -> None:
    w = World()
    with pytest.raises(error):
        drive(w, lambda s, h: {"state": "delivered", "consent": swap(w, s, h)})


def test_a_forged_signature_is_caught() -> None:
    w = World()

    def forged(s: Any, h: str) -> dict[str, Any]:
        token = w.consent(s, h)
        head, payload, sig = token.split(".")
        flipped = ("B" if sig[0] == "A" else "A") + sig[1:]
        return {"state": "delivered", "consent": f"{head}.{payload}.{flipped}"}

    with pytest.raises(SignatureInvalid):
        drive(w, forged)


def test_a_signed_refusal_is_reported_with_its_reason() -> None:
    w = World()

    def refused(s: Any, h: str) -> dict[str, Any]:
        token = deny(h, directory=w.directory, approver=w.record.id, key=w.sig,
                     reason="not on Friday", now=int(time.time()))  # fmt: skip
        return {"state": "denied", "deny": token}

    with pytest.raises(Denied, match="not on Friday"):
        drive(w, refused)


def test_a_signed_refusal_of_what_did_not_verify_says_so_and_is_not_a_denial() -> None:
    # As for access requests: the approver was shown something this client did not sign.
    w = World()

    def unverifiable(s: Any, h: str) -> dict[str, Any]:
        token = deny(h, directory=w.directory, approver=w.record.id, key=w.sig,
                     reason="signature_invalid", now=int(time.time()),
                     grounds=DENY_UNVERIFIABLE)  # fmt: skip
        return {"state": "denied", "deny": token}

    with pytest.raises(RefusedByApprover, match="tampering") as raised:
        drive(w, unverifiable)
    assert not isinstance(raised.value, Denied)
    # `sealbox consent request` maps it to exit 5 (verification), not 3 (an approver refused).
    assert exits.guarded(lambda: drive(w, unverifiable), "consent request") == exits.VERIFICATION


def test_verify_grant_takes_a_known_head() -> None:
    w = World()
    grant = drive(w, lambda s, h: {"state": "delivered", "consent": w.consent(s, h)})
    args: dict[str, Any] = {"fingerprint": w.directory.fingerprint, "action": "deploy",
                            "details": PLAN, "client": w.client}  # fmt: skip
    checked = check_grant(grant, **args, head=format_head(w.directory.head))
    assert checked.head == w.directory.head
    assert verify_grant(grant, **args, head=w.directory.head).approver == w.record.id
    newer = dirs.DirectoryHead(seq=1, hash=w.directory.head.hash)
    with pytest.raises(DirectoryRollback):
        verify_grant(grant, **args, head=newer)
