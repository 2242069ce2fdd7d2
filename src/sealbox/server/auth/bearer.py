"""Transport authentication of people's and agents' sessions: bearer access tokens.

Only SHA-256 hashes of tokens are stored; a token is looked up by its hash, so
no comparison of secrets happens in Python at all.  Revocation is immediate:
every request reads the token row.
"""

from __future__ import annotations

from fastapi import Request

from sealbox.server.auth.certcheck import check_client_certificate
from sealbox.server.auth.network import check_network
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Unauthenticated
from sealbox.server.relay import Relay
from sealbox.server.store import tokens as token_store

__all__ = ["ACCESS_PREFIX", "REFRESH_PREFIX", "bearer_token", "verify_bearer"]

ACCESS_PREFIX = "sbx_at_"
REFRESH_PREFIX = "sbx_rt_"


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.startswith(ACCESS_PREFIX):
        raise Unauthenticated("invalid_token", "expected `Authorization: Bearer sbx_at_…`")
    return value.strip()


async def verify_bearer(token: str, relay: Relay, vault: str, source: str | None) -> Principal:
    """The client of an access token; an agent's is held to the vault's network allowlist
    (``source``: the request's address) right after the lookup."""
    now = relay.now()
    async with relay.read() as conn:
        row = await token_store.access_session(conn, vault, token)
        if row is not None and not row.revoked and not row.disabled:
            await check_network(relay, conn, vault, row.kind, source, client_id=row.client_id)
        if row is not None and not row.revoked and not row.disabled and row.expires_at > now:
            await check_client_certificate(relay, conn, vault, row.certificate, row.enrollment, now)
    if row is None or row.revoked or row.disabled:
        raise Unauthenticated(
            "invalid_token", "the access token is unknown, revoked, or of another vault",
            "Log in again with `sealbox login`.",
        )  # fmt: skip
    if row.expires_at <= now:
        raise Unauthenticated("token_expired", "the access token has expired",
                       "Use your refresh token at /oauth/token.")  # fmt: skip
    return Principal(
        vault=vault, id=row.client_id, role="client", client_kind=row.kind, via="bearer"
    )
