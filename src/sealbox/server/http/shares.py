"""Share links over HTTP: a person's client creates one; anyone with the link opens it once.

* ``POST /v1/vaults/{vault}/shares`` (a person's login): store a sealed value.
* ``GET /v1/shares/{id}``: whether a live share needs a passphrase, and its expiry.
  Changes nothing.
* ``POST /v1/shares/{id}/open``: take the ciphertext, once, given the link's
  open token (derived from its key).  A POST, so that a link preview's GET of the
  page never spends the share.
* ``GET /s/{id}``: the recipient's page; its module fetches and decrypts with the key
  in the fragment, which the browser never sends here.

The open endpoints need no credential (the link is the credential); a call that
carries one is authenticated, and a machine's or agent's is refused (403).
Parse, call :mod:`sealbox.server.services.shares`, answer JSON.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sealbox import web
from sealbox.crypto.encoding import b64u_decode, b64u_encode
from sealbox.errors import MalformedInput
from sealbox.protocol import shares as proto
from sealbox.server.auth import authenticate
from sealbox.server.errors import Invalid, NotFound
from sealbox.server.http.console import assets_of
from sealbox.server.http.deps import Client, relay_of, source_ip
from sealbox.server.services import directory
from sealbox.server.services import shares as service

router = APIRouter(tags=["shares"])

#: Base64url characters of the largest ciphertext accepted.
_CIPHERTEXT_TEXT = -(-service.MAX_CIPHERTEXT * 4 // 3)
#: What every answer about a share carries: never cached, never a referrer.
_HEADERS = {"cache-control": "no-store", "referrer-policy": "no-referrer"}


def _is_share_path(path: str) -> bool:
    if path.startswith(("/v1/shares/", proto.PATH_PREFIX)) or path == "/v1/shares":
        return True
    parts = path.split("/")  # "", "v1", "vaults", VAULT, "shares"
    return len(parts) == 5 and parts[1:3] == ["v1", "vaults"] and parts[4] == "shares"


class ShareHeaders:
    """``no-store`` and ``no-referrer`` on every answer of the share routes, errors included.

    A plain ASGI middleware, so that answers made outside the routes (a 404 or 405 of
    the router, a 422 of body parsing, a 413 of the body limit, a 429) carry them too:
    an error page cached by a proxy, or a referrer sent from it, would keep a share's
    id (and on ``/s/``, a page whose URL may hold the key) where it should not be.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_share_path(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in _HEADER_NAMES]  # fmt: skip
                headers += [(k.encode(), v.encode()) for k, v in _HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_HEADER_NAMES = frozenset(k.encode() for k in _HEADERS)


class CreateBody(BaseModel):
    # Strict: no field but these, no string standing in for a number (a body another
    # parser would read differently is refused, not guessed).
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(min_length=30, max_length=30, description="`shr_…`, made by your client "
                    "and bound into the ciphertext's associated data.")  # fmt: skip
    nonce: str = Field(min_length=16, max_length=16, description="AES-GCM nonce, base64url.")
    ciphertext: str = Field(min_length=1, max_length=_CIPHERTEXT_TEXT,
                            description="AES-256-GCM ciphertext and tag, base64url.")  # fmt: skip
    ttl_seconds: int = Field(ge=proto.MIN_TTL, le=proto.MAX_TTL,
                             description="Seconds until the share expires.")  # fmt: skip
    passphrase: str | None = Field(default=None, min_length=proto.MIN_PASSPHRASE,
                                   max_length=proto.MAX_PASSPHRASE,
                                   description="Optional: the relay keeps only its Argon2id "
                                   "hash, and a wrong one at open destroys the share.")  # fmt: skip
    open_token_hash: str = Field(min_length=43, max_length=43,
                                 description="SHA-256 of the open token (HKDF-SHA256 of the "
                                 "link's key, info `sealbox/v1/share/open` and the id), "
                                 "base64url: opening must present the token.")  # fmt: skip


class OpenBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    passphrase: str | None = Field(
        default=None, max_length=proto.MAX_PASSPHRASE,
        description="The share's passphrase, if it has one.",
    )  # fmt: skip
    token: str | None = Field(
        default=None, max_length=43,
        description="The open token the link's key derives, base64url. Without the right "
        "one the share reads as unknown (404) and stays live.",
    )  # fmt: skip


def _bytes(text: str, what: str) -> bytes:
    try:
        return b64u_decode(text, what=what)
    except MalformedInput as exc:
        raise Invalid("invalid_share", exc.message, "Send unpadded base64url.") from None


def _token(text: str | None) -> bytes | None:
    # A token that does not parse is as wrong as a wrong one: the same 404, nothing spent.
    if text is None:
        return None
    try:
        return b64u_decode(text, what="token")
    except MalformedInput:
        return b""


@router.post("/v1/vaults/{vault}/shares", status_code=201)
async def create_share(
    vault: str, body: CreateBody, request: Request, principal: Client
) -> JSONResponse:
    """Store a share link's sealed value (a person's login only).

    The answer's ``path`` is where the recipient opens it; your client adds
    ``#KEY``.  The relay never receives the key.
    """
    relay = relay_of(request)
    made = await service.create(
        relay, vault=vault, principal=principal, share_id=body.id,
        nonce=_bytes(body.nonce, "nonce"), ciphertext=_bytes(body.ciphertext, "ciphertext"),
        ttl=body.ttl_seconds, passphrase=body.passphrase, now=relay.now(),
        source_ip=source_ip(request),
        open_token_hash=_bytes(body.open_token_hash, "open_token_hash"),
    )  # fmt: skip
    return JSONResponse(
        {"id": made.id, "expires_at": made.expires_at, "path": proto.PATH_PREFIX + made.id},
        status_code=201, headers=_HEADERS,
    )  # fmt: skip


async def _refuse_machines(request: Request, vault: str) -> None:
    """A call that carries a credential is checked: a machine's or agent's is refused.

    Only an ``Authorization`` header or a request signature counts: the console's
    cookie is the approver's own, sent by the browser to any page of the relay.
    """
    headers = request.headers
    if "authorization" in headers or "signature" in headers or "signature-input" in headers:
        service.refuse_machine(await authenticate(request, vault))


@router.get("/v1/shares/{share_id}")
async def get_share(share_id: str, request: Request) -> JSONResponse:
    """A live share's expiry and whether it needs a passphrase (404 none, 410 spent)."""
    relay = relay_of(request)
    vault = (await directory.vault_info(relay)).vault
    await _refuse_machines(request, vault)
    found = await service.info(relay, vault=vault, share_id=share_id, now=relay.now())
    return JSONResponse(
        {"id": found.id, "passphrase": found.passphrase, "expires_at": found.expires_at},
        headers=_HEADERS,
    )  # fmt: skip


@router.post("/v1/shares/{share_id}/open")
async def open_share(share_id: str, body: OpenBody, request: Request) -> JSONResponse:
    """Take the share's ciphertext, once: the share is spent by this call.

    A wrong passphrase destroys the share (403 ``share_destroyed``).  Decrypt
    with the key from the link's fragment and the share id as associated data.
    """
    relay = relay_of(request)
    vault = (await directory.vault_info(relay)).vault
    await _refuse_machines(request, vault)
    opened = await service.open_share(
        relay, vault=vault, share_id=share_id, passphrase=body.passphrase, now=relay.now(),
        source_ip=source_ip(request), token=_token(body.token),
    )  # fmt: skip
    return JSONResponse(
        {"id": opened.id, "nonce": b64u_encode(opened.nonce),
         "ciphertext": b64u_encode(opened.ciphertext)},
        headers=_HEADERS,
    )  # fmt: skip


@router.get("/s/{share_id}", include_in_schema=False)
async def share_page(share_id: str, request: Request) -> Response:
    """The recipient's page.  Rendering it reads nothing about the share and spends nothing:
    a link preview that fetches it learns only that it is a sealbox share page."""
    try:
        proto.check_share_id(share_id)
    except MalformedInput:
        raise NotFound("share_not_found", "there is no such share link",
                       "Check that the whole link was copied.") from None  # fmt: skip
    relay = relay_of(request)
    rendered = assets_of(request).render(
        "share", {"relay_url": relay.settings.base_url}, outside=True
    )
    headers = {**web.page_headers(rendered), "x-robots-tag": "noindex, nofollow"}
    return Response(rendered.body, headers=headers)
