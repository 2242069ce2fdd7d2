"""The relay's HTTP layer: one module per resource, each parse -> service -> JSON.

This package is the only place that knows HTTP: status codes, headers, bodies,
streaming.  Each module exposes ``router``; domain errors become HTTP answers
in :mod:`.errors`, once.
"""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter

__all__ = ["all_routers"]

#: Modules of this package that are not resources.
_NOT_RESOURCES = frozenset({"deps", "errors"})


def all_routers() -> list[APIRouter]:
    """Every resource module's router, in module-name order (a new resource is a new module)."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name in _NOT_RESOURCES:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append(module.router)
    return found
