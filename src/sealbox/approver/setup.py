"""Create the vault's first approver on this device: keys made here, link 0 signed here."""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from sealbox.approver.keystore import ApproverKeys
from sealbox.approver.session import RelayRefused, refused
from sealbox.crypto.keys import HpkePrivateKey, SigningKey
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.statements import ApproverRecord

__all__ = ["RelayRefused", "SetupResult", "create_first_approver"]


@dataclass(frozen=True)
class SetupResult:
    keys: ApproverKeys
    safety_code: str


def create_first_approver(
    server: str, setup_token: str, *, name: str, kind: str = "terminal",
    http: httpx.Client | None = None,
) -> SetupResult:  # fmt: skip
    """Generate keys, sign directory link 0, and hand it to the relay with the setup token.

    The vault fingerprint is computed here from the link this device signed,
    and the relay's answer must agree with it; nothing the relay says is
    taken on trust.
    """
    client = http or httpx.Client(base_url=server.rstrip("/"), timeout=30)
    try:
        info = client.get("/v1/vault")
        if info.status_code != 200:
            raise refused(info, "looking up the vault")
        vault = ids.check_id(info.json().get("vault"), ids.VAULT, what="vault")
        hpke, sig = HpkePrivateKey.generate(), SigningKey.generate()
        record = ApproverRecord(
            id=ids.new_id(ids.APPROVER), name=name, kind=kind, tier="synced",
            hpke_pk=hpke.public_key(), sig_pk=sig.verify_key(),
        )  # fmt: skip
        link0 = dirs.genesis_link(vault, record, sig, now=int(time.time()))
        response = client.post(
            f"/v1/vaults/{vault}/setup", json={"setup_token": setup_token, "link": link0}
        )
        if response.status_code != 201:
            raise refused(response, "creating the first approver")
        fingerprint = dirs.vault_fingerprint(link0)
        if response.json().get("fingerprint") != fingerprint:
            raise RelayRefused("the relay reports another vault fingerprint than this device made")
        # Read the directory back and verify it from the link we signed.
        links = client.get(f"/v1/vaults/{vault}/directory").json()["links"]
        dirs.verify_directory(links, pinned=fingerprint)
    finally:
        if http is None:
            client.close()
    keys = ApproverKeys(server=server.rstrip("/"), vault=vault, fingerprint=fingerprint,
                        record=record, hpke=hpke, sig=sig)  # fmt: skip
    return SetupResult(keys=keys, safety_code=dirs.vault_safety_code(link0))
