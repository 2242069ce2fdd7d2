"""A mistake in a rules file is reported like a compiler does: file, line, what, and the fix."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sealbox.approver.rules import load_rules, parse_rules
from sealbox.errors import InvalidInput, MalformedInput

RULES = """\
# rules of the backup host
[[rule]]
name = "backup"
decision = "approve"
items = ["shop/prod/*"]

[[rule]]
name = "nightly"
decision = "approve"
itmes = ["shop/prod/db"]
cache_seconds = 60
"""
KEYS = (
    "actions, cache_seconds, canary, client_kinds, clients, decision, fields, hosts, hours, "
    "items, kind, name, "
    "purpose, rate, reason, weekdays"
)


def _error(text: str, source: str | None = "rules.toml") -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse_rules(text, source=source)
    assert isinstance(caught.value, MalformedInput)
    assert MalformedInput.hint not in caught.value.hint  # never "not a conforming peer"
    return caught.value


def test_an_unknown_key_is_named_with_its_file_line_and_the_allowed_keys(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    with pytest.raises(InvalidInput) as caught:
        load_rules(path)
    error = caught.value
    assert error.message == (
        f"{path}:10: rule 'nightly': unknown key 'itmes' (did you mean 'items'?)"
    )
    assert f"A rule's keys are {KEYS}." in error.hint


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('"itmes" = ["x"]', "rules.toml:4: rule 'a': unknown key 'itmes'"),
        ("'itmes' = ['x']", "rules.toml:4: rule 'a': unknown key 'itmes'"),
        ("colour.x = 1", "rules.toml:4: rule 'a': unknown key 'colour'"),
    ],
)
def test_quoted_and_dotted_keys_are_found(line: str, expected: str) -> None:
    error = _error(f'[[rule]]\nname = "a"\ndecision = "deny"\n{line}\n')
    assert error.message.startswith(expected)


def test_several_unknown_keys_are_all_named() -> None:
    error = _error('[[rule]]\nname = "a"\ndecision = "deny"\nzz = 1\nitem = "x"\n')
    assert error.message.startswith("rules.toml:5: rule 'a': unknown keys 'item', 'zz'")
    assert "did you mean 'items'?" in error.message


def test_a_bad_value_names_its_line() -> None:
    error = _error('[[rule]]\nname = "a"\ndecision = "approve"\n\nrate = "5 per hour"\n')
    assert error.message == "rules.toml:5: rule 'a': rate must look like \"10/hour\""
    error = _error('[[rule]]\nname = "a"\ndecision = "maybe"\n')
    assert error.message.startswith("rules.toml:3: rule 'a': decision")


def test_without_a_line_the_file_is_still_named() -> None:
    # An inline array of tables has no [[rule]] header to count.
    error = _error('rule = [{name = "a", decision = "deny", itmes = ["x"]}]\n')
    assert error.message.startswith("rules.toml: rule 'a': unknown key 'itmes'")
    assert _error('rule = [{name = "a", decision = "deny", zz = 1}]\n', source=None).message == (
        "rule 'a': unknown key 'zz'"
    )


def test_file_level_mistakes_name_their_line() -> None:
    assert _error('[[rule]]\nname = "a"\ndecision = "deny"\n\n[rules]\nx = 1\n').message == (
        "rules.toml:5: the rules file has unknown table(s): rules"
    )
    syntax = _error('[[rule]]\nname = "a\n')
    assert syntax.message.startswith("rules.toml: the rules file is not valid TOML")
    assert "line 2" in syntax.message
    twice = _error('[[rule]]\nname = "a"\ndecision = "deny"\n[[rule]]\nname = "a"\n'
                   'decision = "deny"\n')  # fmt: skip
    assert twice.message == "rules.toml:5: two rules have the same name 'a'"
    assert _error('[[rule]]\ndecision = "deny"\n').message == "rules.toml:1: rule 1: needs a name"


def test_serve_refuses_a_bad_rules_file_with_exit_2(tmp_path: Path) -> None:
    """Before it looks for a key file: the mistake is reported first, as a usage error."""
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALBOX_")}
    env["SEALBOX_CONFIG_DIR"] = str(tmp_path / "empty")
    done = subprocess.run(
        [sys.executable, "-m", "sealbox.cli.main", "approver", "serve", "--rules", str(path)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"{path}:10: rule 'nightly': unknown key 'itmes'" in done.stderr
    assert "A rule's keys are" in done.stderr
    assert "conforming" not in done.stderr
