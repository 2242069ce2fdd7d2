"""Create the vault's first approver on this device: keys made here, link 0 signed here."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from sealbox._relay.calls import Call, Flow, expect_object
from sealbox._relay.directory import DirectoryView, directory_flow
from sealbox._relay.drive import SyncDriver
from sealbox.approver.keystore import ApproverKeys
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.errors import RelayRefused
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.statements import ApproverRecord

__all__ = ["SetupResult", "create_first_approver", "vault_to_set_up"]


@dataclass(frozen=True)
class SetupResult:
    keys: ApproverKeys
    safety_code: str


def _already_set_up(server: str) -> RelayRefused:
    # What a person most likely wants, running init against a vault that has its approver:
    # this device as another approver (pairing), or nothing at all.
    return RelayRefused(
        "this vault already has its first approver; `sealbox approver init` makes only that one",
        hint=f"To make this device another approver, run `sealbox approver add --server "
        f"{server}` and type the pairing code it shows into `sealbox approve` on an existing "
        "approver. On an approver, `sealbox approver list` shows the vault's approvers.",
        status=409, error="already_set_up",
    )  # fmt: skip


def _vault_flow(server: str) -> Flow:
    """The relay's vault id if it still waits for its first approver; else refused."""
    info = expect_object((yield Call("GET", "/v1/vault", auth=False)), "looking up the vault")
    vault = ids.check_id(info.get("vault"), ids.VAULT, what="vault")
    if info.get("ready") is True:
        raise _already_set_up(server)
    return vault


def vault_to_set_up(server: str, *, http: httpx.Client | None = None) -> str:
    """The id of the relay's vault if it still waits for its first approver.

    Asked before anything else (the setup token, a passphrase typed twice, keys made), so
    that a vault that already has its approver is said at once.  Raises
    :class:`~sealbox.errors.RelayRefused` otherwise.
    """
    client = http or httpx.Client(timeout=30)
    try:
        vault: str = SyncDriver(client, server).drive(_vault_flow(server.rstrip("/")))
    finally:
        if http is None:
            client.close()
    return vault


def create_first_approver(
    server: str, setup_token: str, *, name: str, kind: str = "terminal",
    http: httpx.Client | None = None,
) -> SetupResult:  # fmt: skip
    """Generate keys, sign directory link 0, and hand it to the relay with the setup token.

    The vault fingerprint is computed here from the link this device signed,
    and the relay's answer must agree with it; nothing the relay says is
    taken on trust.
    """
    client = http or httpx.Client(timeout=30)
    try:
        driver = SyncDriver(client, server)
        keys, link0 = driver.drive(_setup_flow(server.rstrip("/"), setup_token, name, kind))
    finally:
        if http is None:
            client.close()
    return SetupResult(keys=keys, safety_code=dirs.vault_safety_code(link0))


def _setup_flow(server: str, setup_token: str, name: str, kind: str) -> Flow:
    vault = yield from _vault_flow(server)
    hpke, sig = HpkePrivateKey.generate(), SigningKey.generate()
    record = ApproverRecord(
        id=ids.new_id(ids.APPROVER), name=name, kind=kind, tier="synced",
        hpke_pk=hpke.public_key(), sig_pk=sig.verify_key(),
    )  # fmt: skip
    link0 = dirs.genesis_link(vault, record, sig, now=int(time.time()))
    reply = yield Call("POST", f"/v1/vaults/{vault}/setup", auth=False,
                       json={"setup_token": setup_token, "link": link0})  # fmt: skip
    if (
        reply.status == 409
        and isinstance(reply.body, dict)
        and (reply.body.get("error") == "already_set_up")
    ):
        raise _already_set_up(server)  # set up by another device since _vault_flow asked
    body = expect_object(reply, "creating the first approver", status=201)
    fingerprint = dirs.vault_fingerprint(link0)
    if body.get("fingerprint") != fingerprint:
        raise RelayRefused("the relay reports another vault fingerprint than this device made")
    # Read the directory back and verify it from the link this device signed.
    view = DirectoryView(vault=vault, fingerprint=fingerprint, head=None)
    yield from directory_flow(view, fresh=True)
    keys = ApproverKeys(server=server, vault=vault, fingerprint=fingerprint,
                        record=record, hpke=hpke, sig=sig)  # fmt: skip
    return keys, link0
