"""HTTP errors: every failure is JSON ``{error, message, hint}`` with a correct 4xx.

Handlers here turn sealbox errors raised by the protocol layer, request
validation errors and the relay's own :class:`ApiError` into that shape.
Nothing a client sent is echoed back beyond what it needs to fix its request.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sealbox.errors import SealboxError

__all__ = ["ApiError", "install_error_handlers"]

log = logging.getLogger("sealbox.relay")

#: HTTP status for each protocol error code raised while checking a request.
_STATUS_BY_CODE = {
    "malformed": 400,
    "expired": 400,
    "not_authorized": 403,
    "certificate_invalid": 403,
    "illegal_transition": 409,
    "version_rollback": 409,
}


class ApiError(Exception):
    """A failure the relay reports to the caller as it is."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        hint: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.hint = hint
        self.headers = headers


def _body(error: str, message: str, hint: str) -> dict[str, str]:
    return {"error": error, "message": message, "hint": hint}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return JSONResponse(
            _body(exc.error, exc.message, exc.hint), status_code=exc.status, headers=headers
        )

    @app.exception_handler(SealboxError)
    async def _protocol(_: Request, exc: SealboxError) -> JSONResponse:
        status = _STATUS_BY_CODE.get(exc.code, 400)
        return JSONResponse(_body(exc.code, exc.message, exc.hint), status_code=status)

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
