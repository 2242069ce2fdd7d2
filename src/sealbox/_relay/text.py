"""Text from elsewhere made safe to print on a terminal.

The relay, and whatever a client put in a request, may say anything: an ANSI
escape could rewrite what an approver sees, a bidi override could reorder a
path.  Everything printed that this device did not write itself goes
through :func:`displayable`.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["displayable", "safe_text"]

_UNSAFE = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co"})
# The blank characters the display-text rule also refuses (docs/protocol.md 2.8).
_INVISIBLE = re.compile("[\u115f\u1160\u3164\uffa0\u2800\ufe00-\ufe0f\U000e0100-\U000e01ef]")


def safe_text(text: str, limit: int) -> str:
    """``text`` with what the strict display-text rule refuses replaced by U+FFFD, cut."""
    cleaned = "".join("\ufffd" if unicodedata.category(c) in _UNSAFE else c for c in text)
    return _INVISIBLE.sub("\ufffd", cleaned)[:limit]


def displayable(text: object, limit: int = 300) -> str:
    """``text`` made safe to print on a terminal: control, format and invisible characters
    (ANSI escapes, bidi overrides, ...) replaced with U+FFFD.  For what only the relay says."""
    return safe_text(str(text), limit)
