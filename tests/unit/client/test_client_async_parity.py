"""``AsyncClient`` is at parity with ``Client`` and never blocks its event loop."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from pathlib import Path

import httpx
import pytest

from sealbox.client import profile as profiles
from sealbox.client.sdk import AsyncClient, Client
from sealbox.crypto.keys import SigningKey
from sealbox.protocol import ids
from sealbox.protocol.directory import DirectoryHead


def _public(cls: type) -> dict[str, inspect.Signature]:
    skip = {"close", "aclose"}
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") and name not in skip
    }


def test_every_call_of_client_is_on_async_client_with_the_same_parameters() -> None:
    sync, asynchronous = _public(Client), _public(AsyncClient)
    assert set(sync) == set(asynchronous)
    for name, signature in sync.items():
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)), name
        assert list(signature.parameters) == list(asynchronous[name].parameters), name


@pytest.fixture
def expired_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEALBOX_CONFIG_DIR", str(tmp_path))
    path = profiles.profile_path("default")
    profile = profiles.Profile(
        server="http://relay.test", vault=ids.new_id(ids.VAULT), fingerprint="sha256:" + "A" * 43,
        head=DirectoryHead(seq=0, hash="sha256:" + "B" * 43), client_id=ids.new_id(ids.CLIENT),
        client_name="bo@laptop", key=SigningKey.generate(), certificate="x.y.z",
        access_token="sbx_at_old", refresh_token="sbx_rt_old", expires_at=int(time.time()) - 10,
    )  # fmt: skip
    profiles.save(path, profile, overwrite=False)
    return path


def _relay(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/oauth/token":
        tokens = {"access_token": "sbx_at_new", "refresh_token": "sbx_rt_new", "expires_in": 900}
        return httpx.Response(200, json=tokens)
    assert request.headers["authorization"] == "Bearer sbx_at_new"
    return httpx.Response(200, json={"items": []})


def test_a_refresh_waiting_on_the_profile_lock_does_not_block_the_loop(
    expired_profile: Path,
) -> None:
    held = threading.Event()
    release = threading.Event()

    def hold_the_lock() -> None:
        with profiles.locked(expired_profile):
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    held.wait(5)

    async def go() -> tuple[int, list[object]]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        running = asyncio.create_task(ticker())
        asyncio.get_running_loop().call_later(0.5, release.set)
        http = httpx.AsyncClient(transport=httpx.MockTransport(_relay))
        async with AsyncClient(http=http, cache=False) as vault:
            items = await vault.list()
        running.cancel()
        await http.aclose()
        return ticks, items

    ticks, items = asyncio.run(go())
    holder.join()
    assert items == []
    # The loop ran on while the file lock was held by someone else for half a second.
    assert ticks >= 20
    saved = profiles.load(expired_profile)
    assert saved.access_token == "sbx_at_new"
    assert saved.refresh_token == "sbx_rt_new"
