"""A client withdraws its store request: the upload is dropped and it is never stored after.

This is what lets ``sealbox store`` say "not stored" truthfully when it gives
up: once the cancel is answered, no approver's manifest can make it a version.
"""

from __future__ import annotations

import httpx
import pytest
from relay_support import Vault, error_of
from sqlalchemy import select
from test_relay_items import PASSWORD, Harness

from sealbox.server.relay import Relay
from sealbox.server.store.tables import audit_events, item_versions, items

pytestmark = pytest.mark.anyio


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


async def test_a_withdrawn_store_is_never_stored(h: Harness) -> None:
    a = h.vault.approvers[0]
    client = await h.add_client()
    before_upload = await h.counts()
    created = await h.post_store(client, h.store_upload(client, "app/prod/db", PASSWORD))
    assert created.status_code == 201, created.text
    request_id = created.json()["id"]
    manifest = await h.sign_store_manifest(a, request_id)

    cancelled = await h.call("POST", f"/store-requests/{request_id}/cancel", signer=client)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == {"id": request_id, "state": "cancelled"}
    assert await h.state(request_id) == "cancelled"
    assert await h.approvals(a) == []

    late = await h.call("POST", f"/store-requests/{request_id}/manifest", signer=a,
                        body={"manifest": manifest})  # fmt: skip
    assert (late.status_code, error_of(late)["error"]) == (409, "not_pending")
    async with h.relay.read() as conn:
        assert (await conn.execute(select(items))).all() == []
        assert (await conn.execute(select(item_versions))).all() == []
        actions = [r.action for r in (await conn.execute(select(audit_events))).all()]
    assert "store.cancelled" in actions
    assert (await h.counts())["blobs"] == before_upload["blobs"]

    again = await h.call("POST", f"/store-requests/{request_id}/cancel", signer=client)
    assert (again.status_code, error_of(again)["error"]) == (409, "not_pending")


async def test_only_the_client_that_asked_can_withdraw_a_store(h: Harness) -> None:
    a = h.vault.approvers[0]
    owner, other = await h.add_client(), await h.add_client()
    created = await h.post_store(owner, h.store_upload(owner, "app/prod/db", PASSWORD))
    request_id = created.json()["id"]
    before = await h.counts()
    refused = await h.call("POST", f"/store-requests/{request_id}/cancel", signer=other)
    assert refused.status_code == 404
    assert await h.counts() == before
    assert await h.state(request_id) == "pending"
    done = await h.approve_store(a, request_id)
    assert done.status_code == 200, done.text
    stored = await h.call("POST", f"/store-requests/{request_id}/cancel", signer=owner)
    assert (stored.status_code, error_of(stored)["error"]) == (409, "not_pending")
