# Sourced by scripts/up and scripts/test: make .venv (or $SEALBOX_VENV) and install
# sealbox into it with the extras named in $1 ("" for none).
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
pip_install --upgrade pip
if [ -n "${1:-}" ]; then
  pip_install -e ".[$1]"
else
  pip_install -e .
fi
