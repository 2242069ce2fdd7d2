"""The base error's hint ("This is a bug in sealbox…") never reaches a user for an ordinary
situation: every error class says its own next step, and the base class is never raised bare."""

from __future__ import annotations

import ast
import importlib
import pathlib
import pkgutil

import sealbox
from sealbox import errors

SRC = pathlib.Path(sealbox.__file__).parent


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def test_every_error_class_anywhere_in_sealbox_has_its_own_hint() -> None:
    for module in pkgutil.walk_packages([str(SRC)], prefix="sealbox."):
        # Alembic's migration scripts run only inside alembic; they define no errors.
        if not module.name.endswith("__main__") and ".migrations" not in module.name:
            importlib.import_module(module.name)
    classes = {
        c for c in _all_subclasses(errors.SealboxError) if c.__module__.startswith("sealbox")
    }
    assert errors.InvalidInput in classes  # the walk saw the hierarchy
    bare = sorted(c.__qualname__ for c in classes if c.hint == errors.SealboxError.hint)
    assert not bare, f"error classes that would tell a user it is a bug: {bare}"


def test_the_base_error_is_never_raised_without_a_hint() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name == "SealboxError" and not any(k.arg == "hint" for k in node.keywords):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not offenders, offenders
