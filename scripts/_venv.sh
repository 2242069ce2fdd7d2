# Sourced by scripts/up and scripts/test: make .venv (or $SEALBOX_VENV) and install
# sealbox into it with the extras named in $1 ("" for none).
#
# pip runs only when something that decides what it would install has changed since the
# last successful install (5-8 s saved on every start): pyproject.toml, the extras, the
# interpreter, this checkout's location and this script.  Changed sources need nothing: the
# install is editable.  Remove "$venv"/.sealbox-installed-* to force a reinstall.
venv="${SEALBOX_VENV:-.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
pip_install() {
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" >"$log" 2>&1; then
    grep -v '^WARNING: Location' "$log" >&2
    echo "sealbox: pip install $* failed" >&2
    exit 1
  fi
}
# The stamp of an install with these extras: a hash of everything named above.
install_stamp() {
  "$venv/bin/python" - "$1" <<'PY'
import hashlib, os, sys
digest = hashlib.sha256()
for part in (open("pyproject.toml", "rb").read(), open("scripts/_venv.sh", "rb").read(),
             sys.argv[1].encode(), sys.version.encode(), sys.executable.encode(),
             os.getcwd().encode()):
    digest.update(len(part).to_bytes(8, "big") + part)
print(digest.hexdigest())
PY
}
extras="${1:-}"
stamp_file="$venv/.sealbox-installed-${extras:-base}"
stamp="$(install_stamp "$extras")"
if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp" ] || [ ! -x "$venv/bin/sealbox" ]; then
  pip_install --upgrade pip
  if [ -n "$extras" ]; then
    pip_install -e ".[$extras]"
  else
    pip_install -e .
  fi
  echo "$stamp" >"$stamp_file"
  # sealbox[extras] includes sealbox itself: a later start without extras needs nothing.
  install_stamp "" >"$venv/.sealbox-installed-base"
fi
