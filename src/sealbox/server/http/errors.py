"""Domain errors to HTTP, in one place: every failure is JSON ``{error, message, hint}``.

The handlers here turn the relay's domain errors (:mod:`sealbox.server.errors`),
sealbox's protocol errors raised while checking a request, request validation
errors and routing errors into that shape with the right 4xx.  Nothing a client
sent is echoed back beyond what it needs to fix its request.
"""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sealbox.errors import SealboxError
from sealbox.server import errors as domain
from sealbox.server.auth.refusals import FORBIDDEN_ACTION, record_refusal
from sealbox.server.services.policy_axes import AxisRefusal

__all__ = ["install_error_handlers", "status_of"]

#: HTTP status of each kind of domain error.
STATUS = {
    domain.Invalid: 400,
    domain.Unauthenticated: 401,
    domain.Forbidden: 403,
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.Gone: 410,
    domain.TooMany: 429,
    domain.Unavailable: 503,
    domain.RelayError: 400,
}

#: HTTP status for each protocol error code raised while checking a request.
_STATUS_BY_CODE = {
    "malformed": 400,
    "expired": 400,
    "not_authorized": 403,
    "certificate_invalid": 403,
    "illegal_transition": 409,
    "version_rollback": 409,
}


def status_of(exc: Exception) -> int:
    """The HTTP status a domain or protocol error is answered with."""
    if isinstance(exc, domain.RelayError):
        return STATUS[next(k for k in type(exc).__mro__ if k in STATUS)]
    if isinstance(exc, SealboxError):
        return _STATUS_BY_CODE.get(exc.code, 400)
    return 500


def headers_of(exc: domain.RelayError) -> dict[str, str]:
    headers = {}
    if isinstance(exc, domain.Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return headers


async def _audit_forbidden(request: Request, exc: SealboxError | domain.RelayError) -> None:
    """Record an authenticated caller refused what it asked (403) as ``request.refused``.

    Refusals of credentials (401, 429) are recorded where they happen, in auth/; this
    covers everything a service refuses later: no grant, outside the certificate's item
    scopes, a missing scope or role, an address outside the certificate's networks.
    Throttled like every refusal event.
    """
    principal = getattr(request.state, "principal", None)
    # A policy axis's refusal (outside hours 403, over a read-rate cap 429, a destroyed item
    # 410) is recorded the same way, whatever its status.
    axis = isinstance(exc, AxisRefusal)
    if (status_of(exc) != 403 and not axis) or principal is None:
        return
    await record_refusal(request, request.app.state.relay, principal.vault, exc,
                         actor=principal.id, status=status_of(exc),
                         action=FORBIDDEN_ACTION if axis else None)  # fmt: skip


def _body(error: str, message: str, hint: str) -> dict[str, str]:
    return {"error": error, "message": message, "hint": hint}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(domain.RelayError)
    async def _relay(request: Request, exc: domain.RelayError) -> JSONResponse:
        await _audit_forbidden(request, exc)
        return JSONResponse(
            _body(exc.code, exc.message, exc.hint), status_code=status_of(exc),
            headers=headers_of(exc),
        )  # fmt: skip

    @app.exception_handler(SealboxError)
    async def _protocol(request: Request, exc: SealboxError) -> JSONResponse:
        await _audit_forbidden(request, exc)
        return JSONResponse(_body(exc.code, exc.message, exc.hint), status_code=status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(
            ".".join(str(p) for p in e.get("loc", ())) + ": " + str(e.get("msg", ""))
            for e in exc.errors()[:5]
        )
        return JSONResponse(
            _body("invalid_request", f"the request does not match the API: {where}",
                  "See /openapi.json for the shape of this endpoint."),
            status_code=422,
        )  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(_body(error, str(exc.detail), ""), status_code=exc.status_code)
