"""Release policies: the pure ``policy_for``/``granted`` helpers, and the approver-only API."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from login_support import Human, add_approver, audit_rows, certificate, signed, snapshot
from relay_support import Approver, Vault, error_of
from sqlalchemy import select

from sealbox.protocol import directory as dirs
from sealbox.server.policy import Policy, check_pattern, granted, matches, policy_for
from sealbox.server.relay import Relay
from sealbox.server.store.tables import policies


def _directory(*approvers: Approver) -> dirs.Directory:
    now = int(time.time())
    first, *rest = approvers
    links = [dirs.genesis_link("vlt_" + "a" * 26, first.record, first.sig, now=now)]
    fingerprint = dirs.vault_fingerprint(links[0])
    for other in rest:
        current = dirs.verify_directory(links, pinned=fingerprint)
        links.append(dirs.append_link(current, "add", other.record, signer=first.id,
                                      key=first.sig, now=now))  # fmt: skip
    return dirs.verify_directory(links, pinned=fingerprint)


def _row(pattern: str, approvers: list[str], threshold: int = 1, **kw: Any) -> dict[str, Any]:
    return {"pattern": pattern, "approvers": approvers, "threshold": threshold,
            "expiry_seconds": kw.get("expiry", 300), "max_cache_seconds": kw.get("cache", 0),
            "store_needs_approval": kw.get("store", True)}  # fmt: skip


def test_default_policy_is_any_one_current_approver() -> None:
    a, b = Approver("a"), Approver("b")
    policy = policy_for("app/prod/db", [], _directory(a, b))
    assert policy == Policy(approvers=tuple(sorted([a.id, b.id])), threshold=1,
                            expiry_seconds=300, max_cache_seconds=0,
                            store_needs_approval=True)  # fmt: skip
    other = [_row("web/*/*", [a.id])]
    assert policy_for("app/prod/db", other, _directory(a, b)).approvers == policy.approvers


def test_most_specific_policy_wins() -> None:
    a, b, c = Approver("a"), Approver("b"), Approver("c")
    directory = _directory(a, b, c)
    rows = [
        _row("*/*/*", [a.id], expiry=100),
        _row("app/*/*", [a.id, b.id], 2, expiry=200),
        _row("app/prod/*", [a.id, b.id, c.id], 3, expiry=300, cache=60, store=False),
        _row("app/prod/db", [c.id], expiry=400),
    ]
    assert policy_for("app/prod/db", rows, directory).expiry_seconds == 400
    chosen = policy_for("app/prod/api", rows, directory)
    assert (chosen.threshold, chosen.max_cache_seconds, chosen.store_needs_approval) == (
        3,
        60,
        False,
    )
    assert policy_for("app/dev/db", rows, directory).threshold == 2
    assert policy_for("web/prod/db", rows, directory).expiry_seconds == 100
    # Row order does not matter, and on equal length fewer wildcards win.
    assert policy_for("app/prod/db", list(reversed(rows)), directory).expiry_seconds == 400
    tie = [_row("app/prod/d?", [a.id], expiry=11), _row("app/prod/db", [a.id], expiry=22)]
    assert policy_for("app/prod/db", tie, directory).expiry_seconds == 22


def test_removed_approvers_are_dropped_but_the_threshold_is_kept() -> None:
    a, b, gone = Approver("a"), Approver("b"), Approver("gone")
    policy = policy_for(
        "app/prod/db", [_row("app/*/*", [a.id, gone.id, b.id], 3)], _directory(a, b)
    )
    assert set(policy.approvers) == {a.id, b.id}
    assert policy.threshold == 3  # unreachable now: fails closed until someone fixes the policy


def test_granted_matches_segment_by_segment() -> None:
    assert granted("app/prod/db", ["app/prod/*"])
    assert granted("app/prod/db", ["web/*/*", "app/prod/db"])
    assert not granted("app/prod/db", [])
    assert not granted("app/prod/db", ["app/*"])  # * never crosses a /
    assert not granted("app/prod/db", ["App/prod/db"])  # case matters
    assert not granted("app/prod/db", ["app/prod/d"])
    assert granted("app/prod/db", ["app/pro?/*"])
    assert not matches("app/prod/x/db", "app/*/db")
    assert matches("app/prod/db.v2", "app/prod/db.*")


@pytest.mark.parametrize(
    "pattern",
    ["app/prod", "a/b/c/d", "app/[ab]/db", "app//db", "../a/b", ".x/a/b", "a/b/c!", "",
     "a/b/" + "c" * 65, "a/b/c\n"],
)  # fmt: skip
def test_bad_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        check_pattern(pattern)


@pytest.mark.parametrize("pattern", ["app/prod/db", "*/*/*", "app/prod-2/db_x.y", "a?/b*/c"])
def test_good_patterns_are_accepted(pattern: str) -> None:
    assert check_pattern(pattern) == pattern


# --- the API, on both backends -------------------------------------------------------------------


@pytest.mark.anyio
async def test_set_replace_list_and_delete_policies(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    second = await add_approver(client, relay, vault, "phone")
    first = vault.approvers[0]
    url = f"/v1/vaults/{vault.id}/policies"
    body = {"pattern": "app/prod/*", "approvers": [second.id, first.id], "threshold": 2}
    put = await signed(client, relay, "PUT", url, by=first, json=body)
    assert put.status_code == 200, put.text
    assert put.json() == {"pattern": "app/prod/*", "approvers": sorted([first.id, second.id]),
                          "threshold": 2, "expiry_seconds": 300, "max_cache_seconds": 0,
                          "store_needs_approval": True, "cidrs": [], "hours": [],
                          "max_reads": None, "cosigner": None, "destroy_at": None,
                          "rotate_after": None, "statement": None, "signed": False}  # fmt: skip
    replaced = await signed(client, relay, "PUT", url, by=second, json={
        "pattern": "app/prod/*", "approvers": [first.id], "threshold": 1, "expiry_seconds": 60,
        "max_cache_seconds": 120, "store_needs_approval": False,
    })  # fmt: skip
    assert replaced.status_code == 200, replaced.text
    other = await signed(
        client,
        relay,
        "PUT",
        url,
        by=first,
        json={"pattern": "app/*/*", "approvers": [second.id], "threshold": 1},
    )
    assert other.status_code == 200
    listed = await signed(client, relay, "GET", url, by=first)
    assert [p["pattern"] for p in listed.json()["policies"]] == ["app/*/*", "app/prod/*"]
    assert listed.json()["policies"][1]["expiry_seconds"] == 60

    # What another route will do: load the rows and ask policy_for.
    async with relay.read() as conn:
        rows = [dict(r) for r in (await conn.execute(select(policies))).mappings()]
    chosen = policy_for("app/prod/db", rows, vault.directory())
    assert chosen == Policy(approvers=(first.id,), threshold=1, expiry_seconds=60,
                            max_cache_seconds=120, store_needs_approval=False,
                            pattern="app/prod/*")  # fmt: skip
    assert policy_for("app/dev/db", rows, vault.directory()).approvers == (second.id,)

    deleted = await signed(client, relay, "DELETE", url, by=first, params={"pattern": "app/prod/*"})
    assert deleted.status_code == 204, deleted.text
    again = await signed(client, relay, "DELETE", url, by=first, params={"pattern": "app/prod/*"})
    assert (again.status_code, error_of(again)["error"]) == (404, "no_such_policy")
    listed = await signed(client, relay, "GET", url, by=first)
    assert [p["pattern"] for p in listed.json()["policies"]] == ["app/*/*"]
    actions = [e["action"] for e in await audit_rows(relay, vault.id)]
    assert actions.count("policy.set") == 3
    assert actions.count("policy.removed") == 1


@pytest.mark.anyio
async def test_bad_policies_are_refused_and_change_nothing(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    first = vault.approvers[0]
    url = f"/v1/vaults/{vault.id}/policies"
    await signed(
        client,
        relay,
        "PUT",
        url,
        by=first,
        json={"pattern": "app/prod/*", "approvers": [first.id], "threshold": 1},
    )
    machine = Human("m", kind="machine")
    registered = await signed(
        client,
        relay,
        "POST",
        f"/v1/vaults/{vault.id}/clients",
        by=first,
        json={"certificate": certificate(vault, relay, machine.info)},
    )
    assert registered.status_code == 201
    good: dict[str, Any] = {"pattern": "app/prod/*", "approvers": [first.id], "threshold": 1}
    stranger = Approver("stranger").id
    before = await snapshot(relay)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**good, "approvers": [stranger]}, 400, "invalid_policy"),
        ({**good, "approvers": [first.id, stranger], "threshold": 1}, 400, "invalid_policy"),
        ({**good, "approvers": [first.id, first.id]}, 400, "invalid_policy"),
        ({**good, "threshold": 0}, 400, "invalid_policy"),
        ({**good, "threshold": 2}, 400, "invalid_policy"),
        ({**good, "approvers": []}, 422, "invalid_request"),
        ({**good, "expiry_seconds": 9}, 422, "invalid_request"),
        ({**good, "expiry_seconds": 3601}, 422, "invalid_request"),
        ({**good, "max_cache_seconds": -1}, 422, "invalid_request"),
        ({**good, "pattern": "app/prod"}, 400, "invalid_pattern"),
        ({**good, "pattern": "app/[p]/*"}, 400, "invalid_pattern"),
        ({k: v for k, v in good.items() if k != "threshold"}, 422, "invalid_request"),
    ]
    for body, status, error in cases:
        response = await signed(client, relay, "PUT", url, by=first, json=body)
        assert (response.status_code, error_of(response)["error"]) == (status, error), body
    unsigned = await client.put(url, json=good)
    assert unsigned.status_code == 401
    bad_delete = await signed(client, relay, "DELETE", url, by=first, params={"pattern": "x"})
    assert (bad_delete.status_code, error_of(bad_delete)["error"]) == (400, "invalid_pattern")
    assert await snapshot(relay) == before
    # A client that is no member of the project (no policy-admin role) is refused, audited.
    by_client = await signed(client, relay, "PUT", url, by=machine, json=good)
    assert (by_client.status_code, error_of(by_client)["error"]) == (403, "role_required")
    after = await snapshot(relay)
    assert {k: v for k, v in after.items() if k != "audit_events"} == {
        k: v for k, v in before.items() if k != "audit_events"
    }
    assert (await audit_rows(relay, vault.id))[-1]["action"] == "request.refused"
