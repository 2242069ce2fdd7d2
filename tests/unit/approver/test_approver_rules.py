"""The automated approver's rules: strict loading, first match decides, rates, hours."""

from __future__ import annotations

import datetime
from dataclasses import replace

import pytest

from sealbox.approver.review import ItemView, Review
from sealbox.approver.rules import parse_rules
from sealbox.errors import MalformedInput
from sealbox.protocol.statements import RequestContext


def _review(**changes: object) -> Review:
    base = Review(
        id="r" * 43, kind="access", client_id="cli_" + "a" * 26, client_name="backup@ci-7",
        client_kind="machine", issuer="apv_" + "b" * 26, scopes=("read",),
        purpose="nightly backup of the shop", context=RequestContext(host="ci-7.example.com"),
        items=(ItemView(path="shop/prod/db", version=3, fields=("password",), type="secret",
                        threshold=1, holders=2),),
        at=0, expires_at=300, cache_seconds=0, cache_scope="none", cache_until_max=0,
        threshold=1, approvals=0, reported_by_server={"source_ip": "10.0.0.9"},
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


RULES = """
[[rule]]
name = "backup"
decision = "approve"
clients = ["backup@ci-*"]
client_kinds = ["machine"]
items = ["shop/prod/*"]
fields = ["password", "user"]
purpose = "^nightly backup"
hosts = ["ci-*.example.com"]
rate = "2/hour"
cache_seconds = 60

[[rule]]
name = "no prod for others"
decision = "deny"
items = ["shop/prod/*"]
reason = "prod is for the backup job"
"""


def test_first_matching_rule_decides() -> None:
    rules = parse_rules(RULES)
    decision = rules.decide(_review())
    assert decision is not None
    assert (decision.rule, decision.approve, decision.cache_seconds) == ("backup", True, 60)
    other = rules.decide(_review(client_name="alice@laptop", client_kind="human"))
    assert other is not None
    assert (other.rule, other.approve, other.reason) == (
        "no prod for others", False, "prod is for the backup job",
    )  # fmt: skip
    assert rules.decide(_review(items=(replace(_review().items[0], path="shop/dev/db"),))) is None


@pytest.mark.parametrize(
    "change",
    [
        {"purpose": "ad hoc backup"},
        {"context": RequestContext(host="laptop.example.com")},
        {"context": RequestContext(host=None)},
        {"items": (ItemView("shop/prod/db", 3, ("password", "root_key"), "secret", 1, 2),)},
        {"kind": "store"},
    ],
)
def test_every_condition_narrows(change: dict[str, object]) -> None:
    decision = parse_rules(RULES).decide(_review(**change))
    assert decision is None or decision.rule != "backup"


def test_a_spent_rate_falls_through_to_the_next_rule() -> None:
    rules = parse_rules(RULES)
    rules.clock = lambda: 1_000_000.0
    assert [rules.decide(_review()).rule for _ in range(3)] == [  # type: ignore[union-attr]
        "backup", "backup", "no prod for others",
    ]  # fmt: skip
    rules.clock = lambda: 1_000_000.0 + 3601
    assert rules.decide(_review()).rule == "backup"  # type: ignore[union-attr]


def test_hours_and_weekdays(monkeypatch: pytest.MonkeyPatch) -> None:
    rules = parse_rules('[[rule]]\nname="night"\ndecision="approve"\nhours="22:00-06:00"\n'
                        'weekdays=["mon"]\n')  # fmt: skip
    monday_night = datetime.datetime(2026, 11, 23, 23, 30).timestamp()
    monday_noon = datetime.datetime(2026, 11, 23, 12, 0).timestamp()
    tuesday_night = datetime.datetime(2026, 11, 24, 23, 30).timestamp()
    rules.clock = lambda: monday_night
    assert rules.decide(_review()) is not None
    rules.clock = lambda: monday_noon
    assert rules.decide(_review()) is None
    rules.clock = lambda: tuesday_night
    assert rules.decide(_review()) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rule]]\nname="a"\ndecision="maybe"\n', "decision"),
        ('[[rule]]\ndecision="approve"\n', "needs a name"),
        ('[[rule]]\nname="a"\ndecision="approve"\nitem=["x"]\n', "unknown key"),
        ('[[rule]]\nname="a"\ndecision="approve"\nrate="5 per hour"\n', "rate"),
        ('[[rule]]\nname="a"\ndecision="approve"\nhours="9-17"\n', "hours"),
        ('[[rule]]\nname="a"\ndecision="approve"\npurpose="("\n', "regex"),
        ('[[rule]]\nname="a"\ndecision="approve"\nweekdays=["monday"]\n', "weekdays"),
        ('[[rule]]\nname="a"\ndecision="approve"\ncache_seconds=-1\n', "cache_seconds"),
        ('[[rule]]\nname="a"\ndecision="approve"\nclients=[]\n', "non-empty"),
        (
            '[[rule]]\nname="a"\ndecision="approve"\n[[rule]]\nname="a"\ndecision="deny"\n',
            "same name",
        ),
        ("[rules]\nx=1\n", "unknown table"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_malformed_rules_are_refused(text: str, message: str) -> None:
    with pytest.raises(MalformedInput, match=message):
        parse_rules(text)
