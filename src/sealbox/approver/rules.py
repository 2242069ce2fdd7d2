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
    canary = true                   # this rule may also decide reads of canaries

A read that asks for a canary (an item whose approver-signed manifest says
``type = "canary"``) is approved only by access rules that say ``canary =
true``; every other approve rule passes over it, so without such a rule a
person decides.  Deny rules match it as any other read (``canary = true`` or
not): a deny releases nothing, and the relay has already written
``canary.requested`` (critical) when the request was made.  Releasing a
canary is what makes it useful (its reader keeps going while the relay
alerts and freezes the project), so a canary rule is normally an approve
rule::

    [[rule]]
    name = "canaries are released, and alert"
    decision = "approve"
    canary = true
    items = ["*/*/aws-root-*"]

Consent requests (``sealbox consent request``) are decided by rules of
``kind = "consent"`` only, and a consent is never given unless a rule
explicitly allows that action for that client: a consent rule must name its
``actions`` (exact action names) and its ``clients``, and may narrow further
with ``client_kinds``, ``purpose``, ``hours``, ``weekdays`` and ``rate``
(``items``, ``fields``, ``hosts`` and ``cache_seconds`` are for access and
store requests and are refused here).  No matching rule: left for a person.

A consent rule's ``clients`` are matched against client *ids* (``cli_…``, as
``sealbox whoami`` and the approver's screen show them), never names: a name
is chosen by whoever enrolls the client (a CI machine names itself) and two
clients may share one, while for consent the rule is the only gate.  A glob
that could never match an id (``"release-bot"``) is refused when the file is
loaded; ``"*"`` (any client) stays allowed, and says so::

    [[rule]]
    name = "the release bot may deploy"
    decision = "approve"
    kind = "consent"
    actions = ["deploy"]
    clients = ["cli_7mzq4k2vd3hxw6rj5tbn2ycfpe"]    # the release bot's client id
    rate = "20/hour"

Matching uses only a request's verified facts (:class:`~sealbox.approver.review.Review`):
the certified client, and what it signed.  Rules are strict: an unknown key or
a malformed value is an error when the file is loaded, never a rule that
silently matches more than it says.
"""

from __future__ import annotations

import datetime
import difflib
import re
import time
import tomllib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from sealbox.approver.consents import ConsentReview
from sealbox.approver.review import Review
from sealbox.errors import InvalidInput
from sealbox.protocol import ids

__all__ = ["Decision", "Rule", "RuleSet", "load_rules", "parse_rules"]

_KEYS = {
    "name", "decision", "kind", "clients", "client_kinds", "items", "fields", "purpose",
    "hosts", "hours", "weekdays", "rate", "cache_seconds", "reason", "actions", "canary",
}  # fmt: skip
#: Keys that say nothing about a consent request: refused in a consent rule.
_NOT_FOR_CONSENT = {"items", "fields", "hosts", "cache_seconds"}
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_RATE_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_CLIENT_ID_PREFIX = f"{ids.CLIENT}_"
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
    actions: frozenset[str] | None = None
    """Consent rules: the action names this rule decides (always set for them)."""
    canary: bool = False
    """Access rules: whether this rule may decide a read that asks for a canary."""
    _used: deque[float] = field(default_factory=deque, repr=False)

    def matches_consent(self, rev: ConsentReview, moment: datetime.datetime) -> bool:
        """Whether this consent rule decides ``rev`` (only verified facts are used)."""
        if self.kind != "consent" or self.actions is None or self.clients is None:
            return False
        if rev.action not in self.actions:
            return False
        # Ids only: a client's name is not unique, and here the rule is the only gate.
        if not any(fnmatchcase(rev.client_id, g) for g in self.clients):
            return False
        if self.client_kinds is not None and rev.client_kind not in self.client_kinds:
            return False
        if self.purpose is not None and not self.purpose.search(rev.purpose):
            return False
        return self._in_time(moment)

    def _in_time(self, moment: datetime.datetime) -> bool:
        if self.weekdays is not None and moment.weekday() not in self.weekdays:
            return False
        if self.hours is not None:
            minute = moment.hour * 60 + moment.minute
            start, end = self.hours
            inside = start <= minute < end if start <= end else minute >= start or minute < end
            if not inside:
                return False
        return True

    def matches(self, rev: Review, moment: datetime.datetime) -> bool:
        if rev.kind != self.kind:
            return False
        if rev.kind == "access" and rev.canaries and self.approve and not self.canary:
            # Only a rule that says canary = true releases a canary; a deny rule still
            # refuses one (a deny gives nothing away, and the relay alarmed on the ask).
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

    def decide_consent(self, rev: ConsentReview) -> Decision | None:
        """The first matching consent rule's decision; ``None``: leave it for a person."""
        now = self.clock()
        moment = datetime.datetime.fromtimestamp(now).astimezone()
        for rule in self.rules:
            if not rule.matches_consent(rev, moment):
                continue
            if rule.approve:
                if not rule.within_rate(now):
                    continue
                rule.count(now)
            return Decision(rule=rule.name, approve=rule.approve, cache_seconds=None,
                            reason=rule.reason or f"refused by rule {rule.name!r}")  # fmt: skip
        return None

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


_FORMAT = "The rule format is described at the top of src/sealbox/approver/rules.py."
_HEADER = re.compile(r"\s*\[")
_RULE_HEADER = re.compile(r"""\s*\[\[\s*(rule|"rule"|'rule')\s*\]\]""")
# A key at the start of a line: bare, "quoted" or 'literal', then "=" or "." (a dotted key).
_KEY = re.compile(r"""\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*[=.]""")


class _Source:
    """Where in the rules file something is, for error messages.

    tomllib returns values without positions, so the lines are found by scanning
    the text for the n-th ``[[rule]]`` header and a key under it.  Rules written
    another way (an inline array of tables) get no line, only the file name.
    """

    def __init__(self, text: str, name: str | None) -> None:
        self.lines = text.splitlines()
        self.name = name

    def _rule_lines(self, index: int) -> list[tuple[int, str]]:
        seen, inside, found = -1, False, []
        for number, line in enumerate(self.lines, 1):
            if _RULE_HEADER.match(line):
                seen += 1
                inside = seen == index
                if inside:
                    found.append((number, line))
            elif _HEADER.match(line):
                inside = False
            elif inside:
                found.append((number, line))
        return found

    def line_of(self, index: int, key: str | None = None) -> int | None:
        """The line of rule ``index``'s header, or of ``key`` in it."""
        for number, line in self._rule_lines(index):
            if key is None:
                return number
            found = _KEY.match(line)
            if found and key in found.groups():
                return number
        return None

    def table_line(self, table: str) -> int | None:
        pattern = re.compile(rf"""\s*\[\[?\s*("{re.escape(table)}"|{re.escape(table)})\s*[\].]""")
        return next((n for n, line in enumerate(self.lines, 1) if pattern.match(line)), None)

    def where(self, line: int | None) -> str:
        """``file:line: `` as compilers print it, with what is known of the two."""
        place = ":".join(str(p) for p in (self.name, line) if p is not None)
        return f"{place}: " if place else ""


def _strings(value: Any, key: str, fail: Callable[[str, str], InvalidInput]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise fail(key, f"{key} must be a string or a non-empty list of them")
    return tuple(value)


def _can_match_an_id(glob: str) -> bool:
    """Whether ``glob`` could match some client id (``cli_`` then the id's characters)."""
    literal = re.split(r"[*?\[]", glob, maxsplit=1)[0]
    return _CLIENT_ID_PREFIX.startswith(literal) or literal.startswith(_CLIENT_ID_PREFIX)


def _rule(table: Mapping[str, Any], index: int, source: _Source) -> Rule:
    if not isinstance(table, dict):
        raise InvalidInput(f"{source.where(None)}rule {index + 1}: expected a table",
                           hint="Write each rule as a [[rule]] table. " + _FORMAT)  # fmt: skip
    name = table.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(
            f"{source.where(source.line_of(index))}rule {index + 1}: needs a name",
            hint='Give every rule a name, e.g. name = "nightly backup".',
        )

    def fail(key: str, problem: str, hint: str = _FORMAT) -> InvalidInput:
        return InvalidInput(
            f"{source.where(source.line_of(index, key))}rule {name!r}: {problem}", hint=hint
        )

    unknown = sorted(set(table) - _KEYS)
    if unknown:
        close = difflib.get_close_matches(unknown[0], _KEYS, n=1)
        problem = f"unknown key{'s' if len(unknown) > 1 else ''} " + ", ".join(map(repr, unknown))
        if close:
            problem += f" (did you mean {close[0]!r}?)"
        raise fail(unknown[0], problem, f"A rule's keys are {', '.join(sorted(_KEYS))}. "
                   + _FORMAT)  # fmt: skip
    decision = table.get("decision")
    if decision not in ("approve", "deny"):
        raise fail("decision", 'decision must be "approve" or "deny"')
    rule = Rule(name=name, approve=decision == "approve")
    kind = table.get("kind", "access")
    if kind not in ("access", "store", "consent"):
        raise fail("kind", 'kind must be "access", "store" or "consent"')
    rule.kind = kind
    if kind == "consent":
        misplaced = sorted(_NOT_FOR_CONSENT & set(table))
        if misplaced:
            raise fail(misplaced[0], f"{misplaced[0]} does not apply to consent rules",
                       "A consent rule decides by actions, clients, client_kinds, purpose, "
                       "hours, weekdays and rate. " + _FORMAT)  # fmt: skip
        for needed in ("actions", "clients"):
            if needed not in table:
                raise fail("kind", f"a consent rule must name its {needed}",
                           "A consent is given only where a rule names the action and the "
                           "client explicitly. " + _FORMAT)  # fmt: skip
    elif "actions" in table:
        raise fail("actions", 'actions are for rules of kind = "consent"')
    if "actions" in table:
        rule.actions = frozenset(_strings(table["actions"], "actions", fail))
    if "canary" in table:
        if kind != "access":
            raise fail("canary", "canary is for access rules (reads of canaries)")
        if type(table["canary"]) is not bool:
            raise fail("canary", "canary must be true or false")
        rule.canary = table["canary"]
    if "clients" in table:
        rule.clients = _strings(table["clients"], "clients", fail)
        if kind == "consent":
            for glob in rule.clients:
                if not _can_match_an_id(glob):
                    raise fail("clients", f"consent rules match client ids (cli_…), not "
                               f"names: {glob!r} can never match one",
                               "Write the client's id as `sealbox whoami` or the approver "
                               "shows it, e.g. clients = [\"cli_…\"]. " + _FORMAT)  # fmt: skip
    if "client_kinds" in table:
        rule.client_kinds = _strings(table["client_kinds"], "client_kinds", fail)
        if set(rule.client_kinds) - {"human", "agent", "machine"}:
            raise fail("client_kinds", "client_kinds are human, agent or machine")
    if "items" in table:
        rule.items = _strings(table["items"], "items", fail)
    if "fields" in table:
        rule.fields = frozenset(_strings(table["fields"], "fields", fail))
    if "hosts" in table:
        rule.hosts = tuple(h.lower() for h in _strings(table["hosts"], "hosts", fail))
    if "purpose" in table:
        pattern = table["purpose"]
        try:
            rule.purpose = re.compile(pattern) if isinstance(pattern, str) else None
        except re.error as exc:
            raise fail("purpose", f"purpose is not a valid regex: {exc}") from None
        if rule.purpose is None:
            raise fail("purpose", "purpose must be a regular expression")
    if "hours" in table:
        found = _HOURS.fullmatch(str(table["hours"]))
        if not found:
            raise fail("hours", 'hours must look like "08:00-18:30"')
        h1, m1, h2, m2 = (int(g) for g in found.groups())
        if h2 == 24 and m2:
            raise fail("hours", "hours end at 24:00 at the latest")
        rule.hours = (h1 * 60 + m1, h2 * 60 + m2)
    if "weekdays" in table:
        days = _strings(table["weekdays"], "weekdays", fail)
        if set(days) - set(_WEEKDAYS):
            raise fail("weekdays", f"weekdays are {', '.join(_WEEKDAYS)}")
        rule.weekdays = frozenset(_WEEKDAYS.index(d) for d in days)
    if "rate" in table:
        found = re.fullmatch(r"(\d{1,6})/(second|minute|hour|day)", str(table["rate"]))
        if not found or int(found.group(1)) < 1:
            raise fail("rate", 'rate must look like "10/hour"')
        rule.rate = (int(found.group(1)), _RATE_UNITS[found.group(2)])
    if "cache_seconds" in table:
        seconds = table["cache_seconds"]
        if type(seconds) is not int or not 0 <= seconds <= 30 * 86400:
            raise fail("cache_seconds", "cache_seconds must be 0..2592000")
        rule.cache_seconds = seconds
    if "reason" in table:
        if not isinstance(table["reason"], str):
            raise fail("reason", "reason must be text")
        rule.reason = table["reason"][:500]
    return rule


def parse_rules(text: str, *, source: str | None = None) -> RuleSet:
    """The rules in ``text``; ``source`` (the file's name) is only used in error messages.

    Raises :class:`~sealbox.errors.InvalidInput` naming the file, the line where it can
    be found, and what is wrong.
    """
    where = _Source(text, source)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message ends with "(at line N, column M)".
        raise InvalidInput(f"{where.where(None)}the rules file is not valid TOML: {exc}",
                           hint="Fix the TOML at that line. " + _FORMAT) from None  # fmt: skip
    unknown = sorted(set(document) - {"rule"})
    if unknown:
        raise InvalidInput(
            f"{where.where(where.table_line(unknown[0]))}the rules file has unknown "
            f"table(s): {', '.join(unknown)}",
            hint="A rules file holds only [[rule]] tables. " + _FORMAT,
        )
    tables = document.get("rule", [])
    if not isinstance(tables, list):
        raise InvalidInput(f"{where.where(where.table_line('rule'))}rules are [[rule]] tables",
                           hint="Write each rule as a [[rule]] table (two brackets). "
                           + _FORMAT)  # fmt: skip
    rules = [_rule(t, i, where) for i, t in enumerate(tables)]
    names = [r.name for r in rules]
    for index, name in enumerate(names):
        if name in names[:index]:
            raise InvalidInput(
                f"{where.where(where.line_of(index, 'name'))}two rules have the same name {name!r}",
                hint="Give each rule its own name: the decision log names the rule that decided.",
            )
    return RuleSet(rules)


def load_rules(path: Path) -> RuleSet:
    return parse_rules(path.read_text(), source=str(path))


def describe(rules: Sequence[Rule]) -> list[str]:
    return [f"{r.name}: {'approve' if r.approve else 'deny'} {r.kind}" for r in rules]
