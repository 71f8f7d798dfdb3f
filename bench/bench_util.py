"""Arguments, timing, memory and subprocess helpers of the bench/ scripts.

Every bench script parses its command line with argparse; the arguments
they share are defined here once (`add_*_arguments`).

Standard library only at import time: bench/peers.py imports it in the peer
venv (no TensorFlow; maybe not even numpy, which it must be able to report),
and bench/run_all.py imports it wherever it runs.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time


BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(BENCH_DIR, "results")
PUBLISHED_CONFIG = os.path.join(os.path.dirname(BENCH_DIR), "config",
                                "uncased_L-24_H-128_B-512_A-4_F-4_OPT.json")

# /proc/cpuinfo flags of int8 dot-product instructions: x86 AVX-512 VNNI,
# AVX-VNNI and AMX int8; ARM's dot product ("asimddp").
INT8_DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")


def cpu_int8_dot_product_flags(cpuinfo_path="/proc/cpuinfo"):
  """The int8 dot-product instruction sets this CPU reports, sorted.

  Integer TF-Lite kernels only pull ahead of float ones with these; an empty
  list means e.g. an AVX2-only x86, where int8 GEMMs run about as fast as
  float ones.
  """
  try:
    with open(cpuinfo_path) as f:
      flags = set()
      for line in f:
        if line.split(":")[0].strip() in ("flags", "Features"):
          flags.update(line.split(":", 1)[1].split())
  except OSError:
    return []
  return sorted(flag for flag in INT8_DOT_PRODUCT_FLAGS if flag in flags)


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


# Defaults of the original BertConfig (docs/architecture.md, section 1) for
# keys a JSON config may leave out; transformers' own defaults differ (e.g.
# hidden_act).
ORIGINAL_CONFIG_DEFAULTS = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 512,
    "type_vocab_size": 16,
    "initializer_range": 0.02,
    "embedding_size": None,
    "trigram_input": False,
    "use_bottleneck": False,
    "intra_bottleneck_size": None,
    "use_bottleneck_attention": False,
    "key_query_shared_bottleneck": False,
    "num_feedforward_networks": 1,
    "normalization_type": "layer_norm",
    "classifier_activation": True,
}


def read_config(path):
  """Our JSON config as a dict with the original's defaults filled in."""
  try:
    with open(path) as f:
      config = json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError("--bert_config_file %s cannot be read as JSON: %s" %
                     (path, e))
  if not isinstance(config, dict) or "vocab_size" not in config:
    raise ValueError("--bert_config_file %s must be a JSON object with "
                     "'vocab_size'" % path)
  filled = dict(ORIGINAL_CONFIG_DEFAULTS)
  filled.update(config)
  if filled["embedding_size"] is None:
    filled["embedding_size"] = filled["hidden_size"]
  if filled["intra_bottleneck_size"] is None:
    filled["intra_bottleneck_size"] = filled["hidden_size"]
  return filled


def parse_seq_lengths(values, max_position_embeddings, config_path):
  """Validates a --seq_lengths flag against the model config.

  Args:
    values: the flag's comma-separated string.
    max_position_embeddings: the config's limit.
    config_path: the config file, named in errors.

  Returns:
    The sequence lengths as ints, in the order given.

  Raises:
    ValueError: naming the flag and the offending value.
  """
  seq_lengths = []
  for value in values.split(","):
    value = value.strip()
    if not value.isdigit() or int(value) < 1:
      raise ValueError("--seq_lengths must be positive integers, got %r" %
                       value)
    if int(value) > max_position_embeddings:
      raise ValueError("--seq_lengths value %s exceeds max_position_embeddings "
                       "%d of %s" % (value, max_position_embeddings,
                                     config_path))
    seq_lengths.append(int(value))
  return seq_lengths


def check_minimums(flag_values, minimums):
  """Raises ValueError for the first flag below its minimum.

  Args:
    flag_values: the argparse namespace.
    minimums: {flag name: smallest allowed value}.
  """
  for name, minimum in minimums.items():
    value = getattr(flag_values, name)
    if value < minimum:
      raise ValueError("--%s must be >= %d, got %d" % (name, minimum, value))


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


def time_alternating(calls, rounds, block_runs, clock=time.perf_counter):
  """Times several callables in alternating blocks of calls.

  A shared machine's speed drifts over seconds, so two models timed one
  after the other can see different machines.  Here every round runs, for
  each callable in turn, one untimed call (the block before it has evicted
  its data from the caches) and then `block_runs` timed calls; a slow spell
  lands on neighbouring blocks of every callable alike, and a ratio taken
  round by round compares like with like.

  Args:
    calls: list of (name, zero-argument callable), timed in this order.
    rounds: number of rounds.
    block_runs: timed calls per callable per round.
    clock: seconds, monotonic (time.perf_counter; a fake one in tests).

  Returns:
    {name: [median milliseconds of its block, one per round]}.
  """
  if rounds < 1 or block_runs < 1:
    raise ValueError("time_alternating needs rounds and block_runs >= 1")
  medians = {name: [] for name, _ in calls}
  for _ in range(rounds):
    for name, call in calls:
      call()
      times = []
      for _ in range(block_runs):
        start = clock()
        call()
        times.append((clock() - start) * 1e3)
      medians[name].append(statistics.median(times))
  return medians


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


def child_command(script, flag_values, names, extra_args=()):
  """The argv that re-runs `script` in a fresh interpreter for one measurement.

  Args:
    script: path of the bench script.
    flag_values: the argparse namespace to copy flags from.
    names: the flags to pass on with their current values.
    extra_args: further argv entries (the child-mode flags).

  Returns:
    argv list for run_child.
  """
  command = [sys.executable, os.path.abspath(script)] + list(extra_args)
  for name in names:
    value = getattr(flag_values, name)
    command += ["--" + name, str(value)]
  return command


def write_child_result(result_file, result):
  """Child side of run_child: adds this process's peak RSS, writes the JSON."""
  result["peak_rss_mb"] = peak_rss_mb()
  write_json(result_file, result)


def run_child(command, result_file, timeout, env=None):
  """Runs one measurement in a fresh process and reads the JSON it wrote.

  Args:
    command: argv list; the child writes its result dict to `result_file`.
    result_file: path the child writes; removed first so a stale file never
      passes for a result, and again once read.
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
  # The file only carries the result across the process boundary.
  os.remove(result_file)
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


def argument_parser(description):
  """An ArgumentParser that shows `description` (a module docstring) as is."""
  return argparse.ArgumentParser(
      description=description,
      formatter_class=argparse.RawDescriptionHelpFormatter)


def add_config_argument(parser, default=PUBLISHED_CONFIG):
  """--bert_config_file: the model config; the weights are random."""
  parser.add_argument(
      "--bert_config_file", default=default,
      help="The model's config; the weights are random (default: the "
      "published MobileBERT OPT config).")


def add_seq_lengths_argument(parser, default="128,384"):
  """--seq_lengths: comma-separated sequence lengths (parse_seq_lengths)."""
  parser.add_argument("--seq_lengths", default=default,
                      help="Comma-separated sequence lengths (batch 1).")


def add_timing_arguments(parser, runs=20, warmup_runs=5, timeout=1800):
  """--runs, --warmup_runs, --num_threads and --timeout."""
  parser.add_argument("--runs", type=int, default=runs,
                      help="Timed calls per measurement (their median).")
  parser.add_argument("--warmup_runs", type=int, default=warmup_runs,
                      help="Untimed calls before timing.")
  add_threads_argument(parser)
  add_timeout_argument(parser, timeout)


def add_threads_argument(parser):
  """--num_threads, the thread count every runtime is held to."""
  parser.add_argument("--num_threads", type=int, default=2,
                      help="Threads of every runtime (intra-op threads, "
                      "interpreter threads).")


def add_timeout_argument(parser, default):
  """--timeout: seconds one measurement may take."""
  parser.add_argument("--timeout", type=int, default=default,
                      help="Seconds one measurement may take before it is "
                      "recorded as failed.")


def add_output_arguments(parser, name, work_dir_name=None):
  """--output_file (results/<name>.json), and --work_dir if `work_dir_name`.
  """
  parser.add_argument("--output_file",
                      default=os.path.join(RESULTS_DIR, name + ".json"),
                      help="Where the JSON result (read by run_all.py) goes.")
  if work_dir_name:
    parser.add_argument("--work_dir",
                        default=os.path.join(RESULTS_DIR, work_dir_name),
                        help="Where the random checkpoint and the exported "
                        "or converted models go.")


def add_result_file_argument(parser):
  """--result_file: where a child measurement (run_child) writes; no help."""
  parser.add_argument("--result_file", default=None, help=argparse.SUPPRESS)
