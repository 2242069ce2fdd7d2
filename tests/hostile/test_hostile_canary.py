"""A hostile relay and canaries: it cannot pass a canary off as a plain item to an approver.

The relay raises a canary's alarm (``canary.read``, the freeze), so a compromised
relay can keep quiet; what stops it from going further is that the approver
takes the type from the manifest an approver signed.  Relabelling the type (to
dodge the automated approver's ``canary = true`` rule, or a person's CANARY
warning) breaks the manifest's signature, and the approver refuses the request.
The approver's own alarm when it does release one is tested end to end in
``tests/e2e/test_e2e_canary.py`` (a relay whose canary handling is cut out).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sealbox.approver.keystore import ApproverKeys
from sealbox.approver.review import review
from sealbox.approver.rules import parse_rules
from sealbox.crypto.encoding import b64u_decode, b64u_encode
from sealbox.errors import SignatureInvalid
from sealbox.protocol import access as ac
from sealbox.protocol import ids
from sealbox.protocol import store as st
from sealbox.protocol.statements import AccessItem, RequestContext

#: The honest world of ``conftest.py`` (a ``World``); typed loosely because
#: conftest modules are not importable by name.
World = Any

PATH = "app/prod/aws-root"
DECOY = {"key": b"AKIA-hostile-canary-decoy"}


def _entry(w: World, manifest: str, direct: st.DirectStore, item: str) -> dict[str, Any]:
    """The approvals entry for a read of the canary, as an honest relay serves it to a0."""
    a0 = w.a[0]
    request = ac.build_access(
        client=w.client_id, key=w.client_key, vault=w.vault,
        items=[AccessItem(item=item, path=PATH, version=None, fields=("key",))],
        purpose="look around", context=RequestContext(), now=w.now,
    )  # fmt: skip
    wraps = {f: b64u_encode(v) for f, v in direct.wraps[a0.id].items()}
    return {
        "kind": "access", "id": request.hash.removeprefix("sha256:"), "certificate": w.cert,
        "enrollment": None, "statement": request.token, "threshold": 1, "approvals": 0,
        "items": {item: {"manifest": manifest, "wraps": wraps}}, "reported_by_server": {},
    }  # fmt: skip


def _canary(w: World) -> tuple[str, st.DirectStore]:
    a0 = w.a[0]
    item = ids.new_id(ids.ITEM)
    direct = st.store_as_approver(
        directory=w.directory, approver=a0.id, key=a0.sig, item=item, path=PATH, version=1,
        prev=None, values=DECOY, approvers=[a.id for a in w.a], threshold=1, now=w.now,
        item_type="canary",
    )  # fmt: skip
    return item, direct


def _keys(w: World) -> ApproverKeys:
    a0 = w.a[0]
    return ApproverKeys(server="http://relay", vault=w.vault, fingerprint=w.fingerprint,
                        record=a0.record, hpke=a0.hpke, sig=a0.sig)  # fmt: skip


def _relabel(manifest: str, item_type: str) -> str:
    header, payload, signature = manifest.split(".")
    claims = json.loads(b64u_decode(payload))
    assert claims["type"] == "canary"
    claims["type"] = item_type
    body = json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()
    return ".".join([header, b64u_encode(body), signature])


def test_an_honest_relay_shows_the_canary_and_plain_rules_pass_over_it(world: World) -> None:
    item, direct = _canary(world)
    rev = review(_entry(world, direct.manifest, direct, item), directory=world.directory,
                 keys=_keys(world), now=world.now)  # fmt: skip
    assert rev.canaries == (PATH,)
    rules = parse_rules('[[rule]]\nname = "any read"\ndecision = "approve"\n')
    assert rules.decide(rev) is None


def test_a_relay_relabelling_a_canary_as_a_secret_is_refused(world: World) -> None:
    item, direct = _canary(world)
    forged = _relabel(direct.manifest, "secret")
    with pytest.raises(SignatureInvalid):
        review(_entry(world, forged, direct, item), directory=world.directory,
               keys=_keys(world), now=world.now)  # fmt: skip
