"""Tests for the QAT fake-quantizers and their placement in BertModel.

Expected values come from docs/quantization_and_export.md sections 1-2: a numpy fake-quant
written here (TF's nudged-zero-point rounding), a numpy zero-debiased EMA, and
the list of quantizer scopes of one MobileBERT layer derived by hand from the
insertion points of 6.3.
"""

import json
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import modeling
import quantization

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_QAT_CONFIG = os.path.join(ROOT, "config", "tiny_mobilebert_qat.json")

ACT = "MobileBertActFakeQuantWithMinMaxVars"
WEIGHT = "MobileBertWeightFakeQuantWithMinMaxVars"
DECAY = 0.999


def numpy_fake_quant(x, range_min, range_max, narrow_range):
  """TF's fake_quant_with_min_max_vars in float32 numpy (8 bits).

  The range is nudged so that 0 is exactly representable: 256 levels
  [0, 255], or 255 levels [1, 255] with narrow_range.
  """
  x = np.asarray(x, np.float32)
  range_min = np.float32(range_min)
  range_max = np.float32(range_max)
  quant_min = np.float32(1.0 if narrow_range else 0.0)
  quant_max = np.float32(255.0)
  scale = (range_max - range_min) / (quant_max - quant_min)
  zero_point_from_min = quant_min - range_min / scale
  if zero_point_from_min < quant_min:
    nudged_zero_point = quant_min
  elif zero_point_from_min > quant_max:
    nudged_zero_point = quant_max
  else:
    nudged_zero_point = np.float32(np.round(zero_point_from_min))
  nudged_min = (quant_min - nudged_zero_point) * scale
  nudged_max = (quant_max - nudged_zero_point) * scale
  clamped = np.clip(x, nudged_min, nudged_max)
  levels = np.floor((clamped - nudged_min) / scale + np.float32(0.5))
  return levels * scale + nudged_min, scale, nudged_min


def numpy_debiased_ema(values):
  """Zero-debiased EMA (decay 0.999) after each value, docs/quantization_and_export.md 1."""
  biased = 0.0
  results = []
  for step, value in enumerate(values, start=1):
    biased -= (biased - value) * (1.0 - DECAY)
    results.append(biased / (1.0 - DECAY ** step))
  return results


def _global_values(session, suffix_filter):
  return {v.op.name: value for v, value in zip(
      tf.global_variables(), session.run(tf.global_variables()))
          if suffix_filter(v.op.name)}


def test_numpy_reference_matches_hand_computed_levels():
  # Range [-1, 2]: scale 3/255, zero point 85 exactly; 0.5 maps to level 85 +
  # round(0.5 / scale) = 85 + 43 = 128 -> (128 - 85) * 3 / 255.
  out, scale, nudged_min = numpy_fake_quant([0.5, 5.0, -3.0], -1.0, 2.0, False)
  assert scale == pytest.approx(3.0 / 255.0)
  assert nudged_min == pytest.approx(-1.0)
  np.testing.assert_allclose(out, [43 * 3.0 / 255.0, 2.0, -1.0], rtol=1e-6)


def test_activation_quantizer_first_step_ema_and_fake_quant_output():
  rng = np.random.RandomState(0)
  batches = [rng.uniform(-0.7, 2.3, size=(3, 5)).astype(np.float32),
             rng.uniform(-1.9, 0.9, size=(3, 5)).astype(np.float32),
             rng.uniform(0.2, 3.1, size=(3, 5)).astype(np.float32)]
  with tf.Graph().as_default():
    inputs = tf.placeholder(tf.float32, [3, 5])
    with tf.variable_scope("layer"):
      quantized = quantization.quantize_activation(inputs, is_training=True)
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      batch_mins = [min(b.min(), 0.0) for b in batches]
      batch_maxs = [max(b.max(), 0.0) for b in batches]
      expected_mins = numpy_debiased_ema(batch_mins)
      expected_maxs = numpy_debiased_ema(batch_maxs)
      for step, batch in enumerate(batches):
        output = session.run(quantized, {inputs: batch})
        ranges = _global_values(session, lambda n: n.endswith(("/min", "/max")))
        got_min = ranges["layer/%s/min" % ACT]
        got_max = ranges["layer/%s/max" % ACT]
        if step == 0:
          # Zero-debiasing makes the first update equal the batch value.
          # (float32 arithmetic on 0.001 * value / 0.001: relative 1e-4.)
          assert got_min == pytest.approx(batch_mins[0], rel=1e-4)
          assert got_max == pytest.approx(batch_maxs[0], rel=1e-4)
        assert got_min == pytest.approx(expected_mins[step], rel=1e-4, abs=1e-6)
        assert got_max == pytest.approx(expected_maxs[step], rel=1e-4, abs=1e-6)
        # The fake quant of this step uses the updated range.
        reference, scale, _ = numpy_fake_quant(batch, got_min, got_max, False)
        np.testing.assert_allclose(output, reference, atol=1e-5)
        assert len(np.unique(np.round((output - output.min()) / scale))) <= 256


def test_activation_quantizer_inference_uses_stored_range_and_nudged_zero():
  values = np.linspace(-8.0, 8.0, 37, dtype=np.float32) + 0.013
  with tf.Graph().as_default():
    inputs = tf.constant(values)
    quantized = quantization.quantize_activation(inputs, is_training=False)
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      output = session.run(quantized)
  # Initial range [-6, 6]: scale 12/255, zero point 127.5 nudged to 128.
  reference, scale, nudged_min = numpy_fake_quant(values, -6.0, 6.0, False)
  assert nudged_min == pytest.approx(-128 * 12.0 / 255.0)
  np.testing.assert_allclose(output, reference, atol=1e-5)
  assert output.max() == pytest.approx(127 * 12.0 / 255.0, rel=1e-5)
  assert output.min() == pytest.approx(-128 * 12.0 / 255.0, rel=1e-5)
  assert scale == pytest.approx(12.0 / 255.0)


def test_weight_quantizer_symmetric_narrow_range_last_value():
  rng = np.random.RandomState(1)
  first = rng.normal(0.0, 0.05, size=(6, 4)).astype(np.float32)
  second = (first * 3.0 - 0.02).astype(np.float32)
  with tf.Graph().as_default():
    weights = tf.placeholder(tf.float32, [6, 4])
    with tf.variable_scope("dense"):
      quantized = quantization.quantize_weight(weights, is_training=True)
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      for value in (first, second):
        output = session.run(quantized, {weights: value})
        ranges = _global_values(session, lambda n: n.endswith(("/min", "/max")))
        magnitude = max(abs(value.min()), abs(value.max()))
        # Last value, not an average: the range follows the latest weights.
        assert ranges["dense/%s/min" % WEIGHT] == pytest.approx(-magnitude)
        assert ranges["dense/%s/max" % WEIGHT] == pytest.approx(magnitude)
        reference, scale, _ = numpy_fake_quant(value, -magnitude, magnitude,
                                               True)
        np.testing.assert_allclose(output, reference, atol=1e-6)
        levels = np.round(output / scale)
        # Narrow range: 255 levels, symmetric int8 [-127, 127], exact zero.
        assert scale == pytest.approx(2 * magnitude / 254.0)
        assert levels.min() >= -127 and levels.max() <= 127
        assert np.abs(levels).max() == 127
        np.testing.assert_allclose(output, levels * scale, atol=1e-6)


def test_quantizer_variables_names_collections_and_initial_values():
  with tf.Graph().as_default():
    inputs = tf.zeros([2, 3])
    with tf.variable_scope("scope"):
      quantization.quantize_activation(inputs, is_training=False)
      quantization.quantize_activation(inputs, is_training=False)
      quantization.quantize_weight(inputs, is_training=False)
    names = sorted(v.op.name for v in tf.global_variables())
    assert names == sorted([
        "scope/%s/min" % ACT, "scope/%s/max" % ACT,
        "scope/%s_1/min" % ACT, "scope/%s_1/max" % ACT,
        "scope/%s/min" % WEIGHT, "scope/%s/max" % WEIGHT])
    assert not tf.trainable_variables()
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      values = _global_values(session, lambda n: True)
    for name, value in values.items():
      assert value == (-6.0 if name.endswith("/min") else 6.0)


def _expected_layer_quantizers(prefix, num_feedforward_networks):
  """Quantizer scopes of one kq-shared bottleneck layer, from docs/quantization_and_export.md 2.

  Every dense layer: one activation quantizer on its input and one weight
  quantizer, both inside the dense layer's scope.  Every NoNorm: one
  activation quantizer on its input in the enclosing scope, then three inside
  FakeLayerNorm (beta, gamma, x * gamma).  Attention: raw scores, masked
  scores, scores after -6, context.
  """
  dense_scopes = ["bottleneck/input/dense", "bottleneck/attention/dense",
                  "attention/self/query", "attention/self/key",
                  "attention/self/value", "attention/output/dense",
                  "intermediate/dense", "output/dense",
                  "output/bottleneck/dense"]
  norm_scopes = ["bottleneck/input", "bottleneck/attention",
                 "attention/output", "output", "output/bottleneck"]
  for j in range(num_feedforward_networks - 1):
    dense_scopes += ["ffn_layer_%d/intermediate/dense" % j,
                     "ffn_layer_%d/output/dense" % j]
    norm_scopes.append("ffn_layer_%d/output" % j)
  expected = set()
  for scope in dense_scopes:
    expected.add(("%s%s/%s" % (prefix, scope, ACT), "act"))
    expected.add(("%s%s/%s" % (prefix, scope, WEIGHT), "weight"))
  for scope in norm_scopes:
    expected.add(("%s%s/%s" % (prefix, scope, ACT), "act"))
    for suffix in ("", "_1", "_2"):
      expected.add(("%s%s/FakeLayerNorm/%s%s" % (prefix, scope, ACT, suffix),
                    "act"))
  for suffix in ("", "_1", "_2", "_3"):
    expected.add(("%sattention/self/%s%s" % (prefix, ACT, suffix), "act"))
  return expected


def _quantizer_scopes(variable_names):
  scopes = set()
  for name in variable_names:
    scope, leaf = name.rsplit("/", 1)
    base = scope.rsplit("/", 1)[-1]
    if base.startswith(WEIGHT):
      scopes.add((scope, "weight"))
    elif base.startswith(ACT):
      scopes.add((scope, "act"))
    else:
      continue
    assert leaf in ("min", "max"), name
  return scopes


def _tiny_qat_config_dict(num_hidden_layers=2, num_feedforward_networks=4):
  """tiny_mobilebert_qat.json with fewer layers (QAT graphs build slowly)."""
  with open(TINY_QAT_CONFIG) as f:
    config = json.load(f)
  config.update(num_hidden_layers=num_hidden_layers,
                num_feedforward_networks=num_feedforward_networks)
  return config


def _build_qat_model(config_dict, is_training, batch=2, seq=8):
  config = modeling.BertConfig.from_dict(config_dict)
  rng = np.random.RandomState(3)
  input_ids = tf.constant(rng.randint(0, config.vocab_size, size=(batch, seq)),
                          tf.int32)
  input_mask = tf.constant([[1] * seq, [1] * (seq - 3) + [0] * 3], tf.int32)
  model = modeling.BertModel(config, is_training=is_training,
                             input_ids=input_ids, input_mask=input_mask,
                             use_quantized_training=True)
  return config, model


def test_qat_fake_quant_nodes_are_where_the_spec_says():
  config_dict = _tiny_qat_config_dict()
  with tf.Graph().as_default():
    config, _ = _build_qat_model(config_dict, is_training=False)
    names = [v.op.name for v in tf.global_variables()]
    scopes = _quantizer_scopes(names)
    expected = set()
    for i in range(config.num_hidden_layers):
      expected |= _expected_layer_quantizers(
          "bert/encoder/layer_%d/" % i, config.num_feedforward_networks)
    assert scopes == expected
    # 15 dense layers and 8 NoNorms per layer for F=4 with the shared
    # bottleneck: 15 + 8 * 4 + 4 = 51 activation and 15 weight quantizers.
    per_layer = len(expected) // config.num_hidden_layers
    assert per_layer == 66
    # Embeddings, their projection and norm, the pooler and heads: none.
    assert not [n for n in names if ("FakeQuant" in n and
                                     not n.startswith("bert/encoder/"))]
    # Quantizer ranges are not trained by the optimizer.
    assert not [v for v in tf.trainable_variables() if "FakeQuant" in v.op.name]

    graph = tf.get_default_graph()

    def fake_quant_op(scope):
      ops = [op for op in graph.get_operations()
             if op.type == "FakeQuantWithMinMaxVars" and
             op.name.startswith(scope + "/")]
      assert len(ops) == 1, (scope, [op.name for op in ops])
      return ops[0]

    self_scope = "bert/encoder/layer_0/attention/self/" + ACT
    matmul_types = ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum",
                    "MatMul")
    raw_scores = fake_quant_op(self_scope)
    # Raw Q.K^T scores are quantized before the 1/sqrt(head_size) scaling.
    assert _producer_type(raw_scores.inputs[0]) in matmul_types
    assert not [c for c in raw_scores.outputs[0].consumers()
                if c.type == "Softmax"]
    after_neg6 = fake_quant_op(self_scope + "_2")
    clipped = _downstream_types(after_neg6.outputs[0], depth=3)
    assert "Softmax" in clipped
    assert ({"ClipByValue"} & clipped) or ({"Minimum", "Maximum"} <= clipped)
    context = fake_quant_op(self_scope + "_3")
    assert _producer_type(context.inputs[0]) in matmul_types
    # Weight quantizers act on the kernel variable's value.
    query_weight = fake_quant_op(
        "bert/encoder/layer_0/attention/self/query/" + WEIGHT)
    assert _upstream_variable(query_weight.inputs[0]) == (
        "bert/encoder/layer_0/attention/self/query/kernel")


def _downstream_types(tensor, depth):
  types = set()
  frontier = [tensor]
  for _ in range(depth):
    next_frontier = []
    for t in frontier:
      for consumer in t.consumers():
        types.add(consumer.type)
        next_frontier.extend(consumer.outputs)
    frontier = next_frontier
  return types


def _producer_type(tensor):
  """The op type behind any reshapes/transposes (TF 1.15 lowers einsum so)."""
  op = tensor.op
  while op.type in ("Reshape", "Transpose", "Identity"):
    op = op.inputs[0].op
  return op.type


def _upstream_variable(tensor):
  op = tensor.op
  for _ in range(4):
    if op.type in ("VariableV2", "VarHandleOp"):
      return op.name
    op = op.inputs[0].op
  return op.name


def test_qat_clip_keeps_attention_scores_within_minus6_60():
  config_dict = _tiny_qat_config_dict(1, 1)
  with tf.Graph().as_default():
    config, _ = _build_qat_model(config_dict, is_training=False)
    graph = tf.get_default_graph()
    softmax_inputs = [op.inputs[0] for op in graph.get_operations()
                      if op.type == "Softmax" and
                      op.name.startswith("bert/encoder/")]
    assert len(softmax_inputs) == config.num_hidden_layers
    # Push the stored score ranges far out so only the clip can bound them.
    assigns = [tf.assign(v, 1e4 if v.op.name.endswith("max") else -1e4)
               for v in tf.global_variables()
               if "/attention/self/" + ACT in v.op.name]
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      session.run(assigns)
      for value in session.run(softmax_inputs):
        assert value.min() >= -6.0 - 1e-6
        assert value.max() <= 60.0 + 1e-6


def test_qat_training_updates_ranges_from_the_first_batch():
  config_dict = _tiny_qat_config_dict(1, 1)
  with tf.Graph().as_default():
    _, model = _build_qat_model(config_dict, is_training=True)
    embedding_output = model.get_embedding_output()
    name = "bert/encoder/layer_0/bottleneck/input/dense/%s/" % ACT
    variables = {v.op.name: v for v in tf.global_variables()}
    range_min, range_max = variables[name + "min"], variables[name + "max"]
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      embedded, _ = session.run([embedding_output, model.get_sequence_output()])
      got_min, got_max = session.run([range_min, range_max])
  # The first dense layer of layer 0 sees the embedding output; one EMA step
  # from zero-debiased state equals that batch's min/max (widened to 0).
  assert got_min == pytest.approx(min(embedded.min(), 0.0), rel=1e-4)
  assert got_max == pytest.approx(max(embedded.max(), 0.0), rel=1e-4)
  assert (got_min, got_max) != (-6.0, 6.0)


@pytest.mark.parametrize("key,value,needle", [
    ("hidden_act", "relu", "relu6"),
    ("normalization_type", "layer_norm", "no_norm"),
])
def test_qat_requires_relu6_and_no_norm(key, value, needle):
  config_dict = _tiny_qat_config_dict(1, 1)
  config_dict[key] = value
  with tf.Graph().as_default():
    with pytest.raises(ValueError, match=needle):
      _build_qat_model(config_dict, is_training=False)
