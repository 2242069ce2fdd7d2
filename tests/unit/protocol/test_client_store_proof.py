"""A store is reported done only on an approver-signed manifest over that very request.

"stored" in a status is the relay's word; `sealbox store` believes the manifest
of the version it sealed, signed over its own request hash, and nothing else.
(Here, beside the protocol's fixtures, because it needs real signed manifests.)
"""

from __future__ import annotations

from typing import Any

import pytest

from sealbox._relay.calls import Call, Reply
from sealbox.client import _flows as flows
from sealbox.crypto import jws
from sealbox.errors import BindingMismatch


def _state(world: Any) -> flows.ClientState:
    return flows.ClientState(
        vault=world.vault, client_id=world.client.id, key=world.client.key,
        fingerprint=world.fingerprint, head=world.directory.head,
    )  # fmt: skip


def _drive(world: Any, stored: Any, request_id: str, served: list[dict[str, Any]]) -> None:
    flow = flows._check_stored(_state(world), stored.item, stored.path, stored.version, request_id)
    try:
        call: Call = next(flow)
        while True:
            if call.path.endswith("/directory"):
                call = flow.send(Reply(200, {"links": world.links}))
            else:
                assert call.path.endswith(f"/items/{stored.item}/versions")
                call = flow.send(Reply(200, {"versions": served}))
    except StopIteration:
        return


def _request_of(stored: Any) -> str:
    return jws.statement_hash(stored.upload.statement).removeprefix("sha256:")


def test_the_manifest_over_this_request_proves_the_store(world: Any) -> None:
    stored = world.store()
    _drive(world, stored, _request_of(stored), [{"version": 1, "manifest": stored.manifest}])


def test_a_store_the_relay_calls_stored_without_a_version_is_not_reported_done(
    world: Any,
) -> None:
    stored = world.store()
    with pytest.raises(BindingMismatch, match="serves no version 1"):
        _drive(world, stored, _request_of(stored), [])


def test_a_version_stored_by_another_request_is_not_this_store(world: Any) -> None:
    ours, other = world.store(), world.store()
    with pytest.raises(BindingMismatch):
        # The relay shows another request's manifest (of another item) as ours.
        _drive(world, ours, _request_of(ours), [{"version": 1, "manifest": other.manifest}])
    with pytest.raises(BindingMismatch, match="not stored by this request"):
        _drive(world, ours, "0" * 43, [{"version": 1, "manifest": ours.manifest}])
