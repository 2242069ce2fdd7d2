"""Machines: bootstrap tokens, the scripts that use them, registration and approval, on both
backends; every refusal is a 4xx with a hint, audited, and changes nothing else."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from login_support import Human, audit_rows, certificate, signed
from relay_support import Vault, error_of
from sqlalchemy import select, update

from sealbox.server.relay import Relay
from sealbox.server.store.tables import (
    bootstrap_tokens,
    clients,
    grants,
    machine_registrations,
)

pytestmark = pytest.mark.anyio


async def _make_token(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, *, grants_: list[str] | None = None,
    scopes: list[str] | None = None, name: str = "api",
) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {"name": name, "grants": grants_ or ["shop/prod/*"]}
    if scopes is not None:
        body["scopes"] = scopes
    response = await signed(client, relay, "POST", f"/v1/vaults/{vault.id}/bootstrap-tokens",
                            by=vault.approvers[0], json=body)  # fmt: skip
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _register(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, token: str, machine: Human, *,
    sign_as: Human | None = None, name: str | None = None,
) -> httpx.Response:  # fmt: skip
    body: dict[str, Any] = {"token": token, "client_id": machine.id,
                            "sig_pk": machine.sig.verify_key().to_text()}  # fmt: skip
    if name is not None:
        body["name"] = name
    return await signed(client, relay, "POST", f"/v1/vaults/{vault.id}/machine-registrations",
                        by=sign_as or machine, json=body)  # fmt: skip


async def _poll(client: httpx.AsyncClient, relay: Relay, vault: Vault, machine: Human,
                *, sign_as: Human | None = None) -> httpx.Response:  # fmt: skip
    return await signed(client, relay, "GET",
                        f"/v1/vaults/{vault.id}/machine-registrations/{machine.id}",
                        by=sign_as or machine)  # fmt: skip


async def _pending(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> list[dict[str, Any]]:
    response = await signed(client, relay, "GET", f"/v1/vaults/{vault.id}/machine-registrations",
                            by=vault.approvers[0])  # fmt: skip
    assert response.status_code == 200, response.text
    return list(response.json()["machine_registrations"])


def _machine_cert(vault: Vault, relay: Relay, machine: Human, scopes: tuple[str, ...]) -> str:
    machine.kind = "machine"
    return certificate(vault, relay, machine.info, scopes=scopes)


async def _approve(client: httpx.AsyncClient, relay: Relay, vault: Vault, machine: Human,
                   cert: str) -> httpx.Response:  # fmt: skip
    return await signed(
        client, relay, "POST",
        f"/v1/vaults/{vault.id}/machine-registrations/{machine.id}/approve",
        by=vault.approvers[0], json={"certificate": cert},
    )  # fmt: skip


async def _rows(relay: Relay) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    async with relay.read() as conn:
        for table in (bootstrap_tokens, machine_registrations, clients, grants):
            rows = (await conn.execute(select(table))).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


async def _dump(relay: Relay) -> str:
    """Every row of every table, as text: to show what the relay never stores."""
    from sealbox.server.store.tables import metadata

    parts = []
    async with relay.read() as conn:
        for table in metadata.sorted_tables:
            parts.extend(repr(tuple(r)) for r in (await conn.execute(select(table))).all())
    return "\n".join(parts)


async def test_a_machine_registers_with_a_token_and_is_approved(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    made = await _make_token(client, relay, vault, grants_=["shop/prod/*", "shop/prod/db"])
    token = made["token"]
    assert token.startswith("sbx_bt_")
    assert made["scopes"] == ["read"]  # the default
    assert made["grants"] == ["shop/prod/*", "shop/prod/db"]
    assert made["expires_at"] == int(relay.now()) + 600
    assert made["script_url"].endswith(f"/v1/bootstrap/{token}")
    assert token not in await _dump(relay)  # stored only hashed

    # Serving the script does not spend the token.
    script = await client.get(f"/v1/bootstrap/{token}")
    assert script.status_code == 200, script.text
    assert f"token='{token}'" in script.text
    assert "machine register" in script.text

    machine = Human("api-7f3", kind="machine")
    registered = await _register(client, relay, vault, token, machine)
    assert registered.status_code == 201, registered.text
    code = registered.json()["user_code"]
    assert registered.json()["name"] == "api"  # the token's name: the machine gave none
    assert registered.json()["client_id"] == machine.id

    [entry] = await _pending(client, relay, vault)
    key = machine.sig.verify_key()
    assert entry["client_id"] == machine.id
    assert entry["user_code"] == code
    assert entry["key_safety_code"] == key.safety_code()
    assert entry["key_fingerprint"] == key.fingerprint()
    assert entry["grants"] == ["shop/prod/*", "shop/prod/db"]
    assert entry["scopes"] == ["read"]
    assert entry["token_created_by"] == vault.approvers[0].id
    assert "source_ip" in entry["reported_by_server"]

    polled = await _poll(client, relay, vault, machine)
    assert polled.status_code == 200, polled.text
    assert polled.json()["state"] == "pending"
    assert "certificate" not in polled.json()

    cert = _machine_cert(vault, relay, machine, ("read", "items:shop/prod/*", "items:shop/prod/db"))
    approved = await _approve(client, relay, vault, machine, cert)
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved"
    assert await _pending(client, relay, vault) == []

    polled = await _poll(client, relay, vault, machine)
    assert polled.json()["state"] == "approved"
    assert polled.json()["certificate"] == cert

    # It is a client now, with the asked grants, and signs its own requests.
    shown = await signed(client, relay, "GET", f"/v1/vaults/{vault.id}/clients/{machine.id}",
                         by=vault.approvers[0])  # fmt: skip
    assert shown.json()["kind"] == "machine"
    assert sorted(shown.json()["grants"]) == ["shop/prod/*", "shop/prod/db"]
    who = await signed(client, relay, "GET", f"/v1/vaults/{vault.id}/whoami", by=machine)
    assert who.status_code == 200, who.text
    assert who.json()["id"] == machine.id

    actions = [r["action"] for r in await audit_rows(relay, vault.id)]
    for action in ("bootstrap.token_created", "bootstrap.script_served", "machine.registered",
                   "machine.approved"):  # fmt: skip
        assert action in actions
    assert token not in repr(await audit_rows(relay, vault.id))

    # The spent token registers nothing more, and its script is refused.
    again = await _register(client, relay, vault, token, Human("thief", kind="machine"))
    assert again.status_code == 410
    assert error_of(again)["error"] == "bootstrap_token_used"
    spent_script = await client.get(f"/v1/bootstrap/{token}")
    assert spent_script.status_code == 410
    assert spent_script.text.startswith("echo 'sealbox: this bootstrap token was already used")
    assert spent_script.text.rstrip().endswith("exit 1")


async def test_a_machine_may_name_itself_and_ask_to_write(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    made = await _make_token(client, relay, vault, scopes=["read", "write"])
    machine = Human(kind="machine")
    registered = await _register(client, relay, vault, made["token"], machine, name="api-2")
    assert registered.status_code == 201, registered.text
    [entry] = await _pending(client, relay, vault)
    assert (entry["name"], entry["token_name"]) == ("api-2", "api")
    assert entry["scopes"] == ["read", "write"]
    # A certificate without write is not what the token asked for.
    narrower = _machine_cert(vault, relay, machine, ("read", "items:shop/prod/*"))
    refused = await _approve(client, relay, vault, machine, narrower)
    assert refused.status_code == 400
    cert = _machine_cert(vault, relay, machine, ("read", "write", "items:shop/prod/*"))
    assert (await _approve(client, relay, vault, machine, cert)).status_code == 200


@pytest.mark.parametrize("case", ["unknown", "expired", "used", "other-prefix"])
async def test_a_bad_token_is_refused_audited_and_changes_nothing(
    client: httpx.AsyncClient, relay: Relay, vault: Vault, case: str
) -> None:
    made = await _make_token(client, relay, vault)
    token = made["token"]
    if case == "unknown":
        token = "sbx_bt_" + "A" * 43
    elif case == "other-prefix":
        token = "sbx_at_" + token.removeprefix("sbx_bt_")
    elif case == "expired":
        # Ten minutes on (request signatures check the real clock, so the row ages instead).
        async with relay.tx() as tx:
            await tx.conn.execute(update(bootstrap_tokens).values(
                expires_at=int(relay.now()), created_at=int(relay.now()) - 600))  # fmt: skip
    else:
        first = await _register(client, relay, vault, token, Human(kind="machine"))
        assert first.status_code == 201
    before = await _rows(relay)
    events = len(await audit_rows(relay, vault.id))

    response = await _register(client, relay, vault, token, Human(kind="machine"))
    expected = {"unknown": (404, "bootstrap_token_unknown"),
                "other-prefix": (404, "bootstrap_token_unknown"),
                "expired": (410, "bootstrap_token_expired"),
                "used": (410, "bootstrap_token_used")}[case]  # fmt: skip
    assert response.status_code == expected[0], response.text
    body = error_of(response)
    assert body["error"] == expected[1]
    assert "sealbox machine token create" in body["hint"]
    assert await _rows(relay) == before
    rows = await audit_rows(relay, vault.id)
    assert len(rows) == events + 1
    assert rows[-1]["action"] == "bootstrap.refused"
    assert rows[-1]["severity"] == "warning"
    assert rows[-1]["detail"]["error"] == expected[1]
    assert token not in repr(rows)

    script = await client.get(f"/v1/bootstrap/{token}", params={"shell": "powershell"})
    assert script.status_code == expected[0]
    assert script.text.startswith("Write-Error 'sealbox: ")


async def test_registration_must_be_signed_by_the_key_it_registers(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    made = await _make_token(client, relay, vault)
    machine, other = Human(kind="machine"), Human(kind="machine")
    before = await _rows(relay)
    # Signed by another key: refused, and the token is not spent.
    forged = await _register(client, relay, vault, made["token"], machine, sign_as=other)
    assert forged.status_code == 401
    assert error_of(forged)["error"] == "unknown_key"
    unsigned = await client.post(
        f"/v1/vaults/{vault.id}/machine-registrations",
        json={"token": made["token"], "client_id": machine.id,
              "sig_pk": machine.sig.verify_key().to_text()},
    )  # fmt: skip
    assert unsigned.status_code == 401
    assert error_of(unsigned)["error"] == "signature_required"
    assert await _rows(relay) == before
    assert (await _register(client, relay, vault, made["token"], machine)).status_code == 201

    # Only the machine's own key learns the outcome.
    stranger = Human(kind="machine")
    stranger.id = machine.id
    peek = await _poll(client, relay, vault, machine, sign_as=stranger)
    assert peek.status_code == 401
    assert error_of(peek)["error"] == "signature_invalid"


async def test_approval_must_certify_exactly_what_was_asked(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    made = await _make_token(client, relay, vault, grants_=["shop/prod/*"])
    machine = Human(kind="machine")
    assert (await _register(client, relay, vault, made["token"], machine)).status_code == 201
    before = await _rows(relay)
    events = len(await audit_rows(relay, vault.id))
    wrong: list[tuple[str, str]] = [
        # No items: scope: the certificate would not carry the stage isolation.
        (_machine_cert(vault, relay, machine, ("read",)), "certificate_mismatch"),
        (_machine_cert(vault, relay, machine, ("read", "items:shop/*/*")), "certificate_mismatch"),
    ]
    human = Human(kind="human")
    human.id, human.sig = machine.id, machine.sig
    wrong.append((certificate(vault, relay, human.info, scopes=("read", "items:shop/prod/*")),
                  "certificate_mismatch"))  # fmt: skip
    other = Human(kind="machine")
    other.id = machine.id
    wrong.append((_machine_cert(vault, relay, other, ("read", "items:shop/prod/*")),
                  "certificate_mismatch"))  # fmt: skip
    for cert, error in wrong:
        refused = await _approve(client, relay, vault, machine, cert)
        assert refused.status_code == 400, refused.text
        assert error_of(refused)["error"] == error
    assert await _rows(relay) == before
    rows = await audit_rows(relay, vault.id)
    assert [r["action"] for r in rows[events:]] == ["machine.approval_refused"] * len(wrong)
    assert (await _poll(client, relay, vault, machine)).json()["state"] == "pending"


async def test_a_denied_machine_learns_it_and_cannot_sign_requests(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    made = await _make_token(client, relay, vault)
    machine = Human(kind="machine")
    assert (await _register(client, relay, vault, made["token"], machine)).status_code == 201
    denied = await signed(
        client, relay, "POST", f"/v1/vaults/{vault.id}/machine-registrations/{machine.id}/deny",
        by=vault.approvers[0],
    )  # fmt: skip
    assert denied.status_code == 200, denied.text
    assert (await _poll(client, relay, vault, machine)).json()["state"] == "denied"
    who = await signed(client, relay, "GET", f"/v1/vaults/{vault.id}/whoami", by=machine)
    assert who.status_code == 401
    late = await _approve(
        client,
        relay,
        vault,
        machine,
        _machine_cert(vault, relay, machine, ("read", "items:shop/prod/*")),
    )
    assert late.status_code == 409
    assert error_of(late)["error"] == "registration_closed"
    actions = [r["action"] for r in await audit_rows(relay, vault.id)]
    assert "machine.denied" in actions


async def test_only_approvers_make_tokens_and_tokens_are_checked(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    url = f"/v1/vaults/{vault.id}/bootstrap-tokens"
    nobody = await client.post(url, json={"name": "api", "grants": ["shop/prod/*"]})
    assert nobody.status_code == 401
    stranger = Human(kind="machine")
    forged = await signed(client, relay, "POST", url, by=stranger,
                          json={"name": "api", "grants": ["shop/prod/*"]})  # fmt: skip
    assert forged.status_code == 401
    for body, status, error in [
        ({"name": "api", "grants": ["shop/*"]}, 400, "invalid_pattern"),
        ({"name": "api", "grants": []}, 422, "invalid_request"),
        ({"name": "api\u202e", "grants": ["shop/prod/*"]}, 400, "invalid_name"),
        ({"name": "api", "grants": ["shop/prod/*"], "scopes": ["admin"]}, 422, "invalid_request"),
    ]:
        response = await signed(client, relay, "POST", url, by=vault.approvers[0], json=body)
        assert response.status_code == status, response.text
        assert error_of(response)["error"] == error
    async with relay.read() as conn:
        assert (await conn.execute(select(bootstrap_tokens))).all() == []


async def test_the_three_scripts_quote_what_they_carry(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    made = await _make_token(client, relay, vault, name='api\'s "db" $(reboot)')
    token = made["token"]
    sh = (await client.get(f"/v1/bootstrap/{token}")).text
    k8s = (await client.get(f"/v1/bootstrap/{token}", params={"shell": "k8s"})).text
    ps = await client.get(f"/v1/bootstrap/{token}", params={"shell": "powershell"})
    assert ps.status_code == 200
    assert f"$SealboxToken = '{token}'" in ps.text
    assert f"$SealboxServer = '{relay.settings.base_url}'" in ps.text
    assert "& $sealbox machine register --server $SealboxServer" in ps.text
    assert "SEALBOX_PIP_SPEC" in ps.text
    # The name is only in comments: a shell never reads it as code.
    assert all(line.startswith("#") for line in sh.splitlines() if "reboot" in line)
    assert all(line.startswith("#") for line in ps.text.splitlines() if "reboot" in line)
    assert "kubectl create secret generic sealbox-api-s-db-reboot" in k8s
    assert "--from-file=client.key=" in k8s
    bad = await client.get(f"/v1/bootstrap/{token}", params={"shell": "zsh"})
    assert bad.status_code == 422


async def test_two_machines_racing_for_one_token_register_one(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    import asyncio

    made = await _make_token(client, relay, vault)
    racers = [Human(kind="machine") for _ in range(4)]
    answers = await asyncio.gather(
        *(_register(client, relay, vault, made["token"], m) for m in racers)
    )
    assert sorted(a.status_code for a in answers) == [201, 410, 410, 410]
    async with relay.read() as conn:
        rows = (await conn.execute(select(machine_registrations))).all()
        [spent] = (await conn.execute(select(bootstrap_tokens))).all()
    winner = next(m for m, a in zip(racers, answers, strict=True) if a.status_code == 201)
    assert [r.client_id for r in rows] == [winner.id]
    assert spent.used_by == winner.id


async def test_an_expired_registration_can_no_longer_be_approved(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    made = await _make_token(client, relay, vault)
    machine = Human(kind="machine")
    assert (await _register(client, relay, vault, made["token"], machine)).status_code == 201
    async with relay.tx() as tx:
        await tx.conn.execute(update(machine_registrations).values(expires_at=int(relay.now())))
    assert await _pending(client, relay, vault) == []
    assert (await _poll(client, relay, vault, machine)).json()["state"] == "expired"
    late = await _approve(
        client,
        relay,
        vault,
        machine,
        _machine_cert(vault, relay, machine, ("read", "items:shop/prod/*")),
    )
    assert late.status_code == 409
    assert error_of(late)["error"] == "registration_expired"
    unknown = await _poll(client, relay, vault, Human(kind="machine"))
    assert unknown.status_code == 404
    assert error_of(unknown)["error"] == "no_such_registration"


async def test_anonymous_registrations_are_rate_limited_per_address(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    statuses = []
    for _ in range(12):
        response = await _register(client, relay, vault, "sbx_bt_" + "B" * 43,
                                   Human(kind="machine"))  # fmt: skip
        statuses.append(response.status_code)
    assert statuses[:10] == [404] * 10
    assert statuses[10:] == [429, 429]
    # Over the budget nothing is checked at all, not even the signature (which stores a nonce).
    forged = await _register(client, relay, vault, "sbx_bt_x", Human(kind="machine"),
                             sign_as=Human(kind="machine"))  # fmt: skip
    assert forged.status_code == 429
    # Refusals over the limit write nothing: ten audit events, not twelve.
    refused = [r for r in await audit_rows(relay, vault.id) if r["action"] == "bootstrap.refused"]
    assert len(refused) == 10


async def test_the_sweeper_forgets_tokens_and_registrations_an_hour_after_they_expire(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    from sealbox.server.services.housekeeping import sweep

    spent = await _make_token(client, relay, vault)
    machine = Human(kind="machine")
    assert (await _register(client, relay, vault, spent["token"], machine)).status_code == 201
    await _make_token(client, relay, vault)
    now = int(relay.now())
    await sweep(relay, now + 600 + 3600 - 1)
    rows = await _rows(relay)
    assert len(rows["bootstrap_tokens"]) == 2
    assert len(rows["machine_registrations"]) == 1
    await sweep(relay, now + 600 + 3600 + 1)
    rows = await _rows(relay)
    assert rows["bootstrap_tokens"] == rows["machine_registrations"] == []


async def test_late_answers_and_a_taken_id_are_refused_audited_and_change_nothing(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    made = await _make_token(client, relay, vault)
    machine = Human(kind="machine")
    assert (await _register(client, relay, vault, made["token"], machine)).status_code == 201
    deny_url = f"/v1/vaults/{vault.id}/machine-registrations/{machine.id}/deny"
    assert (await signed(client, relay, "POST", deny_url, by=vault.approvers[0])).status_code == 200
    before = await _rows(relay)
    events = len(await audit_rows(relay, vault.id))

    cert = _machine_cert(vault, relay, machine, ("read", "items:shop/prod/*"))
    late = await _approve(client, relay, vault, machine, cert)
    assert (late.status_code, error_of(late)["error"]) == (409, "registration_closed")
    again = await signed(client, relay, "POST", deny_url, by=vault.approvers[0])
    assert (again.status_code, error_of(again)["error"]) == (409, "registration_closed")
    nobody = Human(kind="machine")
    unknown = await signed(
        client, relay, "POST", f"/v1/vaults/{vault.id}/machine-registrations/{nobody.id}/deny",
        by=vault.approvers[0],
    )  # fmt: skip
    assert (unknown.status_code, error_of(unknown)["error"]) == (404, "no_such_registration")
    # A second token cannot register an id that is taken: refused before it is spent.
    second = await _make_token(client, relay, vault)
    taken = await _register(client, relay, vault, second["token"], machine)
    assert (taken.status_code, error_of(taken)["error"]) == (400, "client_exists")

    after = await _rows(relay)
    assert after["machine_registrations"] == before["machine_registrations"]
    assert after["clients"] == before["clients"]
    [unspent] = [r for r in after["bootstrap_tokens"] if r not in before["bootstrap_tokens"]]
    assert None in unspent  # its used_at (and used_by) are still empty
    rows = await audit_rows(relay, vault.id)
    actions = [r["action"] for r in rows[events:]]
    assert actions == ["machine.approval_refused", "machine.denial_refused",
                       "machine.denial_refused", "bootstrap.token_created",
                       "bootstrap.refused"]  # fmt: skip
    assert [r["detail"]["error"] for r in rows[events:] if r["action"] != "bootstrap.token_created"
            ] == ["registration_closed", "registration_closed", "no_such_registration",
                  "client_exists"]  # fmt: skip
