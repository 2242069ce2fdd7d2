"""The bootstrap scripts ``GET /v1/bootstrap/{token}`` serves: pure text, no I/O.

Each script does what a person would type on the machine: use the ``sealbox``
already on ``PATH``, or install it with pip into a virtual environment of its
own (``SEALBOX_PIP_SPEC`` overrides what is installed), then run ``sealbox
machine register`` against this relay with the token, which makes the key on
the machine and waits for an approver.  The token travels in the environment
(``SEALBOX_BOOTSTRAP_TOKEN``), set only for that command (the installer never
sees it), not on a command line other users can list.

Whoever runs such a script trusts the relay that served it: a relay could
serve anything.  ``sealbox machine register`` from an installed ``sealbox``
trusts nothing the relay says (it pins the vault's link 0 and verifies the
certificate it is given).  Every value put into a script is quoted for its
shell, so a name or URL cannot break out of its string.
"""

from __future__ import annotations

import re

__all__ = ["SHELLS", "error_script", "kubernetes_secret_name", "script"]

SHELLS = ("sh", "powershell", "k8s")
DEFAULT_PIP_SPEC = "sealbox"


def sh_quote(value: str) -> str:
    """A POSIX shell single-quoted word: nothing inside is special but ``'`` itself."""
    return "'" + value.replace("'", "'\"'\"'") + "'"


def ps_quote(value: str) -> str:
    """A PowerShell verbatim string: nothing inside is special but ``'`` (doubled).

    PowerShell also reads the typographic quotes U+2018/U+2019/U+201A/U+201B as
    ``'``, so they are doubled too.
    """
    return "'" + re.sub("(['\u2018\u2019\u201a\u201b])", r"\1\1", value) + "'"


def kubernetes_secret_name(name: str) -> str:
    """``sealbox-<name>`` as a DNS-1123 label (what a Secret's name must be)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-")
    return f"sealbox-{slug or 'machine'}"


_SH_INSTALL = """\
if command -v sealbox >/dev/null 2>&1; then
  SEALBOX=$(command -v sealbox)
else
  venv="${SEALBOX_VENV:-${HOME:-/tmp}/.local/share/sealbox/venv}"
  echo "sealbox: installing ${SEALBOX_PIP_SPEC:-%(spec)s} into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "${SEALBOX_PIP_SPEC:-%(spec)s}"
  SEALBOX="$venv/bin/sealbox"
fi
"""


def _sh(server: str, token: str, name: str, *, k8s: bool) -> str:
    lines = [
        "#!/bin/sh",
        f"# sealbox: register this machine as {name!r} with the relay at {server}.",
        "# Running this script trusts the relay that served it. To trust nothing, install",
        "# sealbox yourself and run: sealbox machine register --server URL --token TOKEN",
        "set -eu",
        f"SEALBOX_SERVER={sh_quote(server)}",
        f"token={sh_quote(token)}",
        _SH_INSTALL % {"spec": DEFAULT_PIP_SPEC},
        # Only now, and only for sealbox: the installer never sees the token.
        "SEALBOX_BOOTSTRAP_TOKEN=$token",
        "export SEALBOX_BOOTSTRAP_TOKEN",
    ]
    if not k8s:
        lines.append('exec "$SEALBOX" machine register --server "$SEALBOX_SERVER"')
        return "\n".join(lines) + "\n"
    secret = kubernetes_secret_name(name)
    lines += [
        f'out="${{SEALBOX_OUT:-./{secret}}}"',
        '"$SEALBOX" machine register --server "$SEALBOX_SERVER" --out "$out"',
        "echo",
        'echo "Store the identity as a Kubernetes Secret (then delete $out):"',
        f'echo "  kubectl create secret generic {secret}'
        ' --from-file=identity.json=$out/identity.json --from-file=client.key=$out/client.key"',
        'echo "Mount it and set SEALBOX_IDENTITY to the mount directory."',
    ]
    return "\n".join(lines) + "\n"


def _powershell(server: str, token: str, name: str) -> str:
    return "\n".join([
        f"# sealbox: register this machine as {name!r} with the relay at {server}.",
        "# Running this script trusts the relay that served it. To trust nothing, install",
        "# sealbox yourself and run: sealbox machine register --server URL --token TOKEN",
        "$ErrorActionPreference = 'Stop'",
        f"$SealboxServer = {ps_quote(server)}",
        f"$SealboxToken = {ps_quote(token)}",
        "$found = Get-Command sealbox -ErrorAction SilentlyContinue",
        "if ($found) {",
        "  $sealbox = $found.Source",
        "} else {",
        "  $venv = if ($env:SEALBOX_VENV) { $env:SEALBOX_VENV } "
        "else { Join-Path $env:LOCALAPPDATA 'sealbox\\venv' }",
        "  $spec = if ($env:SEALBOX_PIP_SPEC) { $env:SEALBOX_PIP_SPEC } "
        f"else {{ {ps_quote(DEFAULT_PIP_SPEC)} }}",
        '  Write-Host "sealbox: installing $spec into $venv"',
        "  python -m venv $venv",
        "  & (Join-Path $venv 'Scripts\\pip.exe') install --quiet $spec",
        "  $sealbox = Join-Path $venv 'Scripts\\sealbox.exe'",
        "}",
        "$env:SEALBOX_BOOTSTRAP_TOKEN = $SealboxToken",
        "& $sealbox machine register --server $SealboxServer",
        "exit $LASTEXITCODE",
    ]) + "\n"  # fmt: skip


def script(shell: str, *, server: str, token: str, name: str) -> str:
    """The bootstrap script for ``shell`` (one of :data:`SHELLS`)."""
    if shell == "powershell":
        return _powershell(server, token, name)
    return _sh(server, token, name, k8s=shell == "k8s")


def error_script(shell: str, message: str, hint: str) -> str:
    """What a refused script request answers: a script that says why and fails.

    ``curl -sSL … | sh`` runs whatever body comes back, so a refusal is
    itself a script, never text a shell would try to execute word by word.
    """
    text = f"sealbox: {message}. {hint}".strip()
    if shell == "powershell":
        return f"Write-Error {ps_quote(text)}\nexit 1\n"
    return f"echo {sh_quote(text)} >&2\nexit 1\n"
