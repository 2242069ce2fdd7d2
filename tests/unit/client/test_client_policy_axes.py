"""The policy axes on the client side: the SDK's set flow and the CLI's strict options."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from sealbox._relay.calls import Reply
from sealbox.cli import exits
from sealbox.cli.policy_axes import add_axis_options, axis_body, describe, parse_destroy_at
from sealbox.client.policies import PolicyAxes, set_flow

APV = "apv_" + "a" * 26


def test_a_member_sets_every_axis_and_reads_them_back() -> None:
    axes = PolicyAxes(hours=("mon-fri 09:00-18:00 UTC",), max_reads="10/h", cosigner=None,
                      destroy_at=2_000_000_000, rotate_after=5, cidrs=("10.0.0.0/8",))  # fmt: skip
    flow = set_flow("/v1/vaults/v", "shop/dev/*", approvers=[APV], threshold=1,
                    expiry_seconds=300, max_cache_seconds=0, axes=axes)  # fmt: skip
    call = next(flow)
    assert (call.method, call.path) == ("PUT", "/v1/vaults/v/policies")
    assert call.json["hours"] == ["mon-fri 09:00-18:00 UTC"]
    assert (call.json["max_reads"], call.json["rotate_after"]) == ("10/h", 5)
    assert (call.json["destroy_at"], call.json["cidrs"]) == (2_000_000_000, ["10.0.0.0/8"])
    answer = {**call.json, "approvers": [APV], "signed": False, "statement": None}
    with pytest.raises(StopIteration) as done:
        flow.send(Reply(200, answer))
    info = done.value.value
    assert info.axes == axes
    assert describe(info.axes.to_json()) == [
        "Asked for only from: 10.0.0.0/8",
        "Asked for only within: mon-fri 09:00-18:00 UTC",
        "At most 10/h access requests per item",
        "Destroyed at 2033-05-18 03:33 UTC",
        "Due for rotation after 5 release(s)",
    ]


def test_a_relay_answer_with_a_wrongly_typed_axis_is_refused() -> None:
    flow = set_flow("/v1/vaults/v", "shop/dev/*", approvers=[APV], threshold=1,
                    expiry_seconds=300, max_cache_seconds=0)  # fmt: skip
    call = next(flow)
    assert call.json["hours"] == []
    with pytest.raises(TypeError):
        flow.send(Reply(200, {**call.json, "rotate_after": "5"}))


def _args(*argv: str) -> Any:
    parser = argparse.ArgumentParser()
    add_axis_options(parser)
    return parser.parse_args(list(argv))


def test_the_cli_options_are_strict_and_canonical() -> None:
    body = axis_body(_args("--hours", "sun,mon 08:00-12:00 Europe/Berlin", "--max-reads",
                           "5/60m", "--rotate-after", "3"))  # fmt: skip
    assert body["hours"] == ["mon,sun 08:00-12:00 Europe/Berlin"]
    assert (body["max_reads"], body["rotate_after"], body["destroy_at"]) == ("5/h", 3, None)
    for argv, needle in [
        (("--hours", "weekdays 9-5"), "not a time window"),
        (("--max-reads", "lots"), "read-rate cap"),
        (("--rotate-after", "0"), "at least 1"),
        (("--destroy-at", "tomorrow"), "ISO 8601"),
        (("--destroy-at", "2099-01-01T10:00"), "zone offset"),
        (("--destroy-at", "2000-01-01T10:00Z"), "future"),
    ]:
        with pytest.raises(exits.UsageError, match=needle):
            axis_body(_args(*argv))
    assert parse_destroy_at("2099-01-01T10:00+01:00", now=0) == 4070941200


@pytest.mark.parametrize("flag", ["--max-reads", "--destroy-at", "--cosigner"])
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_option_is_refused_never_taken_as_off(flag: str, value: str) -> None:
    with pytest.raises(exits.UsageError, match=f"{flag} is empty"):
        axis_body(_args(flag, value))
