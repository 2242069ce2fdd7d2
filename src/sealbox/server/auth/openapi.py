"""How the relay's OpenAPI document describes transport authentication.

Three schemes: people's CLI sessions send ``Authorization: Bearer sbx_at_…``, an
HTTP bearer scheme; key holders sign requests with RFC 9421; an approver in the
browser console sends its session cookie ``sealbox_console`` (an ``apiKey`` in a
cookie), with ``X-Sealbox-CSRF`` and an allowed ``Origin`` on changing calls.  OpenAPI has no
type for HTTP message signatures, so the signature is declared as what a
caller must send, the ``Signature`` header (an ``apiKey`` in a header), with a
description pointing at RFC 9421 and the protocol text.

Which operations need which scheme follows from their dependencies, never from
their paths: an operation that depends on :func:`~sealbox.server.auth.authenticate`
or :func:`~sealbox.server.auth.require_client` accepts either scheme, one that
depends on :func:`~sealbox.server.auth.require_approver` a signature or a console
session (an approver has no bearer token), one that depends on
:func:`~sealbox.server.auth.require_session` the console session only.  A route
moved to another module keeps its requirement because it keeps its dependency.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fastapi import routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

__all__ = ["BEARER", "SECURITY_SCHEMES", "SESSION", "SIGNATURE", "document_security"]

BEARER = "bearerToken"
SIGNATURE = "httpSignature"
SESSION = "consoleSession"

SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "sbx_at_…",
        "description": (
            "An access token `sbx_at_…` from the device authorization grant (RFC 8628) at "
            "`/oauth/token`: a person's session on a CLI. It acts as the client the login "
            "certified; approvers never use one. See docs/protocol.md §12."
        ),
    },
    SIGNATURE: {
        "type": "apiKey",
        "in": "header",
        "name": "Signature",
        "description": (
            "An RFC 9421 HTTP Message Signature by an approver's or client's sealbox key: "
            "`Signature` and `Signature-Input` with one signature labelled `sealbox` "
            '(`tag="sealbox"`, `alg="ed25519"`, `keyid` = the `apv_…` or `cli_…` id, or for a CI '
            "runner's enrollment calls the `enr_…` id and its delegation key), covering "
            "`@method`, `@target-uri` (as sent) and, with a body, `content-digest`, with "
            "`created` and a fresh `nonce`. OpenAPI has no scheme type for message signatures; "
            "see docs/protocol.md §12 and src/sealbox/client/httpsig.py."
        ),
    },
    SESSION: {
        "type": "apiKey",
        "in": "cookie",
        "name": "sealbox_console",
        "description": (
            "The browser console's session: an HttpOnly, SameSite=Strict cookie set by "
            "`console/setup` or `console/signin` (a passkey with user verification), good for "
            "12 hours while its approver is in the directory. It acts as that approver. Every "
            "call but GET and HEAD must also send the session's CSRF token (from "
            "`GET console/session`) as `X-Sealbox-CSRF` and an `Origin` that is an allowed "
            "console origin; a request with the cookie and another credential is refused. "
            "A session never releases anything by itself: releases, denies, manifests, links "
            "and certificates are statements the browser signs."
        ),
    },
}

#: Alternatives (any one suffices), by the dependency that checks them.
_ANY = (SIGNATURE, BEARER, SESSION)
_APPROVER = (SIGNATURE, SESSION)
_SESSION_ONLY = (SESSION,)
_SIGNATURE_ONLY = (SIGNATURE,)


def _requirements() -> dict[Callable[..., Any], tuple[str, ...]]:
    from sealbox.server.auth import (
        authenticate,
        require_approver,
        require_client,
        require_enrollment,
        require_session,
    )

    return {
        authenticate: _ANY,
        require_client: _ANY,
        require_approver: _APPROVER,
        require_session: _SESSION_ONLY,
        require_enrollment: _SIGNATURE_ONLY,
    }


def _schemes_of(call: Callable[..., Any], known: dict[Callable[..., Any], tuple[str, ...]]) -> (
    tuple[str, ...] | None
):  # fmt: skip
    found = known.get(call)
    if found is not None or not inspect.isfunction(call):
        return found
    # A dependency may wrap one of ours by calling it (the audit routes' approver
    # check adds a test of its own that way); it needs what the wrapped one needs.
    wrapped = [
        known[value]
        for value in inspect.getclosurevars(call).globals.values()
        if inspect.isfunction(value) and value in known
    ]
    return _strictest(wrapped)


def _strictest(alternatives: Iterable[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The schemes that satisfy every one of several requirements (None: no requirement)."""
    result: tuple[str, ...] | None = None
    for schemes in alternatives:
        result = schemes if result is None else tuple(s for s in result if s in schemes)
    return result


def _walk(dependant: Dependant) -> Iterable[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _walk(sub)


def route_schemes(route: APIRoute) -> tuple[str, ...] | None:
    """The schemes any one of which the route accepts; None if it needs none."""
    known = _requirements()
    return _strictest(
        schemes
        for schemes in (_schemes_of(call, known) for call in _walk(route.dependant))
        if schemes is not None
    )


def _api_routes(routes: Iterable[Any]) -> Iterator[tuple[str, APIRoute]]:
    """Each API route with the path it is served at."""
    contexts = getattr(routing, "iter_route_contexts", None)
    if contexts is None:
        # FastAPI before included routers became lazy: app.routes is already flat.
        for route in routes:
            if isinstance(route, APIRoute):
                yield route.path_format, route
        return
    for context in contexts(list(routes)):
        route = context.original_route
        if isinstance(route, APIRoute) and context.path_format is not None:
            yield context.path_format, route


def document_security(document: dict[str, Any], routes: Iterable[Any]) -> None:
    """Add the security schemes, and each operation's requirement, to ``document`` in place."""
    document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for path, route in _api_routes(routes):
        if not route.include_in_schema:
            continue
        schemes = route_schemes(route)
        if schemes is None:
            continue
        operations = document.get("paths", {}).get(path, {})
        for method in route.methods or ():
            operation = operations.get(method.lower())
            if operation is not None:
                operation["security"] = [{scheme: []} for scheme in schemes]
