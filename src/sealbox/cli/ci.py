"""``sealbox ci``: enrollments for CI runs, the runner's login, and ready workflows.

* ``sealbox ci enrollment create|list|revoke`` run on an approver device
  (:mod:`sealbox.approver.enrollments`);
* ``sealbox ci login`` runs on the CI runner, with the token from
  ``SEALBOX_ENROLLMENT_TOKEN`` (never from the command line, where process
  listings and shell histories would show it) (:mod:`sealbox.client.enrollment`);
* ``sealbox ci snippet github|gitlab|bitbucket`` prints a workflow that does both.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import Any

from sealbox.cli import exits

__all__ = ["PROVIDERS", "add_parsers", "run", "snippet"]

PROVIDERS = ("github", "gitlab", "bitbucket")
_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str, what: str) -> int:
    found = _DURATION.fullmatch(text.strip())
    if not found:
        raise exits.UsageError(f"{what} takes a duration like 90m, 12h or 30d")
    return int(found.group(1)) * _UNITS[found.group(2)]


def add_parsers(sub: Any) -> None:
    from sealbox.cli.approvers import _key_options

    ci = sub.add_parser("ci", help="CI runs as short-lived machines: enrollments, login, "
                        "workflow snippets")  # fmt: skip
    csub = ci.add_subparsers(dest="ci_command", metavar="ACTION", required=True)

    enrollment = csub.add_parser("enrollment", help="enrollments (on an approver device)")
    esub = enrollment.add_subparsers(dest="enrollment_command", metavar="ACTION", required=True)
    create = esub.add_parser(
        "create", help="make an enrollment and print its token for the CI secret store"
    )
    create.add_argument("--project", action="append", default=[], metavar="PROJECT",
                        help="a project the machines may ask in (repeatable)")  # fmt: skip
    create.add_argument("--items", action="append", default=[], metavar="PATTERN",
                        help="item paths the machines may ask for, e.g. 'shop/ci/*' "
                        "(repeatable)")  # fmt: skip
    create.add_argument("--max-uses", type=int, default=50,
                        help="how many machines (CI runs) it may enrol (default 50)")  # fmt: skip
    create.add_argument("--expires", default="30d",
                        help="how long it lasts, e.g. 12h or 90d (default 30d)")  # fmt: skip
    create.add_argument(
        "--cidr",
        action="append",
        default=[],
        metavar="NETWORK",
        help="source network the runners call from (repeatable; default: any)",
    )
    create.add_argument(
        "--hostname",
        metavar="PATTERN",
        help="host-name pattern the runners must have, e.g. 'runner-*'",
    )
    create.add_argument("--json", action="store_true", help="print JSON (token included)")
    _key_options(create)
    lst = esub.add_parser("list", help="the vault's enrollments, with their uses")
    lst.add_argument("--json", action="store_true", help="print JSON")
    _key_options(lst)
    revoke = esub.add_parser("revoke", help="revoke an enrollment: its machines stop at once")
    revoke.add_argument("enrollment", metavar="ENR_ID",
                        help="the enrollment (see `sealbox ci enrollment list`)")  # fmt: skip
    _key_options(revoke)

    login = csub.add_parser(
        "login",
        help="on a CI runner: enrol this run with the token in SEALBOX_ENROLLMENT_TOKEN",
        description="Makes a fresh machine key, certifies it with the enrollment token's "
        "delegation key and registers it; prints `export SEALBOX_IDENTITY=…` (or appends it "
        "to $GITHUB_ENV). The token is read from SEALBOX_ENROLLMENT_TOKEN only.",
    )
    login.add_argument("--ttl", default="1h",
                       help="how long this machine may read (default 1h; at most 24h, and "
                       "never past the enrollment)")  # fmt: skip
    login.add_argument(
        "--out",
        help="where to write the identity (a directory; default: "
        "$RUNNER_TEMP/sealbox-identity, else a new temporary directory)",
    )
    login.add_argument("--name", help="this machine's name, shown to approvers "
                       "(default: from the CI provider's run, else the host name)")  # fmt: skip

    snip = csub.add_parser("snippet", help="print a ready CI workflow using sealbox")
    snip.add_argument("provider", choices=PROVIDERS, help="the CI provider")
    snip.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=sealbox://…",
        help="a secret for the command (repeatable; default: an example)",
    )
    snip.add_argument(
        "--command",
        dest="workload",
        default="./deploy.sh",
        help="the command that needs the secrets (default ./deploy.sh)",
    )


# --- on an approver device -----------------------------------------------------------------------


def _create(args: argparse.Namespace) -> int:
    from sealbox.approver import enrollments
    from sealbox.cli.approvers import _session

    seconds = _duration(args.expires, "--expires")
    session = _session(args)
    try:
        created = enrollments.create_enrollment(
            session, projects=args.project, items=args.items, max_uses=args.max_uses,
            seconds=seconds, cidrs=args.cidr, hostname=args.hostname,
        )  # fmt: skip
    finally:
        session.close()
    limits = created.constraints
    if args.json:
        print(json.dumps({
            "id": created.id, "token": created.token, "projects": list(limits.projects),
            "items": list(limits.items), "max_uses": limits.max_uses,
            "not_after": limits.not_after, "cidrs": list(limits.cidrs),
            "hostname": limits.hostname, "key_fingerprint": created.key_fingerprint,
        }))  # fmt: skip
        return exits.OK
    print(f"Enrollment {created.id}: up to {limits.max_uses} machines, "
          f"until {_when(limits.not_after)}.", file=sys.stderr)  # fmt: skip
    print(f"  projects {', '.join(limits.projects) or '(any)'}; items "
          f"{', '.join(limits.items) or '(any in those projects)'}", file=sys.stderr)  # fmt: skip
    if limits.cidrs or limits.hostname:
        print(f"  networks {', '.join(limits.cidrs) or '(any)'}; host names "
              f"{limits.hostname or '(any)'}", file=sys.stderr)  # fmt: skip
    print("Put this token in the CI provider's secret store as SEALBOX_ENROLLMENT_TOKEN.\n"
          "It is shown once; whoever holds it can enrol machines within these limits, whose\n"
          "reads still need an approver or a rule.", file=sys.stderr)  # fmt: skip
    print(created.token)
    return exits.OK


def _when(at: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _list(args: argparse.Namespace) -> int:
    from sealbox.approver import enrollments
    from sealbox.cli.approvers import _session

    session = _session(args)
    try:
        found = enrollments.list_enrollments(session)
    finally:
        session.close()
    if args.json:
        print(json.dumps({"enrollments": found}))
        return exits.OK
    if not found:
        print("No enrollments.")
    for entry in found:
        state = "revoked" if entry.get("revoked_at") else "active"
        if not entry.get("verified"):
            print(f"{entry.get('id')}  {state}  machines {entry.get('machines')}  "
                  "(does not verify now: expired, or its approver was removed)")  # fmt: skip
            continue
        print(f"{entry['id']}  {state}  uses {entry.get('uses')}/{entry['max_uses']}  "
              f"machines {entry.get('machines')}  until {_when(entry['not_after'])}")  # fmt: skip
        print(
            f"    by {entry['issuer']}; projects {', '.join(entry['projects']) or '-'}; "
            f"items {', '.join(entry['items']) or '-'}; networks "
            f"{', '.join(entry['cidrs']) or 'any'}; host names {entry['hostname'] or 'any'}"
        )
    return exits.OK


def _revoke(args: argparse.Namespace) -> int:
    from sealbox.approver import enrollments
    from sealbox.cli.approvers import _session

    session = _session(args)
    try:
        done = enrollments.revoke_enrollment(session, args.enrollment)
    finally:
        session.close()
    disabled = done.get("machines_disabled", 0)
    what = "Revoked" if done.get("revoked") else "Already revoked"
    print(f"{what}: {args.enrollment}; {disabled} machine(s) disabled.")
    return exits.OK


# --- on the runner ----------------------------------------------------------------------------


def _run_name() -> str | None:
    """A name that tells an approver which CI run asks."""
    env = os.environ
    if env.get("GITHUB_REPOSITORY") and env.get("GITHUB_RUN_ID"):
        return f"github {env['GITHUB_REPOSITORY']} run {env['GITHUB_RUN_ID']}"
    if env.get("CI_PROJECT_PATH") and env.get("CI_JOB_ID"):
        return f"gitlab {env['CI_PROJECT_PATH']} job {env['CI_JOB_ID']}"
    if env.get("BITBUCKET_REPO_FULL_NAME") and env.get("BITBUCKET_BUILD_NUMBER"):
        return f"bitbucket {env['BITBUCKET_REPO_FULL_NAME']} build {env['BITBUCKET_BUILD_NUMBER']}"
    return None


def _out_dir(args: argparse.Namespace) -> Path:
    import tempfile

    if args.out:
        return Path(args.out)
    runner_temp = os.environ.get("RUNNER_TEMP")
    if runner_temp:
        return Path(runner_temp) / "sealbox-identity"
    return Path(tempfile.mkdtemp(prefix="sealbox-ci-")) / "identity"


def _login(args: argparse.Namespace) -> int:
    import socket

    from sealbox._relay.drive import http_client
    from sealbox.client import identity
    from sealbox.client.enrollment import TOKEN_ENV, enrol
    from sealbox.protocol.enrollment_token import parse_token

    ttl = _duration(args.ttl, "--ttl")
    text = os.environ.get(TOKEN_ENV)
    if not text:
        raise exits.UsageError(f"set {TOKEN_ENV} to the enrollment token (from the CI "
                               "provider's secret store; never on the command line)")  # fmt: skip
    token = parse_token(text)
    host = socket.gethostname()
    with http_client(token.server) as http:
        try:
            enrolled = enrol(token, http=http, ttl=ttl, name=args.name or _run_name(),
                             hostname=host)  # fmt: skip
        except ValueError as exc:
            raise exits.UsageError(str(exc)) from None
    out = _out_dir(args)
    identity.save_dir(out, identity.Identity(
        server=enrolled.server, vault=enrolled.vault, fingerprint=enrolled.fingerprint,
        head=enrolled.head, client_id=enrolled.client_id, client_name=enrolled.client_name,
        kind="machine", key=enrolled.key, certificate=enrolled.certificate,
        enrollment=enrolled.enrollment,
    ))  # fmt: skip
    print(f"Enrolled {enrolled.client_id} ({enrolled.client_name}) under {enrolled.enrollment_id}"
          f" until {_when(enrolled.not_after)}; may ask for "
          f"{', '.join(enrolled.grants) or 'what approvers grant'}.", file=sys.stderr)  # fmt: skip
    github_env = os.environ.get("GITHUB_ENV")
    if github_env:
        with open(github_env, "a", encoding="utf-8") as f:
            f.write(f"{identity.IDENTITY_ENV}={out}\n")
        print(f"{identity.IDENTITY_ENV} is set for the next steps of this job.", file=sys.stderr)
    print(f"export {identity.IDENTITY_ENV}={shlex.quote(str(out))}")
    return exits.OK


# --- snippets ---------------------------------------------------------------------------------

_EXAMPLE_ENV = ["DB_PASSWORD=sealbox://shop/ci/db/password"]
INSTALL = "pip install sealbox"
#: A YAML plain scalar we can write unquoted: no indicator first, no ": " or " #" inside.
_PLAIN = re.compile(r"[A-Za-z0-9./$(][^\n]*")


def _scalar(text: str) -> str:
    """``text`` as a YAML scalar that parses back to exactly ``text``."""
    if _PLAIN.fullmatch(text) and ": " not in text and " #" not in text and text == text.strip():
        return text
    return "'" + text.replace("'", "''") + "'"


def _run_line(env: list[str], command: str) -> str:
    for entry in env:
        name, sep, ref = entry.partition("=")
        if (
            not sep
            or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)
            or not ref.startswith("sealbox://")
        ):
            raise exits.UsageError(f"--env {entry!r}: expected NAME=sealbox://project/env/item")
    envs = " ".join(f"--env {shlex.quote(entry)}" for entry in env)
    return f"sealbox run {envs} -- {command}"


def snippet(provider: str, env: list[str] | None = None, command: str = "./deploy.sh") -> str:
    """A ready workflow for ``provider``: install sealbox, ``sealbox ci login``, ``sealbox run``."""
    run_line = _run_line(env or _EXAMPLE_ENV, command)
    if provider == "github":
        return "\n".join([
            "# .github/workflows/deploy.yml",
            "# Secret: SEALBOX_ENROLLMENT_TOKEN (from `sealbox ci enrollment create`).",
            "name: deploy",
            "on:",
            "  push:",
            "    branches: [main]",
            "jobs:",
            "  deploy:",
            "    runs-on: ubuntu-latest",
            "    steps:",
            "      - uses: actions/checkout@v4",
            "      - name: Install sealbox",
            f"        run: {INSTALL}",
            "      - name: Enrol this run",
            "        run: sealbox ci login",
            "        env:",
            "          SEALBOX_ENROLLMENT_TOKEN: ${{ secrets.SEALBOX_ENROLLMENT_TOKEN }}",
            "      - name: Deploy",
            "        run: |",
            f"          {run_line}",
            "",
        ])  # fmt: skip
    # Two steps, not `eval "$(sealbox ci login)"`: a shell ignores the status of a command
    # substitution inside eval, so a refused login would go on to run the command.
    script = [INSTALL, "sealbox ci login > sealbox-identity.env", ". ./sealbox-identity.env",
              run_line]  # fmt: skip
    if provider == "gitlab":
        return "\n".join([
            "# .gitlab-ci.yml",
            "# CI/CD variable: SEALBOX_ENROLLMENT_TOKEN (masked, protected), from",
            "# `sealbox ci enrollment create`.",
            "deploy:",
            "  image: python:3.12-slim",
            "  script:",
            *(f"    - {_scalar(line)}" for line in script),
            "",
        ])  # fmt: skip
    if provider == "bitbucket":
        return "\n".join([
            "# bitbucket-pipelines.yml",
            "# Repository variable: SEALBOX_ENROLLMENT_TOKEN (secured), from",
            "# `sealbox ci enrollment create`.",
            "image: python:3.12-slim",
            "pipelines:",
            "  default:",
            "    - step:",
            "        name: Deploy",
            "        script:",
            *(f"          - {_scalar(line)}" for line in script),
            "",
        ])  # fmt: skip
    raise exits.UsageError(f"unknown CI provider {provider!r}: one of {', '.join(PROVIDERS)}")


def _snippet(args: argparse.Namespace) -> int:
    print(snippet(args.provider, args.env, args.workload), end="")
    return exits.OK


def run(args: argparse.Namespace) -> int:
    if args.ci_command == "enrollment":
        action = {"create": _create, "list": _list, "revoke": _revoke}[args.enrollment_command]
        return exits.guarded(lambda: action(args), f"ci enrollment {args.enrollment_command}")
    actions = {"login": _login, "snippet": _snippet}
    return exits.guarded(lambda: actions[args.ci_command](args), f"ci {args.ci_command}")
