"""Share links through the API, on SQLite and PostgreSQL.

A person's client seals a value under a fresh key and uploads only the
ciphertext; anyone with the link opens it once.  A wrong passphrase destroys
it, its TTL expires it, two viewers at once cannot both get it, machines and
agents are refused, and the audit log records every step without a secret.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from relay_support import Vault, error_of
from sqlalchemy import select
from test_relay_items import Harness, Requester

from sealbox._relay.httpsig import sign_request
from sealbox.crypto import sharelink
from sealbox.crypto.encoding import b64u_decode, b64u_encode
from sealbox.crypto.keys import SigningKey
from sealbox.protocol import ids
from sealbox.protocol import shares as proto
from sealbox.protocol.certificates import issue_certificate
from sealbox.protocol.statements import ClientConstraints, ClientInfo
from sealbox.server.ratelimit import RateLimiter
from sealbox.server.relay import Relay
from sealbox.server.services import housekeeping
from sealbox.server.store.tables import audit_events, clients, shares

pytestmark = pytest.mark.anyio

VALUE = b"s3cret-db-password-\xe2\x9c\x93"
PASSPHRASE = "correct horse battery"


@pytest.fixture
def h(client: httpx.AsyncClient, relay: Relay, vault: Vault) -> Harness:
    return Harness(client, relay, vault)


async def _client(h: Harness, kind: str) -> Requester:
    """A certified client of ``kind`` that signs its calls (as a machine does)."""
    now = h.relay.now()
    key = SigningKey.generate()
    info = ClientInfo(id=ids.new_id(ids.CLIENT), kind=kind, name=f"a {kind}",
                      sig_pk=key.verify_key())  # fmt: skip
    issuer = h.vault.approvers[0]
    certificate = issue_certificate(
        h.directory(), issuer=issuer.id, key=issuer.sig, client=info, scopes=["read", "write"],
        constraints=ClientConstraints(not_after=now + 86400), now=now,
    )  # fmt: skip
    async with h.relay.tx() as tx:
        await tx.conn.execute(
            clients.insert().values(
                vault_id=h.vault.id, id=info.id, kind=kind, name=info.name,
                sig_pk=info.sig_pk.to_text(), certificate=certificate, enrollment=None,
                disabled=False, created_at=now,
            )
        )  # fmt: skip
    return Requester(info.id, key, certificate)


class Sealed:
    """What a sender's client makes: the id, the key (kept), the body (uploaded)."""

    def __init__(
        self, value: bytes = VALUE, *, ttl: int = 3600, passphrase: str | None = None
    ) -> None:
        self.id = proto.new_share_id()
        self.key = sharelink.new_share_key()
        self.value = value
        self.token_bytes = sharelink.open_token(self.key, share_id=self.id)
        self.token = b64u_encode(self.token_bytes)
        nonce, ciphertext = sharelink.seal_share(self.key, value, share_id=self.id)
        self.body: dict[str, Any] = {
            "id": self.id, "nonce": b64u_encode(nonce), "ciphertext": b64u_encode(ciphertext),
            "ttl_seconds": ttl,
            "open_token_hash": b64u_encode(sharelink.open_token_hash(self.token_bytes)),
        }  # fmt: skip
        if passphrase is not None:
            self.body["passphrase"] = passphrase

    def open(self, answer: dict[str, Any]) -> bytes:
        assert answer["id"] == self.id
        nonce, ciphertext = b64u_decode(answer["nonce"]), b64u_decode(answer["ciphertext"])
        return sharelink.open_share(self.key, nonce, ciphertext, share_id=self.id)


async def _create(h: Harness, sender: Requester, sealed: Sealed) -> httpx.Response:
    return await h.call("POST", "/shares", signer=sender, body=sealed.body)


async def _made(h: Harness, sender: Requester, **kw: Any) -> Sealed:
    sealed = Sealed(**kw)
    made = await _create(h, sender, sealed)
    assert made.status_code == 201, made.text
    assert made.json()["path"] == f"/s/{sealed.id}"
    assert made.headers["cache-control"] == "no-store"
    return sealed


async def _open(h: Harness, share: Sealed | str, body: Any = None, **kw: Any) -> httpx.Response:
    """Open ``share``: a :class:`Sealed` one with its open token unless the body has one."""
    if body is None:
        body = {}
    share_id = share if isinstance(share, str) else share.id
    if isinstance(share, Sealed) and isinstance(body, dict) and "token" not in body:
        body = {**body, "token": share.token}
    return await h.http.post(f"/v1/shares/{share_id}/open", json=body, **kw)


async def _rows(relay: Relay) -> list[dict[str, Any]]:
    async with relay.read() as conn:
        return [dict(r._mapping) for r in (await conn.execute(select(shares))).all()]


async def _audit(relay: Relay, vault: str) -> list[dict[str, Any]]:
    async with relay.read() as conn:
        rows = await conn.execute(
            select(audit_events).where(audit_events.c.vault_id == vault)
            .order_by(audit_events.c.seq)
        )  # fmt: skip
        return [dict(r._mapping) for r in rows]


async def _share_events(relay: Relay, vault: str) -> list[tuple[str, str]]:
    return [(e["action"], e["severity"]) for e in await _audit(relay, vault)
            if e["action"].startswith("share.")]  # fmt: skip


async def test_create_then_open_once(h: Harness) -> None:
    alice = await _client(h, "human")
    sealed = await _made(h, alice)
    info = await h.http.get(f"/v1/shares/{sealed.id}")
    assert info.status_code == 200, info.text
    assert info.json()["passphrase"] is False
    assert info.json()["expires_at"] == h.relay.now() + 3600
    # Reading its info spent nothing.
    opened = await _open(h, sealed)
    assert opened.status_code == 200, opened.text
    assert opened.headers["cache-control"] == "no-store"
    assert opened.headers["referrer-policy"] == "no-referrer"
    assert sealed.open(opened.json()) == VALUE
    # Once: the second open and the info say it was opened; the ciphertext is gone.
    again = await _open(h, sealed)
    assert again.status_code == 410
    assert error_of(again)["error"] == "share_opened"
    assert (await h.http.get(f"/v1/shares/{sealed.id}")).status_code == 410
    (row,) = await _rows(h.relay)
    assert row["state"] == "opened"
    assert row["ciphertext"] is None
    assert row["nonce"] is None
    assert await _share_events(h.relay, h.vault.id) == [
        ("share.created", "info"), ("share.opened", "notice"),
    ]  # fmt: skip


async def test_the_relay_stores_the_ciphertext_sealed_at_rest(h: Harness) -> None:
    alice = await _client(h, "human")
    sealed = await _made(h, alice)
    (row,) = await _rows(h.relay)
    assert b64u_decode(sealed.body["ciphertext"]) not in row["ciphertext"]
    assert row["size"] == len(b64u_decode(sealed.body["ciphertext"]))
    assert row["created_by"] == alice.id


async def test_unknown_and_malformed_ids(h: Harness) -> None:
    for share_id in (proto.new_share_id(), "shr_short", "cli_" + "a" * 26):
        got = await _open(h, share_id)
        assert got.status_code == 404, share_id
        assert error_of(got)["error"] == "share_not_found"
        assert (await h.http.get(f"/v1/shares/{share_id}")).status_code == 404


async def test_a_passphrase_is_checked_and_a_wrong_one_destroys(h: Harness) -> None:
    alice = await _client(h, "human")
    sealed = await _made(h, alice, passphrase=PASSPHRASE)
    (row,) = await _rows(h.relay)
    assert row["passphrase_hash"].startswith("$argon2id$")
    assert PASSPHRASE not in row["passphrase_hash"]
    assert (await h.http.get(f"/v1/shares/{sealed.id}")).json()["passphrase"] is True
    # No passphrase: refused, and the share stays (not a guess).
    missing = await _open(h, sealed)
    assert missing.status_code == 403
    assert error_of(missing)["error"] == "share_passphrase_required"
    assert (await _rows(h.relay))[0]["state"] == "live"
    # The right one opens it (in another Unicode form: both sides hash the NFC form).
    right = await _made(h, alice, passphrase="cafe\u0301 au lait")
    opened = await _open(h, right, {"passphrase": "caf\u00e9 au lait"})
    assert opened.status_code == 200, opened.text
    assert right.open(opened.json()) == VALUE
    # A wrong one destroys it: the right one comes too late.
    wrong = await _open(h, sealed, {"passphrase": "wrong horse battery"})
    assert wrong.status_code == 403
    assert error_of(wrong)["error"] == "share_destroyed"
    late = await _open(h, sealed, {"passphrase": PASSPHRASE})
    assert late.status_code == 410
    assert error_of(late)["error"] == "share_destroyed"
    destroyed = next(r for r in await _rows(h.relay) if r["id"] == sealed.id)
    assert destroyed["state"] == "destroyed"
    assert destroyed["ciphertext"] is None
    assert destroyed["passphrase_hash"] is None
    events = await _audit(h.relay, h.vault.id)
    (event,) = [e for e in events if e["action"] == "share.destroyed"]
    assert event["severity"] == "warning"
    assert event["detail"]["share"] == sealed.id
    assert event["source_ip"] == "127.0.0.1"


async def test_a_passphrase_on_a_share_without_one_is_refused(h: Harness) -> None:
    alice = await _client(h, "human")
    sealed = await _made(h, alice)
    got = await _open(h, sealed, {"passphrase": PASSPHRASE})
    assert got.status_code == 400
    assert error_of(got)["error"] == "share_has_no_passphrase"
    assert (await _rows(h.relay))[0]["state"] == "live"


async def test_the_id_alone_neither_opens_nor_destroys(h: Harness) -> None:
    """Knowing a share's id (audit log, access log, a link cut at '#') is not enough: without
    the open token the share reads as unknown, stays live, and a wrong passphrase given with
    a wrong token destroys nothing."""
    h.relay.anonymous_limiter = RateLimiter(rate=1000, burst=1000)
    alice = await _client(h, "human")
    plain = await _made(h, alice)
    guarded = await _made(h, alice, passphrase=PASSPHRASE)
    other = Sealed()
    for share in (plain, guarded):
        for body in ({}, {"token": other.token}, {"token": "not*base64"},
                     {"token": share.token[:-1]},
                     {"token": other.token, "passphrase": "wrong horse battery"},
                     {"passphrase": "wrong horse battery"}):  # fmt: skip
            got = await _open(h, share.id, body)
            assert got.status_code == 404, (body, got.text)
            assert error_of(got)["error"] == "share_not_found"
    assert {r["state"] for r in await _rows(h.relay)} == {"live"}
    # An expired share is not expired by a call without the token either.
    h.relay.clock.now += 3601  # type: ignore[attr-defined]
    assert (await _open(h, plain.id)).status_code == 404
    assert {r["state"] for r in await _rows(h.relay)} == {"live"}
    h.relay.clock.now -= 3601  # type: ignore[attr-defined]
    # Each refusal is audited (with no token in it); the right token still opens.
    refused = [e for e in await _audit(h.relay, h.vault.id)
               if e["action"] == "share.open_refused"]  # fmt: skip
    assert len(refused) == 13
    assert {e["detail"]["reason"] for e in refused} == {"missing_token", "wrong_token"}
    assert all(e["severity"] == "warning" for e in refused)
    log = json.dumps(refused)
    assert other.token not in log
    assert plain.token[:-1] not in log
    assert plain.open((await _open(h, plain)).json()) == VALUE
    assert guarded.open((await _open(h, guarded, {"passphrase": PASSPHRASE})).json()) == VALUE


async def test_the_relay_stores_only_the_token_s_hash(h: Harness) -> None:
    alice = await _client(h, "human")
    sealed = await _made(h, alice)
    (row,) = await _rows(h.relay)
    assert row["open_token_hash"] == sharelink.open_token_hash(sealed.token_bytes)
    assert row["open_token_hash"] != sealed.token_bytes
    assert sealed.open((await _open(h, sealed)).json()) == VALUE
    (row,) = await _rows(h.relay)
    assert row["open_token_hash"] is None
    # A create without the hash, or with one of the wrong length, is refused.
    for change in ({"open_token_hash": None}, {"open_token_hash": "AAAA"},
                   {"open_token_hash": "A" * 42}, {"open_token_hash": "*" * 43}):  # fmt: skip
        body = {**Sealed().body, **change}
        if change["open_token_hash"] is None:
            del body["open_token_hash"]
        got = await h.call("POST", "/shares", signer=alice, body=body)
        assert got.status_code in (400, 422), got.text
    assert len(await _rows(h.relay)) == 1


async def test_expiry_at_open_and_by_the_sweeper(h: Harness) -> None:
    alice = await _client(h, "human")
    first = await _made(h, alice, ttl=60)
    second = await _made(h, alice, ttl=120)
    h.relay.clock.now += 61  # type: ignore[attr-defined]
    got = await _open(h, first)
    assert got.status_code == 410
    assert error_of(got)["error"] == "share_expired"
    assert (await h.http.get(f"/v1/shares/{first.id}")).status_code == 410
    # The second, live still, opens; a third that nobody opens is expired by the sweeper.
    third = await _made(h, alice, ttl=60)
    assert second.open((await _open(h, second)).json()) == VALUE
    h.relay.clock.now += 61  # type: ignore[attr-defined]
    info = await h.http.get(f"/v1/shares/{third.id}")
    assert error_of(info)["error"] == "share_expired"
    await housekeeping.sweep(h.relay, h.relay.now())
    states = {r["id"]: (r["state"], r["ciphertext"]) for r in await _rows(h.relay)}
    assert states == {first.id: ("expired", None), second.id: ("opened", None),
                      third.id: ("expired", None)}  # fmt: skip
    expired = [e for e in await _audit(h.relay, h.vault.id) if e["action"] == "share.expired"]
    assert [e["detail"]["share"] for e in expired] == [first.id, third.id]
    # Spent shares are forgotten after the retention.
    h.relay.clock.now += h.relay.settings.retention_seconds + 1  # type: ignore[attr-defined]
    await housekeeping.sweep(h.relay, h.relay.now())
    assert await _rows(h.relay) == []


async def test_ttl_bounds(h: Harness) -> None:
    alice = await _client(h, "human")
    for ttl in (59, 7 * 86400 + 1, 0, -5):
        got = await _create(h, alice, Sealed(ttl=ttl))
        assert got.status_code == 422, ttl
    assert (await _create(h, alice, Sealed(ttl=7 * 86400))).status_code == 201


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"ttl_seconds": "3600"},
        {"ttl_seconds": 3600.0},
        {"ttl_seconds": True},
        {"nonce": "AAAAAAAAAAAAAAA"},
        {"nonce": "AAAAAAAAAAAAAAAA="},
        {"ciphertext": ""},
        {"ciphertext": "not*base64"},
        {"ciphertext": "AAAAAAAAAAAAAAAAAAAAAAAA="},
        {"ciphertext": "AAAAAAAAAAAAAAAAAAAAAA"},  # 16 bytes: a tag and no value
        {"id": "shr_" + "a" * 25 + "b"},  # non-canonical base32 (trailing bits)
        {"id": "itm_" + "a" * 26},
        {"passphrase": "short"},
        {"passphrase": 12345678},
    ],
)
async def test_strict_body_parsing(h: Harness, change: dict[str, Any]) -> None:
    alice = await _client(h, "human")
    sealed = Sealed()
    got = await h.call("POST", "/shares", signer=alice, body={**sealed.body, **change})
    assert got.status_code in (400, 422), got.text
    assert set(got.json()) == {"error", "message", "hint"}
    assert await _rows(h.relay) == []


async def test_sizes_are_bounded(h: Harness) -> None:
    alice = await _client(h, "human")
    largest = Sealed(b"x" * proto.MAX_VALUE_BYTES)
    assert (await _create(h, alice, largest)).status_code == 201
    too_large = await _create(h, alice, Sealed(b"x" * (proto.MAX_VALUE_BYTES + 1)))
    assert too_large.status_code == 422
    assert len(await _rows(h.relay)) == 1
    for body in ({"passphrase": "p" * (proto.MAX_PASSPHRASE + 1)}, {"other": 1}, []):
        got = await _open(h, largest, body)
        assert got.status_code == 422
    assert largest.open((await _open(h, largest)).json()) == largest.value


async def test_live_shares_are_capped_per_person(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sealbox.server.services import shares as service

    monkeypatch.setattr(service, "MAX_LIVE_PER_CREATOR", 3)
    alice = await _client(h, "human")
    bob = await _client(h, "human")
    made = [await _made(h, alice) for _ in range(3)]
    over = await _create(h, alice, Sealed())
    assert over.status_code == 429, over.text
    assert error_of(over)["error"] == "too_many_shares"
    assert "at most 3" in error_of(over)["message"]
    assert len(await _rows(h.relay)) == 3
    (refused,) = [e for e in await _audit(h.relay, h.vault.id) if e["action"] == "share.refused"]
    assert refused["actor"] == alice.id
    assert refused["detail"] == {"error": "too_many_shares", "live": 3}
    # Per person: another one's are not counted.
    await _made(h, bob)
    # An opened share, or an expired one, no longer counts.
    assert made[0].open((await _open(h, made[0])).json()) == VALUE
    await _made(h, alice, ttl=60)
    assert (await _create(h, alice, Sealed())).status_code == 429
    h.relay.clock.now += 61  # type: ignore[attr-defined]
    await _made(h, alice)


async def test_creates_go_through_the_caller_s_rate_limit(h: Harness) -> None:
    h.relay.limiter = RateLimiter(rate=0.001, burst=1)
    alice = await _client(h, "human")
    await _made(h, alice)
    limited = await _create(h, alice, Sealed())
    assert limited.status_code == 429
    assert error_of(limited)["error"] == "rate_limited"
    assert len(await _rows(h.relay)) == 1


async def test_a_taken_id_is_refused(h: Harness) -> None:
    alice = await _client(h, "human")
    sealed = await _made(h, alice)
    again = await _create(h, alice, sealed)
    assert again.status_code == 409
    assert error_of(again)["error"] == "share_exists"


@pytest.mark.parametrize("kind", ["machine", "agent"])
async def test_machines_and_agents_neither_create_nor_open(h: Harness, kind: str) -> None:
    alice = await _client(h, "human")
    robot = await _client(h, kind)
    made = await _create(h, robot, Sealed())
    assert made.status_code == 403
    assert error_of(made)["error"] == "share_people_only"
    sealed = await _made(h, alice)
    for method, path in (("POST", f"/v1/shares/{sealed.id}/open"),
                         ("GET", f"/v1/shares/{sealed.id}")):  # fmt: skip
        body = {"token": sealed.token} if method == "POST" else None
        request = h.http.build_request(method, path, json=body)
        sign_request(request, key=robot.key, key_id=robot.id, now=h.relay.now())
        got = await h.http.send(request)
        assert got.status_code == 403, got.text
        assert error_of(got)["error"] == "share_not_for_machines"
    # Nothing changed: the person it was meant for still opens it.
    assert (await _rows(h.relay))[0]["state"] == "live"
    refused = [e for e in await _audit(h.relay, h.vault.id) if e["action"] == "request.refused"]
    assert any(e["detail"].get("error") == "share_not_for_machines" for e in refused), refused
    assert sealed.open((await _open(h, sealed)).json()) == VALUE


async def test_a_person_s_signed_call_may_open(h: Harness) -> None:
    alice = await _client(h, "human")
    sealed = await _made(h, alice)
    request = h.http.build_request("POST", f"/v1/shares/{sealed.id}/open",
                                   json={"token": sealed.token})  # fmt: skip
    sign_request(request, key=alice.key, key_id=alice.id, now=h.relay.now())
    got = await h.http.send(request)
    assert got.status_code == 200, got.text


async def test_concurrent_opens_only_one_wins(h: Harness) -> None:
    h.relay.anonymous_limiter = RateLimiter(rate=1000, burst=1000)
    alice = await _client(h, "human")
    for passphrase in (None, PASSPHRASE):
        sealed = await _made(h, alice, passphrase=passphrase)
        body = {} if passphrase is None else {"passphrase": passphrase}
        answers = await asyncio.gather(*(_open(h, sealed, body) for _ in range(8)))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200] + [410] * 7, [a.text for a in answers]
        (won,) = [a for a in answers if a.status_code == 200]
        assert sealed.open(won.json()) == VALUE
    opened = [e for e in await _audit(h.relay, h.vault.id) if e["action"] == "share.opened"]
    assert len(opened) == 2


async def test_concurrent_right_and_wrong_passphrases_spend_it_once(h: Harness) -> None:
    h.relay.anonymous_limiter = RateLimiter(rate=1000, burst=1000)
    alice = await _client(h, "human")
    sealed = await _made(h, alice, passphrase=PASSPHRASE)
    bodies = [{"passphrase": PASSPHRASE}, {"passphrase": "wrong horse battery"}] * 3
    answers = await asyncio.gather(*(_open(h, sealed, b) for b in bodies))
    won = [a for a in answers if a.status_code == 200]
    destroyed = [a for a in answers if a.status_code == 403]
    # Exactly one call spent it: either a right one got the value or a wrong one destroyed it.
    assert len(won) + len(destroyed) == 1, [a.text for a in answers]
    assert all(a.status_code == 410 for a in answers if a not in won + destroyed)
    spent = [e for e in await _audit(h.relay, h.vault.id)
             if e["action"] in ("share.opened", "share.destroyed")]  # fmt: skip
    assert len(spent) == 1


async def test_opens_are_rate_limited_per_address(h: Harness) -> None:
    unknown = proto.new_share_id()
    statuses = [(await _open(h, unknown)).status_code for _ in range(11)]
    assert statuses == [404] * 10 + [429]
    other = await _open(h, unknown, headers={"x-forwarded-for": "203.0.113.9"})
    assert other.status_code == 429  # no trusted proxy: the header is not believed


async def test_the_audit_log_holds_no_secret(h: Harness) -> None:
    h.relay.anonymous_limiter = RateLimiter(rate=1000, burst=1000)
    alice = await _client(h, "human")
    plain = await _made(h, alice)
    guarded = await _made(h, alice, passphrase=PASSPHRASE)
    burnt = await _made(h, alice, passphrase=PASSPHRASE)
    await _open(h, plain)
    await _open(h, guarded, {"passphrase": PASSPHRASE})
    await _open(h, burnt, {"passphrase": "wrong horse battery"})
    log = json.dumps(await _audit(h.relay, h.vault.id), default=str)
    for sealed in (plain, guarded, burnt):
        for secret in (sealed.key.hex(), b64u_encode(sealed.key), sealed.body["ciphertext"],
                       VALUE.hex(), sealed.token, sealed.body["open_token_hash"]):  # fmt: skip
            assert secret not in log
    assert PASSPHRASE not in log
    assert "wrong horse" not in log
    assert VALUE.decode() not in log
    created = [e for e in await _audit(h.relay, h.vault.id) if e["action"] == "share.created"]
    assert [sorted(e["detail"]) for e in created] == [
        ["share", "size", "ttl", "with_passphrase"]
    ] * 3
    assert [e["detail"]["with_passphrase"] for e in created] == [False, True, True]
    assert created[0]["client_id"] == alice.id


async def test_the_page_spends_nothing(h: Harness) -> None:
    alice = await _client(h, "human")
    sealed = await _made(h, alice)
    page = await h.http.get(f"/s/{sealed.id}")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-robots-tag"] == "noindex, nofollow"
    assert b"/console/static/app/share.js" in page.content
    assert (await _rows(h.relay))[0]["state"] == "live"
    # A page that does not exist as a share id is a plain 404; /console/share is no page.
    assert (await h.http.get("/s/nothing")).status_code == 404
    assert (await h.http.get("/console/share")).status_code == 404
    assert sealed.open((await _open(h, sealed)).json()) == VALUE


async def test_every_answer_of_the_share_routes_is_uncached_and_without_referrer(
    h: Harness,
) -> None:
    """Errors too: a cached or referred 404/410/403 would keep a share's id (or, on /s/, a
    URL that may carry the key) where it should not be."""
    h.relay.anonymous_limiter = RateLimiter(rate=1000, burst=1000)
    alice = await _client(h, "human")
    robot = await _client(h, "machine")
    sealed = await _made(h, alice)
    guarded = await _made(h, alice, passphrase=PASSPHRASE)
    spent = await _made(h, alice)
    await _open(h, spent)
    signed = h.http.build_request("GET", f"/v1/shares/{sealed.id}")
    sign_request(signed, key=robot.key, key_id=robot.id, now=h.relay.now())
    answers = {
        "404 unknown": await _open(h, proto.new_share_id()),
        "404 no token": await _open(h, sealed.id),
        "404 info": await h.http.get(f"/v1/shares/{proto.new_share_id()}"),
        "410 spent": await _open(h, spent),
        "410 info": await h.http.get(f"/v1/shares/{spent.id}"),
        "403 passphrase": await _open(h, guarded),
        "400 no passphrase": await _open(h, sealed, {"passphrase": PASSPHRASE}),
        "403 machine": await h.http.send(signed),
        "422 body": await _open(h, sealed, {"other": 1}),
        "405 method": await h.http.delete(f"/v1/shares/{sealed.id}"),
        "404 route": await h.http.get(f"/v1/shares/{sealed.id}/nothing"),
        "404 page": await h.http.get("/s/nothing"),
        "404 page path": await h.http.get(f"/s/{sealed.id}/more"),
        "200 page": await h.http.get(f"/s/{sealed.id}"),
        "422 create": await h.call("POST", "/shares", signer=alice, body={"id": 1}),
        "401 create": await h.http.post(f"/v1/vaults/{h.vault.id}/shares", json={}),
        "413 open": await h.http.post(f"/v1/shares/{sealed.id}/open",
                                      content=b"x" * (h.relay.settings.max_body_bytes + 1)),
    }  # fmt: skip
    for what, answer in answers.items():
        assert str(answer.status_code) == what.split()[0], (what, answer.text)
        assert answer.headers.get_list("cache-control") == ["no-store"], what
        assert answer.headers.get_list("referrer-policy") == ["no-referrer"], what
    # Other routes are left alone.
    assert "referrer-policy" not in (await h.http.get("/v1/nothing")).headers


async def test_sqlite_connections_turn_secure_delete_on(
    backend: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the SQLite build's default (some compile it on, most off), the relay asks."""
    if backend != "sqlite":
        pytest.skip("SQLite only")
    import sqlite3

    from sealbox.server.store.engine import make_engine

    statements: list[str] = []
    connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        connection = connect(*args, **kwargs)
        connection.set_trace_callback(statements.append)
        return connection

    monkeypatch.setattr(sqlite3, "connect", traced)
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")
    finally:
        await engine.dispose()
    assert "PRAGMA secure_delete=ON" in statements


async def test_a_spent_share_s_ciphertext_leaves_the_sqlite_file(
    h: Harness, backend: str, settings: Any
) -> None:
    """SQLite's secure_delete: the sealed-at-rest bytes of an opened share are zeroed in the
    database file, not left in a free page (checked after a checkpoint folds in the WAL)."""
    if backend != "sqlite":
        pytest.skip("secure_delete is SQLite's; PostgreSQL relies on VACUUM (operations docs)")
    from sqlalchemy import text

    async with h.relay.read() as conn:
        assert (await conn.execute(text("PRAGMA secure_delete"))).scalar_one() == 1
    alice = await _client(h, "human")
    sealed = await _made(h, alice, value=bytes(range(256)) * 64)
    (row,) = await _rows(h.relay)
    at_rest = row["ciphertext"]
    assert sealed.open((await _open(h, sealed)).json()) == sealed.value
    async with h.relay.engine.connect() as conn:
        await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    database = (settings.data_dir / "relay.db").read_bytes()
    # A 16 KiB blob spans several pages: no 64-byte run of it is left anywhere in the file.
    assert not any(at_rest[i : i + 64] in database for i in range(0, len(at_rest) - 64, 512))


async def test_the_openapi_document_lists_the_share_routes(h: Harness) -> None:
    document = (await h.http.get("/openapi.json")).json()
    paths = document["paths"]
    assert "post" in paths["/v1/vaults/{vault}/shares"]
    assert "get" in paths["/v1/shares/{share_id}"]
    assert "post" in paths["/v1/shares/{share_id}/open"]
    assert "/s/{share_id}" not in paths


async def test_the_compare_and_set_holds_across_connections(h: Harness) -> None:
    """Two transactions spend one share at once: the second waits for the first (PostgreSQL's
    row lock; SQLite's single writer) and then finds it no longer live."""
    from sealbox.protocol.shares import ShareState
    from sealbox.server.store import shares as store
    from sealbox.server.store.engine import writing

    alice = await _client(h, "human")
    sealed = await _made(h, alice)
    now = h.relay.now()
    outcomes: dict[str, bool] = {}

    async def first() -> None:
        async with writing(h.relay.engine) as conn:
            outcomes["first"] = await store.spend(conn, h.vault.id, sealed.id,
                                                  ShareState.OPENED, now)  # fmt: skip
            # Held open while the second tries: it must not get the share too.
            await asyncio.sleep(0.3)

    async def second() -> None:
        await asyncio.sleep(0.1)
        started = time.monotonic()
        async with writing(h.relay.engine) as conn:
            outcomes["second"] = await store.spend(conn, h.vault.id, sealed.id,
                                                   ShareState.DESTROYED, now)  # fmt: skip
        # It waited for the first transaction (about 0.2 s more), not raced past it.
        outcomes["second_waited"] = time.monotonic() - started > 0.15

    await asyncio.gather(first(), second())
    assert outcomes == {"first": True, "second": False, "second_waited": True}
    assert (await _rows(h.relay))[0]["state"] == "opened"
