"""Pretraining step throughput on CPU: distillation step and student step.

Two rows, each measured in a fresh subprocess (so its peak memory is its own):

  distillation_step  pretraining_model's phase-2 model_fn with the published
                     24-layer IB-BERT teacher (frozen, forward only) and the
                     24-layer MobileBERT OPT student (forward, backward, LAMB)
  student_step       the same student trained alone (MLM + NSP, LAMB)

at batch --batch_size (8) and sequence --seq_length (128) with
--predictions_per_seq masked positions, random weights and inputs
(bench_util.make_inputs).  Reported: graph-build seconds (model_fn, optimizer
and variable initialisation), median step latency over --timed_steps after
--warmup_steps untimed steps, examples/s = batch / median step time, and the
peak resident memory.  With BENCH_QUICK=1 (bench/run_all.py --quick) the tiny
configs, batch 2 and sequence 32 are used: numbers meaningless, plumbing only.

Writes JSON to --output_file (bench/results/bench_pretraining.json):
  {"tensorflow_version": ..., "batch_size": 8, "seq_length": 128,
   "distillation_step": {"status": "ok", "examples_per_sec": ...,
                         "graph_build_seconds": ..., "latency_ms": {...},
                         "peak_rss_mb": ...},
   "student_step": {...}}
and prints a table.

  .venv/tf2/bin/python bench/bench_pretraining.py
"""

import argparse
import os
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, REPO_ROOT)
import bench_util  # pylint: disable=g-import-not-at-top,g-bad-import-order
import modeling  # pylint: disable=g-import-not-at-top
import pretraining_model  # pylint: disable=g-import-not-at-top

QUICK = os.environ.get("BENCH_QUICK") == "1"
CONFIG_DIR = os.path.join(REPO_ROOT, "config")

CASES = ("distillation_step", "student_step")

parser = bench_util.argument_parser(__doc__)
parser.add_argument(
    "--student_config_file",
    default=os.path.join(CONFIG_DIR, "tiny_mobilebert.json") if QUICK
    else bench_util.PUBLISHED_CONFIG,
    help="Student config (random weights).")
parser.add_argument(
    "--teacher_config_file",
    default=os.path.join(CONFIG_DIR, "tiny_teacher.json" if QUICK else
                         "uncased_L-24_H-1024_B-512_A-4.json"),
    help="Teacher config (random weights).")
parser.add_argument("--batch_size", type=int, default=2 if QUICK else 8,
                    help="Examples per step.")
parser.add_argument("--seq_length", type=int, default=32 if QUICK else 128,
                    help="Sequence length.")
parser.add_argument("--predictions_per_seq", type=int, default=20,
                    help="Masked-LM predictions per sequence.")
parser.add_argument("--timed_steps", type=int, default=2 if QUICK else 3,
                    help="Timed train steps.")
parser.add_argument("--warmup_steps", type=int, default=1,
                    help="Untimed train steps before timing.")
bench_util.add_threads_argument(parser)
bench_util.add_timeout_argument(parser, 3600)
bench_util.add_output_arguments(parser, "bench_pretraining")
bench_util.add_result_file_argument(parser)
# Child mode: measure one case in this process.
parser.add_argument("--measure_case", default=None, choices=CASES,
                    help=argparse.SUPPRESS)



def make_features(vocab_size, batch_size, seq_length, predictions_per_seq):
  """Constant pretraining features: int32 [B, S] inputs, [B, P] MLM slots."""
  inputs = bench_util.make_inputs(vocab_size, batch_size, seq_length,
                                  np.int32)
  rng = np.random.RandomState(1)
  positions = np.sort(np.stack([
      rng.choice(np.arange(1, seq_length), predictions_per_seq, replace=False)
      for _ in range(batch_size)]), axis=1).astype(np.int32)
  features = {name: tf.constant(value) for name, value in inputs.items()}
  features["masked_lm_positions"] = tf.constant(positions)
  features["masked_lm_ids"] = tf.constant(
      rng.randint(1000 % vocab_size, vocab_size,
                  size=(batch_size, predictions_per_seq)).astype(np.int32))
  features["masked_lm_weights"] = tf.ones(
      [batch_size, predictions_per_seq], tf.float32)
  features["next_sentence_labels"] = tf.constant(
      rng.randint(0, 2, size=(batch_size, 1)).astype(np.int32))
  return features


def measure(args, case):
  """Builds the train op of `case` and times it; returns the result dict."""
  student_config = modeling.BertConfig.from_json_file(
      args.student_config_file)
  teacher_config = None
  if case == "distillation_step":
    teacher_config = modeling.BertConfig.from_json_file(
        args.teacher_config_file)
  started = time.time()
  graph = tf.Graph()
  with graph.as_default():
    tf.set_random_seed(0)
    features = make_features(student_config.vocab_size, args.batch_size,
                             args.seq_length, args.predictions_per_seq)
    model_fn = pretraining_model.model_fn_builder(
        pretraining_model.PretrainingConfig(
            bert_config=student_config, teacher_config=teacher_config,
            init_checkpoint=None, learning_rate=1.5e-3,
            num_train_steps=500000, num_warmup_steps=10000,
            optimizer="lamb", weight_decay_rate=0.01, use_tpu=False,
            use_einsum=True,
            distill_ground_truth_ratio=0.5 if teacher_config else 1.0))
    spec = model_fn(features, None, tf.estimator.ModeKeys.TRAIN, {})
    session_config = tf.ConfigProto(
        intra_op_parallelism_threads=args.num_threads,
        inter_op_parallelism_threads=1)
    with tf.Session(graph=graph, config=session_config) as session:
      session.run(tf.global_variables_initializer())
      graph_build_seconds = time.time() - started
      losses = []

      def step():
        losses.append(session.run([spec.train_op, spec.loss])[1])

      latency = bench_util.time_calls(step, args.timed_steps,
                                      args.warmup_steps)
  if not all(np.isfinite(losses)):
    raise ValueError("non-finite loss %s" % losses)
  return {
      "examples_per_sec": args.batch_size / (latency["median"] / 1e3),
      "graph_build_seconds": graph_build_seconds,
      "latency_ms": latency,
  }


def print_table(result, num_threads):
  print("\npretraining step, batch %d, sequence %d, %d threads (%s)" % (
      result["batch_size"], result["seq_length"], num_threads,
      result["tensorflow_version"]))
  header = "%-20s %14s %16s %16s %12s" % ("case", "examples/s",
                                          "step ms (median)",
                                          "graph build s", "peak MB")
  print(header)
  print("-" * len(header))
  for case in CASES:
    row = result[case]
    if row.get("status") != "ok":
      print("%-20s %s" % (case, row.get("error", row.get("status"))))
      continue
    print("%-20s %14.2f %16.1f %16.1f %12.0f" % (
        case, row["examples_per_sec"], row["latency_ms"]["median"],
        row["graph_build_seconds"], row["peak_rss_mb"]))


def main():
  args = parser.parse_args()
  tf.logging.set_verbosity(tf.logging.WARN)
  if args.measure_case:
    bench_util.write_child_result(args.result_file,
                                  measure(args, args.measure_case))
    return
  result = {"tensorflow_version": tf.__version__,
            "batch_size": args.batch_size, "seq_length": args.seq_length,
            "predictions_per_seq": args.predictions_per_seq,
            "student_config_file": args.student_config_file,
            "teacher_config_file": args.teacher_config_file}
  result_file = args.output_file + ".child.json"
  for case in CASES:
    command = bench_util.child_command(
        __file__, args, ("student_config_file", "teacher_config_file",
                          "batch_size", "seq_length", "predictions_per_seq",
                          "timed_steps", "warmup_steps", "num_threads"),
        ["--measure_case=" + case, "--result_file=" + result_file])
    result[case] = bench_util.run_child(command, result_file, args.timeout)
  bench_util.write_json(args.output_file, result)
  print_table(result, args.num_threads)


if __name__ == "__main__":
  main()
