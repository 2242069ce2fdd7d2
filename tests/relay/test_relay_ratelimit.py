"""Per-caller rate limits."""

from __future__ import annotations

import httpx
import pytest
from relay_support import Vault, error_of

from sealbox._relay.httpsig import sign_request
from sealbox.server.ratelimit import RateLimiter
from sealbox.server.relay import Relay


def test_token_bucket_refills_at_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.allow("a") == pytest.approx(0.5)
    assert limiter.allow("b") == 0.0  # callers do not share a bucket
    now[0] += 0.5
    assert limiter.allow("a") == 0.0
    assert limiter.allow("a") > 0


def test_bucket_table_is_bounded() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, clock=lambda: 0.0, max_keys=2)
    for key in "abc":
        limiter.allow(key)
    assert limiter.allow("a") == 0.0  # "a" was evicted, so it starts full again
    assert len(limiter._buckets) == 2


@pytest.mark.anyio
async def test_a_caller_over_the_limit_gets_429(
    client: httpx.AsyncClient, relay: Relay, vault: Vault
) -> None:
    relay.limiter = RateLimiter(rate=0.001, burst=2)
    a = vault.approvers[0]
    codes = []
    for _ in range(3):
        request = client.build_request("GET", f"/v1/vaults/{vault.id}/whoami")
        sign_request(request, key=a.sig, key_id=a.id, now=relay.now())
        response = await client.send(request)
        codes.append(response.status_code)
    assert codes == [200, 200, 429]
    assert error_of(response)["error"] == "rate_limited"
    assert int(response.headers["retry-after"]) >= 1
