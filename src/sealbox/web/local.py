"""``sealbox console``: the browser console served from this machine, talking to a relay.

When the relay serves the console, a compromised relay could serve bad code
to the browser that holds an approver's keys.  Here the pages and modules come
from the installed package, on ``http://localhost:<port>``; only the API calls
(``/v1/…``) go to the relay, forwarded as they are.  The relay must accept
this origin (``sealbox up --console-origin http://localhost:<port>``): its
passkey ceremonies and session checks use the browser's ``Origin``, and
passkeys made here are for RP ID ``localhost``.

Forwarded to the relay: the method, path and query, the body, and the headers
the console's calls need (``Cookie``, ``Origin``, ``X-Sealbox-CSRF``,
``Content-Type``, ``Accept``, ``Last-Event-ID``); nothing else.  Back: the
status, body (streamed, so the approvals and audit streams arrive as they
happen) and ``Set-Cookie``, ``Content-Type``, ``Cache-Control``,
``Retry-After``, ``WWW-Authenticate``.
"""

from __future__ import annotations

import contextlib
import re
import sys
import webbrowser
from collections.abc import AsyncIterator
from typing import Any, TextIO
from urllib.parse import urlencode, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from sealbox import web

__all__ = ["DEFAULT_PORT", "create_app", "serve"]

DEFAULT_PORT = 8400
_REQUEST_HEADERS = ("cookie", "origin", "x-sealbox-csrf", "content-type", "accept",
                    "last-event-id")  # fmt: skip
_RESPONSE_HEADERS = ("content-type", "cache-control", "retry-after", "www-authenticate",
                     "x-accel-buffering")  # fmt: skip
_USER_CODE = re.compile(r"[A-Z]{4}-?[A-Z]{4}")


def _check_relay_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--relay must be the relay's http(s) URL, not {url!r}")
    return url.rstrip("/")


def _missing(what: str) -> JSONResponse:
    body = {"error": "not_found", "message": f"the console has no {what}", "hint": ""}
    return JSONResponse(body, status_code=404, headers={"x-content-type-options": "nosniff"})


def _unreachable(relay_url: str) -> JSONResponse:
    return JSONResponse(
        {"error": "relay_unreachable", "message": f"the relay at {relay_url} cannot be reached",
         "hint": "Check that it runs and that --relay names it."},
        status_code=502,
    )  # fmt: skip


def create_app(
    relay_url: str, *, assets: web.Assets | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:  # fmt: skip
    """The local console for the relay at ``relay_url`` (``transport``: tests drive an app)."""
    relay_url = _check_relay_url(relay_url)
    the_assets = assets if assets is not None else web.packaged()
    holder: dict[str, httpx.AsyncClient] = {}

    def relay() -> httpx.AsyncClient:
        return holder["client"]

    async def vault_of() -> tuple[str, bool]:
        answer = await relay().get("/v1/vault")
        answer.raise_for_status()
        body = answer.json()
        return str(body["vault"]), bool(body["ready"])

    async def session_of(request: Request, vault: str) -> dict[str, Any] | None:
        cookie = request.headers.get("cookie")
        if not cookie:
            return None
        answer = await relay().get(f"/v1/vaults/{vault}/console/session",
                                   headers={"cookie": cookie})  # fmt: skip
        return dict(answer.json()) if answer.status_code == 200 else None

    async def home(request: Request) -> Response:
        try:
            vault, ready = await vault_of()
            signed_in = ready and await session_of(request, vault) is not None
        except (httpx.HTTPError, ValueError, KeyError):
            return _unreachable(relay_url)
        target = "/console/setup" if not ready else (
            "/console/approvals" if signed_in else "/console/signin"
        )  # fmt: skip
        return RedirectResponse(target, status_code=303, headers={"cache-control": "no-store"})

    async def device(request: Request) -> Response:
        code = request.query_params.get("user_code", "").upper()
        query = f"?{urlencode({'user_code': code})}" if _USER_CODE.fullmatch(code) else ""
        return RedirectResponse("/console/logins" + query, status_code=303)

    def static_response(request: Request, asset: web.Asset, *, worker: bool = False) -> Response:
        headers = web.static_headers(asset, service_worker=worker)
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        return Response(asset.body, headers=headers)

    async def service_worker(request: Request) -> Response:
        try:
            return static_response(request, the_assets.static(web.SERVICE_WORKER), worker=True)
        except LookupError:
            return _missing("service worker")

    async def static(request: Request) -> Response:
        try:
            return static_response(request, the_assets.static(request.path_params["path"]))
        except LookupError:
            return _missing("such file")

    async def page(request: Request) -> Response:
        name = request.path_params["page"]
        if name not in web.PAGES:
            return _missing("such page")
        try:
            vault, ready = await vault_of()
            session = await session_of(request, vault) if ready else None
        except (httpx.HTTPError, ValueError, KeyError):
            return _unreachable(relay_url)
        values = {
            "vault": vault, "relay_url": relay_url,
            "csrf": str(session["csrf"]) if session else "",
            "approver": str(session["approver"]) if session else "",
        }  # fmt: skip
        try:
            rendered = the_assets.render(name, values)
        except LookupError:
            return _missing("such page")
        return Response(rendered.body, headers=web.page_headers(rendered))

    async def forward(request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k in _REQUEST_HEADERS}
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        outgoing = relay().build_request(request.method, target, headers=headers,
                                         content=await request.body())  # fmt: skip
        try:
            answer = await relay().send(outgoing, stream=True)
        except httpx.HTTPError:
            return _unreachable(relay_url)
        back = [(k, v) for k, v in answer.headers.multi_items() if k in _RESPONSE_HEADERS]
        back += [("set-cookie", v) for v in answer.headers.get_list("set-cookie")]
        response = StreamingResponse(
            answer.aiter_raw(), status_code=answer.status_code,
            background=BackgroundTask(answer.aclose),
        )  # fmt: skip
        response.raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in back] + [
            (b"x-content-type-options", b"nosniff")
        ]
        return response

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # No read timeout: the approvals and audit streams stay open as long as the page does.
        timeout = httpx.Timeout(10.0, read=None)
        async with httpx.AsyncClient(base_url=relay_url, transport=transport, timeout=timeout,
                                     follow_redirects=False) as client:  # fmt: skip
            holder["client"] = client
            yield

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(
        routes=[
            Route("/", home),
            Route("/console", home),
            Route("/console/", home),
            Route("/device", device),
            Route("/console/sw.js", service_worker),
            Route("/console/static/{path:path}", static),
            Route("/console/{page}", page),
            Route("/v1/{rest:path}", forward, methods=methods),
        ],
        lifespan=lifespan,
    )


def serve(relay_url: str, *, port: int = DEFAULT_PORT, open_browser: bool = False,
          out: TextIO = sys.stdout) -> None:  # fmt: skip
    """Serve the console on 127.0.0.1:``port`` until Ctrl-C."""
    import uvicorn

    app = create_app(relay_url)
    here = f"http://localhost:{port}"
    out.write(
        f"\n  sealbox console  {here}/console/\n"
        f"  relay            {relay_url.rstrip('/')}\n\n"
        "  The pages and modules come from this machine; only API calls go to the relay.\n"
        f"  The relay must allow this origin: start it with --console-origin {here}\n"
        f"  (or SEALBOX_CONSOLE_ORIGINS={here}).\n\n  Press Ctrl-C to stop.\n\n"
    )
    out.flush()
    if open_browser:
        webbrowser.open(f"{here}/console/")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
