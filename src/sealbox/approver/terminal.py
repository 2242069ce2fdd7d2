"""The terminal approver: a person answers requests, logins and new devices as they arrive.

Each pending request is shown with only verified information, labelled as
such, and what the relay alone reports apart from it; answering takes a
deliberate ``yes`` (or ``no`` and a reason) and the user verification the
command line supplies (the key file's passphrase, unless unlocked for a
while).  Answers go through :func:`sealbox.approver.answer.answer`, as the
automated approver's do.

It never goes stale:

- it keeps a queue of what is still waiting, fed by the approvals stream
  (whose ``request`` events carry each request's state) and by a fresh listing
  on every (re)connection, and drops what ended;
- it checks a request with the relay right before showing it and right before
  answering it, and says so plainly if it ended while on screen;
- a skipped request comes back when something new arrives, or after a quiet
  while; one that failed to send comes back the same way, and one whose
  passphrase was mistyped is offered again at once;
- it never offers what this approver already answered;
- it reconnects quietly with backoff, saying once that the relay was lost and
  once that it is back.

A request that does not verify is not shown: it is refused at once with a
signed refusal (its requester learns the relay may be tampering) and the
person is told.
"""

from __future__ import annotations

import datetime
import queue
import re
import shlex
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from sealbox._relay.text import displayable
from sealbox.approver import admin, agents, consents, machines, members
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
from sealbox.approver.review import ReportedActivity, Review, reported_activity
from sealbox.approver.session import ApproverSession
from sealbox.crypto.keys import VerifyKey
from sealbox.errors import DirectoryBroken, Expired, SealboxError
from sealbox.protocol import directory as dirs
from sealbox.protocol.statements import ApproverRecord

__all__ = ["ANSWER_PROMPT", "CONSENT_PROMPT", "SKIP_AGAIN", "Console", "TerminalApprover"]

ANSWER_PROMPT = "Approve? Type 'yes' to approve, 'no' to deny, Enter to skip: "
CONSENT_PROMPT = "Consent? Type 'yes' to consent, 'no' to refuse, Enter to skip: "
#: Seconds after which a skipped request is offered again even if nothing else happened.
SKIP_AGAIN = 60.0
#: Most request states remembered from the stream (old ones are long finished).
STATES_MAX = 100_000

#: How the end of a request reads, by the state the stream last reported for it.
_ENDED = {
    "released": "answered by another approver",
    "delivered": "answered by another approver",
    "stored": "answered by another approver",
    "denied": "answered by another approver",
    "cancelled": "withdrawn by its requester",
    "expired": "expired",
}


@dataclass(frozen=True)
class Console:
    """The terminal the approver talks through (the command line supplies it)."""

    say: Callable[[str], None]
    ask: Callable[[str], str]
    """Show a prompt and return the line typed (stripped)."""
    verify: Callable[[], bool]
    """User verification right before an answer is signed: the key file's passphrase
    (unless unlocked for a while).  ``False``: nothing is answered; it says why itself."""


def recent_text(activity: ReportedActivity | None) -> str:
    """The relay's count of a requester's requests lately, in words (it is the relay's only)."""
    if activity is None:
        return "no count of its recent requests"
    span = activity.window_seconds
    period = "hour" if span == 3600 else f"{span} seconds"
    more = "+" if activity.requests >= activity.counted_up_to else ""
    text = (f"{activity.requests}{more} request{'' if activity.requests == 1 else 's'} in the "
            f"last {period}, {activity.denials} denied")  # fmt: skip
    return text + ("; LOCKED OUT by the relay after denials in a row" if activity.locked else "")


def canary_banner(rev: Review) -> str:
    """The warning above a read of canaries (the type is in each verified manifest)."""
    line = "!" * 72
    return (f"{line}\n!!! CANARY: this request reads {', '.join(rev.canaries)}.\n"
            "!!! Nobody has a reason to read a canary: whoever asks may have stolen access.\n"
            "!!! Approving gives it the decoy value; the relay then alerts (critical) and\n"
            "!!! freezes the project. Denying tells the reader it was caught.\n"
            f"{line}")  # fmt: skip


def when(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


#: Tries at typing a login's user code before it is put aside for later.
CODE_TRIES = 3


class TerminalApprover:
    """The interactive loop: a reader thread follows the relay; this thread asks the person."""

    def __init__(self, session: ApproverSession, console: Console, *,
                 clock: Callable[[], float] = time.time) -> None:  # fmt: skip
        self.session = session
        self.console = console
        self.clock = clock
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._lock = threading.Lock()
        self._states: dict[str, str] = {}
        """Each request's latest state as the stream reported it (written by the reader)."""
        self._queue: list[str] = []
        """Requests still waiting, in the order they are offered."""
        self._later: dict[str, float] = {}
        """Skipped requests (and ones whose answer failed), with when they were put aside."""
        self._answered: set[str] = set()
        """Requests this approver answered: never offered again."""
        self._seen: set[str] = set()
        """Logins and pairings already shown in this session."""
        self._connected_once = False

    def say(self, text: str = "") -> None:
        self.console.say(text)

    # --- the reader thread ------------------------------------------------------------------

    def follow(self) -> None:
        """Follow the approvals stream for ever, reconnecting quietly with backoff.

        Puts ``connected`` (each time it is connected), ``lost`` (once per outage,
        with the reason in words) and the stream's events on :attr:`events`.
        """
        backoff = Backoff()
        lost = False
        while True:
            reason = "the relay ended the approvals stream"
            try:
                with self.session.stream() as stream:
                    backoff.reset()
                    lost = False
                    self.events.put(("connected", None))
                    for event, data in stream:
                        if event == "request" and isinstance(data, dict):
                            self._note_state(data)
                            self.events.put((event, data))
                        elif event in ("device-requests", "pairing", "agent-requests",
                                       "consent-requests", "directory"):  # fmt: skip
                            self.events.put((event, data))
            except (httpx.HTTPError, SealboxError) as exc:
                reason = describe(exc)
            if not lost:
                self.events.put(("lost", reason))
                lost = True
            time.sleep(backoff.next())

    def _note_state(self, data: dict[str, Any]) -> None:
        request_id, state = data.get("id"), data.get("state")
        if isinstance(request_id, str) and isinstance(state, str):
            with self._lock:
                if len(self._states) >= STATES_MAX:
                    self._states.clear()
                self._states[request_id] = state

    def _state(self, request_id: str) -> str | None:
        with self._lock:
            return self._states.get(request_id)

    # --- the main thread --------------------------------------------------------------------

    def loop(self) -> None:
        """Show the header, start following the relay, and ask until interrupted."""
        keys = self.session.keys
        directory = self.session.directory(fresh=True)
        self.say(f"sealbox approve: {keys.record.id} ({keys.record.name}), vault {keys.vault} "
                 f"at {keys.server}")  # fmt: skip
        self.say(f"Vault safety code: {directory.safety_code}")
        threading.Thread(target=self.follow, name="sealbox-approvals", daemon=True).start()
        while True:
            self.step()

    def step(self) -> None:
        """Take what the relay said, then offer the next request still waiting (if any)."""
        block = not self._queue
        timeout = self._next_return() if block else 0.0
        while True:
            try:
                event, data = self.events.get(block=block, timeout=timeout)
            except queue.Empty:
                break
            self._guarded(self.dispatch, event, data)
            block, timeout = False, 0.0
        if not self._queue:
            self._bring_back(due_only=True)
        if self._queue:
            request_id = self._queue.pop(0)
            self._guarded(self.offer, request_id)

    def _guarded(self, action: Callable[..., None], *args: Any) -> None:
        try:
            action(*args)
        except (SealboxError, httpx.HTTPError) as exc:
            # One request, login or device that cannot be handled must not end the session.
            self.say(f"!! Could not complete that: {describe(exc)}")

    def _next_return(self) -> float | None:
        """Seconds until the first skipped request is due again; ``None``: none put aside."""
        if not self._later:
            return None
        return max(0.0, min(self._later.values()) + SKIP_AGAIN - time.monotonic())

    def _bring_back(self, *, due_only: bool) -> None:
        now = time.monotonic()
        for request_id, since in list(self._later.items()):
            if not due_only or now - since >= SKIP_AGAIN:
                del self._later[request_id]
                self._enqueue(request_id)

    def _enqueue(self, request_id: str) -> None:
        if request_id not in self._answered and request_id not in self._queue:
            self._later.pop(request_id, None)
            self._queue.append(request_id)

    def _drop(self, request_id: str) -> None:
        if request_id in self._queue:
            self._queue.remove(request_id)
        self._later.pop(request_id, None)

    def _put_aside(self, request_id: str) -> None:
        self._later[request_id] = time.monotonic()

    def dispatch(self, event: str, data: Any) -> None:
        if event == "connected":
            if self._connected_once:
                self.say("Back in touch with the relay.")
            else:
                self.say("Watching for requests, logins, machines, agents and new devices "
                         "(Ctrl-C to stop).")  # fmt: skip
            self._connected_once = True
            self.show_logins()
            self.show_machines()
            self.show_pairings()
            self.show_agents()
            self.show_consents()
            self._catch_up()
            self.show_frozen()
        elif event == "request" and isinstance(data, dict) and isinstance(data.get("id"), str):
            if data.get("state") == "pending":
                self._enqueue(data["id"])
                # Something new: what was skipped comes back after it.
                self._bring_back(due_only=False)
            else:
                self._drop(data["id"])
        elif event == "device-requests":
            # Logins and machine registrations both wake this event.
            self.show_logins()
            self.show_machines()
        elif event == "pairing":
            self.show_pairings()
        elif event == "agent-requests":
            self.show_agents()
        elif event == "consent-requests":
            self.show_consents()
        elif event == "directory":
            self.session.forget_directory()
        elif event == "lost":
            self.say(f"Lost the relay ({data}); reconnecting in the background.")

    def _catch_up(self) -> None:
        """The queue from a fresh listing: what is waiting and not answered, nothing that ended."""
        waiting = []
        for entry in pending(self.session):
            if entry.get("answered"):
                self._answered.add(entry["id"])
            else:
                waiting.append(entry["id"])
        for request_id in [*self._queue, *self._later]:
            if request_id not in waiting:
                self._drop(request_id)
        for request_id in waiting:
            self._enqueue(request_id)

    # --- one request ------------------------------------------------------------------------

    def offer(self, request_id: str) -> None:
        """Check that the request still waits, show it, ask, and answer."""
        if request_id in self._answered or self._state(request_id) not in (None, "pending"):
            return  # ended before it was shown: nothing to say
        try:
            entry = fetch(self.session, request_id)
        except (SealboxError, httpx.HTTPError) as exc:
            self._put_aside(request_id)
            self.say(f"!! Could not fetch request {request_id[:12]}: {describe(exc)}. "
                     "It is offered again later.")  # fmt: skip
            return
        if entry is None:
            return  # ended before it was shown
        if entry.get("answered"):
            self._answered.add(request_id)
            return
        try:
            examined = examine(self.session, entry, now=int(self.clock()))
        except (Expired, DirectoryBroken) as exc:
            self.say(f"!! Request {request_id[:12]} is not shown: {exc.message} ({exc.code}).")
            return
        if isinstance(examined, Unverifiable):
            self._refuse(examined)
            return
        rev = examined
        self.show_request(rev)
        choice = self.console.ask(ANSWER_PROMPT).lower()
        decision: Decision
        if choice == "yes":
            decision = Approve()
        elif choice == "no":
            reason = self.console.ask("Reason (shown to the requester): ")
            decision = Deny(reason or "denied by an approver")
        else:
            self._put_aside(request_id)
            self.say("Skipped: it stays pending and is offered again later.")
            return
        if not self._still_waiting(rev):
            return
        if not self.console.verify():
            self._queue.insert(0, request_id)  # offered again at once
            return
        self._send(rev, decision)

    def _still_waiting(self, rev: Review) -> bool:
        """Right before answering: ask the relay; say so if the request ended meanwhile."""
        try:
            entry = fetch(self.session, rev.id)
        except (SealboxError, httpx.HTTPError) as exc:
            self._put_aside(rev.id)
            self.say(f"!! Could not check {rev.id[:12]} with the relay: {describe(exc)}. "
                     "Nothing was sent; it is offered again later.")  # fmt: skip
            return False
        if entry is None:
            self._ended(rev)
            return False
        if entry.get("answered"):
            self._answered.add(rev.id)
            self.say(f"Request {rev.id[:12]} was already answered from this approver; "
                     "nothing was sent.")  # fmt: skip
            return False
        return True

    def _ended(self, rev: Review) -> None:
        what = _ENDED.get(self._state(rev.id) or "")
        if what is None:
            what = ("expired" if self.clock() > rev.expires_at
                    else "answered by another approver or withdrawn")  # fmt: skip
        self._drop(rev.id)
        self.say(f"Request {rev.id[:12]} was {what} while on screen; nothing was sent.")

    def _send(self, rev: Review, decision: Decision) -> None:
        try:
            done = answer(self.session, rev, decision, now=int(self.clock()))
        except (SealboxError, httpx.HTTPError) as exc:
            self._put_aside(rev.id)
            self.say(f"!! Could not send the answer to {rev.id[:12]}: {describe(exc)}. "
                     "It is offered again later.")  # fmt: skip
            return
        self._done(rev, done)

    def _done(self, rev: Review, done: Outcome) -> None:
        if done.answer == "ended":
            self._ended(rev)
            return
        self._answered.add(rev.id)
        if done.answer == "refused":
            self.say(f"!! Request {rev.id[:12]}'s shares do not open as its signed manifest "
                     f"says ({done.code}): refused it with a signed refusal instead. "
                     "Tell your team: the relay may be tampering.")  # fmt: skip
        elif done.answer == "released":
            self.say(f"Released {rev.id[:12]}.")
            if rev.kind == "access" and rev.canaries:
                self.say(f"!!! CANARY RELEASED to {rev.client_name} ({rev.client_id}): "
                         f"{', '.join(rev.canaries)}. Its reader has the decoy; the relay "
                         "should alert and freeze the project. Tell your team now.")  # fmt: skip
        elif done.answer == "stored":
            self.say(f"Stored {rev.items[0].path} v{rev.items[0].version}.")
        else:
            self.say(f"Denied {rev.id[:12]}.")

    def _refuse(self, request: Unverifiable) -> None:
        short = request.id[:12] or "?"
        self.say(f"!! Request {short} does NOT verify ({request.code}: {request.message}). "
                 "It is not shown.")  # fmt: skip
        try:
            done = answer(self.session, request, Refuse(), now=int(self.clock()))
        except (SealboxError, httpx.HTTPError) as exc:
            if transient(exc):
                self._put_aside(request.id)
            self.say(f"!! Could not refuse it: {describe(exc)}. Tell your team.")
            return
        self._answered.add(request.id)
        if done.answer == "ended":
            self.say("It is no longer waiting; nothing was sent. Tell your team: the relay "
                     "may be tampering.")  # fmt: skip
        else:
            self.say("Refused with a signed refusal: its requester is told at once. "
                     "Tell your team: the relay may be tampering.")  # fmt: skip

    def show_request(self, rev: Review) -> None:
        c = rev.context
        now = int(self.clock())
        title = "ACCESS REQUEST" if rev.kind == "access" else "STORE REQUEST"
        say = self.say
        say("")
        say(f"=== {title} {rev.id[:12]} " + "=" * 30)
        if rev.kind == "access" and rev.canaries:
            say(canary_banner(rev))
        say("Verified (certificate checked against the directory; details signed by the client):")
        say(f"  who:      {rev.client_name} ({rev.client_kind}, {rev.client_id})")
        approvers = self.session.directory().approvers
        if rev.enrolled_by is not None:
            # A CI machine: its own certificate is the enrollment's; the chain ends at the
            # approver who made the enrollment, verified against the directory too.
            enroller = approvers.get(rev.enrolled_by)
            name = f"approver {enroller.name}, {rev.enrolled_by}" if enroller else rev.enrolled_by
            by = f"enrolled by {rev.issuer} ({name})"
        else:
            issuer = approvers.get(rev.issuer)
            by = "certified by " + (f"{issuer.name} ({rev.issuer})" if issuer else rev.issuer)
        say(f"            {by}; scopes {', '.join(rev.scopes)}")
        say(f"  host:     {c.host or '-'}")
        say(f"  user:     {c.user or '-'}" + (f" (uid {c.uid})" if c.uid is not None else ""))
        say(f"  process:  {c.exe or '-'} (pid {c.pid}, parent {c.ppid})")
        if c.exe_sha256:
            say(f"            sha256 {c.exe_sha256}")
        say(f"  command:  {shlex.join(c.argv) or '-'}")
        say(f"  cwd:      {c.cwd or '-'}")
        say(f"  purpose:  {rev.purpose}")
        for item in rev.items:
            label = "stores:" if rev.kind == "store" else "reads: "
            say(f"  {label}   {item.path} v{item.version}: {', '.join(item.fields)}"
                f"  ({item.threshold}-of-{item.holders})")  # fmt: skip
        left = max(0, rev.expires_at - now)
        say(f"  time:     asked {when(rev.at)}; expires {when(rev.expires_at)} "
            f"(in {left // 60}:{left % 60:02d})")  # fmt: skip
        if rev.kind == "access":
            cache = (f"{rev.cache_seconds} s ({rev.cache_scope})" if rev.cache_seconds
                     else "no caching")  # fmt: skip
            say(f"  cache:    {cache}; approvals so far {rev.approvals}/{rev.threshold}")
        for shown in rev.policies:
            if shown.signed_by is not None:  # verified, and its windows and date checked now
                say(f"  policy:   {shown.path}: {shown.pattern} (signed by {shown.signed_by}): "
                    + ", ".join(shown.axes))  # fmt: skip
        say("Reported by server (not verified):")
        say(f"  source IP: {displayable(rev.reported_by_server.get('source_ip') or '-', 64)}")
        say(f"  this requester: {recent_text(reported_activity(rev.reported_by_server))}")
        for shown in rev.policies:
            if shown.signed_by is None:
                say(f"  policy: {shown.path}: {shown.pattern or '(default)'}: "
                    + ", ".join(shown.axes))  # fmt: skip

    def show_frozen(self) -> None:
        """Frozen projects, each said once per session (nothing in them is released)."""
        found = self.session.ok("GET", "/projects/frozen", "listing frozen projects")["frozen"]
        for entry in found:
            project = displayable(entry.get("project") or "?", 64)
            if "frozen " + project in self._seen:
                continue
            self._seen.add("frozen " + project)
            why = ("a canary was released" if entry.get("cause") == "canary"
                   else f"frozen by {displayable(entry.get('frozen_by') or '?', 64)}")  # fmt: skip
            self.say(f"!! Project {project} is FROZEN ({why}): nothing in it is released until "
                     f"`sealbox approver unfreeze {project}`.")  # fmt: skip

    # --- logins and new devices -------------------------------------------------------------

    def show_logins(self) -> None:
        logins = self.session.ok("GET", "/device-requests", "listing logins")["device_requests"]
        for login in logins:
            code = displayable(login["user_code"], 16)
            if "login " + code in self._seen:
                continue
            self._seen.add("login " + code)
            self.say("")
            self.say(f"=== LOGIN {code} " + "=" * 30)
            # Everything here comes from the relay: the key's codes are computed here from
            # the key itself, and the name is made safe to print.
            key = VerifyKey.from_text(login["sig_pk"])
            name = displayable(login["client_name"], 128)
            self.say(f"  client:       {name} (human, {displayable(login['client_id'], 40)})")
            invited = members.invite_scopes(login)
            if invited is not None:
                self.say(
                    f"  invited as:   {displayable(login['role'], 16)} of project "
                    f"{displayable(login['project'], 64)} (scopes {' '.join(invited)})"
                )
            self.say(f"  key:          {key.fingerprint()}")
            self.say(f"  safety code:  {key.safety_code()}")
            self.say(f"  expires:      {when(login['expires_at'])}")
            self.say("Compare the user code and the key safety code with the person's terminal.")
            for _ in range(CODE_TRIES):
                typed = self.console.ask(
                    "Type the user code to approve, 'no' to deny, Enter to skip: "
                )
                if not typed or typed.lower() == "no":
                    break
                if typed.upper().replace(" ", "") == code.upper().replace(" ", ""):
                    break
                self.say("That is not this login's user code: nothing was approved.")
            else:
                typed = ""
            if typed.lower() == "no":
                self.session.ok("POST", f"/device-requests/{code}/deny", "denying the login")
                self.say(f"Login {code} denied.")
                continue
            if not typed:
                # Put aside, not dropped: it is offered again when something new arrives.
                self._seen.discard("login " + code)
                self.say("Skipped: it is offered again when something new arrives.")
                continue
            if invited is not None:
                # A member's role is its grant: the whole project, held to the role.
                grant = "none"
            else:
                grant = self.console.ask("Items this person may ask for [*/*/*, or 'none']: ")
                grant = grant or "*/*/*"
            if not self.console.verify():
                self._seen.discard("login " + code)
                continue
            client = admin.approve_login(self.session, login,
                                         scopes=invited or ["read", "write"],
                                         grant=None if grant == "none" else grant)  # fmt: skip
            self.say(f"Login {code} approved: {client} certified"
                     + ("" if grant == "none" else f", granted {grant}")
                     + ("" if invited is None else f" as {displayable(login['role'], 16)} of "
                        f"{displayable(login['project'], 64)}")
                     + ".")  # fmt: skip

    def show_agents(self) -> None:
        """Agents a person asked for: who asked, what for, and the key's safety code."""
        for entry in agents.pending_agents(self.session):
            client_id = displayable(entry["client_id"], 40)
            if "agent " + client_id in self._seen:
                continue
            self._seen.add("agent " + client_id)
            # Everything here comes from the relay: the key's codes are computed here
            # from the key itself, and every name is made safe to print.
            key = VerifyKey.from_text(entry["sig_pk"])
            asked = [displayable(s, 256) for s in entry["scopes"]]
            items = [s[len("items:") :] for s in asked if s.startswith("items:")]
            plain = [s for s in asked if not s.startswith("items:")]
            self.say("")
            self.say("=== NEW AGENT " + "=" * 30)
            self.say(f"  agent:        {displayable(entry['name'], 128)} (agent, {client_id})")
            self.say(f"  asked by:     {displayable(entry['requested_by_name'], 128)} "
                     f"({displayable(entry['requested_by'], 40)})")  # fmt: skip
            self.say(f"  scopes:       {', '.join(plain)}")
            self.say(f"  items:        {', '.join(items) or 'any its grants allow'}")
            self.say(f"  key:          {key.fingerprint()}")
            self.say(f"  safety code:  {key.safety_code()}")
            if entry.get("client_secret"):
                self.say("  also has:     a client secret (only its hash is at the relay)")
            self.say(f"  expires:      {when(entry['expires_at'])}")
            self.say("Compare the key safety code with the terminal of the person who asked.")
            choice = self.console.ask(
                "Approve this agent? Type 'yes' to approve, 'no' to deny, Enter to skip: "
            ).lower()
            if choice == "no":
                agents.deny_agent(self.session, entry["client_id"])
                self.say(f"Agent {client_id} denied.")
                continue
            if choice != "yes":
                self._seen.discard("agent " + client_id)
                self.say("Skipped: it is offered again when something new arrives.")
                continue
            default = ",".join(items) or "*/*/*"
            typed = self.console.ask(f"Items this agent may ask for [{default}, or 'none']: ")
            grant = typed or default
            if not self.console.verify():
                self._seen.discard("agent " + client_id)
                continue
            grants = [] if grant == "none" else [g.strip() for g in grant.split(",") if g.strip()]
            agents.approve_agent(self.session, entry, scopes=entry["scopes"], grants=grants)
            self.say(f"Agent {client_id} approved"
                     + (f", granted {', '.join(grants)}" if grants else "") + ".")  # fmt: skip

    def show_consents(self) -> None:
        """Consent requests: the action and its details as the client signed them, verified."""
        for entry in consents.pending(self.session):
            key = "consent " + str(entry["id"])
            if key in self._seen:
                continue
            self._seen.add(key)
            try:
                examined = consents.examine(self.session, entry, now=int(self.clock()))
            except (Expired, DirectoryBroken) as exc:
                # Not the request's doing: not shown, not answered, and the others still are.
                self.say(f"!! Consent request {key[8:20]} is not shown: {exc.message} "
                         f"({exc.code}).")  # fmt: skip
                continue
            if isinstance(examined, Unverifiable):
                self._refuse_consent(examined)
                continue
            self.show_consent(examined)
            choice = self.console.ask(CONSENT_PROMPT).lower()
            decision: Decision
            if choice == "yes":
                decision = Approve()
            elif choice == "no":
                reason = self.console.ask("Reason (shown to the requester): ")
                decision = Deny(reason or "refused by an approver")
            else:
                self._seen.discard(key)
                self.say("Skipped: it is offered again when something new arrives.")
                continue
            if not self.console.verify():
                self._seen.discard(key)
                continue
            done = consents.answer(self.session, examined, decision, now=int(self.clock()))
            short = examined.id[:12]
            if done.answer == "ended":
                self.say(f"Consent request {short} is no longer waiting (answered by another "
                         "approver, withdrawn or expired); nothing was sent.")  # fmt: skip
            elif done.answer == "consented":
                self.say(f"Consented to {examined.action} for {examined.client_name} "
                         f"({short}).")  # fmt: skip
            else:
                self.say(f"Refused consent request {short}.")

    def _refuse_consent(self, request: Unverifiable) -> None:
        short = request.id[:12] or "?"
        self.say(f"!! Consent request {short} does NOT verify ({request.code}: "
                 f"{request.message}). It is not shown.")  # fmt: skip
        done = consents.answer(self.session, request, Refuse(), now=int(self.clock()))
        if done.answer != "ended":
            self.say("Refused with a signed refusal: its requester is told at once. "
                     "Tell your team: the relay may be tampering.")  # fmt: skip

    def show_consent(self, rev: consents.ConsentReview) -> None:
        say = self.say
        now = int(self.clock())
        say("")
        say(f"=== CONSENT REQUEST {rev.id[:12]} " + "=" * 30)
        say("Verified (certificate checked against the directory; details signed by the client):")
        say(f"  who:      {rev.client_name} ({rev.client_kind}, {rev.client_id})")
        approvers = self.session.directory().approvers
        issuer = approvers.get(rev.issuer)
        if rev.enrolled_by is not None:
            enroller = approvers.get(rev.enrolled_by)
            name = f"approver {enroller.name}, {rev.enrolled_by}" if enroller else rev.enrolled_by
            say(f"            enrolled by {rev.issuer} ({name})")
        else:
            say("            certified by "
                + (f"{issuer.name} ({rev.issuer})" if issuer else rev.issuer))  # fmt: skip
        say(f"  action:   {rev.action}")
        say(f"  purpose:  {rev.purpose}")
        say(f"  details:  ({rev.details_hash})")
        for line in consents.details_lines(rev.details):
            say("    " + line)
        left = max(0, rev.expires_at - now)
        say(f"  consent:  valid for {rev.ttl} s once given, for this action and these details "
            "only")  # fmt: skip
        say(f"  time:     asked {when(rev.at)}; expires {when(rev.expires_at)} "
            f"(in {left // 60}:{left % 60:02d})")  # fmt: skip
        say("Reported by server (not verified):")
        say(f"  source IP: {displayable(rev.reported_by_server.get('source_ip') or '-', 64)}")
        say(f"  this requester: {recent_text(reported_activity(rev.reported_by_server))}")

    def show_machines(self) -> None:
        """Machines that spent a bootstrap token and wait for a certificate."""
        for entry in machines.pending_machines(self.session):
            code = displayable(entry["user_code"], 16)
            if "machine " + code in self._seen:
                continue
            self._seen.add("machine " + code)
            # As for logins: the key's codes are computed here from the key itself, and
            # everything else the relay sent is made safe to print.
            key = VerifyKey.from_text(entry["sig_pk"])
            grants = ", ".join(displayable(g, 200) for g in entry["grants"])
            scopes = ", ".join(displayable(s, 64) for s in entry["scopes"])
            directory = self.session.directory()
            maker = directory.approvers.get(entry["token_created_by"])
            made_by = maker.name if maker else displayable(entry["token_created_by"], 40)
            self.say("")
            self.say(f"=== MACHINE {code} " + "=" * 30)
            self.say(f"  machine:      {displayable(entry['name'], 128)} "
                     f"(machine, {displayable(entry['client_id'], 40)})")  # fmt: skip
            self.say(f"  token:        for {displayable(entry['token_name'], 128)}, "
                     f"made by {made_by}")  # fmt: skip
            self.say(f"  asks for:     {grants} ({scopes})")
            self.say(f"  key:          {key.fingerprint()}")
            self.say(f"  safety code:  {key.safety_code()}")
            self.say(f"  expires:      {when(entry['expires_at'])}")
            ip = displayable((entry.get("reported_by_server") or {}).get("source_ip") or "-", 64)
            self.say(f"Reported by server (not verified): source IP {ip}")
            self.say("Compare the registration code and the key safety code with the machine's "
                     "output.")  # fmt: skip
            for _ in range(CODE_TRIES):
                typed = self.console.ask(
                    "Type the registration code to approve, 'no' to deny, Enter to skip: "
                )
                if not typed or typed.lower() == "no":
                    break
                if typed.upper().replace(" ", "") == code.upper().replace(" ", ""):
                    break
                self.say("That is not this machine's registration code: nothing was approved.")
            else:
                typed = ""
            if typed.lower() == "no":
                machines.deny_machine(self.session, entry["client_id"])
                self.say(f"Machine {code} denied.")
                continue
            if not typed:
                self._seen.discard("machine " + code)
                self.say("Skipped: it is offered again when something new arrives.")
                continue
            if not self.console.verify():
                self._seen.discard("machine " + code)
                continue
            client = machines.approve_machine(self.session, entry)
            self.say(f"Machine {code} approved: {client} certified for {grants}.")

    def show_pairings(self) -> None:
        pairings = self.session.ok("GET", "/pairing-requests", "listing pairings")
        for entry in pairings["pairing_requests"]:
            if "pair " + entry["id"] in self._seen:
                continue
            self._seen.add("pair " + entry["id"])
            try:
                record = ApproverRecord.from_json(entry["approver"])
            except SealboxError as exc:
                self.say(f"!! A pairing request is malformed ({exc.message}); ignored.")
                continue
            code = dirs.pairing_code(record)
            self.say("")
            self.say("=== NEW APPROVER DEVICE " + "=" * 30)
            self.say(f"  name:        {record.name} ({record.kind}, {record.id})")
            self.say(f"  signing key: {record.sig_pk.fingerprint()}")
            ip = displayable((entry.get("reported_by_server") or {}).get("source_ip"), 64)
            self.say(f"Reported by server (not verified): source IP {ip}")
            self.say("The new device shows a pairing code. It is NOT shown here: type it.")
            typed = self.console.ask("Pairing code (or 'no' to refuse, Enter to skip): ")
            if typed.lower() == "no":
                self.session.ok("POST", f"/pairing-requests/{entry['id']}/deny", "refusing")
                self.say("Refused.")
                continue
            if not typed:
                self._seen.discard("pair " + entry["id"])
                self.say("Skipped: it is offered again when something new arrives.")
                continue
            if re.sub(r"\s", "", typed) != re.sub(r"\s", "", code):
                self.say("The codes differ: the device was NOT added (someone may have swapped "
                         "its keys on the way).")  # fmt: skip
                continue
            if not self.console.verify():
                self._seen.discard("pair " + entry["id"])
                continue
            directory = admin.add_device(self.session, record)
            self.say(f"Added {record.id}; directory head is now {directory.head.seq}.")
