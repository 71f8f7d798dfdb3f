"""Single-example latency and file size of our TF-Lite SQuAD models.

For the published OPT config with random weights (a temporary checkpoint),
at each --seq_lengths value, export_tflite.export writes the float,
dynamic-range and calibrated int8 models and the int8 one with float
attention softmaxes (batch 1, inputs int32 [1, seq]);
each model is then timed in a fresh subprocess through tflite_runner.LiteModel
on --num_threads threads: the median of --runs calls after --warmup_runs
untimed ones, with bench_util.make_inputs (no padding).  The int8 model is
calibrated on --calibration_features random features.  The weights are
random with trained-like activation scales (bench_tf_util), which is what
decides the int8 model's quantization and so which of its ops XNNPACK takes.

Prints a table and writes JSON to --output_file
(bench/results/bench_tflite.json):
  {"tensorflow_version": ..., "models": {"float": {"size_bytes": ...,
   "128": {"status": "ok", "latency_ms": {"median": ..., ...},
           "peak_rss_mb": ...}, "384": {...}}, "dynamic_range": {...},
   "int8": {...}, "int8_float_softmax": {...}}}

Integer export needs TF 2.15; on TF 1.15 only float and dynamic-range are
measured.  BENCH_QUICK=1 (run_all.py --quick) uses the tiny config at seq 32.
"""

import argparse
import os
import sys

import numpy as np
import tensorflow.compat.v1 as tf

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, REPO_ROOT)
import bench_tf_util  # pylint: disable=g-import-not-at-top,g-bad-import-order
import bench_util  # pylint: disable=g-import-not-at-top,g-bad-import-order
import export_tflite  # pylint: disable=g-import-not-at-top
import tf_compat  # pylint: disable=g-import-not-at-top
import tflite_runner  # pylint: disable=g-import-not-at-top

QUICK = os.environ.get("BENCH_QUICK") == "1"

parser = bench_util.argument_parser(__doc__)
bench_util.add_config_argument(
    parser, os.path.join(REPO_ROOT, "config", "tiny_mobilebert.json")
    if QUICK else bench_util.PUBLISHED_CONFIG)
bench_util.add_seq_lengths_argument(parser, "32" if QUICK else "128,384")
bench_util.add_timing_arguments(parser, runs=3 if QUICK else 20,
                                warmup_runs=1 if QUICK else 5)
bench_util.add_output_arguments(parser, "bench_tflite", "tflite_work")
bench_util.add_result_file_argument(parser)
parser.add_argument("--calibration_features", type=int,
                    default=2 if QUICK else 8,
                    help="Random features calibrating the int8 model.")
# Child mode: time one TF-Lite model in this process.
parser.add_argument("--measure_model", default=None, help=argparse.SUPPRESS)


def calibration_features(vocab_size, seq_length, count):
  """`count` random features in export_tflite.export's format.

  Like SQuAD windows, they hold between a third and all of the sequence,
  the rest padding, so calibration sees masked keys as well as real ones.
  """
  features = []
  for seed in range(1, count + 1):
    inputs = bench_util.make_inputs(vocab_size, 1, seq_length, np.int32,
                                    seed=seed)
    length = seq_length // 3 + (seed - 1) * (seq_length - seq_length // 3) // (
        max(count - 1, 1))
    feature = {}
    for name, value in inputs.items():
      values = value[0].tolist()
      feature[name] = values[:length] + [0] * (seq_length - length)
    features.append(feature)
  return features


def time_model(path, vocab_size, num_threads, runs, warmup_runs):
  """Times LiteModel.run on one example.

  Returns:
    dict with "latency_ms" (bench_util.latency_summary).
  """
  # TF 2.15's own interpreter; bench_litert.py times the same files on LiteRT.
  lite_model = tflite_runner.LiteModel(path, num_threads=num_threads,
                                       use_litert=False)
  inputs = bench_util.make_inputs(vocab_size, 1, lite_model.sequence_length,
                                  np.int32)
  summary = bench_util.time_calls(
      lambda: lite_model.run(inputs["input_ids"], inputs["input_mask"],
                             inputs["segment_ids"]), runs, warmup_runs)
  return {"latency_ms": summary}


def measure_in_subprocess(args, path, label):
  """Times one model in a fresh interpreter (its own peak RSS)."""
  result_file = os.path.join(args.work_dir, "latency_%s.json" % label)
  command = bench_util.child_command(
      __file__, args, ("bert_config_file", "seq_lengths", "runs",
                        "warmup_runs", "num_threads"),
      ["--measure_model", path, "--result_file", result_file])
  return bench_util.run_child(command, result_file, args.timeout)


def format_table(result, seq_lengths):
  """The result as a plain-text table (one row per model kind)."""
  header = ["model", "size MB"] + ["seq %d median ms" % s for s in seq_lengths]
  rows = [header]
  for kind, entry in result["models"].items():
    row = [kind, "%.2f" % (entry["size_bytes"] / 1e6)]
    for seq_length in seq_lengths:
      measurement = entry.get(str(seq_length), {})
      if measurement.get("status") == "ok":
        row.append("%.1f" % measurement["latency_ms"]["median"])
      else:
        row.append(measurement.get("error", "not run")[:40])
    rows.append(row)
  widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
  return "\n".join("  ".join(cell.ljust(width) for cell, width in
                             zip(row, widths)) for row in rows)


def main():
  args = parser.parse_args()
  tf.logging.set_verbosity(tf.logging.INFO)
  try:
    bert_config, seq_lengths = bench_tf_util.latency_settings(
        args, "measure_model", {"calibration_features": 1})
  except ValueError as e:
    parser.error(str(e))
  if args.measure_model:
    bench_util.write_child_result(
        args.result_file,
        time_model(args.measure_model, bert_config.vocab_size,
                   args.num_threads, args.runs, args.warmup_runs))
    return

  tf.gfile.MakeDirs(args.work_dir)
  checkpoint = bench_tf_util.write_random_checkpoint(
      bert_config, os.path.join(args.work_dir, "random", "model.ckpt"))
  result = dict(bench_tf_util.latency_result(args), models={})
  for seq_length in seq_lengths:
    export_dir = os.path.join(args.work_dir, "export_seq%d" % seq_length)
    paths = export_tflite.export(
        bert_config, checkpoint, export_dir, seq_length,
        kinds=export_tflite.file_kinds(
            use_post_quantization=True,
            activation_quantization=tf_compat.IS_TF2,
            float_softmax=tf_compat.IS_TF2),
        task="squad",
        calibration_features=calibration_features(
            bert_config.vocab_size, seq_length, args.calibration_features))
    for kind in ("float", "dynamic_range", "int8", "int8_float_softmax"):
      if kind not in paths:
        continue
      entry = result["models"].setdefault(kind, {})
      entry["size_bytes"] = os.path.getsize(paths[kind])
      measurement = measure_in_subprocess(args, paths[kind],
                                          "%s_seq%d" % (kind, seq_length))
      entry[str(seq_length)] = measurement
      if measurement["status"] == "ok":
        tf.logging.info("TF-Lite %s seq %d: %.1f ms median", kind, seq_length,
                        measurement["latency_ms"]["median"])
      else:
        tf.logging.error("TF-Lite %s seq %d failed: %s", kind, seq_length,
                         measurement["error"])
  result["load_average_at_end"] = os.getloadavg()
  bench_util.write_json(args.output_file, result)
  print(format_table(result, seq_lengths))


if __name__ == "__main__":
  main()
