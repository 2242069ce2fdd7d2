"""The newest signed policy (``sealbox.policy.v1``) an approver has seen, per vault and pattern.

A relay that serves an older signed policy for a pattern than one this approver has seen
(one without the windows or destroy date set since, say) is caught: the older statement is
refused as unverifiable (``policy_rollback``).  Kept in a 0600 file beside the approver's key,
like its directory head.  What it cannot catch: a relay hiding a pattern's statement this
approver never saw (then the approver uses the most specific statement it is served, or
says that none was served).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from sealbox._relay.files import write_private
from sealbox.errors import VerificationError

__all__ = ["PolicyRollback", "PolicySeen"]

#: Patterns remembered per vault at most (bounded file; the oldest-set are dropped first).
MAX_PATTERNS = 10_000


class PolicyRollback(VerificationError):
    """The relay served an older signed policy than this approver has seen for the pattern."""

    code = "policy_rollback"

    def __init__(self, pattern: str, served: int, seen: int) -> None:
        super().__init__(
            f"the relay served a signed policy for {pattern} from {served}, older than the one "
            f"from {seen} this approver has seen",
            hint="A relay that serves an old policy may be hiding the current one; refused.",
        )


class PolicySeen:
    """vault -> pattern -> the newest ``at`` seen; in memory, and in ``path`` if given."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: dict[str, dict[str, int]] = self._load()

    def _load(self) -> dict[str, dict[str, int]]:
        if self.path is None:
            return {}
        try:
            document = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(document, dict):
            return {}
        out: dict[str, dict[str, int]] = {}
        for vault, patterns in document.items():
            if isinstance(vault, str) and isinstance(patterns, dict):
                out[vault] = {p: at for p, at in patterns.items()
                              if isinstance(p, str) and type(at) is int}  # fmt: skip
        return out

    def check(self, vault: str, pattern: str, at: int) -> None:
        """Raise :class:`PolicyRollback` if a newer statement for ``pattern`` was seen."""
        with self._lock:
            seen = self._seen.get(vault, {}).get(pattern)
        if seen is not None and at < seen:
            raise PolicyRollback(pattern, at, seen)

    def remember(self, vault: str, seen: dict[str, int]) -> None:
        """Record these (pattern -> at) where newer than what is kept; saved if changed."""
        with self._lock:
            kept = self._seen.setdefault(vault, {})
            changed = False
            for pattern, at in seen.items():
                if kept.get(pattern, -1) < at:
                    kept[pattern] = at
                    changed = True
            if len(kept) > MAX_PATTERNS:
                for pattern, _ in sorted(kept.items(), key=lambda kv: kv[1])[
                    : len(kept) - MAX_PATTERNS
                ]:
                    del kept[pattern]
            if changed and self.path is not None:
                write_private(self.path, json.dumps(self._seen, sort_keys=True))
