"""The enrollment token: what a CI provider's secret store holds for ``sealbox ci login``.

One copy-pastable line::

    sbx_enr_ || b64u(canonical JSON {
        "v": 1,
        "server": "<relay URL>",
        "vault": "vlt_…",
        "fingerprint": "sha256:…",      (the vault fingerprint: hash of directory link 0)
        "enrollment": "enr_…",
        "key": "sbx-ed25519-sk-v1:…"    (the enrollment's delegation private key)
    })

The relay never sees the token: the runner signs with the key it carries and
pins the vault by its fingerprint, so a relay (or a man in the middle) cannot
make it enrol into another vault.  Parsing is strict; each rule says what it stops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sealbox.crypto.encoding import (
    b64u_decode,
    b64u_encode,
    canonical_json,
    parse_canonical_json,
    parse_digest,
)
from sealbox.crypto.keys import SigningKey
from sealbox.errors import MalformedInput, SealboxError
from sealbox.protocol import ids

__all__ = ["PREFIX", "TOKEN_MAX", "EnrollmentToken", "check_server", "parse_token"]

PREFIX = "sbx_enr_"
VERSION = 1
#: Real tokens are about 400 characters; anything much longer is not one.
TOKEN_MAX = 4096
SERVER_MAX = 2048
_KEYS = frozenset({"v", "server", "vault", "fingerprint", "enrollment", "key"})
# An origin with an optional path prefix: no user info (a password must not ride in
# a token), no query or fragment (nothing the runner would silently drop), no spaces.
_SERVER = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?")


@dataclass(frozen=True)
class EnrollmentToken:
    server: str
    """The relay's URL, without a trailing slash."""
    vault: str
    fingerprint: str
    """The vault fingerprint the runner pins (``sha256:…`` of directory link 0)."""
    enrollment: str
    """The ``enr_…`` id."""
    key: SigningKey
    """The delegation private key: whoever holds it can enrol machines within the limits."""

    def __repr__(self) -> str:
        # Never the key, even in a traceback.
        return f"EnrollmentToken(server={self.server!r}, enrollment={self.enrollment!r})"

    def to_text(self) -> str:
        body = {
            "v": VERSION, "server": self.server, "vault": self.vault,
            "fingerprint": self.fingerprint, "enrollment": self.enrollment,
            "key": self.key.to_text(),
        }  # fmt: skip
        text = PREFIX + b64u_encode(canonical_json(body))
        parse_token(text)  # never hand out what the runner would refuse
        return text


def check_server(value: object) -> str:
    """A relay URL as a token may carry it."""
    if not isinstance(value, str) or len(value) > SERVER_MAX or not _SERVER.fullmatch(value):
        raise MalformedInput("enrollment token: the relay URL is not a plain http(s) URL")
    if value.endswith("/"):
        # One spelling per URL: the runner builds request targets from it.
        raise MalformedInput("enrollment token: the relay URL must not end with /")
    return value


def parse_token(text: object) -> EnrollmentToken:
    """Parse an enrollment token strictly; raise :class:`MalformedInput` (never echoing it)."""
    if not isinstance(text, str) or len(text) > TOKEN_MAX:
        raise MalformedInput("enrollment token: expected text of at most 4096 characters")
    # Copy-pasting into a secret store often adds a newline; nothing else is forgiven.
    text = text.strip()
    if not text.startswith(PREFIX):
        raise MalformedInput(f"enrollment token: expected it to start with {PREFIX}")
    try:
        # Strict base64url (no padding, canonical trailing bits) and canonical JSON
        # (no duplicate keys, one spelling): one token has exactly one meaning.
        body = parse_canonical_json(b64u_decode(text[len(PREFIX) :], what="enrollment token"),
                                    what="enrollment token")  # fmt: skip
        if set(body) != _KEYS:
            raise MalformedInput("enrollment token: unexpected or missing members")
        if body["v"] != VERSION or isinstance(body["v"], bool):
            raise MalformedInput("enrollment token: unknown version")
        return EnrollmentToken(
            server=check_server(body["server"]),
            vault=ids.check_id(body["vault"], ids.VAULT, what="enrollment token vault"),
            fingerprint=parse_digest(body["fingerprint"], what="enrollment token fingerprint"),
            enrollment=ids.check_id(body["enrollment"], ids.ENROLLMENT, what="enrollment token id"),
            key=SigningKey.from_text(body["key"]),
        )
    except SealboxError as exc:
        # The message of a failed key parse could carry bytes of the key: say only what.
        if isinstance(exc, MalformedInput) and exc.message.startswith("enrollment token"):
            raise
        raise MalformedInput("enrollment token: not a valid sbx_enr_ token") from None
