"""An approver's signed refusal of a request it could not verify, as the relay files it.

It is a deny like any other (the request is denied and its status carries the
token, which the client verifies), and the audit records it as a tampering
alert with its grounds; a decided deny stays a notice without grounds.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from relay_support import Vault
from sqlalchemy import select
from test_relay_items import PASSWORD, Harness

from sealbox.protocol.access import deny, verify_deny
from sealbox.protocol.statements import DENY_UNVERIFIABLE
from sealbox.server.relay import Relay
from sealbox.server.store.tables import audit_events

pytestmark = pytest.mark.anyio


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


async def _denied(h: Harness) -> list[Any]:
    async with h.relay.read() as conn:
        rows = await conn.execute(
            select(audit_events).where(audit_events.c.action == "access.denied")
        )
        return list(rows.mappings())


async def test_a_refusal_is_filed_as_a_deny_and_audited_as_an_alert(h: Harness) -> None:
    a = h.vault.approvers[0]
    item, _ = await h.store_direct(a, "app/prod/db", PASSWORD)
    client = await h.add_client()
    refused_id = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
    refused_id = refused_id.json()["id"]
    token = deny("sha256:" + refused_id, directory=h.directory(), approver=a.id, key=a.sig,
                 reason="the request does not verify: signature_invalid", now=h.relay.now(),
                 grounds=DENY_UNVERIFIABLE)  # fmt: skip
    filed = await h.call("POST", f"/access-requests/{refused_id}/deny", signer=a,
                         body={"deny": token})  # fmt: skip
    assert filed.status_code == 200, filed.text
    status = (await h.call("GET", f"/access-requests/{refused_id}", signer=client)).json()
    assert status["state"] == "denied"
    statement = verify_deny(status["deny"], directory=h.directory(),
                            request_hash="sha256:" + refused_id)  # fmt: skip
    assert statement.grounds == "unverifiable"

    decided_id = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
    decided_id = decided_id.json()["id"]
    assert (await h.deny_as(a, decided_id)).status_code == 200

    events = {e["detail"]["request"]: e for e in await _denied(h)}
    assert events[refused_id]["severity"] == "alert"
    assert events[refused_id]["detail"] == {"request": refused_id, "grounds": "unverifiable"}
    assert events[decided_id]["severity"] == "notice"
    assert events[decided_id]["detail"] == {"request": decided_id}
