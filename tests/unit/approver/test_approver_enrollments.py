"""`sealbox ci enrollment list` shows what the approvers signed, not what the relay says."""

from __future__ import annotations

import json
import time

import httpx

from sealbox.approver.enrollments import list_enrollments
from sealbox.approver.keystore import ApproverKeys
from sealbox.approver.session import ApproverSession
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.certificates import issue_enrollment
from sealbox.protocol.statements import ApproverRecord, EnrollmentConstraints


def test_limits_come_from_the_verified_statement_and_bad_ones_are_marked() -> None:
    now = int(time.time())
    sig, hpke = SigningKey.generate(), HpkePrivateKey.generate()
    record = ApproverRecord(id=ids.new_id(ids.APPROVER), name="laptop", kind="terminal",
                            tier="device", hpke_pk=hpke.public_key(),
                            sig_pk=sig.verify_key())  # fmt: skip
    vault = ids.new_id(ids.VAULT)
    links = [dirs.genesis_link(vault, record, sig, now=now - 100)]
    directory = dirs.verify_directory(links, pinned=dirs.vault_fingerprint(links[0]))
    enrollment_id = ids.new_id(ids.ENROLLMENT)
    statement = issue_enrollment(
        directory, issuer=record.id, key=sig, enrollment_id=enrollment_id,
        delegation_key=SigningKey.generate().verify_key(),
        constraints=EnrollmentConstraints(projects=("shop",), items=("shop/ci/*",), max_uses=3,
                                          not_after=now + 3600),
        now=now - 10,
    )  # fmt: skip
    listed = [
        # The relay claims wider limits than were signed: the signed ones are shown.
        {"id": enrollment_id, "statement": statement, "items": ["*/*/*"], "max_uses": 999,
         "uses": 1, "machines": 1, "revoked_at": None},
        # Not a statement at all, with an id meant to rewrite the approver's terminal.
        {"id": "enr_\x1b[2Jgotcha", "statement": "x.y.z", "uses": 0, "machines": 0},
    ]  # fmt: skip

    def relay(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/directory"):
            return httpx.Response(200, json={"links": links})
        return httpx.Response(200, content=json.dumps({"enrollments": listed}).encode(),
                              headers={"content-type": "application/json"})  # fmt: skip

    keys = ApproverKeys(server="http://relay.test", vault=vault, fingerprint=directory.fingerprint,
                        record=record, hpke=hpke, sig=sig)  # fmt: skip
    session = ApproverSession(keys, http=httpx.Client(transport=httpx.MockTransport(relay)))
    try:
        good, bad = list_enrollments(session)
    finally:
        session.close()
    assert good["verified"] is True
    assert (good["items"], good["max_uses"], good["uses"]) == (["shop/ci/*"], 3, 1)
    assert good["issuer"] == record.id
    assert bad["verified"] is False
    assert "\x1b" not in bad["id"]
    assert "items" not in bad
