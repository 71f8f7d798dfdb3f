#!/usr/bin/env bash
# `make test`: build both runtimes from nothing (or reuse them) and run the
# whole suite on each.  Extra arguments go to pytest.
#
# Each suite gets MOBILEBERT_PEER_PYTHON pointing at the other runtime so the
# cross-runtime checkpoint tests can run the other TensorFlow in a subprocess.
# Off CI a missing Python 3.7 skips the TF 1.15 suite with one line; under
# CI=true it is a failure.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

# The three runtimes are built side by side: from nothing, each is mostly pip
# unpacking wheels on one core, and together they take the time of the
# slowest instead of the sum.  The suites start as soon as the two
# TensorFlow runtimes are ready; the transformers venv (the slowest, and
# needed only by test_export_huggingface.py, minutes into a suite) goes on
# building beside them.
venvs="$(mktemp -d)"
build_venv() {
  scripts/setup_venv.sh "$1" > "$venvs/$1.python"
  echo $? > "$venvs/$1.status"
}
build_venv tf2 & tf2_build=$!
build_venv tf1 & tf1_build=$!
# The interpreter's path lands in hf.ready whole when the build ends (empty
# if it failed); the tests wait for that file.
{ build_venv hf; { [ "$(cat "$venvs/hf.status")" = 0 ] && cat "$venvs/hf.python"; } > "$venvs/hf.partial"; mv "$venvs/hf.partial" "$venvs/hf.ready"; } & hf_build=$!
wait "$tf2_build" "$tf1_build"
venv_python() { [ "$(cat "$venvs/$1.status")" = 0 ] && cat "$venvs/$1.python"; }
finish() { wait "$hf_build"; rm -rf "$venvs"; }

tf2_python="$(venv_python tf2)" || { echo "make test: could not set up the TF 2.15 runtime" >&2; finish; exit 1; }
if ! tf1_python="$(venv_python tf1)"; then
  if [ "${CI:-}" = "true" ]; then
    echo "make test: the TF 1.15 runtime (Python 3.7) is required under CI" >&2; finish; exit 1
  fi
  echo "make test: no Python 3.7 on this machine, running the TF 2.15 suite only" >&2
  tf1_python=""
fi

# The transformers consumer of export_huggingface.py (its tests skip, or fail
# under CI, when it could not be built).
export MOBILEBERT_HF_PYTHON_FILE="$venvs/hf.ready"

# The two suites run side by side (most of their time is single-threaded
# graph building), each in its own temporary directory; their output is
# streamed with a [tf2] / [tf1] prefix and kept, so that the failures of both
# suites can be listed together at the end (interleaved, one suite's failure
# summary would scroll out of sight behind the other's output).
logs="$(mktemp -d)"
run_suite() {
  local name="$1" python="$2" peer="$3"; shift 3
  {
    echo "=== $name: $("$python" -c 'import sys, tensorflow as t; print("Python %d.%d, TensorFlow %s" % (sys.version_info[0], sys.version_info[1], t.__version__))' 2>/dev/null) ==="
    MOBILEBERT_PEER_PYTHON="$peer" TF_CPP_MIN_LOG_LEVEL=2 "$python" -m pytest \
      -p no:cacheprovider --basetemp="$logs/tmp-$name" tests "$@"
    echo $? > "$logs/$name.status"
  } 2>&1 | tee "$logs/$name.log" | sed -u "s/^/[$name] /"
}

suites=(tf2)
run_suite tf2 "$tf2_python" "$tf1_python" "$@" & suite_runs=($!)
if [ -n "$tf1_python" ]; then
  suites+=(tf1)
  run_suite tf1 "$tf1_python" "$tf2_python" "$@" & suite_runs+=($!)
fi
wait "${suite_runs[@]}"

status=0
for name in "${suites[@]}"; do
  code="$(cat "$logs/$name.status" 2>/dev/null || echo 1)"
  echo "make test: $name suite exit code $code"
  if [ "$code" -ne 0 ]; then
    status=1
    grep -E '^(FAILED|ERROR) ' "$logs/$name.log" | sed "s/^/make test: [$name] /"
  fi
done
rm -rf "$logs"
finish
exit $status
