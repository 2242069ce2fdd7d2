"""sealbox: vendor-blind secrets release.

The relay stores only ciphertext and metadata; approver devices hold the
keys and release each secret, per use, sealed to a one-time key of the
process that asked.  See ``docs/protocol.md`` for the normative protocol.

The public surface of this package is pinned by a test.  Today it is the
version and the error hierarchy; the client SDK (``sealbox.Client``) joins
it when the relay exists.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from sealbox import errors
from sealbox.errors import SealboxError

__all__ = ["SealboxError", "__version__", "errors"]

try:
    __version__ = version("sealbox")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"
