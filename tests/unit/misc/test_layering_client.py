"""The client side's layers, pinned: one relay-client core, used by everything that talks
to a relay; ``client`` and ``approver`` never import each other; the CLI is a layer above.

Function-level imports count too: a dependency hidden inside a function is still one.
"""

from __future__ import annotations

import ast
import pathlib
import re
from collections.abc import Iterator

import pytest
from layering_support import imports_of, module_name

import sealbox

PACKAGE = pathlib.Path(sealbox.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    return module_name(path, PACKAGE.parent)


def _modules(*packages: str) -> Iterator[tuple[str, pathlib.Path]]:
    for package in packages:
        for path in sorted((PACKAGE / package).rglob("*.py")):
            yield _module_name(path), path


def _ours(path: pathlib.Path) -> set[str]:
    return {n for n in imports_of(path) if n == "sealbox" or n.startswith("sealbox.")}


def _package(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


CORE = dict(_modules("_relay"))
CLIENT = dict(_modules("client"))
APPROVER = dict(_modules("approver"))


def test_the_core_exists_and_the_old_copies_are_gone() -> None:
    for name in ("calls", "drive", "directory", "httpsig", "files", "text"):
        assert (PACKAGE / "_relay" / f"{name}.py").exists(), name
    for gone in ("client/httpsig.py", "client/files.py"):
        assert not (PACKAGE / gone).exists(), gone


@pytest.mark.parametrize("module", sorted(CORE))
def test_the_core_builds_on_the_pure_layers_only(module: str) -> None:
    allowed = {"_relay", "crypto", "protocol", "errors"}
    bad = {n for n in _ours(CORE[module]) if _package(n) not in allowed}
    assert not bad, f"{module} imports {sorted(bad)}"


@pytest.mark.parametrize("module", sorted(CLIENT))
def test_the_client_does_not_import_the_approver(module: str) -> None:
    bad = {n for n in _ours(CLIENT[module]) if _package(n) in ("approver", "cli", "server")}
    assert not bad, f"{module} imports {sorted(bad)}"


@pytest.mark.parametrize("module", sorted(APPROVER))
def test_the_approver_does_not_import_the_client(module: str) -> None:
    bad = {n for n in _ours(APPROVER[module]) if _package(n) in ("client", "cli", "server")}
    assert not bad, f"{module} imports {sorted(bad)}"


@pytest.mark.parametrize("module", sorted({**CLIENT, **APPROVER}))
def test_only_the_core_talks_http_by_itself(module: str) -> None:
    # Requests are built, signed and sent by the core's drivers; above it httpx
    # appears only as a type or to make the connection pool the driver uses.
    source = (CLIENT | APPROVER)[module].read_text()
    for raw in ("sign_request(", ".request(**", "build_request(", "http.send("):
        assert raw not in source, f"{module} sends {raw!r} itself"
    sends = re.findall(r"\.(?:get|post|put|patch|delete)\(\s*f?[\"'](?:/|\{|http)", source)
    assert not sends, f"{module} calls the relay itself: {sends}"


def test_one_refusal_type() -> None:
    from sealbox import errors

    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        found += [
            f"{_module_name(path)}.{node.name}"
            for node in ast.walk(tree)
            if isinstance(node, ast.ClassDef) and node.name == "RelayRefused"
        ]
    assert found == ["sealbox.errors.RelayRefused"]
    assert issubclass(errors.RelayRefused, errors.SealboxError)


def test_one_directory_flow() -> None:
    # Every device verifies the directory through the core's flow: nobody else
    # calls the protocol's verify_directory.
    callers = sorted(
        _module_name(path)
        for path in [*CLIENT.values(), *APPROVER.values(), *(PACKAGE / "cli").rglob("*.py")]
        if "verify_directory(" in path.read_text()
    )
    assert callers == []


def test_no_import_cycles_on_the_client_side() -> None:
    modules = {**CORE, **CLIENT, **APPROVER}
    graph = {
        name: {
            n for n in _ours(path) if n in modules and n != name and not n.startswith(name + ".")
        }
        for name, path in modules.items()
    }
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(nxt) :], nxt]))
            if nxt not in seen:
                visit(nxt, [*path, nxt])
        seen[node] = 2

    for module in sorted(graph):
        if module not in seen:
            visit(module, [module])
