"""Transport authentication of key holders (approvers, machines): RFC 9421 signatures.

A request must carry one signature labelled and tagged ``sealbox``, by
``keyid`` = a current approver's id or an enabled client's id in the vault of
the URL, covering ``@method``, ``@target-uri`` and (with a body)
``content-digest``, with ``created`` within five minutes of the relay's clock
and a ``nonce`` the relay has not seen for that key.  Nonces are stored until
they could no longer be valid, so a replay is refused across restarts.

``@target-uri`` is checked against the URI exactly as the client sent it: the
scheme and authority the request arrived with (as Starlette reports them: the
ASGI scheme and the ``Host`` header) and the path and query as raw bytes, never
their decoded form.  A signature over one spelling of a path therefore does not
verify for another spelling that decodes to the same route.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Awaitable, Callable
from typing import Any

import http_message_signatures as hms
import http_sf
from fastapi import Request
from http_message_signatures import algorithms
from starlette.datastructures import URL
from starlette.requests import ClientDisconnect

from sealbox.crypto.keys import VerifyKey
from sealbox.errors import SealboxError
from sealbox.protocol import ids
from sealbox.server.auth.certcheck import check_client_certificate
from sealbox.server.auth.enrolled import check_enrolled
from sealbox.server.auth.network import check_network
from sealbox.server.auth.peer import source_ip
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Invalid, Unauthenticated
from sealbox.server.relay import Relay
from sealbox.server.store import clients as client_store

__all__ = [
    "MAX_SKEW",
    "REQUIRED_COMPONENTS",
    "signed_key_id",
    "target_uri",
    "verify_signed_by",
    "verify_signed_request",
]

MAX_SKEW = 300
REQUIRED_COMPONENTS = ("@method", "@target-uri")
LABEL = "sealbox"


def _unauthorized(error: str, message: str) -> Unauthenticated:
    return Unauthenticated(
        error, message,
        "Sign each request with your sealbox key (RFC 9421: @method, @target-uri, "
        "content-digest, created, nonce).",
    )  # fmt: skip


class _Resolver(hms.HTTPSignatureKeyResolver):
    def __init__(self, key_id: str, pem: bytes) -> None:
        self._key_id, self._pem = key_id, pem

    def resolve_public_key(self, key_id: str) -> Any:
        return self._pem if key_id == self._key_id else None


def _params(request: Request) -> dict[str, Any]:
    raw = request.headers.get("signature-input")
    if raw is None or request.headers.get("signature") is None:
        raise _unauthorized("signature_required", "this endpoint needs a signed request")
    try:
        parsed = http_sf.parse(raw.encode(), tltype="dictionary")
    except Exception:  # http_sf raises assorted built-in errors
        raise _unauthorized(
            "signature_invalid", "Signature-Input is not a structured field"
        ) from None
    if not isinstance(parsed, dict) or list(parsed) != [LABEL]:
        raise _unauthorized("signature_invalid", f"expected exactly one signature labelled {LABEL}")
    member: Any = parsed[LABEL]
    if not (isinstance(member, tuple) and len(member) == 2 and isinstance(member[1], dict)):
        raise _unauthorized("signature_invalid", "Signature-Input is not an inner list")
    return dict(member[1])


class _AsSent:
    """The request as the signature library reads it, with its URI as the client sent it."""

    def __init__(self, request: Request) -> None:
        self.method = request.method
        self.headers = request.headers
        self.url = target_uri(request.scope)


def target_uri(scope: Any) -> str:
    """The request's absolute URI as sent: RFC 9421 ``@target-uri``.

    ASGI's ``path`` is percent-decoded, so two different targets can share it;
    ``raw_path`` holds the bytes the client sent.  Scheme and authority come
    from the same place as Starlette's ``request.url``.
    """
    origin = URL(scope=scope)
    raw_path = scope.get("raw_path")
    if raw_path is None:
        # Servers that omit raw_path (it is optional in ASGI) get the decoded
        # path: a percent-encoded target then fails to verify rather than verifying
        # as something else.
        return str(origin)
    # Some servers include the query in raw_path; the query comes from query_string.
    path = raw_path.split(b"?", 1)[0].decode("latin-1")
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{origin.scheme}://{origin.netloc}{path}" + (f"?{query}" if query else "")


def signed_key_id(request: Request) -> str | None:
    """The ``keyid`` a request's signature names, if it is a well-formed approver or client id.

    For the audit of refused requests: anything else the caller put there is not
    repeated into the log.
    """
    try:
        key_id = _params(request).get("keyid")
    except Unauthenticated:
        return None
    for kind in (ids.APPROVER, ids.CLIENT, ids.ENROLLMENT):
        try:
            return ids.check_id(key_id, kind)
        except SealboxError:
            continue
    return None


@functools.lru_cache(maxsize=4096)
def _pem(key: VerifyKey) -> bytes:
    # Keys recur on every request of a caller; their PEM form does not change.
    return key.to_pem()


KeyFor = Callable[[Relay, str, str, str | None], Awaitable[tuple[VerifyKey, Principal]]]
"""Finds the key (and the caller) a ``keyid`` names, given the request's source address."""


async def _key_for(
    relay: Relay, vault: str, key_id: str, source: str | None
) -> tuple[VerifyKey, Principal]:
    async with relay.read() as conn:
        if key_id.startswith("apv_"):
            directory = await relay.directories.load(conn, vault)
            record = directory.approvers.get(key_id)
            if record is not None:
                return record.sig_pk, Principal(vault=vault, id=key_id, role="approver")
        elif key_id.startswith("cli_"):
            row = await client_store.get(conn, vault, key_id)
            if row is not None and not row.disabled:
                # Before anything costly: the certificate check may verify a signature.
                await check_network(relay, conn, vault, row.kind, source)
                await check_client_certificate(
                    relay, conn, vault, row.certificate, row.enrollment, relay.now()
                )
                await check_enrolled(conn, vault, row, source)
                principal = Principal(vault=vault, id=key_id, role="client", client_kind=row.kind)
                return VerifyKey.from_text(row.sig_pk), principal
    raise _unauthorized("unknown_key", "the signing key is not a current approver or client")


def _checked_params(request: Request, relay: Relay) -> tuple[str, int, str]:
    params = _params(request)
    key_id, created, nonce = params.get("keyid"), params.get("created"), params.get("nonce")
    if not isinstance(key_id, str) or not isinstance(created, int) or not isinstance(nonce, str):
        raise _unauthorized("signature_invalid", "keyid, created and nonce are all required")
    if not 8 <= len(nonce) <= 128:
        raise _unauthorized("signature_invalid", "the nonce must have 8 to 128 characters")
    if abs(relay.now() - created) > MAX_SKEW:
        raise _unauthorized("signature_expired", "the signature was created too long ago or ahead")
    return key_id, created, nonce


async def verify_signed_request(
    request: Request, relay: Relay, vault: str, *, key_for: KeyFor = _key_for
) -> Principal:
    """Authenticate a signed request to ``vault``; raise 401 on anything wrong (403
    ``network_not_allowed`` for a machine or agent outside the vault's allowlist).

    ``key_for``: where ``keyid`` is looked up (approvers and clients; a CI
    runner's calls look up enrollments instead).
    """
    key_id, created, nonce = _checked_params(request, relay)
    # The caller's row: a machine or agent outside the vault's allowlist is refused there,
    # before its signature costs a verification.
    key, principal = await key_for(relay, vault, key_id, source_ip(request))
    await _verify(request, relay, vault, key_id, key, created, nonce)
    return principal


async def verify_signed_by(request: Request, relay: Relay, vault: str, *, key_id: str,
                           key: VerifyKey) -> None:  # fmt: skip
    """Check that ``request`` is signed by ``key`` as ``key_id`` (a key not yet a client's:
    a machine proving it holds the key it registers); raise 401 on anything wrong."""
    signed_as, created, nonce = _checked_params(request, relay)
    if signed_as != key_id:
        raise _unauthorized("unknown_key", "the request is not signed by the key it is about")
    await _verify(request, relay, vault, key_id, key, created, nonce)


async def _verify(request: Request, relay: Relay, vault: str, key_id: str, key: VerifyKey,
                  created: int, nonce: str) -> None:  # fmt: skip
    try:
        body = await request.body()
    except ClientDisconnect:
        raise Invalid("client_disconnected", "the client went away mid-request") from None
    verifier = hms.HTTPMessageVerifier(
        signature_algorithm=algorithms.ED25519, key_resolver=_Resolver(key_id, _pem(key))
    )
    verifier.max_clock_skew = datetime.timedelta(seconds=MAX_SKEW)
    try:
        verifier.verify(
            _AsSent(request), max_age=None, expect_tag=LABEL,
            require_components=REQUIRED_COMPONENTS, body=body,
        )  # fmt: skip
    except (hms.HTTPMessageSignaturesException, SealboxError, ValueError):
        raise _unauthorized("signature_invalid", "the request signature does not verify") from None
    if not await relay.replay_guard.first_use(vault, "nonce", f"{key_id} {nonce}",
                                              created + 2 * MAX_SKEW):  # fmt: skip
        raise _unauthorized("signature_replayed", "this signature nonce was already used")
