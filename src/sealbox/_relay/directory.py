"""The approver directory as a client or approver device sees it: verified, never rolled back.

Every device pins the vault's link 0 (its fingerprint) and keeps the newest
head it has verified.  :func:`directory_flow` fetches the chain, verifies it
from the pinned link 0 against that head (a shorter chain is a rollback, a
different link at a seen sequence number a fork; both raise), and moves the
head forward.  A chain identical, byte for byte, to the one verified last is
not verified again.  :func:`pin_flow` is the one first use: a login pins the
link 0 the relay serves, and the person confirms it by comparing the vault
safety code with an approver's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sealbox._relay.calls import Call, Flow, expect_object
from sealbox.errors import DirectoryBroken, MalformedInput
from sealbox.protocol import directory as dirs

__all__ = ["DIRECTORY_FRESH", "DirectoryView", "directory_flow", "pin_flow"]

#: How long a verified directory is reused before it is fetched again.  A release
#: or answer signed by an approver added since makes its reader fetch it at once,
#: and an approver's ``directory`` stream event drops it.
DIRECTORY_FRESH = 5.0


@dataclass
class DirectoryView:
    """What one device knows of its vault's directory."""

    vault: str
    fingerprint: str
    """The pinned vault fingerprint (hash of directory link 0)."""
    head: dirs.DirectoryHead | None
    """The newest head verified, on this device, ever (``None``: none kept yet)."""
    on_advance: Callable[[dirs.DirectoryHead], None] | None = field(default=None, repr=False)
    """Called when the head moves forward, to keep it (a profile, a file beside the key)."""
    current: dirs.Directory | None = field(default=None, repr=False)
    """The last directory verified."""
    fetched_at: float = 0.0
    """When ``current`` was last fetched or confirmed (monotonic); 0: must fetch."""
    clock: Callable[[], float] = time.monotonic

    def forget(self) -> None:
        """Fetch again at next use (the relay said the directory changed)."""
        self.fetched_at = 0.0


def _links(body: dict[str, object]) -> list[str]:
    links = body.get("links")
    if not isinstance(links, list) or not links or not all(isinstance(x, str) for x in links):
        raise DirectoryBroken("the relay served no directory links")
    return links


def directory_flow(view: DirectoryView, *, fresh: bool = False) -> Flow:
    """The verified directory (fetched unless a recent one is held and ``fresh`` is not asked)."""
    now = view.clock()
    held = view.current
    if (
        not fresh
        and held is not None
        and view.fetched_at
        and now - view.fetched_at < DIRECTORY_FRESH
    ):
        return held
    reply = yield Call("GET", f"/v1/vaults/{view.vault}/directory", auth=False)
    links = _links(expect_object(reply, "fetching the approver directory"))
    if held is not None and held.head == view.head and tuple(links) == held.tokens:
        # Exactly the chain verified before (every link byte for byte), from the same
        # pinned link 0 and against the same cached head: verifying it again could
        # only give the same directory.  Anything else served is verified in full.
        view.fetched_at = now
        return held
    directory = dirs.verify_directory(links, pinned=view.fingerprint, cached_head=view.head)
    if directory.vault != view.vault:
        raise DirectoryBroken("the relay served the directory of another vault")
    advanced = view.head is None or directory.head.seq > view.head.seq
    view.head, view.current, view.fetched_at = directory.head, directory, now
    if advanced and view.on_advance is not None:
        view.on_advance(directory.head)
    return directory


def pin_flow(vault: str) -> Flow:
    """First use: the directory the relay serves now, pinned at its link 0."""
    reply = yield Call("GET", f"/v1/vaults/{vault}/directory", auth=False)
    links = _links(expect_object(reply, "fetching the approver directory"))
    try:
        pinned = dirs.vault_fingerprint(links[0])
    except MalformedInput as exc:
        raise DirectoryBroken(f"link 0 does not verify: {exc.message}") from None
    directory = dirs.verify_directory(links, pinned=pinned, cached_head=None)
    if directory.vault != vault:
        raise DirectoryBroken("the relay served the directory of another vault")
    return directory
