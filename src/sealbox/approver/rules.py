"""Rules of the automated approver (``sealbox approver serve --rules rules.toml``).

A rules file is a list of ``[[rule]]`` tables, tried in order; the first rule
that matches a request decides it.  A request no rule matches is left for a
person.  Every key but ``name`` and ``decision`` is optional and narrows the
rule; a key that is absent matches anything::

    [[rule]]
    name = "nightly backup reads the database password"
    decision = "approve"            # or "deny"
    kind = "access"                 # access (default) or store
    clients = ["backup@ci-*", "cli_*"]      # client name or id globs
    client_kinds = ["machine"]
    items = ["shop/prod/db"]        # item path globs (every asked item must match)
    fields = ["password", "user"]   # every asked field must be in this list
    purpose = "^nightly backup"     # regular expression searched in the purpose
    hosts = ["backup-*.example.com"]
    hours = "01:00-05:00"           # local time window (may wrap midnight)
    weekdays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    rate = "10/hour"                # at most this many approvals by this rule
    cache_seconds = 300             # let the client keep the values this long
    reason = "outside the backup window"   # shown to the client on deny

Matching uses only a request's verified facts (:class:`~sealbox.approver.review.Review`):
the certified client, and what it signed.  Rules are strict: an unknown key or
a malformed value is an error when the file is loaded, never a rule that
silently matches more than it says.
"""

from __future__ import annotations

import datetime
import re
import time
import tomllib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from sealbox.approver.review import Review
from sealbox.errors import MalformedInput

__all__ = ["Decision", "Rule", "RuleSet", "load_rules", "parse_rules"]

_KEYS = {
    "name", "decision", "kind", "clients", "client_kinds", "items", "fields", "purpose",
    "hosts", "hours", "weekdays", "rate", "cache_seconds", "reason",
}  # fmt: skip
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RATE_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_HOURS = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)")


@dataclass(frozen=True)
class Decision:
    rule: str
    approve: bool
    cache_seconds: int | None
    reason: str


@dataclass
class Rule:
    name: str
    approve: bool
    kind: str = "access"
    clients: tuple[str, ...] | None = None
    client_kinds: tuple[str, ...] | None = None
    items: tuple[str, ...] | None = None
    fields: frozenset[str] | None = None
    purpose: re.Pattern[str] | None = None
    hosts: tuple[str, ...] | None = None
    hours: tuple[int, int] | None = None
    """Minutes since midnight: [start, end); start > end wraps midnight."""
    weekdays: frozenset[int] | None = None
    rate: tuple[int, int] | None = None
    """(count, seconds)."""
    cache_seconds: int | None = None
    reason: str = ""
    _used: deque[float] = field(default_factory=deque, repr=False)

    def matches(self, rev: Review, moment: datetime.datetime) -> bool:
        if rev.kind != self.kind:
            return False
        if self.clients is not None and not any(
            fnmatchcase(rev.client_name, g) or fnmatchcase(rev.client_id, g) for g in self.clients
        ):
            return False
        if self.client_kinds is not None and rev.client_kind not in self.client_kinds:
            return False
        if self.items is not None and not all(
            any(fnmatchcase(i.path, g) for g in self.items) for i in rev.items
        ):
            return False
        if self.fields is not None and not all(set(i.fields) <= self.fields for i in rev.items):
            return False
        if self.purpose is not None and not self.purpose.search(rev.purpose):
            return False
        host = rev.context.host or ""
        if self.hosts is not None and not any(fnmatchcase(host.lower(), g) for g in self.hosts):
            return False
        if self.weekdays is not None and moment.weekday() not in self.weekdays:
            return False
        if self.hours is not None:
            minute = moment.hour * 60 + moment.minute
            start, end = self.hours
            inside = start <= minute < end if start <= end else minute >= start or minute < end
            if not inside:
                return False
        return True

    def within_rate(self, now: float) -> bool:
        if self.rate is None:
            return True
        count, seconds = self.rate
        while self._used and self._used[0] <= now - seconds:
            self._used.popleft()
        return len(self._used) < count

    def count(self, now: float) -> None:
        if self.rate is not None:
            self._used.append(now)


@dataclass
class RuleSet:
    rules: list[Rule]
    clock: Callable[[], float] = time.time

    def decide(self, rev: Review) -> Decision | None:
        """The first matching rule's decision; ``None``: leave it for a person.

        A matching approve rule whose rate is spent does not approve; the
        request falls through to later rules (and, if none, to a person).
        """
        now = self.clock()
        moment = datetime.datetime.fromtimestamp(now).astimezone()
        for rule in self.rules:
            if not rule.matches(rev, moment):
                continue
            if rule.approve:
                if not rule.within_rate(now):
                    continue
                rule.count(now)
            return Decision(rule=rule.name, approve=rule.approve,
                            cache_seconds=rule.cache_seconds,
                            reason=rule.reason or f"denied by rule {rule.name!r}")  # fmt: skip
        return None


def _strings(value: Any, key: str, name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise MalformedInput(f"rule {name!r}: {key} must be a string or a non-empty list of them")
    return tuple(value)


def _rule(table: Mapping[str, Any], index: int) -> Rule:
    if not isinstance(table, dict):
        raise MalformedInput(f"rule {index + 1}: expected a table")
    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise MalformedInput(f"rule {index + 1}: needs a name")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise MalformedInput(f"rule {name!r}: unknown key(s) {', '.join(unknown)}")
    decision = table.get("decision")
    if decision not in ("approve", "deny"):
        raise MalformedInput(f'rule {name!r}: decision must be "approve" or "deny"')
    rule = Rule(name=name, approve=decision == "approve")
    kind = table.get("kind", "access")
    if kind not in ("access", "store"):
        raise MalformedInput(f'rule {name!r}: kind must be "access" or "store"')
    rule.kind = kind
    if "clients" in table:
        rule.clients = _strings(table["clients"], "clients", name)
    if "client_kinds" in table:
        rule.client_kinds = _strings(table["client_kinds"], "client_kinds", name)
        if set(rule.client_kinds) - {"human", "agent", "machine"}:
            raise MalformedInput(f"rule {name!r}: client_kinds are human, agent or machine")
    if "items" in table:
        rule.items = _strings(table["items"], "items", name)
    if "fields" in table:
        rule.fields = frozenset(_strings(table["fields"], "fields", name))
    if "hosts" in table:
        rule.hosts = tuple(h.lower() for h in _strings(table["hosts"], "hosts", name))
    if "purpose" in table:
        pattern = table["purpose"]
        try:
            rule.purpose = re.compile(pattern) if isinstance(pattern, str) else None
        except re.error as exc:
            raise MalformedInput(f"rule {name!r}: purpose is not a valid regex: {exc}") from None
        if rule.purpose is None:
            raise MalformedInput(f"rule {name!r}: purpose must be a regular expression")
    if "hours" in table:
        found = _HOURS.fullmatch(str(table["hours"]))
        if not found:
            raise MalformedInput(f'rule {name!r}: hours must look like "08:00-18:30"')
        h1, m1, h2, m2 = (int(g) for g in found.groups())
        if h2 == 24 and m2:
            raise MalformedInput(f"rule {name!r}: hours end at 24:00 at the latest")
        rule.hours = (h1 * 60 + m1, h2 * 60 + m2)
    if "weekdays" in table:
        days = _strings(table["weekdays"], "weekdays", name)
        if set(days) - set(_WEEKDAYS):
            raise MalformedInput(f"rule {name!r}: weekdays are {', '.join(_WEEKDAYS)}")
        rule.weekdays = frozenset(_WEEKDAYS.index(d) for d in days)
    if "rate" in table:
        found = re.fullmatch(r"(\d{1,6})/(second|minute|hour|day)", str(table["rate"]))
        if not found or int(found.group(1)) < 1:
            raise MalformedInput(f'rule {name!r}: rate must look like "10/hour"')
        rule.rate = (int(found.group(1)), _RATE_UNITS[found.group(2)])
    if "cache_seconds" in table:
        seconds = table["cache_seconds"]
        if type(seconds) is not int or not 0 <= seconds <= 30 * 86400:
            raise MalformedInput(f"rule {name!r}: cache_seconds must be 0..2592000")
        rule.cache_seconds = seconds
    if "reason" in table:
        if not isinstance(table["reason"], str):
            raise MalformedInput(f"rule {name!r}: reason must be text")
        rule.reason = table["reason"][:500]
    return rule


def parse_rules(text: str) -> RuleSet:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MalformedInput(f"the rules file is not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"rule"})
    if unknown:
        raise MalformedInput(f"the rules file has unknown table(s): {', '.join(unknown)}")
    tables = document.get("rule", [])
    if not isinstance(tables, list):
        raise MalformedInput("rules are [[rule]] tables")
    rules = [_rule(t, i) for i, t in enumerate(tables)]
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise MalformedInput("two rules have the same name")
    return RuleSet(rules)


def load_rules(path: Path) -> RuleSet:
    return parse_rules(path.read_text())


def describe(rules: Sequence[Rule]) -> list[str]:
    return [f"{r.name}: {'approve' if r.approve else 'deny'} {r.kind}" for r in rules]
