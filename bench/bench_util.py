"""Timing, memory and subprocess helpers shared by the bench/ scripts.

Standard library only at import time: bench/peers.py imports it in the peer
venv (no TensorFlow; maybe not even numpy, which it must be able to report),
and bench/run_all.py imports it wherever it runs.
"""

import json
import os
import resource
import statistics
import subprocess
import time


def make_inputs(vocab_size, batch_size, seq_length, dtype, seed=0):
  """The same deterministic model inputs for every runtime we time.

  A full mask (no padding: the worst case), segment 0 on the first quarter
  (the question) and 1 on the rest (the paragraph), ids drawn from
  [1000, vocab_size) after a leading [CLS] (101).

  Args:
    vocab_size: rows of the word-embedding table.
    batch_size: B.
    seq_length: S.
    dtype: numpy integer type (int32 for TensorFlow, int64 for PyTorch/ONNX).
    seed: numpy RandomState seed.

  Returns:
    dict with "input_ids", "input_mask", "segment_ids", each [B, S] of dtype.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.RandomState(seed)
  input_ids = rng.randint(min(1000, vocab_size - 1), vocab_size,
                          size=(batch_size, seq_length))
  input_ids[:, 0] = min(101, vocab_size - 1)
  segment_ids = np.zeros((batch_size, seq_length), dtype=dtype)
  segment_ids[:, seq_length // 4:] = 1
  return {"input_ids": input_ids.astype(dtype),
          "input_mask": np.ones((batch_size, seq_length), dtype=dtype),
          "segment_ids": segment_ids}


def latency_summary(times_ms):
  """Median, mean, min and 90th percentile of per-call milliseconds."""
  if not times_ms:
    raise ValueError("latency_summary needs at least one time")
  ordered = sorted(times_ms)
  return {
      "median": statistics.median(ordered),
      "mean": statistics.mean(ordered),
      "min": ordered[0],
      "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))],
      "runs": len(ordered),
  }


def time_calls(call, runs, warmup_runs):
  """Calls `call` warmup_runs times untimed, then times `runs` calls.

  Returns:
    latency_summary of the timed calls, in milliseconds.
  """
  for _ in range(warmup_runs):
    call()
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    call()
    times.append((time.perf_counter() - start) * 1e3)
  return latency_summary(times)


def peak_rss_mb():
  """This process's resident-memory high-water mark in MiB.

  Linux's VmHWM is kept by the kernel for the current address space, so it
  catches peaks between samples (which polling RSS would miss) and, unlike
  getrusage's ru_maxrss, does not carry over the parent's peak through the
  fork and exec that started a measurement subprocess.  ru_maxrss is the
  fallback where /proc is absent.
  """
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("VmHWM:"):
          return int(line.split()[1]) / 1024.0
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_json(path, value):
  """Writes `value` as indented JSON, creating the directory."""
  directory = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(directory):
    os.makedirs(directory)
  with open(path, "w") as f:
    json.dump(value, f, indent=2)


def run_child(command, result_file, timeout, env=None):
  """Runs one measurement in a fresh process and reads the JSON it wrote.

  Args:
    command: argv list; the child writes its result dict to `result_file`.
    result_file: path the child writes; removed first so a stale file never
      passes for a result.
    timeout: seconds before the child is killed and recorded as failed.
    env: environment for the child (None: inherit).

  Returns:
    The child's dict with "status": "ok" and "wall_seconds", or
    {"status": "failed", "error": <exit code and last output lines>}.
  """
  if os.path.exists(result_file):
    os.remove(result_file)
  started = time.time()
  try:
    completed = subprocess.run(command, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT,
                               universal_newlines=True, timeout=timeout,
                               env=env)
  except subprocess.TimeoutExpired:
    return {"status": "failed", "error": "timed out after %d s" % timeout}
  if completed.returncode != 0 or not os.path.exists(result_file):
    tail = [line for line in completed.stdout.strip().splitlines()
            if line.strip()][-3:]
    return {"status": "failed",
            "error": "exit code %d: %s" % (completed.returncode,
                                           " | ".join(tail))}
  with open(result_file) as f:
    result = json.load(f)
  result["status"] = "ok"
  result["wall_seconds"] = time.time() - started
  return result


def run_logged(command, log_file, timeout, env=None, cwd=None):
  """Runs a command with its output in `log_file`.

  Returns:
    "ok", "failed (exit code N)" or "timed out after N s".
  """
  try:
    completed = subprocess.run(command, stdout=log_file,
                               stderr=subprocess.STDOUT, timeout=timeout,
                               env=env, cwd=cwd)
  except subprocess.TimeoutExpired:
    return "timed out after %d s" % timeout
  if completed.returncode != 0:
    return "failed (exit code %d)" % completed.returncode
  return "ok"
