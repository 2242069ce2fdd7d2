"""The console's passkeys and sessions against the real app, on SQLite and PostgreSQL.

Setup of the first approver from the browser, sign-in, sign-out, the session
cookie on the approver endpoints with its CSRF token and Origin checks, and
refusals that change nothing.  WebAuthn responses come from a software
authenticator (console_support.py), so py_webauthn checks real signatures.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from console_support import LOCAL_ORIGIN, RELAY_ORIGIN, Browser, BrowserApprover, SoftAuthenticator
from relay_support import Approver, Vault, error_of
from sqlalchemy import func, select
from test_relay_items import PASSWORD, Harness

from sealbox.crypto.encoding import b64u_encode
from sealbox.protocol import directory as dirs
from sealbox.server.app import create_app
from sealbox.server.config import Settings
from sealbox.server.relay import Relay
from sealbox.server.services.directory import ensure_vault
from sealbox.server.store.tables import (
    audit_events,
    console_challenges,
    console_credentials,
    console_sessions,
    pairing_requests,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, console_origins=(LOCAL_ORIGIN,))


@dataclasses.dataclass
class Console:
    relay: Relay
    app: Any
    http: httpx.AsyncClient
    """Signed calls (never holds a cookie)."""
    vault: str
    setup_token: str

    def browser(self, origin: str = RELAY_ORIGIN) -> Browser:
        """A fresh browser: its own cookie jar."""
        http = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app),
                                 base_url="http://relay.test")  # fmt: skip
        self._opened.append(http)
        return Browser(http, self.vault, origin)

    _opened: list[httpx.AsyncClient] = dataclasses.field(default_factory=list)


@pytest.fixture
async def console(relay: Relay) -> AsyncIterator[Console]:
    app = create_app(relay)
    status = await ensure_vault(relay)
    assert status.setup_token is not None
    # Without the app's lifespan: its sweeper starts a sweep at once, and a test this short
    # would cancel it mid-query on PostgreSQL at teardown.  Nothing here needs the background
    # jobs or the LISTEN connection (wake-ups are sent on commit either way).
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://relay.test"
    ) as http:
        found = Console(relay, app, http, status.vault, status.setup_token)
        try:
            yield found
        finally:
            for opened in found._opened:
                await opened.aclose()


async def _options(b: Browser, token: str, approver: Approver, **over: Any) -> httpx.Response:
    body = {"setup_token": token, "approver_id": approver.id, "name": approver.record.name, **over}
    return await b.post(f"{b.api}/setup/options", body)


async def _set_up(c: Console, b: Browser, approver: BrowserApprover) -> httpx.Response:
    options = await _options(b, c.setup_token, approver)
    assert options.status_code == 200, options.text
    credential = approver.passkey.register(options.json()["publicKey"], b.origin)
    link0 = dirs.genesis_link(c.vault, approver.record, approver.sig, now=c.relay.now())
    done = await b.post(f"{b.api}/setup", {"setup_token": c.setup_token, "link": link0,
                                          "credential": credential})  # fmt: skip
    if done.status_code == 201:
        b.csrf = done.json()["csrf"]
    return done


async def _count(relay: Relay, table: Any, **where: Any) -> int:
    query = select(func.count()).select_from(table)
    for name, value in where.items():
        query = query.where(table.c[name] == value)
    async with relay.read() as conn:
        return int((await conn.execute(query)).scalar_one())


async def _audit(relay: Relay) -> list[dict[str, Any]]:
    async with relay.read() as conn:
        rows = (await conn.execute(select(audit_events).order_by(audit_events.c.seq))).all()
    return [dict(row._mapping) for row in rows]


async def _ready(c: Console) -> bool:
    return bool((await c.http.get("/v1/vault")).json()["ready"])


def _set_up_vault(c: Console, approver: BrowserApprover, link0: str) -> Harness:
    return Harness(c.http, c.relay, Vault(c.vault, approver, link0))


# --- setup ----------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", [RELAY_ORIGIN, LOCAL_ORIGIN])
async def test_setup_from_the_browser(console: Console, origin: str) -> None:
    b = console.browser(origin)
    approver = BrowserApprover("Ana's phone")
    options = await _options(b, console.setup_token, approver)
    assert options.status_code == 200, options.text
    public_key = options.json()["publicKey"]
    assert public_key["user"]["id"] == b64u_encode(approver.id.encode())
    assert public_key["rp"]["id"] == "localhost"
    assert public_key["authenticatorSelection"]["residentKey"] == "required"
    assert public_key["authenticatorSelection"]["userVerification"] == "required"
    assert public_key["attestation"] == "none"

    credential = approver.passkey.register(public_key, origin)
    link0 = dirs.genesis_link(console.vault, approver.record, approver.sig, now=console.relay.now())
    done = await b.post(f"{b.api}/setup", {"setup_token": console.setup_token, "link": link0,
                                          "credential": credential})  # fmt: skip
    assert done.status_code == 201, done.text
    body = done.json()
    assert set(body) == {"vault", "fingerprint", "safety_code", "approver", "csrf", "expires_at"}
    assert body["fingerprint"] == dirs.vault_fingerprint(link0)
    assert body["approver"] == approver.id
    assert body["expires_at"] == console.relay.now() + 12 * 3600
    cookie = done.headers["set-cookie"]
    assert cookie.startswith("sealbox_console=sbx_cs_")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/", "Max-Age=43200"):
        assert attribute.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # the relay under test is on http
    assert await _ready(console)

    session = await b.get(f"{b.api}/session")
    assert session.status_code == 200, session.text
    assert session.json() == {"approver": approver.id, "csrf": body["csrf"],
                              "expires_at": body["expires_at"]}  # fmt: skip
    assert await _count(console.relay, console_credentials, approver_id=approver.id) == 1
    # Only the token's hash is kept.
    token = cookie.split(";", 1)[0].split("=", 1)[1]
    async with console.relay.read() as conn:
        hashes = (await conn.execute(select(console_sessions.c.hash))).scalars().all()
    assert token not in hashes
    assert len(hashes) == 1

    events = await _audit(console.relay)
    actions = [e["action"] for e in events]
    assert "vault.set_up" in actions
    assert "console.signed_in" in actions
    logged = json.dumps([e["detail"] for e in events])
    for secret in (token, body["csrf"], console.setup_token, public_key["challenge"]):
        assert secret not in logged

    # The token is spent: a second setup, even a correct one, is refused.
    again = await _options(console.browser(origin), console.setup_token, BrowserApprover())
    assert (again.status_code, error_of(again)["error"]) == (409, "already_set_up")


CASES = ["token_at_options", "token_at_setup", "replayed_challenge", "other_approver", "no_uv",
         "client_origin", "origin_header", "terminal_kind", "forged_challenge"]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
async def test_setup_refusals_change_nothing(console: Console, case: str) -> None:
    c = console
    b = c.browser()
    approver = BrowserApprover()
    token = "sbx_st_" + "A" * 43 if case == "token_at_options" else c.setup_token
    options = await _options(b, token, approver)
    if case == "token_at_options":
        assert (options.status_code, error_of(options)["error"]) == (403, "invalid_setup_token")
    else:
        assert options.status_code == 200, options.text
        public_key = options.json()["publicKey"]
        record, origin, uv = approver.record, b.origin, True
        challenge = None
        if case == "other_approver":
            record = BrowserApprover().record
            record = dataclasses.replace(record, sig_pk=approver.sig.verify_key())
        elif case == "terminal_kind":
            record = dataclasses.replace(record, kind="terminal")
        elif case == "no_uv":
            uv = False
        elif case == "client_origin":
            origin = "http://evil.example"
        elif case == "forged_challenge":
            challenge = b64u_encode(b"\x01" * 32)
        credential = approver.passkey.register(public_key, origin, uv=uv, challenge=challenge)
        link0 = dirs.genesis_link(c.vault, record, approver.sig, now=c.relay.now())
        body = {"setup_token": "sbx_st_" + "B" * 43 if case == "token_at_setup" else token,
                "link": link0, "credential": credential}  # fmt: skip
        if case == "replayed_challenge":
            # A first attempt that fails spends the challenge: the good one after it is too late.
            bad = approver.passkey.register(public_key, origin, uv=False)
            first = await b.post(f"{b.api}/setup", {**body, "credential": bad})
            assert first.status_code == 400, first.text
        header = "http://evil.example" if case == "origin_header" else None
        done = await b.post(f"{b.api}/setup", body, origin=header)
        expected = {
            "token_at_setup": (403, "invalid_setup_token"),
            "replayed_challenge": (401, "challenge_unknown"),
            "forged_challenge": (401, "challenge_unknown"),
            "other_approver": (400, "approver_mismatch"),
            "no_uv": (400, "passkey_invalid"),
            "client_origin": (400, "passkey_invalid"),
            "origin_header": (403, "origin_not_allowed"),
            "terminal_kind": (400, "not_browser"),
        }[case]
        assert (done.status_code, error_of(done)["error"]) == expected, done.text
        assert "set-cookie" not in done.headers
    assert not await _ready(c)
    assert await _count(c.relay, console_credentials) == 0
    assert await _count(c.relay, console_sessions) == 0
    assert (await b.get(f"{b.api}/session")).status_code == 401
    # The right setup still works afterwards (the token was not spent).
    assert (await _set_up(c, c.browser(), BrowserApprover())).status_code == 201


async def test_setup_options_refuse_a_foreign_origin(console: Console) -> None:
    b = console.browser("http://evil.example")
    options = await _options(b, console.setup_token, BrowserApprover())
    assert (options.status_code, error_of(options)["error"]) == (403, "origin_not_allowed")
    assert await _count(console.relay, console_challenges) == 0


# --- sign-in, sessions ------------------------------------------------------------------


async def test_sign_in_session_and_sign_out(console: Console) -> None:
    approver = BrowserApprover()
    assert (await _set_up(console, console.browser(), approver)).status_code == 201

    b = console.browser()
    assert (await b.get(f"{b.api}/session")).status_code == 401
    assert (await b.get(f"/v1/vaults/{console.vault}/approvals")).status_code == 401
    signed = await b.sign_in(approver.passkey)
    assert signed.status_code == 200, signed.text
    assert set(signed.json()) == {"approver", "csrf", "expires_at"}
    assert signed.json()["approver"] == approver.id
    assert "httponly" in signed.headers["set-cookie"].lower()

    whoami = await b.get(f"/v1/vaults/{console.vault}/whoami")
    assert whoami.json()["id"] == approver.id
    assert (whoami.json()["role"], whoami.json()["via"]) == ("approver", "session")
    approvals = await b.get(f"/v1/vaults/{console.vault}/approvals")
    assert approvals.status_code == 200, approvals.text
    assert approvals.json()["requests"] == []

    # Signing out is a changing call: CSRF and Origin first.
    no_csrf = await b.post(f"{b.api}/signout", csrf=False)
    assert (no_csrf.status_code, error_of(no_csrf)["error"]) == (403, "csrf_invalid")
    assert (await b.get(f"{b.api}/session")).status_code == 200
    out = await b.post(f"{b.api}/signout")
    assert out.status_code == 204, out.text
    assert "sealbox_console=" in out.headers["set-cookie"]
    assert (await b.get(f"/v1/vaults/{console.vault}/approvals")).status_code == 401
    actions = [e["action"] for e in await _audit(console.relay)]
    assert actions.count("console.signed_in") == 2
    assert "console.signed_out" in actions


async def test_sign_in_refusals(console: Console) -> None:
    approver = BrowserApprover()
    assert (await _set_up(console, console.browser(), approver)).status_code == 201
    b = console.browser()

    stranger = SoftAuthenticator()
    stranger.user_handle = approver.id.encode()
    unknown = await b.sign_in(stranger)
    assert (unknown.status_code, error_of(unknown)["error"]) == (401, "unknown_passkey")
    no_uv = await b.sign_in(approver.passkey, uv=False)
    assert (no_uv.status_code, error_of(no_uv)["error"]) == (401, "passkey_invalid")
    handle = await b.sign_in(approver.passkey, user_handle=b"apv_someone_else")
    assert (handle.status_code, error_of(handle)["error"]) == (401, "passkey_invalid")

    options = (await b.post(f"{b.api}/signin/options")).json()["publicKey"]
    assertion = approver.passkey.assertion(options, b.origin)
    wrong_origin = await b.post(f"{b.api}/signin", {"credential": assertion},
                                origin="http://evil.example")  # fmt: skip
    assert (wrong_origin.status_code, error_of(wrong_origin)["error"]) == (
        403,
        "origin_not_allowed",
    )
    first = await b.post(f"{b.api}/signin", {"credential": assertion})
    assert first.status_code == 200, first.text
    replayed = await b.post(f"{b.api}/signin", {"credential": assertion})
    assert (replayed.status_code, error_of(replayed)["error"]) == (401, "challenge_unknown")

    refused = [e for e in await _audit(console.relay) if e["action"] == "auth.refused"]
    assert {e["detail"]["error"] for e in refused} >= {"unknown_passkey", "passkey_invalid"}
    assert all(e["actor"] == "anonymous" for e in refused)


async def test_sign_in_attempts_and_prompts_are_rate_limited(console: Console) -> None:
    approver = BrowserApprover()
    assert (await _set_up(console, console.browser(), approver)).status_code == 201
    b = console.browser()
    tries = [(await b.post(f"{b.api}/signin", {"credential": {}})).status_code for _ in range(12)]
    assert tries == [400] * 10 + [429] * 2
    # Each prompt is a row until spent: prompts are budgeted per address too (the setup's
    # prompt came from this address as well).
    prompts = [(await b.post(f"{b.api}/signin/options")).status_code for _ in range(10)]
    assert prompts == [200] * 9 + [429]
    assert await _count(console.relay, console_challenges) == 9


async def test_a_cookie_and_another_credential_are_refused(console: Console) -> None:
    approver = BrowserApprover()
    b = console.browser()
    done = await _set_up(console, b, approver)
    assert done.status_code == 201
    link0 = dirs.genesis_link(console.vault, approver.record, approver.sig, now=console.relay.now())
    h = _set_up_vault(console, approver, link0)
    signed = h.build("GET", "/approvals", signer=approver)
    signed.headers["cookie"] = f"sealbox_console={b.http.cookies['sealbox_console']}"
    both = await console.http.send(signed)
    assert (both.status_code, error_of(both)["error"]) == (401, "ambiguous_credentials")
    bearer = await b.http.get(f"/v1/vaults/{console.vault}/approvals",
                              headers={"authorization": "Bearer sbx_at_x"})  # fmt: skip
    assert (bearer.status_code, error_of(bearer)["error"]) == (401, "ambiguous_credentials")
    # Signed alone, it works as it always did.
    alone = await console.http.send(h.build("GET", "/approvals", signer=approver))
    assert alone.status_code == 200


# --- the cookie on the approver endpoints: CSRF and Origin --------------------------------


async def _pending_request(
    c: Console, approver: BrowserApprover, link0: str
) -> tuple[Harness, str]:
    h = _set_up_vault(c, approver, link0)
    item, _ = await h.store_direct(approver, "app/prod/db", PASSWORD)
    client = await h.add_client()
    created = await h.ask(client, h.access(client, [(item, "app/prod/db", ["password"])]))
    assert created.status_code == 201, created.text
    return h, str(created.json()["id"])


async def test_a_release_with_the_cookie_needs_csrf_and_origin(console: Console) -> None:
    approver = BrowserApprover()
    b = console.browser()
    link0 = dirs.genesis_link(console.vault, approver.record, approver.sig, now=console.relay.now())
    options = await _options(b, console.setup_token, approver)
    credential = approver.passkey.register(options.json()["publicKey"], b.origin)
    done = await b.post(f"{b.api}/setup", {"setup_token": console.setup_token, "link": link0,
                                          "credential": credential})  # fmt: skip
    assert done.status_code == 201, done.text
    b.csrf = done.json()["csrf"]
    h, request_id = await _pending_request(console, approver, link0)

    listed = await b.get(f"/v1/vaults/{console.vault}/approvals")
    assert [r["id"] for r in listed.json()["requests"]] == [request_id]
    token = await h.sign_release(approver, request_id)
    path = f"/v1/vaults/{console.vault}/access-requests/{request_id}/release"

    missing = await b.post(path, {"release": token}, csrf=False)
    assert (missing.status_code, error_of(missing)["error"]) == (403, "csrf_invalid")
    wrong = await b.post(path, {"release": token}, csrf=False,
                         headers={"x-sealbox-csrf": b.csrf[:-2] + "AA"})  # fmt: skip
    assert (wrong.status_code, error_of(wrong)["error"]) == (403, "csrf_invalid")
    other_site = await b.post(path, {"release": token}, origin="http://evil.example")
    assert (other_site.status_code, error_of(other_site)["error"]) == (403, "origin_not_allowed")
    no_origin = await b.http.post(path, json={"release": token},
                                  headers={"x-sealbox-csrf": b.csrf})  # fmt: skip
    assert no_origin.status_code == 403
    assert await h.state(request_id) == "pending"

    released = await b.post(path, {"release": token})
    assert released.status_code == 200, released.text
    assert released.json()["state"] == "released"


async def test_the_session_of_a_removed_approver_stops_working(console: Console) -> None:
    approver = BrowserApprover()
    b = console.browser()
    link0 = dirs.genesis_link(console.vault, approver.record, approver.sig, now=console.relay.now())
    options = await _options(b, console.setup_token, approver)
    credential = approver.passkey.register(options.json()["publicKey"], b.origin)
    done = await b.post(f"{b.api}/setup", {"setup_token": console.setup_token, "link": link0,
                                          "credential": credential})  # fmt: skip
    assert done.status_code == 201, done.text
    h = _set_up_vault(console, approver, link0)
    other = await h.add_approver("laptop")
    assert (await b.get(f"/v1/vaults/{console.vault}/approvals")).status_code == 200

    removal = dirs.append_link(h.directory(), "remove", approver.record, signer=other.id,
                               key=other.sig, now=console.relay.now())  # fmt: skip
    removed = await console.http.post(f"/v1/vaults/{console.vault}/directory",
                                      json={"link": removal})  # fmt: skip
    assert removed.status_code == 201, removed.text
    console.relay.directories.forget(console.vault)

    gone = await b.get(f"/v1/vaults/{console.vault}/approvals")
    assert (gone.status_code, error_of(gone)["error"]) == (401, "session_invalid")
    assert (await b.get(f"{b.api}/session")).status_code == 401
    again = await console.browser().sign_in(approver.passkey)
    assert (again.status_code, error_of(again)["error"]) == (401, "not_an_approver")


async def test_an_expired_session_stops_working(console: Console) -> None:
    approver = BrowserApprover()
    b = console.browser()
    assert (await _set_up(console, b, approver)).status_code == 201
    assert (await b.get(f"{b.api}/session")).status_code == 200
    console.relay.clock.now += 12 * 3600  # type: ignore[attr-defined]
    assert (await b.get(f"{b.api}/session")).status_code == 401


async def test_a_session_cannot_add_a_passkey(console: Console) -> None:
    """A stolen session must not be able to outlive itself with a passkey of its own."""
    approver = BrowserApprover()
    b = console.browser()
    assert (await _set_up(console, b, approver)).status_code == 201
    for path in ("passkeys/options", "passkeys"):
        assert (await b.post(f"{b.api}/{path}", {})).status_code in (404, 405)
    assert await _count(console.relay, console_credentials, approver_id=approver.id) == 1


async def test_on_https_the_cookie_is_secure_and_the_rp_is_the_public_host(
    console: Console,
) -> None:
    public = "https://sealbox.example"
    console.relay.settings = dataclasses.replace(console.relay.settings, public_url=public + "/")
    b = console.browser(public)
    approver = BrowserApprover()
    options = await _options(b, console.setup_token, approver)
    assert options.json()["publicKey"]["rp"]["id"] == "sealbox.example"
    # The plain-http origin of before is no console origin any more.
    old = await _options(console.browser(RELAY_ORIGIN), console.setup_token, approver)
    assert (old.status_code, error_of(old)["error"]) == (403, "origin_not_allowed")
    credential = approver.passkey.register(options.json()["publicKey"], public)
    link0 = dirs.genesis_link(console.vault, approver.record, approver.sig, now=console.relay.now())
    done = await b.post(f"{b.api}/setup", {"setup_token": console.setup_token, "link": link0,
                                          "credential": credential})  # fmt: skip
    assert done.status_code == 201, done.text
    assert "; secure" in done.headers["set-cookie"].lower()


def test_console_origins_are_read_strictly(monkeypatch: pytest.MonkeyPatch) -> None:
    from sealbox.server.config import parse_origins

    assert parse_origins(["HTTP://LocalHost:8400/, https://a.example:443", "http://[::1]:80"]) == (
        "http://localhost:8400", "https://a.example", "http://[::1]",
    )  # fmt: skip
    for bad in ("localhost:8400", "ftp://a.example", "https://a.example/console",
                "https://u:p@a.example", "https://a.example/?x=1", "https://"):  # fmt: skip
        with pytest.raises(ValueError, match="origin"):
            parse_origins([bad])
    monkeypatch.setenv("SEALBOX_CONSOLE_ORIGINS", "http://localhost:8400,,https://b.example")
    loaded = Settings.load(data_dir="/tmp/unused", public_url="https://relay.example/")
    assert loaded.console_origin_list == (
        "https://relay.example", "http://localhost:8400", "https://b.example",
    )  # fmt: skip


# --- a browser device joins by pairing ----------------------------------------------------------


async def _ask_to_pair(b: Browser, joining: BrowserApprover, **over: Any) -> httpx.Response:
    options = await b.post(f"{b.api}/pairing/options",
                           {"approver_id": joining.id, "name": joining.record.name})  # fmt: skip
    assert options.status_code == 200, options.text
    credential = joining.passkey.register(options.json()["publicKey"], b.origin)
    body = {"approver": joining.record.to_json(), "credential": credential, **over}
    return await b.post(f"{b.api}/pairing", body)


async def test_a_browser_joins_by_pairing_and_signs_in_only_once_added(console: Console) -> None:
    first = BrowserApprover()
    assert (await _set_up(console, console.browser(), first)).status_code == 201
    joining = BrowserApprover("phone")
    b = console.browser()
    asked = await _ask_to_pair(b, joining)
    assert asked.status_code == 201, asked.text
    assert asked.json()["state"] == "pending"
    # Kept, but it signs nobody in while its approver is not in the directory.
    early = await console.browser().sign_in(joining.passkey)
    assert (early.status_code, error_of(early)["error"]) == (401, "not_an_approver")

    links = (await console.http.get(f"/v1/vaults/{console.vault}/directory")).json()["links"]
    directory = dirs.verify_directory(links, pinned=dirs.vault_fingerprint(links[0]))
    link = dirs.append_link(directory, "add", joining.record, signer=first.id, key=first.sig,
                            now=console.relay.now())  # fmt: skip
    added = await console.http.post(f"/v1/vaults/{console.vault}/directory", json={"link": link})
    assert added.status_code == 201, added.text
    console.relay.directories.forget(console.vault)
    state = await console.http.get(
        f"/v1/vaults/{console.vault}/pairing-requests/{asked.json()['id']}"
    )
    assert state.json()["state"] == "approved"
    assert (await b.sign_in(joining.passkey)).status_code == 200
    assert (await b.get(f"/v1/vaults/{console.vault}/approvals")).status_code == 200


@pytest.mark.parametrize("case", ["other record", "not a browser", "second passkey"])
async def test_pairing_refusals_keep_nothing(console: Console, case: str) -> None:
    first = BrowserApprover()
    assert (await _set_up(console, console.browser(), first)).status_code == 201
    joining = BrowserApprover("phone")
    b = console.browser()
    body: dict[str, Any] = {}
    expected = (400, "approver_mismatch")
    if case == "second passkey":
        # Someone who learnt a waiting device's id cannot attach a passkey of their own to it.
        assert (await _ask_to_pair(b, joining)).status_code == 201
        joining.passkey = SoftAuthenticator()
        expected = (409, "passkey_exists")
    elif case == "other record":
        body = {"approver": BrowserApprover("other").record.to_json()}
    else:
        body = {"approver": dataclasses.replace(joining.record, kind="terminal").to_json()}
        expected = (400, "not_browser")
    credentials = await _count(console.relay, console_credentials)
    pairings = await _count(console.relay, pairing_requests)
    answer = await _ask_to_pair(b, joining, **body)
    assert (answer.status_code, error_of(answer)["error"]) == expected
    assert await _count(console.relay, console_credentials) == credentials
    assert await _count(console.relay, pairing_requests) == pairings


async def test_a_passkey_made_with_another_record_for_the_same_id_never_signs_in(
    console: Console,
) -> None:
    """Someone who learnt a waiting device's id and paired under it first gets no session."""
    first = BrowserApprover()
    assert (await _set_up(console, console.browser(), first)).status_code == 201
    real = BrowserApprover("laptop")
    impostor = BrowserApprover("impostor")
    impostor.record = dataclasses.replace(impostor.record, id=real.id)
    asked = await _ask_to_pair(console.browser(), impostor)
    assert asked.status_code == 201, asked.text
    # The real device's record is added (an approver compared its code, not the impostor's).
    links = (await console.http.get(f"/v1/vaults/{console.vault}/directory")).json()["links"]
    directory = dirs.verify_directory(links, pinned=dirs.vault_fingerprint(links[0]))
    link = dirs.append_link(directory, "add", real.record, signer=first.id, key=first.sig,
                            now=console.relay.now())  # fmt: skip
    added = await console.http.post(f"/v1/vaults/{console.vault}/directory", json={"link": link})
    assert added.status_code == 201, added.text
    console.relay.directories.forget(console.vault)
    refused = await console.browser().sign_in(impostor.passkey)
    assert (refused.status_code, error_of(refused)["error"]) == (401, "not_an_approver")


async def test_a_second_pairing_under_a_waiting_id_is_refused(console: Console) -> None:
    first = BrowserApprover()
    assert (await _set_up(console, console.browser(), first)).status_code == 201
    waiting = BrowserApprover("terminal")
    waiting.record = dataclasses.replace(waiting.record, kind="terminal")
    asked = await console.http.post(f"/v1/vaults/{console.vault}/pairing-requests",
                                    json={"approver": waiting.record.to_json()})  # fmt: skip
    assert asked.status_code == 201, asked.text
    impostor = BrowserApprover("impostor")
    impostor.record = dataclasses.replace(impostor.record, id=waiting.id)
    again = await _ask_to_pair(console.browser(), impostor)
    assert (again.status_code, error_of(again)["error"]) == (409, "already_pairing")
    assert await _count(console.relay, console_credentials, approver_id=waiting.id) == 0
