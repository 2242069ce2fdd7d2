"""The relay's ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from sealbox import __version__
from sealbox.server import alert_delivery, http, jobs
from sealbox.server.auth.openapi import document_security
from sealbox.server.auth.peer import Forwarded
from sealbox.server.http.errors import install_error_handlers
from sealbox.server.http.shares import ShareHeaders
from sealbox.server.notify import PgListener
from sealbox.server.relay import Relay

__all__ = ["create_app"]

log = logging.getLogger("sealbox.relay")


def create_app(relay: Relay, *, listen: bool = True, owns_engine: bool = False) -> FastAPI:
    """The relay app around ``relay`` (whose schema must already be migrated).

    With PostgreSQL and ``listen``, the app holds one LISTEN connection for
    wake-ups from other replicas while it runs.  With ``owns_engine`` it
    closes the database pool when the server shuts down.

    A server that stops must first call ``relay.hub.close()``: long polls and
    event streams wait on the hub, and a server waits for open connections
    before it shuts the app down, so the lifespan's end comes too late for it
    (``sealbox up`` closes the hub on the first signal).
    """

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        listener = None
        if listen and relay.is_postgres:
            url = relay.engine.url
            dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
            listener = PgListener(dsn, relay.hub, relay.settings.db_schema)
            await listener.start()
        # Expires stale requests and forgets replay entries past their window.
        sweeping = asyncio.create_task(jobs.sweeper(relay))
        # Sends the alerts' outbox (webhooks, email); gives its claims back when stopped.
        alerting = asyncio.create_task(alert_delivery.deliverer(relay))
        try:
            yield
        finally:
            sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeping
            alerting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await alerting
            if listener is not None:
                await listener.stop()
            if owns_engine:
                # Close the pool here, in the server's orderly shutdown, whoever
                # runs the app: after serve() returns, plain uvicorn re-raises the
                # signal that stopped it, and a dispose still in progress then
                # would be cancelled mid-close.  (`sealbox up` keeps the signal.)
                await relay.engine.dispose()

    app = FastAPI(
        title="sealbox relay",
        version=__version__,
        description=(
            "The sealbox relay stores ciphertext and signed statements only. "
            "See docs/protocol.md for the protocol it carries."
        ),
        lifespan=lifespan,
        # No /docs or /redoc: FastAPI's pages load their script from a CDN, and any script on
        # the relay's origin runs beside the console's keys.  /openapi.json stays.
        docs_url=None,
        redoc_url=None,
    )
    app.state.relay = relay
    install_error_handlers(app)

    app.add_middleware(BodyLimit, limit=relay.settings.max_body_bytes)
    app.add_middleware(ShareHeaders)  # outside BodyLimit: its 413 gets the headers too
    # Outermost: every layer below sees the request's source as the relay believes it.
    app.add_middleware(Forwarded, proxies=relay.settings.trusted_proxies)

    for router in http.all_routers():
        # The resource routers' routes join the app's own list, rather than each
        # router being included: FastAPI matches an included router by walking it
        # with bookkeeping per candidate, which cost most of a request's CPU
        # (about 0.8 ms of 1.4 for an authenticated whoami).  The routes already
        # carry their full paths, tags and dependencies.
        app.router.routes.extend(router.routes)
    _describe_security(app)
    return app


def _describe_security(app: FastAPI) -> None:
    """Have ``/openapi.json`` declare the bearer and signature schemes and who needs which."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        # FastAPI caches the document and builds it again only when routes change.
        document = build()
        if "securitySchemes" not in document.get("components", {}):
            document_security(document, app.routes)
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point


class BodyLimit:
    """Refuse request bodies over the limit before reading them.

    A plain ASGI middleware rather than ``@app.middleware("http")``: that form
    wraps every request in an extra task and stream, which costs a long-poll
    waiter memory for its whole wait and every request a few hundred µs.
    Refused: a declared ``content-length`` over the limit, and a body with no
    declared length (chunked), which could be any size.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = chunked = None
            for name, value in scope["headers"]:
                if name == b"content-length":
                    length = value
                elif name == b"transfer-encoding":
                    chunked = value
            # Every method: a GET with a body is read too (signature checks hash it).
            limit = self.limit if scope["method"] in ("POST", "PUT", "PATCH") else 0
            too_large = (length is None and chunked is not None) or (
                length is not None and (not length.isdigit() or int(length) > limit)
            )
            if too_large:
                response = JSONResponse(
                    {"error": "body_too_large",
                     "message": f"request bodies are limited to {limit} bytes for this method",
                     "hint": "Store large values as several fields or items."},
                    status_code=413,
                )  # fmt: skip
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
