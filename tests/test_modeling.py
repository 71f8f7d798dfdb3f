"""Tests for modeling.py against the reference spec and a numpy forward pass.

The expected variable inventories below are written out from
reference_spec.md 2.8; the forward passes are checked against
tests/numpy_mobilebert.py, a numpy implementation of reference_spec 2 written
without reading modeling.py.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top

import modeling  # pylint: disable=g-import-not-at-top
from tests import numpy_mobilebert  # pylint: disable=g-import-not-at-top

CONFIG_DIR = os.path.join(REPO_ROOT, "config")

# 1e-5 between float32 TensorFlow and the float64 numpy reference.
TOLERANCE = 1e-5

# ---------------------------------------------------------------------------
# Variable inventories, written out from reference_spec 2.8.
# ---------------------------------------------------------------------------

OPT_EMBEDDINGS = [
    ("bert/embeddings/word_embeddings", [30522, 128]),
    ("bert/embeddings/embedding_transformation/kernel", [384, 512]),
    ("bert/embeddings/embedding_transformation/bias", [512]),
    ("bert/embeddings/token_type_embeddings", [2, 512]),
    ("bert/embeddings/position_embeddings", [512, 512]),
    ("bert/embeddings/FakeLayerNorm/beta", [512]),
    ("bert/embeddings/FakeLayerNorm/gamma", [512]),
]

OPT_LAYER = [
    ("bottleneck/input/dense/kernel", [512, 128]),
    ("bottleneck/input/dense/bias", [128]),
    ("bottleneck/input/FakeLayerNorm/beta", [128]),
    ("bottleneck/input/FakeLayerNorm/gamma", [128]),
    ("bottleneck/attention/dense/kernel", [512, 128]),
    ("bottleneck/attention/dense/bias", [128]),
    ("bottleneck/attention/FakeLayerNorm/beta", [128]),
    ("bottleneck/attention/FakeLayerNorm/gamma", [128]),
    ("attention/self/query/kernel", [128, 128]),
    ("attention/self/query/bias", [128]),
    ("attention/self/key/kernel", [128, 128]),
    ("attention/self/key/bias", [128]),
    ("attention/self/value/kernel", [512, 128]),
    ("attention/self/value/bias", [128]),
    ("attention/output/dense/kernel", [128, 128]),
    ("attention/output/dense/bias", [128]),
    ("attention/output/FakeLayerNorm/beta", [128]),
    ("attention/output/FakeLayerNorm/gamma", [128]),
    ("intermediate/dense/kernel", [128, 512]),
    ("intermediate/dense/bias", [512]),
    ("output/dense/kernel", [512, 128]),
    ("output/dense/bias", [128]),
    ("output/FakeLayerNorm/beta", [128]),
    ("output/FakeLayerNorm/gamma", [128]),
    ("output/bottleneck/dense/kernel", [128, 512]),
    ("output/bottleneck/dense/bias", [512]),
    ("output/bottleneck/FakeLayerNorm/beta", [512]),
    ("output/bottleneck/FakeLayerNorm/gamma", [512]),
]

# Per stacked FFN j, prefix "ffn_layer_{j}/" (OPT: j = 0, 1, 2; tiny: j = 0).
STUDENT_STACKED_FFN = [
    ("intermediate/dense/kernel", [128, 512]),
    ("intermediate/dense/bias", [512]),
    ("output/dense/kernel", [512, 128]),
    ("output/dense/bias", [128]),
    ("output/FakeLayerNorm/beta", [128]),
    ("output/FakeLayerNorm/gamma", [128]),
]

TINY_LAYER = [
    ("bottleneck/input/dense/kernel", [512, 128]),
    ("bottleneck/input/dense/bias", [128]),
    ("bottleneck/input/FakeLayerNorm/beta", [128]),
    ("bottleneck/input/FakeLayerNorm/gamma", [128]),
    ("attention/self/query/kernel", [128, 128]),
    ("attention/self/query/bias", [128]),
    ("attention/self/key/kernel", [128, 128]),
    ("attention/self/key/bias", [128]),
    ("attention/self/value/kernel", [128, 128]),
    ("attention/self/value/bias", [128]),
    ("attention/output/dense/kernel", [128, 128]),
    ("attention/output/dense/bias", [128]),
    ("attention/output/FakeLayerNorm/beta", [128]),
    ("attention/output/FakeLayerNorm/gamma", [128]),
    ("intermediate/dense/kernel", [128, 512]),
    ("intermediate/dense/bias", [512]),
    ("output/dense/kernel", [512, 128]),
    ("output/dense/bias", [128]),
    ("output/FakeLayerNorm/beta", [128]),
    ("output/FakeLayerNorm/gamma", [128]),
    ("output/bottleneck/dense/kernel", [128, 512]),
    ("output/bottleneck/dense/bias", [512]),
    ("output/bottleneck/FakeLayerNorm/beta", [512]),
    ("output/bottleneck/FakeLayerNorm/gamma", [512]),
]

TEACHER_EMBEDDINGS_AND_POOLER = [
    ("bert/embeddings/word_embeddings", [30522, 128]),
    ("bert/embeddings/embedding_transformation/kernel", [384, 512]),
    ("bert/embeddings/embedding_transformation/bias", [512]),
    ("bert/embeddings/token_type_embeddings", [2, 512]),
    ("bert/embeddings/position_embeddings", [512, 512]),
    ("bert/embeddings/LayerNorm/beta", [512]),
    ("bert/embeddings/LayerNorm/gamma", [512]),
    ("bert/pooler/dense/kernel", [512, 512]),
    ("bert/pooler/dense/bias", [512]),
]

TEACHER_LAYER = [
    ("bottleneck/input/dense/kernel", [512, 1024]),
    ("bottleneck/input/dense/bias", [1024]),
    ("bottleneck/input/LayerNorm/beta", [1024]),
    ("bottleneck/input/LayerNorm/gamma", [1024]),
    ("attention/self/query/kernel", [512, 1024]),
    ("attention/self/query/bias", [1024]),
    ("attention/self/key/kernel", [512, 1024]),
    ("attention/self/key/bias", [1024]),
    ("attention/self/value/kernel", [512, 1024]),
    ("attention/self/value/bias", [1024]),
    ("attention/output/dense/kernel", [1024, 1024]),
    ("attention/output/dense/bias", [1024]),
    ("attention/output/LayerNorm/beta", [1024]),
    ("attention/output/LayerNorm/gamma", [1024]),
    ("intermediate/dense/kernel", [1024, 4096]),
    ("intermediate/dense/bias", [4096]),
    ("output/dense/kernel", [4096, 1024]),
    ("output/dense/bias", [1024]),
    ("output/LayerNorm/beta", [1024]),
    ("output/LayerNorm/gamma", [1024]),
    ("output/bottleneck/dense/kernel", [1024, 512]),
    ("output/bottleneck/dense/bias", [512]),
    ("output/bottleneck/LayerNorm/beta", [512]),
    ("output/bottleneck/LayerNorm/gamma", [512]),
]


def _expected_inventory(embeddings, layer, num_stacked_ffns, num_layers=24):
  """The spec's tables expanded over layers (and stacked FFNs) as a sorted list."""
  inventory = list(embeddings)
  for i in range(num_layers):
    prefix = "bert/encoder/layer_%d/" % i
    inventory.extend((prefix + suffix, shape) for suffix, shape in layer)
    for j in range(num_stacked_ffns):
      ffn_prefix = prefix + "ffn_layer_%d/" % j
      inventory.extend(
          (ffn_prefix + suffix, shape) for suffix, shape in STUDENT_STACKED_FFN)
  return sorted(inventory)


def _built_inventory(config_file):
  """(name, shape) of every global variable of BertModel for a config file.

  Builds the graph only (batch 1, seq 4); no session, so the 24-layer models
  cost graph construction time but no memory for their weights.
  """
  with tf.Graph().as_default():
    config = modeling.BertConfig.from_json_file(
        os.path.join(CONFIG_DIR, config_file))
    modeling.BertModel(
        config=config,
        is_training=False,
        input_ids=tf.constant([[101, 7592, 2088, 102]], dtype=tf.int32),
        input_mask=tf.constant([[1, 1, 1, 1]], dtype=tf.int32),
        token_type_ids=tf.constant([[0, 0, 1, 1]], dtype=tf.int32))
    return sorted((v.op.name, v.shape.as_list()) for v in tf.global_variables())


def _assert_same_inventory(expected, actual):
  missing = sorted(set(map(str, expected)) - set(map(str, actual)))
  unexpected = sorted(set(map(str, actual)) - set(map(str, expected)))
  assert not missing and not unexpected, (
      "variable inventory differs from reference_spec 2.8:\nmissing: %s\n"
      "unexpected: %s" % (missing[:20], unexpected[:20]))
  assert expected == actual


def _parameter_count(inventory):
  return sum(int(np.prod(shape)) for _, shape in inventory)


@pytest.mark.parametrize(
    "config_file, embeddings, layer, num_stacked_ffns, expected_parameters", [
        ("uncased_L-24_H-128_B-512_A-4_F-4_OPT.json", OPT_EMBEDDINGS,
         OPT_LAYER, 3, 24581888),
        ("uncased_L-24_H-128_B-512_A-4_F-2_tiny_OPT.json", OPT_EMBEDDINGS,
         TINY_LAYER, 1, 15485696),
        ("uncased_L-24_H-1024_B-512_A-4.json", TEACHER_EMBEDDINGS_AND_POOLER,
         TEACHER_LAYER, 0, 294467840),
    ],
    ids=["opt", "tiny_opt", "teacher"])
def test_published_config_variable_inventory(config_file, embeddings, layer,
                                             num_stacked_ffns,
                                             expected_parameters):
  expected = _expected_inventory(embeddings, layer, num_stacked_ffns)
  # The written-out tables themselves must add up to the spec's counts.
  assert _parameter_count(expected) == expected_parameters
  actual = _built_inventory(config_file)
  _assert_same_inventory(expected, actual)
  assert _parameter_count(actual) == expected_parameters


# ---------------------------------------------------------------------------
# Forward pass against numpy.
# ---------------------------------------------------------------------------

TINY_OPT_LIKE = {
    "vocab_size": 50,
    "hidden_size": 16,
    "embedding_size": 8,
    "intra_bottleneck_size": 8,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "intermediate_size": 12,
    "num_feedforward_networks": 4,
    "use_bottleneck": True,
    "key_query_shared_bottleneck": True,
    "normalization_type": "no_norm",
    "hidden_act": "relu",
    "trigram_input": True,
    "classifier_activation": False,
    "max_position_embeddings": 16,
    "type_vocab_size": 2,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.1,
    "initializer_range": 0.02,
}

TINY_BOTTLENECK_ATTENTION = dict(
    TINY_OPT_LIKE, key_query_shared_bottleneck=False,
    use_bottleneck_attention=True, num_feedforward_networks=2)

# IB-BERT teacher shape: bottleneck wider than the residual stream, real
# LayerNorm, gelu, pooler; query/key/value all read the raw block input.
TINY_TEACHER_LIKE = {
    "vocab_size": 50,
    "hidden_size": 16,
    "embedding_size": 8,
    "intra_bottleneck_size": 24,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "intermediate_size": 20,
    "use_bottleneck": True,
    "hidden_act": "gelu",
    "trigram_input": True,
    "max_position_embeddings": 16,
    "type_vocab_size": 2,
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
}

TINY_PLAIN_BERT = {
    "vocab_size": 50,
    "hidden_size": 16,
    "embedding_size": 16,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "intermediate_size": 20,
    "hidden_act": "gelu",
    "max_position_embeddings": 16,
    "type_vocab_size": 3,
}

FORWARD_CONFIGS = {
    "opt_like": TINY_OPT_LIKE,
    "bottleneck_attention": TINY_BOTTLENECK_ATTENTION,
    "teacher_like": TINY_TEACHER_LIKE,
    "plain_bert": TINY_PLAIN_BERT,
}


def _example_inputs(vocab_size, type_vocab_size, seed=0):
  """Random ids/types for batch 2, seq 7; the second row has 3 padded slots.

  Returns:
    (input_ids, input_mask, token_type_ids), each int32 [2, 7].
  """
  rng = np.random.RandomState(seed)
  input_ids = rng.randint(1, vocab_size, size=(2, 7)).astype(np.int32)
  input_mask = np.ones((2, 7), dtype=np.int32)
  input_mask[1, 4:] = 0
  input_ids[1, 4:] = 0
  token_type_ids = rng.randint(0, type_vocab_size, size=(2, 7)).astype(np.int32)
  return input_ids, input_mask, token_type_ids


def _random_weights(variables, seed):
  """Random, non-degenerate values for every variable, keyed by name.

  Norm scales are drawn away from 1 and every bias/beta is non-zero, so a
  missing or misplaced bias, norm or residual changes the outputs.
  """
  rng = np.random.RandomState(seed)
  weights = {}
  for var in variables:
    name = var.op.name
    shape = var.shape.as_list()
    if name.endswith("gamma"):
      value = rng.uniform(0.5, 1.0, shape)
    elif name.endswith("beta") or name.endswith("bias"):
      value = rng.normal(0.0, 0.2, shape)
    elif name.endswith("kernel"):
      value = rng.normal(0.0, 1.0 / np.sqrt(shape[0]), shape)
    else:
      value = rng.normal(0.0, 0.5, shape)
    weights[name] = value.astype(np.float32)
  return weights


def _load_weights(sess, weights):
  """Assigns `weights` (name -> array) to exactly the graph's global variables."""
  variables = tf.global_variables()
  assert sorted(v.op.name for v in variables) == sorted(weights)
  feed = {}
  assigns = []
  for var in variables:
    value = tf.placeholder(var.dtype.base_dtype, var.shape)
    assigns.append(tf.assign(var, value))
    feed[value] = weights[var.op.name]
  sess.run(assigns, feed_dict=feed)


def _model_fetches(model):
  return {
      "word_embedding_output": model.get_word_embedding_output(),
      "embedding_output": model.get_embedding_output(),
      "all_encoder_layers": model.get_all_encoder_layers(),
      "attention_maps": model.get_all_attention_maps(),
      "sequence_output": model.get_sequence_output(),
      "pooled_output": model.get_pooled_output(),
  }


def _run_model(config_dict, inputs, weights=None, seed=0, **model_kwargs):
  """Builds BertModel (is_training=False) in a fresh graph and runs it.

  Args:
    config_dict: BertConfig keys.
    inputs: (input_ids, input_mask, token_type_ids), each int32 [batch, seq].
    weights: name -> array for every variable; random (from `seed`) if None.
    seed: seed for the random weights.
    **model_kwargs: extra BertModel arguments (use_einsum, ...).

  Returns:
    (weights, outputs) where outputs holds numpy values of `_model_fetches`.
  """
  input_ids, input_mask, token_type_ids = inputs
  with tf.Graph().as_default():
    model = modeling.BertModel(
        config=modeling.BertConfig.from_dict(config_dict),
        is_training=False,
        input_ids=tf.constant(input_ids),
        input_mask=tf.constant(input_mask),
        token_type_ids=tf.constant(token_type_ids),
        **model_kwargs)
    if weights is None:
      weights = _random_weights(tf.global_variables(), seed)
    with tf.Session() as sess:
      _load_weights(sess, weights)
      outputs = sess.run(_model_fetches(model))
  return weights, outputs


def _assert_close(actual, expected, what):
  np.testing.assert_allclose(
      actual, expected, rtol=TOLERANCE, atol=TOLERANCE, err_msg=what)


def _assert_outputs_close(actual, expected):
  for key in ("word_embedding_output", "embedding_output", "sequence_output",
              "pooled_output"):
    _assert_close(actual[key], expected[key], key)
  assert len(actual["all_encoder_layers"]) == len(expected["all_encoder_layers"])
  for k, (got, want) in enumerate(
      zip(actual["all_encoder_layers"], expected["all_encoder_layers"])):
    _assert_close(got, want, "all_encoder_layers[%d]" % k)
  assert len(actual["attention_maps"]) == len(expected["attention_maps"])
  for k, (got, want) in enumerate(
      zip(actual["attention_maps"], expected["attention_maps"])):
    _assert_close(got, want, "attention_maps[%d]" % k)


@pytest.mark.parametrize("mask_mode", [None, "additive", "neg6"])
@pytest.mark.parametrize("config_name", sorted(FORWARD_CONFIGS))
def test_forward_matches_numpy_reference(config_name, mask_mode):
  config = dict(FORWARD_CONFIGS[config_name])
  if mask_mode is not None:
    config["mask_mode"] = mask_mode
  full_config = numpy_mobilebert.complete_config(config)
  inputs = _example_inputs(full_config["vocab_size"],
                           full_config["type_vocab_size"])
  weights, outputs = _run_model(config, inputs)

  expected = numpy_mobilebert.forward(config, weights, *inputs)

  _assert_outputs_close(outputs, expected)
  num_layers = full_config["num_hidden_layers"]
  assert len(outputs["all_encoder_layers"]) == num_layers + 1
  assert outputs["attention_maps"][0].shape == (
      2, full_config["num_attention_heads"], 7, 7)
  masked_scores = outputs["attention_maps"][0][1, :, :, 4:]
  if full_config["mask_mode"] == "neg6":
    np.testing.assert_array_equal(masked_scores, -6.0)
  else:
    assert np.all(masked_scores < -9000.0)


def test_mask_modes_differ_only_with_padding():
  config = dict(TINY_OPT_LIKE, mask_mode="neg6")
  inputs = _example_inputs(50, 2)
  weights, neg6 = _run_model(config, inputs)
  _, additive = _run_model(dict(config, mask_mode="additive"), inputs, weights)
  # Row 0 has no padding: identical; row 1 sees e^-6 weight on padded keys.
  _assert_close(neg6["sequence_output"][0], additive["sequence_output"][0],
                "unpadded row")
  assert np.max(np.abs(neg6["sequence_output"][1] -
                       additive["sequence_output"][1])) > 1e-3


def test_trigram_order_and_sequence_end_padding():
  """Embedding output = [e_next ; e_cur ; e_prev], zeros only at true ends."""
  config = {
      "vocab_size": 5,
      "hidden_size": 6,
      "embedding_size": 2,
      "num_attention_heads": 1,
      "num_hidden_layers": 1,
      "intermediate_size": 4,
      "trigram_input": True,
      "normalization_type": "no_norm",
      "hidden_act": "relu",
      "max_position_embeddings": 8,
      "type_vocab_size": 2,
  }
  inputs = (np.array([[3, 1, 4, 0]], np.int32),
            np.array([[1, 1, 1, 0]], np.int32),
            np.array([[0, 0, 1, 1]], np.int32))
  weights, _ = _run_model(config, inputs, seed=3)
  # Make the projection the identity and every additive term zero, so the
  # embedding output shows the concatenated trigram features directly.
  weights["bert/embeddings/word_embeddings"] = np.array(
      [[1, 2], [11, 12], [21, 22], [31, 32], [41, 42]], np.float32)
  weights["bert/embeddings/embedding_transformation/kernel"] = np.eye(
      6, dtype=np.float32)
  for name in ("bert/embeddings/embedding_transformation/bias",
               "bert/embeddings/token_type_embeddings",
               "bert/embeddings/position_embeddings",
               "bert/embeddings/FakeLayerNorm/beta"):
    weights[name] = np.zeros_like(weights[name])
  weights["bert/embeddings/FakeLayerNorm/gamma"] = np.ones(6, np.float32)

  _, outputs = _run_model(config, inputs, weights=weights)

  np.testing.assert_array_equal(outputs["word_embedding_output"],
                                [[[31, 32], [11, 12], [41, 42], [1, 2]]])
  # Next token first, then current, then previous; the [PAD] at position 3
  # still feeds position 2's "next" block (padding is not a sequence end).
  np.testing.assert_array_equal(outputs["embedding_output"], [[
      [11, 12, 31, 32, 0, 0],
      [41, 42, 11, 12, 31, 32],
      [1, 2, 41, 42, 11, 12],
      [0, 0, 1, 2, 41, 42],
  ]])
