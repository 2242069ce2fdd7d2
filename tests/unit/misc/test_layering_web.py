"""The console's Python side is an asset layer: the relay and the CLI use it, it uses neither.

`sealbox.web` renders pages and serves the browser's modules (the relay serves them, and so does
`sealbox console` on the approver's own machine); it must not reach into the relay, the
clients or the approvers, so that serving the console locally never runs relay code.  The
browser's own core lives in JavaScript (`static/sealbox/`), checked by tests/js/.
"""

from __future__ import annotations

import pathlib

import pytest
from layering_support import imports_of, module_name

SRC = pathlib.Path(__file__).resolve().parents[3] / "src"
WEB = {module_name(p, SRC): p for p in sorted((SRC / "sealbox" / "web").rglob("*.py"))}


@pytest.mark.parametrize("module", sorted(WEB))
def test_web_uses_no_other_sealbox_package(module: str) -> None:
    ours = {n for n in imports_of(WEB[module]) if n == "sealbox" or n.startswith("sealbox.")}
    outside = {
        n for n in ours if n not in ("sealbox", "sealbox.web") and not n.startswith("sealbox.web.")
    }
    assert not outside, f"{module} imports {sorted(outside)}"


def test_nothing_below_the_relay_and_the_cli_imports_web() -> None:
    for path in (SRC / "sealbox").rglob("*.py"):
        name = module_name(path, SRC)
        if name.startswith(("sealbox.web", "sealbox.server", "sealbox.cli")):
            continue
        assert not any(n.startswith("sealbox.web") for n in imports_of(path)), name
