"""Machine identities on disk: a directory or one file, private, strictly read."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from sealbox.client import identity as identities
from sealbox.client.identity import Identity
from sealbox.crypto.keys import SigningKey
from sealbox.errors import MalformedInput, NotLoggedIn
from sealbox.protocol import ids
from sealbox.protocol.directory import DirectoryHead


def _identity(**changes: object) -> Identity:
    values: dict[str, object] = {
        "server": "https://relay.example", "vault": ids.new_id(ids.VAULT),
        "fingerprint": "sha256:" + "A" * 43, "head": DirectoryHead(seq=0, hash="sha256:x"),
        "client_id": ids.new_id(ids.CLIENT), "client_name": "api", "kind": "machine",
        "key": SigningKey.generate(), "certificate": "a.b.c", "enrollment": None,
    }  # fmt: skip
    values.update(changes)
    return Identity(**values)  # type: ignore[arg-type]


def _same(loaded: Identity, made: Identity) -> None:
    assert loaded.key.to_text() == made.key.to_text()
    assert replace(loaded, key=made.key) == made


def test_a_directory_identity_round_trips_and_keeps_its_key_apart(tmp_path: Path) -> None:
    made = _identity()
    identities.save_dir(tmp_path / "id", made)
    _same(identities.load(tmp_path / "id"), made)
    public = (tmp_path / "id" / "identity.json").read_text()
    assert made.key.to_text() not in public
    assert (tmp_path / "id" / "client.key").stat().st_mode & 0o777 == 0o600
    assert made.key.to_text() not in repr(made)


def test_a_single_file_identity_round_trips(tmp_path: Path) -> None:
    made = _identity(enrollment="e.f.g")
    identities.save_file(tmp_path / "id.json", made)
    _same(identities.load(tmp_path / "id.json"), made)
    assert (tmp_path / "id.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("where", ["id/client.key", "id.json"])
def test_a_key_others_may_read_is_refused(tmp_path: Path, where: str) -> None:
    identities.save_dir(tmp_path / "id", _identity())
    identities.save_file(tmp_path / "id.json", _identity())
    (tmp_path / where).chmod(0o640)
    with pytest.raises(MalformedInput, match="readable by its owner only"):
        identities.load(tmp_path / where.split("/")[0])


def test_a_missing_identity_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(NotLoggedIn, match="no sealbox identity"):
        identities.load(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "identity.json").write_text("{}")
    with pytest.raises(NotLoggedIn, match=r"client\.key is missing"):
        identities.load(tmp_path / "half")


@pytest.mark.parametrize(
    "change",
    [
        {"format": "sealbox.profile.v1"},
        {"client": {"id": "cli_x", "name": "a", "kind": "machine"}},
        {"client": {"id": ids.new_id(ids.CLIENT), "name": "a", "kind": "human"}},
        {"head": {"seq": True, "hash": "h"}},
        {"certificate": 7},
    ],
)
def test_a_malformed_identity_is_refused(tmp_path: Path, change: dict[str, object]) -> None:
    identities.save_file(tmp_path / "id.json", _identity())
    document = json.loads((tmp_path / "id.json").read_text())
    document.update(change)
    (tmp_path / "id.json").write_text(json.dumps(document))
    with pytest.raises(MalformedInput):
        identities.load(tmp_path / "id.json")


def test_a_newer_head_is_kept_and_an_older_one_is_not(tmp_path: Path) -> None:
    identities.save_dir(tmp_path / "id", _identity(head=DirectoryHead(seq=2, hash="h2")))
    identities.remember_head(tmp_path / "id", DirectoryHead(seq=1, hash="h1"))
    assert identities.load(tmp_path / "id").head.seq == 2
    identities.remember_head(tmp_path / "id", DirectoryHead(seq=3, hash="h3"))
    assert identities.load(tmp_path / "id").head == DirectoryHead(seq=3, hash="h3")


def test_a_read_only_identity_keeps_its_head_without_failing(tmp_path: Path) -> None:
    identities.save_dir(tmp_path / "id", _identity())
    (tmp_path / "id").chmod(0o500)
    try:
        identities.remember_head(tmp_path / "id", DirectoryHead(seq=5, hash="h5"))
    finally:
        (tmp_path / "id").chmod(0o700)
    # root may write anyway; what matters is that a read-only mount raises nothing.
    assert identities.load(tmp_path / "id").head.seq in (0, 5)


def test_as_a_profile_it_signs_and_holds_no_token() -> None:
    made = _identity()
    profile = identities.to_profile(made)
    assert profile.auth == "signature"
    assert (profile.access_token, profile.refresh_token) == ("", "")
    assert profile.key == made.key


def test_a_single_file_identity_leaves_an_existing_directory_as_it_is(tmp_path: Path) -> None:
    shared = tmp_path / "etc"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    identities.save_file(shared / "sealbox.json", _identity())
    identities.remember_head(shared / "sealbox.json", DirectoryHead(seq=9, hash="h9"))
    assert shared.stat().st_mode & 0o777 == 0o755
    assert (shared / "sealbox.json").stat().st_mode & 0o777 == 0o600
