"""Stage isolation by signed item scopes, on SQLite and PostgreSQL.

A client certified with ``items:app/dev/*`` is refused ``app/prod/*`` whatever
it sends and whatever grants the relay holds: by the routes, by the store layer
every route asks (``clients.access``), and by every approver's own check of the
statement.  Each refusal is a 403 with a hint, audited, and changes nothing.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from relay_support import Vault, error_of
from sqlalchemy import func, select
from test_relay_items import CONTEXT, Harness, Requester

from sealbox.crypto.keys import SigningKey
from sealbox.errors import CertificateInvalid
from sealbox.protocol import ids
from sealbox.protocol.access import verify_access
from sealbox.protocol.certificates import issue_certificate
from sealbox.protocol.statements import ClientConstraints, ClientInfo
from sealbox.protocol.store import build_store, verify_store
from sealbox.server.relay import Relay
from sealbox.server.store import clients as client_store
from sealbox.server.store.tables import audit_events, requests

pytestmark = pytest.mark.anyio


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


async def _dev_machine(h: Harness, *, scopes: tuple[str, ...] = ("items:app/dev/*",)) -> Requester:
    """A machine certified for app/dev/* only, registered the product's way, granted app/*/*."""
    now = h.relay.now()
    key = SigningKey.generate()
    info = ClientInfo(id=ids.new_id(ids.CLIENT), kind="machine", name="api-dev",
                      sig_pk=key.verify_key())  # fmt: skip
    approver = h.vault.approvers[0]
    cert = issue_certificate(
        h.directory(), issuer=approver.id, key=approver.sig, client=info,
        scopes=["read", "write", *scopes], constraints=ClientConstraints(not_after=now + 3600),
        now=now,
    )  # fmt: skip
    registered = await h.call("POST", "/clients", signer=approver, body={"certificate": cert})
    assert registered.status_code == 201, registered.text
    granted = await h.call("POST", f"/clients/{info.id}/grants", signer=approver,
                           body={"pattern": "app/*/*"})  # fmt: skip
    assert granted.status_code == 201, granted.text
    return Requester(info.id, key, cert)


async def _count(h: Harness, table: Any) -> int:
    async with h.relay.read() as conn:
        return int((await conn.execute(select(func.count()).select_from(table))).scalar_one())


async def _refusals(h: Harness) -> list[dict[str, Any]]:
    async with h.relay.read() as conn:
        rows = await conn.execute(
            select(audit_events.c.detail, audit_events.c.client_id).where(
                audit_events.c.action == "request.refused"
            )
        )
        return [{**row.detail, "client_id": row.client_id} for row in rows]


async def test_the_store_layer_bounds_every_grant_by_the_signed_scope(h: Harness) -> None:
    machine = await _dev_machine(h)
    async with h.relay.read() as conn:
        access = await client_store.access(conn, h.vault.id, machine.id)
        row = await client_store.get(conn, h.vault.id, machine.id)
    assert row is not None
    assert row.limits == (("app/dev/*",),)
    assert access.grants == ("app/*/*",)
    assert access.allows("app/dev/db")
    assert not access.allows("app/prod/db")  # granted, and still refused
    assert not access.allows("other/dev/db")  # in scope, never granted


async def test_an_access_request_outside_the_scope_is_refused_and_audited(h: Harness) -> None:
    approver = h.vault.approvers[0]
    dev_item, _ = await h.store_direct(approver, "app/dev/db", {"password": b"dev"})
    prod_item, _ = await h.store_direct(approver, "app/prod/db", {"password": b"prod"})
    machine = await _dev_machine(h)
    before = await _count(h, requests)

    asked = h.access(machine, [(prod_item, "app/prod/db", ["password"])])
    refused = await h.ask(machine, asked)
    assert refused.status_code == 403, refused.text
    body = error_of(refused)
    assert body["error"] == "certificate_invalid"
    assert "outside the items its certificate allows" in body["message"]
    assert await _count(h, requests) == before
    # Naming a dev item beside it does not help: the whole statement is refused.
    both = h.access(machine, [(dev_item, "app/dev/db", ["password"]),
                              (prod_item, "app/prod/db", ["password"])])  # fmt: skip
    assert (await h.ask(machine, both)).status_code == 403
    assert await _count(h, requests) == before
    [event, *_] = await _refusals(h)
    assert event["error"] == "certificate_invalid"
    assert event["status"] == 403
    assert event["client_id"] == machine.id

    fine = await h.ask(machine, h.access(machine, [(dev_item, "app/dev/db", ["password"])]))
    assert fine.status_code == 201, fine.text


async def test_metadata_outside_the_scope_is_hidden(h: Harness) -> None:
    approver = h.vault.approvers[0]
    await h.store_direct(approver, "app/dev/db", {"password": b"dev"})
    prod_item, _ = await h.store_direct(approver, "app/prod/db", {"password": b"prod"})
    machine = await _dev_machine(h)
    listed = await h.call("GET", "/items", signer=machine)
    assert [i["path"] for i in listed.json()["items"]] == ["app/dev/db"]
    assert (await h.call("GET", f"/items/{prod_item}", signer=machine)).status_code == 404
    policy = await h.call("GET", "/policy?path=app/prod/db", signer=machine)
    assert policy.status_code == 403
    assert error_of(policy)["error"] == "outside_scope"
    assert (await _refusals(h))[0]["error"] == "outside_scope"


async def test_a_store_request_outside_the_scope_is_refused(h: Harness) -> None:
    machine = await _dev_machine(h)
    before = await _count(h, requests)
    upload = h.store_upload(machine, "app/prod/api", {"token": b"t"})
    refused = await h.post_store(machine, upload)
    assert refused.status_code == 403, refused.text
    assert await _count(h, requests) == before
    assert (await h.post_store(machine, h.store_upload(machine, "app/dev/api", {"token": b"t"}))
            ).status_code == 201  # fmt: skip


async def test_every_approver_checks_the_scope_itself(h: Harness) -> None:
    """A relay that served a statement outside the scope would still meet a refusal."""
    approver = h.vault.approvers[0]
    prod_item, _ = await h.store_direct(approver, "app/prod/db", {"password": b"prod"})
    machine = await _dev_machine(h)
    asked = h.access(machine, [(prod_item, "app/prod/db", ["password"])])
    with pytest.raises(CertificateInvalid, match="outside the items"):
        verify_access(asked.token, directory=h.directory(), certificate=machine.certificate,
                      now=h.relay.now())  # fmt: skip
    upload = build_store(
        client=machine.id, key=machine.key, directory=h.directory(), item=ids.new_id(ids.ITEM),
        path="app/prod/api", version=1, prev=None, values={"t": b"x"},
        approvers=[approver.id], threshold=1, purpose="p", context=CONTEXT, now=h.relay.now(),
    )  # fmt: skip
    with pytest.raises(CertificateInvalid, match="outside the items"):
        verify_store(upload, directory=h.directory(), approver=approver.id,
                     hpke_key=approver.hpke, certificate=machine.certificate, now=h.relay.now(),
                     prev_manifest=None)  # fmt: skip
