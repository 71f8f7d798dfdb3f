"""TensorFlow helpers shared by our bench/ scripts (TF venvs only).

bench_util.py stays free of TensorFlow because bench/peers.py imports it in
the peer venv; what needs TensorFlow lives here.
"""

import os
import sys

import numpy as np
import tensorflow.compat.v1 as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import heads  # pylint: disable=g-import-not-at-top
import modeling  # pylint: disable=g-import-not-at-top

import bench_util  # pylint: disable=g-import-not-at-top,g-bad-import-order


def write_random_checkpoint(bert_config, path):
  """Saves random SQuAD-model weights with trained-like activations to `path`.

  Float latency does not depend on the weights' values, but an integer
  model's does: which ops XNNPACK takes depends on their quantization
  scales, and the 0.02 initializer gives attention scores of about 1e-6 that
  no trained model has (their int8 MULs then fall outside XNNPACK's scale
  limits).  So kernels get standard deviation 0.5 / sqrt(fan_in) and the
  embedding tables 0.5, which keeps activations O(1) through 24 layers; the
  norms start at gamma 1, beta 0 and biases at 0.  numpy seed 0.

  Args:
    bert_config: modeling.BertConfig.
    path: checkpoint prefix to write.

  Returns:
    The checkpoint prefix.
  """
  rng = np.random.RandomState(0)
  graph = tf.Graph()
  with graph.as_default():
    ids = tf.placeholder(tf.int32, [1, 8])
    heads.squad_logits(bert_config, False, ids, ids, ids)
    assignments = []
    for variable in tf.global_variables():
      name, shape = variable.op.name, variable.shape.as_list()
      if name.endswith("/kernel"):
        value = rng.normal(0.0, 0.5 / np.sqrt(shape[0]), size=shape)
      elif name == "cls/squad/output_weights":
        value = rng.normal(0.0, 0.5 / np.sqrt(shape[1]), size=shape)
      elif name.endswith("_embeddings"):
        value = rng.normal(0.0, 0.5, size=shape)
      else:
        continue
      assignments.append(tf.assign(variable, value.astype(np.float32)))
    with tf.Session(graph=graph) as session:
      session.run(tf.global_variables_initializer())
      session.run(assignments)
      return tf.train.Saver().save(session, path)


def latency_settings(args, child_flag, extra_minimums=None):
  """Checks a latency bench's arguments before any graph is built.

  Args:
    args: the parsed arguments (bench_util.add_timing_arguments,
      add_config_argument, add_seq_lengths_argument, add_result_file_argument).
    child_flag: the argument that puts the script in child mode; it needs
      --result_file.
    extra_minimums: {argument: smallest value} of the script's own.

  Returns:
    (bert_config, [sequence lengths]).

  Raises:
    ValueError: naming the argument.
  """
  minimums = {"runs": 1, "num_threads": 1, "timeout": 1, "warmup_runs": 0}
  minimums.update(extra_minimums or {})
  bench_util.check_minimums(args, minimums)
  if getattr(args, child_flag) and not args.result_file:
    raise ValueError("--%s needs --result_file." % child_flag)
  bert_config = modeling.BertConfig.from_json_file(args.bert_config_file)
  seq_lengths = bench_util.parse_seq_lengths(
      args.seq_lengths, bert_config.max_position_embeddings,
      args.bert_config_file)
  return bert_config, seq_lengths


def latency_result(args):
  """The settings a latency result records, with the load at its start."""
  return {"tensorflow_version": tf.__version__,
          "bert_config_file": os.path.abspath(args.bert_config_file),
          "num_threads": args.num_threads,
          "runs": args.runs,
          "warmup_runs": args.warmup_runs,
          # Other processes on the cores inflate latencies; keep the context.
          "load_average_at_start": os.getloadavg()}
