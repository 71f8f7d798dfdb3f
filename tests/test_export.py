"""Tests for export_tflite.py: SavedModel and TF-Lite export, LiteModel.

References are independent of the code under test: logits come from the
numpy MobileBERT in tests/numpy_mobilebert.py (written from the spec) plus the
SQuAD head computed here; integer-op expectations are derived by hand from
reference_spec 6.2/6.3.  Integer exports need TF 2.15 and are skipped on
TF 1.15, where the refusal itself is tested.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import export_tflite
import heads
import modeling
import tf_compat
from tests import numpy_mobilebert

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEQ = 32
NEEDS_TF2 = pytest.mark.skipif(
    not tf_compat.IS_TF2,
    reason="integer TF-Lite export needs TF 2.15 (TF 1.15 refuses it, tested "
           "in test_integer_export_refused_on_tf1)")


def _small_config(qat=False):
  """tiny_mobilebert(_qat).json cut to 2 layers and 2 FFNs to keep tests fast.

  The float config uses the -6 attention mask (reference_spec 2.6): with the
  additive -10000 mask, calibration puts -10000 into the int8 range of the
  attention scores whenever a feature has padding, and the calibrated int8
  model loses most of its precision (field_notes 3; measured here: logit
  error about a third of the logit scale, against 5% with the -6 mask).
  """
  name = "tiny_mobilebert_qat.json" if qat else "tiny_mobilebert.json"
  with open(os.path.join(ROOT, "config", name)) as f:
    config = json.load(f)
  config.update(num_hidden_layers=2, num_feedforward_networks=2,
                max_position_embeddings=64, mask_mode="neg6")
  return config


def _random_value(name, shape, rng):
  """Weights scaled so activations and logits are O(1), unlike the 0.02 init."""
  if name.endswith("/gamma"):
    return rng.uniform(0.7, 1.1, size=shape)
  if name.endswith(("/beta", "bias")):
    return rng.normal(0.0, 0.1, size=shape)
  if name.endswith("embeddings"):
    return rng.normal(0.0, 0.5, size=shape)
  if name == "cls/squad/output_weights":
    return rng.normal(0.0, 1.0 / np.sqrt(shape[1]), size=shape)
  return rng.normal(0.0, 1.0 / np.sqrt(shape[0]), size=shape)


def _features(rng, count, vocab_size):
  features = []
  for _ in range(count):
    length = rng.randint(SEQ // 2, SEQ + 1)
    question = rng.randint(3, 6)
    ids = ([2] + list(rng.randint(5, vocab_size, size=length - 2)) + [3] +
           [0] * (SEQ - length))
    ids[question] = 3
    features.append({
        "input_ids": ids,
        "input_mask": [1] * length + [0] * (SEQ - length),
        "segment_ids": ([0] * (question + 1) + [1] * (length - question - 1) +
                        [0] * (SEQ - length)),
    })
  return features


def _write_checkpoint(config_dict, directory, rng, qat=False,
                      calibration=None, values=None, num_labels=None):
  """Builds the SQuAD (or with num_labels, classifier) graph, fills it with
  weights, saves a checkpoint.

  With `qat`, one training-mode pass over `calibration` sets the quantizer
  ranges (a zero-debiased EMA's first step equals the batch range).

  Returns:
    (checkpoint prefix, {variable name: numpy value} of the model weights).
  """
  config = modeling.BertConfig.from_dict(config_dict)
  weights = {}
  with tf.Graph().as_default():
    placeholders = [tf.placeholder(tf.int32, [None, SEQ]) for _ in range(3)]
    if num_labels:
      logits = heads.classifier_logits(config, qat, *placeholders, num_labels,
                                       use_quantized_training=qat)
    else:
      logits = heads.squad_logits(config, qat, *placeholders,
                                  use_quantized_training=qat)
    assigns = []
    for variable in tf.global_variables():
      name = variable.op.name
      if "FakeQuant" in name:
        continue
      shape = variable.shape.as_list()
      value = (values(name, shape) if values else
               _random_value(name, shape, rng)).astype(np.float32)
      weights[name] = value
      assigns.append(tf.assign(variable, value))
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      session.run(assigns)
      if qat:
        session.run(logits, dict(zip(placeholders, [
            [f[name] for f in calibration]
            for name in export_tflite.INPUT_NAMES])))
      prefix = tf.train.Saver(tf.global_variables()).save(
          session, os.path.join(directory, "model.ckpt"),
          write_meta_graph=False)
  return prefix, weights


def numpy_squad_logits(config_dict, weights, feature):
  """Start/end logits [SEQ] from the numpy MobileBERT and the SQuAD head."""
  outputs = numpy_mobilebert.forward(
      config_dict, weights, np.array([feature["input_ids"]]),
      np.array([feature["input_mask"]]), np.array([feature["segment_ids"]]))
  sequence = outputs["sequence_output"][0]
  logits = (sequence @ weights["cls/squad/output_weights"].astype(np.float64).T
            + weights["cls/squad/output_bias"])
  return {"start_logits": logits[:, 0], "end_logits": logits[:, 1]}


def _ops(path):
  """[(op name, [input dtypes], [output tensor names], [input sizes])]."""
  interpreter = tf.lite.Interpreter(
      model_path=path,
      experimental_op_resolver_type=(
          tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
  interpreter.allocate_tensors()
  tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
  ops = []
  for op in interpreter._get_ops_details():  # pylint: disable=protected-access
    inputs = [i for i in op["inputs"] if i >= 0]
    ops.append((op["op_name"],
                [np.dtype(tensors[i]["dtype"]).name for i in inputs],
                [tensors[i]["name"] for i in op["outputs"]],
                [int(np.prod(tensors[i]["shape"])) for i in inputs]))
  return ops


def _tensor_types(path):
  """{tensor name: dtype name} of a TF-Lite model (works on both runtimes)."""
  interpreter = tf.lite.Interpreter(model_path=path)
  interpreter.allocate_tensors()
  return {t["name"]: np.dtype(t["dtype"]).name
          for t in interpreter.get_tensor_details()}


def _max_abs_diff(lite_model, features, references):
  worst = 0.0
  for feature, reference in zip(features, references):
    got = lite_model.run(feature["input_ids"], feature["input_mask"],
                         feature["segment_ids"])
    for name in ("start_logits", "end_logits"):
      assert got[name].shape == (1, SEQ) and got[name].dtype == np.float32
      worst = max(worst, np.abs(got[name][0] - reference[name]).max())
  return worst


def _logit_scale(references):
  return max(np.abs(r[name]).max() for r in references
             for name in ("start_logits", "end_logits"))


@pytest.fixture(scope="module")
def float_export(tmp_path_factory):
  """One float checkpoint exported with every kind this runtime supports."""
  root = tmp_path_factory.mktemp("float_export")
  rng = np.random.RandomState(0)
  config_dict = _small_config()
  prefix, weights = _write_checkpoint(config_dict, str(root), rng)
  calibration = _features(rng, 8, config_dict["vocab_size"])
  tests = _features(np.random.RandomState(1), 4, config_dict["vocab_size"])
  paths = export_tflite.export(
      modeling.BertConfig.from_dict(config_dict), prefix + ".index",
      str(root / "export"), SEQ, use_post_quantization=True,
      activation_quantization=tf_compat.IS_TF2,
      representative_features=calibration)
  references = [numpy_squad_logits(config_dict, weights, f) for f in tests]
  return {"paths": paths, "prefix": prefix, "config": config_dict,
          "features": tests, "references": references, "root": root}


def test_export_writes_the_asked_files_only(float_export):
  paths = float_export["paths"]
  expected = {"saved_model", "float", "dynamic_range"}
  if tf_compat.IS_TF2:
    expected.add("int8")
  assert set(paths) == expected
  export_dir = str(float_export["root"] / "export")
  names = {"float": "model_float.tflite",
           "dynamic_range": "model_dynamic_range.tflite",
           "int8": "model_int8.tflite", "saved_model": "saved_model"}
  for kind, path in paths.items():
    assert path == os.path.join(export_dir, names[kind])
  # No temporary or QAT file left behind.
  assert sorted(os.listdir(export_dir)) == sorted(names[k] for k in expected)


def test_float_tflite_matches_numpy_model(float_export):
  lite_model = export_tflite.LiteModel(float_export["paths"]["float"])
  assert lite_model.output_names == ["end_logits", "start_logits"]
  worst = _max_abs_diff(lite_model, float_export["features"],
                        float_export["references"])
  assert _logit_scale(float_export["references"]) > 0.5
  assert worst < 1e-4
  # The float model has no quantized tensor.
  types = _tensor_types(float_export["paths"]["float"])
  assert not [n for n, t in types.items() if t in ("int8", "uint8")]


def test_saved_model_signature_and_outputs(float_export):
  feature = float_export["features"][0]
  with tf.Graph().as_default():
    with tf.Session() as session:
      meta_graph = tf.saved_model.loader.load(
          session, [tf.saved_model.tag_constants.SERVING],
          float_export["paths"]["saved_model"])
      signature = meta_graph.signature_def["serving_default"]
      assert sorted(signature.inputs) == ["input_ids", "input_mask",
                                          "segment_ids"]
      assert sorted(signature.outputs) == ["end_logits", "start_logits"]
      for info in signature.inputs.values():
        assert info.dtype == tf.int32.as_datatype_enum
        assert [d.size for d in info.tensor_shape.dim] == [1, SEQ]
      feed = {signature.inputs[name].name: [feature[name]]
              for name in signature.inputs}
      fetches = {name: info.name for name, info in signature.outputs.items()}
      got = session.run(fetches, feed)
  reference = float_export["references"][0]
  for name in ("start_logits", "end_logits"):
    np.testing.assert_allclose(got[name][0], reference[name], atol=1e-4)


def test_dynamic_range_model_has_int8_weights_and_stays_close(float_export):
  path = float_export["paths"]["dynamic_range"]
  assert os.path.getsize(path) < 0.5 * os.path.getsize(
      float_export["paths"]["float"])
  int8_tensors = [n for n, t in _tensor_types(path).items() if t == "int8"]
  # At least the 7 kernels of >= 1024 values per layer and the projection.
  assert len(int8_tensors) >= 1 + 2 * 7
  worst = _max_abs_diff(export_tflite.LiteModel(path),
                        float_export["features"], float_export["references"])
  # Stated tolerance: 5% of the largest logit.
  assert worst < 0.05 * _logit_scale(float_export["references"])


@NEEDS_TF2
def test_dynamic_range_model_runs_float_activations_on_int8_kernels(
    float_export):
  # (TF 1.15's interpreter cannot list ops.)
  path = float_export["paths"]["dynamic_range"]
  fully_connected = [o for o in _ops(path) if o[0] == "FULLY_CONNECTED"]
  # Every dense layer: the embedding projection, per layer 11 (bottleneck
  # input and attention, Q, K, V, attention output, 2 FFNs of 2, output
  # bottleneck) and the SQuAD head: 1 + 2 * 11 + 1.
  assert len(fully_connected) == 24
  # Dynamic-range quantization leaves kernels under 1024 values in float
  # (here the 32x32 ones and the head); all larger ones are int8, applied to
  # float activations.
  large = [o for o in fully_connected if o[3][1] >= 1024]
  assert len(large) >= 1 + 2 * 7
  for _, input_types, outputs, _ in large:
    assert input_types[:2] == ["float32", "int8"], outputs


@NEEDS_TF2
def test_full_integer_model_runs_int8_kernels_and_stays_close(float_export):
  path = float_export["paths"]["int8"]
  ops = _ops(path)
  for op, input_types, outputs, _ in ops:
    if op in ("FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX"):
      assert input_types[0] == "int8", (op, outputs)
  assert sum(o[0] == "FULLY_CONNECTED" for o in ops) == 24
  # Q.K^T and P.V per layer.
  assert sum(o[0] == "BATCH_MATMUL" for o in ops) == 4
  lite_model = export_tflite.LiteModel(path)
  # Phone-friendly I/O: int32 ids in, float32 logits out.
  details = lite_model._interpreter.get_input_details()  # pylint: disable=protected-access
  assert {np.dtype(d["dtype"]).name for d in details} == {"int32"}
  worst = _max_abs_diff(lite_model, float_export["features"],
                        float_export["references"])
  # Stated tolerance: 10% of the largest logit for calibrated int8.
  assert worst < 0.10 * _logit_scale(float_export["references"])


@pytest.fixture(scope="module")
def qat_export(tmp_path_factory):
  """A QAT checkpoint (ranges from one training pass) exported to int8."""
  if not tf_compat.IS_TF2:
    pytest.skip("QAT integer export needs TF 2.15")
  root = tmp_path_factory.mktemp("qat_export")
  rng = np.random.RandomState(2)
  # One layer: QAT graphs are slow to build and convert.
  config_dict = dict(_small_config(qat=True), num_hidden_layers=1)
  calibration = _features(rng, 8, config_dict["vocab_size"])
  prefix, weights = _write_checkpoint(config_dict, str(root), rng, qat=True,
                                      calibration=calibration)
  paths = export_tflite.export(
      modeling.BertConfig.from_dict(config_dict), prefix, str(root / "export"),
      SEQ, use_quantized_training=True, use_post_quantization=True,
      activation_quantization=True)
  tests = _features(np.random.RandomState(3), 4, config_dict["vocab_size"])
  references = [numpy_squad_logits(config_dict, weights, f) for f in tests]
  return {"paths": paths, "prefix": prefix, "config": config_dict,
          "features": tests, "references": references, "root": root}


def test_command_line_classifier_export(float_export, tmp_path):
  config_dict = float_export["config"]
  config_file = str(tmp_path / "config.json")
  with open(config_file, "w") as f:
    json.dump(config_dict, f)
  prefix, weights = _write_checkpoint(config_dict, str(tmp_path),
                                      np.random.RandomState(6), num_labels=3)
  export_dir = str(tmp_path / "export")
  process = subprocess.run(
      [sys.executable, os.path.join(ROOT, "export_tflite.py"),
       "--bert_config_file=" + config_file,
       "--init_checkpoint=" + prefix + ".index", "--export_dir=" + export_dir,
       "--max_seq_length=%d" % SEQ, "--task=classifier", "--num_labels=3"],
      cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
      check=False)
  assert process.returncode == 0, process.stderr[-4000:]
  assert sorted(os.listdir(export_dir)) == ["model_float.tflite",
                                            "saved_model"]
  lite_model = export_tflite.LiteModel(
      os.path.join(export_dir, "model_float.tflite"))
  assert lite_model.output_names == ["probabilities"]
  for feature in float_export["features"][:2]:
    got = lite_model.run(feature["input_ids"], feature["input_mask"],
                         feature["segment_ids"])["probabilities"]
    # No pooler (classifier_activation false): the raw [CLS] state.
    outputs = numpy_mobilebert.forward(
        config_dict, weights, np.array([feature["input_ids"]]),
        np.array([feature["input_mask"]]), np.array([feature["segment_ids"]]))
    logits = (outputs["pooled_output"] @ weights["output_weights"].T +
              weights["output_bias"])
    expected = np.exp(logits - logits.max()) / np.exp(
        logits - logits.max()).sum()
    assert got.shape == (1, 3)
    np.testing.assert_allclose(got, expected, atol=1e-5)


@NEEDS_TF2
def test_qat_export_files(qat_export):
  assert set(qat_export["paths"]) == {"saved_model", "float", "qat_int8"}
  assert os.path.basename(qat_export["paths"]["qat_int8"]) == (
      "model_qat_int8.tflite")


@NEEDS_TF2
def test_qat_integer_model_uses_learned_ranges(qat_export):
  path = qat_export["paths"]["qat_int8"]
  ops = _ops(path)
  fully_connected = [o for o in ops if o[0] == "FULLY_CONNECTED"]
  num_layers = qat_export["config"]["num_hidden_layers"]
  # The embedding projection, 11 dense layers per block (F=2), the head.
  assert len(fully_connected) == 1 + 11 * num_layers + 1
  int8_outputs = [o[2][0] for o in fully_connected if o[1][0] == "int8"]
  # Dense layers whose output goes straight into a learned range
  # (reference_spec 6.3): the bottleneck input/attention projections (into a
  # NoNorm's input quantizer) and the FFN intermediates (relu6 into the next
  # dense layer's input quantizer).  Dense outputs feeding a residual add have
  # no range of their own and stay float.
  expected = []
  for layer in range(num_layers):
    prefix = "bert/encoder/layer_%d/" % layer
    expected += [prefix + "bottleneck/attention/dense",
                 prefix + "bottleneck/input/dense",
                 prefix + "ffn_layer_0/intermediate/dense",
                 prefix + "intermediate/dense"]
  assert len(int8_outputs) == len(expected)
  for scope in expected:
    assert [n for n in int8_outputs if n.startswith(scope + "/")], scope
  for op, input_types, outputs, _ in ops:
    if op == "SOFTMAX":
      assert input_types == ["int8"], outputs
  # Against the float model without fake quant (the ranges come from one
  # batch, so quantization error is larger than after real QAT).
  worst = _max_abs_diff(export_tflite.LiteModel(path), qat_export["features"],
                        qat_export["references"])
  assert worst < 0.15 * _logit_scale(qat_export["references"])


@NEEDS_TF2
def test_qat_integer_model_matches_its_fake_quant_graph(qat_export):
  config = modeling.BertConfig.from_dict(qat_export["config"])
  with tf.Graph().as_default():
    placeholders = [tf.placeholder(tf.int32, [1, SEQ]) for _ in range(3)]
    logits = heads.squad_logits(config, False, *placeholders,
                                use_quantized_training=True)
    with tf.Session() as session:
      tf.train.Saver().restore(session, qat_export["prefix"])
      graph_outputs = [
          dict(zip(("start_logits", "end_logits"), session.run(
              logits, dict(zip(placeholders, [[f[n]] for n in
                                              export_tflite.INPUT_NAMES])))))
          for f in qat_export["features"]]
  references = [{k: v[0] for k, v in g.items()} for g in graph_outputs]
  worst = _max_abs_diff(
      export_tflite.LiteModel(qat_export["paths"]["qat_int8"]),
      qat_export["features"], references)
  # The integer kernels reproduce the simulated quantization to within 10%
  # of the largest logit (TF-Lite also rounds the int8 softmax output and the
  # requantized NoNorm products, which the fake-quant graph keeps in float).
  assert worst < 0.10 * _logit_scale(references)


def test_qat_export_of_a_float_checkpoint_names_the_problem(float_export,
                                                            tmp_path):
  config = modeling.BertConfig.from_dict(_small_config(qat=True))
  with pytest.raises(ValueError, match="no quantization ranges"):
    export_tflite.export(config, float_export["prefix"], str(tmp_path), SEQ,
                         use_quantized_training=True)
  assert not os.listdir(str(tmp_path))


def test_integer_export_refused_on_tf1():
  export_tflite.check_export_supported(False, True, False)
  export_tflite.check_export_supported(True, False, False)
  with pytest.raises(ValueError, match="--use_post_quantization"):
    export_tflite.check_export_supported(False, False, True)
  for qat, activation in ((False, True), (True, False), (True, True)):
    if tf_compat.IS_TF2:
      export_tflite.check_export_supported(qat, True, activation)
    else:
      with pytest.raises(ValueError, match="TF 2.15"):
        export_tflite.check_export_supported(qat, True, activation)


def test_bad_export_arguments_fail_before_any_file(float_export, tmp_path):
  config = modeling.BertConfig.from_dict(float_export["config"])
  prefix = float_export["prefix"]
  with pytest.raises(ValueError, match="max_position_embeddings"):
    export_tflite.export(config, prefix, str(tmp_path), 65)
  with pytest.raises(ValueError, match="num_labels"):
    export_tflite.export(config, prefix, str(tmp_path), SEQ,
                         task="classifier")
  with pytest.raises(ValueError, match="No checkpoint"):
    export_tflite.export(config, str(tmp_path / "missing.ckpt"),
                         str(tmp_path), SEQ)
  if tf_compat.IS_TF2:
    with pytest.raises(ValueError, match="representative_features"):
      export_tflite.export(config, prefix, str(tmp_path), SEQ,
                           use_post_quantization=True,
                           activation_quantization=True)
  assert not os.listdir(str(tmp_path))


def test_failed_conversion_keeps_the_previous_export(float_export, tmp_path,
                                                     monkeypatch):
  export_dir = str(tmp_path / "export")
  shutil.copytree(str(float_export["root"] / "export"), export_dir)
  before = {}
  for dirpath, _, filenames in os.walk(export_dir):
    for filename in filenames:
      path = os.path.join(dirpath, filename)
      with open(path, "rb") as f:
        before[path] = f.read()
  original_convert = tf.lite.TFLiteConverter.convert
  calls = []

  def convert_then_fail(self):
    calls.append(1)
    if len(calls) == 2:
      raise RuntimeError("converter crashed")
    return original_convert(self)

  monkeypatch.setattr(tf.lite.TFLiteConverter, "convert", convert_then_fail)
  with pytest.raises(RuntimeError, match="converter crashed"):
    export_tflite.export(
        modeling.BertConfig.from_dict(float_export["config"]),
        float_export["prefix"], export_dir, SEQ, use_post_quantization=True)
  after = {}
  for dirpath, _, filenames in os.walk(export_dir):
    for filename in filenames:
      path = os.path.join(dirpath, filename)
      with open(path, "rb") as f:
        after[path] = f.read()
  assert after == before


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
  path = str(tmp_path / "model_float.tflite")
  export_tflite.write_file_atomically(path, b"old model")

  def failing_replace(src, dst):
    raise OSError("disk full")

  monkeypatch.setattr(os, "replace", failing_replace)
  with pytest.raises(OSError, match="disk full"):
    export_tflite.write_file_atomically(path, b"new model")
  assert os.listdir(str(tmp_path)) == ["model_float.tflite"]
  with open(path, "rb") as f:
    assert f.read() == b"old model"


@NEEDS_TF2
def test_lite_model_dequantizes_int8_outputs_by_name(tmp_path):
  """A model with int8 outputs, listed end before start, read by name."""
  rng = np.random.RandomState(4)
  with tf.Graph().as_default():
    inputs = [tf.placeholder(tf.int32, [1, 8], name=name)
              for name in ("segment_ids", "input_mask", "input_ids")]
    values = tf.cast(inputs[2], tf.float32) * 0.25 - tf.cast(inputs[1],
                                                             tf.float32)
    end = tf.identity(values * -0.5 + 1.0, name="end_logits")
    start = tf.identity(values + 0.5, name="start_logits")
    with tf.Session() as session:
      converter = tf.lite.TFLiteConverter.from_session(session, inputs,
                                                       [end, start])
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
      converter.inference_output_type = tf.int8

      def calibration():
        for _ in range(20):
          yield [rng.randint(0, 2, size=(1, 8)).astype(np.int32),
                 rng.randint(0, 2, size=(1, 8)).astype(np.int32),
                 rng.randint(0, 16, size=(1, 8)).astype(np.int32)]

      converter.representative_dataset = calibration
      model = converter.convert()
  path = str(tmp_path / "int8_out.tflite")
  with open(path, "wb") as f:
    f.write(model)
  lite_model = export_tflite.LiteModel(path)
  outputs = lite_model._interpreter.get_output_details()  # pylint: disable=protected-access
  assert {np.dtype(d["dtype"]).name for d in outputs} == {"int8"}
  ids = np.array([3, 7, 15, 0, 1, 2, 9, 12])
  mask = np.array([1, 1, 1, 0, 0, 1, 1, 0])
  got = lite_model.run(ids, mask, np.zeros(8, np.int32))
  expected_values = ids * 0.25 - mask
  # One int8 step of a range about 5 wide is ~0.02.
  np.testing.assert_allclose(got["start_logits"][0], expected_values + 0.5,
                             atol=0.05)
  np.testing.assert_allclose(got["end_logits"][0],
                             expected_values * -0.5 + 1.0, atol=0.05)


def _metadata_modules():
  try:
    from tensorflow_lite_support.metadata.python import metadata  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    return None, str(error)
  return metadata, None


QA_CONTEXT = "the quick brown zebra jumps over the lazy dog"
QA_QUESTION = "what jumps over the dog"


def _qa_vocab(path, vocab_size):
  words = sorted(set((QA_CONTEXT + " " + QA_QUESTION).split()))
  tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words
  tokens += ["unused%d" % i for i in range(vocab_size - len(tokens))]
  with open(path, "w") as f:
    f.write("\n".join(tokens) + "\n")
  return tokens.index("zebra")


def _zebra_weights(zebra_id, config_dict):
  """Weights whose answer to any question is the token "zebra".

  All encoder kernels are zero, so every block passes its input through the
  output-bottleneck residual and the sequence output is the embedding output
  (reference_spec 2.5 with NoNorm gamma 1, beta 0).  The word "zebra" alone
  has a non-zero embedding feature, the projection copies it to hidden unit 0
  (rows embedding_size..2*embedding_size-1 act on the current token), and
  the SQuAD head reads unit 0 for both start and end.
  """
  embedding_size = config_dict["embedding_size"]

  def values(name, shape):
    value = np.zeros(shape)
    if name.endswith("/gamma"):
      value = np.ones(shape)
    elif name == "bert/embeddings/word_embeddings":
      value[zebra_id, 0] = 8.0
    elif name == "bert/embeddings/embedding_transformation/kernel":
      value[embedding_size, 0] = 1.0
    elif name == "cls/squad/output_weights":
      value[:, 0] = 1.0
    return value
  return values


def test_task_library_answers_a_question(tmp_path):
  metadata, reason = _metadata_modules()
  if metadata is None:
    pytest.skip("tflite-support is not installed in this runtime "
                "(requirements-metadata.txt): %s" % reason)
  config_dict = _small_config()
  # BertQuestionAnswerer (tflite-support 0.4.4) fills inputs of length 384.
  seq = 384
  config_dict.update(max_position_embeddings=seq)
  vocab = str(tmp_path / "vocab.txt")
  zebra_id = _qa_vocab(vocab, config_dict["vocab_size"])
  prefix, _ = _write_checkpoint(config_dict, str(tmp_path),
                                np.random.RandomState(5),
                                values=_zebra_weights(zebra_id, config_dict))
  paths = export_tflite.export(
      modeling.BertConfig.from_dict(config_dict), prefix,
      str(tmp_path / "export"), seq, vocab_file=vocab)
  displayer = metadata.MetadataDisplayer.with_model_file(paths["float"])
  model_metadata = json.loads(displayer.get_metadata_json())
  subgraph = model_metadata["subgraph_metadata"][0]
  assert sorted(t["name"] for t in subgraph["input_tensor_metadata"]) == [
      "ids", "mask", "segment_ids"]
  assert sorted(t["name"] for t in subgraph["output_tensor_metadata"]) == [
      "end_logits", "start_logits"]
  assert displayer.get_packed_associated_file_list() == ["vocab.txt"]

  # The Task Library runtime cannot share a process with TensorFlow; its
  # metadata module imports TensorFlow when it can, so block that import.
  script = textwrap.dedent("""
      import json, sys
      sys.modules["tensorflow"] = None
      from tflite_support.task import text
      answerer = text.BertQuestionAnswerer.create_from_file(sys.argv[1])
      result = answerer.answer(sys.argv[2], sys.argv[3])
      print(json.dumps({"answers": [a.text for a in result.answers],
                        "tensorflow": sys.modules["tensorflow"] is not None}))
  """)
  completed = subprocess.run(
      [sys.executable, "-c", script, paths["float"], QA_CONTEXT, QA_QUESTION],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, check=False)
  assert completed.returncode == 0, completed.stderr.decode()[-2000:]
  result = json.loads(completed.stdout.decode().strip().splitlines()[-1])
  assert not result["tensorflow"]
  assert result["answers"] and result["answers"][0] == "zebra"


def test_metadata_skipped_without_tokenizer_file(float_export):
  metadata, reason = _metadata_modules()
  if metadata is None:
    pytest.skip("tflite-support is not installed in this runtime: %s" % reason)
  # float_export passed no vocab_file: no metadata may be invented.
  with pytest.raises(ValueError):
    metadata.MetadataDisplayer.with_model_file(
        float_export["paths"]["float"])


def _run_squad(args):
  process = subprocess.run(
      [sys.executable, os.path.join(ROOT, "run_squad.py")] + args, cwd=ROOT,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, universal_newlines=True, check=False)
  assert process.returncode == 0, process.stderr[-4000:]


def _squad_vocab(datasets, path, vocab_size):
  """Every lower-cased word and punctuation mark of the sets, then fillers."""
  import tokenization  # pylint: disable=g-import-not-at-top
  basic = tokenization.BasicTokenizer(do_lower_case=True)
  words = set()
  for dataset in datasets:
    for article in dataset["data"]:
      for paragraph in article["paragraphs"]:
        words.update(basic.tokenize(paragraph["context"]))
        for qa in paragraph["qas"]:
          words.update(basic.tokenize(qa["question"]))
  tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words)
  assert len(tokens) <= vocab_size
  tokens += ["unused%d" % i for i in range(vocab_size - len(tokens))]
  with open(path, "w") as f:
    f.write("\n".join(tokens) + "\n")
  return tokens


def _confident_weights(config_dict, answer_token_scores, rng):
  """Small random weights plus an embedding feature that scores answer words.

  Each token id in `answer_token_scores` gets embedding feature 0 equal to its
  score; the projection copies the current token's feature 0 to hidden unit 0
  and the SQuAD head reads unit 0 for start and end.  The encoder's small
  random kernels only perturb that (its residual path carries the embedding
  through), so the model confidently answers with the best-scored answer word
  of the window and quantization cannot flip its choice.
  """
  embedding_size = config_dict["embedding_size"]

  def values(name, shape):
    if name.endswith("/gamma"):
      return np.ones(shape)
    if name.endswith(("/beta", "bias")):
      return np.zeros(shape)
    value = rng.normal(0.0, 0.02, size=shape)
    if name == "bert/embeddings/word_embeddings":
      value[:, 0] = 0.0
      for token_id, score in answer_token_scores.items():
        value[token_id, 0] = score
    elif name == "bert/embeddings/embedding_transformation/kernel":
      value[embedding_size, 0] = 1.0
    elif name == "cls/squad/output_weights":
      value[:, 0] = 1.0
    return value
  return values


def test_squad_f1_through_tflite_matches_tensorflow(tmp_path):
  import demo_data  # pylint: disable=g-import-not-at-top
  train, dev = demo_data.generate_squad(num_train_questions=6,
                                        num_dev_questions=24, seed=7)
  train_file, dev_file = str(tmp_path / "train.json"), str(tmp_path / "dev.json")
  demo_data.write_json(train, train_file)
  demo_data.write_json(dev, dev_file)
  config_dict = _small_config()
  config_file = str(tmp_path / "config.json")
  with open(config_file, "w") as f:
    json.dump(config_dict, f)
  vocab_file = str(tmp_path / "vocab.txt")
  tokens = _squad_vocab([train, dev], vocab_file, config_dict["vocab_size"])
  answer_words = sorted({word for relation in demo_data.RELATIONS
                         for value in relation.values
                         for word in value.lower().split()} & set(tokens))
  scores = {tokens.index(word): 3.0 + 0.5 * rank
            for rank, word in enumerate(answer_words)}
  prefix, _ = _write_checkpoint(
      config_dict, str(tmp_path), None,
      values=_confident_weights(config_dict, scores,
                                np.random.RandomState(8)))
  common = ["--bert_config_file=" + config_file, "--vocab_file=" + vocab_file,
            "--predict_file=" + dev_file, "--do_predict",
            "--max_seq_length=%d" % (SEQ * 2), "--max_query_length=16",
            "--doc_stride=32", "--predict_batch_size=4"]
  export_dir = str(tmp_path / "export")
  integer = tf_compat.IS_TF2
  _run_squad(common + [
      "--output_dir=" + str(tmp_path / "tf"), "--init_checkpoint=" + prefix,
      "--train_file=" + train_file, "--export_dir=" + export_dir,
      "--use_post_quantization", "--activation_quantization=%s" % integer])
  runs = {"tf": str(tmp_path / "tf"),
          "float": str(tmp_path / "lite_float")}
  models = {"float": "model_float.tflite"}
  if integer:
    runs["int8"] = str(tmp_path / "lite_int8")
    models["int8"] = "model_int8.tflite"
  for kind, model in models.items():
    _run_squad(common + ["--output_dir=" + runs[kind],
                         "--lite_model_path=" + os.path.join(export_dir,
                                                             model)])
  results, predictions = {}, {}
  for kind, output_dir in runs.items():
    with open(os.path.join(output_dir, "eval_results.json")) as f:
      results[kind] = json.load(f)
    with open(os.path.join(output_dir, "predictions.json")) as f:
      predictions[kind] = json.load(f)
  assert len(predictions["tf"]) == 24
  # The model answers with a word of its choice: it must not be always right
  # or always wrong, or F1 would be equal by accident.
  assert 0.0 < results["tf"]["f1"] < 100.0
  assert predictions["float"] == predictions["tf"]
  assert results["float"]["f1"] == results["tf"]["f1"]
  if integer:
    assert abs(results["int8"]["f1"] - results["float"]["f1"]) <= 2.0


def test_read_representative_features_from_a_tfrecord(tmp_path):
  path = str(tmp_path / "train.tf_record")
  rows = [[[i + 1, i + 2, 0], [1, 1, 0], [0, 1, 0]] for i in range(3)]
  with tf.python_io.TFRecordWriter(path) as writer:
    for ids, mask, segments in rows:
      example = tf.train.Example(features=tf.train.Features(feature={
          name: tf.train.Feature(int64_list=tf.train.Int64List(value=values))
          for name, values in (("input_ids", ids), ("input_mask", mask),
                               ("segment_ids", segments),
                               ("unique_ids", [7]))}))
      writer.write(example.SerializeToString())
  features = export_tflite.read_representative_features(path, 3, limit=2)
  assert features == [
      {"input_ids": [1, 2, 0], "input_mask": [1, 1, 0],
       "segment_ids": [0, 1, 0]},
      {"input_ids": [2, 3, 0], "input_mask": [1, 1, 0],
       "segment_ids": [0, 1, 0]}]
  with pytest.raises(ValueError, match="length 3, not --max_seq_length=4"):
    export_tflite.read_representative_features(path, 4, limit=2)
