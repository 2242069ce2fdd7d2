"""``sealbox skill``: the skill bundle that teaches a coding agent to use sealbox.

The bundle is one ``SKILL.md`` in the Agent Skills format (a folder named after
the skill, YAML front matter with ``name`` and ``description``), shipped inside
the package so that what an agent reads matches the ``sealbox`` it runs.  Its
``skill-version`` changes whenever its advice does.

``install`` writes ``DIR/sealbox/SKILL.md`` (DIR: ``.agents/skills``, the
cross-agent location, unless ``--dir`` names another, such as
``.claude/skills`` or ``~/.claude/skills``).  Beside it, ``.installed`` keeps
the hash of what was written, so that a later ``install`` updates a copy
nobody changed; a SKILL.md someone edited (or wrote) is replaced only with
``--force``: it may be kept on purpose.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import os
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from sealbox.cli import exits

__all__ = ["SKILL_NAME", "add_parsers", "run", "skill_text"]

SKILL_NAME = "sealbox"
DEFAULT_DIR = Path(".agents") / "skills"


def skill_text() -> str:
    """The bundled SKILL.md."""
    return resources.files("sealbox.skills").joinpath(SKILL_NAME, "SKILL.md").read_text()


def add_parsers(sub: Any) -> None:
    skill = sub.add_parser("skill", help="the skill bundle that teaches a coding agent to use "
                           "sealbox (SKILL.md)")  # fmt: skip
    ssub = skill.add_subparsers(dest="skill_command", metavar="ACTION", required=True)
    install = ssub.add_parser("install", help="write SKILL.md where coding agents find it")
    install.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, metavar="DIR",
        help=f"the skills directory; the skill goes in DIR/{SKILL_NAME}/SKILL.md "
        f"(default: {DEFAULT_DIR}, read by agents that follow the Agent Skills layout; "
        "Claude Code reads .claude/skills or ~/.claude/skills)",
    )  # fmt: skip
    install.add_argument("--force", action="store_true",
                         help="replace a SKILL.md there whose content differs")  # fmt: skip
    ssub.add_parser("show", help="print the bundled SKILL.md")


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _install(args: argparse.Namespace) -> int:
    text = skill_text()
    folder = args.dir.expanduser() / SKILL_NAME
    target, record = folder / "SKILL.md", folder / ".installed"
    for path in (target, record):
        if path.is_symlink() or (path.exists() and not path.is_file()):
            raise exits.Failed(f"{path} is not a regular file; not touching it")
    verb = "wrote"
    if target.exists():
        there = target.read_bytes()
        if there == text.encode():
            print(f"{target} is up to date")
            return exits.OK
        written = record.read_text().strip() if record.is_file() else ""
        if not (args.force or hmac.compare_digest(written, _hash(there))):
            raise exits.Failed(
                f"{target} was changed since sealbox wrote it (or sealbox did not write it); "
                "--force replaces it"
            )
        verb = "updated"
    folder.mkdir(parents=True, exist_ok=True)
    # Both files are written to fresh temporary names and renamed into place, so a symlink
    # planted in a checkout (at SKILL.md, .installed or a temporary name) is replaced, never
    # followed to a file elsewhere.
    _replace(folder, target, text)
    _replace(folder, record, _hash(text.encode()) + "\n")
    print(f"{verb} {target}")
    return exits.OK


def _replace(folder: Path, target: Path, text: str) -> None:
    handle, name = tempfile.mkstemp(dir=folder, prefix=".sealbox-skill-")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.chmod(name, 0o644)
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(name)
        raise


def run(args: argparse.Namespace) -> int:
    if args.skill_command == "show":
        sys.stdout.write(skill_text())
        return exits.OK
    return exits.guarded(lambda: _install(args), "skill install")
