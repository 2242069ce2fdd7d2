"""The console's pages and static files as the relay serves them, on SQLite and PostgreSQL.

The browser app's pages are written elsewhere; these tests give the app a small
set of its own (pages, modules, a service worker, a file outside the static
tree) so that what is checked is the serving: headers, integrity, redirects,
and that no request path reaches a file the index does not hold.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from console_support import LOCAL_ORIGIN, RELAY_ORIGIN, Browser, BrowserApprover

from sealbox import web
from sealbox.protocol import directory as dirs
from sealbox.server.app import create_app
from sealbox.server.config import Settings
from sealbox.server.relay import Relay
from sealbox.server.services.directory import ensure_vault

pytestmark = pytest.mark.anyio

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{page}} · sealbox</title>
<link rel="stylesheet" href="/console/static/app/console.css"></head>
<body data-vault="{{ vault }}" data-relay="{{relay_url}}" data-csrf="{{csrf}}"
      data-approver="{{approver}}"><main id="app"></main></body></html>
"""


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, console_origins=(LOCAL_ORIGIN,))


@pytest.fixture
def assets_root(tmp_path: Path) -> Path:
    root = tmp_path / "web"
    (root / "pages").mkdir(parents=True)
    for page in ("setup", "signin", "approvals"):
        (root / "pages" / f"{page}.html").write_text(PAGE)
    files = {
        "app/approvals.js": b'import { codes } from "../sealbox/errors.js";\nexport { codes };\n',
        "app/setup.js": b"export const page = 'setup';\n",
        "app/sw.js": b"self.addEventListener('fetch', () => {});\n",
        "app/console.css": b"body { margin: 0 }\n",
        "app/manifest.webmanifest": b'{"name": "sealbox"}\n',
        "app/icon-192.png": b"\x89PNG\r\n\x1a\n",
        "app/icon.svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        "sealbox/errors.js": b"export const codes = {};\n",
        "package.json": b'{"type": "module"}\n',
        "app/notes.txt": b"not for browsers\n",
    }
    for name, body in files.items():
        (root / "static" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "static" / name).write_bytes(body)
    (root / "secret.txt").write_text("outside the static tree\n")
    return root


@pytest.fixture
def app(relay: Relay, assets_root: Path) -> Any:
    made = create_app(relay)
    made.state.console_assets = web.Assets(assets_root)
    return made


@pytest.fixture
async def http(relay: Relay, app: Any) -> AsyncIterator[httpx.AsyncClient]:
    await ensure_vault(relay)
    # Without the app's lifespan (background jobs): see the console fixture of
    # test_relay_console.py.
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://relay.test"
    ) as client:
        yield client


async def _raw_get(app: Any, raw_path: bytes) -> tuple[int, bytes]:
    """GET a path exactly as written: HTTP clients remove dot segments before sending."""
    sent: list[dict[str, Any]] = []
    decoded = urllib.parse.unquote(raw_path.decode("latin-1"))
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": decoded, "raw_path": raw_path, "query_string": b"",
        "root_path": "", "headers": [(b"host", b"relay.test")],
        "server": ("relay.test", 80), "client": ("127.0.0.1", 40000),
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


async def _set_up(relay: Relay, http: httpx.AsyncClient) -> Browser:
    status = await ensure_vault(relay)
    assert status.setup_token is not None
    b = Browser(http, status.vault, RELAY_ORIGIN)
    approver = BrowserApprover()
    asked = {"setup_token": status.setup_token, "approver_id": approver.id, "name": "ana"}
    options = await b.post(f"{b.api}/setup/options", asked)
    credential = approver.passkey.register(options.json()["publicKey"], b.origin)
    link0 = dirs.genesis_link(status.vault, approver.record, approver.sig, now=relay.now())
    done = await b.post(f"{b.api}/setup", {"setup_token": status.setup_token, "link": link0,
                                          "credential": credential})  # fmt: skip
    assert done.status_code == 201, done.text
    b.csrf = done.json()["csrf"]
    return b


def _sri(body: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()


async def test_a_page_pins_its_scripts_and_sets_the_headers(
    http: httpx.AsyncClient, assets_root: Path
) -> None:
    page = await http.get("/console/approvals")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"

    found = re.search(r'<script type="importmap">(.*?)</script>', page.text, re.S)
    assert found is not None
    importmap = json.loads(found.group(1))
    static = assets_root / "static"
    assert importmap["integrity"] == {
        f"/console/static/{name}": _sri((static / name).read_bytes())
        for name in ("app/approvals.js", "app/setup.js", "app/sw.js", "sealbox/errors.js")
    }
    assert importmap["imports"] == {"app/": "/console/static/app/",
                                    "sealbox/": "/console/static/sealbox/"}  # fmt: skip
    own = (static / "app/approvals.js").read_bytes()
    assert (f'<script type="module" src="/console/static/app/approvals.js" '
            f'integrity="{_sri(own)}"></script>') in page.text  # fmt: skip
    # Both scripts sit in <head>, and the CSP allows exactly the import map inline.
    assert page.text.index("importmap") < page.text.index("</head>")
    script_hash = base64.b64encode(hashlib.sha256(found.group(1).encode()).digest()).decode()
    assert page.headers["content-security-policy"] == (
        f"default-src 'none'; script-src 'self' 'sha256-{script_hash}'; style-src 'self'; "
        "img-src 'self' data:; connect-src 'self'; manifest-src 'self'; worker-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    assert "unsafe" not in page.headers["content-security-policy"]
    # Not signed in: no CSRF token, no approver in the page.
    assert 'data-csrf=""' in page.text
    assert 'data-approver=""' in page.text
    assert "<title>approvals · sealbox</title>" in page.text


async def test_a_signed_in_page_carries_its_session(relay: Relay, http: httpx.AsyncClient) -> None:
    b = await _set_up(relay, http)
    page = await http.get("/console/approvals")
    assert b.csrf is not None
    assert f'data-csrf="{b.csrf}"' in page.text
    assert f'data-vault="{b.vault}"' in page.text
    assert 'data-relay="http://localhost:8300"' in page.text


async def test_unknown_and_missing_pages_are_404(http: httpx.AsyncClient) -> None:
    for path in ("/console/nope", "/console/items", "/console/..", "/console/setup.html"):
        response = await http.get(path)
        assert response.status_code == 404, path


async def test_console_home_redirects(relay: Relay, http: httpx.AsyncClient) -> None:
    first = await http.get("/console/")
    assert (first.status_code, first.headers["location"]) == (303, "/console/setup")
    await _set_up(relay, http)
    signed_in = await http.get("/console/")
    assert (signed_in.status_code, signed_in.headers["location"]) == (303, "/console/approvals")
    http.cookies.clear()
    anonymous = await http.get("/console/")
    assert (anonymous.status_code, anonymous.headers["location"]) == (303, "/console/signin")


async def test_static_files_types_and_caching(http: httpx.AsyncClient) -> None:
    expected = {
        "app/approvals.js": "text/javascript; charset=utf-8",
        "app/console.css": "text/css; charset=utf-8",
        "app/manifest.webmanifest": "application/manifest+json",
        "app/icon-192.png": "image/png",
        "app/icon.svg": "image/svg+xml",
    }
    for name, content_type in expected.items():
        response = await http.get(f"/console/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == content_type
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        etag = response.headers["etag"]
        again = await http.get(f"/console/static/{name}", headers={"if-none-match": etag})
        assert again.status_code == 304
        assert again.content == b""

    worker = await http.get("/console/sw.js")
    assert worker.status_code == 200
    assert worker.headers["service-worker-allowed"] == "/console/"
    assert worker.headers["content-type"] == "text/javascript; charset=utf-8"


async def test_the_raw_requests_reach_the_files_the_index_holds(
    http: httpx.AsyncClient, app: Any
) -> None:
    status, body = await _raw_get(app, b"/console/static/app/sw.js")
    assert (status, body) == (200, b"self.addEventListener('fetch', () => {});\n")


@pytest.mark.parametrize(
    "path",
    [
        "/console/static/../secret.txt",
        "/console/static/%2e%2e/secret.txt",
        "/console/static/app/..%2f..%2fsecret.txt",
        "/console/static/app/%2e%2e/%2e%2e/secret.txt",
        "/console/static//etc/passwd",
        "/console/static/%2fetc%2fpasswd",
        "/console/static/app\\..\\..\\secret.txt",
        "/console/static/package.json",  # in the tree, but nothing a browser loads
        "/console/static/app/notes.txt",
        "/console/static/app/",
        "/console/static/app",
        "/console/static/",
        "/console/static/sealbox/../app/sw.js",
        "/console/static/./app/sw.js",
        "/console/static/app/sw.js/",
        "/console/static/APP/SW.JS",
    ],
)
async def test_no_path_reaches_a_file_outside_the_index(
    http: httpx.AsyncClient, app: Any, path: str
) -> None:
    status, body = await _raw_get(app, path.encode())
    assert status == 404, (path, status)
    assert b"outside the static tree" not in body
    assert b"not for browsers" not in body
    assert b"root:" not in body


async def test_the_login_link_leads_to_the_logins_page(http: httpx.AsyncClient) -> None:
    response = await http.get("/device?user_code=BCDF-GHJK")
    assert (response.status_code, response.headers["location"]) == (
        303, "/console/logins?user_code=BCDF-GHJK",
    )  # fmt: skip


async def test_the_relay_serves_no_page_that_loads_third_party_script(
    http: httpx.AsyncClient,
) -> None:
    """FastAPI's /docs and /redoc would run CDN script on the console's origin: not served."""
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert (await http.get(path)).status_code == 404
    assert (await http.get("/openapi.json")).status_code == 200
