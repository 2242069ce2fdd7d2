"""`sealbox skill`: the bundled SKILL.md is a valid Agent Skill whose exit codes are the CLI's,
and `install` writes it, updates a copy nobody changed and never clobbers an edited one."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import yaml

from sealbox.cli import exits, skill

SEALBOX = [sys.executable, "-m", "sealbox.cli.main"]


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SEALBOX, "skill", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def _front_matter(text: str) -> dict[str, object]:
    found = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert found, "SKILL.md starts with YAML front matter"
    loaded = yaml.safe_load(found.group(1))
    assert isinstance(loaded, dict)
    return loaded


def test_the_bundle_is_a_valid_agent_skill() -> None:
    meta = _front_matter(skill.skill_text())
    # The Agent Skills format: name = the folder's name, lower case and hyphens, ≤ 64;
    # a description of at most 1024 characters that says when to use it.
    assert meta["name"] == skill.SKILL_NAME
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", skill.SKILL_NAME)
    assert isinstance(meta["description"], str)
    assert 0 < len(meta["description"]) <= 1024
    assert isinstance(meta["metadata"], dict)
    assert int(meta["metadata"]["skill-version"]) >= 1


def _table(text: str) -> dict[int, str]:
    rows = re.findall(r"^\| (\d+) \| ([^|]+?) \|", text, re.M)
    return {int(code): meaning.replace("``", "`") for code, meaning in rows}


def test_the_exit_codes_it_teaches_are_the_cli_s() -> None:
    documented = _table(exits.__doc__ or "")
    taught = _table(skill.skill_text())
    assert documented
    assert taught == documented
    for code in (exits.OK, exits.FAILED, exits.USAGE, exits.DENIED, exits.NOT_ANSWERED,
                 exits.VERIFICATION, exits.NOT_LOGGED_IN, exits.INTERRUPTED):  # fmt: skip
        assert code in taught


def test_it_teaches_what_the_issue_asks_never_to_print_a_value() -> None:
    text = skill.skill_text()
    for must in ("Never put a value in your transcript", "--purpose", "sealbox run",
                 "run_with_secrets", "request_consent"):  # fmt: skip
        assert must in text
    # No example prints a value: the commands that do are named only as what not to do.
    examples = "\n".join(re.findall(r"```sh\n(.*?)```", text, re.S))
    assert not re.search(r"sealbox (read|get)\b", examples)


def test_install_writes_updates_and_keeps_an_edited_copy(tmp_path: Path) -> None:
    target = tmp_path / ".agents" / "skills" / "sealbox" / "SKILL.md"
    done = _cli(tmp_path, "install")
    assert done.returncode == 0, done.stderr
    assert target.read_text() == skill.skill_text()
    assert "up to date" in _cli(tmp_path, "install").stdout

    # An older copy sealbox wrote and nobody changed is updated.
    older = skill.skill_text().replace('skill-version: "', 'skill-version: "0')
    target.write_text(older)
    (target.parent / ".installed").write_text(hashlib.sha256(older.encode()).hexdigest() + "\n")
    done = _cli(tmp_path, "install")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("updated")
    assert target.read_text() == skill.skill_text()

    # An edited copy is kept: exit 1, a clear reason, the file untouched.
    edited = skill.skill_text() + "\nOur team's own note.\n"
    target.write_text(edited)
    done = _cli(tmp_path, "install")
    assert done.returncode == exits.FAILED
    assert "was changed since sealbox wrote it" in done.stderr
    assert "--force" in done.stderr
    assert target.read_text() == edited
    done = _cli(tmp_path, "install", "--force")
    assert done.returncode == 0
    assert target.read_text() == skill.skill_text()


def test_install_into_another_directory_and_show(tmp_path: Path) -> None:
    done = _cli(tmp_path, "install", "--dir", str(tmp_path / "claude" / "skills"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "claude" / "skills" / "sealbox" / "SKILL.md").read_text() == (
        skill.skill_text()
    )
    assert _cli(tmp_path, "show").stdout == skill.skill_text()


def test_install_refuses_a_symlink_and_changes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / ".agents" / "skills" / "sealbox"
    folder.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere.md"
    elsewhere.write_text("not yours")
    (folder / "SKILL.md").symlink_to(elsewhere)
    done = _cli(tmp_path, "install", "--force")
    assert done.returncode == exits.FAILED
    assert "not a regular file" in done.stderr
    assert elsewhere.read_text() == "not yours"


def test_install_never_writes_through_a_planted_symlink(tmp_path: Path) -> None:
    folder = tmp_path / ".agents" / "skills" / "sealbox"
    folder.mkdir(parents=True)
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (folder / ".SKILL.md.partial").symlink_to(victim)
    done = _cli(tmp_path, "install")
    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "keep me"
    assert not (folder / "SKILL.md").is_symlink()
    (folder / "SKILL.md").unlink()
    (folder / ".installed").unlink()
    (folder / ".installed").symlink_to(victim)
    done = _cli(tmp_path, "install", "--force")
    assert done.returncode == exits.FAILED
    assert "not a regular file" in done.stderr
    assert victim.read_text() == "keep me"


def test_a_missing_action_is_a_usage_error(tmp_path: Path) -> None:
    assert _cli(tmp_path).returncode == exits.USAGE
