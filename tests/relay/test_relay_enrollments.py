"""CI enrollments on the relay, on both backends: made by approvers, used by runners.

A runner signs with the enrollment's delegation key, certifies a fresh machine
key within the enrollment, and registers it; the relay checks the chain and
the constraints and counts uses by compare-and-set.  Enrolled machines are
held to their enrollment on every later call.  Every refusal is a clear 4xx,
audited, and changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
from relay_support import Approver, Vault, error_of
from sqlalchemy import select
from test_relay_items import PASSWORD, Harness, Requester

from sealbox.approver.keystore import ApproverKeys
from sealbox.approver.review import review
from sealbox.crypto.keys import SigningKey
from sealbox.errors import CertificateInvalid
from sealbox.protocol import ids
from sealbox.protocol.certificates import issue_enrollment, issue_machine_certificate
from sealbox.protocol.statements import (
    ClientConstraints,
    ClientInfo,
    EnrollmentConstraints,
    EnrollmentStatement,
)
from sealbox.server.relay import Relay
from sealbox.server.store.tables import audit_events, clients, enrollments, grants, requests

pytestmark = pytest.mark.anyio

DAY = 86400


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


class Enrollment:
    """What `sealbox ci enrollment create` makes: the delegation key and the signed statement."""

    def __init__(self, h: Harness, *, approver: Approver | None = None, projects=("shop",),
                 items=("shop/ci/*",), max_uses: int = 50, not_after: int | None = None,
                 cidrs: Sequence[str] = (), hostname: str | None = None) -> None:  # fmt: skip
        approver = approver or h.vault.approvers[0]
        self.h = h
        self.key = SigningKey.generate()
        self.id = ids.new_id(ids.ENROLLMENT)
        self.constraints = EnrollmentConstraints(
            projects=tuple(projects), items=tuple(items), max_uses=max_uses,
            not_after=not_after or h.relay.now() + 30 * DAY, cidrs=tuple(cidrs),
            hostname=hostname,
        )  # fmt: skip
        self.statement = issue_enrollment(
            h.directory(), issuer=approver.id, key=approver.sig, enrollment_id=self.id,
            delegation_key=self.key.verify_key(), constraints=self.constraints,
            now=h.relay.now(),
        )  # fmt: skip
        self.runner = Requester(self.id, self.key, "")

    @property
    def parsed(self) -> EnrollmentStatement:
        return EnrollmentStatement(
            vault=self.h.vault.id, id=self.id, sig_pk=self.key.verify_key(),
            constraints=self.constraints, issuer=self.h.vault.approvers[0].id, at=0,
        )  # fmt: skip

    def certificate(self, *, key: SigningKey | None = None, kind: str = "machine",
                    scopes: Sequence[str] = ("read",), ttl: int = 3600,
                    cidrs: Sequence[str] | None = None,
                    hostname: str | None = None) -> tuple[str, ClientInfo, SigningKey]:  # fmt: skip
        key = key or SigningKey.generate()
        info = ClientInfo(id=ids.new_id(ids.CLIENT), kind=kind, name="ci runner",
                          sig_pk=key.verify_key())  # fmt: skip
        now = self.h.relay.now()
        cert = issue_machine_certificate(
            self.parsed, delegation_key=self.key, client=info, scopes=scopes,
            constraints=ClientConstraints(
                not_after=now + ttl,
                cidrs=tuple(self.constraints.cidrs if cidrs is None else cidrs),
                hostname=hostname if hostname is not None else self.constraints.hostname,
            ),
            now=now,
        )  # fmt: skip
        return cert, info, key


async def create(h: Harness, enrollment: Enrollment, by: Approver | None = None) -> httpx.Response:
    return await h.call("POST", "/enrollments", signer=by or h.vault.approvers[0],
                        body={"statement": enrollment.statement})  # fmt: skip


async def made(h: Harness, **kw: Any) -> Enrollment:
    enrollment = Enrollment(h, **kw)
    response = await create(h, enrollment)
    assert response.status_code == 201, response.text
    return enrollment


async def register(h: Harness, enrollment: Enrollment, certificate: str, *,
                   hostname: str | None = "runner-1", http: httpx.AsyncClient | None = None,
                   signer: Requester | None = None) -> httpx.Response:  # fmt: skip
    request = h.build("POST", f"/enrollments/{enrollment.id}/machines",
                      signer=signer or enrollment.runner,
                      body={"certificate": certificate, "hostname": hostname})  # fmt: skip
    return await (http or h.http).send(request)


async def enrolled(h: Harness, enrollment: Enrollment, **kw: Any) -> Requester:
    cert, info, key = enrollment.certificate(**{k: v for k, v in kw.items() if k != "http"})
    response = await register(h, enrollment, cert, http=kw.get("http"))
    assert response.status_code == 201, response.text
    return Requester(info.id, key, cert)


@contextlib.asynccontextmanager
async def from_address(h: Harness, ip: str) -> AsyncIterator[httpx.AsyncClient]:
    """The same relay, reached from another source address."""
    app = h.http._transport.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://relay.test") as http:
        yield http


async def rows(relay: Relay, table: Any) -> list[tuple[Any, ...]]:
    async with relay.read() as conn:
        return sorted((tuple(r) for r in (await conn.execute(select(table))).all()), key=repr)


async def state(relay: Relay) -> dict[str, list[tuple[Any, ...]]]:
    """Every row a registration could write (the audit log apart)."""
    return {t.name: await rows(relay, t) for t in (clients, grants, enrollments, requests)}


async def events(relay: Relay, action: str) -> list[dict[str, Any]]:
    async with relay.read() as conn:
        found = await conn.execute(
            select(audit_events).where(audit_events.c.action == action)
            .order_by(audit_events.c.seq)
        )  # fmt: skip
        return [dict(r) for r in found.mappings()]


# --- approvers make, list and revoke -------------------------------------------------------


async def test_an_approver_makes_lists_and_revokes_an_enrollment(h: Harness) -> None:
    enrollment = await made(h, max_uses=3, cidrs=("127.0.0.0/8",), hostname="runner-*")
    listed = await h.call("GET", "/enrollments", signer=h.vault.approvers[0])
    assert listed.status_code == 200, listed.text
    [entry] = listed.json()["enrollments"]
    assert entry["id"] == enrollment.id
    assert entry["statement"] == enrollment.statement
    assert (entry["projects"], entry["items"], entry["max_uses"], entry["uses"]) == (
        ["shop"],
        ["shop/ci/*"],
        3,
        0,
    )
    assert (entry["cidrs"], entry["hostname"], entry["revoked_at"], entry["machines"]) == (
        ["127.0.0.0/8"],
        "runner-*",
        None,
        0,
    )
    [event] = await events(h.relay, "enrollment.created")
    assert event["actor"] == h.vault.approvers[0].id
    assert event["detail"]["max_uses"] == 3
    # The relay holds the public delegation key only.
    assert enrollment.key.to_text() not in str(await rows(h.relay, enrollments))

    revoked = await h.call("POST", f"/enrollments/{enrollment.id}/revoke",
                           signer=h.vault.approvers[0])  # fmt: skip
    assert revoked.json() == {"id": enrollment.id, "revoked": True, "machines_disabled": 0}
    again = await h.call("POST", f"/enrollments/{enrollment.id}/revoke",
                         signer=h.vault.approvers[0])  # fmt: skip
    assert again.json()["revoked"] is False
    assert len(await events(h.relay, "enrollment.revoked")) == 1


async def test_making_an_enrollment_refuses_what_an_approver_did_not_sign(h: Harness) -> None:
    other = await h.add_approver("phone")
    machine = await h.add_client()
    existing = await made(h)
    before = await state(h.relay)
    cases = [
        (Enrollment(h, approver=other), h.vault.approvers[0], 403, "not_the_issuer"),
        (Enrollment(h, projects=(), items=()), None, 400, "enrollment_unbounded"),
        (Enrollment(h, not_after=h.relay.now() - 1), None, 403, "certificate_invalid"),
        (existing, None, 409, "enrollment_exists"),
        (Enrollment(h), machine, 403, "approver_required"),
    ]  # fmt: skip
    for enrollment, by, status, error in cases:
        response = await create(h, enrollment, by)
        assert (response.status_code, error_of(response)["error"]) == (status, error)
    forged = Enrollment(h)
    forged.statement = forged.statement[:-4] + "AAAA"
    response = await create(h, forged)
    assert (response.status_code, error_of(response)["error"]) == (403, "certificate_invalid")
    assert await state(h.relay) == before


# --- runners register machines ---------------------------------------------------------------


async def test_a_runner_registers_a_machine_that_then_signs_its_own_requests(h: Harness) -> None:
    enrollment = await made(h)
    fetched = await h.call("GET", f"/enrollments/{enrollment.id}/statement",
                           signer=enrollment.runner)  # fmt: skip
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == {"statement": enrollment.statement}

    cert, info, key = enrollment.certificate(scopes=("items:shop/ci/deploy", "read"))
    response = await register(h, enrollment, cert)
    assert response.status_code == 201, response.text
    assert response.json()["client_id"] == info.id
    assert response.json()["grants"] == ["shop/ci/*"]
    assert (response.json()["uses"], response.json()["max_uses"]) == (1, 50)
    async with h.relay.read() as conn:
        row = (await conn.execute(select(clients).where(clients.c.id == info.id))).one()
    assert row.enrollment == enrollment.statement
    assert row.kind == "machine"
    # Its own items scope, the enrollment's projects and items: all three hold.
    assert row.limits == [["shop/ci/deploy"], ["shop/*/*"], ["shop/ci/*"]]
    [event] = await events(h.relay, "client.registered")
    assert event["actor"] == enrollment.id
    assert event["detail"]["enrollment_issuer"] == h.vault.approvers[0].id
    assert event["detail"]["hostname"] == "runner-1"

    me = await h.call("GET", "/whoami", signer=Requester(info.id, key, cert))
    assert me.status_code == 200, me.text
    assert me.json()["client_kind"] == "machine"
    listed = await h.call("GET", "/enrollments", signer=h.vault.approvers[0])
    assert listed.json()["enrollments"][0]["machines"] == 1
    assert listed.json()["enrollments"][0]["uses"] == 1


async def test_max_uses_is_counted_and_the_next_registration_is_refused(h: Harness) -> None:
    enrollment = await made(h, max_uses=2)
    for _ in range(2):
        await enrolled(h, enrollment)
    before = await state(h.relay)
    cert, _, _ = enrollment.certificate()
    response = await register(h, enrollment, cert)
    assert (response.status_code, error_of(response)["error"]) == (403, "enrollment_exhausted")
    assert "2 machines" in error_of(response)["message"]
    assert error_of(response)["hint"]
    assert await state(h.relay) == before
    [refused] = await events(h.relay, "enrollment.refused")
    assert refused["detail"] == {"enrollment": enrollment.id, "error": "enrollment_exhausted"}
    assert refused["severity"] == "warning"


async def test_racing_runners_never_exceed_max_uses(h: Harness) -> None:
    import asyncio

    enrollment = await made(h, max_uses=3)
    certs = [enrollment.certificate()[0] for _ in range(8)]
    answers = await asyncio.gather(*(register(h, enrollment, c) for c in certs))
    codes = sorted(a.status_code for a in answers)
    assert codes.count(201) == 3, [a.text for a in answers]
    assert all(code in (201, 403, 409, 503) for code in codes)
    async with h.relay.read() as conn:
        row = (await conn.execute(select(enrollments))).one()
        machines = (await conn.execute(select(clients))).all()
    assert row.uses == 3
    assert len(machines) == 3


async def test_registrations_outside_the_enrollment_are_refused(h: Harness) -> None:
    enrollment = await made(h, cidrs=("127.0.0.3/32",), hostname="runner-*")
    other = await made(h)
    before = await state(h.relay)
    cert, _, _ = enrollment.certificate()
    agent, _, _ = enrollment.certificate(kind="agent")
    writer, _, _ = enrollment.certificate(scopes=("read", "write"))
    wider, _, _ = enrollment.certificate(cidrs=("127.0.0.0/8",))
    outlives, _, _ = enrollment.certificate(ttl=31 * DAY)
    any_host, _, _ = enrollment.certificate(hostname="*")
    async with from_address(h, "127.0.0.3") as inside, from_address(h, "127.0.0.2") as outside:
        cases = [
            # The source address: bound to 127.0.0.2, the enrollment allows 127.0.0.3/32.
            (await register(h, enrollment, cert, http=outside), 403, "source_not_allowed"),
            (await register(h, enrollment, cert, hostname="laptop", http=inside), 403,
             "hostname_not_allowed"),
            (await register(h, enrollment, cert, hostname=None, http=inside), 403,
             "hostname_not_allowed"),
            (await register(h, enrollment, agent, http=inside), 403, "certificate_invalid"),
            (await register(h, enrollment, writer, http=inside), 403, "scope_not_allowed"),
            (await register(h, enrollment, wider, http=inside), 403, "certificate_invalid"),
            (await register(h, enrollment, outlives, http=inside), 403, "certificate_invalid"),
            (await register(h, enrollment, any_host, http=inside), 403, "certificate_invalid"),
            # Signed with another enrollment's key, or for another enrollment.
            (await register(h, enrollment, cert, http=inside, signer=other.runner), 403,
             "not_this_enrollment"),
            (await register(h, other, cert), 403, "certificate_invalid"),
        ]  # fmt: skip
    for response, status, error in cases:
        assert (response.status_code, error_of(response)["error"]) == (status, error), error
    assert await state(h.relay) == before
    refused = await events(h.relay, "enrollment.refused")
    assert len(refused) == len(cases)
    assert refused[0]["source_ip"] == "127.0.0.2"
    # A signature by a key that is no enrollment's, or none: 401, nothing written.
    stranger = Requester(enrollment.id, SigningKey.generate(), "")
    bad = await register(h, enrollment, cert, signer=stranger)
    assert (bad.status_code, error_of(bad)["error"]) == (401, "signature_invalid")
    unsigned = await h.http.post(f"{h.base}/enrollments/{enrollment.id}/machines",
                                 json={"certificate": cert})  # fmt: skip
    assert (unsigned.status_code, error_of(unsigned)["error"]) == (401, "signature_required")
    assert await state(h.relay) == before


async def test_an_enrolled_machine_is_held_to_its_networks_on_every_call(h: Harness) -> None:
    enrollment = await made(h, cidrs=("127.0.0.2/32",))
    async with from_address(h, "127.0.0.2") as inside, from_address(h, "127.0.0.3") as outside:
        machine = await enrolled(h, enrollment, http=inside)
        ok = await inside.send(h.build("GET", "/whoami", signer=machine))
        assert ok.status_code == 200, ok.text
        async with from_address(h, "::ffff:127.0.0.2") as mapped:
            # An IPv4 client of a dual-stack listener is the IPv4 address it is.
            ok = await mapped.send(h.build("GET", "/whoami", signer=machine))
        assert ok.status_code == 200, ok.text
        refused = await outside.send(h.build("GET", "/whoami", signer=machine))
    assert (refused.status_code, error_of(refused)["error"]) == (401, "source_not_allowed")
    [event] = await events(h.relay, "auth.refused")
    assert event["detail"]["error"] == "source_not_allowed"
    assert event["source_ip"] == "127.0.0.3"


async def test_revoking_stops_registrations_and_every_machine_at_once(h: Harness) -> None:
    enrollment = await made(h)
    machine = await enrolled(h, enrollment)
    assert (await h.call("GET", "/whoami", signer=machine)).status_code == 200
    revoked = await h.call("POST", f"/enrollments/{enrollment.id}/revoke",
                           signer=h.vault.approvers[0])  # fmt: skip
    assert revoked.json() == {"id": enrollment.id, "revoked": True, "machines_disabled": 1}
    refused = await h.call("GET", "/whoami", signer=machine)
    assert (refused.status_code, error_of(refused)["error"]) == (401, "unknown_key")
    # Even enabled again by an approver, a machine of a revoked enrollment stays refused.
    enabled = await h.call("POST", f"/clients/{machine.id}/enable", signer=h.vault.approvers[0])
    assert enabled.status_code == 200
    refused = await h.call("GET", "/whoami", signer=machine)
    assert (refused.status_code, error_of(refused)["error"]) == (401, "enrollment_revoked")

    before = await state(h.relay)
    cert, _, _ = enrollment.certificate()
    response = await register(h, enrollment, cert)
    assert (response.status_code, error_of(response)["error"]) == (403, "enrollment_revoked")
    fetched = await h.call("GET", f"/enrollments/{enrollment.id}/statement",
                           signer=enrollment.runner)  # fmt: skip
    assert (fetched.status_code, error_of(fetched)["error"]) == (403, "enrollment_revoked")
    assert await state(h.relay) == before


async def test_an_expired_enrollment_registers_nothing(h: Harness) -> None:
    enrollment = await made(h, not_after=h.relay.now() + 60)
    machine = await enrolled(h, enrollment, ttl=30)
    h.relay.clock.now += 120  # type: ignore[attr-defined]
    before = await state(h.relay)
    cert, _, _ = enrollment.certificate(ttl=30)
    response = await register(h, enrollment, cert)
    assert (response.status_code, error_of(response)["error"]) == (403, "enrollment_expired")
    refused = await h.call("GET", "/whoami", signer=machine)
    assert (refused.status_code, error_of(refused)["error"]) == (401, "certificate_invalid")
    assert await state(h.relay) == before


# --- a leaked token ---------------------------------------------------------------------------


async def test_a_leaked_token_registers_a_machine_that_still_cannot_read_alone(
    h: Harness,
) -> None:
    """Whoever holds the token can enrol a machine, within its limits, and nothing more:
    an item outside them is refused, one inside waits for an approver and is never
    released without one."""
    inside_item, _ = await h.store_direct(h.vault.approvers[0], "shop/ci/deploy", PASSWORD)
    outside_item, _ = await h.store_direct(h.vault.approvers[0], "shop/prod/db", PASSWORD)
    enrollment = await made(h)
    thief = await enrolled(h, enrollment)

    before = await rows(h.relay, requests)
    outside = await h.ask(thief, h.access(thief, [(outside_item, "shop/prod/db", ["password"])]))
    assert (outside.status_code, error_of(outside)["error"]) == (403, "certificate_invalid")
    assert "shop/prod/db is outside" in error_of(outside)["message"]
    # An approver granting more cannot widen it: the enrollment's signed items still hold.
    granted = await h.call("POST", f"/clients/{thief.id}/grants", signer=h.vault.approvers[0],
                           body={"pattern": "shop/*/*"})  # fmt: skip
    assert granted.status_code == 201
    outside = await h.ask(thief, h.access(thief, [(outside_item, "shop/prod/db", ["password"])]))
    assert (outside.status_code, error_of(outside)["error"]) == (403, "certificate_invalid")
    assert await rows(h.relay, requests) == before

    inside = await h.ask(thief, h.access(thief, [(inside_item, "shop/ci/deploy", ["password"])]))
    assert inside.status_code == 201, inside.text
    request_id = inside.json()["id"]
    assert inside.json()["state"] == "pending"
    # Nothing to fetch until an approver releases; the approver verifies the chain.
    early = await h.call("POST", f"/access-requests/{request_id}/envelope", signer=thief)
    assert early.status_code in (409, 404), early.text
    assert await h.state(request_id) == "pending"
    entry = await h.approval(h.vault.approvers[0], request_id)
    assert entry["enrollment"] == enrollment.statement
    # The approver verifies the chain and names its end: enrolled by enr_… (approver …).
    first = h.vault.approvers[0]
    keys = ApproverKeys(server="http://relay.test", vault=h.vault.id,
                        fingerprint=h.vault.fingerprint, record=first.record, hpke=first.hpke,
                        sig=first.sig)  # fmt: skip
    rev = review(entry, directory=h.directory(), keys=keys, now=h.relay.now())
    assert (rev.issuer, rev.enrolled_by, rev.client_kind) == (enrollment.id, first.id, "machine")
    with pytest.raises(CertificateInvalid):
        review({**entry, "enrollment": None}, directory=h.directory(), keys=keys,
               now=h.relay.now())  # fmt: skip
    released = await h.release_as(h.vault.approvers[0], request_id)
    assert released.status_code == 200, released.text
    assert await h.state(request_id) == "released"


async def test_runner_and_approver_endpoints_refuse_the_other_side(h: Harness) -> None:
    enrollment = await made(h)
    machine = await enrolled(h, enrollment)
    before = await state(h.relay)
    # A runner's key is no approver's and no client's; a machine is no runner.
    for signer in (enrollment.runner, machine):
        listed = await h.call("GET", "/enrollments", signer=signer)
        assert listed.status_code in (401, 403), listed.text
    as_machine = await h.call("GET", f"/enrollments/{enrollment.id}/statement", signer=machine)
    assert (as_machine.status_code, error_of(as_machine)["error"]) == (401, "unknown_key")
    unknown = Requester(ids.new_id(ids.ENROLLMENT), SigningKey.generate(), "")
    fetched = await h.call("GET", f"/enrollments/{unknown.id}/statement", signer=unknown)
    assert (fetched.status_code, error_of(fetched)["error"]) == (401, "unknown_key")
    missing = await h.call("POST", f"/enrollments/{unknown.id}/revoke",
                           signer=h.vault.approvers[0])  # fmt: skip
    assert (missing.status_code, error_of(missing)["error"]) == (404, "no_such_enrollment")
    malformed = await h.call("POST", "/enrollments/enr_nope/revoke", signer=h.vault.approvers[0])
    assert (malformed.status_code, error_of(malformed)["error"]) == (404, "no_such_enrollment")
    assert await state(h.relay) == before
