"""The SDK's on-disk state: rollback protection shared safely by many clients of one profile."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from sealbox.client import profile as profiles
from sealbox.client.sdk import _Session
from sealbox.crypto.keys import SigningKey
from sealbox.protocol import ids
from sealbox.protocol.directory import DirectoryHead


@pytest.fixture
def session_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEALBOX_CONFIG_DIR", str(tmp_path))
    path = profiles.profile_path("default")
    profile = profiles.Profile(
        server="http://relay.test", vault=ids.new_id(ids.VAULT), fingerprint="sha256:" + "A" * 43,
        head=DirectoryHead(seq=0, hash="sha256:" + "B" * 43), client_id=ids.new_id(ids.CLIENT),
        client_name="bo@laptop", key=SigningKey.generate(), certificate="x.y.z",
        access_token="sbx_at_test", refresh_token="sbx_rt_test", expires_at=2**40,
    )  # fmt: skip
    profiles.save(path, profile, overwrite=False)
    return path


def test_seen_versions_from_many_threads_are_merged_never_lost(session_file: Path) -> None:
    errors: list[BaseException] = []

    def reader(n: int) -> None:
        try:
            for round_ in range(20):
                session = _Session(None)
                session.state.seen[f"itm_{n}"] = round_ + 1
                session.persist()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    seen = json.loads(session_file.with_name("default.seen.json").read_text())["seen"]
    assert seen == {f"itm_{n}": 20 for n in range(8)}
    # A client that remembers less never moves a version back.
    late = _Session(None)
    late.state.seen["itm_0"] = 3
    late.persist()
    assert (
        json.loads(session_file.with_name("default.seen.json").read_text())["seen"]["itm_0"] == 20
    )
    assert oct(session_file.with_name("default.seen.json").stat().st_mode & 0o777) == "0o600"
