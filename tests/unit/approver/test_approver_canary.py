"""Canaries on the approver's side: rules, the automated approver's own alarm, the terminal.

Whether an item is a canary comes from its verified manifest (``ItemView.type``),
never from anything the relay says on its own.
"""

from __future__ import annotations

import io
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sealbox.approver.answer import Outcome
from sealbox.approver.review import ItemView, Review
from sealbox.approver.rules import parse_rules
from sealbox.approver.serve import AutomatedApprover, canary_environment
from sealbox.approver.terminal import Console, TerminalApprover
from sealbox.errors import MalformedInput
from sealbox.protocol.statements import RequestContext

SECRET = ItemView(path="shop/prod/db", version=3, fields=("password",), type="secret",
                  threshold=1, holders=2)  # fmt: skip
CANARY = ItemView(path="shop/prod/aws-root", version=1, fields=("key",), type="canary",
                  threshold=1, holders=2)  # fmt: skip


def _review(*items: ItemView, **changes: object) -> Review:
    base = Review(
        id="r" * 43, kind="access", client_id="cli_" + "a" * 26, client_name="backup@ci-7",
        client_kind="machine", issuer="apv_" + "b" * 26, scopes=("read",),
        purpose="nightly backup of the shop", context=RequestContext(host="ci-7.example.com"),
        items=items or (SECRET,), at=0, expires_at=300, cache_seconds=0, cache_scope="none",
        cache_until_max=0, threshold=1, approvals=0,
        reported_by_server={"source_ip": "10.0.0.9"},
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def test_canaries_come_from_the_item_types() -> None:
    assert _review(SECRET).canaries == ()
    assert _review(SECRET, CANARY).canaries == ("shop/prod/aws-root",)


# --- rules ------------------------------------------------------------------------------------

ANY = '[[rule]]\nname = "any read"\ndecision = "approve"\n'
DENY_ALL = '[[rule]]\nname = "deny all"\ndecision = "deny"\n'
CANARY_RULE = '[[rule]]\nname = "canaries"\ndecision = "approve"\ncanary = true\n'


def test_an_approve_rule_without_canary_never_releases_a_canary() -> None:
    for text in (ANY, ANY.replace('"approve"\n', '"approve"\ncanary = false\n')):
        rules = parse_rules(text)
        assert rules.decide(_review(SECRET)) is not None
        assert rules.decide(_review(CANARY)) is None  # left for a person
        assert rules.decide(_review(SECRET, CANARY)) is None  # a bundle with one too


def test_a_deny_rule_denies_a_canary_without_saying_canary() -> None:
    # A deny releases nothing (the relay alarmed when the request was made), so a rule
    # that refuses a client refuses its canary reads too instead of leaving them waiting.
    banned = ('[[rule]]\nname = "ci-7 is quarantined"\ndecision = "deny"\n'
              'clients = ["backup@ci-7"]\n')  # fmt: skip
    for text in (DENY_ALL, banned + "\n" + ANY):
        rules = parse_rules(text)
        for review in (_review(CANARY), _review(SECRET, CANARY)):
            decided = rules.decide(review)
            assert decided is not None
            assert not decided.approve
    # Its other keys still narrow it: another client's canary read is left for a person.
    other = _review(CANARY, client_name="web@prod-1", client_id="cli_" + "c" * 26)
    assert parse_rules(banned + "\n" + ANY).decide(other) is None


def test_a_canary_rule_decides_canaries_and_the_rest() -> None:
    narrowed = CANARY_RULE.replace("canary = true\n", 'canary = true\nitems = ["*/*/aws-*"]\n')
    rules = parse_rules(narrowed + "\n" + ANY)
    decided = rules.decide(_review(CANARY))
    assert decided is not None
    assert decided.rule == "canaries"
    assert decided.approve
    # The canary rule's other keys still narrow it: a plain item here falls to "any read".
    plain = rules.decide(_review(SECRET))
    assert plain is not None
    assert plain.rule == "any read"


def test_order_still_decides_a_canary_rule_is_not_preferred() -> None:
    rules = parse_rules(DENY_ALL.replace("decision", "canary = true\ndecision") + "\n"
                        + CANARY_RULE)  # fmt: skip
    decided = rules.decide(_review(CANARY))
    assert decided is not None
    assert decided.rule == "deny all"


def test_store_rules_are_not_held_by_canary() -> None:
    rules = parse_rules('[[rule]]\nname = "stores"\nkind = "store"\ndecision = "approve"\n')
    assert rules.decide(_review(CANARY, kind="store")) is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (CANARY_RULE.replace("true", '"yes"'), "canary must be true or false"),
        (CANARY_RULE.replace("true", "1"), "canary must be true or false"),
        (CANARY_RULE + 'kind = "store"\n', "canary is for access rules"),
        (
            CANARY_RULE + 'kind = "consent"\nactions = ["x"]\nclients = ["cli_*"]\n',
            "canary is for access rules",
        ),
        (CANARY_RULE.replace("canary", "canaries"), "did you mean 'canary'"),
    ],
)
def test_canary_keys_are_strict(text: str, message: str) -> None:
    with pytest.raises(MalformedInput, match=message):
        parse_rules(text)


# --- the automated approver's own alarm ---------------------------------------------------------


def _facts(**extra: Any) -> dict[str, Any]:
    return {"request": "r" * 43, "kind": "access", "client": "cli_" + "a" * 26,
            "client_name": "backup@ci-7",
            "items": [{"path": CANARY.path, "version": 1, "fields": ["key"]}],
            "purpose": "look around", **extra}  # fmt: skip


def _lines(log: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.getvalue().splitlines()]


def test_releasing_a_canary_logs_critical_and_runs_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The approver's own settings (its key file's passphrase) never reach the command.
    monkeypatch.setenv("SEALBOX_PASSPHRASE", "correct horse battery")
    monkeypatch.setenv("SEALBOX_CONFIG_DIR", str(tmp_path))
    out = tmp_path / "alarm.json"
    script = ("import json, os, sys; json.dump({k: v for k, v in os.environ.items() "
              "if k.startswith('SEALBOX_')}, open(sys.argv[1], 'w'))")  # fmt: skip
    log = io.StringIO()
    bot = AutomatedApprover(SimpleNamespace(), parse_rules(""), log=log,  # type: ignore[arg-type]
                            on_canary=[sys.executable, "-c", script, str(out)])  # fmt: skip
    try:
        facts = _facts(canary=[CANARY.path], source_ip="203.0.113.7")
        assert bot._answered(facts, "canaries", Outcome("released", "released")) == "approved"
        deadline = time.monotonic() + 30
        while not any(e["outcome"] == "canary command" for e in _lines(log)):
            assert time.monotonic() < deadline, log.getvalue()
            time.sleep(0.05)
    finally:
        bot.close()
    lines = _lines(log)
    assert [e["outcome"] for e in lines] == ["approved", "canary released", "canary command"]
    alarm = lines[1]
    assert alarm["severity"] == "critical"
    assert alarm["canary"] == [CANARY.path]
    assert alarm["rule"] == "canaries"
    assert lines[2]["exit"] == 0
    told = json.loads(out.read_text())
    assert told == {
        "SEALBOX_CANARY_PATHS": CANARY.path, "SEALBOX_CANARY_REQUEST": "r" * 43,
        "SEALBOX_CANARY_CLIENT": "cli_" + "a" * 26, "SEALBOX_CANARY_CLIENT_NAME": "backup@ci-7",
        "SEALBOX_CANARY_PURPOSE": "look around", "SEALBOX_CANARY_SOURCE_IP": "203.0.113.7",
        "SEALBOX_CANARY_RULE": "canaries",
    }  # fmt: skip


def test_no_alarm_for_a_plain_release_or_a_denied_canary(tmp_path: Path) -> None:
    log = io.StringIO()
    bot = AutomatedApprover(SimpleNamespace(), parse_rules(""), log=log,  # type: ignore[arg-type]
                            on_canary=[sys.executable, "-c", "raise SystemExit(9)"])  # fmt: skip
    try:
        bot._answered(_facts(), "r", Outcome("released", "released"))
        bot._answered(_facts(canary=[CANARY.path]), "r", Outcome("denied", "denied"))
        bot._answered(_facts(canary=[CANARY.path]), "r", Outcome("ended"))
        time.sleep(0.3)
    finally:
        bot.close()
    assert [e["outcome"] for e in _lines(log)] == ["approved", "denied", "gone"]


def test_a_failing_command_is_an_alert_line(tmp_path: Path) -> None:
    log = io.StringIO()
    bot = AutomatedApprover(SimpleNamespace(), parse_rules(""), log=log,  # type: ignore[arg-type]
                            on_canary=[str(tmp_path / "no-such-command")])  # fmt: skip
    try:
        bot._answered(_facts(canary=[CANARY.path]), "r", Outcome("released", "released"))
        deadline = time.monotonic() + 30
        while len(_lines(log)) < 3:
            assert time.monotonic() < deadline, log.getvalue()
            time.sleep(0.05)
    finally:
        bot.close()
    failed = _lines(log)[2]
    assert failed["outcome"] == "canary command"
    assert failed["error"] == "not_started"
    assert failed["severity"] == "alert"


def test_the_environment_names_no_value() -> None:
    env = canary_environment(_facts(canary=["a/b/c", "a/b/d"], source_ip=None))
    assert env["SEALBOX_CANARY_PATHS"] == "a/b/c a/b/d"
    assert env["SEALBOX_CANARY_SOURCE_IP"] == ""
    assert set(env) == {
        "SEALBOX_CANARY_PATHS", "SEALBOX_CANARY_REQUEST", "SEALBOX_CANARY_CLIENT",
        "SEALBOX_CANARY_CLIENT_NAME", "SEALBOX_CANARY_PURPOSE", "SEALBOX_CANARY_SOURCE_IP",
        "SEALBOX_CANARY_RULE",
    }  # fmt: skip


# --- the terminal approver --------------------------------------------------------------------


def _terminal() -> tuple[TerminalApprover, list[str]]:
    said: list[str] = []
    session = SimpleNamespace(directory=lambda: SimpleNamespace(approvers={}))
    console = Console(say=said.append, ask=lambda _: "", verify=lambda: True)
    return TerminalApprover(session, console, clock=lambda: 100.0), said  # type: ignore[arg-type]


def test_the_terminal_shows_a_canary_banner_above_the_request() -> None:
    terminal, said = _terminal()
    terminal.show_request(_review(SECRET, CANARY))
    text = "\n".join(said)
    assert "!!! CANARY: this request reads shop/prod/aws-root." in text
    assert text.index("CANARY") < text.index("Verified")
    terminal._done(_review(SECRET, CANARY), Outcome("released", "released"))
    assert "!!! CANARY RELEASED to backup@ci-7" in said[-1]


def test_the_terminal_shows_no_banner_for_plain_items() -> None:
    terminal, said = _terminal()
    terminal.show_request(_review(SECRET))
    terminal._done(_review(SECRET), Outcome("released", "released"))
    assert "CANARY" not in "\n".join(said)


def test_the_terminal_says_once_which_projects_are_frozen() -> None:
    said: list[str] = []
    frozen = [{"project": "shop", "cause": "canary", "frozen_by": "relay"},
              {"project": "ops", "cause": "approver", "frozen_by": "apv_x"}]  # fmt: skip
    session = SimpleNamespace(ok=lambda method, path, what: {"frozen": frozen})
    console = Console(say=said.append, ask=lambda _: "", verify=lambda: True)
    terminal = TerminalApprover(session, console)  # type: ignore[arg-type]
    terminal.show_frozen()
    terminal.show_frozen()
    assert said == [
        "!! Project shop is FROZEN (a canary was released): nothing in it is released until "
        "`sealbox approver unfreeze shop`.",
        "!! Project ops is FROZEN (frozen by apv_x): nothing in it is released until "
        "`sealbox approver unfreeze ops`.",
    ]
