"""The relay's ASGI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from sealbox import __version__
from sealbox.server import jobs, routes
from sealbox.server.errors import install_error_handlers
from sealbox.server.notify import PgListener
from sealbox.server.relay import Relay

__all__ = ["create_app"]

log = logging.getLogger("sealbox.relay")


def create_app(relay: Relay, *, listen: bool = True) -> FastAPI:
    """The relay app around ``relay`` (whose schema must already be migrated).

    With PostgreSQL and ``listen``, the app holds one LISTEN connection for
    wake-ups from other replicas while it runs.
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
        try:
            yield
        finally:
            sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeping
            if listener is not None:
                await listener.stop()

    app = FastAPI(
        title="sealbox relay",
        version=__version__,
        description=(
            "The sealbox relay stores ciphertext and signed statements only. "
            "See docs/protocol.md for the protocol it carries."
        ),
        lifespan=lifespan,
    )
    app.state.relay = relay
    install_error_handlers(app)

    limit = relay.settings.max_body_bytes

    @app.middleware("http")
    async def body_limit(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # Refuse before reading: a declared length over the limit, or a body
        # without a declared length (chunked), which could be any size.
        length = request.headers.get("content-length")
        if request.method in ("POST", "PUT", "PATCH"):
            if length is None or not length.isdigit():
                if request.headers.get("transfer-encoding"):
                    return _too_large(limit)
            elif int(length) > limit:
                return _too_large(limit)
        return await call_next(request)

    for router in routes.all_routers():
        app.include_router(router)
    return app


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"error": "body_too_large", "message": f"request bodies are limited to {limit} bytes",
         "hint": "Store large values as several fields or items."},
        status_code=413,
    )  # fmt: skip
