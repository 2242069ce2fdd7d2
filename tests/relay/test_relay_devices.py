"""Device logins as stored: every answer is a compare-and-set through the state table."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from login_support import Human, certificate
from relay_support import Vault

from sealbox.errors import IllegalTransition
from sealbox.protocol.state import DeviceEvent, DeviceState
from sealbox.server.auth import bearer
from sealbox.server.auth.principal import Principal
from sealbox.server.errors import Conflict
from sealbox.server.relay import Relay
from sealbox.server.services import login
from sealbox.server.store import devices
from sealbox.server.store import tokens as token_store

pytestmark = pytest.mark.anyio


async def _pending_login(relay: Relay, vault: Vault, human: Human) -> devices.DeviceRow:
    started = await login.start_login(
        relay, relay.now(), vault=vault.id, client=human.info, source_ip="192.0.2.1"
    )
    async with relay.read() as conn:
        row = await devices.find(conn, started.device_code)
    assert row is not None
    assert row.state is DeviceState.PENDING
    return row


async def _state(relay: Relay, vault: Vault, row: devices.DeviceRow) -> DeviceState:
    async with relay.read() as conn:
        now = await devices.find_by_user_code(conn, vault.id, row.user_code)
    assert now is not None
    return now.state


async def test_a_stale_answer_changes_nothing(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    # Both answers were decided on the same pending row; the second comes late.
    row = await _pending_login(relay, vault, Human())
    async with relay.tx() as tx:
        assert await devices.advance(tx.conn, row, DeviceEvent.CERTIFIED, certificate="c") == (
            DeviceState.APPROVED
        )
    async with relay.tx() as tx:
        assert await devices.advance(tx.conn, row, DeviceEvent.DENIED) is None
        assert await devices.advance(tx.conn, row, DeviceEvent.CERTIFIED, certificate="x") is None
    assert await _state(relay, vault, row) is DeviceState.APPROVED


async def test_concurrent_answers_to_one_login_exactly_one_wins(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    row = await _pending_login(relay, vault, Human())

    async def answer(event: DeviceEvent) -> DeviceState | None:
        async with relay.tx() as tx:
            return await devices.advance(tx.conn, row, event, certificate="c")

    results = await asyncio.gather(answer(DeviceEvent.CERTIFIED), answer(DeviceEvent.DENIED))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert await _state(relay, vault, row) is winners[0]


async def test_concurrent_approve_and_deny_through_the_service(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    human = Human()
    row = await _pending_login(relay, vault, human)
    approver = Principal(vault=vault.id, id=vault.approvers[0].id, role="approver")
    cert = certificate(vault, relay, human.info)
    now = relay.now()
    results = await asyncio.gather(
        login.approve(relay, now, vault=vault.id, user_code=row.user_code, certificate=cert,
                      approver=approver, source_ip=None),
        login.deny(relay, now, vault=vault.id, user_code=row.user_code, approver=approver,
                   source_ip=None),
        return_exceptions=True,
    )  # fmt: skip
    answered = [r for r in results if isinstance(r, login.Answered)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(answered) == 1, results
    assert len(refused) == 1, results
    assert refused[0].code == "device_request_closed"
    assert await _state(relay, vault, row) is answered[0].state


async def test_a_transition_outside_the_table_is_refused(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    row = await _pending_login(relay, vault, Human())
    async with relay.tx() as tx:
        with pytest.raises(IllegalTransition):
            await devices.advance(tx.conn, row, DeviceEvent.TOKENS_TAKEN)
    assert await _state(relay, vault, row) is DeviceState.PENDING


def test_token_prefixes_are_spelled_alike() -> None:
    # The bearer check and the token issuer must agree on what an access token looks like.
    assert bearer.ACCESS_PREFIX == token_store.ACCESS_PREFIX
    assert bearer.REFRESH_PREFIX == token_store.REFRESH_PREFIX
