"""TensorFlow helpers shared by our bench/ scripts (TF venvs only).

bench_util.py stays free of TensorFlow because bench/peers.py imports it in
the peer venv; what needs TensorFlow lives here.
"""

import os
import sys

import tensorflow.compat.v1 as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import heads  # pylint: disable=g-import-not-at-top


def write_random_checkpoint(bert_config, path):
  """Saves freshly initialised SQuAD-model variables (graph seed 0) to `path`.

  Latency does not depend on the weights' values, so the benchmarks export
  this checkpoint instead of needing a trained one.

  Args:
    bert_config: modeling.BertConfig.
    path: checkpoint prefix to write.

  Returns:
    The checkpoint prefix.
  """
  graph = tf.Graph()
  with graph.as_default():
    tf.set_random_seed(0)
    ids = tf.placeholder(tf.int32, [1, 8])
    heads.squad_logits(bert_config, False, ids, ids, ids)
    with tf.Session(graph=graph) as session:
      session.run(tf.global_variables_initializer())
      return tf.train.Saver().save(session, path)
