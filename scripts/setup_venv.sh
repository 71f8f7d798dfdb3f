#!/usr/bin/env bash
# Create (or reuse) the virtualenv for one runtime and print its python path.
#
#   scripts/setup_venv.sh tf2   -> .venv/tf2, TF 2.15 on Python 3.11/3.10/3.9
#   scripts/setup_venv.sh tf1   -> .venv/tf1, TF 1.15 on Python 3.7
#
# The venv is reinstalled only when requirements*.txt change (a hash stamp
# inside the venv records what was installed).  Exit code 3 means "no suitable
# interpreter on this machine"; the caller decides whether that is fatal.
set -euo pipefail
runtime="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv/$runtime"

case "$runtime" in
  tf1) versions="3.7" ;;
  tf2) versions="3.11 3.10 3.9" ;;
  *) echo "setup_venv.sh: unknown runtime '$runtime' (expected tf1 or tf2)" >&2; exit 2 ;;
esac

works() { [ -n "$1" ] && "$1" -c 'import sys, venv' >/dev/null 2>&1; }

find_python() {
  local v candidate
  for v in $versions; do
    candidate="$(command -v "python$v" 2>/dev/null || true)"
    if works "$candidate"; then echo "$candidate"; return 0; fi
    for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$v".*/bin/python"$v"; do
      if works "$candidate"; then echo "$candidate"; return 0; fi
    done
  done
  return 1
}

stamp_value="$(cat "$root/requirements.txt" "$root/requirements-test.txt" | sha256sum | cut -c1-16)"
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.requirements-stamp" 2>/dev/null)" = "$stamp_value" ]; then
  echo "$venv/bin/python"
  exit 0
fi

if ! python="$(find_python)"; then
  echo "no Python $versions found (on PATH or under pyenv): cannot build the $runtime runtime" >&2
  exit 3
fi
echo "setting up $venv with $python ($("$python" --version 2>&1))" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
# Some machines list local package mirrors that do not carry every package;
# pip warns once per package about them, which is noise here.
quiet_pip() {
  "$venv/bin/python" -m pip install --quiet "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
}
quiet_pip --upgrade "pip<24.1"
quiet_pip -r "$root/requirements.txt" -r "$root/requirements-test.txt"
echo "$stamp_value" > "$venv/.requirements-stamp"
echo "$venv/bin/python"
