"""Share links, as data: ids, the link format, the bounds, and a share's states.

A share link is ``RELAY/s/ID#KEY``: ``ID`` is ``shr_`` and 26 lowercase base32
characters (128 random bits, made by the sender's client, and bound into the
ciphertext's aad), ``KEY`` is the 256-bit share key in unpadded base64url.  The
key is in the fragment, which browsers and HTTP clients never send, so the
relay that stores the ciphertext never receives it.  Parsing is strict: one
spelling of a link, no other, so a link that was cut or changed is refused
before anything is asked of the relay.

The id is not a credential (it shows in logs and audit entries): opening also
needs the open token the key derives (:func:`sealbox.crypto.sharelink.open_token`),
of which the relay holds only a hash.

States (every transition is one compare-and-set in the store, from ``live``
only; the others are final):

==========  ==========================================================
live        holds the ciphertext; the only state that can be opened
opened      its first correct view took the ciphertext (deleted)
destroyed   a wrong passphrase was given: the ciphertext is deleted
expired     its TTL passed before it was opened: the ciphertext is deleted
==========  ==========================================================
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final
from urllib.parse import urlsplit

from sealbox.crypto.encoding import b64u_decode, b64u_encode
from sealbox.crypto.keys import RandomBytes
from sealbox.crypto.sharelink import SHARE_KEY_BYTES
from sealbox.errors import InvalidInput, MalformedInput

__all__ = [
    "MAX_PASSPHRASE",
    "MAX_TTL",
    "MAX_VALUE_BYTES",
    "MIN_PASSPHRASE",
    "MIN_TTL",
    "PATH_PREFIX",
    "SHARE",
    "ShareLink",
    "ShareState",
    "check_share_id",
    "check_ttl",
    "new_share_id",
    "parse_link",
    "parse_ttl",
]

SHARE: Final = "shr"
#: Where the relay serves a share's page: ``/s/ID``.
PATH_PREFIX: Final = "/s/"
#: A share lives at least a minute (time to send the link) and at most seven days: a link
#: left in a mailbox for longer is a liability, and the sender can always make another.
MIN_TTL: Final = 60
MAX_TTL: Final = 7 * 86400
#: The largest value a share carries: a password, a key, a certificate, a short file.
MAX_VALUE_BYTES: Final = 64 * 1024
#: A passphrase is at least 8 characters (shorter ones add nothing a guess cannot find);
#: at most 1024, so hashing one costs what hashing any costs.
MIN_PASSPHRASE: Final = 8
MAX_PASSPHRASE: Final = 1024

_ID = re.compile(r"shr_[a-z2-7]{26}")
_KEY_TEXT = 43  # 32 bytes in unpadded base64url
_TTL = re.compile(r"([1-9][0-9]{0,6})([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class ShareState(StrEnum):
    LIVE = "live"
    OPENED = "opened"
    DESTROYED = "destroyed"
    EXPIRED = "expired"


def new_share_id(random: RandomBytes = secrets.token_bytes) -> str:
    """A fresh share id, made by the sender's client (it is in the aad before any upload)."""
    raw = random(16)
    if len(raw) != 16:
        raise ValueError("random source returned the wrong length")
    return f"{SHARE}_" + base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def check_share_id(value: object) -> str:
    """``value`` if it is a share id; else :class:`MalformedInput`."""
    # A fixed shape only: nothing else can reach a query or a page, and an id that
    # differs in case or length can never name the same share twice.
    if not isinstance(value, str) or _ID.fullmatch(value) is None:
        raise MalformedInput("share id: expected shr_ and 26 base32 characters")
    # 26 base32 characters carry 130 bits: the last two must be zero (one spelling per id).
    raw = base64.b32decode(value[4:].upper() + "======")
    if new_share_id(lambda _: raw) != value:
        raise MalformedInput("share id: non-canonical base32")
    return value


def check_ttl(seconds: int) -> int:
    if type(seconds) is not int or not MIN_TTL <= seconds <= MAX_TTL:
        raise InvalidInput(
            f"a share lives {MIN_TTL} s to {MAX_TTL // 86400} days",
            hint="Give --ttl between 60s and 7d, e.g. 1h.",
        )
    return seconds


def parse_ttl(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``1h`` or ``7d`` as seconds, within the bounds."""
    found = _TTL.fullmatch(text.strip())
    if found is None:
        raise InvalidInput(f"not a duration: {text!r}", hint="Use e.g. 90s, 15m, 1h or 7d.")
    return check_ttl(int(found.group(1)) * _UNITS[found.group(2)])


@dataclass(frozen=True)
class ShareLink:
    relay: str
    """The relay's base URL, as the link has it (``https://host[:port][/prefix]``)."""
    share_id: str
    key: bytes = field(repr=False)
    """The 32-byte share key (from the fragment; never sent anywhere, never printed)."""

    @property
    def url(self) -> str:
        return f"{self.relay}{PATH_PREFIX}{self.share_id}#{b64u_encode(self.key)}"


def parse_link(text: str) -> ShareLink:
    """A share link, strictly: http(s), a path ending in ``/s/ID``, a fragment of one key."""
    text = text.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise MalformedInput("share link: expected an http(s) URL", hint=_WHOLE)
    if parts.query or "@" in parts.netloc:
        # No user info (a link that shows one host and names another) and no query.
        raise MalformedInput("share link: unexpected parts in the URL", hint=_WHOLE)
    prefix, sep, share_id = parts.path.rpartition(PATH_PREFIX)
    if not sep:
        raise MalformedInput("share link: the path does not end in /s/ID", hint=_WHOLE)
    check_share_id(share_id)
    if len(parts.fragment) != _KEY_TEXT:
        raise MalformedInput("share link: the key after '#' is missing or cut", hint=_WHOLE)
    key = b64u_decode(parts.fragment, length=SHARE_KEY_BYTES, what="share link key")
    return ShareLink(f"{parts.scheme}://{parts.netloc}{prefix}", share_id, key)


_WHOLE = "Copy the whole link, including the part after '#'."
