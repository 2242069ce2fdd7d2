"""``sealbox console``'s local server in front of the real relay app, on SQLite and PostgreSQL.

The browser talks only to the local server (origin ``http://localhost:8400``);
pages and modules come from the local assets, API calls are forwarded to the
relay with the cookie, Origin and CSRF header, and nothing else.
(tests/e2e/test_e2e_console_local.py runs both as real processes, with a stream.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from console_support import LOCAL_ORIGIN, Browser, BrowserApprover
from relay_support import error_of
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import HTMLResponse, JSONResponse
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route

from sealbox import web
from sealbox.protocol import directory as dirs
from sealbox.server.app import create_app
from sealbox.server.config import Settings
from sealbox.server.relay import Relay
from sealbox.server.services.directory import ensure_vault
from sealbox.web import local

pytestmark = pytest.mark.anyio

PAGE = '<html><head><title>{{page}}</title></head><body data-csrf="{{csrf}}"></body></html>'


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, console_origins=(LOCAL_ORIGIN,))


@pytest.fixture
def assets(tmp_path: Path) -> web.Assets:
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "approvals.html").write_text(PAGE)
    (tmp_path / "static" / "app").mkdir(parents=True)
    (tmp_path / "static" / "app" / "approvals.js").write_text("export {};\n")
    (tmp_path / "secret.txt").write_text("outside\n")
    return web.Assets(tmp_path)


@dataclasses.dataclass
class Pair:
    relay: Relay
    vault: str
    setup_token: str
    browser: Browser
    """Talks to the local server only."""
    direct: httpx.AsyncClient
    """Talks to the relay (for checks)."""


@pytest.fixture
async def pair(relay: Relay, assets: web.Assets) -> AsyncIterator[Pair]:
    status = await ensure_vault(relay)
    assert status.setup_token is not None
    relay_app = create_app(relay)
    console_app = local.create_app(
        "http://relay.test", assets=assets, transport=httpx.ASGITransport(app=relay_app)
    )
    # The relay app without its lifespan (background jobs): see the console fixture of
    # test_relay_console.py.  The local console's lifespan makes its client to the relay.
    async with (
        console_app.router.lifespan_context(console_app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=console_app),
                          base_url="http://localhost:8400") as browser,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=relay_app),
                          base_url="http://relay.test") as direct,
    ):  # fmt: skip
        yield Pair(relay, status.vault, status.setup_token,
                   Browser(browser, status.vault, LOCAL_ORIGIN), direct)  # fmt: skip


async def _set_up(p: Pair, approver: BrowserApprover) -> httpx.Response:
    b = p.browser
    asked = {"setup_token": p.setup_token, "approver_id": approver.id, "name": "ana"}
    options = await b.post(f"{b.api}/setup/options", asked)
    assert options.status_code == 200, options.text
    assert options.json()["publicKey"]["rp"]["id"] == "localhost"
    credential = approver.passkey.register(options.json()["publicKey"], b.origin)
    link0 = dirs.genesis_link(p.vault, approver.record, approver.sig, now=p.relay.now())
    done = await b.post(f"{b.api}/setup", {"setup_token": p.setup_token, "link": link0,
                                          "credential": credential})  # fmt: skip
    if done.status_code == 201:
        b.csrf = done.json()["csrf"]
    return done


async def test_setup_sign_in_and_pages_through_the_local_console(pair: Pair) -> None:
    b = pair.browser
    home = await b.get("/console/")
    assert (home.status_code, home.headers["location"]) == (303, "/console/setup")
    approver = BrowserApprover()
    done = await _set_up(pair, approver)
    assert done.status_code == 201, done.text
    assert "sealbox_console=" in done.headers["set-cookie"]
    assert "httponly" in done.headers["set-cookie"].lower()
    assert b.http.cookies.get("sealbox_console")

    session = await b.get(f"{b.api}/session")
    assert session.status_code == 200, session.text
    assert session.json()["approver"] == approver.id
    page = await b.get("/console/approvals")
    assert page.status_code == 200
    assert f'data-csrf="{b.csrf}"' in page.text
    assert "importmap" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert (await b.get("/console/")).headers["location"] == "/console/approvals"

    approvals = await b.get(f"/v1/vaults/{pair.vault}/approvals")
    assert approvals.status_code == 200, approvals.text
    assert approvals.json() == {"requests": []}

    # Only the listed headers are forwarded: a bearer token sent along is dropped, so the
    # relay sees the cookie alone (it would refuse a request carrying both).
    extra = await b.http.get(f"/v1/vaults/{pair.vault}/whoami",
                             headers={"authorization": "Bearer sbx_at_x"})  # fmt: skip
    assert extra.status_code == 200, extra.text
    assert extra.json()["via"] == "session"

    no_csrf = await b.post(f"{b.api}/signout", csrf=False)
    assert (no_csrf.status_code, error_of(no_csrf)["error"]) == (403, "csrf_invalid")
    out = await b.post(f"{b.api}/signout")
    assert out.status_code == 204, out.text
    assert not b.http.cookies.get("sealbox_console")
    assert (await b.get(f"{b.api}/session")).status_code == 401

    again = await b.sign_in(approver.passkey)
    assert again.status_code == 200, again.text


async def test_the_relay_refuses_an_origin_it_was_not_given(pair: Pair) -> None:
    b = pair.browser
    b.origin = "http://localhost:9999"
    asked = {"setup_token": pair.setup_token, "approver_id": BrowserApprover().id, "name": "x"}
    refused = await b.post(f"{b.api}/setup/options", asked)
    assert (refused.status_code, error_of(refused)["error"]) == (403, "origin_not_allowed")


async def test_the_local_console_serves_only_its_own_files(pair: Pair) -> None:
    b = pair.browser
    own = await b.get("/console/static/app/approvals.js")
    assert own.status_code == 200
    assert own.headers["content-type"] == "text/javascript; charset=utf-8"
    for path in ("/console/static/../secret.txt", "/console/static/%2e%2e/secret.txt",
                 "/console/static/app/missing.js", "/console/nope"):  # fmt: skip
        answer = await b.get(path)
        assert answer.status_code == 404, path
        assert b"outside" not in answer.content


async def test_a_relay_url_must_be_http(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="http"):
        local.create_app("file:///etc")


async def test_the_login_link_on_the_local_console(pair: Pair) -> None:
    answer = await pair.browser.get("/device?user_code=bcdf-ghjk")
    assert answer.headers["location"] == "/console/logins?user_code=BCDF-GHJK"
    bad = await pair.browser.get("/device?user_code=<x>")
    assert bad.headers["location"] == "/console/logins"


# --- what the local console refuses to carry ----------------------------------------------------


def _hostile_relay() -> Starlette:
    """A relay (a fake, in this test only) that answers with a page and plants cookies."""
    seen: list[dict[str, str]] = []

    async def everything(request: StarletteRequest) -> StarletteResponse:
        seen.append(dict(request.headers))
        if request.url.path == "/v1/vault":
            return JSONResponse({"vault": "vlt_aaaaaaaaaaaaaaaaaaaaaaaaaa", "ready": True})
        if request.url.path.endswith("/page"):
            return HTMLResponse("<script>steal()</script>")
        response = JSONResponse({"ok": True})
        response.set_cookie("othertool_session", "planted")
        response.set_cookie("sealbox_console", "from-relay")
        return response

    app = Starlette(routes=[Route("/{path:path}", everything, methods=["GET", "POST"])])
    app.state.seen = seen
    return app


@pytest.fixture
async def hostile(assets: web.Assets) -> AsyncIterator[tuple[httpx.AsyncClient, Starlette]]:
    relay_app = _hostile_relay()
    console_app = local.create_app(
        "http://relay.test", assets=assets, transport=httpx.ASGITransport(app=relay_app),
        port=8400,
    )  # fmt: skip
    async with (
        console_app.router.lifespan_context(console_app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=console_app),
                          base_url="http://localhost:8400") as browser,
    ):  # fmt: skip
        yield browser, relay_app


async def test_the_relay_cannot_serve_a_page_from_the_consoles_origin(
    hostile: tuple[httpx.AsyncClient, Starlette],
) -> None:
    browser, _ = hostile
    answer = await browser.get("/v1/vaults/vlt_aaaaaaaaaaaaaaaaaaaaaaaaaa/page")
    assert answer.status_code == 502
    assert error_of(answer)["error"] == "relay_answer_refused"
    assert "steal" not in answer.text
    fine = await browser.get("/v1/vaults/vlt_aaaaaaaaaaaaaaaaaaaaaaaaaa/x")
    assert fine.status_code == 200
    assert fine.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert fine.headers["content-disposition"] == "attachment"


async def test_the_api_cannot_be_opened_as_a_page(
    hostile: tuple[httpx.AsyncClient, Starlette],
) -> None:
    browser, relay_app = hostile
    for headers in ({"sec-fetch-mode": "navigate"}, {"sec-fetch-dest": "document"},
                    {"sec-fetch-dest": "iframe"}):  # fmt: skip
        answer = await browser.get("/v1/vaults/vlt_aaaaaaaaaaaaaaaaaaaaaaaaaa/x", headers=headers)
        assert (answer.status_code, error_of(answer)["error"]) == (403, "not_a_page")
    assert relay_app.state.seen == []  # refused before anything reached the relay


async def test_only_the_consoles_cookie_crosses_either_way(
    hostile: tuple[httpx.AsyncClient, Starlette],
) -> None:
    browser, relay_app = hostile
    answer = await browser.get(
        "/v1/vaults/vlt_aaaaaaaaaaaaaaaaaaaaaaaaaa/x",
        headers={"cookie": "jupyter-session=SECRET; sealbox_console=mine"},
    )
    assert answer.status_code == 200
    [sent] = relay_app.state.seen
    assert sent["cookie"] == "sealbox_console=mine"
    planted = answer.headers.get_list("set-cookie")
    assert planted
    assert all(c.startswith("sealbox_console=") for c in planted)


async def test_another_host_name_gets_nothing(
    hostile: tuple[httpx.AsyncClient, Starlette],
) -> None:
    browser, relay_app = hostile
    for path in ("/console/approvals", "/v1/vaults/vlt_aaaaaaaaaaaaaaaaaaaaaaaaaa/x"):
        answer = await browser.get(path, headers={"host": "rebound.example:8400"})
        assert answer.status_code == 400
    assert relay_app.state.seen == []
