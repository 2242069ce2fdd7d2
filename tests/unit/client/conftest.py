"""Fixtures of the client tests: a profile to serve and a real cache agent serving it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cache_support import Agent, save_profile


@pytest.fixture
def cache_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key in [k for k in os.environ if k.startswith("SEALBOX_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SEALBOX_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SEALBOX_RUNTIME_DIR", str(tmp_path / "run"))
    save_profile(tmp_path / "config")
    return dict(os.environ)


@pytest.fixture
def cache_agent(cache_env: dict[str, str]) -> Iterator[Agent]:
    running = Agent(cache_env)
    yield running
    running.stop()
