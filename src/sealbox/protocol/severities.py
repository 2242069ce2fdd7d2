"""The audit log's severities, least to most severe.

One list for the relay's store, its alert selection, the exported events' parser and the
command line; a module of its own (importing nothing) so the CLI can name the choices
without loading the rest of the protocol at start-up.
"""

from __future__ import annotations

from typing import Final

__all__ = ["SEVERITIES"]

SEVERITIES: Final = ("info", "notice", "warning", "alert", "critical")
