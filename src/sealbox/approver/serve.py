"""The automated approver: answers pending requests by rules, on the organisation's hardware.

It listens to the relay's approvals stream, fetches each new request,
verifies everything (:func:`~sealbox.approver.review.review`), and asks the
rules.  Approve: it releases its shares (or signs a store's manifest).
Deny: it signs a deny with the rule's reason.  No rule: the request is left
for a person.  A request that does not verify is never answered and is
logged as an alert: it is what a tampering relay would produce.

Every decision is written to a local JSON-lines log (ids, paths, field
names, rule, outcome; never a value) and is in the relay's audit through the
signed answer itself.
"""

from __future__ import annotations

import concurrent.futures
import json
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

import httpx

from sealbox.approver import review as rv
from sealbox.approver.rules import RuleSet
from sealbox.approver.session import ApproverSession
from sealbox.errors import SealboxError, VerificationError
from sealbox.protocol.store import VerifiedManifests

__all__ = ["AutomatedApprover"]

#: Most requests answered at once (each is a few signatures and HPKE operations).
WORKERS = 4


class AutomatedApprover:
    def __init__(
        self,
        session: ApproverSession,
        rules: RuleSet,
        *,
        log: TextIO,
        clock: Callable[[], float] = time.time,
        workers: int = WORKERS,
    ) -> None:
        self.session = session
        self.rules = rules
        self.log = log
        self.clock = clock
        self._lock = threading.Lock()
        self._handled: set[str] = set()
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
        # The same few manifests come with request after request: each exact token is
        # verified once per directory head, and looked up after that.
        self._manifests = VerifiedManifests()
        self.stopping = threading.Event()

    def _record(self, **entry: Any) -> None:
        entry = {"at": int(self.clock()), **entry}
        line = json.dumps(entry, separators=(",", ":"), sort_keys=True)
        with self._lock:
            self.log.write(line + "\n")
            self.log.flush()

    def _claim(self, request_id: str) -> bool:
        with self._lock:
            if request_id in self._handled:
                return False
            self._handled.add(request_id)
            if len(self._handled) > 100_000:  # bounded memory: old ids are long expired
                self._handled.clear()
                self._handled.add(request_id)
            return True

    def handle(self, request_id: str) -> str:
        """Decide one pending request; return the outcome written to the log."""
        session = self.session
        response = session.request("GET", f"/approvals/{request_id}")
        if response.status_code == 404:
            return "gone"
        if response.status_code != 200:
            self._record(request=request_id, outcome="error", error=f"HTTP {response.status_code}")
            return "error"
        entry = response.json()
        now = int(self.clock())
        try:
            directory = session.directory()
            try:
                rev = rv.review(entry, directory=directory, keys=session.keys, now=now,
                                known=self._manifests)  # fmt: skip
            except SealboxError:
                # Perhaps signed by an approver added a moment ago: look again once.
                directory = session.directory(fresh=True)
                rev = rv.review(entry, directory=directory, keys=session.keys, now=now,
                                known=self._manifests)  # fmt: skip
        except SealboxError as exc:
            self._record(request=request_id, kind=entry.get("kind"), outcome="unverifiable",
                         severity="alert", error=exc.code, message=exc.message)  # fmt: skip
            return "unverifiable"
        with self._lock:
            decision = self.rules.decide(rev)
        facts = {
            "request": rev.id, "kind": rev.kind, "client": rev.client_id,
            "client_name": rev.client_name,
            "items": [{"path": i.path, "version": i.version, "fields": list(i.fields)}
                      for i in rev.items],
            "purpose": rev.purpose,
        }  # fmt: skip
        if decision is None:
            self._record(**facts, outcome="left for a person")
            return "left"
        try:
            if decision.approve and rev.kind == "access":
                token = rv.release_token(rev, directory=directory, keys=session.keys, now=now,
                                         cache_seconds=decision.cache_seconds,
                                         known=self._manifests)  # fmt: skip
                session.ok("POST", f"/access-requests/{rev.id}/release", "releasing",
                           json_body={"release": token})  # fmt: skip
            elif decision.approve:
                token = rv.manifest_token(rev, directory=directory, keys=session.keys, now=now)
                session.ok("POST", f"/store-requests/{rev.id}/manifest", "approving a store",
                           json_body={"manifest": token})  # fmt: skip
            else:
                token = rv.deny_token(rev.id, reason=decision.reason, directory=directory,
                                      keys=session.keys, now=now)  # fmt: skip
                session.ok("POST", f"/{rev.kind}-requests/{rev.id}/deny", "denying",
                           json_body={"deny": token})  # fmt: skip
        except VerificationError as exc:
            # Opening the shares found what review could not: still the relay's doing.
            self._record(**facts, rule=decision.rule, outcome="unverifiable", severity="alert",
                         error=exc.code, message=exc.message)  # fmt: skip
            return "unverifiable"
        except SealboxError as exc:
            self._record(**facts, rule=decision.rule, outcome="failed", error=exc.code,
                         message=exc.message)  # fmt: skip
            return "failed"
        outcome = "approved" if decision.approve else "denied"
        self._record(**facts, rule=decision.rule, outcome=outcome)
        return outcome

    def _submit(self, request_id: str) -> None:
        def run() -> None:
            try:
                self.handle(request_id)
            except (httpx.HTTPError, SealboxError) as exc:
                self._record(request=request_id, outcome="error", error=type(exc).__name__)

        self._pool.submit(run)

    def run(self, *, on_ready: Callable[[], None] | None = None) -> None:
        """Follow the approvals stream until :attr:`stopping` is set; reconnect on errors."""
        backoff = 0.5
        while not self.stopping.is_set():
            try:
                with self.session.stream() as events:
                    backoff = 0.5
                    if on_ready is not None:
                        on_ready()
                        on_ready = None
                    for event, data in events:
                        if self.stopping.is_set():
                            return
                        if event == "directory":
                            self.session.forget_directory()
                        elif (
                            event == "request"
                            and isinstance(data, dict)
                            and data.get("state") == "pending"
                            and isinstance(data.get("id"), str)
                            and self._claim(data["id"])
                        ):
                            self._submit(data["id"])
            except SealboxError as exc:
                self._record(outcome="stream_error", error=exc.code, message=exc.message)
            except httpx.HTTPError as exc:
                self._record(outcome="stream_error", error=type(exc).__name__)
            if self.stopping.wait(backoff):
                return
            backoff = min(backoff * 2, 10)

    def close(self) -> None:
        self.stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=False)
