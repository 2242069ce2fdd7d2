"""Share links from the client's side: seal a value for someone outside the vault, open one.

:func:`create` seals the value under a fresh key (:mod:`sealbox.crypto.sharelink`)
and uploads only the ciphertext with a person's login; the key goes into the
link's fragment and nowhere else.  :func:`open_link` needs no login: it reads
the share's info, asks for the passphrase only if there is one, takes the
ciphertext (once) and decrypts it with the link's key.  Under a machine's or an
agent's identity it refuses before contacting the relay: share links are for
people (the relay refuses a machine's or agent's credential too).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sealbox._relay.calls import Call, Flow, expect_object, field
from sealbox._relay.drive import SyncDriver, http_client
from sealbox.crypto import sharelink
from sealbox.crypto.encoding import b64u_decode, b64u_encode
from sealbox.errors import MalformedInput, NotAuthorized, RelayRefused
from sealbox.protocol import shares as proto
from sealbox.protocol.shares import ShareLink

__all__ = ["Made", "create", "create_flow", "machine_identity", "open_flow", "open_link"]


@dataclass(frozen=True)
class Made:
    link: ShareLink
    expires_at: int


def create_flow(base: str, body: dict[str, Any]) -> Flow:
    reply = yield Call("POST", f"{base}/shares", json=body)
    made = expect_object(reply, "creating the share link", status=201)
    return field(made, "expires_at", int, "creating the share link")


def create(
    value: bytes, *, ttl: int, passphrase: str | None = None, profile: str | None = None
) -> Made:
    """Seal ``value`` and store it as a share link under a person's login ``profile``."""
    from sealbox.client.sdk import Client

    proto.check_ttl(ttl)
    if not 1 <= len(value) <= proto.MAX_VALUE_BYTES:
        raise MalformedInput(
            f"a share's value is 1 to {proto.MAX_VALUE_BYTES} bytes",
            hint="Share a shorter value, or a file of at most 64 KiB.",
        )
    if passphrase is not None and not proto.MIN_PASSPHRASE <= len(passphrase) <= (
        proto.MAX_PASSPHRASE
    ):
        raise MalformedInput(f"a passphrase is {proto.MIN_PASSPHRASE} to "
                             f"{proto.MAX_PASSPHRASE} characters")  # fmt: skip
    share_id = proto.new_share_id()
    key = sharelink.new_share_key()
    nonce, ciphertext = sharelink.seal_share(key, value, share_id=share_id)
    body: dict[str, Any] = {
        "id": share_id, "nonce": b64u_encode(nonce), "ciphertext": b64u_encode(ciphertext),
        "ttl_seconds": ttl,
        # Only the hash: the token itself is in no request until the recipient opens.
        "open_token_hash": b64u_encode(
            sharelink.open_token_hash(sharelink.open_token(key, share_id=share_id))
        ),
    }  # fmt: skip
    if passphrase is not None:
        body["passphrase"] = passphrase
    with Client(profile, cache=False) as client:
        session = client._session  # one package: the session's base path and server
        if session.profile.auth != "session":
            raise NotAuthorized(
                "share links are made by people: this is a machine's or an agent's identity",
                hint="Run `sealbox share create` under your own `sealbox login`.",
            )
        expires_at = client._drive(create_flow(session.state.base, body))
        return Made(ShareLink(session.server.rstrip("/"), share_id, key), expires_at)


def machine_identity(profile: str | None) -> str | None:
    """Why this process speaks as a machine or an agent (to refuse opening a share), if it does.

    A machine identity in ``SEALBOX_IDENTITY``, or a profile (named, or the default) that
    holds a machine's or an agent's credential.  A person's profile, or none, is fine.
    """
    from sealbox.client import identity
    from sealbox.client import profile as profiles
    from sealbox.errors import NotLoggedIn

    if profile is None and identity.from_environment() is not None:
        return f"{identity.IDENTITY_ENV} names a machine identity"
    name = profiles.profile_name(profile)
    try:
        found = profiles.load(profiles.profile_path(name), name=name)
    except NotLoggedIn:
        return None
    if found.auth == "signature":
        return f"profile {name!r} is a machine's"
    if found.auth == "agent":
        return f"profile {name!r} is an agent's"
    return None


def open_flow(link: ShareLink, ask_passphrase: Callable[[], str]) -> Flow:
    """Read the share's info, take its ciphertext once, open it with the link's key."""
    path = f"/v1/shares/{link.share_id}"
    what = "opening the share link"
    info = expect_object((yield Call("GET", path, auth=False)), what)
    body = {"token": b64u_encode(sharelink.open_token(link.key, share_id=link.share_id))}
    if info.get("passphrase") is True:
        body["passphrase"] = ask_passphrase()
    answer = expect_object((yield Call("POST", f"{path}/open", json=body, auth=False)), what)
    if answer.get("id") != link.share_id:
        raise RelayRefused(f"{what}: the relay answered for another share")
    nonce = b64u_decode(field(answer, "nonce", str, what), length=sharelink.NONCE_BYTES,
                        what="share nonce")  # fmt: skip
    ciphertext = b64u_decode(field(answer, "ciphertext", str, what), what="share ciphertext")
    return sharelink.open_share(link.key, nonce, ciphertext, share_id=link.share_id)


def open_link(link: ShareLink, ask_passphrase: Callable[[], str]) -> bytes:
    """The value behind ``link``; the share is spent by this call (no login needed)."""
    with http_client(link.relay) as http:
        value: bytes = SyncDriver(http, link.relay).drive(open_flow(link, ask_passphrase))
    return value


def passphrase_from_environment() -> str | None:
    return os.environ.get("SEALBOX_SHARE_PASSPHRASE") or None
