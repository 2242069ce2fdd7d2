"""The relay's count of a requester's recent requests: parsed leniently, shown as the relay's."""

from __future__ import annotations

from typing import Any

import pytest

from sealbox.approver.review import ReportedActivity, reported_activity
from sealbox.approver.terminal import recent_text

GOOD = {"window_seconds": 3600, "requests": 12, "denials": 3, "locked": False,
        "counted_up_to": 1000}  # fmt: skip


def test_a_well_formed_count_is_read() -> None:
    assert reported_activity({"source_ip": "10.0.0.1", "recent": GOOD}) == ReportedActivity(
        3600, 12, 3, False, 1000
    )


@pytest.mark.parametrize(
    "recent",
    [
        None, [], "12", {**GOOD, "requests": -1}, {**GOOD, "requests": True},
        {**GOOD, "denials": 1.5}, {**GOOD, "locked": "no"}, {**GOOD, "window_seconds": 0},
        {k: v for k, v in GOOD.items() if k != "locked"}, {**GOOD, "requests": 2**40},
    ],
)  # fmt: skip
def test_a_missing_or_malformed_count_is_none_never_an_error(recent: Any) -> None:
    assert reported_activity({"recent": recent}) is None
    assert recent_text(reported_activity({"recent": recent})) == "no count of its recent requests"


def test_the_words_for_it() -> None:
    assert recent_text(ReportedActivity(3600, 12, 3, False, 1000)) == (
        "12 requests in the last hour, 3 denied"
    )
    assert recent_text(ReportedActivity(3600, 1, 0, False, 1000)) == (
        "1 request in the last hour, 0 denied"
    )
    assert recent_text(ReportedActivity(600, 1000, 5, True, 1000)) == (
        "1000+ requests in the last 600 seconds, 5 denied; "
        "LOCKED OUT by the relay after denials in a row"
    )
