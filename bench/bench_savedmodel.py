"""Latency of our SQuAD SavedModel run as a TensorFlow graph (tf.Session).

The TF-graph row of `make bench`: the SavedModel that export_tflite.export
writes (inputs int32 [1, seq], outputs start_logits / end_logits), loaded with
the v1 loader and run with `session.run` on --num_threads intra-op threads
(inter-op 1), batch 1, random weights, at each --seq_lengths value.  Latency
is the median of --runs timed calls after --warmup_runs untimed ones.  Each
measurement runs in a fresh subprocess so its peak resident memory is its own.

Writes JSON to --output_file (bench/results/bench_savedmodel.json):
  {"tensorflow_version": ..., "seq_lengths": {"128": {"status": "ok",
   "latency_ms": {"median": ..., ...}, "peak_rss_mb": ...}, ...}}
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
import tflite_conversion  # pylint: disable=g-import-not-at-top

parser = bench_util.argument_parser(__doc__)
bench_util.add_config_argument(parser)
bench_util.add_seq_lengths_argument(parser)
bench_util.add_timing_arguments(parser)
bench_util.add_output_arguments(parser, "bench_savedmodel", "savedmodel_work")
bench_util.add_result_file_argument(parser)
# Child mode: time one SavedModel in this process.
parser.add_argument("--measure_saved_model", default=None,
                    help=argparse.SUPPRESS)


def time_saved_model(saved_model_dir, vocab_size, num_threads, runs,
                     warmup_runs):
  """Loads a SavedModel into a session and times its serving signature.

  Returns:
    dict with "latency_ms" (bench_util.latency_summary).
  """
  session_config = tf.ConfigProto(intra_op_parallelism_threads=num_threads,
                                  inter_op_parallelism_threads=1)
  graph = tf.Graph()
  with tf.Session(graph=graph, config=session_config) as session:
    meta_graph = tf.saved_model.loader.load(
        session, [tf.saved_model.tag_constants.SERVING], saved_model_dir)
    signature = meta_graph.signature_def[
        tf.saved_model.signature_constants.DEFAULT_SERVING_SIGNATURE_DEF_KEY]
    seq_length = signature.inputs["input_ids"].tensor_shape.dim[1].size
    inputs = bench_util.make_inputs(vocab_size, 1, seq_length, np.int32)
    feed = {graph.get_tensor_by_name(signature.inputs[name].name): value
            for name, value in inputs.items()}
    fetches = [graph.get_tensor_by_name(signature.outputs[name].name)
               for name in tflite_conversion.OUTPUT_NAMES["squad"]]
    summary = bench_util.time_calls(lambda: session.run(fetches, feed), runs,
                                    warmup_runs)
  return {"latency_ms": summary}


def measure_in_subprocess(args, saved_model_dir, seq_length):
  """Times one SavedModel in a fresh interpreter (own peak RSS)."""
  result_file = os.path.join(args.work_dir, "latency_seq%d.json" % seq_length)
  command = bench_util.child_command(
      __file__, args, ("bert_config_file", "runs", "warmup_runs",
                        "num_threads"),
      ["--measure_saved_model", saved_model_dir, "--result_file", result_file,
       "--seq_lengths", str(seq_length)])
  return bench_util.run_child(command, result_file, args.timeout)


def main():
  args = parser.parse_args()
  tf.logging.set_verbosity(tf.logging.INFO)
  try:
    bert_config, seq_lengths = bench_tf_util.latency_settings(
        args, "measure_saved_model")
  except ValueError as e:
    parser.error(str(e))
  if args.measure_saved_model:
    bench_util.write_child_result(
        args.result_file,
        time_saved_model(args.measure_saved_model, bert_config.vocab_size,
                         args.num_threads, args.runs, args.warmup_runs))
    return

  tf.gfile.MakeDirs(args.work_dir)
  checkpoint = bench_tf_util.write_random_checkpoint(
      bert_config, os.path.join(args.work_dir, "random", "model.ckpt"))
  result = dict(bench_tf_util.latency_result(args), seq_lengths={})
  for seq_length in seq_lengths:
    export_dir = os.path.join(args.work_dir, "export_seq%d" % seq_length)
    paths = export_tflite.export(bert_config, checkpoint, export_dir,
                                 seq_length, task="squad")
    measurement = measure_in_subprocess(args, paths["saved_model"],
                                        seq_length)
    result["seq_lengths"][str(seq_length)] = measurement
    if measurement["status"] == "ok":
      tf.logging.info("SavedModel seq %d: %.1f ms median, peak RSS %.0f MB",
                      seq_length, measurement["latency_ms"]["median"],
                      measurement["peak_rss_mb"])
    else:
      tf.logging.error("SavedModel seq %d failed: %s", seq_length,
                       measurement["error"])
  bench_util.write_json(args.output_file, result)


if __name__ == "__main__":
  main()
