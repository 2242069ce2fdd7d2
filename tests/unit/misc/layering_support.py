"""What the layering tests share: reading every import of a source file, function-level too."""

from __future__ import annotations

import ast
import pathlib


def module_name(path: pathlib.Path, src: pathlib.Path) -> str:
    """The dotted module name of ``path`` under the source root ``src``."""
    parts = path.relative_to(src).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: pathlib.Path) -> set[str]:
    """Every module a file imports, anywhere in it (``from a import b``: ``a`` and ``a.b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names
