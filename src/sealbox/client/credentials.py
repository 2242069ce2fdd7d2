"""An agent's access tokens: the OAuth ``client_credentials`` grant with ``private_key_jwt``.

An agent authenticates to the token endpoint with a JWT signed by its own key
(RFC 7523 §2.2): ``iss`` and ``sub`` its client id, ``aud`` the token
endpoint, two minutes of life (the relay takes at most five) and a fresh
``jti`` each time, which the relay accepts once.  There is no refresh token
(RFC 6749 §4.4.3): a new assertion simply gets a new access token.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from sealbox._relay.calls import Call, Flow, expect_object, field, refused
from sealbox.crypto import jwt
from sealbox.crypto.encoding import b64u_encode
from sealbox.crypto.keys import SigningKey
from sealbox.errors import MalformedInput, NotLoggedIn

__all__ = ["ASSERTION_SECONDS", "ASSERTION_TYPE", "assertion", "token_flow"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: How long a client assertion lives (the relay takes at most five minutes).
ASSERTION_SECONDS = 120

Clock = Callable[[], float]


def assertion(
    key: SigningKey, client_id: str, token_endpoint: str, *, now: int,
    lifetime: int = ASSERTION_SECONDS,
) -> str:  # fmt: skip
    """A fresh ``private_key_jwt`` client assertion (RFC 7523 §3), single use."""
    claims = {
        "iss": client_id, "sub": client_id, "aud": token_endpoint, "iat": now,
        "exp": now + lifetime, "jti": b64u_encode(secrets.token_bytes(16)),
    }  # fmt: skip
    return jwt.sign_jwt(key, claims)


def token_flow(
    key: SigningKey, client_id: str, token_endpoint: str, *, clock: Clock = time.time
) -> Flow:
    """Get an access token by ``client_credentials``; returns (token, expires_at)."""
    now = int(clock())
    reply = yield Call("POST", "/oauth/token", auth=False, form={
        "grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(key, client_id, token_endpoint, now=now),
    })  # fmt: skip
    if reply.status != 200:
        failure = refused(reply, "getting the agent's access token")
        if reply.status in (400, 401):
            raise NotLoggedIn(
                f"the relay refused the agent's credentials: {failure.message}",
                hint=failure.hint or "Ask an approver whether the agent is disabled or revoked.",
            )
        raise failure
    body = expect_object(reply, "getting the agent's access token")
    what = "getting the agent's access token"
    if body.get("client_id") != client_id:
        raise MalformedInput("the relay's token is for another client")
    return field(body, "access_token", str, what), now + field(body, "expires_in", int, what)
