"""A release policy's extra axes, parsed strictly and evaluated without I/O.

The relay evaluates these before any approver is asked; approvers evaluate the
time windows and the destroy date again by their own clocks, from the policy an
approver signed (``sealbox.policy.v1``).  Both sides use this one module, so
they can never disagree on what a window means.

Time windows
    ``DAYS HH:MM-HH:MM ZONE``, e.g. ``mon-fri 09:00-18:00 Europe/Berlin``.  ``DAYS``
    is a day (``mon`` .. ``sun``), a range (``mon-fri``, ``fri-mon`` wraps over
    the weekend) or a comma list of those (``mon,wed,fri-sun``).  Times are
    wall-clock times in the named IANA zone (so a window follows daylight saving
    time), ``00:00`` to ``24:00``, start before end: a night shift over midnight
    is two windows (``mon-fri 22:00-24:00 UTC`` and ``tue-sat 00:00-06:00 UTC``).
    A policy with windows admits a request when *any* window contains the
    current time.  The start is inclusive, the end exclusive.

Read-rate cap
    ``N/PERIOD``: at most ``N`` access requests for one item per sliding
    ``PERIOD``, which is a unit (``s``, ``m``, ``h``, ``d``) with an optional count
    (``10/h``, ``3/15m``, ``100/1d``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

__all__ = [
    "DAYS",
    "MAX_DESTROY_AT",
    "MAX_RATE_COUNT",
    "MAX_RATE_PERIOD",
    "MAX_WINDOWS",
    "Rate",
    "Window",
    "cosign_reached",
    "in_windows",
    "parse_rate",
    "parse_window",
    "parse_windows",
    "rate_retry_after",
    "zones",
]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Most windows on one policy.
MAX_WINDOWS = 16
#: Largest cap and longest period a read-rate cap may have.
MAX_RATE_COUNT = 100_000
MAX_RATE_PERIOD = 30 * 86400

#: Latest destroy date a policy may carry (9999-12-31 23:59:59 UTC): later dates cannot be
#: shown as a calendar date, and a reader raising on one would stall an approver.
MAX_DESTROY_AT = 253402300799

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_TIME = r"(\d{2}):(\d{2})"
_WINDOW = re.compile(rf"([a-z,\-]+) {_TIME}-{_TIME} ([A-Za-z0-9_+\-/]{{1,64}})")
_RATE = re.compile(r"([1-9]\d{0,5})/([1-9]\d{0,4})?([smhd])")


@dataclass(frozen=True)
class Window:
    """Days of the week and a span of wall-clock minutes in one time zone."""

    days: frozenset[int]
    """0 = Monday .. 6 = Sunday."""
    start: int
    """Minutes after local midnight, inclusive."""
    end: int
    """Minutes after local midnight, exclusive (1440: the end of the day)."""
    zone: str

    def text(self) -> str:
        """The canonical spelling (what is stored, signed and shown)."""
        return f"{_days_text(self.days)} {_hhmm(self.start)}-{_hhmm(self.end)} {self.zone}"

    def contains(self, at: int) -> bool:
        """Whether Unix time ``at`` falls in this window, in its zone's wall-clock time."""
        local = datetime.fromtimestamp(at, UTC).astimezone(ZoneInfo(self.zone))
        minute = local.hour * 60 + local.minute
        return local.weekday() in self.days and self.start <= minute < self.end


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _days_text(days: frozenset[int]) -> str:
    # Runs of consecutive days as ranges, in week order (mon-fri, sat,sun stays sat-sun).
    parts = []
    ordered = sorted(days)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        first, last = DAYS[ordered[i]], DAYS[ordered[j]]
        parts.append(first if i == j else f"{first}-{last}")
        i = j + 1
    return ",".join(parts)


def _day(name: str, text: str) -> int:
    if name not in DAYS:
        raise ValueError(f"{text!r}: {name!r} is not a day (use mon, tue, wed, thu, fri, sat, sun)")
    return DAYS.index(name)


def _parse_days(spec: str, text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in spec.split(","):
        first, sep, last = part.partition("-")
        if not sep:
            days.add(_day(first, text))
            continue
        a, b = _day(first, text), _day(last, text)
        if a == b:
            raise ValueError(f"{text!r}: the day range {part!r} names one day; write {first!r}")
        day = a
        while True:
            days.add(day)
            if day == b:
                break
            day = (day + 1) % 7
    return frozenset(days)


def _minutes(hours: str, minutes: str, text: str) -> int:
    h, m = int(hours), int(minutes)
    if m > 59 or h > 24 or (h == 24 and m != 0):
        raise ValueError(f"{text!r}: {hours}:{minutes} is not a time of day (00:00 to 24:00)")
    return h * 60 + m


def parse_window(text: str) -> Window:
    """One window, e.g. ``mon-fri 09:00-18:00 Europe/Berlin``; ValueError says what is wrong."""
    if not isinstance(text, str):
        raise ValueError("a time window is text like 'mon-fri 09:00-18:00 Europe/Berlin'")
    found = _WINDOW.fullmatch(text)
    if found is None:
        raise ValueError(
            f"{text[:100]!r} is not a time window: write DAYS HH:MM-HH:MM ZONE, e.g. "
            "'mon-fri 09:00-18:00 Europe/Berlin' (one space between the parts)"
        )
    days_spec, h1, m1, h2, m2, zone = found.groups()
    days = _parse_days(days_spec, text)
    start, end = _minutes(h1, m1, text), _minutes(h2, m2, text)
    if start >= end:
        raise ValueError(
            f"{text!r}: the window must start before it ends; over midnight, write two windows"
        )
    if zone not in zones():
        raise ValueError(f"{text!r}: {zone!r} is not an IANA time zone (e.g. Europe/Berlin, UTC)")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{text!r}: the time zone {zone!r} cannot be loaded here") from None
    return Window(days, start, end, zone)


@cache
def zones() -> frozenset[str]:
    """The IANA zones a window may name: this system's, without the local-only aliases
    (``localtime``, ``posixrules``, ``Factory``) and the ``posix/``/``right/`` copies, whose
    meaning differs between systems (``right/`` counts leap seconds)."""
    return frozenset(
        z for z in available_timezones()
        if z not in {"localtime", "posixrules", "Factory"}
        and not z.startswith(("posix/", "right/"))
    )  # fmt: skip


def parse_windows(texts: Iterable[str]) -> tuple[Window, ...]:
    """Several windows; duplicates refused, at most :data:`MAX_WINDOWS`."""
    windows = tuple(parse_window(t) for t in texts)
    if len(windows) > MAX_WINDOWS:
        raise ValueError(f"at most {MAX_WINDOWS} time windows")
    spelled = [w.text() for w in windows]
    if len(set(spelled)) != len(spelled):
        raise ValueError("a time window is given twice")
    return windows


def in_windows(windows: Sequence[Window], at: int) -> bool:
    """No windows: always; else whether any window contains ``at``."""
    return not windows or any(w.contains(at) for w in windows)


@dataclass(frozen=True)
class Rate:
    """At most ``count`` requests per sliding ``period`` seconds."""

    count: int
    period: int

    def text(self) -> str:
        for unit, seconds in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
            if self.period % seconds == 0:
                n = self.period // seconds
                return f"{self.count}/{'' if n == 1 else n}{unit}"
        raise AssertionError("unreachable")  # pragma: no cover - s divides everything


def parse_rate(text: str) -> Rate:
    """``N/PERIOD``, e.g. ``10/h`` or ``3/15m``; ValueError says what is wrong."""
    found = _RATE.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        raise ValueError(
            f"{str(text)[:40]!r} is not a read-rate cap: write N/PERIOD, e.g. 10/h, 3/15m, 100/1d"
        )
    count, n, unit = found.groups()
    period = int(n or 1) * _UNITS[unit]
    if int(count) > MAX_RATE_COUNT or period > MAX_RATE_PERIOD:
        raise ValueError(
            f"{text!r}: a read-rate cap allows at most {MAX_RATE_COUNT} per period and a period "
            "of at most 30d"
        )
    return Rate(int(count), period)


def rate_retry_after(times: Iterable[int], rate: Rate, now: int) -> int | None:
    """None if one more request fits under ``rate`` at ``now``, given the earlier requests'
    times; else the seconds until one does (when the oldest counted one leaves the window).

    The window is the last ``period`` seconds: a request at ``t`` counts while
    ``t > now - period``.
    """
    inside = sorted(t for t in times if now - rate.period < t <= now)
    if len(inside) < rate.count:
        return None
    # The (len - count + 1)-th oldest must leave the window for one more to fit.
    leaving = inside[len(inside) - rate.count]
    return max(1, leaving + rate.period - now)


def cosign_reached(released_by: Iterable[str], threshold: int, cosigner: str | None) -> bool:
    """Whether an access request is released: ``threshold`` distinct approvers have released,
    and, with a co-signer, the co-signer too *on top of* them (it is a second pair of eyes,
    never one of the ``threshold``)."""
    who = set(released_by)
    if cosigner is None:
        return len(who) >= threshold
    return cosigner in who and len(who - {cosigner}) >= threshold
