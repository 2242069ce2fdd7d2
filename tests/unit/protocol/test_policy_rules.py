"""The policy axes' pure parsing and evaluation: time windows (zones, DST), rates, co-sign."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from sealbox.protocol.policy_rules import (
    Rate,
    cosign_reached,
    in_windows,
    parse_rate,
    parse_window,
    parse_windows,
    rate_retry_after,
)


def at(text: str, zone: str) -> int:
    """Unix time of a wall-clock time in ``zone``."""
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp())


def test_a_window_is_parsed_into_canonical_form() -> None:
    window = parse_window("mon-fri 09:00-18:00 Europe/Berlin")
    assert (window.days, window.start, window.end) == (frozenset(range(5)), 540, 1080)
    assert window.text() == "mon-fri 09:00-18:00 Europe/Berlin"
    assert parse_window("sun,mon,tue 00:00-24:00 UTC").text() == "mon-tue,sun 00:00-24:00 UTC"
    # A range may wrap over the weekend.
    assert parse_window("fri-mon 08:00-12:00 UTC").days == frozenset({4, 5, 6, 0})
    assert parse_window("wed,mon 00:00-00:01 UTC").text() == "mon,wed 00:00-00:01 UTC"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "not a time window"),
        ("mon-fri 9:00-18:00 Europe/Berlin", "not a time window"),
        ("mon-fri  09:00-18:00 Europe/Berlin", "not a time window"),
        ("Mon-Fri 09:00-18:00 Europe/Berlin", "not a time window"),
        ("mon-fri 09:00-18:00", "not a time window"),
        ("mon-fri 09:00-18:00 Europe/Berlin extra", "not a time window"),
        ("monday 09:00-18:00 UTC", "not a day"),
        ("mon-mon 09:00-18:00 UTC", "names one day"),
        ("mon,,tue 09:00-18:00 UTC", "not a day"),
        ("mon 09:60-18:00 UTC", "not a time of day"),
        ("mon 24:01-24:30 UTC", "not a time of day"),
        ("mon 25:00-26:00 UTC", "not a time of day"),
        ("mon 18:00-09:00 UTC", "start before it ends"),
        ("mon 09:00-09:00 UTC", "start before it ends"),
        ("mon 09:00-18:00 Europe/Nowhere", "IANA"),
        ("mon 09:00-18:00 ../../etc/passwd", "not a time window"),
        ("mon 09:00-18:00 /etc/passwd", "IANA"),
    ],
)
def test_a_malformed_window_is_refused_with_what_is_wrong(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_window(text)


def test_several_windows_any_of_them_admits() -> None:
    windows = parse_windows(["mon-fri 09:00-18:00 Europe/Berlin", "sat 10:00-12:00 UTC"])
    assert in_windows(windows, at("2026-12-01T09:00", "Europe/Berlin"))  # a Tuesday, inclusive
    assert not in_windows(windows, at("2026-12-01T18:00", "Europe/Berlin"))  # end exclusive
    assert not in_windows(windows, at("2026-12-01T08:59", "Europe/Berlin"))
    assert in_windows(windows, at("2026-12-05T11:59", "UTC"))  # Saturday in UTC
    assert not in_windows(windows, at("2026-12-06T11:00", "UTC"))  # Sunday
    assert in_windows((), 0)  # no windows: any time
    with pytest.raises(ValueError, match="twice"):
        parse_windows(["mon 09:00-10:00 UTC", "mon 09:00-10:00 UTC"])
    with pytest.raises(ValueError, match="at most"):
        parse_windows([f"mon 00:{m:02d}-00:59 UTC" for m in range(17)])


def test_the_zone_decides_the_day_and_hour() -> None:
    window = parse_window("mon 09:00-10:00 Asia/Tokyo")
    # Monday 09:30 in Tokyo is Monday 00:30 UTC and Sunday 19:30 in New York.
    moment = at("2026-11-30T09:30", "Asia/Tokyo")
    assert window.contains(moment)
    assert not parse_window("mon 09:00-10:00 UTC").contains(moment)
    assert parse_window("sun 19:00-20:00 America/New_York").contains(moment)
    assert not parse_window("mon 00:00-24:00 America/New_York").contains(moment)


def test_windows_follow_daylight_saving_time() -> None:
    window = parse_window("mon-sun 09:00-10:00 Europe/Berlin")
    # Berlin is UTC+2 in summer (CEST) and UTC+1 in winter (CET).
    summer = at("2026-07-01T08:30", "UTC")  # 10:30 CEST: outside
    winter = at("2026-01-07T08:30", "UTC")  # 09:30 CET: inside
    assert not window.contains(summer)
    assert window.contains(winter)
    assert window.contains(at("2026-07-01T07:30", "UTC"))  # 09:30 CEST
    # On the night clocks go forward (29 March 2026, 02:00 -> 03:00), 02:30 never happens:
    # a window of 02:00-03:00 that night admits nothing; 03:00-04:00 starts at 01:00 UTC.
    night = parse_window("sun 02:00-03:00 Europe/Berlin")
    assert not any(night.contains(at("2026-03-29T00:00", "UTC") + s) for s in range(0, 7200, 60))
    assert parse_window("sun 03:00-04:00 Europe/Berlin").contains(at("2026-03-29T01:00", "UTC"))
    # When they go back (25 October 2026, 03:00 -> 02:00) 02:30 happens twice: both admitted.
    fold = parse_window("sun 02:00-03:00 Europe/Berlin")
    assert fold.contains(at("2026-10-25T00:30", "UTC"))  # 02:30 CEST
    assert fold.contains(at("2026-10-25T01:30", "UTC"))  # 02:30 CET


def test_rates_parse_strictly() -> None:
    assert parse_rate("10/h") == Rate(10, 3600)
    assert parse_rate("3/15m") == Rate(3, 900)
    assert parse_rate("100/1d").text() == "100/d"
    assert parse_rate("5/90s").text() == "5/90s"
    assert parse_rate("5/120s").text() == "5/2m"
    for bad in ("10", "10/hour", "0/h", "-1/h", "10/0h", "1.5/h", " 10/h", "10/h ", "10/31d",
                "1000000/h"):  # fmt: skip
        with pytest.raises(ValueError, match="read-rate cap"):
            parse_rate(bad)


def test_the_rate_window_slides() -> None:
    rate = Rate(2, 60)
    assert rate_retry_after([], rate, 1000) is None
    assert rate_retry_after([990], rate, 1000) is None
    # Two in the last minute: the older one (at 950) leaves at 1010.
    assert rate_retry_after([950, 990], rate, 1000) == 10
    # A request exactly a period ago no longer counts.
    assert rate_retry_after([940, 990], rate, 1000) is None
    # Older than the window or in the future (clock skew) do not count either.
    assert rate_retry_after([100, 990, 2000], rate, 1000) is None
    # More than the cap (a cap lowered later): wait until enough have left.
    assert rate_retry_after([950, 960, 970, 990], rate, 1000) == 30


def test_a_co_signer_releases_on_top_of_the_threshold() -> None:
    assert cosign_reached(["a"], 1, None)
    assert not cosign_reached(["a"], 2, None)
    assert not cosign_reached(["a"], 1, "c")
    assert not cosign_reached(["c"], 1, "c")  # the co-signer alone is not the threshold
    assert cosign_reached(["a", "c"], 1, "c")
    assert not cosign_reached(["a", "c"], 2, "c")
    assert cosign_reached(["a", "b", "c"], 2, "c")
    assert cosign_reached(["a", "a", "c"], 1, "c")
