#!/usr/bin/env bash
# Create (or reuse) the virtualenv for one runtime and print its python path.
#
#   scripts/setup_venv.sh tf2   -> .venv/tf2, TF 2.15 on Python 3.11/3.10/3.9
#   scripts/setup_venv.sh tf1   -> .venv/tf1, TF 1.15 on Python 3.7
#   scripts/setup_venv.sh hf    -> .venv/hf, PyTorch + transformers (no TF)
#
# The venv is reinstalled only when its requirements files change (a hash
# stamp inside the venv records what was installed).  Exit code 3 means "no suitable
# interpreter on this machine"; the caller decides whether that is fatal.
set -euo pipefail
runtime="$1"
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv/$runtime"

case "$runtime" in
  tf1) versions="3.7" ;;
  tf2) versions="3.11 3.10 3.9" ;;
  hf) versions="3.11 3.10" ;;
  *) echo "setup_venv.sh: unknown runtime '$runtime' (expected tf1, tf2 or hf)" >&2; exit 2 ;;
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

# The TF 2.15 test runtime also gets tflite-support (requirements-metadata.txt)
# so the Task Library tests run; its native library needs libusb-1.0.
# It also gets the compiled protobuf (requirements-fast-protobuf.txt, which
# says why it is installed on its own with --no-deps).
requirement_files=("$root/requirements.txt" "$root/requirements-test.txt")
override_files=()
if [ "$runtime" = hf ]; then
  # The transformers consumer of export_huggingface.py: no TensorFlow.
  requirement_files=("$root/requirements-huggingface.txt")
fi
if [ "$runtime" = tf2 ]; then
  requirement_files+=("$root/requirements-metadata.txt")
  override_files+=("$root/requirements-fast-protobuf.txt")
fi

ensure_libusb() {
  if ldconfig -p 2>/dev/null | grep -q 'libusb-1\.0\.so\.0'; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing libusb-1.0-0 (tflite-support's native library needs it)" >&2
    if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0; } >/dev/null 2>&1; then
      return 0
    fi
  fi
  echo "libusb-1.0 is missing and could not be installed here (Debian/Ubuntu: apt-get install libusb-1.0-0); the Task Library tests will say so" >&2
}

stamp_value="$(cat "${requirement_files[@]}" ${override_files[@]+"${override_files[@]}"} | sha256sum | cut -c1-16)"
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.requirements-stamp" 2>/dev/null)" = "$stamp_value" ]; then
  if [ "$runtime" = tf2 ]; then ensure_libusb; fi
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
# The override's expected complaints: pip lists every declared protobuf < 4.
quiet_override() {
  "$venv/bin/python" -m pip install --quiet --no-deps "$@" 2>&1 | { grep -v -e "is ignored: it is neither a file nor a directory" -e "dependency resolver does not currently take into account" -e "requires protobuf" || true; } >&2
}
quiet_pip --upgrade "pip<24.1"
pip_args=()
for file in "${requirement_files[@]}"; do pip_args+=(-r "$file"); done
quiet_pip "${pip_args[@]}"
for file in ${override_files[@]+"${override_files[@]}"}; do quiet_override -r "$file"; done
if [ "$runtime" = tf2 ]; then ensure_libusb; fi
echo "$stamp_value" > "$venv/.requirements-stamp"
echo "$venv/bin/python"
