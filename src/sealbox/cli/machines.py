"""``sealbox machine token create|register|provision|list|disable``: machines as clients.

Argument parsing, output and files only: the approver's side is
:mod:`sealbox.approver.machines`, the machine's :mod:`sealbox.client.machine`,
and identities on disk :mod:`sealbox.client.identity`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from sealbox.cli import exits

__all__ = ["add_parsers", "run"]


def _key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key-file", help="this approver's key file (default: the only one in "
                        "the config directory)")  # fmt: skip
    parser.add_argument("--passphrase-file", help="read the passphrase from this file "
                        "(env SEALBOX_PASSPHRASE; default: ask)")  # fmt: skip


def _grant_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", required=True, help="the machine's name, shown to approvers")
    parser.add_argument("--grant", action="append", required=True, metavar="PATTERN",
                        help="items the machine may ask for, PROJECT/ENV/ITEM with * and ? "
                        "(repeatable); its certificate is limited to them")  # fmt: skip
    parser.add_argument("--scope", action="append", choices=("read", "write"), metavar="SCOPE",
                        help="read (ask for values, the default) or write (store); "
                        "repeatable")  # fmt: skip


def add_parsers(sub: Any) -> None:
    machine = sub.add_parser("machine", help="servers and containers as clients with keys of "
                             "their own")  # fmt: skip
    msub = machine.add_subparsers(dest="machine_command", metavar="ACTION", required=True)

    token = msub.add_parser("token", help="one-time bootstrap tokens (approver)")
    tsub = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = tsub.add_parser("create", help="make a token that lets one machine register "
                             "(ten minutes, one use)")  # fmt: skip
    _grant_options(create)
    create.add_argument("--json", action="store_true", help="print the token and URLs as JSON")
    _key_options(create)
    create.add_argument("--profile", metavar="NAME",
                        help="make it with this member's login (a machine admin of the "
                        "project) instead of an approver key")  # fmt: skip

    register = msub.add_parser("register", help="on the machine: make its key and register it "
                               "with a bootstrap token; wait for an approver")  # fmt: skip
    register.add_argument("--server", required=True, help="the relay's URL")
    register.add_argument("--token", help="the bootstrap token (env SEALBOX_BOOTSTRAP_TOKEN)")
    register.add_argument("--name", help="the machine's name (default: the token's)")
    register.add_argument("--out", metavar="DIR", help="where to save the identity (default: "
                          "the config directory's identity/)")  # fmt: skip
    register.add_argument("--overwrite", action="store_true",
                          help="replace an identity already there")  # fmt: skip

    provision = msub.add_parser("provision", help="on an approver's device: make a machine's "
                                "key and certificate here and write its identity")  # fmt: skip
    _grant_options(provision)
    provision.add_argument("--out", required=True, metavar="DIR|FILE.zip|FILE.yaml",
                           help="a directory (identity.json + client.key), a .zip, or with "
                           "--k8s a Kubernetes Secret manifest")  # fmt: skip
    provision.add_argument("--k8s", action="store_true",
                           help="write a Kubernetes Secret manifest (YAML)")  # fmt: skip
    provision.add_argument("--days", type=int, default=90,
                           help="how long its certificate lasts (default 90)")  # fmt: skip
    provision.add_argument("--overwrite", action="store_true",
                           help="replace the output if it exists")  # fmt: skip
    _key_options(provision)

    lst = msub.add_parser("list", help="the vault's machines (approver)")
    _key_options(lst)
    disable = msub.add_parser("disable", help="stop a machine at once (approver)")
    disable.add_argument("client", metavar="CLI_ID",
                         help="the machine's client id (`sealbox machine list`)")  # fmt: skip
    _key_options(disable)


def _session(args: argparse.Namespace) -> Any:
    from sealbox.cli.approvers import _session as approver_session

    return approver_session(args)


def _scopes(args: argparse.Namespace) -> list[str]:
    return sorted(set(args.scope or ["read"]))


# --- sealbox machine token create ------------------------------------------------------------


def _token_create(args: argparse.Namespace) -> int:
    from sealbox.approver import machines

    if args.profile:
        from sealbox.client.sdk import Client

        with Client(args.profile) as member:
            made = member.create_bootstrap_token(args.name, grants=args.grant,
                                                 scopes=_scopes(args))  # fmt: skip
        server = str(made["server"])
    else:
        session = _session(args)
        try:
            made = machines.create_token(session, name=args.name, grants=args.grant,
                                         scopes=_scopes(args))  # fmt: skip
        finally:
            session.close()
        server = session.keys.server
    token = made["token"]
    script = f"{server}/v1/bootstrap/{token}"
    if args.json:
        print(json.dumps({"token": token, "server": server, "name": made["name"],
                          "grants": made["grants"], "scopes": made["scopes"],
                          "expires_at": made["expires_at"], "script_url": script}))  # fmt: skip
        return exits.OK
    print(f"Bootstrap token for {made['name']!r} (one use, valid 10 minutes): asks "
          f"{', '.join(made['grants'])} ({', '.join(made['scopes'])}).")  # fmt: skip
    print(f"  {token}")
    print("On the machine, with sealbox installed (trusts nothing the relay says):")
    print(f"  SEALBOX_BOOTSTRAP_TOKEN={token} sealbox machine register --server {server}")
    print("Or run the script the relay serves (this trusts the relay):")
    print(f"  curl -sSL '{script}' | sh")
    print(f"  curl -sSL '{script}?shell=k8s' | sh     # ends with a kubectl command")
    print(f"  iwr -useb '{script}?shell=powershell' | iex")
    print("Then approve the machine with `sealbox approve`.")
    return exits.OK


# --- sealbox machine register ------------------------------------------------------------------


def _default_identity_dir() -> Path:
    from sealbox._relay.files import config_dir

    return config_dir() / "identity"


def _register(args: argparse.Namespace) -> int:
    from sealbox._relay.drive import http_client
    from sealbox.client import identity, machine

    token = args.token or os.environ.get(machine.TOKEN_ENV)
    if not token:
        raise exits.UsageError(f"pass --token or set {machine.TOKEN_ENV}")
    out = Path(args.out) if args.out else _default_identity_dir()
    _refuse_existing(out, args.overwrite)

    def prompt(shown: machine.RegistrationPrompt) -> None:
        print(f"Registering this machine with vault {shown.vault} at {shown.server}.")
        print(f"  Vault safety code:        {shown.vault_safety_code}")
        print(f"  Registration code:        {shown.user_code}")
        print(f"  Machine name:             {shown.name}")
        print(f"  Client id:                {shown.client_id}")
        print(f"  Machine key fingerprint:  {shown.key_fingerprint}")
        print(f"  Machine key safety code:  {shown.key_safety_code}")
        print("An approver runs `sealbox approve`, compares the key safety code and the vault")
        print("safety code, and types the registration code.")
        print("Waiting for an approver...", flush=True)

    with http_client(args.server) as http:
        done = machine.register(http, server=args.server, token=token, name=args.name,
                                on_prompt=prompt)  # fmt: skip
    _remove_existing(out, args.overwrite)
    identity.save_dir(out, done.identity)
    cert = done.certificate
    print(f"Approved: {cert.client.id} is certified as {cert.client.name!r} for "
          f"{', '.join(cert.scopes)}.")  # fmt: skip
    print(f"Vault safety code: {done.vault_safety_code}")
    print(f"Identity saved in {out} (client.key 0600; the relay never saw it).")
    print(f"Use it with: SEALBOX_IDENTITY={out} sealbox read sealbox://PROJECT/ENV/ITEM/FIELD")
    return exits.OK


# --- output files ------------------------------------------------------------------------------


def _refuse_existing(path: Path, overwrite: bool) -> None:
    if (path.exists() or path.is_symlink()) and not overwrite:
        raise exits.Failed(f"{path} already exists; pass --overwrite to replace it")


def _remove_existing(path: Path, overwrite: bool) -> None:
    import shutil

    if not overwrite or not (path.exists() or path.is_symlink()):
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _write_private(path: Path, data: bytes) -> None:
    """A new file readable by its owner only (created so, never chmod-ed after)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _zip(files: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(files.items()):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o100600 & 0xFFFF) << 16  # a regular file, mode 0600
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return buffer.getvalue()


def kubernetes_secret(name: str, files: dict[str, bytes]) -> str:
    """A Kubernetes Secret manifest holding ``files`` (base64, as ``data`` requires)."""
    import base64
    import re

    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-") or "machine"
    lines = [
        "apiVersion: v1",
        "kind: Secret",
        "metadata:",
        f"  name: sealbox-{slug}",
        "  labels:",
        "    app.kubernetes.io/managed-by: sealbox",
        "type: Opaque",
        "data:",
    ]
    lines += [f"  {key}: {base64.b64encode(value).decode('ascii')}"
              for key, value in sorted(files.items())]  # fmt: skip
    return "\n".join(lines) + "\n"


# --- sealbox machine provision -----------------------------------------------------------------


def _provision(args: argparse.Namespace) -> int:
    from sealbox.approver import machines
    from sealbox.client import identity

    out = Path(args.out)
    kind = "k8s" if args.k8s else ("zip" if out.suffix.lower() == ".zip" else "dir")
    if kind == "k8s" and out.suffix.lower() not in (".yaml", ".yml"):
        raise exits.UsageError("with --k8s, --out names a .yaml file")
    # Before anything is made or registered: a machine whose identity cannot be written
    # would be a client nobody can use.
    _refuse_existing(out, args.overwrite)
    session = _session(args)
    try:
        made = machines.provision(session, name=args.name, grants=args.grant,
                                  scopes=_scopes(args), days=args.days)  # fmt: skip
    finally:
        session.close()
    machine = identity.Identity(
        server=made.server, vault=made.vault, fingerprint=made.fingerprint, head=made.head,
        client_id=made.client_id, client_name=made.name, kind="machine", key=made.key,
        certificate=made.certificate, enrollment=None,
    )  # fmt: skip
    _remove_existing(out, args.overwrite)
    if kind == "dir":
        identity.save_dir(out, machine)
        where = f"{out}/ (identity.json, client.key 0600)"
    elif kind == "zip":
        _write_private(out, _zip(identity.files(machine)))
        where = f"{out} (identity.json, client.key; 0600)"
    else:
        _write_private(out, kubernetes_secret(args.name, identity.files(machine)).encode())
        where = f"{out} (a Kubernetes Secret manifest, 0600: `kubectl apply -f {out}`)"
    print(f"Provisioned machine {made.client_id} ({args.name!r}) for "
          f"{', '.join(sorted(set(args.grant)))}; its key was made here and only its public half "
          "was registered.")  # fmt: skip
    print(f"Identity written to {where}.")
    print("Keep it like a password. On the machine: SEALBOX_IDENTITY=<dir or file> sealbox read "
          "sealbox://PROJECT/ENV/ITEM/FIELD")  # fmt: skip
    return exits.OK


# --- sealbox machine list / disable --------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    session = _session(args)
    try:
        listed = session.ok("GET", "/clients", "listing clients")["clients"]
    finally:
        session.close()
    found = [c for c in listed if c.get("kind") == "machine"]
    if not found:
        print("No machines.")
    for client in found:
        state = "disabled" if client.get("disabled") else "enabled"
        print(f"  {client['id']}  {client['name']}  {state}  {client['key_fingerprint'][:23]}…")
    return exits.OK


def _disable(args: argparse.Namespace) -> int:
    session = _session(args)
    try:
        done = session.ok("POST", f"/clients/{args.client}/disable", "disabling the machine")
    finally:
        session.close()
    print(f"{args.client} disabled; its signed requests are refused from now on "
          f"({done.get('tokens_revoked', 0)} token(s) revoked).")  # fmt: skip
    return exits.OK


def run(args: argparse.Namespace) -> int:
    actions = {"register": _register, "provision": _provision, "list": _list,
               "disable": _disable}  # fmt: skip
    if args.machine_command == "token":
        return exits.guarded(lambda: _token_create(args), "machine token create")
    return exits.guarded(lambda: actions[args.machine_command](args),
                         f"machine {args.machine_command}")  # fmt: skip
