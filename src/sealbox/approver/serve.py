"""The automated approver: answers pending requests by rules, on the organisation's hardware.

It listens to the relay's approvals stream, fetches each new request,
verifies everything (:func:`~sealbox.approver.answer.examine`), and asks the
rules.  Approve: it releases its shares (or signs a store's manifest).
Deny: it signs a deny with the rule's reason.  No rule: the request is left
for a person.  A request that does not verify is refused with a signed deny
whose grounds say so (its client fails at once, told the relay may be
tampering), and is logged as an alert.

It never loses a request to an outage: an answer that failed for a transient
reason (the relay unreachable, 5xx, 429) is tried again with backoff while the
request is pending, and on every (re)connection it lists what is waiting and
handles what it has not answered.

Every decision is written to a local JSON-lines log (ids, paths, field
names, rule, outcome; never a value) and is in the relay's audit through the
signed answer itself.

A read of a canary (its approver-signed manifest says so) is decided only
by a rule that says ``canary = true``.  Once this approver released one, it
raises its own alarm, whatever the relay does with its own: a ``critical``
line in the log and, with ``--on-canary CMD``, CMD run with the facts in its
environment (:func:`canary_environment`; never a value).
"""

from __future__ import annotations

import concurrent.futures
import heapq
import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

import httpx

from sealbox.approver import consents
from sealbox.approver.answer import (
    Approve,
    Backoff,
    Decision,
    Deny,
    Outcome,
    Refuse,
    Unverifiable,
    answer,
    describe,
    examine,
    fetch,
    pending,
    transient,
)
from sealbox.approver.rules import RuleSet
from sealbox.approver.session import ApproverSession
from sealbox.errors import DirectoryBroken, Expired, SealboxError
from sealbox.protocol.store import VerifiedManifests

__all__ = ["AutomatedApprover", "canary_environment"]

#: Most requests answered at once (each is a few signatures and HPKE operations).
log = logging.getLogger("sealbox.approver")

WORKERS = 4
#: Most request ids remembered as claimed (answered, left for a person, or being handled).
CLAIMS_MAX = 100_000
#: Longest an ``--on-canary`` command may run before it is killed (seconds).
CANARY_COMMAND_SECONDS = 60.0


def canary_environment(facts: Mapping[str, Any]) -> dict[str, str]:
    """What an ``--on-canary`` command is told, as ``SEALBOX_CANARY_*`` variables.

    Ids, paths and names from the verified request; the source address only as the
    relay reported it.  Never a value: this approver does not even keep one.
    """

    def text(value: object) -> str:
        return str(value or "").replace("\0", "")[:1000]

    return {
        "SEALBOX_CANARY_PATHS": " ".join(text(p) for p in facts.get("canary") or ()),
        "SEALBOX_CANARY_REQUEST": text(facts.get("request")),
        "SEALBOX_CANARY_CLIENT": text(facts.get("client")),
        "SEALBOX_CANARY_CLIENT_NAME": text(facts.get("client_name")),
        "SEALBOX_CANARY_PURPOSE": text(facts.get("purpose")),
        "SEALBOX_CANARY_SOURCE_IP": text(facts.get("source_ip")),
        "SEALBOX_CANARY_RULE": text(facts.get("rule")),
    }


def _without_sealbox(env: Mapping[str, str]) -> dict[str, str]:
    """The environment minus sealbox's own settings: SEALBOX_PASSPHRASE opens this approver's
    key file, and an alarm command has no business with it."""
    return {k: v for k, v in env.items() if not k.startswith("SEALBOX_")}


class AutomatedApprover:
    def __init__(
        self,
        session: ApproverSession,
        rules: RuleSet,
        *,
        log: TextIO,
        clock: Callable[[], float] = time.time,
        workers: int = WORKERS,
        on_canary: Sequence[str] | None = None,
    ) -> None:
        self.session = session
        self.rules = rules
        self.log = log
        self.clock = clock
        self.on_canary = list(on_canary) if on_canary else None
        """The command (argv) run after this approver released a canary."""
        self._alarms: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._claimed: set[str] = set()
        """Requests being handled, answered, or left for a person: not handled again."""
        self._decided: dict[str, tuple[str, Decision]] = {}
        """(rule, decision) of requests whose answer is being retried: the rules are not asked
        twice (an approve rule's rate counts each decision)."""
        self._backoff: dict[str, tuple[Backoff, str | None]] = {}
        """Requests being retried: the waits between attempts, and the last failure logged."""
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
        self._retries = _Retries(self._retry)
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

    # --- claims: each request handled by one worker at a time, and answered once ---

    def _claim(self, request_id: str) -> bool:
        with self._lock:
            if request_id in self._claimed:
                return False
            if len(self._claimed) >= CLAIMS_MAX:  # bounded memory: old ids are long expired
                self._claimed.clear()
            self._claimed.add(request_id)
            return True

    def _unclaim(self, request_id: str) -> None:
        with self._lock:
            self._claimed.discard(request_id)

    def _done(self, request_id: str) -> None:
        """Nothing more to try for this request (it stays claimed)."""
        with self._lock:
            self._decided.pop(request_id, None)
            self._backoff.pop(request_id, None)

    # --- handling one request ---

    def handle(self, request_id: str, entry: Mapping[str, Any] | None = None) -> str:
        """Decide one pending request; return the outcome written to the log.

        ``entry``: the request as just listed by the relay (else it is fetched).
        Transport errors and the relay's 5xx / 429 are raised (see :meth:`_run`).
        """
        session = self.session
        if entry is None:
            entry = fetch(session, request_id)
            if entry is None:
                return "gone"  # answered by another approver, withdrawn or expired
        if entry.get("answered"):
            return "answered before"
        now = int(self.clock())
        try:
            examined = examine(session, entry, now=now, known=self._manifests)
        except (Expired, DirectoryBroken) as exc:
            # Not the request's doing, or nothing to sign under: no answer, but said.
            severity = "alert" if isinstance(exc, DirectoryBroken) else "warning"
            self._record(request=request_id, kind=entry.get("kind"), outcome="not answered",
                         severity=severity, error=exc.code, message=exc.message)  # fmt: skip
            return "not answered"
        if isinstance(examined, Unverifiable):
            alert = {
                "request": request_id, "kind": entry.get("kind"), "outcome": "unverifiable",
                "severity": "alert", "error": examined.code, "message": examined.message,
            }  # fmt: skip
            try:
                done = answer(session, examined, Refuse(), now=now)
            except SealboxError as exc:
                if transient(exc):
                    raise
                self._record(**alert, answer="not refused", answer_error=exc.message)
                return "unverifiable"
            self._record(**alert, answer=done.answer)
            return "unverifiable"
        rev = examined
        facts: dict[str, Any] = {
            "request": rev.id, "kind": rev.kind, "client": rev.client_id,
            "client_name": rev.client_name,
            "items": [{"path": i.path, "version": i.version, "fields": list(i.fields)}
                      for i in rev.items],
            "purpose": rev.purpose,
            # Which policy applies: signed (verified, windows and destroy date checked by this
            # process's clock) or only reported by the relay (signed_by null).
            "policies": [{"path": p.path, "pattern": p.pattern, "signed_by": p.signed_by,
                          "axes": list(p.axes)} for p in rev.policies],
        }  # fmt: skip
        if rev.kind == "access" and rev.canaries:
            facts["canary"] = list(rev.canaries)
            facts["source_ip"] = rev.reported_by_server.get("source_ip")
        with self._lock:
            decided = self._decided.get(rev.id)
            if decided is None:
                rule = self.rules.decide(rev)
                if rule is None:
                    decided = None
                else:
                    decision: Decision = (
                        Approve(cache_seconds=rule.cache_seconds) if rule.approve
                        else Deny(reason=rule.reason)
                    )  # fmt: skip
                    decided = self._decided[rev.id] = (rule.rule, decision)
        if decided is None:
            self._record(**facts, outcome="left for a person")
            return "left"
        rule_name, decision = decided
        try:
            done = answer(session, rev, decision, now=now, known=self._manifests)
        except SealboxError as exc:
            if transient(exc):
                raise
            self._record(**facts, rule=rule_name, outcome="failed", error=exc.code,
                         message=exc.message)  # fmt: skip
            return "failed"
        return self._answered(facts, rule_name, done)

    def _answered(self, facts: dict[str, Any], rule: str, done: Outcome) -> str:
        if done.answer == "refused":
            # Opening the shares found what review could not: still the relay's doing.
            self._record(**facts, rule=rule, outcome="unverifiable", severity="alert",
                         error=done.code, answer="refused")  # fmt: skip
            return "unverifiable"
        if done.answer == "ended":
            self._record(**facts, rule=rule, outcome="gone",
                         message="no longer waiting when answered: answered by another "
                         "approver, withdrawn or expired")  # fmt: skip
            return "gone"
        outcome = "denied" if done.answer == "denied" else "approved"
        self._record(**facts, rule=rule, outcome=outcome)
        if outcome == "approved" and facts.get("canary"):
            self._canary_released({**facts, "rule": rule})
        return outcome

    # --- canaries: this approver's own alarm, whatever the relay does with its own ---

    def _canary_released(self, facts: dict[str, Any]) -> None:
        self._record(**facts, outcome="canary released", severity="critical",
                     message="released a canary: its reader has the decoy value; the relay "
                     "should alert and freeze the project")  # fmt: skip
        if self.on_canary is None:
            return
        alarm = threading.Thread(target=self._run_canary_command, args=(facts,),
                                 name="sealbox-on-canary", daemon=True)  # fmt: skip
        with self._lock:
            self._alarms = [t for t in self._alarms if t.is_alive()] + [alarm]
        alarm.start()

    def _run_canary_command(self, facts: dict[str, Any]) -> None:
        assert self.on_canary is not None
        entry = {"request": facts.get("request"), "outcome": "canary command"}
        try:
            # The operator's own command line, given to `serve`; the request's facts go
            # only into its environment, never into its arguments.
            done = subprocess.run(  # noqa: S603
                self.on_canary, env={**_without_sealbox(os.environ), **canary_environment(facts)},
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                timeout=CANARY_COMMAND_SECONDS, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            self._record(**entry, severity="alert", error="timeout",
                         message=f"the --on-canary command ran over {CANARY_COMMAND_SECONDS:g} s "
                         "and was killed")  # fmt: skip
            return
        except OSError as exc:
            self._record(**entry, severity="alert", error="not_started",
                         message=f"the --on-canary command could not be started: "
                         f"{exc.strerror or exc}")  # fmt: skip
            return
        self._record(**entry, exit=done.returncode,
                     **({"severity": "alert"} if done.returncode else {}))  # fmt: skip

    def _run(self, request_id: str, entry: Mapping[str, Any] | None) -> None:
        """Handle one claimed request on a worker; on a transient failure, try again later."""
        try:
            self.handle(request_id, entry)
        except (httpx.HTTPError, SealboxError) as exc:
            if transient(exc) and not self.stopping.is_set():
                message = describe(exc)
                with self._lock:
                    backoff, said = self._backoff.get(request_id, (Backoff(), None))
                    self._backoff[request_id] = (backoff, message)
                    delay = backoff.next()
                retry_after = getattr(exc, "retry_after", None)
                if retry_after:
                    delay = max(delay, retry_after)
                if message != said:
                    # Once per request and cause: an outage is not a line per attempt.
                    self._record(request=request_id, outcome="retrying",
                                 error=getattr(exc, "code", "relay_unreachable"),
                                 message=message)  # fmt: skip
                # Released: the retry below, or the listing at the next (re)connection,
                # whichever comes first, handles it again.
                self._unclaim(request_id)
                self._retries.schedule(request_id, delay)
                return
            code = exc.code if isinstance(exc, SealboxError) else "relay_error"
            self._record(request=request_id, outcome="error", error=code, message=describe(exc))
        except Exception as exc:
            # A worker never loses a failure silently: the pool would swallow it and the
            # request would wait unanswered with nothing said.  The type only: its text
            # could quote what the request carried.
            log.exception("handling request %s failed", request_id)
            self._record(request=request_id, outcome="error", severity="alert",
                         error="internal_error", message=type(exc).__name__)  # fmt: skip
        self._done(request_id)

    def _submit(self, request_id: str, entry: Mapping[str, Any] | None = None) -> None:
        if self._claim(request_id):
            try:
                self._pool.submit(self._run, request_id, entry)
            except RuntimeError:  # closing: the workers take nothing new
                self._unclaim(request_id)

    def _retry(self, request_id: str) -> None:
        if not self.stopping.is_set():
            self._submit(request_id)

    def _catch_up(self) -> None:
        """Handle every request waiting that this approver has not answered (on each connect)."""
        for entry in pending(self.session):
            if not entry.get("answered"):
                self._submit(entry["id"], entry)
        self._consents()

    # --- consent requests: a rule must name the action and the client, else a person decides ---

    def _consents(self) -> None:
        """Hand every consent request waiting and not yet handled to a worker."""
        for entry in consents.pending(self.session):
            key = "consent " + entry["id"]
            if self._claim(key):
                try:
                    self._pool.submit(self._run_consent, key, entry)
                except RuntimeError:  # closing: the workers take nothing new
                    self._unclaim(key)

    def _run_consent(self, key: str, entry: Mapping[str, Any]) -> None:
        try:
            self.handle_consent(entry)
        except (httpx.HTTPError, SealboxError) as exc:
            code = exc.code if isinstance(exc, SealboxError) else "relay_error"
            self._record(request=entry.get("id"), kind="consent", outcome="error", error=code,
                         message=describe(exc))  # fmt: skip
            if transient(exc):
                self._unclaim(key)  # handled again on the next listing
        except Exception as exc:
            log.exception("handling consent request %s failed", entry.get("id"))
            self._record(request=entry.get("id"), kind="consent", outcome="error",
                         severity="alert", error="internal_error",
                         message=type(exc).__name__)  # fmt: skip

    def handle_consent(self, entry: Mapping[str, Any]) -> str:
        """Decide one pending consent request by the rules; return the outcome logged."""
        now = int(self.clock())
        try:
            examined = consents.examine(self.session, entry, now=now)
        except (Expired, DirectoryBroken) as exc:
            self._record(request=entry.get("id"), kind="consent", outcome="not answered",
                         error=exc.code, message=exc.message)  # fmt: skip
            return "not answered"
        if isinstance(examined, Unverifiable):
            done = consents.answer(self.session, examined, Refuse(), now=now)
            self._record(request=examined.id, kind="consent", outcome="unverifiable",
                         severity="alert", error=examined.code, message=examined.message,
                         answer=done.answer)  # fmt: skip
            return "unverifiable"
        facts = {"request": examined.id, "kind": "consent", "client": examined.client_id,
                 "client_name": examined.client_name, "action": examined.action,
                 "details": examined.details_hash, "purpose": examined.purpose}  # fmt: skip
        with self._lock:
            rule = self.rules.decide_consent(examined)
        if rule is None:
            self._record(**facts, outcome="left for a person")
            return "left"
        decision: Decision = Approve() if rule.approve else Deny(reason=rule.reason)
        done = consents.answer(self.session, examined, decision, now=now)
        outcome = {"consented": "approved", "denied": "denied"}.get(done.answer, "gone")
        self._record(**facts, rule=rule.rule, outcome=outcome)
        return outcome

    # --- the stream ---

    def run(self, *, on_ready: Callable[[], None] | None = None) -> None:
        """Follow the approvals stream until :attr:`stopping` is set; reconnect on errors.

        Reconnects quietly with :class:`~sealbox.approver.answer.Backoff`; the log
        gets one ``disconnected`` line per outage and one ``reconnected`` line.
        """
        backoff = Backoff()
        lost = False
        while not self.stopping.is_set():
            reason = "the relay ended the approvals stream"
            try:
                with self.session.stream() as events:
                    backoff.reset()
                    if lost:
                        self._record(outcome="reconnected")
                        lost = False
                    if on_ready is not None:
                        on_ready()
                        on_ready = None
                    # After the stream is open, so nothing created meanwhile is missed.
                    self._catch_up()
                    for event, data in events:
                        if self.stopping.is_set():
                            return
                        if event == "directory":
                            self.session.forget_directory()
                        elif event == "consent-requests":
                            self._consents()
                        elif (
                            event == "request"
                            and isinstance(data, dict)
                            and data.get("state") == "pending"
                            and isinstance(data.get("id"), str)
                        ):
                            self._submit(data["id"])
            except (SealboxError, httpx.HTTPError) as exc:
                reason = describe(exc)
            if self.stopping.is_set():
                return
            if not lost:
                self._record(outcome="disconnected", message=reason)
                lost = True
            if self.stopping.wait(backoff.next()):
                return

    def close(self) -> None:
        self.stopping.set()
        self._retries.close()
        self._pool.shutdown(wait=True, cancel_futures=False)
        # A canary alarm under way is let finish (bounded by its own timeout): stopping
        # right after releasing a canary must not swallow the alarm.
        with self._lock:
            alarms = list(self._alarms)
        for alarm in alarms:
            alarm.join(CANARY_COMMAND_SECONDS + 5)


class _Retries:
    """Request ids to hand back to the approver once their wait is over (one timer thread)."""

    def __init__(self, due: Callable[[str], None]) -> None:
        self._due = due
        self._heap: list[tuple[float, str]] = []
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="sealbox-retries", daemon=True)
        self._thread.start()

    def schedule(self, request_id: str, delay: float) -> None:
        with self._wake:
            heapq.heappush(self._heap, (time.monotonic() + delay, request_id))
            self._wake.notify()

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(5)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._wake.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                if self._closed:
                    return
                _, request_id = heapq.heappop(self._heap)
            self._due(request_id)
