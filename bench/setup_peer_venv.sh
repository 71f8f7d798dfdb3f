#!/usr/bin/env bash
# Create (or reuse) .venv/bench, the peer runtimes of `make bench`
# (bench/requirements.txt: PyTorch, transformers, ONNX, ONNX Runtime), and
# print its python path.  Kept apart from .venv/tf1 and .venv/tf2 so the peer
# packages never touch the TensorFlow pins.
#
# Python 3.11 only: torch==2.13.0 is pinned as the CPU wheel for cp311.  The
# venv is reinstalled only when bench/requirements.txt changes.  Exit code 3
# means no Python 3.11; any failure leaves `make bench` reporting the peers as
# "not installed".
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv/bench"
requirements="$root/bench/requirements.txt"

stamp_value="$(sha256sum "$requirements" | cut -c1-16)"
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.requirements-stamp" 2>/dev/null)" = "$stamp_value" ]; then
  echo "$venv/bin/python"
  exit 0
fi

python=""
for candidate in "$(command -v python3.11 2>/dev/null || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.11.*/bin/python3.11; do
  if [ -n "$candidate" ] && "$candidate" -c 'import venv' >/dev/null 2>&1; then
    python="$candidate"
    break
  fi
done
if [ -z "$python" ]; then
  echo "setup_peer_venv.sh: no Python 3.11 (on PATH or under pyenv) for the peer benchmarks" >&2
  exit 3
fi
echo "setting up $venv with $python" >&2
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet -r "$requirements" >&2
echo "$stamp_value" > "$venv/.requirements-stamp"
echo "$venv/bin/python"
