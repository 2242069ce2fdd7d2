"""What an approver signs for a waiting machine: the grants it was shown, read or write, no more."""

from __future__ import annotations

import pytest

from sealbox.approver.machines import machine_scopes
from sealbox.errors import MalformedInput


def test_the_grants_shown_become_the_certificates_item_scopes() -> None:
    assert machine_scopes(["shop/dev/*"], ["read"]) == ["items:shop/dev/*", "read"]
    assert machine_scopes(["shop/dev/*", "shop/ci/*"], ["read", "write"]) == [
        "items:shop/ci/*", "items:shop/dev/*", "read", "write",
    ]  # fmt: skip


@pytest.mark.parametrize("slipped", ["items:*/*/*", "role:shop:policy-admin", "admin"])
def test_a_scope_the_relay_slips_into_the_listing_is_refused(slipped: str) -> None:
    # An items: scope there would widen the limits the approver was shown (stage isolation).
    with pytest.raises(MalformedInput, match="read and write only"):
        machine_scopes(["shop/dev/*"], ["read", slipped])
