"""An approver's acts on the vault: approving logins, pairing and removing devices, grants.

Each act is signed on this device; the relay only stores what verifies.

* A login (RFC 8628) is approved by certifying the client key the person's
  terminal showed; the person confirms by typing the user code.
* A new approver device is added by signing a directory link for the record
  whose pairing code the person confirmed on both screens
  (:func:`~sealbox.protocol.directory.pairing_code`).
* Removing an approver signs a ``remove`` link, after checking that no item
  would be left with fewer holders than its threshold; items any one holder
  can open (threshold 1) that this device holds are re-sealed as a new
  version for the remaining holders.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from sealbox._relay.calls import Call, Flow, expect_object, field
from sealbox._relay.directory import DirectoryView, directory_flow, pin_flow
from sealbox._relay.drive import SyncDriver
from sealbox._relay.text import displayable
from sealbox.approver.keystore import ApproverKeys
from sealbox.approver.session import ApproverSession
from sealbox.crypto import aead, hpke
from sealbox.crypto.encoding import b64u_decode, b64u_encode
from sealbox.crypto.keys import HpkePrivateKey, SigningKey, VerifyKey
from sealbox.errors import BindingMismatch, MalformedInput, NotAuthorized, RelayRefused
from sealbox.protocol import directory as dirs
from sealbox.protocol import ids
from sealbox.protocol.certificates import issue_certificate
from sealbox.protocol.statements import (
    ApproverRecord,
    ClientConstraints,
    ClientInfo,
    ItemManifest,
)
from sealbox.protocol.store import (
    manifest_hash,
    parse_share,
    store_as_approver,
    verify_manifest,
    wrap_info,
)

__all__ = [
    "CERTIFICATE_DAYS",
    "Removal",
    "approve_login",
    "pair_new_device",
    "plan_removal",
    "remove_approver",
]

#: How long a certificate for a person's login lasts (its refresh tokens end with it).
CERTIFICATE_DAYS = 30


def approve_login(session: ApproverSession, login: dict[str, Any], *, scopes: list[str],
                  grant: str | None, days: int = CERTIFICATE_DAYS) -> str:  # fmt: skip
    """Certify the key of a pending login (as listed by the relay); grant ``grant`` if given."""
    directory = session.directory(fresh=True)
    now = int(time.time())
    client = ClientInfo(
        id=ids.check_id(login.get("client_id"), ids.CLIENT, what="client id"), kind="human",
        name=str(login.get("client_name"))[:128],
        sig_pk=VerifyKey.from_text(login.get("sig_pk")),
    )  # fmt: skip
    cert = issue_certificate(
        directory, issuer=session.id, key=session.keys.sig, client=client, scopes=scopes,
        constraints=ClientConstraints(not_after=now + days * 86400), now=now,
    )  # fmt: skip
    session.ok("POST", f"/device-requests/{login['user_code']}/approve", "approving the login",
               json_body={"certificate": cert})  # fmt: skip
    if grant:
        session.ok("POST", f"/clients/{client.id}/grants", "granting access",
                   json_body={"pattern": grant})  # fmt: skip
    return client.id


def add_device(session: ApproverSession, record: ApproverRecord) -> dirs.Directory:
    """Sign and append the directory link that adds ``record`` (after the codes matched)."""
    directory = session.directory(fresh=True)
    link = dirs.append_link(directory, "add", record, signer=session.id, key=session.keys.sig,
                            now=int(time.time()))  # fmt: skip
    session.ok("POST", "/directory", "adding the device", json_body={"link": link})
    session.forget_directory()
    return session.directory(fresh=True)


# --- the new device's side -------------------------------------------------------------------


@dataclass(frozen=True)
class PairingStarted:
    vault: str
    pairing_id: str
    record: ApproverRecord
    hpke: HpkePrivateKey
    sig: SigningKey
    fingerprint: str
    """The vault fingerprint this device pinned (trust on first use)."""
    safety_code: str
    pairing_code: str


def _pair_flow(name: str, kind: str) -> Flow:
    info = expect_object((yield Call("GET", "/v1/vault", auth=False)), "looking up the vault")
    vault = ids.check_id(info.get("vault"), ids.VAULT, what="vault")
    # Trust on first use: the person compares the vault safety code shown here
    # with the one on an approver that is already in the vault.
    directory = yield from pin_flow(vault)
    hpke_key, sig = HpkePrivateKey.generate(), SigningKey.generate()
    record = ApproverRecord(id=ids.new_id(ids.APPROVER), name=name[:128], kind=kind,
                            tier="device", hpke_pk=hpke_key.public_key(),
                            sig_pk=sig.verify_key())  # fmt: skip
    reply = yield Call("POST", f"/v1/vaults/{vault}/pairing-requests",
                       json={"approver": record.to_json()}, auth=False)  # fmt: skip
    body = expect_object(reply, "asking to pair", status=201)
    return PairingStarted(
        vault=vault, pairing_id=field(body, "id", str, "asking to pair"), record=record,
        hpke=hpke_key, sig=sig, fingerprint=directory.fingerprint,
        safety_code=directory.safety_code, pairing_code=dirs.pairing_code(record),
    )  # fmt: skip


def pair_new_device(http: httpx.Client, server: str, *, name: str,
                    kind: str = "terminal") -> PairingStarted:  # fmt: skip
    """Make this device's keys and ask the vault to add it; the caller then polls."""
    started: PairingStarted = SyncDriver(http, server).drive(_pair_flow(name, kind))
    return started


def _pairing_done_flow(server: str, started: PairingStarted) -> Flow:
    path = f"/v1/vaults/{started.vault}/pairing-requests/{started.pairing_id}"
    body = expect_object((yield Call("GET", path, auth=False)), "checking the pairing")
    state = body.get("state")
    if state == "pending":
        return None
    if state != "approved":
        raise RelayRefused(
            f"the pairing was {displayable(state, 32)}",
            hint="Ask an approver to add this device, then run it again.",
        )
    view = DirectoryView(vault=started.vault, fingerprint=started.fingerprint, head=None)
    directory = yield from directory_flow(view, fresh=True)
    if directory.approvers.get(started.record.id) != started.record:
        raise BindingMismatch("the directory does not hold this device's keys as they were sent")
    return ApproverKeys(server=server, vault=started.vault, fingerprint=started.fingerprint,
                        record=started.record, hpke=started.hpke, sig=started.sig)  # fmt: skip


def pairing_done(http: httpx.Client, server: str, started: PairingStarted) -> ApproverKeys | None:
    """``None`` while pending; the keys once the directory holds exactly this record."""
    keys: ApproverKeys | None = SyncDriver(http, server).drive(_pairing_done_flow(server, started))
    return keys


# --- removal ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemPlan:
    path: str
    item: str
    version: int
    threshold: int
    remaining: tuple[str, ...]
    action: str
    """``keep`` (not a holder), ``reseal`` (this device re-wraps it), ``stranded``
    (fewer holders than the threshold would remain), ``warn`` (still openable, but
    only another holder can re-seal it)."""


@dataclass(frozen=True)
class Removal:
    target: str
    plans: tuple[ItemPlan, ...]

    @property
    def stranded(self) -> list[ItemPlan]:
        return [p for p in self.plans if p.action == "stranded"]


def _latest(
    session: ApproverSession, item: str, directory: dirs.Directory
) -> tuple[str, ItemManifest]:
    body = session.ok("GET", f"/items/{item}/versions", "reading an item")
    token = body["versions"][-1]["manifest"]
    return token, verify_manifest(token, directory)


def plan_removal(session: ApproverSession, target: str) -> Removal:
    directory = session.directory(fresh=True)
    directory.approver(target)
    if len(directory.approvers) == 1:
        raise NotAuthorized("the last approver of a vault cannot be removed")
    after = set(directory.approvers) - {target}
    plans = []
    for entry in session.ok("GET", "/items", "listing items")["items"]:
        _, manifest = _latest(session, entry["id"], directory)
        holders = manifest.keyset.approvers
        if target not in holders:
            continue
        remaining = tuple(a for a in holders if a in after)
        if len(remaining) < manifest.keyset.threshold:
            action = "stranded"
        elif manifest.keyset.threshold == 1 and session.id in holders and session.id != target:
            action = "reseal"
        else:
            action = "warn"
        plans.append(ItemPlan(path=manifest.path, item=manifest.item, version=manifest.version,
                              threshold=manifest.keyset.threshold, remaining=remaining,
                              action=action))  # fmt: skip
    return Removal(target=target, plans=tuple(plans))


def _reseal(session: ApproverSession, plan: ItemPlan, directory: dirs.Directory) -> int:
    """Store the item again, sealed for the remaining holders; return the new version."""
    token, manifest = _latest(session, plan.item, directory)
    me = session.id
    wraps = session.ok("GET", f"/items/{plan.item}/versions/{manifest.version}/wraps/{me}",
                       "reading this device's shares")["wraps"]  # fmt: skip
    cts = session.ok("GET", f"/items/{plan.item}/versions/{manifest.version}/ciphertexts",
                     "reading the ciphertexts")["ciphertexts"]  # fmt: skip
    values = {}
    for name, cipher in manifest.fields.items():
        info = wrap_info(vault=manifest.vault, item=manifest.item, version=manifest.version,
                         field=name, approver=me)  # fmt: skip
        share = parse_share(hpke.open_sealed(session.keys.hpke, b64u_decode(wraps[name]), info),
                            keyset=manifest.keyset, approver=me)  # fmt: skip
        values[name] = aead.decrypt_field(
            share[1:], cipher.nonce, b64u_decode(cts[name]), vault=manifest.vault,
            item=manifest.item, version=manifest.version, field=name,
        )  # fmt: skip
    holders = [a for a in manifest.keyset.approvers if a in directory.approvers]
    direct = store_as_approver(
        directory=directory, approver=me, key=session.keys.sig, item=manifest.item,
        path=manifest.path, version=manifest.version + 1, prev=manifest_hash(token),
        values=values, approvers=holders, threshold=1, now=int(time.time()),
        item_type=manifest.type,
    )  # fmt: skip
    session.ok("POST", "/items", "re-sealing", json_body={
        "manifest": direct.manifest,
        "ciphertexts": {f: b64u_encode(c) for f, c in direct.ciphertexts.items()},
        "wraps": {a: {f: b64u_encode(w) for f, w in fs.items()} for a, fs in direct.wraps.items()},
    })  # fmt: skip
    return manifest.version + 1


def remove_approver(
    session: ApproverSession, removal: Removal, *, force: bool = False
) -> list[str]:
    """Sign the remove link, then re-seal what this device can; return what was done."""
    if removal.stranded and not force:
        raise MalformedInput(
            f"{len(removal.stranded)} item(s) would be left with fewer holders than their "
            "threshold and could never be read again",
            hint="Re-store them for other approvers first, or pass --force to lose them.",
        )
    directory = session.directory(fresh=True)
    record = directory.approver(removal.target)
    link = dirs.append_link(directory, "remove", record, signer=session.id,
                            key=session.keys.sig, now=int(time.time()))  # fmt: skip
    session.ok("POST", "/directory", "removing the approver", json_body={"link": link})
    session.forget_directory()
    after = session.directory(fresh=True)
    done = [f"removed {removal.target} from the directory"]
    for plan in removal.plans:
        if plan.action == "reseal":
            version = _reseal(session, plan, after)
            done.append(f"re-sealed {plan.path} as version {version} for {len(plan.remaining)} "
                        "holder(s)")  # fmt: skip
        elif plan.action == "warn":
            done.append(f"{plan.path}: still readable by the remaining holders; only one of them "
                        "can re-seal it")  # fmt: skip
        elif plan.action == "stranded":
            done.append(f"{plan.path}: LOST (fewer holders than its threshold remain)")
    return done
