"""`sealbox ci`: the workflow snippets are YAML that says exactly what was asked, and an
enrollment's limits are checked on the approver's device before anything is signed."""

from __future__ import annotations

import shlex

import pytest
import yaml

from sealbox.approver.enrollments import _constraints
from sealbox.cli import exits
from sealbox.cli.ci import PROVIDERS, snippet
from sealbox.errors import InvalidInput

COMMANDS = [
    "./deploy.sh",
    "sh -c 'echo a: b # not a comment'",
    "make deploy ENV=prod",
    "- leading dash",
    "echo \"it's\" 'quoted'",
    "python -c 'print({\"k\": [1, 2]})'",
    "echo '%s' @here `date` *glob* &amp !tag |pipe >out",
]


def _script(provider: str, text: str) -> list[str]:
    document = yaml.safe_load(text)
    if provider == "github":
        [job] = document["jobs"].values()
        return [step["run"].rstrip("\n") for step in job["steps"] if "run" in step]
    if provider == "gitlab":
        return list(document["deploy"]["script"])
    return list(document["pipelines"]["default"][0]["step"]["script"])


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("command", COMMANDS)
def test_each_snippet_parses_to_the_command_asked_for(provider: str, command: str) -> None:
    env = ["DB_PASSWORD=sealbox://shop/ci/db/password", "API=sealbox://shop/ci/api"]
    steps = _script(provider, snippet(provider, env, command))
    run = steps[-1]
    assert run == f"sealbox run --env {env[0]} --env {env[1]} -- {command}"
    assert shlex.split(run)[:6] == ["sealbox", "run", "--env", env[0], "--env", env[1]]
    assert any(step.startswith("sealbox ci login") for step in steps)
    assert steps[0] == "pip install sealbox"


def test_a_snippet_refuses_what_is_not_a_reference() -> None:
    with pytest.raises(exits.UsageError):
        snippet("github", ["DB_PASSWORD=shop/ci/db"])
    with pytest.raises(exits.UsageError):
        snippet("gitlab", ["1X=sealbox://shop/ci/db"])
    with pytest.raises(exits.UsageError):
        snippet("travis")


def test_the_token_is_never_in_a_snippet() -> None:
    for provider in PROVIDERS:
        assert "sbx_enr_" not in snippet(provider)


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({"items": ["blog/ci/*"]}, "outside the projects"),
        ({"items": ["shop/ci"]}, "three segments"),
        ({"projects": [], "items": []}, "name the projects or items"),
        ({"max_uses": 0}, "at least 1"),
        ({"cidrs": ["10.1.2.3/16"]}, "not a network"),
        ({"cidrs": ["example.com"]}, "not a network"),
        ({"hostname": "runner *"}, "host-name pattern"),
        ({"projects": ["../x"]}, "--project"),
    ],
)
def test_enrollment_limits_are_checked_before_signing(kw: dict[str, object], problem: str) -> None:
    args: dict[str, object] = {"projects": ["shop"], "items": ["shop/ci/*"], "max_uses": 5,
                               "not_after": 10**9, "cidrs": [], "hostname": None}  # fmt: skip
    args.update(kw)
    with pytest.raises(InvalidInput) as caught:
        _constraints(**args)  # type: ignore[arg-type]
    assert problem in caught.value.message


def test_enrollment_limits_are_kept_as_a_verifier_reads_them() -> None:
    limits = _constraints(projects=["shop", "shop"], items=["shop/ci/b", "shop/ci/a"],
                          max_uses=3, not_after=10**9, cidrs=["10.0.0.0/8", "10.0.0.0/8"],
                          hostname="runner-*")  # fmt: skip
    assert limits.projects == ("shop",)
    assert limits.items == ("shop/ci/a", "shop/ci/b")
    assert limits.cidrs == ("10.0.0.0/8",)
