"""The local cache agent with real processes: `sealbox up`, the automated approver, the CLI.

A cache hit of `sealbox read` imports neither the HTTP client nor the protocol;
a read that asked to be cached and was not says why (the policy, the
approver, or no agent); the process-tree scope serves the asking process
tree and no one else; logging out stops the profile's agent.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import SEALBOX
from loop_support import Deployment, ServeProcess, env_for, outputs

#: Reads of nocache/*/* are approved without caching; the others with 300 s.
RULES = """
[[rule]]
name = "stores"
kind = "store"
decision = "approve"

[[rule]]
name = "no caching"
decision = "approve"
items = ["nocache/*/*"]
cache_seconds = 0

[[rule]]
name = "reads"
decision = "approve"
cache_seconds = 300
"""
SECRET = "cached-Secret/value+1"
FORBIDDEN = ("httpx", "sealbox.protocol", "sealbox.crypto", "cryptography")


@pytest.fixture(scope="module")
def d(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    deployment = Deployment(tmp_path_factory.mktemp("cache"))
    try:
        yield deployment
    finally:
        deployment.close()


@pytest.fixture(scope="module")
def bot(d: Deployment) -> Iterator[ServeProcess]:
    serve = d.serve(RULES)
    yield serve
    serve.stop()


@pytest.fixture(scope="module")
def items(d: Deployment, bot: ServeProcess) -> list[str]:
    """shop/ and nocache/ allow 600 s of caching; plain/ has no policy (the default: none)."""
    for pattern in ("shop/*/*", "nocache/*/*"):
        done = d.approver_cli("approver", "policy", pattern, "--approvers", d.keys.record.id,
                              "--max-cache", "600")  # fmt: skip
        assert done.returncode == 0, outputs(done)
    paths = ["shop/prod/db", "nocache/prod/db", "plain/prod/db"]
    for path in paths:
        done = d.store(path, {"password": SECRET})
        assert done.returncode == 0, outputs(done)
    return paths


@pytest.fixture
def agent(d: Deployment) -> Iterator[None]:
    start = d.cli("cache", "start")
    assert start.returncode == 0, outputs(start)
    try:
        yield
    finally:
        d.cli("cache", "stop")
        d.cli("cache", "stop", "--profile", "other")


def _status(d: Deployment, *args: str) -> str:
    done = d.cli("cache", "status", *args)
    assert done.returncode == 0, outputs(done)
    return done.stdout


@pytest.mark.usefixtures("agent")
def test_a_hit_needs_no_approval_and_imports_no_http_client(
    d: Deployment, items: list[str], bot: ServeProcess
) -> None:
    ref = "sealbox://shop/prod/db/password"
    first = d.cli("read", "--cache", "600", ref)
    assert first.returncode == 0, outputs(first)
    assert first.stdout == SECRET + "\n"
    assert "nothing was cached" not in first.stderr
    assert "1 value(s)" in _status(d)
    decisions = len(bot.decisions())
    hit = subprocess.run(
        [sys.executable, "-X", "importtime", *SEALBOX[1:], "read", "--cache", "600", ref],
        capture_output=True, text=True, timeout=60, check=False, env=env_for(d.client_config),
    )  # fmt: skip
    assert hit.returncode == 0, hit.stderr[-3000:]
    assert hit.stdout == SECRET + "\n"
    imported = {line.rsplit("|", 1)[1].strip() for line in hit.stderr.splitlines()
                if line.startswith("import time:")}  # fmt: skip
    assert "sealbox.client.cache_socket" in imported
    assert not [m for m in imported if m.split(".")[0] in FORBIDDEN or m.startswith(FORBIDDEN)]
    assert "Waiting for approval" not in hit.stderr
    time.sleep(0.3)
    assert len(bot.decisions()) == decisions  # no request reached the approver


@pytest.mark.usefixtures("agent")
def test_a_policy_without_caching_is_named_with_what_to_set(
    d: Deployment, items: list[str]
) -> None:
    done = d.cli("read", "--cache", "300", "sealbox://plain/prod/db/password")
    assert done.returncode == 0, outputs(done)
    assert done.stdout == SECRET + "\n"
    assert done.stderr.count("nothing was cached") == 1
    assert "the policy for plain/prod/db allows no caching" in done.stderr
    assert "sealbox approver policy plain/prod/* --approvers … --max-cache SECONDS" in done.stderr
    assert "0 value(s)" in _status(d)
    # Not asked to cache: nothing to explain.
    quiet = d.cli("read", "sealbox://plain/prod/db/password")
    assert "nothing was cached" not in quiet.stderr


@pytest.mark.usefixtures("agent")
def test_an_approver_that_released_without_caching_is_named(
    d: Deployment, items: list[str]
) -> None:
    done = d.cli("read", "--cache", "300", "sealbox://nocache/prod/db/password")
    assert done.returncode == 0, outputs(done)
    assert done.stdout == SECRET + "\n"
    assert done.stderr.count("nothing was cached") == 1
    assert "the approver released the values without caching" in done.stderr
    assert "rule's cache_seconds" in done.stderr
    assert "0 value(s)" in _status(d)


def test_a_read_asking_to_cache_without_an_agent_says_how_to_start_one(
    d: Deployment, items: list[str]
) -> None:
    d.cli("cache", "stop")
    done = d.cli("read", "--cache", "300", "sealbox://shop/prod/db/password")
    assert done.returncode == 0, outputs(done)
    assert "no cache agent runs for profile 'default'" in done.stderr
    assert "`sealbox cache start`" in done.stderr
    assert SECRET not in done.stderr


#: Puts a value in the agent with the process-tree scope, as the SDK's put does for a
#: release whose statement asked for that scope (no client API asks for it yet).
PUT = """
import sys, time
from sealbox.client import cache
from sealbox.client._flows import Read
read = Read(values={}, versions={}, items={}, request="req-tree", cache_scope="process-tree",
            cache_until=int(time.time()) + 300)
with cache.connect("default") as agent:
    agent.put(read, {sys.argv[1]: sys.argv[2].encode()})
"""


@pytest.mark.usefixtures("agent")
def test_the_process_tree_scope_serves_the_tree_that_read_and_no_one_else(
    d: Deployment, items: list[str]
) -> None:
    ref = "sealbox://tree/prod/db/password"  # no such item on the relay: only the agent has it
    env = env_for(d.client_config, PY=sys.executable, PUT=PUT, REF=ref, VALUE="tree-value")
    # sh is the tree's root: the parent of the process that put the value.  Its other
    # children, and theirs, are the tree; the pipe makes the read a process of its own.
    tree = subprocess.run(
        ["sh", "-c", '"$PY" -c "$PUT" "$REF" "$VALUE" && '
                     '"$PY" -m sealbox.cli.main read "$REF" | cat && '
                     'sh -c \'"$PY" -m sealbox.cli.main read -n "$REF"\''],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    assert tree.returncode == 0, outputs(tree)
    assert tree.stdout == "tree-value\ntree-value"
    assert "Waiting for approval" not in tree.stderr
    status = _status(d)
    assert f"{ref}  until" in status
    assert "(process-tree, request req-tree" in status
    # A process outside that tree (this test's child) is not served: its read
    # goes to the relay, which has no such item.
    outside = d.cli("read", ref)
    assert outside.returncode == 1, outputs(outside)
    assert "tree-value" not in outputs(outside)
    assert "there is no item at tree/prod/db" in outside.stderr


def test_logging_out_stops_the_profiles_agent(d: Deployment, items: list[str]) -> None:
    d.login(d.client_config, profile="other")
    start = d.cli("cache", "start", "--profile", "other")
    assert start.returncode == 0, outputs(start)
    socket_file = d.client_config / "run" / "cache-other.sock"
    try:
        ref = "sealbox://shop/prod/db/password"
        first = d.cli("read", "--cache", "300", "--profile", "other", ref)
        assert first.stdout == SECRET + "\n"
        assert "1 value(s)" in _status(d, "--profile", "other")
        out = d.cli("logout", "--profile", "other")
        assert out.returncode == 0, outputs(out)
        after = d.cli("read", "--cache", "300", "--profile", "other", ref)
        assert after.returncode == 6, outputs(after)  # not logged in: nothing from the cache
        assert SECRET not in after.stdout
        deadline = time.monotonic() + 10
        while socket_file.exists():
            assert time.monotonic() < deadline, "the agent of a logged-out profile still runs"
            time.sleep(0.1)
    finally:
        d.cli("cache", "stop", "--profile", "other")
    assert not Path(socket_file).exists()
    assert os.environ.get("SEALBOX_PROFILE") is None
