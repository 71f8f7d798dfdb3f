"""Latency of our TF-Lite files on LiteRT, the runtime phone apps ship today.

bench_tflite.py times the exported models with the interpreter bundled in
TensorFlow 2.15.  The same files behave very differently on a current
runtime: TF 2.15's XNNPACK delegate takes no BATCH_MATMUL, so every attention
matmul leaves the delegate, splits the graph into 49 partitions at 24 layers
and runs on TF-Lite's builtin kernels, while LiteRT's delegate keeps the
whole float graph in one partition (and takes the int8 matmuls too, whose
second operand export_tflite quantizes symmetrically for it).  This script
times the files bench_tflite wrote (--tflite_dir/export_seq<S>/
model_<kind>.tflite, S in --seq_lengths) with
ai_edge_litert.interpreter on --num_threads threads, batch 1, the same inputs
(bench_util.make_inputs), the median of --runs calls after --warmup_runs
untimed ones, each model in a fresh subprocess for its own peak RSS.

It runs in the peer venv (.venv/bench, `bench/requirements.txt`), which keeps
LiteRT's numpy away from TensorFlow 2.15's pins.  Without ai-edge-litert it
writes {"status": "not installed"}.

Writes JSON to --output_file (bench/results/bench_litert.json), laid out like
bench_tflite.json, plus what XNNPACK takes of each graph (`delegation`):
  {"status": "ok", "versions": {...}, "models": {"float": {"128": {"status":
   "ok", "latency_ms": {...}, "peak_rss_mb": ..., "delegation":
   {"delegated_nodes": ..., "total_nodes": ..., "partitions": ...,
    "not_delegated": {"SOFTMAX": 24, ...}}}, ...}, ...}}
"""

import argparse
import glob
import importlib.util
import os
import re
import sys

import bench_util

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
KINDS = ("float", "dynamic_range", "int8", "int8_float_softmax")
NO_MODELS_MESSAGE = ("no export_seq<S>/model_<kind>.tflite for --seq_lengths "
                     "%s under --tflite_dir %s; run bench/bench_tflite.py "
                     "first")

parser = bench_util.argument_parser(__doc__)


def add_model_flags(argument_parser):
  """--bert_config_file and --tflite_dir: which bench_tflite files to load."""
  bench_util.add_config_argument(argument_parser)
  argument_parser.add_argument(
      "--tflite_dir",
      default=os.path.join(BENCH_DIR, "results", "bench_tflite_work"),
      help="bench_tflite.py's --work_dir (export_seq<S>/ folders).")
  argument_parser.add_argument(
      "--seq_lengths", default="128,384",
      help="The export_seq<S> folders to load (bench_tflite.py's "
      "--seq_lengths); other folders there, say from a --quick run, are "
      "left alone.")


def read_model_flags(args):
  """(vocab_size, seq_lengths) from --bert_config_file and --seq_lengths.

  Raises:
    ValueError: naming the flag that is wrong.
  """
  config = bench_util.read_config(args.bert_config_file)
  return config["vocab_size"], bench_util.parse_seq_lengths(
      args.seq_lengths, config["max_position_embeddings"],
      args.bert_config_file)


add_model_flags(parser)
bench_util.add_timing_arguments(parser)
bench_util.add_output_arguments(parser, "bench_litert")
# One model in this process (used by the parent for each subprocess).
parser.add_argument("--measure_model", default=None, help=argparse.SUPPRESS)
bench_util.add_result_file_argument(parser)


def find_models(tflite_dir, seq_lengths):
  """{kind: {seq_length: path}} of bench_tflite's files at seq_lengths."""
  models = {}
  for path in sorted(glob.glob(os.path.join(tflite_dir, "export_seq*",
                                            "model_*.tflite"))):
    seq_match = re.search(r"export_seq(\d+)$", os.path.dirname(path))
    kind = os.path.basename(path)[len("model_"):-len(".tflite")]
    if seq_match and int(seq_match.group(1)) in seq_lengths and kind in KINDS:
      models.setdefault(kind, {})[int(seq_match.group(1))] = path
  return models


def input_name(tensor_name):
  """'serving_default_input_ids:0' -> 'input_ids' (as export_tflite names)."""
  name = tensor_name.split(":")[0]
  prefix = "serving_default_"
  return name[len(prefix):] if name.startswith(prefix) else name


def delegation(model):
  """How much of an allocated LiteRT interpreter's graph XNNPACK runs.

  The interpreter lists the model's own nodes and, after them, one DELEGATE
  node per partition the delegate took.  A model node belongs to a partition
  when its output is computed inside it: walking back from a partition's
  outputs through the nodes that produce them, up to its inputs, finds them.

  Returns:
    {"delegated_nodes", "total_nodes", "partitions", "not_delegated": {op
    type: count}}.
  """
  nodes = model._get_ops_details()  # pylint: disable=protected-access
  partitions = [node for node in nodes if node["op_name"] == "DELEGATE"]
  own = {node["index"]: node for node in nodes
         if node["op_name"] != "DELEGATE"}
  producer = {tensor: node["index"] for node in own.values()
              for tensor in node["outputs"]}
  delegated = set()
  for partition in partitions:
    boundary = set(partition["inputs"])
    pending = list(partition["outputs"])
    while pending:
      tensor = pending.pop()
      if tensor in boundary or tensor not in producer:
        continue
      index = producer[tensor]
      if index not in delegated:
        delegated.add(index)
        pending.extend(i for i in own[index]["inputs"] if i >= 0)
  not_delegated = {}
  for index, node in own.items():
    if index not in delegated:
      not_delegated[node["op_name"]] = not_delegated.get(node["op_name"],
                                                         0) + 1
  return {"delegated_nodes": len(delegated), "total_nodes": len(own),
          "partitions": len(partitions), "not_delegated": not_delegated}


def load_model(path, num_threads, vocab_size):
  """A LiteRT interpreter of `path` with bench_util.make_inputs set.

  Returns:
    the allocated interpreter; time its `invoke`.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
  model = litert.Interpreter(model_path=path, num_threads=num_threads)
  model.allocate_tensors()
  rows = vocabulary_rows(model)
  if rows is not None and rows < vocab_size:
    raise ValueError("%s has %d vocabulary rows but --bert_config_file's "
                     "vocab_size is %d: it was exported from another config"
                     % (path, rows, vocab_size))
  details = model.get_input_details()
  seq_length = int(details[0]["shape"][-1])
  inputs = bench_util.make_inputs(vocab_size, 1, seq_length, np.int32)
  for detail in details:
    model.set_tensor(detail["index"],
                     inputs[input_name(detail["name"])].astype(detail["dtype"]))
  return model


def vocabulary_rows(model):
  """Rows of the table the input_ids are GATHERed from, or None if none is.

  Args:
    model: an allocated LiteRT interpreter.
  """
  ids = [d["index"] for d in model.get_input_details()
         if input_name(d["name"]) == "input_ids"]
  shapes = {t["index"]: t["shape"] for t in model.get_tensor_details()}
  for node in model._get_ops_details():  # pylint: disable=protected-access
    if node["op_name"] == "GATHER" and list(node["inputs"][1:2]) == ids:
      return int(shapes[node["inputs"][0]][0])
  return None


def time_model(path, args):
  """Times one model with LiteRT's interpreter; returns the result dict."""
  vocab_size, _ = read_model_flags(args)
  model = load_model(path, args.num_threads, vocab_size)
  return {"latency_ms": bench_util.time_calls(model.invoke, args.runs,
                                              args.warmup_runs),
          "delegation": delegation(model)}


def report_if_litert_missing(script_name, output_file):
  """Writes the "not installed" result when ai-edge-litert is absent.

  Returns:
    True if LiteRT is missing (the caller has nothing to measure).
  """
  if importlib.util.find_spec("ai_edge_litert") is not None:
    return False
  print("%s: ai-edge-litert is not installed (pip install -r "
        "bench/requirements.txt in .venv/bench)" % script_name,
        file=sys.stderr)
  bench_util.write_json(output_file, {"status": "not installed",
                                      "missing": ["ai_edge_litert"]})
  return True


def main():
  args = parser.parse_args()
  try:
    bench_util.check_minimums(args, {"runs": 1, "num_threads": 1,
                                     "timeout": 1, "warmup_runs": 0})
    _, seq_lengths = read_model_flags(args)
  except ValueError as e:
    parser.error(str(e))
  if args.measure_model:
    bench_util.write_child_result(args.result_file,
                                  time_model(args.measure_model, args))
    return
  if report_if_litert_missing("bench_litert", args.output_file):
    return
  # Python 3.8+ only: imported here so the TF 1.15 venv's tests (Python
  # 3.7) can import this module.
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  models = find_models(args.tflite_dir, seq_lengths)
  if not models:
    parser.error(NO_MODELS_MESSAGE % (args.seq_lengths, args.tflite_dir))
  result = {"status": "ok",
            "versions": {"ai-edge-litert":
                         metadata.version("ai-edge-litert"),
                         "python": sys.version.split()[0]},
            "num_threads": args.num_threads, "runs": args.runs,
            "warmup_runs": args.warmup_runs, "models": {}}
  result_file = args.output_file + ".child.json"
  for kind, by_seq in sorted(models.items()):
    for seq_length, path in sorted(by_seq.items()):
      command = bench_util.child_command(
          __file__, args, ("bert_config_file", "seq_lengths", "runs",
                           "warmup_runs", "num_threads"),
          ["--measure_model", path, "--result_file", result_file])
      measurement = bench_util.run_child(command, result_file, args.timeout)
      result["models"].setdefault(kind, {})[str(seq_length)] = measurement
      if measurement["status"] == "ok":
        share = measurement["delegation"]
        print("bench_litert: %s seq %d: %.1f ms median, peak RSS %.0f MB, "
              "XNNPACK runs %d of %d nodes in %d partitions" %
              (kind, seq_length, measurement["latency_ms"]["median"],
               measurement["peak_rss_mb"], share["delegated_nodes"],
               share["total_nodes"], share["partitions"]), file=sys.stderr)
      else:
        print("bench_litert: %s seq %d FAILED: %s" %
              (kind, seq_length, measurement["error"]), file=sys.stderr)
  bench_util.write_json(args.output_file, result)


if __name__ == "__main__":
  main()
