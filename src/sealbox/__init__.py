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

from sealbox._version import __version__

# Not `typing.TYPE_CHECKING`: importing typing would cost every `sealbox` command,
# even a cache hit, a few milliseconds; type checkers know this spelling too.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from sealbox import errors
    from sealbox.client._flows import ItemInfo, Read, Stored, VersionInfo, WaitState, Wanted
    from sealbox.client.sdk import AsyncClient, Client
    from sealbox.errors import SealboxError

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
    # The errors are cheap, but a cache hit of the CLI needs none of them.
    if name in _SDK:
        from sealbox.client import sdk

        return getattr(sdk, name)
    if name in _RESULTS:
        from sealbox.client import _flows as flows

        return getattr(flows, name)
    if name in ("errors", "SealboxError"):
        import sealbox.errors as errors_module  # binds the submodule: no recursion here

        return errors_module if name == "errors" else errors_module.SealboxError
    raise AttributeError(f"module 'sealbox' has no attribute {name!r}")
