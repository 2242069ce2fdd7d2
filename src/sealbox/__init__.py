"""sealbox: vendor-blind secrets release.

The relay stores only ciphertext and metadata; approver devices hold the
keys and release each secret, per use, sealed to a one-time key of the
process that asked.  See ``docs/protocol.md`` for the normative protocol.

The public surface of this package is pinned by a test: the version, the
error hierarchy, the client SDK, :class:`Client` and :class:`AsyncClient`
(see :mod:`sealbox.client.sdk`), and what their calls return or hand to a
callback (:class:`Read`, :class:`Wanted`, :class:`Stored`, :class:`ItemInfo`,
:class:`VersionInfo`, :class:`WaitState`)::

    with sealbox.Client() as vault:
        password = vault.read("sealbox://shop/prod/db/password")
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from sealbox import errors
from sealbox.errors import SealboxError

if TYPE_CHECKING:
    from sealbox.client.flows import ItemInfo, Read, Stored, VersionInfo, WaitState, Wanted
    from sealbox.client.sdk import AsyncClient, Client

__all__ = [
    "AsyncClient",
    "Client",
    "ItemInfo",
    "Read",
    "SealboxError",
    "Stored",
    "VersionInfo",
    "WaitState",
    "Wanted",
    "__version__",
    "errors",
]

_SDK = ("Client", "AsyncClient")
_RESULTS = ("ItemInfo", "Read", "Stored", "VersionInfo", "WaitState", "Wanted")


def __getattr__(name: str) -> Any:
    # The SDK pulls in httpx and the protocol; importing it only when asked
    # keeps `sealbox --version` and the relay's start-up from paying for it.
    if name in _SDK:
        from sealbox.client import sdk

        return getattr(sdk, name)
    if name in _RESULTS:
        from sealbox.client import flows

        return getattr(flows, name)
    raise AttributeError(f"module 'sealbox' has no attribute {name!r}")


try:
    __version__ = version("sealbox")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"
