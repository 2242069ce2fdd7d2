"""A logged-in CLI session on disk: one JSON file per profile, 0600, in a 0700 directory.

A profile holds what ``sealbox login`` learned and made: the relay's URL, the
vault id, the vault fingerprint pinned at login (trust on first use of
directory link 0), the newest directory head this client verified, the
client's id and private key, its certificate, and the session's tokens.
The private key and the tokens are secrets: they are written only to this
file and never printed; :class:`Profile`'s ``repr`` leaves them out.

Every write goes to a fresh temporary file beside the profile and is then
renamed over it, so a rotated refresh token is either saved whole or not at
all (a crash never leaves a half-written file or the spent token behind).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sealbox._relay.files import config_dir, locked, private_dir
from sealbox.crypto.keys import SigningKey
from sealbox.errors import MalformedInput, NotLoggedIn, ProfileExists
from sealbox.protocol import ids
from sealbox.protocol.directory import DirectoryHead

__all__ = [
    "AUTH_MODES",
    "DEFAULT_PROFILE",
    "FORMAT",
    "NotLoggedIn",
    "Profile",
    "ProfileExists",
    "delete",
    "load",
    "locked",
    "profile_name",
    "profile_path",
    "save",
]

FORMAT = "sealbox.profile.v1"
#: How a profile's requests are authenticated.
AUTH_MODES = ("session", "signature")
DEFAULT_PROFILE = "default"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Profile:
    server: str
    vault: str
    fingerprint: str
    """The vault fingerprint pinned at login (``sha256:`` hash of directory link 0)."""
    head: DirectoryHead
    """The newest directory link this client has verified (rollback and fork detection)."""
    client_id: str
    client_name: str
    key: SigningKey
    certificate: str
    access_token: str
    refresh_token: str
    expires_at: int
    """When the access token expires (Unix time)."""
    auth: str = "session"
    """How requests are authenticated: ``session`` (a person's bearer token, refreshed) or
    ``signature`` (a machine: every request signed with :attr:`key`, no token at all)."""
    enrollment: str | None = None
    """The enrollment statement a delegated (CI) certificate was made under."""

    def __repr__(self) -> str:
        # Never the key or the tokens, even in a traceback.
        return f"Profile(server={self.server!r}, vault={self.vault}, client={self.client_id})"

    def with_tokens(self, access_token: str, refresh_token: str, expires_at: int) -> Profile:
        return replace(
            self, access_token=access_token, refresh_token=refresh_token, expires_at=expires_at
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "server": self.server,
            "vault": self.vault,
            "fingerprint": self.fingerprint,
            "head": {"seq": self.head.seq, "hash": self.head.hash},
            "client": {"id": self.client_id, "name": self.client_name},
            "client_sk": self.key.to_text(),
            "certificate": self.certificate,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
            "auth": self.auth,
            "enrollment": self.enrollment,
        }

    @classmethod
    def from_json(cls, document: Any) -> Profile:
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise MalformedInput("not a sealbox profile")
        try:
            head = document["head"]
            client = document["client"]
            profile = cls(
                server=_str(document["server"]),
                vault=ids.check_id(document["vault"], ids.VAULT, what="vault"),
                fingerprint=_str(document["fingerprint"]),
                head=DirectoryHead(seq=_int(head["seq"]), hash=_str(head["hash"])),
                client_id=ids.check_id(client["id"], ids.CLIENT, what="client id"),
                client_name=_str(client["name"]),
                key=SigningKey.from_text(document["client_sk"]),
                certificate=_str(document["certificate"]),
                access_token=_str(document["access_token"]),
                refresh_token=_str(document["refresh_token"]),
                expires_at=_int(document["expires_at"]),
                auth=_auth(document.get("auth", "session")),
                enrollment=_optional_str(document.get("enrollment")),
            )
        except (KeyError, TypeError):
            raise MalformedInput("a sealbox profile is missing a field") from None
        return profile


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _auth(value: object) -> str:
    if value not in AUTH_MODES:
        raise TypeError
    return str(value)


def _optional_str(value: object) -> str | None:
    return None if value is None else _str(value)


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError
    return value


def profile_name(explicit: str | None = None) -> str:
    """The profile to use: ``--profile``, else ``SEALBOX_PROFILE``, else ``default``."""
    name = explicit or os.environ.get("SEALBOX_PROFILE") or DEFAULT_PROFILE
    if not _NAME.fullmatch(name):
        raise MalformedInput(
            "a profile name is letters, digits, '.', '_' or '-' (at most 64)",
            hint="Pick a name like `work` or `ci-1`.",
        )
    return name


def profile_path(name: str) -> Path:
    return config_dir() / "profiles" / f"{profile_name(name)}.json"


def save(path: Path, profile: Profile, *, overwrite: bool) -> None:
    """Write ``profile`` atomically, 0600; without ``overwrite`` never replace an existing file."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(profile.to_json(), f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        if overwrite:
            tmp.replace(path)
        else:
            try:
                os.link(tmp, path)  # fails if the name exists: no silent overwrite
            except FileExistsError:
                raise ProfileExists(f"the profile file {path} already exists") from None
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # make the rename durable where the OS lets us
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load(path: Path, *, name: str | None = None) -> Profile:
    """Read a profile; :class:`NotLoggedIn` if there is none."""
    label = name or path.stem
    try:
        info = path.stat()
    except FileNotFoundError:
        raise NotLoggedIn(f"not logged in (no profile {label!r})") from None
    if not stat.S_ISREG(info.st_mode):
        raise MalformedInput(f"{path} is not a regular file",
                             hint="Delete it and log in again with `sealbox login`.")  # fmt: skip
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise MalformedInput(
            f"{path} must be readable by its owner only",
            hint=f"Run `chmod 600 {path}`, or log out and in again if others may have read it.",
        )
    try:
        document = json.loads(path.read_text())
    except (UnicodeDecodeError, ValueError):
        raise MalformedInput(
            f"{path} is not a readable sealbox profile",
            hint="Delete it and log in again with `sealbox login`.",
        ) from None
    try:
        return Profile.from_json(document)
    except MalformedInput:
        raise MalformedInput(
            f"{path} is not a readable sealbox profile",
            hint="Delete it and log in again with `sealbox login`.",
        ) from None


def delete(path: Path) -> bool:
    """Remove the profile file; ``False`` if there was none."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
