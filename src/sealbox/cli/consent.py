"""``sealbox consent …``: ask an approver to consent to one action, and verify a consent offline.

``request`` signs a consent request with this profile's key (a person's
login, an agent profile, or the machine identity in ``SEALBOX_IDENTITY``),
waits for an approver, verifies the consent against the pinned directory,
and prints the grant: a JSON bundle holding the consent (a compact JWS) and
the directory links that verify it.  Exit codes: 0 consented, 3 an approver
refused, 4 no answer in time (expired or cancelled), 5 the consent served
does not verify, 6 not logged in, 2 bad input (the details are not a JSON
object, or too big), 1 anything else.

``verify`` checks a bundle: the directory from the vault's pinned
fingerprint, then the consent against it, the action, the details and the
client given on the command line (never those the bundle claims).  Alone it
contacts nothing and uses the bundle's own directory links, which end where
whoever built the bundle chose: an approver's later removal is not seen.
``--relay URL`` fetches the vault's current directory instead (verified from
the same fingerprint; the bundle's links must be a prefix of it), so a removed
approver's consent fails; ``--head SEQ:sha256:…`` requires the directory to
reach a head the verifier already knows (printed by an earlier ``verify``),
refusing an older or forked chain.  Exit 0: valid (the consent's facts and the
directory head are printed); 5: not valid, with the reason; 1: the relay
cannot be reached or refuses; 2: bad input (details that are not one JSON
object, with a key twice, NaN or Infinity; a malformed ``--head``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from sealbox.cli import exits

__all__ = ["add_parsers", "run"]


def add_parsers(sub: Any) -> None:
    consent = sub.add_parser("consent", help="per-action consent: ask an approver to consent "
                             "to one action, and verify a consent offline")  # fmt: skip
    csub = consent.add_subparsers(dest="consent_command", metavar="ACTION", required=True)
    request = csub.add_parser("request", help="ask an approver to consent to an action; print "
                              "the grant (a bundle to verify offline)")  # fmt: skip
    request.add_argument("--action", required=True, help="what to do, e.g. deploy")
    request.add_argument("--details", required=True, metavar="JSON|@FILE|@-",
                         help="the action's parameters: a JSON object, @FILE, or @- for standard "
                         "input (at most 8 KiB; no floats)")  # fmt: skip
    request.add_argument("--purpose", help="why, shown to the approver (default: the action)")
    request.add_argument("--ttl", type=int, default=300, help="seconds the consent stays "
                         "valid once given (1-3600; default 300)")  # fmt: skip
    request.add_argument("--out", metavar="FILE", help="write the grant here (mode 0600) "
                         "instead of standard output")  # fmt: skip
    request.add_argument("--profile", metavar="NAME", help="which login to use "
                         "(env SEALBOX_PROFILE; default: default)")  # fmt: skip
    verify = csub.add_parser("verify", help="verify a consent grant offline (no relay contact)")
    verify.add_argument("bundle", nargs="?", default="-", metavar="FILE|-", help="the grant "
                        "`consent request` printed (default: standard input)")  # fmt: skip
    verify.add_argument("--action", required=True, help="the action you are about to do")
    verify.add_argument("--details", required=True, metavar="JSON|@FILE",
                        help="the parameters you are about to act on")  # fmt: skip
    verify.add_argument("--client", required=True, metavar="ID", help="the client the consent "
                        "must have been asked by (cli_…)")  # fmt: skip
    verify.add_argument("--vault", required=True, metavar="sha256:…", help="the vault's pinned "
                        "fingerprint (`sealbox approver init` printed it)")  # fmt: skip
    verify.add_argument("--relay", metavar="URL", help="check against the vault's current "
                        "directory fetched from this relay, so that a removed approver's "
                        "consent fails (default: the bundle's own directory, offline)")  # fmt: skip
    verify.add_argument("--head", metavar="SEQ:sha256:…", help="a directory head known "
                        "already (an earlier verify printed it): refuse a bundle whose "
                        "directory is older or forked")  # fmt: skip


def _read(text: str, what: str) -> str:
    """``text`` itself, or the content of ``@FILE`` (``@-``: standard input)."""
    if not text.startswith("@"):
        return text
    name = text[1:]
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text()
    except OSError as exc:
        raise exits.UsageError(f"cannot read {what} from {name}: {exc.strerror}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for key, item in pairs:
        if key in value:
            raise exits.UsageError(f"the details have the key {key!r} twice")
        value[key] = item
    return value


def _no_constant(name: str) -> Any:
    raise exits.UsageError(f"the details hold {name}, which is not JSON")


def _details(text: str) -> dict[str, Any]:
    """The details, read strictly: one JSON object, no key twice, no NaN or Infinity (what
    another JSON reader would take differently is refused, not guessed)."""
    try:
        value = json.loads(_read(text, "the details"), object_pairs_hook=_unique_keys,
                           parse_constant=_no_constant)  # fmt: skip
    except ValueError as exc:
        raise exits.UsageError(f"the details are not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise exits.UsageError("the details must be a JSON object")
    return value


def _request(args: argparse.Namespace) -> int:
    from sealbox._relay.files import write_private
    from sealbox.cli.items import Waiting
    from sealbox.client.sdk import Client

    details = _details(args.details)
    if not 1 <= args.ttl <= 3600:
        raise exits.UsageError("--ttl must be 1 to 3600 seconds")
    with Client(args.profile) as client:
        wait = Waiting(f"consent to {args.action}")
        try:
            grant = client.request_consent(
                args.action, details, purpose=args.purpose or args.action, ttl=args.ttl,
                on_wait=wait,
            )  # fmt: skip
        finally:
            wait.done()
    bundle = grant.bundle_json()
    if args.out:
        write_private(Path(args.out), bundle + "\n")
    else:
        print(bundle)
    print(f"Consent to {grant.action} given by approver {grant.approver}, valid until "
          f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(grant.expires_at))}"
          + (f"; written to {args.out}" if args.out else "") + ".", file=sys.stderr)  # fmt: skip
    return exits.OK


def _verify(args: argparse.Namespace) -> int:
    from sealbox.client.consent import check_grant, load_bundle
    from sealbox.errors import MalformedInput, VerificationError
    from sealbox.protocol.consent import format_head, parse_head

    details = _details(args.details)
    try:
        head = None if args.head is None else parse_head(args.head)
    except MalformedInput as exc:
        raise exits.UsageError(f"--head: {exc.message}") from None
    source = "@-" if args.bundle == "-" else "@" + args.bundle
    try:
        bundle = load_bundle(_read(source, "the grant"))
        checked = check_grant(bundle, fingerprint=args.vault, action=args.action,
                              details=details, client=args.client, relay=args.relay,
                              head=head)  # fmt: skip
    except (VerificationError, MalformedInput) as exc:
        print(f"sealbox consent verify: INVALID: {exc.message} [{exc.code}]", file=sys.stderr)
        return exits.VERIFICATION
    consent = checked.consent
    left = consent.exp - int(time.time())
    print(f"valid: {consent.action} for {consent.client}, consented by approver "
          f"{consent.approver}; {left} s left")  # fmt: skip
    where = "the relay's current directory" if args.relay else "the bundle's directory"
    print(f"directory head: {format_head(checked.head)} ({where})")
    return exits.OK


def run(args: argparse.Namespace) -> int:
    command = f"consent {args.consent_command}"
    action = _request if args.consent_command == "request" else _verify
    return exits.guarded(lambda: action(args), command)
