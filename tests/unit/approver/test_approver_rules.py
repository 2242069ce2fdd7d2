"""The automated approver's rules: strict loading, first match decides, rates, hours."""

from __future__ import annotations

import datetime
from dataclasses import replace

import pytest

from sealbox.approver.consents import ConsentReview
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


# --- consent rules: a consent only where a rule names the action and the client -----------------


def _consent_review(**changes: object) -> ConsentReview:
    base = ConsentReview(
        id="c" * 43, client_id="cli_" + "d" * 26, client_name="release-bot", client_kind="agent",
        issuer="apv_" + "b" * 26, action="deploy", details={"image": "api:1.4.2"},
        details_hash="sha256:" + "A" * 43, purpose="release 1.4.2", ttl=300, at=0,
        expires_at=300,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


CONSENT_RULES = """
[[rule]]
name = "release bot deploys"
decision = "approve"
kind = "consent"
actions = ["deploy"]
clients = ["cli_dddd*"]
rate = "1/hour"

[[rule]]
name = "nobody pays"
decision = "deny"
kind = "consent"
actions = ["payment"]
clients = ["*"]
reason = "payments need a person"

[[rule]]
name = "every access"
decision = "approve"
"""


def test_consent_only_where_a_rule_names_action_and_client() -> None:
    rules = parse_rules(CONSENT_RULES)
    decided = rules.decide_consent(_consent_review())
    assert decided is not None
    assert (decided.rule, decided.approve) == ("release bot deploys", True)
    # Another action, another client: left for a person (the access rule never applies).
    assert rules.decide_consent(_consent_review(action="rollback")) is None
    assert rules.decide_consent(_consent_review(client_id="cli_" + "e" * 26)) is None
    # The rate is spent: left for a person, never consented.
    assert rules.decide_consent(_consent_review()) is None
    refused = rules.decide_consent(_consent_review(action="payment"))
    assert refused is not None
    assert (refused.approve, refused.reason) == (False, "payments need a person")
    # A consent rule never decides an access request.
    assert rules.decide(_review()) is not None
    assert rules.decide(_review()).rule == "every access"  # type: ignore[union-attr]


def test_no_rules_means_no_consent() -> None:
    assert parse_rules("").decide_consent(_consent_review()) is None
    assert (
        parse_rules('[[rule]]\nname = "all"\ndecision = "approve"\n').decide_consent(
            _consent_review()
        )
        is None
    )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('kind = "consent"\nclients = ["cli_*"]', "must name its actions"),
        ('kind = "consent"\nactions = ["deploy"]', "must name its clients"),
        (
            'kind = "consent"\nactions = ["d"]\nclients = ["*"]\nitems = ["a/b/c"]',
            "items does not apply",
        ),
        ('actions = ["deploy"]', "actions are for rules of kind"),
    ],
    ids=["no-actions", "no-clients", "items", "actions-on-access"],
)
def test_consent_rules_are_strict(body: str, problem: str) -> None:
    from sealbox.errors import InvalidInput

    with pytest.raises(InvalidInput, match=problem):
        parse_rules(f'[[rule]]\nname = "r"\ndecision = "approve"\n{body}\n')


def test_consent_rules_match_client_ids_never_names() -> None:
    # Names are not unique (a CI machine names itself): a rule naming one would let any
    # client of that name obtain consents.  It is refused when the rules are loaded.
    from sealbox.errors import InvalidInput

    for names in ('["release-bot"]', '["cli_x", "release-*"]', '["CLI_*"]'):
        with pytest.raises(InvalidInput, match="consent rules match client ids"):
            parse_rules(f'[[rule]]\nname = "r"\ndecision = "approve"\nkind = "consent"\n'
                        f'actions = ["deploy"]\nclients = {names}\n')  # fmt: skip
    rules = parse_rules('[[rule]]\nname = "r"\ndecision = "approve"\nkind = "consent"\n'
                        'actions = ["deploy"]\nclients = ["cli_dddd*", "c?i_zz"]\n')  # fmt: skip
    assert rules.decide_consent(_consent_review()) is not None
    # A client that took the same name, with another id, gets nothing.
    impostor = _consent_review(client_id="cli_" + "e" * 26, client_name="release-bot")
    assert rules.decide_consent(impostor) is None
    # A glob over names that happens to match every name still matches ids only.
    anyone = parse_rules('[[rule]]\nname = "r"\ndecision = "approve"\nkind = "consent"\n'
                         'actions = ["deploy"]\nclients = ["c*"]\n')  # fmt: skip
    assert anyone.decide_consent(_consent_review(client_name="x")) is not None
    # Access rules keep matching names or ids, as documented.
    assert parse_rules('[[rule]]\nname = "r"\ndecision = "approve"\nclients = ["release-bot"]\n')
