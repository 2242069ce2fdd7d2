"""Teams on the relay: invites, members' roles held on every request, role changes, revocation.

On SQLite and PostgreSQL.  A member is a person who logged in with an invite:
the approver signs a certificate with exactly the invite's role (and the
scopes :func:`sealbox.protocol.members.member_scopes` gives it), and the relay
holds each request to that role.  No role reads a value: every value still
needs an approver's release.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from login_support import DEVICE_GRANT, Human, audit_rows, snapshot
from relay_support import Clock, Vault, error_of
from sqlalchemy import select
from test_relay_items import PASSWORD, Harness, Requester

from sealbox.protocol import scopes
from sealbox.protocol.certificates import issue_certificate
from sealbox.protocol.members import member_scopes
from sealbox.protocol.statements import ClientConstraints
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Forbidden
from sealbox.server.relay import Relay
from sealbox.server.services import members
from sealbox.server.store.tables import bootstrap_tokens, device_codes, invites, member_roles

pytestmark = pytest.mark.anyio

DAY = 86400


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


async def invite(h: Harness, project: str, role: str, **extra: Any) -> httpx.Response:
    return await h.call("POST", "/invites", signer=h.vault.approvers[0],
                        body={"project": project, "role": role, **extra})  # fmt: skip


async def invite_code(h: Harness, project: str, role: str) -> str:
    response = await invite(h, project, role)
    assert response.status_code == 201, response.text
    return str(response.json()["code"])


async def start(h: Harness, human: Human, code: str | None) -> httpx.Response:
    form = human.form(h.vault.id) | ({"invite": code} if code is not None else {})
    return await h.http.post("/oauth/device_authorization", data=form)


def member_certificate(
    h: Harness, human: Human, roles: dict[str, set[str]], *, at: int | None = None
) -> str:
    first = h.vault.approvers[0]
    now = h.relay.now() if at is None else at
    return issue_certificate(
        h.directory(), issuer=first.id, key=first.sig, client=human.info,
        scopes=member_scopes(roles), constraints=ClientConstraints(not_after=now + 30 * DAY),
        now=now,
    )  # fmt: skip


async def approve(h: Harness, user_code: str, certificate: str) -> httpx.Response:
    return await h.call("POST", f"/device-requests/{user_code}/approve",
                        signer=h.vault.approvers[0], body={"certificate": certificate})  # fmt: skip


async def member(h: Harness, project: str, role: str) -> Requester:
    """A person invited to ``project`` as ``role``, logged in and approved."""
    human = Human(f"{role}@laptop")
    started = await start(h, human, await invite_code(h, project, role))
    assert started.status_code == 200, started.text
    assert started.json()["invite"] == {"project": project, "role": role}
    cert = member_certificate(h, human, {project: {role}})
    approved = await approve(h, started.json()["user_code"], cert)
    assert approved.status_code == 200, approved.text
    tokens = await h.http.post("/oauth/token", data={
        "grant_type": DEVICE_GRANT, "device_code": started.json()["device_code"],
        "client_id": human.id,
    })  # fmt: skip
    assert tokens.status_code == 200, tokens.text
    return Requester(human.id, human.sig, cert)


async def refusals(h: Harness) -> list[dict[str, Any]]:
    """The audit events of role refusals (throttled: one a minute per sender and code)."""
    return [
        r
        for r in await audit_rows(h.relay, h.vault.id)
        if r["action"] == "request.refused" and r["detail"]["error"] == "role_required"
    ]


# --- invites -----------------------------------------------------------------------------------


async def test_an_invite_shows_its_role_to_the_approver_and_works_once(h: Harness) -> None:
    made = await invite(h, "shop", "writer", expires_seconds=3600)
    assert made.status_code == 201, made.text
    body = made.json()
    code = body["code"]
    assert code.startswith("sbx_inv_")
    assert (body["project"], body["role"]) == ("shop", "writer")
    assert body["expires_at"] == int(h.relay.now()) + 3600
    async with h.relay.read() as conn:
        stored = [tuple(r) for r in (await conn.execute(select(invites))).all()]
    assert len(stored) == 1
    assert all(code not in str(value) for value in stored[0])
    listed = await h.call("GET", "/invites", signer=h.vault.approvers[0])
    assert [("code" in i, i["role"], i["used_by"]) for i in listed.json()["invites"]] == [
        (False, "writer", None)
    ]

    person = Human("bob@laptop")
    started = await start(h, person, code)
    assert started.status_code == 200, started.text
    assert started.json()["invite"] == {"project": "shop", "role": "writer"}
    waiting = await h.call("GET", "/device-requests", signer=h.vault.approvers[0])
    [login] = waiting.json()["device_requests"]
    assert (login["client_id"], login["project"], login["role"]) == (person.id, "shop", "writer")

    # A second login with the same code is refused, audited, and waits nowhere.
    before = await snapshot(h.relay)
    other = Human("mallory@laptop")
    again = await start(h, other, code)
    assert (again.status_code, again.json()["error"]) == (400, "invite_used")
    events = await audit_rows(h.relay, h.vault.id)
    assert (events[-1]["action"], events[-1]["detail"]["error"]) == ("invite.refused",
                                                                      "invite_used")  # fmt: skip
    after = await snapshot(h.relay)
    assert after["device_codes"] == before["device_codes"]
    assert after["clients"] == before["clients"]

    # The approver must sign exactly the invited role: not more, not less, not another.
    for wrong in ({"read", "write"}, member_scopes({"shop": {"policy-admin"}}),
                  member_scopes({"shop": {"writer"}, "blog": {"viewer"}})):  # fmt: skip
        first = h.vault.approvers[0]
        cert = issue_certificate(
            h.directory(), issuer=first.id, key=first.sig, client=person.info,
            scopes=sorted(wrong), constraints=ClientConstraints(not_after=h.relay.now() + DAY),
            now=h.relay.now(),
        )  # fmt: skip
        refused = await approve(h, login["user_code"], cert)
        assert (refused.status_code, error_of(refused)["error"]) == (400, "certificate_mismatch")
    assert (await snapshot(h.relay))["clients"] == before["clients"]
    approved = await approve(
        h, login["user_code"], member_certificate(h, person, {"shop": {"writer"}})
    )
    assert approved.status_code == 200, approved.text
    assert (await audit_rows(h.relay, h.vault.id))[-1]["detail"]["invite"] == body["id"]
    listed = await h.call("GET", "/members", signer=h.vault.approvers[0])
    assert [(m["client_id"], m["roles"]) for m in listed.json()["members"]] == [
        (person.id, {"shop": ["writer"]})
    ]
    used = (await h.call("GET", "/invites", signer=h.vault.approvers[0])).json()["invites"]
    assert used[0]["used_by"] == person.id


async def test_unknown_expired_and_withdrawn_invites_are_refused_at_login_start(
    h: Harness, relay: Relay
) -> None:
    expired = await invite_code(h, "shop", "viewer")
    withdrawn_response = await invite(h, "shop", "viewer")
    withdrawn = withdrawn_response.json()
    gone = await h.call("DELETE", f"/invites/{withdrawn['id']}", signer=h.vault.approvers[0])
    assert gone.status_code == 204
    # Withdrawing an invite that does not exist (any more) says so.
    again = await h.call("DELETE", f"/invites/{withdrawn['id']}", signer=h.vault.approvers[0])
    assert (again.status_code, error_of(again)["error"]) == (404, "no_such_invite")
    assert isinstance(relay.clock, Clock)
    relay.clock.now += DAY + 1
    before = await snapshot(relay)
    cases = [
        ("sbx_inv_" + "A" * 43, "invalid_invite"),  # well formed, never made
        ("not-a-code", "invalid_invite"),
        (withdrawn["code"], "invalid_invite"),
        (expired, "invite_expired"),
    ]
    for code, error in cases:
        response = await start(h, Human(), code)
        assert (response.status_code, response.json()["error"]) == (400, error), code
        assert response.json()["hint"]
    after = await snapshot(relay)
    assert after["device_codes"] == before["device_codes"] == []
    events = [r for r in await audit_rows(relay, h.vault.id) if r["action"] == "invite.refused"]
    assert [e["detail"]["error"] for e in events] == [error for _, error in cases]


async def test_only_approvers_make_invites_and_only_for_a_real_role(h: Harness) -> None:
    person = await member(h, "shop", "policy-admin")
    before = await snapshot(h.relay)
    cases = [
        ({"project": "shop", "role": "owner"}, 400, "invalid_role"),
        ({"project": "sh/op", "role": "writer"}, 400, "invalid_project"),
        ({"project": "shop", "role": "writer", "expires_seconds": 8 * DAY}, 422,
         "invalid_request"),
        ({"project": "shop", "role": "writer", "expires_seconds": 10}, 422, "invalid_request"),
    ]  # fmt: skip
    for body, status, error in cases:
        response = await h.call("POST", "/invites", signer=h.vault.approvers[0], body=body)
        assert (response.status_code, error_of(response)["error"]) == (status, error), body
    by_member = await h.call("POST", "/invites", signer=person,
                             body={"project": "shop", "role": "writer"})  # fmt: skip
    assert (by_member.status_code, error_of(by_member)["error"]) == (403, "approver_required")
    for path in ("/invites", "/members"):
        listed = await h.call("GET", path, signer=person)
        assert (listed.status_code, error_of(listed)["error"]) == (403, "approver_required")
    assert await snapshot(h.relay) == before


# --- what each role may do -----------------------------------------------------------------------


async def _items(h: Harness, who: Requester) -> set[str]:
    response = await h.call("GET", "/items", signer=who)
    assert response.status_code == 200, response.text
    return {item["path"] for item in response.json()["items"]}


@pytest.mark.parametrize("role", scopes.ROLES)
async def test_each_role_does_what_it_may_and_is_refused_outside_it(h: Harness, role: str) -> None:
    first = h.vault.approvers[0]
    shop_item, _ = await h.store_direct(first, "shop/prod/db", PASSWORD)
    blog_item, _ = await h.store_direct(first, "blog/prod/db", PASSWORD)
    who = await member(h, "shop", role)
    refused_before = len(await refusals(h))

    # Every role: the project's item metadata and history, nothing of another project.
    assert await _items(h, who) == {"shop/prod/db"}
    history = await h.call("GET", f"/items/{shop_item}/versions", signer=who)
    assert history.status_code == 200
    assert len(history.json()["versions"]) == 1
    hidden = await h.call("GET", f"/items/{blog_item}/versions", signer=who)
    assert (hidden.status_code, error_of(hidden)["error"]) == (404, "no_such_item")
    # Never the ciphertexts or anyone's wrapped shares: those are approvers' only.
    for path in (f"/items/{shop_item}/versions/1/ciphertexts",
                 f"/items/{shop_item}/versions/1/wraps/{first.id}"):  # fmt: skip
        raw = await h.call("GET", path, signer=who)
        assert (raw.status_code, error_of(raw)["error"]) == (403, "approver_required")

    # Storing: writers only, and only in their project.
    stored = await h.post_store(who, h.store_upload(who, "shop/dev/api", {"token": b"t"}))
    if role == "writer":
        assert stored.status_code == 201, stored.text
    else:
        assert (stored.status_code, error_of(stored)["error"]) == (403, "role_required")
        assert "writer" in error_of(stored)["message"]
        assert error_of(stored)["hint"]
    elsewhere = await h.post_store(who, h.store_upload(who, "blog/dev/api", {"token": b"t"}))
    assert elsewhere.status_code == 403, elsewhere.text

    # Setting policies: policy admins only, only for patterns inside their project.
    policy = {"pattern": "shop/prod/*", "approvers": [first.id], "threshold": 1}
    put = await h.call("PUT", "/policies", signer=who, body=policy)
    if role == "policy-admin":
        assert put.status_code == 200, put.text
        removed = await h.call("DELETE", "/policies?pattern=shop/prod/*", signer=who)
        assert removed.status_code == 204
    else:
        assert (put.status_code, error_of(put)["error"]) == (403, "role_required")
    for pattern in ("blog/prod/*", "*/prod/*", "sh?p/prod/*"):
        outside = await h.call("PUT", "/policies", signer=who, body={**policy, "pattern": pattern})
        assert (outside.status_code, error_of(outside)["error"]) == (403, "role_required"), pattern
    gone = await h.call("DELETE", "/policies?pattern=blog/prod/*", signer=who)
    assert (gone.status_code, error_of(gone)["error"]) == (403, "role_required")

    # Asking to read: every role but viewer may ask; the answer is a pending request.
    asked = h.access(who, [(shop_item, "shop/prod/db", ["password"])])
    response = await h.ask(who, asked)
    if role == "viewer":
        assert (response.status_code, error_of(response)["error"]) == (403, "role_required")
    else:
        assert response.status_code == 201, response.text
        # No role reads a value by itself: nothing is delivered before a release.
        early = await h.envelope(who, response.json()["id"])
        assert early.status_code == 409, early.text

    # Machines for the project (bootstrap tokens, enrollments, provisioning): machine admins.
    principal = Principal(vault=h.vault.id, id=who.id, role="client", client_kind="human")

    async def machine_admin(project: str) -> None:
        await members.require_role(h.relay, principal, project, "machine-admin",
                                   now=int(h.relay.now()), source_ip="127.0.0.1")  # fmt: skip

    if role == "machine-admin":
        await machine_admin("shop")
    else:
        with pytest.raises(Forbidden, match="machine-admin role in project shop"):
            await machine_admin("shop")
    with pytest.raises(Forbidden, match="machine-admin role in project blog"):
        await machine_admin("blog")

    # The refusals above were audited (as every 403 is: throttled to one event a minute for
    # one sender and error), with the member as the actor.
    events = (await refusals(h))[refused_before:]
    assert len(events) == 1
    assert events[0]["actor"] == who.id
    assert (events[0]["severity"], events[0]["detail"]["status"]) == ("warning", 403)


async def test_members_see_the_policies_of_their_projects_only(h: Harness) -> None:
    first = h.vault.approvers[0]
    for pattern in ("shop/*/*", "shop/prod/db", "blog/*/*", "*/prod/*", "sh?p/*/*"):
        body = {"pattern": pattern, "approvers": [first.id], "threshold": 1}
        assert (await h.call("PUT", "/policies", signer=first, body=body)).status_code == 200
    everything = await h.call("GET", "/policies", signer=first)
    assert len(everything.json()["policies"]) == 5
    viewer = await member(h, "shop", "viewer")
    seen = await h.call("GET", "/policies", signer=viewer)
    assert seen.status_code == 200, seen.text
    assert [p["pattern"] for p in seen.json()["policies"]] == ["shop/*/*", "shop/prod/db"]
    stranger = await h.add_client(grants_for=("shop/*/*",))
    none = await h.call("GET", "/policies", signer=stranger)
    assert none.json()["policies"] == []


@pytest.mark.parametrize("role", scopes.ROLES)
async def test_machine_admins_make_bootstrap_tokens_for_their_project_only(
    h: Harness, role: str
) -> None:
    who = await member(h, "shop", role)
    token = {"name": "api", "grants": ["shop/prod/*"], "scopes": ["read"]}
    made = await h.call("POST", "/bootstrap-tokens", signer=who, body=token)
    if role == "machine-admin":
        assert made.status_code == 201, made.text
        assert made.json()["token"].startswith("sbx_bt_")
    else:
        assert (made.status_code, error_of(made)["error"]) == (403, "role_required")
        assert "machine-admin role in project shop" in error_of(made)["message"]
    before = await snapshot(h.relay)
    for grants in (["blog/prod/*"], ["shop/prod/*", "blog/prod/*"], ["*/prod/*"], ["sh?p/*/*"]):
        outside = await h.call("POST", "/bootstrap-tokens", signer=who,
                               body={**token, "grants": grants})  # fmt: skip
        assert (outside.status_code, error_of(outside)["error"]) == (403, "role_required"), grants
    after = await snapshot(h.relay)
    assert {k: v for k, v in after.items() if k != "audit_events"} == {
        k: v for k, v in before.items() if k != "audit_events"
    }
    async with h.relay.read() as conn:
        tokens_made = (await conn.execute(select(bootstrap_tokens))).all()
    assert len(tokens_made) == (1 if role == "machine-admin" else 0)
    # Approving the machine that uses a token stays an approver's: it signs the certificate.
    pending = await h.call("GET", "/machine-registrations", signer=who)
    assert (pending.status_code, error_of(pending)["error"]) == (403, "approver_required")


async def test_a_policy_admin_cannot_read_without_a_release(h: Harness) -> None:
    first = h.vault.approvers[0]
    second = await h.add_approver("phone")
    item, _ = await h.store_direct(first, "shop/prod/db", PASSWORD)
    admin = await member(h, "shop", "policy-admin")
    # It may make the project's policy as loose as policies go: one approver, its choice...
    policy = {"pattern": "shop/*/*", "approvers": [second.id], "threshold": 1}
    assert (await h.call("PUT", "/policies", signer=admin, body=policy)).status_code == 200
    # ...but it is not an approver, and cannot name itself one.
    itself = await h.call("PUT", "/policies", signer=admin,
                          body={**policy, "approvers": [admin.id]})  # fmt: skip
    assert (itself.status_code, error_of(itself)["error"]) == (400, "invalid_policy")
    asked = h.access(admin, [(item, "shop/prod/db", ["password"])])
    response = await h.ask(admin, asked)
    assert response.status_code == 201, response.text
    request_id = response.json()["id"]
    assert (await h.envelope(admin, request_id)).status_code == 409
    denied = await h.deny_as(second, request_id)
    assert denied.status_code == 200, denied.text
    after = await h.envelope(admin, request_id)
    assert after.status_code in (403, 409, 410), after.text
    # Only an approver's release delivers, and then only to the one who asked.
    again = h.access(admin, [(item, "shop/prod/db", ["password"])], ttl=30)
    second_ask = await h.ask(admin, again)
    assert second_ask.status_code == 201, second_ask.text
    released = await h.release_as(second, second_ask.json()["id"])
    assert released.status_code == 200, released.text
    delivered = await h.envelope(admin, second_ask.json()["id"])
    assert delivered.status_code == 200
    assert h.open(again, delivered.json()).values[item]["password"] == PASSWORD["password"]


# --- changing and revoking roles ---------------------------------------------------------------


async def recertify(h: Harness, client_id: str, certificate: str) -> httpx.Response:
    return await h.call("PUT", f"/clients/{client_id}/certificate", signer=h.vault.approvers[0],
                        body={"certificate": certificate})  # fmt: skip


def _human(who: Requester) -> Human:
    human = Human()
    human.id, human.sig, human.name = who.id, who.key, "writer@laptop"
    return human


async def test_a_role_change_takes_effect_at_once(h: Harness, relay: Relay) -> None:
    first = h.vault.approvers[0]
    await h.store_direct(first, "shop/prod/db", PASSWORD)
    who = await member(h, "shop", "writer")
    person = _human(who)
    assert (await h.post_store(who, h.store_upload(who, "shop/dev/a", {"k": b"v"}))).status_code \
        == 201  # fmt: skip

    assert isinstance(relay.clock, Clock)
    relay.clock.now += 1
    changed = await recertify(h, who.id, member_certificate(h, person, {"shop": {"viewer"}}))
    assert changed.status_code == 200, changed.text
    assert changed.json()["roles"] == {"shop": ["viewer"]}
    event = (await audit_rows(relay, h.vault.id))[-1]
    assert event["action"] == "client.recertified"
    assert (event["detail"]["roles_before"], event["detail"]["roles_after"]) == (
        {"shop": ["writer"]}, {"shop": ["viewer"]})  # fmt: skip
    refused = await h.post_store(who, h.store_upload(who, "shop/dev/b", {"k": b"v"}))
    assert (refused.status_code, error_of(refused)["error"]) == (403, "role_required")
    assert await _items(h, who) == {"shop/prod/db"}

    # Moved to another project: the old one is gone at once, the new one is there.
    relay.clock.now += 1
    moved = await recertify(h, who.id, member_certificate(h, person, {"blog": {"writer"}}))
    assert moved.status_code == 200, moved.text
    assert await _items(h, who) == set()
    assert (await h.post_store(who, h.store_upload(who, "blog/dev/c", {"k": b"v"}))).status_code \
        == 201  # fmt: skip
    shop = await h.post_store(who, h.store_upload(who, "shop/dev/d", {"k": b"v"}))
    assert shop.status_code == 403

    # Refused re-certifications change nothing.
    before = await snapshot(relay)
    other = Human()
    stale = member_certificate(h, person, {"shop": {"policy-admin"}}, at=int(relay.now()) - 60)
    phone = await h.add_approver("phone")
    by_phone = issue_certificate(
        h.directory(), issuer=phone.id, key=phone.sig, client=person.info,
        scopes=member_scopes({"shop": {"viewer"}}),
        constraints=ClientConstraints(not_after=relay.now() + DAY), now=relay.now(),
    )  # fmt: skip
    before = await snapshot(relay)
    cases = [
        (member_certificate(h, other, {"shop": {"viewer"}}), 400, "certificate_mismatch"),
        (stale, 409, "stale_certificate"),
        (by_phone, 403, "not_the_issuer"),
        ("not a certificate", 403, "certificate_invalid"),
    ]
    for certificate, status, error in cases:
        response = await recertify(h, who.id, certificate)
        assert (response.status_code, error_of(response)["error"]) == (status, error)
    unknown = await recertify(h, other.id, member_certificate(h, other, {"shop": {"viewer"}}))
    assert (unknown.status_code, error_of(unknown)["error"]) == (404, "no_such_client")
    assert await snapshot(relay) == before
    by_member = await h.call(
        "PUT",
        f"/clients/{who.id}/certificate",
        signer=who,
        body={"certificate": member_certificate(h, person, {"blog": {"policy-admin"}})},
    )
    assert (by_member.status_code, error_of(by_member)["error"]) == (403, "approver_required")


async def test_revoking_the_last_role_leaves_no_member_and_disabling_ends_it(
    h: Harness, relay: Relay
) -> None:
    first = h.vault.approvers[0]
    item, _ = await h.store_direct(first, "shop/prod/db", PASSWORD)
    who = await member(h, "shop", "writer")
    person = _human(who)
    pending = await h.ask(who, h.access(who, [(item, "shop/prod/db", ["password"])]))
    assert pending.status_code == 201
    earlier = await h.ask(who, h.access(who, [(item, "shop/prod/db", ["password"])], ttl=40))
    assert earlier.status_code == 201
    assert isinstance(relay.clock, Clock)
    relay.clock.now += 1
    # Made a viewer: a release given after it is not delivered (a viewer reads nothing).
    viewer = await recertify(h, who.id, member_certificate(h, person, {"shop": {"viewer"}}))
    assert viewer.status_code == 200, viewer.text
    assert (await h.release_as(first, earlier.json()["id"])).status_code == 200
    held = await h.envelope(who, earlier.json()["id"])
    assert (held.status_code, error_of(held)["error"]) == (403, "role_required")
    relay.clock.now += 1
    stripped = await recertify(h, who.id, member_certificate(h, person, {}))
    assert stripped.status_code == 200, stripped.text
    assert stripped.json()["roles"] == {}
    async with relay.read() as conn:
        assert (await conn.execute(select(member_roles))).all() == []
    listed = await h.call("GET", "/members", signer=first)
    assert listed.json()["members"] == []
    # A release given before the revocation is not delivered after it.
    released = await h.release_as(first, pending.json()["id"])
    assert released.status_code == 200, released.text
    late = await h.envelope(who, pending.json()["id"])
    assert late.status_code == 403, late.text
    assert await _items(h, who) == set()
    disabled = await h.call("POST", f"/clients/{who.id}/disable", signer=first)
    assert disabled.status_code == 200
    after = await h.call("GET", "/items", signer=who)
    assert after.status_code == 401


async def test_a_login_without_an_invite_is_no_member(h: Harness, relay: Relay) -> None:
    person = Human()
    started = await start(h, person, None)
    assert "invite" not in started.json()
    async with relay.read() as conn:
        [row] = (await conn.execute(select(device_codes))).mappings().all()
    assert (row["invite_id"], row["invite_project"], row["invite_role"]) == (None, None, None)
