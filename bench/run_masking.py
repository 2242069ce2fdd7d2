"""How fast `sealbox run` masks a command's output, beside a bare regular-expression pass.

Run as ``python bench/run_masking.py [--mib N]``.  A benchmark, not a test: it
asserts no speed.  One JSON header line, then one JSON line per figure.

The values: 18 random 32-character tokens and three short ones (``s3cr3t``,
``app``, ``5432``: masked only as whole words), about 150 forms in all.  The
output: this repository's README, repeated (prose, tables, shell lines), with
each value and its base64 written in every 100 KiB, so there is masking to do.

Figures (``mib_per_s`` of output let through, best of 3 rounds):

``stream_64k`` / ``stream_4k``
    :class:`sealbox.client.masking.Masker` fed chunks of 64 KiB (a busy
    pipe) and 4 KiB (a pseudo-terminal's reads).  Baseline: one ``re.sub``
    over the same chunks with a flat alternation of the same forms, longest
    first, which is what masking cost before the forms became a trie (and
    without the word rule or the chunk boundaries).

``keystroke``
    Microseconds per one-byte feed, what typing at a command's prompt costs.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import re
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sealbox.client.masking import Masker, forms

BENCH = "run_masking"


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def _values() -> list[bytes]:
    tokens = [secrets.token_urlsafe(24).encode() for _ in range(18)]
    return [*tokens, b"s3cr3t", b"app", b"5432"]


def _output(values: list[bytes], size: int) -> bytes:
    prose = (Path(__file__).resolve().parent.parent / "README.md").read_bytes()
    block = prose * (100 * 1024 // len(prose) + 1)
    marks = b" ".join(v + b" " + base64.b64encode(v) for v in values)
    piece = block[: 100 * 1024 - len(marks) - 1] + marks + b"\n"
    return (piece * (size // len(piece) + 1))[:size]


def _best(run: Callable[[], None], data_len: int) -> float:
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return data_len / min(times) / 2**20


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--mib", type=int, default=4, help="output masked per round (MiB)")
    args = parser.parse_args(argv)
    values = _values()
    patterns = set().union(*(forms(v) for v in values))
    data = _output(values, args.mib * 2**20)
    emit({"bench": BENCH, "metric": "header", "python": platform.python_version(),
          "platform": platform.platform(), "cores": os.cpu_count(), "values": len(values),
          "forms": len(patterns), "mib": args.mib})  # fmt: skip
    flat = re.compile(b"|".join(re.escape(p) for p in sorted(patterns, key=len, reverse=True)))

    for name, size in (("stream_64k", 65536), ("stream_4k", 4096)):
        chunks = [data[i : i + size] for i in range(0, len(data), size)]

        def masked(chunks: list[bytes] = chunks) -> None:
            masker = Masker(values)
            for chunk in chunks:
                masker.feed(chunk)
            masker.flush()

        def baseline(chunks: list[bytes] = chunks) -> None:
            for chunk in chunks:
                flat.sub(b"<concealed by sealbox>", chunk)

        rate = _best(masked, len(data))
        floor = _best(baseline, len(data))
        emit({"bench": BENCH, "metric": name, "mib_per_s": round(rate, 2),
              "baseline_flat_regex_mib_per_s": round(floor, 2),
              "ratio": round(rate / floor, 2)})  # fmt: skip

    keys = data[:20000]
    masker = Masker(values)
    start = time.perf_counter()
    for i in range(len(keys)):
        masker.feed(keys[i : i + 1])
    per_key = (time.perf_counter() - start) / len(keys) * 1e6
    emit({"bench": BENCH, "metric": "keystroke", "us_per_feed": round(per_key, 1)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
