"""A physical lower bound on MobileBERT's CPU inference latency.

The bound is the model's multiply-add count (2 FLOPs each) divided by the
machine's peak float32 matrix-multiply rate: the faster of a large square
TensorFlow MatMul on `num_threads` intra-op threads and the same product in
numpy's BLAS (whose thread count is fixed when numpy loads, by
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS; bench/run_all.py sets both to the
benchmark's thread count).  No implementation that does all of
the model's multiply-adds in float32 can beat it, so "latency / bound" says how
much of the machine a runtime leaves unused.

The count follows the architecture of docs/architecture.md, sections 2-3:
embedding projection, per-layer bottlenecks, query/key/value, attention scores
and context, attention output, the stacked FFNs, the output bottleneck and the
SQuAD head.  Element-wise work (norms, activations, softmax) is not counted; it
is small next to the matmuls and is bound by memory, not by multiply-adds.

Writes JSON to --output_file (bench/results/physical_bound.json by default).
"""

import collections
import os
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import bench_util  # pylint: disable=g-import-not-at-top,g-bad-import-order
import modeling  # pylint: disable=g-import-not-at-top

parser = bench_util.argument_parser(__doc__)
bench_util.add_config_argument(parser)
bench_util.add_seq_lengths_argument(parser)
bench_util.add_threads_argument(parser)
parser.add_argument("--matmul_size", type=int, default=2048,
                    help="Side of the square float32 matrices multiplied to "
                    "measure the peak rate.")
parser.add_argument("--runs", type=int, default=10,
                    help="Timed matmuls; the fastest one counts.")
bench_util.add_output_arguments(parser, "physical_bound")


def multiply_adds(bert_config, seq_length, include_squad_head=True):
  """Multiply-adds of one forward pass at batch 1, split by component.

  Args:
    bert_config: modeling.BertConfig.
    seq_length: tokens in the sequence.
    include_squad_head: add the [hidden, 2] span-logit projection.

  Returns:
    OrderedDict component name -> multiply-adds for the whole model, with
    "total" last.
  """
  if seq_length < 1:
    raise ValueError("seq_length must be positive, got %d" % seq_length)
  s = seq_length
  hidden = bert_config.hidden_size
  inner = bert_config.true_hidden_size
  ffn_width = bert_config.intermediate_size
  layers = bert_config.num_hidden_layers
  counts = collections.OrderedDict()

  embedding_in = bert_config.embedding_size * (
      3 if bert_config.trigram_input else 1)
  if bert_config.trigram_input or bert_config.embedding_size != hidden:
    counts["embedding_projection"] = s * embedding_in * hidden
  else:
    counts["embedding_projection"] = 0

  if bert_config.use_bottleneck:
    counts["bottleneck_input"] = layers * s * hidden * inner
    if bert_config.use_bottleneck_attention:
      qk_in, value_in = inner, inner
      counts["bottleneck_attention"] = 0
    elif bert_config.key_query_shared_bottleneck:
      qk_in, value_in = inner, hidden
      counts["bottleneck_attention"] = layers * s * hidden * inner
    else:
      qk_in, value_in = hidden, hidden
      counts["bottleneck_attention"] = 0
  else:
    counts["bottleneck_input"] = 0
    counts["bottleneck_attention"] = 0
    qk_in, value_in = hidden, hidden

  counts["query_key"] = layers * 2 * s * qk_in * inner
  counts["value"] = layers * s * value_in * inner
  # Scores and context are each [S, S] dot products of width head_size per
  # head, i.e. S * S * inner over all heads.
  counts["attention_scores"] = layers * s * s * inner
  counts["attention_context"] = layers * s * s * inner
  counts["attention_output"] = layers * s * inner * inner
  counts["feed_forward"] = (layers * bert_config.num_feedforward_networks *
                            2 * s * inner * ffn_width)
  counts["output_bottleneck"] = (
      layers * s * inner * hidden if bert_config.use_bottleneck else 0)
  counts["squad_head"] = s * hidden * 2 if include_squad_head else 0
  counts["total"] = sum(counts.values())
  return counts


def bound_ms(multiply_add_count, peak_gflops):
  """Milliseconds that `multiply_add_count` take at `peak_gflops` GFLOP/s."""
  if peak_gflops <= 0:
    raise ValueError("peak_gflops must be positive, got %r" % peak_gflops)
  return 2.0 * multiply_add_count / (peak_gflops * 1e9) * 1e3


def _random_square(matmul_size, seed):
  rng = np.random.RandomState(seed)
  return rng.uniform(-1, 1, (matmul_size, matmul_size)).astype(np.float32)


def measure_numpy_matmul_gflops(matmul_size, runs):
  """Fastest float32 [n, n] x [n, n] numpy product rate in GFLOP/s.

  Args:
    matmul_size: n.
    runs: timed runs after one warm-up run; the fastest counts.

  Returns:
    GFLOP/s of the fastest run.
  """
  left = _random_square(matmul_size, 0)
  right = _random_square(matmul_size, 1)
  product = np.empty_like(left)
  np.matmul(left, right, out=product)
  fastest = float("inf")
  for _ in range(runs):
    start = time.perf_counter()
    np.matmul(left, right, out=product)
    fastest = min(fastest, time.perf_counter() - start)
  return 2.0 * matmul_size ** 3 / fastest / 1e9


def measure_tf_matmul_gflops(matmul_size, num_threads, runs):
  """Fastest float32 [n, n] x [n, n] TensorFlow MatMul rate in GFLOP/s.

  The operands live in variables and the product is reduced to a scalar, so
  each timed run is the MatMul itself and not a copy of 2 * n * n inputs.

  Args:
    matmul_size: n.
    num_threads: intra-op threads (inter-op is 1).
    runs: timed runs after two warm-up runs; the fastest counts.

  Returns:
    GFLOP/s of the fastest run.
  """
  graph = tf.Graph()
  with graph.as_default():
    left = tf.Variable(_random_square(matmul_size, 0))
    right = tf.Variable(_random_square(matmul_size, 1))
    product_sum = tf.reduce_sum(tf.matmul(left, right))
    session_config = tf.ConfigProto(
        intra_op_parallelism_threads=num_threads,
        inter_op_parallelism_threads=1)
    with tf.Session(config=session_config) as sess:
      sess.run(tf.global_variables_initializer())
      for _ in range(2):
        sess.run(product_sum)
      fastest = float("inf")
      for _ in range(runs):
        start = time.perf_counter()
        sess.run(product_sum)
        fastest = min(fastest, time.perf_counter() - start)
  return 2.0 * matmul_size ** 3 / fastest / 1e9


def main():
  args = parser.parse_args()
  tf.logging.set_verbosity(tf.logging.INFO)
  try:
    bench_util.check_minimums(args, {"num_threads": 1, "runs": 1,
                                     "matmul_size": 64})
    bert_config = modeling.BertConfig.from_json_file(args.bert_config_file)
    seq_lengths = bench_util.parse_seq_lengths(
        args.seq_lengths, bert_config.max_position_embeddings,
        args.bert_config_file)
  except ValueError as e:
    parser.error(str(e))

  tf_gflops = measure_tf_matmul_gflops(args.matmul_size, args.num_threads,
                                       args.runs)
  numpy_gflops = measure_numpy_matmul_gflops(args.matmul_size, args.runs)
  gflops = max(tf_gflops, numpy_gflops)
  tf.logging.info("peak float32 matmul (n=%d): TensorFlow %.1f GFLOP/s on %d "
                  "threads, numpy %.1f GFLOP/s (OPENBLAS_NUM_THREADS=%s)",
                  args.matmul_size, tf_gflops, args.num_threads,
                  numpy_gflops, os.environ.get("OPENBLAS_NUM_THREADS", "unset"))
  result = {
      "bert_config_file": os.path.abspath(args.bert_config_file),
      "num_threads": args.num_threads,
      "matmul_size": args.matmul_size,
      "peak_matmul_gflops": gflops,
      "tensorflow_matmul_gflops": tf_gflops,
      "numpy_matmul_gflops": numpy_gflops,
      "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
      "tensorflow_version": tf.__version__,
      "seq_lengths": {},
  }
  for s in seq_lengths:
    counts = multiply_adds(bert_config, s)
    result["seq_lengths"][str(s)] = {
        "multiply_adds": counts["total"],
        "breakdown": counts,
        "bound_ms": bound_ms(counts["total"], gflops),
    }
    tf.logging.info("seq %d: %.3f G multiply-adds, bound %.2f ms", s,
                    counts["total"] / 1e9, bound_ms(counts["total"], gflops))
  bench_util.write_json(args.output_file, result)


if __name__ == "__main__":
  main()
