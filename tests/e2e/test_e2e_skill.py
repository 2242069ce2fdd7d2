"""The examples SKILL.md teaches run as written, against a real relay with an automated approver,
and none of them puts a value where the agent reads it.

Every ``sh`` block of the bundled SKILL.md is run line by line through ``sh -c`` in a working
directory that holds what the examples name (``./migrate.sh``, ``./deploy.sh``, ``deploy.env``,
``token.txt``); the scripts print the values they were given, as a careless script would, so
the test sees that `sealbox run` masks them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from loop_support import APPROVE_ALL, Deployment, env_for

from sealbox.cli.skill import skill_text

USER = "shop-migrator-7e1f"
PASSWORD = "skill-example-db-password-5b2c"
TOKEN = "skill-example-api-token-93d0"

CONSENT_TO_DEPLOYS = """
[[rule]]
name = "deploys"
kind = "consent"
decision = "approve"
actions = ["deploy"]
clients = ["*"]
"""

SCRIPT = """#!/bin/sh
set -eu
echo "connecting as $DB_USER with $DB_PASSWORD"
"""
DEPLOY = """#!/bin/sh
set -eu
echo "deploying with $API_TOKEN"
"""


def _commands(text: str) -> list[str]:
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                out.append(line.strip())
    return out


def test_every_example_in_the_skill_runs_and_reveals_nothing(tmp_path: Path) -> None:
    d = Deployment(tmp_path)
    try:
        bot = d.serve(APPROVE_ALL + CONSENT_TO_DEPLOYS)
        stored = d.store("shop/prod/db", {"user": USER, "password": PASSWORD})
        assert stored.returncode == 0, stored.stderr

        work = tmp_path / "project"
        work.mkdir()
        for name, text in (("migrate.sh", SCRIPT), ("deploy.sh", DEPLOY)):
            (work / name).write_text(text)
            (work / name).chmod(0o755)
        (work / "deploy.env").write_text("API_TOKEN=sealbox://shop/prod/db/password\n")
        (work / "token.txt").write_text(TOKEN)
        (work / "plan.json").write_text('{"service": "api", "image": "api:2.4.1"}')

        env = env_for(d.client_config)
        # `sealbox` as the examples write it: the one installed beside this interpreter.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent),
                                       env.get("PATH", os.defpath)])  # fmt: skip
        commands = _commands(skill_text())
        assert len(commands) >= 5, commands
        seen = []
        for command in commands:
            done = subprocess.run(["sh", "-c", command], cwd=work, env=env, capture_output=True,
                                  text=True, timeout=120, check=False)  # fmt: skip
            assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
            seen.append(done.stdout + done.stderr)
        everything = "\n".join(seen)
        for value in (USER, PASSWORD, TOKEN):
            assert value not in everything
        assert "connecting as <concealed by sealbox> with <concealed by sealbox>" in everything
        assert "deploying with <concealed by sealbox>" in everything
        assert "shop/prod/db" in seen[0]  # `sealbox ls shop/`
        assert "fields: password, user" in seen[1]  # `sealbox history …`

        grant = json.loads((work / "grant.json").read_text())
        assert grant["format"] == "sealbox.consent-bundle.v1"

        # The stored token is there, as version 1 of a new item, for whoever is approved.
        assert "shop/prod/api" in d.cli("ls").stdout
        bot.stop()
    finally:
        d.close()
