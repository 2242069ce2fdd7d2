"""The relay's HTTP API: one module per resource, each exposing ``router``."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import APIRouter

__all__ = ["all_routers"]


def all_routers() -> list[APIRouter]:
    """Every module's router, in module-name order (a new resource is a new module)."""
    found = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append(module.router)
    return found
