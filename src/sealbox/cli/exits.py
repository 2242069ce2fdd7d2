"""Exit codes of the ``sealbox`` command, and turning errors into them.

| code | meaning |
|---|---|
| 0 | success |
| 1 | the operation failed (relay refused, unreachable, bad file, …) |
| 2 | usage error (bad arguments or input) |
| 3 | an approver denied the request (or refused consent) |
| 4 | no answer: the request expired or was cancelled |
| 5 | verification failed: something the relay served does not verify (tampering?) |
| 6 | not logged in, or the session has ended |
| 7 | ``sealbox up`` cannot listen on its address (in use, not permitted, not this machine's) |
| 130 | interrupted (Ctrl-C); a pending request is withdrawn |

``sealbox run`` exits with the command's own status once the command has started.
``sealbox consent verify`` exits 5 when the consent is not valid for the action, details,
client and vault given (expired, tampered, another vault's, another action's...; with
``--relay`` or ``--head``, also when its approver has been removed or the bundle's directory
is older than, or forked from, the one known).
``sealbox audit verify`` exits 5 (``INVALID:`` and the seq) when the audit log does not verify:
an event deleted, changed, reordered or inserted, the log truncated behind a checkpoint or a
head verified before, two exports that fork, or a log with no event (an empty file proves
nothing).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

__all__ = [
    "CANNOT_LISTEN",
    "DENIED",
    "FAILED",
    "INTERRUPTED",
    "NOT_ANSWERED",
    "NOT_LOGGED_IN",
    "OK",
    "USAGE",
    "VERIFICATION",
    "Failed",
    "UsageError",
    "guarded",
]

OK = 0
FAILED = 1
USAGE = 2
DENIED = 3
NOT_ANSWERED = 4
VERIFICATION = 5
NOT_LOGGED_IN = 6
# Its own code, so that a supervisor can tell "the port is taken" from a crash
# and not restart in a loop (systemd: RestartPreventExitStatus=7).
CANNOT_LISTEN = 7
INTERRUPTED = 130


class UsageError(Exception):
    """Bad arguments or input: exit 2 with the message."""


class Failed(Exception):
    """The operation cannot be done: exit 1 with the message."""


def _say(command: str, message: str, hint: str | None = None) -> None:
    print(f"sealbox {command}: {message}", file=sys.stderr)
    if hint:
        print(f"  {hint}", file=sys.stderr)


def guarded(action: Callable[[], int], command: str) -> int:
    """Run ``action``; map every failure to its exit code with a clear message on stderr."""
    import httpx

    from sealbox.errors import (
        Cancelled,
        Denied,
        MalformedInput,
        NotLoggedIn,
        RequestExpired,
        SealboxError,
        VerificationError,
    )

    try:
        return action()
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        _say(command, "interrupted; the request was withdrawn and nothing was printed")
        return INTERRUPTED
    except UsageError as exc:
        _say(command, str(exc))
        return USAGE
    except Failed as exc:
        _say(command, str(exc))
        return FAILED
    except Denied as exc:
        _say(command, exc.message, exc.hint)
        return DENIED
    except (RequestExpired, Cancelled) as exc:
        _say(command, exc.message, exc.hint)
        return NOT_ANSWERED
    except NotLoggedIn as exc:
        _say(command, exc.message, exc.hint)
        return NOT_LOGGED_IN
    except VerificationError as exc:
        _say(command, f"refused: {exc.message} [{exc.code}]",
             exc.hint or "Something between you and your approvers changed what they sent. "
             "Nothing was used. Tell your approver.")  # fmt: skip
        return VERIFICATION
    except MalformedInput as exc:
        _say(command, exc.message, exc.hint)
        return USAGE
    except SealboxError as exc:
        _say(command, exc.message, exc.hint)
        return FAILED
    except httpx.HTTPError as exc:
        from sealbox._relay.drive import describe

        _say(command, f"could not reach the relay: {describe(exc)}",
             "Check the server URL and that the relay is running.")  # fmt: skip
        return FAILED
    except OSError as exc:
        _say(command, f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc))
        return FAILED
