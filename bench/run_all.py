"""`make bench`: every benchmark in one run, one table against the peers.

Runs, one after another (never in parallel: they share the machine's cores),

  physical_bound.py     peak float32 matmul rate, multiply-adds, latency bound
  bench_tflite.py       our TF-Lite float / dynamic-range / int8 latency, sizes
  bench_litert.py       the same .tflite files on LiteRT (in .venv/bench)
  bench_savedmodel.py   our SavedModel latency as a TF 2.15 graph
  bench_squad.py        SQuAD featurisation questions/s, fine-tuning examples/s
  bench_pretraining.py  distillation step and student step examples/s
  peers.py              PyTorch / ONNX Runtime MobileBERT (in .venv/bench)
  bench_paired.py       the latency goals' models timed side by side

each writing bench/results/<name>.json (its log goes to <name>.log), then
prints two tables and writes bench/results/summary.json and summary.md.

Rows pair one of our measurements with the comparable peer measurement.  The
"speed-up" column is how many times better ours is (peer latency / our
latency, peer size / our size, or our examples/s / peer examples/s): above 1
we win.  "/ bound" is an fp32 latency divided by the physical bound (multiply-adds at the measured peak
matmul rate): 1.0 would use every multiply-add slot of the machine.  A script
that is missing or fails leaves its rows saying so instead of a number.

The latency goals are judged in a second table, on bench_paired's
alternating blocks: for each goal, the median over rounds of that round's
peer / ours ratio.

  .venv/tf2/bin/python bench/run_all.py            # what `make bench` runs
  .venv/tf2/bin/python bench/run_all.py --quick    # seconds-scale smoke run
  .venv/tf2/bin/python bench/run_all.py --skip_runs  # re-tabulate results/
"""

import collections
import datetime
import json
import os
import platform
import statistics
import sys

import bench_util

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
OPT_CONFIG = os.path.join(REPO_ROOT, "config",
                          "uncased_L-24_H-128_B-512_A-4_F-4_OPT.json")
TINY_CONFIG = os.path.join(REPO_ROOT, "config", "tiny_mobilebert.json")
SEQ_LENGTHS = (128, 384)
QUICK_SEQ_LENGTH = 32
# SQuAD v1.1 train has about 88k questions; the goal is featurising it in
# under 3 minutes (README, Benchmarks).
SQUAD_TRAIN_QUESTIONS = 88000
FEATURISATION_BUDGET_SECONDS = 180.0

# name -> interpreter ("tf": the TF 2.15 venv, "peer": .venv/bench), the
# arguments of a full run and of a --quick run, and which of run_all's common
# flags (--num_threads, --output_file into --results_dir, a --work_dir under
# it, bench_tflite's work dir as --tflite_dir, peers' as --onnx_dir) the
# script accepts.  Every
# script also gets BENCH_QUICK=1 in quick mode.
OPT_ARGS = ["--bert_config_file", OPT_CONFIG, "--seq_lengths", "128,384"]
TINY_ARGS = ["--bert_config_file", TINY_CONFIG,
             "--seq_lengths", str(QUICK_SEQ_LENGTH)]
ALL_COMMON_FLAGS = ("num_threads", "output_file", "work_dir")
SCRIPTS = collections.OrderedDict([
    ("physical_bound", {
        "python": "tf", "full": OPT_ARGS,
        "quick": TINY_ARGS + ["--matmul_size", "512", "--runs", "2"],
        "common_flags": ("num_threads", "output_file"),
    }),
    ("bench_tflite", {
        "python": "tf", "full": OPT_ARGS, "quick": [],
        "common_flags": ALL_COMMON_FLAGS,
    }),
    ("bench_litert", {
        "python": "peer",
        "full": OPT_ARGS,
        "quick": TINY_ARGS + ["--runs", "2", "--warmup_runs", "1"],
        "common_flags": ("num_threads", "output_file", "tflite_dir"),
    }),
    ("bench_savedmodel", {
        "python": "tf", "full": OPT_ARGS,
        "quick": TINY_ARGS + ["--runs", "2", "--warmup_runs", "1"],
        "common_flags": ALL_COMMON_FLAGS,
    }),
    ("bench_squad", {
        "python": "tf", "full": [],
        "quick": ["--bert_config_file", TINY_CONFIG, "--num_questions", "200",
                  "--max_seq_length", str(QUICK_SEQ_LENGTH),
                  "--max_query_length", "8", "--doc_stride", "16",
                  "--train_steps", "1"],
        "common_flags": ("output_file",),
    }),
    ("bench_pretraining", {
        "python": "tf", "full": [], "quick": [],
        "common_flags": ("num_threads", "output_file"),
    }),
    ("peers", {
        "python": "peer", "full": OPT_ARGS,
        "quick": TINY_ARGS + ["--runs", "2", "--warmup_runs", "1",
                              "--train_seq_length", str(QUICK_SEQ_LENGTH),
                              "--train_steps", "2"],
        "common_flags": ALL_COMMON_FLAGS,
    }),
    ("bench_paired", {
        "python": "peer",
        "full": OPT_ARGS,
        "quick": TINY_ARGS + ["--rounds", "2", "--block_runs", "1"],
        "common_flags": ("num_threads", "output_file", "tflite_dir",
                         "onnx_dir"),
    }),
])

parser = bench_util.argument_parser(__doc__)
parser.add_argument("--results_dir", default=os.path.join(BENCH_DIR,
                                                          "results"))
parser.add_argument("--tf_python", default=sys.executable,
                    help="Interpreter with TF 2.15 for our scripts.")
parser.add_argument("--peer_python",
                    default=os.path.join(REPO_ROOT, ".venv", "bench", "bin",
                                         "python"),
                    help="Interpreter with bench/requirements.txt installed.")
bench_util.add_threads_argument(parser)
parser.add_argument("--only", default="",
                    help="Comma-separated subset of scripts to run (the "
                    "others' previous results are tabulated as they are).")
parser.add_argument("--timeout", type=int, default=4 * 3600,
                    help="Seconds one script may take.")
parser.add_argument("--quick", action="store_true",
                    help="Tiny settings, to check the plumbing; the numbers "
                    "mean nothing.")
parser.add_argument("--skip_runs", action="store_true",
                    help="Only tabulate the JSON already in --results_dir.")


def dig(tree, path):
  """tree[path[0]][path[1]]... or None when any key is absent."""
  for key in path:
    if not isinstance(tree, dict) or key not in tree:
      return None
    tree = tree[key]
  return tree


def first_number(tree, paths):
  """The first of `paths` that leads to a number in `tree`, else None."""
  for path in paths:
    value = dig(tree, path)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      return float(value)
  return None


class Metric(object):
  """Where one number lives: a script's JSON and candidate key paths."""

  def __init__(self, script, paths, memory_paths=(), scale=1.0):
    self.script = script
    self.paths = paths
    self.memory_paths = memory_paths
    # Multiplies the stored value into the row's unit (bytes -> MB).
    self.scale = scale

  def read(self, runs):
    """(value, peak MB or None, note) from the scripts' run records."""
    result, note = script_result(runs, self.script)
    if result is None:
      return None, None, note
    value = first_number(result, self.paths)
    if value is None:
      if any(failed_on_path(result, path) for path in self.paths):
        return None, None, "failed"
      return None, None, "not in %s.json" % self.script
    return (value * self.scale, first_number(result, self.memory_paths), "")


def script_result(runs, script):
  """(the script's JSON result, "") or (None, why there is none)."""
  run = runs.get(script)
  if run is None:
    return None, "not run"
  if run["status"] != "ok":
    return None, run["status"].split(" (")[0]
  if dig(run, ("result", "status")) == "not installed":
    return None, "not installed"
  return run["result"], ""


def failed_on_path(tree, path):
  """True if a dict along `path` records {"status": "failed"} (a child
  measurement that the script could not complete)."""
  for key in path:
    if not isinstance(tree, dict):
      return False
    if tree.get("status") == "failed":
      return True
    tree = tree.get(key)
  return isinstance(tree, dict) and tree.get("status") == "failed"


def tflite_metric(kind, seq, script="bench_tflite"):
  """Our TF-Lite latency of one model kind at one sequence length, on TF
  2.15's interpreter (bench_tflite) or on LiteRT (bench_litert)."""
  return Metric(script,
                [("models", kind, str(seq), "latency_ms", "median")],
                [("models", kind, str(seq), "peak_rss_mb")])


def peer_latency_metric(name, seq):
  key = "%s_seq%d" % (name, seq)
  return Metric("peers", [("measurements", key, "latency_ms", "median")],
                [("measurements", key, "peak_rss_mb")])


def savedmodel_metric(seq):
  s = str(seq)
  return Metric("bench_savedmodel",
                [("seq_lengths", s, "latency_ms", "median")],
                [("seq_lengths", s, "peak_rss_mb")])


def throughput_metric(script, names, unit_key):
  """A throughput from another developer's JSON, under any of `names`."""
  paths, memory = [], []
  for name in names:
    paths += [(name, unit_key), (name, "value"), (name,)]
    memory += [(name, "peak_rss_mb")]
  return Metric(script, paths, memory + [("peak_rss_mb",)])


class Row(object):
  """One line of the table: ours against a peer (or alone)."""

  def __init__(self, label, ours, peer=None, peer_label="", lower_is_better=True,
               unit="ms", bound_seq=None, target=None):
    self.label = label
    self.ours = ours
    self.peer = peer
    self.peer_label = peer_label
    self.lower_is_better = lower_is_better
    self.unit = unit
    self.bound_seq = bound_seq
    # dict of goals: min_speedup, max_bound_ratio, min_value (see
    # judge_target); None when the row has no goal.
    self.target = target


def tflite_size_metric(kind):
  """Our TF-Lite file size in MB (bytes in the JSON)."""
  return Metric("bench_tflite", [("models", kind, "size_bytes")], scale=1e-6)


# bench_tflite's files and how the tables name them.
TFLITE_KIND_LABELS = collections.OrderedDict([
    ("float", "float"),
    ("dynamic_range", "dynamic-range"),
    ("int8", "int8"),
    ("int8_float_softmax", "int8 float-softmax"),
])


def table_rows(seq_lengths, train_seq_length):
  """The rows of `make bench`'s first table, in print order.

  Latency rows carry no goal: the goals are judged on bench_paired's
  side-by-side timing (goal_rows).

  Args:
    seq_lengths: inference sequence lengths (batch 1).
    train_seq_length: sequence length of the fine-tuning comparison.

  Returns:
    list of Row.
  """
  rows = []
  for seq in seq_lengths:
    ours_rows = []   # (label, metric, kind)
    for runtime, script in (("TF 2.15", "bench_tflite"),
                            ("LiteRT", "bench_litert")):
      for kind, kind_label in TFLITE_KIND_LABELS.items():
        ours_rows.append(("TF-Lite %s on %s" % (kind_label, runtime),
                          tflite_metric(kind, seq, script), kind))
    ours_rows.append(("TF SavedModel (TF 2.15)", savedmodel_metric(seq),
                      "savedmodel"))
    for ours_label, ours, kind in ours_rows:
      is_fp32 = kind in ("float", "savedmodel")
      if is_fp32:
        peers = [("ONNX Runtime fp32", "ort_fp32"),
                 ("PyTorch fp32 eager", "torch_fp32")]
      else:
        peers = [("ONNX Runtime dynamic int8", "ort_dynamic_int8"),
                 ("PyTorch dynamic int8", "torch_dynamic_int8")]
      for peer_label, peer_name in peers:
        rows.append(Row(
            "latency seq %d: %s" % (seq, ours_label), ours,
            peer_latency_metric(peer_name, seq), peer_label,
            bound_seq=seq if is_fp32 else None))
    for kind in ("int8", "int8_float_softmax"):
      rows.append(Row(
          "latency seq %d: TF-Lite %s on LiteRT" % (seq,
                                                    TFLITE_KIND_LABELS[kind]),
          tflite_metric(kind, seq, "bench_litert"),
          tflite_metric("float", seq, "bench_litert"),
          "TF-Lite float on LiteRT"))
  onnx_export = "export_onnx_seq%d" % seq_lengths[-1]
  for kind, kind_label in TFLITE_KIND_LABELS.items():
    onnx_kind = "fp32" if kind == "float" else "dynamic_int8"
    rows.append(Row(
        "model file: TF-Lite %s" % kind_label, tflite_size_metric(kind),
        Metric("peers", [("measurements", onnx_export, "model_bytes",
                          onnx_kind)], scale=1e-6),
        "ONNX %s" % onnx_kind.replace("_", " "), unit="MB"))
  finetune = "torch_finetune_b8_seq%d" % train_seq_length
  for ours_label, names in (
      ("TF 2.15 graph", ["fine_tuning", "finetune", "training", "train"]),
      ("TF 2.15 graph, TF_ENABLE_ONEDNN_OPTS=1", ["fine_tuning_onednn"])):
    rows.append(Row(
        "fine-tuning b8 seq %d: %s" % (train_seq_length, ours_label),
        throughput_metric("bench_squad", names, "examples_per_sec"),
        Metric("peers", [("measurements", finetune, "examples_per_sec")],
               [("measurements", finetune, "peak_rss_mb")]),
        "PyTorch eager + AdamW", lower_is_better=False, unit="examples/s",
        target={"min_speedup": 1.2}))
  rows.append(Row(
      "distillation step (teacher + student)",
      throughput_metric("bench_pretraining",
                        ["distillation_step", "distillation", "distill",
                         "teacher_student"], "examples_per_sec"),
      lower_is_better=False, unit="examples/s"))
  rows.append(Row(
      "student step",
      throughput_metric("bench_pretraining", ["student_step", "student"],
                        "examples_per_sec"),
      lower_is_better=False, unit="examples/s"))
  rows.append(Row(
      "SQuAD featurisation",
      throughput_metric("bench_squad",
                        ["featurisation", "featurization", "featurize",
                         "features"], "questions_per_sec"),
      lower_is_better=False, unit="questions/s",
      target={"min_value": SQUAD_TRAIN_QUESTIONS /
                           FEATURISATION_BUDGET_SECONDS}))
  return rows


# The latency goals (README, Benchmarks), on LiteRT, the runtime apps ship:
# (ours, peer, target).  Both integer files answer the int8 goal against
# ONNX Runtime: dynamic-range is the same scheme as its dynamic int8,
# full-integer the one integer-only accelerators need.  The float-softmax
# file is the one for x86 CPUs and has goals of its own.
GOAL_SEQ_LENGTH = 384
# The short sequence at which the float-softmax file must be our fastest.
SHORT_GOAL_SEQ_LENGTH = 128
OURS = ("litert_float", "litert_dynamic_range", "litert_int8",
        "litert_int8_float_softmax")
MODEL_LABELS = collections.OrderedDict([
    ("litert_float", "TF-Lite float on LiteRT"),
    ("litert_dynamic_range", "TF-Lite dynamic-range on LiteRT"),
    ("litert_int8", "TF-Lite int8 on LiteRT"),
    ("litert_int8_float_softmax", "TF-Lite int8 float-softmax on LiteRT"),
    ("ort_fp32", "ONNX Runtime fp32"),
    ("ort_dynamic_int8", "ONNX Runtime dynamic int8"),
    # Per round, the faster of the two ONNX Runtime models.
    ("ort_faster", "ONNX Runtime, faster of fp32 / dynamic int8"),
])


def goal_rows(seq_lengths, int8_dot_product):
  """(seq, ours, peer, target or None) of the side-by-side table.

  Args:
    seq_lengths: the sequence lengths timed; most goals apply at
      GOAL_SEQ_LENGTH, the float-softmax file's "fastest of ours" at
      SHORT_GOAL_SEQ_LENGTH.
    int8_dot_product: whether the CPU has int8 dot-product instructions
      (VNNI, AMX).  Where it has them, int8 files are held to twice the
      float file's speed; on an AVX2-only CPU int8 matmuls cost about what
      float ones do, and the goals are what the float-softmax file saves
      besides.
  """
  fastest = "litert_int8_float_softmax"
  if int8_dot_product:
    x86_targets = ((fastest, "litert_float", {"min_speedup": 2.0}),
                   (fastest, "ort_dynamic_int8", {"min_speedup": 1.5}))
  else:
    x86_targets = ((fastest, "litert_float", {"min_speedup": 1.15}),
                   (fastest, "ort_faster", {"min_speedup": 1.1}))
  long_targets = (
      ("litert_float", "ort_fp32",
       {"min_speedup": 1.0, "max_bound_ratio": 1.5}),
      ("litert_dynamic_range", "ort_dynamic_int8", {"min_speedup": 1.3}),
      ("litert_int8", "ort_dynamic_int8", {"min_speedup": 1.3}),
      ("litert_int8", "litert_float",
       {"min_speedup": 2.0 if int8_dot_product else 1.0}),
  ) + x86_targets
  short_targets = tuple((fastest, other, {"min_speedup": 1.0})
                        for other in OURS if other != fastest)
  rows = []
  for seq in seq_lengths:
    # One row per pair: a pair with a goal at this length, or without one.
    targets = collections.OrderedDict(
        ((ours, peer), target if seq == GOAL_SEQ_LENGTH else None)
        for ours, peer, target in long_targets)
    if seq == SHORT_GOAL_SEQ_LENGTH:
      targets.update(((ours, peer), target)
                     for ours, peer, target in short_targets)
    rows += [(seq, ours, peer, target)
             for (ours, peer), target in targets.items()]
  return rows


def evaluate_goal(goal, runs):
  """One side-by-side comparison as a JSON-able dict.

  "ours" and "peer" are the medians of each model's block medians;
  "speedup" is the median over rounds of that round's peer / ours, and
  "speedup_range" the lowest and highest round's.
  """
  seq, ours_name, peer_name, target = goal
  entry = collections.OrderedDict([
      ("measurement", "latency seq %d: %s" % (seq, MODEL_LABELS[ours_name])),
      ("unit", "ms"), ("peer_name", MODEL_LABELS[peer_name]),
      ("ours", None), ("peer", None), ("note", ""), ("speedup", None),
      ("speedup_range", None), ("rounds", None), ("ours_over_bound", None),
      ("target", ""), ("target_met", None)])
  ours_blocks, peer_blocks, note = paired_blocks(runs, seq, ours_name,
                                                 peer_name)
  entry["note"] = note
  if ours_blocks and peer_blocks:
    ratios = [p / o for o, p in zip(ours_blocks, peer_blocks)]
    entry.update(ours=statistics.median(ours_blocks),
                 peer=statistics.median(peer_blocks),
                 speedup=statistics.median(ratios),
                 speedup_range=[min(ratios), max(ratios)],
                 rounds=len(ratios))
    bound = bound_ms(runs, seq)
    if ours_name == "litert_float" and bound:
      entry["ours_over_bound"] = entry["ours"] / bound
  if target:
    entry["target"], entry["target_met"] = judge_target(target, entry)
  return entry


def paired_blocks(runs, seq, ours_name, peer_name):
  """(our block medians, the peer's, note) from bench_paired's record; the
  lists are None with a note saying why when either is absent."""
  result, note = script_result(runs, "bench_paired")
  if result is None:
    return None, None, note
  record = dig(result, ("seq_lengths", str(seq))) or {}
  blocks = dict(record.get("block_medians_ms", {}))
  if blocks.get("ort_fp32") and blocks.get("ort_dynamic_int8"):
    blocks["ort_faster"] = [min(pair) for pair in zip(
        blocks["ort_fp32"], blocks["ort_dynamic_int8"])]
  missing = record.get("missing", {})
  for name in (ours_name, peer_name):
    if not blocks.get(name):
      parts = ("ort_fp32", "ort_dynamic_int8") if name == "ort_faster" else (
          name,)
      why = "; ".join(missing[part] for part in parts if part in missing)
      return None, None, "%s: %s" % (MODEL_LABELS[name],
                                     why or "not in bench_paired.json")
  return blocks[ours_name], blocks[peer_name], ""


def fastest_of_ours(runs, seq_lengths):
  """{seq: (model name, {model name: median ms})} over our LiteRT files
  timed side by side, for the sequence lengths bench_paired timed."""
  result, _ = script_result(runs, "bench_paired")
  fastest = collections.OrderedDict()
  for seq in seq_lengths:
    blocks = dig(result or {}, ("seq_lengths", str(seq), "block_medians_ms"))
    medians = {name: statistics.median(blocks[name]) for name in OURS
               if (blocks or {}).get(name)}
    if medians:
      fastest[seq] = (min(medians, key=medians.get), medians)
  return fastest


def fastest_markdown(fastest):
  """One line per sequence length naming our fastest file, or []."""
  lines = []
  for seq, (best, medians) in fastest.items():
    others = ", ".join("%s %.1f ms" % (MODEL_LABELS[name], medians[name])
                       for name in OURS if name in medians and name != best)
    lines.append("- seq %d: %s, %.1f ms (%s)." % (seq, MODEL_LABELS[best],
                                                 medians[best], others))
  if not lines:
    return []
  return ["", "Fastest of our files on this CPU (bench_paired.py, median of "
          "block medians):", ""] + lines


def bound_ms(runs, seq):
  return first_number(dig(runs, ("physical_bound", "result")) or {},
                      [("seq_lengths", str(seq), "bound_ms")])


def evaluate_row(row, runs):
  """Numbers and verdicts of one row as a JSON-able dict."""
  ours, ours_mb, ours_note = row.ours.read(runs)
  entry = collections.OrderedDict([
      ("measurement", row.label), ("unit", row.unit),
      ("ours", ours), ("ours_peak_rss_mb", ours_mb), ("ours_note", ours_note),
      ("peer_name", row.peer_label or None), ("peer", None),
      ("peer_peak_rss_mb", None), ("peer_note", ""), ("speedup", None),
      ("ours_over_bound", None), ("peer_over_bound", None), ("target", ""),
      ("target_met", None)])
  if row.peer is not None:
    peer, peer_mb, peer_note = row.peer.read(runs)
    entry.update(peer=peer, peer_peak_rss_mb=peer_mb, peer_note=peer_note)
    if ours and peer:
      entry["speedup"] = peer / ours if row.lower_is_better else ours / peer
  if row.bound_seq is not None:
    bound = bound_ms(runs, row.bound_seq)
    if bound:
      if ours:
        entry["ours_over_bound"] = ours / bound
      if entry["peer"]:
        entry["peer_over_bound"] = entry["peer"] / bound
  if row.target:
    entry["target"], entry["target_met"] = judge_target(row.target, entry)
  return entry


def judge_target(target, entry):
  """(description, met: True / False / None when not measurable)."""
  parts, verdicts = [], []
  if "min_speedup" in target:
    # Two decimals where the target has them (1.15), one otherwise (2.0).
    text = "%.2f" % target["min_speedup"]
    parts.append("speed-up >= %s" % (text[:-1] if text.endswith("0") else
                                     text))
    if entry["speedup"] is not None:
      verdicts.append(entry["speedup"] >= target["min_speedup"])
  if "max_bound_ratio" in target:
    parts.append("ours / bound <= %.1f" % target["max_bound_ratio"])
    if entry["ours_over_bound"] is not None:
      verdicts.append(entry["ours_over_bound"] <= target["max_bound_ratio"])
  if "min_value" in target:
    parts.append(">= %.0f %s" % (target["min_value"], entry["unit"]))
    if entry["ours"] is not None:
      verdicts.append(entry["ours"] >= target["min_value"])
  expected = ("min_speedup" in target) + ("max_bound_ratio" in target) + (
      "min_value" in target)
  met = all(verdicts) if len(verdicts) == expected else None
  return ", ".join(parts), met


def _number(value, note, digits=1):
  if value is None:
    return note or "n/a"
  return "%.*f" % (digits, value)


def _ratio(value):
  return "%.2fx" % value if value is not None else "n/a"


def _target_cell(entry):
  """The target column: the target and whether it was met, or empty."""
  if not entry["target"]:
    return entry["target"]
  return entry["target"] + {True: " (met)", False: " (MISSED)",
                            None: " (not measured)"}[entry["target_met"]]


def format_markdown(entries, header_lines):
  """The summary table as Markdown (also what is printed)."""
  lines = list(header_lines) + [""]
  lines.append("| measurement | ours | peer | peer value | speed-up | "
               "ours / bound | peer / bound | peak MB ours / peer | target |")
  lines.append("| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
  for e in entries:
    digits = 1 if e["unit"] == "ms" else 2
    peak = "%s / %s" % (_number(e["ours_peak_rss_mb"], "-", 0),
                        _number(e["peer_peak_rss_mb"], "-", 0)
                        if e["peer_name"] else "-")
    lines.append("| %s (%s) | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        e["measurement"], e["unit"], _number(e["ours"], e["ours_note"], digits),
        e["peer_name"] or "-",
        _number(e["peer"], e["peer_note"], digits) if e["peer_name"] else "-",
        _ratio(e["speedup"]), _ratio(e["ours_over_bound"]),
        _ratio(e["peer_over_bound"]), peak, _target_cell(e)))
  return "\n".join(lines) + "\n"


def goals_markdown(goals, runs):
  """The side-by-side table of the latency goals as Markdown lines."""
  paired, note = script_result(runs, "bench_paired")
  how = ("%d rounds of %d timed calls per model" % (paired["rounds"],
                                                    paired["block_runs"])
         if paired else note)
  lines = ["", "Latency goals, the models timed side by side in one process "
           "(bench_paired.py, %s): speed-up is the median over rounds of "
           "that round's peer / ours, with the lowest and highest round's."
           % how, "",
           "| measurement | ours | peer | peer value | speed-up | "
           "lowest-highest round | ours / bound | target |",
           "| --- | ---: | --- | ---: | ---: | ---: | ---: | --- |"]
  for e in goals:
    spread = ("%.2f-%.2f" % tuple(e["speedup_range"])
              if e["speedup_range"] else "n/a")
    lines.append("| %s (ms) | %s | %s | %s | %s | %s | %s | %s |" % (
        e["measurement"], _number(e["ours"], e["note"]), e["peer_name"],
        _number(e["peer"], e["note"]), _ratio(e["speedup"]), spread,
        _ratio(e["ours_over_bound"]), _target_cell(e)))
  return lines


def cpu_name():
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown CPU"


def run_script(name, spec, args):
  """Runs one benchmark script; returns {"status", "result"?, "log"}."""
  script = os.path.join(BENCH_DIR, name + ".py")
  log_path = os.path.join(args.results_dir, name + ".log")
  result_path = os.path.join(args.results_dir, name + ".json")
  if not os.path.exists(script):
    return {"status": "missing (no bench/%s.py)" % name}
  python = args.tf_python if spec["python"] == "tf" else args.peer_python
  if spec["python"] == "peer" and not os.path.exists(python):
    return {"status": "ok", "result": {"status": "not installed",
                                       "missing": [python]}}
  command = [python, script] + spec["quick" if args.quick else "full"]
  if "num_threads" in spec["common_flags"]:
    command += ["--num_threads", str(args.num_threads)]
  if "output_file" in spec["common_flags"]:
    command += ["--output_file", result_path]
  if "work_dir" in spec["common_flags"]:
    command += ["--work_dir", os.path.join(args.results_dir, name + "_work")]
  if "tflite_dir" in spec["common_flags"]:
    command += ["--tflite_dir",
                os.path.join(args.results_dir, "bench_tflite_work")]
  if "onnx_dir" in spec["common_flags"]:
    command += ["--onnx_dir", os.path.join(args.results_dir, "peers_work")]
  env = dict(os.environ)
  env.update({"OMP_NUM_THREADS": str(args.num_threads),
              "OPENBLAS_NUM_THREADS": str(args.num_threads),
              "MKL_NUM_THREADS": str(args.num_threads),
              "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
              "PYTHONPATH": os.pathsep.join(
                  p for p in (REPO_ROOT, env.get("PYTHONPATH")) if p)})
  if args.quick:
    env["BENCH_QUICK"] = "1"
  if os.path.exists(result_path):
    os.remove(result_path)
  print("run_all: %s ..." % " ".join([os.path.basename(python)] +
                                     [os.path.relpath(script, REPO_ROOT)] +
                                     command[2:]), file=sys.stderr)
  with open(log_path, "w") as log:
    status = bench_util.run_logged(command, log, args.timeout, env=env,
                                   cwd=REPO_ROOT)
  if status != "ok":
    return {"status": "%s (see %s)" % (status,
                                       os.path.relpath(log_path, REPO_ROOT))}
  return load_result(name, args.results_dir)


def load_result(name, results_dir):
  """Reads results_dir/<name>.json into a run record."""
  path = os.path.join(results_dir, name + ".json")
  if not os.path.exists(path):
    return {"status": "no %s.json written" % name}
  try:
    with open(path) as f:
      return {"status": "ok", "result": json.load(f)}
  except ValueError as e:
    return {"status": "unreadable %s.json (%s)" % (name, e)}


def validate_args(args):
  if args.num_threads < 1 or args.timeout < 1:
    parser.error("--num_threads and --timeout must be >= 1")
  only = [n for n in args.only.split(",") if n]
  unknown = sorted(set(only) - set(SCRIPTS))
  if unknown:
    parser.error("--only names unknown scripts %s; known: %s" %
                 (", ".join(unknown), ", ".join(SCRIPTS)))
  return only


def int8_features_text(flags):
  """How the header names the CPU's int8 dot-product support."""
  if flags:
    return "int8 dot product: yes (%s)" % ", ".join(flags)
  return "int8 dot product: no (e.g. AVX2 only)"


def delegation_markdown(runs):
  """A table of what LiteRT's XNNPACK delegate runs of each model, or []."""
  models = dig(runs, ("bench_litert", "result", "models")) or {}
  lines = []
  for kind in TFLITE_KIND_LABELS:
    for seq, measurement in sorted(models.get(kind, {}).items(),
                                   key=lambda item: int(item[0])):
      share = measurement.get("delegation")
      if not share:
        continue
      others = ", ".join("%s %d" % item for item in
                         sorted(share["not_delegated"].items())) or "-"
      lines.append("| TF-Lite %s seq %s | %d / %d | %d | %s |" % (
          TFLITE_KIND_LABELS[kind], seq, share["delegated_nodes"],
          share["total_nodes"], share["partitions"], others))
  if not lines:
    return []
  return (["", "XNNPACK on LiteRT: nodes it runs, partitions, and the nodes "
           "left to TF-Lite's builtin kernels.", "",
           "| model | delegated / all nodes | partitions | not delegated |",
           "| --- | ---: | ---: | --- |"] + lines)


def summarise(runs, args, seq_lengths):
  """Builds the summary dict and its Markdown from the run records."""
  int8_flags = bench_util.cpu_int8_dot_product_flags()
  entries = [evaluate_row(row, runs)
             for row in table_rows(seq_lengths, seq_lengths[-1])]
  goals = [evaluate_goal(goal, runs)
           for goal in goal_rows(seq_lengths, bool(int8_flags))]
  bound = dig(runs, ("physical_bound", "result")) or {}
  peers = dig(runs, ("peers", "result")) or {}
  header = [
      "MobileBERT benchmarks (`make bench`%s), %s" % (
          " --quick: tiny settings, numbers meaningless" if args.quick else "",
          datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")),
      "",
      "CPU: %s (%s), %d threads per benchmark; peak float32 matmul %s "
      "GFLOP/s; peers: %s." % (
          cpu_name(), int8_features_text(int8_flags), args.num_threads,
          _number(bound.get("peak_matmul_gflops"), "n/a"),
          ", ".join("%s %s" % kv for kv in sorted(
              peers.get("versions", {}).items())) or
          "not installed (pip install -r bench/requirements.txt in "
          ".venv/bench)"),
  ]
  for name, run in runs.items():
    if run["status"] != "ok":
      header.append("%s: %s" % (name, run["status"]))
  markdown = format_markdown(entries, header)
  fastest = fastest_of_ours(runs, seq_lengths)
  markdown += "\n".join(goals_markdown(goals, runs) +
                        fastest_markdown(fastest) +
                        delegation_markdown(runs) + [""])
  summary = collections.OrderedDict([
      ("date_utc", datetime.datetime.utcnow().isoformat()),
      ("cpu", cpu_name()), ("cpu_int8_dot_product", int8_flags),
      ("num_threads", args.num_threads),
      ("quick", args.quick),
      ("scripts", {name: run["status"] for name, run in runs.items()}),
      ("physical_bound", bound), ("rows", entries), ("goals", goals),
      ("fastest_of_ours", collections.OrderedDict(
          (str(seq), best) for seq, (best, _) in fastest.items()))])
  return summary, markdown


def main():
  args = parser.parse_args()
  only = validate_args(args)
  if not os.path.isdir(args.results_dir):
    os.makedirs(args.results_dir)
  runs = collections.OrderedDict()
  for name, spec in SCRIPTS.items():
    if args.skip_runs or (only and name not in only):
      runs[name] = load_result(name, args.results_dir)
    else:
      runs[name] = run_script(name, spec, args)
  seq_lengths = (QUICK_SEQ_LENGTH,) if args.quick else SEQ_LENGTHS
  summary, markdown = summarise(runs, args, seq_lengths)
  bench_util.write_json(os.path.join(args.results_dir, "summary.json"),
                        summary)
  with open(os.path.join(args.results_dir, "summary.md"), "w") as f:
    f.write(markdown)
  print(markdown)


if __name__ == "__main__":
  main()
