"""``sealbox read`` answered by the cache agent before the rest of sealbox is imported.

A real agent holds the value; the command lines the fast path recognises
print it, every other one is left to the full CLI (``answer`` returns
``None``), so that argparse gives the same result or the same error as ever.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

import pytest
from cache_support import REF, VALUE, Agent, released
from hypothesis import given
from hypothesis import strategies as st

import sealbox
from sealbox.cli import fastpath, items, main
from sealbox.client import cache
from sealbox.client import profile as profiles
from sealbox.errors import MalformedInput

#: What a cache hit must not import: the HTTP client and the protocol stack, and
#: what costs a hit more than the rest of it (argparse, socket.py, json, re, typing).
NOT_ON_A_HIT = ("httpx", "sealbox.protocol", "sealbox.crypto", "cryptography",
                "sealbox.client.sdk", "argparse", "socket", "json", "re", "typing")  # fmt: skip


@pytest.fixture
def holding(cache_agent: Agent) -> Agent:
    with cache.connect("default") as conn:  # type: ignore[union-attr]
        conn.put(released(), {REF: VALUE})
    return cache_agent


def _imported_by(*argv: str) -> tuple[subprocess.CompletedProcess[bytes], set[str]]:
    probe = ("import sys\nfrom sealbox.cli.main import main\ncode = main(sys.argv[1:])\n"
             "sys.stdout.flush()\nprint('\\n'.join(sys.modules), file=sys.stderr)\n"
             "sys.exit(code)\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, timeout=60,
                          check=False)  # fmt: skip
    return done, set(done.stderr.decode().split())


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in NOT_ON_A_HIT))


@pytest.mark.usefixtures("holding")
def test_a_cache_hit_imports_neither_http_nor_protocol() -> None:
    done, modules = _imported_by("read", REF)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == VALUE + b"\n"
    assert _heavy(modules) == []
    # A miss takes the full path, which imports them all and answers as ever.
    missed, modules = _imported_by("read", "sealbox://shop/prod/db/user")
    assert missed.returncode == 1  # the profile's relay is not there
    assert b"could not reach the relay" in missed.stderr
    assert "httpx" in modules
    assert "argparse" in modules


def test_version_imports_nothing_it_does_not_print() -> None:
    done, modules = _imported_by("--version")
    assert done.returncode == 0
    assert done.stdout.decode() == f"sealbox {sealbox.__version__}\n"
    assert _heavy(modules) == []


def test_the_version_is_the_installed_distributions() -> None:
    assert sealbox.__version__ == importlib.metadata.version("sealbox")


@pytest.mark.usefixtures("holding")
@pytest.mark.parametrize(
    ("argv", "printed"),
    [
        (["read", REF], VALUE + b"\n"),
        (["read", "-n", REF], VALUE),
        (["read", REF, "--no-newline"], VALUE),
        (["read", REF, "--cache", "600"], VALUE + b"\n"),
        (["read", "--cache=0", "--purpose", "nightly job", REF], VALUE + b"\n"),
        (["read", "--profile", "default", "--purpose=x", REF], VALUE + b"\n"),
        (["read", "--profile", "other", "--profile", "default", REF], VALUE + b"\n"),
    ],
)
def test_recognised_read_is_answered_by_the_agent(
    argv: list[str], printed: bytes, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert fastpath.answer(argv) == 0
    assert capsysbinary.readouterr().out == printed


@pytest.mark.usefixtures("holding")
@pytest.mark.parametrize(
    "argv",
    [
        ["read"],
        ["read", REF, REF],  # argparse: unrecognized arguments
        ["read", "--prof", "default", REF],  # an abbreviation: argparse's to expand
        ["read", REF, "--help"],
        ["read", "-nh", REF],
        ["read", "--", REF],
        ["read", "--purpose", "-x", REF],  # argparse: expected one argument
        ["read", REF, "--cache"],
        ["read", "--cache", "soon", REF],  # argparse: invalid int value
        ["read", "--cache", "2592001", REF],  # items.py: --cache must be 0..2592000
        ["read", "--cache", "-1", REF],
        ["read", "--profile", "bad name", REF],  # profile_name refuses it
        ["read", "--no-such-option", REF],
        ["read", "sealbox://shop/prod/db/user"],  # a miss
        ["get", REF],
        ["--version", "read", REF],
    ],
)
def test_anything_else_is_left_to_the_full_cli(argv: list[str]) -> None:
    assert fastpath.answer(argv) is None


@pytest.mark.usefixtures("holding")
def test_environment_settings_count_as_on_the_full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEALBOX_CACHE_SECONDS", "a while")  # the full path refuses it
    assert fastpath.answer(["read", REF]) is None
    monkeypatch.setenv("SEALBOX_CACHE_SECONDS", "300")
    monkeypatch.setenv("SEALBOX_PROFILE", "other")  # an agent of no profile of that name
    assert fastpath.answer(["read", REF]) is None
    monkeypatch.setenv("SEALBOX_PROFILE", "default")
    assert fastpath.answer(["read", REF]) == 0


_NAME_CHARS = st.sampled_from("aZ09._-/ é\x00\n*")


@given(st.text(_NAME_CHARS, min_size=1, max_size=70))
def test_profile_names_are_judged_as_profile_name_judges_them(name: str) -> None:
    try:
        profiles.profile_name(name)
    except MalformedInput:
        accepted = False
    else:
        accepted = True
    assert fastpath._profile_ok(name) == accepted


def test_the_lean_parser_knows_the_item_commands_and_parses_as_the_whole_one() -> None:
    assert main.ITEM_COMMANDS == items.COMMANDS
    argv = ["read", "-n", "--cache", "60", "--profile", "work", REF]
    assert vars(main.build_parser("read").parse_args(argv)) == vars(
        main.build_parser().parse_args(argv)
    )
