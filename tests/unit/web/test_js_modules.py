"""Run the browser core's JavaScript tests (``tests/js/**/*.test.mjs``) under Node.

The ES modules in ``src/sealbox/web/static/sealbox/`` are the browser approver's
crypto and protocol core; their tests are Node's built-in runner (``node --test``),
held to the same vector files as the Python code.  This wrapper makes them part of
the pytest run: each test file runs in its own ``node --test`` process, and a
failure shows Node's report (test names included) in pytest's output.

Node is required, not optional: a skipped run would look like a passing one while
the browser's crypto went unchecked, so a missing or too old ``node`` fails here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import cryptography_vectors
import pytest

ROOT = Path(__file__).resolve().parents[3]
JS_TESTS = sorted((ROOT / "tests" / "js").glob("**/*.test.mjs"))
#: The RFC 9180 Appendix A vectors, from pyca's cryptography-vectors package.
RFC9180_VECTORS = (
    Path(cryptography_vectors.__file__).resolve().parent / "HPKE" / "test-vectors.json"
)
#: Node 20 is the first release with Ed25519 and X25519 in WebCrypto without a flag.
MIN_NODE_MAJOR = 20
TIMEOUT_SECONDS = 240


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the browser core's JavaScript tests cannot run")
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    match = re.fullmatch(r"v(\d+)\..*", version)
    if match is None or int(match.group(1)) < MIN_NODE_MAJOR:
        pytest.fail(f"node {version} is too old: the browser core needs Node {MIN_NODE_MAJOR}+")
    return node


def test_there_are_javascript_tests() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in JS_TESTS}
    assert "tests/js/crypto/encoding.test.mjs" in names, sorted(names)
    assert RFC9180_VECTORS.is_file(), f"RFC 9180 vectors missing: {RFC9180_VECTORS}"


@pytest.mark.parametrize(
    "test_file",
    JS_TESTS,
    ids=[path.relative_to(ROOT / "tests" / "js").as_posix() for path in JS_TESTS],
)
def test_node_test_file_passes(test_file: Path) -> None:
    env = {**os.environ, "SEALBOX_RFC9180_VECTORS": str(RFC9180_VECTORS), "NO_COLOR": "1"}
    result = subprocess.run(
        # The spec reporter names every test with its result, so a failure below
        # says which JavaScript test broke and why.
        [_node(), "--test", "--test-reporter=spec", str(test_file)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"node --test {test_file.relative_to(ROOT)} failed (exit {result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}",
            pytrace=False,
        )
    # A file whose tests never registered would also exit 0: require a passing count.
    passed = re.search(r"^\S+ pass (\d+)$", result.stdout, re.MULTILINE)
    assert passed is not None, result.stdout
    assert int(passed.group(1)) > 0, result.stdout
