"""A keyring backend for the tests (no OS keyring runs on CI machines): a JSON file.

Selected in a subprocess with ``PYTHON_KEYRING_BACKEND=fake_keyring.FileKeyring`` and this
directory on ``PYTHONPATH``; the file is ``$SEALBOX_TEST_KEYRING``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend


class FileKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def _load(self) -> dict[str, str]:
        path = Path(os.environ["SEALBOX_TEST_KEYRING"])
        return json.loads(path.read_text()) if path.exists() else {}

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service} {username}"] = password
        Path(os.environ["SEALBOX_TEST_KEYRING"]).write_text(json.dumps(data))

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service} {username}")

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        data.pop(f"{service} {username}", None)
        Path(os.environ["SEALBOX_TEST_KEYRING"]).write_text(json.dumps(data))
