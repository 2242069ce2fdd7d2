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
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from sealbox import web

__all__ = ["DEFAULT_PORT", "create_app", "serve"]


DEFAULT_PORT = 8400
_REQUEST_HEADERS = ("origin", "x-sealbox-csrf", "content-type", "accept", "last-event-id")
_RESPONSE_HEADERS = ("content-type", "cache-control", "retry-after", "www-authenticate",
                     "x-accel-buffering")  # fmt: skip
#: The console's own cookie: the only one forwarded, either way.  The browser sends every
#: cookie of ``localhost`` (any port) here; another local app's must never reach the relay,
#: and the relay must set no cookie but its own on ``localhost``.
_COOKIE = "sealbox_console"
#: What the relay may answer under ``/v1/``: JSON and the event streams, nothing a browser
#: would render.  Anything else served from this origin could run script beside the keys.
_API_TYPES = ("application/json", "text/event-stream")
#: Headers on every forwarded answer: never a document, never rendered, never sniffed.
_API_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'none'; sandbox"),
    (b"content-disposition", b"attachment"),
]
_USER_CODE = re.compile(r"[A-Z]{4}-?[A-Z]{4}")


def _check_relay_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--relay must be the relay's http(s) URL, not {url!r}")
    return url.rstrip("/")


def _missing(what: str) -> JSONResponse:
    body = {"error": "not_found", "message": f"the console has no {what}", "hint": ""}
    return JSONResponse(body, status_code=404, headers={"x-content-type-options": "nosniff"})


def _refused(code: str, message: str) -> JSONResponse:
    body = {"error": code, "message": message, "hint": ""}
    return JSONResponse(body, status_code=403, headers={"x-content-type-options": "nosniff"})


def _unreachable(relay_url: str) -> JSONResponse:
    return JSONResponse(
        {"error": "relay_unreachable", "message": f"the relay at {relay_url} cannot be reached",
         "hint": "Check that it runs and that --relay names it."},
        status_code=502,
    )  # fmt: skip


def create_app(
    relay_url: str, *, assets: web.Assets | None = None,
    transport: httpx.AsyncBaseTransport | None = None, port: int | None = None,
) -> Starlette:  # fmt: skip
    """The local console for the relay at ``relay_url`` (``transport``: tests drive an app).

    With ``port`` (as ``serve`` runs it), only requests for ``localhost`` or ``127.0.0.1`` are
    served: a page of another site whose name was rebound to 127.0.0.1 sends its own host
    name, and gets nothing (no pages, no tunnel to the relay).
    """
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
        token = request.cookies.get(_COOKIE)
        if not token:
            return None
        answer = await relay().get(f"/v1/vaults/{vault}/console/session",
                                   headers={"cookie": f"{_COOKIE}={token}"})  # fmt: skip
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
        # The API is fetched by the console's scripts, never opened as a page: a link or a
        # redirect that navigates here (from any site, or from a URL the relay chose) is refused.
        if request.headers.get("sec-fetch-mode") == "navigate" or request.headers.get(
            "sec-fetch-dest", "empty"
        ) not in ("empty", ""):
            return _refused("not_a_page", "the console's API cannot be opened as a page")
        headers = {k: v for k, v in request.headers.items() if k in _REQUEST_HEADERS}
        token = request.cookies.get(_COOKIE)
        if token:
            headers["cookie"] = f"{_COOKIE}={token}"
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        outgoing = relay().build_request(request.method, target, headers=headers,
                                         content=await request.body())  # fmt: skip
        try:
            answer = await relay().send(outgoing, stream=True)
        except httpx.HTTPError:
            return _unreachable(relay_url)
        kind = answer.headers.get("content-type", "").split(";")[0].strip().lower()
        if answer.status_code not in (204, 304) and kind not in _API_TYPES:
            await answer.aclose()
            return JSONResponse(
                {"error": "relay_answer_refused",
                 "message": "the relay answered with something other than JSON or an event "
                            "stream, which the console does not load",
                 "hint": "Check that --relay names a sealbox relay."},
                status_code=502, headers={"x-content-type-options": "nosniff"},
            )  # fmt: skip
        back = [(k, v) for k, v in answer.headers.multi_items() if k in _RESPONSE_HEADERS]
        back += [
            ("set-cookie", v)
            for v in answer.headers.get_list("set-cookie")
            if v.startswith(_COOKIE + "=")
        ]
        response = StreamingResponse(
            answer.aiter_raw(), status_code=answer.status_code,
            background=BackgroundTask(answer.aclose),
        )  # fmt: skip
        response.raw_headers = [
            (k.encode("latin-1"), v.encode("latin-1")) for k, v in back
        ] + _API_HEADERS
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
    # Starlette's TrustedHostMiddleware compares host names (ports aside): enough here, since
    # a rebound name is the attacker's own, never localhost.
    guard = [Middleware(TrustedHostMiddleware, allowed_hosts=["localhost", "127.0.0.1"])]
    return Starlette(
        middleware=[] if port is None else guard,
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

    app = create_app(relay_url, port=port)
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
