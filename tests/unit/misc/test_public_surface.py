"""The public surface is small and pinned: changing it must be a deliberate act."""

from __future__ import annotations

import ast
import pathlib

import pytest

import sealbox
from sealbox import errors

SRC = pathlib.Path(sealbox.__file__).parent


def test_top_level_all_is_pinned() -> None:
    assert sorted(sealbox.__all__) == [
        "AsyncClient", "Client", "ItemInfo", "Read", "SealboxError", "Stored", "VersionInfo",
        "WaitState", "Wanted", "__version__", "errors",
    ]  # fmt: skip
    from sealbox.client import _flows as flows
    from sealbox.client import sdk

    assert sealbox.Client is sdk.Client
    assert sealbox.AsyncClient is sdk.AsyncClient
    for name in ("ItemInfo", "Read", "Stored", "VersionInfo", "WaitState", "Wanted"):
        assert getattr(sealbox, name) is getattr(flows, name)
    with pytest.raises(AttributeError):
        _ = sealbox.ClientState  # internal: not part of the surface


def test_error_hierarchy_is_pinned() -> None:
    assert sorted(errors.__all__) == [
        "BindingMismatch",
        "Cancelled",
        "CertificateInvalid",
        "DecryptionFailed",
        "Denied",
        "DirectoryBroken",
        "DirectoryFork",
        "DirectoryRollback",
        "Expired",
        "IllegalTransition",
        "InvalidInput",
        "KeyringUnavailable",
        "LoginFailed",
        "MalformedInput",
        "ManifestMismatch",
        "NotAuthorized",
        "NotLoggedIn",
        "ProfileExists",
        "RefusedByApprover",
        "RelayRefused",
        "RelayUnreachable",
        "RequestExpired",
        "SealboxError",
        "SignatureInvalid",
        "ThresholdNotMet",
        "VerificationError",
        "VersionRollback",
    ]


def test_every_error_has_a_distinct_code_and_a_hint() -> None:
    classes = [getattr(errors, name) for name in errors.__all__]
    codes = [cls.code for cls in classes]
    assert len(set(codes)) == len(codes)
    for cls in classes:
        assert issubclass(cls, errors.SealboxError)
        assert cls.hint


def test_error_hint_can_be_overridden_and_message_is_kept() -> None:
    exc = errors.Expired("too late", hint="ask again")
    assert exc.message == "too late"
    assert exc.hint == "ask again"


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_layering_crypto_imports_nothing_of_ours_but_errors() -> None:
    for path in (SRC / "crypto").glob("*.py"):
        ours = {n for n in _imports(path) if n.startswith("sealbox")}
        allowed = {n for n in ours if n.startswith("sealbox.crypto")} | {"sealbox.errors"}
        assert ours <= allowed, path.name


def test_layering_protocol_imports_only_crypto_and_errors() -> None:
    for path in (SRC / "protocol").glob("*.py"):
        ours = {n for n in _imports(path) if n.startswith("sealbox")}
        allowed = {n for n in ours if n.startswith(("sealbox.crypto", "sealbox.protocol"))}
        assert ours <= allowed | {"sealbox.errors"}, path.name


def test_only_crypto_imports_pyca_cryptography() -> None:
    for path in SRC.rglob("*.py"):
        if "crypto" in path.relative_to(SRC).parts[:1]:
            continue
        assert not any(n.startswith("cryptography") for n in _imports(path)), path
