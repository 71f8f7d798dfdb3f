"""Tests for modeling.py against docs/architecture.md and a numpy forward pass.

The expected variable inventories below are written out from
docs/architecture.md section 5; the forward passes are checked against
tests/numpy_mobilebert.py, a numpy implementation of docs/architecture.md written
without reading modeling.py.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(TESTS_DIR)
sys.path.insert(0, REPO_ROOT)
sys.path.insert(0, TESTS_DIR)

import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top

import checkpoints  # pylint: disable=g-import-not-at-top
import modeling  # pylint: disable=g-import-not-at-top
import numpy_mobilebert  # pylint: disable=g-import-not-at-top

CONFIG_DIR = os.path.join(REPO_ROOT, "config")

# 1e-5 between float32 TensorFlow and the float64 numpy reference.
TOLERANCE = 1e-5

# ---------------------------------------------------------------------------
# Variable inventories, written out from docs/architecture.md section 5.
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
      "variable inventory differs from docs/architecture.md 5:\nmissing: %s\n"
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


@pytest.mark.parametrize("config_name, mask_mode", [
    ("opt_like", None),
    ("opt_like", "neg6"),
    ("bottleneck_attention", "additive"),
    ("bottleneck_attention", "neg6"),
    ("teacher_like", "additive"),
    ("teacher_like", "neg6"),
    ("plain_bert", "additive"),
    ("plain_bert", "neg6"),
])
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


def test_layer_norm_epsilon_is_1e_12():
  """Embeddings with variance ~1e-8: an epsilon of 1e-6 would shrink them ~10x."""
  config = TINY_PLAIN_BERT
  inputs = _example_inputs(config["vocab_size"], config["type_vocab_size"])
  weights, _ = _run_model(config, inputs)
  for name in ("bert/embeddings/word_embeddings",
               "bert/embeddings/token_type_embeddings",
               "bert/embeddings/position_embeddings"):
    weights[name] = weights[name] * 1e-4

  _, outputs = _run_model(config, inputs, weights)

  expected = numpy_mobilebert.forward(config, weights, *inputs)
  _assert_outputs_close(outputs, expected)
  # Normalized to unit variance before gamma, so gamma's scale (0.5-1.0)
  # bounds the spread from below.
  assert np.std(outputs["embedding_output"]) > 0.3


@pytest.mark.parametrize("name", ["linear", "ReLU", "relu6", "gelu", "TANH", ""])
def test_activations_match_numpy(name):
  x = np.array([-7.0, -1.0, -0.1, 0.0, 0.5, 1.0, 3.0, 8.0], np.float32)
  function = modeling.get_activation(name)
  if function is None:
    got = x
  else:
    with tf.Graph().as_default(), tf.Session() as sess:
      got = sess.run(function(tf.constant(x)))
  want = numpy_mobilebert.activation(name)(x.astype(np.float64))
  np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
  if name == "gelu":
    # Tanh form at x = 1 (the erf form would give 0.8413447).
    assert abs(got[5] - 0.8411920) < 1e-6


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


def test_einsum_matmul_and_lookup_paths_agree():
  config = TINY_OPT_LIKE
  inputs = _example_inputs(config["vocab_size"], config["type_vocab_size"])
  weights, einsum_gather = _run_model(config, inputs, use_einsum=True,
                                      use_one_hot_embeddings=False)
  _, matmul_gather = _run_model(config, inputs, weights, use_einsum=False,
                                use_one_hot_embeddings=False)
  _, einsum_one_hot = _run_model(config, inputs, weights, use_einsum=True,
                                 use_one_hot_embeddings=True)

  _assert_outputs_close(matmul_gather, einsum_gather)
  _assert_outputs_close(einsum_one_hot, einsum_gather)


def test_accessors_are_consistent():
  config = TINY_OPT_LIKE
  inputs = _example_inputs(50, 2)
  with tf.Graph().as_default():
    model = modeling.BertModel(
        config=modeling.BertConfig.from_dict(config), is_training=True,
        input_ids=tf.constant(inputs[0]), input_mask=tf.constant(inputs[1]),
        token_type_ids=tf.constant(inputs[2]))
    assert model.get_embedding_table().op.name == (
        "bert/embeddings/word_embeddings")
    assert model.get_embedding_table().shape.as_list() == [50, 8]
    assert model.get_all_encoder_layers()[0] is model.get_embedding_output()
    assert model.get_all_encoder_layers()[-1] is model.get_sequence_output()
    assert model.get_pooled_output().shape.as_list() == [2, 16]
    assert model.get_word_embedding_output().shape.as_list() == [2, 7, 8]


# ---------------------------------------------------------------------------
# Checkpoints.
# ---------------------------------------------------------------------------

CHECKPOINT_CONFIG = dict(TINY_OPT_LIKE, num_hidden_layers=1)


def _save_random_checkpoint(config, prefix, seed=0):
  """Saves a BertModel with random weights; returns (weights, checkpoint prefix)."""
  inputs = _example_inputs(config["vocab_size"], config["type_vocab_size"])
  with tf.Graph().as_default():
    modeling.BertModel(
        config=modeling.BertConfig.from_dict(config), is_training=False,
        input_ids=tf.constant(inputs[0]), input_mask=tf.constant(inputs[1]),
        token_type_ids=tf.constant(inputs[2]))
    weights = _random_weights(tf.global_variables(), seed)
    with tf.Session() as sess:
      _load_weights(sess, weights)
      saved = tf.train.Saver().save(sess, prefix)
  return weights, saved


def _variables_after_init_from_checkpoint(config, init_checkpoint):
  """Builds BertModel, runs checkpoints.init_from_checkpoint; name -> value."""
  inputs = _example_inputs(config["vocab_size"], config["type_vocab_size"])
  with tf.Graph().as_default():
    modeling.BertModel(
        config=modeling.BertConfig.from_dict(config), is_training=False,
        input_ids=tf.constant(inputs[0]), input_mask=tf.constant(inputs[1]),
        token_type_ids=tf.constant(inputs[2]))
    assert checkpoints.init_from_checkpoint(init_checkpoint) is None
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      variables = tf.global_variables()
      values = sess.run(variables)
  return {var.op.name: value for var, value in zip(variables, values)}


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory):
  """(weights, prefix) of one random CHECKPOINT_CONFIG checkpoint per module."""
  directory = tmp_path_factory.mktemp("checkpoint")
  return _save_random_checkpoint(CHECKPOINT_CONFIG,
                                 str(directory / "model.ckpt"))


def test_init_from_checkpoint_accepts_prefix_index_data_and_directory(
    saved_checkpoint):
  weights, prefix = saved_checkpoint
  for init_checkpoint in (prefix, prefix + ".index",
                          prefix + ".data-00000-of-00001",
                          os.path.dirname(prefix)):
    loaded = _variables_after_init_from_checkpoint(CHECKPOINT_CONFIG,
                                                   init_checkpoint)
    assert sorted(loaded) == sorted(weights)
    for name, value in weights.items():
      np.testing.assert_array_equal(
          loaded[name], value, err_msg="%s via %s" % (name, init_checkpoint))


def test_init_from_checkpoint_shape_mismatch_names_variable_and_shapes(
    saved_checkpoint):
  _, prefix = saved_checkpoint
  narrower = dict(CHECKPOINT_CONFIG, intermediate_size=10)
  with pytest.raises(ValueError) as error:
    _variables_after_init_from_checkpoint(narrower, prefix)
  message = str(error.value)
  assert "bert/encoder/layer_0/" in message
  assert "intermediate/dense/" in message
  # The checkpoint's width 12 and the graph's width 10, on whichever variable
  # of the intermediate layer the check reached first.
  assert ("[8, 12]" in message and "[8, 10]" in message) or (
      "[12]" in message and "[10]" in message)


def test_init_from_checkpoint_missing_file_is_a_clear_error(tmp_path):
  missing = str(tmp_path / "no_such_model.ckpt")
  with pytest.raises(ValueError, match="no_such_model.ckpt"):
    checkpoints.resolve_checkpoint_path(missing)
  with tf.Graph().as_default():
    tf.get_variable("bert/embeddings/word_embeddings", [4, 2])
    with pytest.raises(ValueError, match="no_such_model.ckpt"):
      checkpoints.init_from_checkpoint(missing + ".index")


# A child process on the other runtime: loads this runtime's checkpoint and
# reports the outputs, then saves its own random weights and reports their
# outputs, so one subprocess covers both directions.
_PEER_SCRIPT = r"""
import json
import sys

import numpy as np
import tensorflow.compat.v1 as tf

import checkpoints
import modeling

config_path, inputs_path, load_prefix, save_prefix, result_path = sys.argv[1:]
with open(inputs_path) as f:
  inputs = json.load(f)


def build():
  model = modeling.BertModel(
      config=modeling.BertConfig.from_json_file(config_path),
      is_training=False,
      input_ids=tf.constant(inputs["input_ids"], dtype=tf.int32),
      input_mask=tf.constant(inputs["input_mask"], dtype=tf.int32),
      token_type_ids=tf.constant(inputs["token_type_ids"], dtype=tf.int32))
  return model.get_all_encoder_layers() + [model.get_pooled_output()]


result = {"tf_version": tf.__version__}
with tf.Graph().as_default():
  outputs = build()
  checkpoints.init_from_checkpoint(load_prefix)
  with tf.Session() as sess:
    sess.run(tf.global_variables_initializer())
    result["loaded_outputs"] = [o.tolist() for o in sess.run(outputs)]

with tf.Graph().as_default():
  outputs = build()
  rng = np.random.RandomState(11)
  with tf.Session() as sess:
    for var in tf.global_variables():
      shape = var.shape.as_list()
      value = rng.normal(0.0, 0.3, shape)
      if var.op.name.endswith("gamma"):
        value += 1.0
      var.load(value.astype(np.float32), sess)
    tf.train.Saver().save(sess, save_prefix)
    result["saved_outputs"] = [o.tolist() for o in sess.run(outputs)]

with open(result_path, "w") as f:
  json.dump(result, f)
"""


def _peer_python():
  peer = os.environ.get("MOBILEBERT_PEER_PYTHON", "")
  if not peer:
    if os.environ.get("CI") == "true":
      pytest.fail("CI=true but MOBILEBERT_PEER_PYTHON is empty: the "
                  "cross-runtime checkpoint test needs the other runtime.")
    pytest.skip("MOBILEBERT_PEER_PYTHON is not set (no second runtime).")
  return peer


def _local_outputs(config, inputs, init_checkpoint):
  """Sequence of all encoder layers + pooled output after loading a checkpoint."""
  with tf.Graph().as_default():
    model = modeling.BertModel(
        config=modeling.BertConfig.from_dict(config), is_training=False,
        input_ids=tf.constant(inputs[0]), input_mask=tf.constant(inputs[1]),
        token_type_ids=tf.constant(inputs[2]))
    checkpoints.init_from_checkpoint(init_checkpoint)
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      return sess.run(model.get_all_encoder_layers() +
                      [model.get_pooled_output()])


def test_checkpoint_round_trip_across_runtimes(tmp_path, saved_checkpoint):
  peer = _peer_python()
  config = CHECKPOINT_CONFIG
  inputs = _example_inputs(config["vocab_size"], config["type_vocab_size"])
  config_path = str(tmp_path / "bert_config.json")
  with open(config_path, "w") as f:
    json.dump(config, f)
  inputs_path = str(tmp_path / "inputs.json")
  with open(inputs_path, "w") as f:
    json.dump({"input_ids": inputs[0].tolist(),
               "input_mask": inputs[1].tolist(),
               "token_type_ids": inputs[2].tolist()}, f)
  weights, local_prefix = saved_checkpoint
  local_outputs = _local_outputs(config, inputs, local_prefix)
  peer_prefix = str(tmp_path / "peer" / "model.ckpt")
  result_path = str(tmp_path / "peer_result.json")

  env = dict(os.environ, PYTHONPATH=REPO_ROOT, TF_CPP_MIN_LOG_LEVEL="2")
  child = subprocess.run(
      [peer, "-c", _PEER_SCRIPT, config_path, inputs_path, local_prefix,
       peer_prefix, result_path],
      cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, universal_newlines=True, timeout=600)
  assert child.returncode == 0, child.stderr[-3000:]
  with open(result_path) as f:
    peer_result = json.load(f)

  assert peer_result["tf_version"].split(".")[0] != tf.__version__.split(".")[0]
  num_outputs = config["num_hidden_layers"] + 2
  # This runtime's checkpoint on the peer runtime.
  assert len(peer_result["loaded_outputs"]) == num_outputs
  for k, (peer_output, local_output) in enumerate(
      zip(peer_result["loaded_outputs"], local_outputs)):
    _assert_close(np.array(peer_output), local_output, "output %d" % k)
  expected = numpy_mobilebert.forward(config, weights, *inputs)
  _assert_close(np.array(peer_result["loaded_outputs"][-2]),
                expected["sequence_output"], "peer sequence output vs numpy")
  # The peer runtime's checkpoint on this runtime.
  assert len(peer_result["saved_outputs"]) == num_outputs
  for k, (peer_output, local_output) in enumerate(
      zip(peer_result["saved_outputs"],
          _local_outputs(config, inputs, peer_prefix))):
    _assert_close(local_output, np.array(peer_output), "output %d" % k)


# ---------------------------------------------------------------------------
# Bad input.
# ---------------------------------------------------------------------------


def _build_from_dict(config_dict):
  with tf.Graph().as_default():
    modeling.BertModel(
        config=modeling.BertConfig.from_dict(config_dict), is_training=False,
        input_ids=tf.constant([[1, 2, 3]]))


def test_unknown_activation_is_a_value_error_naming_it():
  with pytest.raises(ValueError, match="swishy"):
    _build_from_dict(dict(TINY_PLAIN_BERT, hidden_act="swishy"))


def test_unknown_normalization_type_is_a_value_error_naming_it():
  with pytest.raises(ValueError, match="batch_norm"):
    _build_from_dict(dict(TINY_PLAIN_BERT, normalization_type="batch_norm"))


def test_misspelled_config_key_is_reported_by_name(monkeypatch):
  warnings = []

  def record(message, *args):
    warnings.append(message % args if args else message)

  monkeypatch.setattr(tf.logging, "warning", record)
  config = dict(TINY_PLAIN_BERT)
  config["num_hiden_layers"] = config.pop("num_hidden_layers")

  modeling.BertConfig.from_dict(config)

  assert any("num_hiden_layers" in w for w in warnings), warnings
  assert not any("vocab_size" in w for w in warnings), warnings


def test_malformed_config_json_is_a_value_error_naming_the_file(tmp_path):
  path = tmp_path / "broken_config.json"
  path.write_text(u'{"vocab_size": 50, "hidden_size": 16,')
  with pytest.raises(ValueError, match="broken_config.json"):
    modeling.BertConfig.from_json_file(str(path))


def test_config_json_round_trip(tmp_path):
  path = tmp_path / "config.json"
  path.write_text(modeling.BertConfig.from_dict(TINY_OPT_LIKE).to_json_string())
  loaded = modeling.BertConfig.from_json_file(str(path)).to_dict()
  for key, value in TINY_OPT_LIKE.items():
    assert loaded[key] == value, key
  with open(str(path)) as f:
    assert json.load(f)["num_feedforward_networks"] == 4
