"""Every command, subcommand and argument of ``sealbox`` says what it is for in ``--help``."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from sealbox.cli.main import build_parser


def _walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.Action, str | None]]:
    """(command path, action, the help text or ``None`` for every option, positional and
    subcommand reachable from ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, child in action.choices.items():
                yield (*path, name), action, helps.get(name)
                yield from _walk(child, (*path, name))
        else:
            yield path, action, action.help


def _name(action: argparse.Action) -> str:
    return "/".join(action.option_strings) or str(action.metavar or action.dest)


def test_every_argument_and_subcommand_has_help() -> None:
    missing = [
        " ".join(["sealbox", *path])
        + ("" if isinstance(action, argparse._SubParsersAction) else f" {_name(action)}")
        for path, action, text in _walk(build_parser())
        if not text or not text.strip() or text == argparse.SUPPRESS
    ]
    assert not missing, "no help text: " + ", ".join(missing)


def test_the_walk_sees_the_whole_tree() -> None:
    """The walk reaches nested actions, so an empty list of gaps means something."""
    seen = {(" ".join(path), _name(action)) for path, action, _ in _walk(build_parser())}
    assert ("read", "reference") in seen
    assert ("approver add", "--kind") in seen
    assert ("cache start", "--profile") in seen
    assert ("db migrate", "--db") in seen
