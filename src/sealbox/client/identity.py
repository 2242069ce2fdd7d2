"""A machine's identity on disk: what a server, container or CI runner reads with.

A machine has no session and no token.  It holds its own Ed25519 key and the
certificate an approver (or an enrollment's delegation key) signed for it, and
signs every request to the relay with that key (RFC 9421).  Its identity is
either

* a directory (what ``sealbox machine provision --out DIR`` and a Kubernetes
  Secret mounted as a volume give): ``identity.json`` (the relay's URL, the
  vault and its pinned fingerprint, the client id, the certificate; nothing
  secret) and ``client.key`` (the private key, 0600); or
* one JSON file holding both (``identity.json`` with a ``client_sk`` member),
  0600.

``SEALBOX_IDENTITY`` names either, and the CLI's item commands and the SDK then
use it (an explicit ``--profile`` still wins).  A key file that others may read
is refused, as a profile is: whoever could read it could be this machine.

The newest directory head this machine verified is written back to
``identity.json`` when it can be (a read-only mount, as a Kubernetes Secret
is, keeps the head it was provisioned with: the pinned fingerprint is what
anchors trust, the head only shortens what a rolled-back relay could hide).
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sealbox._relay.files import private_dir, write_private
from sealbox.client.profile import Profile
from sealbox.crypto.keys import SigningKey
from sealbox.errors import MalformedInput, NotLoggedIn
from sealbox.protocol import ids
from sealbox.protocol.directory import DirectoryHead
from sealbox.protocol.statements import CLIENT_KINDS

__all__ = [
    "FORMAT",
    "IDENTITY_ENV",
    "IDENTITY_FILE",
    "KEY_FILE",
    "Identity",
    "files",
    "from_environment",
    "load",
    "remember_head",
    "save_dir",
    "save_file",
    "to_profile",
]

FORMAT = "sealbox.identity.v1"
IDENTITY_ENV = "SEALBOX_IDENTITY"
IDENTITY_FILE = "identity.json"
KEY_FILE = "client.key"


@dataclass(frozen=True)
class Identity:
    server: str
    vault: str
    fingerprint: str
    """The vault fingerprint pinned when the identity was made (``sha256:`` of link 0)."""
    head: DirectoryHead
    client_id: str
    client_name: str
    kind: str
    """``machine`` (or ``agent``): what its certificate says."""
    key: SigningKey
    certificate: str
    enrollment: str | None = None
    """The enrollment statement a CI runner's certificate was delegated under."""

    def __repr__(self) -> str:
        # Never the key, even in a traceback.
        return f"Identity(server={self.server!r}, vault={self.vault}, client={self.client_id})"

    def public_json(self) -> dict[str, Any]:
        """``identity.json`` of a directory identity: everything but the key."""
        return {
            "format": FORMAT,
            "server": self.server,
            "vault": self.vault,
            "fingerprint": self.fingerprint,
            "head": {"seq": self.head.seq, "hash": self.head.hash},
            "client": {"id": self.client_id, "name": self.client_name, "kind": self.kind},
            "certificate": self.certificate,
            "enrollment": self.enrollment,
        }


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _from_json(document: Any, key_text: object) -> Identity:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise MalformedInput("not a sealbox identity")
    try:
        head, client = document["head"], document["client"]
        seq = head["seq"]
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise TypeError
        kind = _text(client["kind"])
        if kind not in CLIENT_KINDS or kind == "human":
            raise TypeError
        enrollment = document.get("enrollment")
        return Identity(
            server=_text(document["server"]),
            vault=ids.check_id(document["vault"], ids.VAULT, what="vault"),
            fingerprint=_text(document["fingerprint"]),
            head=DirectoryHead(seq=seq, hash=_text(head["hash"])),
            client_id=ids.check_id(client["id"], ids.CLIENT, what="client id"),
            client_name=_text(client["name"]),
            kind=kind,
            key=SigningKey.from_text(_text(key_text).strip()),
            certificate=_text(document["certificate"]),
            enrollment=None if enrollment is None else _text(enrollment),
        )
    except (KeyError, TypeError):
        raise MalformedInput("a sealbox identity is missing a field or has a wrong one") from None


def _read_private(path: Path) -> str:
    info = path.stat()
    if not stat.S_ISREG(info.st_mode):
        raise MalformedInput(f"{path} is not a regular file")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise MalformedInput(
            f"{path} must be readable by its owner only",
            hint=f"Run `chmod 600 {path}`; if others may have read it, disable this machine "
            "and provision a new one.",
        )  # fmt: skip
    return path.read_text()


def load(path: Path) -> Identity:
    """Read a directory or single-file identity; refuse one whose key others may read."""
    key_text: object
    try:
        if path.is_dir():
            document = json.loads((path / IDENTITY_FILE).read_text())
            key_text = _read_private(path / KEY_FILE)
        else:
            document = json.loads(_read_private(path))
            key_text = document.get("client_sk") if isinstance(document, dict) else None
    except FileNotFoundError as exc:
        raise NotLoggedIn(
            f"no sealbox identity at {path} ({Path(exc.filename or path).name} is missing)",
            hint=f"Point {IDENTITY_ENV} at the directory or file `sealbox machine provision` "
            "or `sealbox machine register` wrote.",
        ) from None
    except (UnicodeDecodeError, ValueError):
        raise MalformedInput(f"{path} is not a readable sealbox identity") from None
    try:
        return _from_json(document, key_text)
    except MalformedInput as exc:
        raise MalformedInput(f"{path}: {exc.message}", hint=exc.hint) from None


def files(identity: Identity) -> dict[str, bytes]:
    """The files of a directory identity, for a zip or a Kubernetes Secret."""
    return {
        IDENTITY_FILE: (json.dumps(identity.public_json(), indent=2) + "\n").encode(),
        KEY_FILE: (identity.key.to_text() + "\n").encode(),
    }


def save_dir(path: Path, identity: Identity) -> None:
    """Write a directory identity: 0700 directory, both files 0600."""
    private_dir(path)
    for name, data in files(identity).items():
        write_private(path / name, data.decode())


def save_file(path: Path, identity: Identity) -> None:
    """Write a single-file identity (key included), 0600.

    A missing parent is made 0700; an existing one is left as it is (the file may live in
    /etc or a shared directory, whose mode is not the identity's to change)."""
    if not path.parent.exists():
        private_dir(path.parent)
    document = {**identity.public_json(), "client_sk": identity.key.to_text()}
    write_private(path, json.dumps(document, indent=2) + "\n")


def remember_head(path: Path, head: DirectoryHead) -> None:
    """Keep a newer verified directory head, where the identity is writable."""
    try:
        current = load(path)
        if head.seq <= current.head.seq:
            return
        updated = replace(current, head=head)
        if path.is_dir():
            write_private(path / IDENTITY_FILE, files(updated)[IDENTITY_FILE].decode())
        else:
            save_file(path, updated)
    except OSError:
        return  # a read-only mount keeps the head it was provisioned with


def to_profile(identity: Identity) -> Profile:
    """The identity as a profile that signs every request (``auth="signature"``)."""
    return Profile(
        server=identity.server, vault=identity.vault, fingerprint=identity.fingerprint,
        head=identity.head, client_id=identity.client_id, client_name=identity.client_name,
        key=identity.key, certificate=identity.certificate, access_token="", refresh_token="",
        expires_at=0, auth="signature", enrollment=identity.enrollment,
    )  # fmt: skip


def from_environment() -> Path | None:
    """The identity ``SEALBOX_IDENTITY`` names, if it is set."""
    value = os.environ.get(IDENTITY_ENV)
    return Path(value) if value else None
