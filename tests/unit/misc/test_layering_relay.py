"""The relay's three layers, pinned: a change that breaks them fails here, not in review.

``server/http`` parses, calls a service and answers; ``server/services`` holds
the domain and knows nothing of HTTP; ``server/store`` is the only place with
SQL; ``server/auth`` reads the store only.  Function-level imports count too:
a cycle hidden inside a function is still a cycle.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import pytest
from layering_support import imports_of, module_name

import sealbox

SERVER = pathlib.Path(sealbox.__file__).parent / "server"


def _module_name(path: pathlib.Path) -> str:
    return module_name(path, SERVER.parent.parent)


def _modules() -> Iterator[tuple[str, pathlib.Path]]:
    for path in sorted(SERVER.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        yield _module_name(path), path


MODULES = dict(_modules())
OURS = set(MODULES)


def _ours(path: pathlib.Path) -> set[str]:
    return {name for name in imports_of(path) if name in OURS}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[2] if len(parts) > 3 else parts[-1]


def test_the_layers_exist() -> None:
    for layer in ("http", "services", "store", "auth"):
        assert (SERVER / layer / "__init__.py").exists(), layer
    assert not (SERVER / "routes").exists(), "routes/ is replaced by http/ + services/ + store/"


@pytest.mark.parametrize("module", sorted(OURS))
def test_only_the_store_holds_sql(module: str) -> None:
    # SQL is written with SQLAlchemy Core (or text()); outside the store only the
    # connection and engine types may be named.
    if _layer(module) == "store":
        return
    core = {
        name
        for name in imports_of(MODULES[module])
        if name == "sqlalchemy" or name.startswith("sqlalchemy.")
    }
    allowed = {
        "sqlalchemy.ext.asyncio",
        "sqlalchemy.ext.asyncio.AsyncConnection",
        "sqlalchemy.ext.asyncio.AsyncEngine",
    }
    assert core <= allowed, f"{module} uses {sorted(core - allowed)}"


@pytest.mark.parametrize("module", sorted(OURS))
def test_nothing_below_http_knows_http(module: str) -> None:
    layer = _layer(module)
    if layer in ("http", "auth", "app", "runner"):
        return
    web = {
        name
        for name in imports_of(MODULES[module])
        if name.split(".")[0] in ("fastapi", "starlette", "uvicorn")
    }
    assert not web, f"{module} imports {sorted(web)}"
    assert not any(n.startswith("sealbox.server.http") for n in _ours(MODULES[module])), module


def test_no_error_carries_an_http_status() -> None:
    from sealbox.server import errors

    assert not hasattr(errors, "ApiError")
    for path in MODULES.values():
        assert "ApiError" not in path.read_text(), path


@pytest.mark.parametrize(
    ("layer", "may_not_import"),
    [
        ("store", ("services", "http", "auth", "app", "jobs", "runner")),
        ("services", ("http", "app", "runner")),
        ("auth", ("services", "http", "app", "jobs", "runner")),
    ],
)
def test_dependencies_point_down(layer: str, may_not_import: tuple[str, ...]) -> None:
    for module, path in MODULES.items():
        if _layer(module) != layer:
            continue
        bad = {name for name in _ours(path) if _layer(name) in may_not_import}
        assert not bad, f"{module} imports {sorted(bad)}"


def test_services_see_only_the_callers_identity_of_auth() -> None:
    for module, path in MODULES.items():
        if _layer(module) != "services":
            continue
        auth = {name for name in _ours(path) if _layer(name) == "auth"}
        assert auth <= {"sealbox.server.auth.principal"}, f"{module} imports {sorted(auth)}"


def test_no_import_cycles_among_the_relays_modules() -> None:
    graph = {module: {n for n in _ours(path) if n != module} for module, path in MODULES.items()}
    # A package's __init__ importing its own submodules is not a cycle of layers.
    for module in graph:
        graph[module] = {n for n in graph[module] if not n.startswith(module + ".")}
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        seen[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if seen.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in seen:
                visit(nxt, [*path, nxt])
        seen[node] = 2

    for module in sorted(graph):
        if module not in seen:
            visit(module, [module])
