"""Tests for export_tflite.py: SavedModel and TF-Lite export, LiteModel.

References are independent of the code under test: logits come from the
numpy MobileBERT in tests/numpy_mobilebert.py (written from the spec) plus the
SQuAD head computed here; integer-op expectations are derived by hand from
docs/quantization_and_export.md.  Integer exports need TF 2.15 and are skipped on
TF 1.15, where the refusal itself is tested.
"""

import collections
import importlib.util
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
import numpy_mobilebert
import rounding_model
import script_helpers
import tf_compat
import tflite_conversion
import tflite_flatbuffer
import tflite_runner

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEQ = 32
# Calibration features of the integer exports, as many as their ranges need
# to settle on these small random models.
CALIBRATION_FEATURES = 32
NEEDS_TF2 = pytest.mark.skipif(
    not tf_compat.IS_TF2,
    reason="integer TF-Lite export needs TF 2.15 (TF 1.15 refuses it, tested "
           "in test_integer_export_refused_on_tf1)")


def _small_config(qat=False):
  """tiny_mobilebert(_qat).json cut to 2 layers and 2 FFNs to keep tests fast.

  Each keeps its default attention mask: additive (-10000) for the float
  config, as the released checkpoint, and -6 under QAT.
  """
  return script_helpers.cut_config(
      "tiny_mobilebert_qat.json" if qat else "tiny_mobilebert.json",
      num_hidden_layers=2, num_feedforward_networks=2,
      max_position_embeddings=64)


def _random_value(name, shape, rng):
  """Weights giving O(1) activations and logits, unlike the 0.02 init.

  Kernels have standard deviation 0.5 / sqrt(fan_in): unit-gain random
  layers (1 / sqrt(fan_in)) amplify any perturbation layer over layer, a
  chaos trained networks do not have, and would measure that rather than the
  quantization.
  """
  if name.endswith("/gamma"):
    return rng.uniform(0.7, 1.1, size=shape)
  if name.endswith(("/beta", "bias")):
    return rng.normal(0.0, 0.1, size=shape)
  if name.endswith("embeddings"):
    return rng.normal(0.0, 0.5, size=shape)
  if name == "cls/squad/output_weights":
    return rng.normal(0.0, 1.0 / np.sqrt(shape[1]), size=shape)
  return rng.normal(0.0, 0.5 / np.sqrt(shape[0]), size=shape)


def _features(rng, count, vocab_size, min_length=SEQ // 2, max_length=SEQ):
  """Random SQuAD-like features: [CLS] question [SEP] context [SEP] [PAD]...

  Lengths are uniform in [min_length, max_length]; the rest is padding.
  """
  features = []
  for _ in range(count):
    length = rng.randint(min_length, max_length + 1)
    question = rng.randint(3, 6)
    ids = ([2] + list(rng.randint(5, vocab_size, size=length - 2)) + [3] +
           [0] * (SEQ - length))
    ids[min(question, length - 1)] = 3
    features.append({
        "input_ids": ids,
        "input_mask": [1] * length + [0] * (SEQ - length),
        "segment_ids": ([0] * (question + 1) + [1] * (length - question - 1) +
                        [0] * (SEQ - length)),
    })
  return features


def _write_checkpoint(config_dict, directory, rng, qat=False,
                      calibration=None, values=None, num_labels=None, seq=SEQ,
                      narrowed_quantizers=()):
  """Builds the SQuAD (or with num_labels, classifier) graph, fills it with
  weights, saves a checkpoint.

  With `qat`, one training-mode pass over `calibration` sets the quantizer
  ranges (a zero-debiased EMA's first step equals the batch range); then the
  quantizers named in `narrowed_quantizers` (scopes) get half their range.

  Returns:
    (checkpoint prefix, {variable name: numpy value} of the model weights).
  """
  config = modeling.BertConfig.from_dict(config_dict)
  weights = {}
  with tf.Graph().as_default():
    # The QAT pass runs attention dropout: seeded, the ranges it leaves are
    # the same in every run.
    tf.set_random_seed(0)
    placeholders = [tf.placeholder(tf.int32, [None, seq]) for _ in range(3)]
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
            for name in tflite_runner.INPUT_NAMES])))
        for variable in tf.global_variables():
          if variable.op.name.rsplit("/", 1)[0] in narrowed_quantizers:
            session.run(variable.assign(variable * 0.5))
      prefix = tf.train.Saver(tf.global_variables()).save(
          session, os.path.join(directory, "model.ckpt"),
          write_meta_graph=False)
  return prefix, weights


def numpy_squad_logits(config_dict, weights, feature):
  """Start/end logits [SEQ] from the numpy MobileBERT and the SQuAD head."""
  start, end = numpy_mobilebert.squad_logits(
      config_dict, weights, np.array([feature["input_ids"]]),
      np.array([feature["input_mask"]]), np.array([feature["segment_ids"]]))
  return {"start_logits": start[0], "end_logits": end[0]}


def _interpreter_without_delegates(path):
  """TF 2.15's interpreter on TF-Lite's own kernels, tensors allocated: every
  op of the file listed as written (no delegate takes a partition)."""
  interpreter = tf.lite.Interpreter(
      model_path=path,
      experimental_op_resolver_type=(
          tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
  interpreter.allocate_tensors()
  return interpreter


def _ops(path):
  """The ops of a model as TF 2.15's interpreter reads them from the file.

  (Independent of export_tflite's own flatbuffer reader.)

  Returns:
    List of dicts: "op", "input_indices" / "output_indices" (tensor
    indices), "inputs" / "outputs" (dtype names), "names"
    (output tensor names), "sizes" (input element counts), "zero_points"
    (of the inputs), "model_outputs" (whether each output is a model output).
  """
  interpreter = _interpreter_without_delegates(path)
  tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
  model_outputs = {d["index"] for d in interpreter.get_output_details()}
  ops = []
  for op in interpreter._get_ops_details():  # pylint: disable=protected-access
    inputs = [i for i in op["inputs"] if i >= 0]
    ops.append({
        "op": op["op_name"],
        "input_indices": inputs,
        "output_indices": list(op["outputs"]),
        "inputs": [np.dtype(tensors[i]["dtype"]).name for i in inputs],
        "outputs": [np.dtype(tensors[i]["dtype"]).name
                    for i in op["outputs"]],
        "names": [tensors[i]["name"] for i in op["outputs"]],
        "sizes": [int(np.prod(tensors[i]["shape"])) for i in inputs],
        "zero_points": [tensors[i]["quantization"][1] for i in inputs],
        "model_outputs": [i in model_outputs for i in op["outputs"]],
    })
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
      assert got[name].shape == (1, SEQ)
      worst = max(worst, np.abs(got[name][0] - reference[name]).max())
  return worst


def _io_types(path):
  """(input dtype names, output dtype names) as the file declares them
  (LiteModel would dequantize any output to float32)."""
  interpreter = tf.lite.Interpreter(model_path=path)
  return tuple(sorted(np.dtype(d["dtype"]).name for d in details)
               for details in (interpreter.get_input_details(),
                               interpreter.get_output_details()))


def test_every_tflite_file_takes_int32_ids_and_gives_float32_logits(
    float_export, request):
  paths = dict(float_export["paths"])
  if tf_compat.IS_TF2:
    for kind in ("qat_int8", "qat_int8_float_softmax"):
      paths[kind] = request.getfixturevalue("qat_export")["paths"][kind]
  del paths["saved_model"]
  assert len(paths) == (6 if tf_compat.IS_TF2 else 2), paths
  for kind, path in paths.items():
    assert _io_types(path) == (["int32"] * 3, ["float32"] * 2), kind


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
  calibration = _features(rng, CALIBRATION_FEATURES, config_dict["vocab_size"],
                          min_length=8)
  tests = _features(np.random.RandomState(1), 4, config_dict["vocab_size"])
  # Without python's bin directory on PATH (where TF 1.15's converter
  # lives), as when a venv's python is run by path; export() must find the
  # converter and leave PATH as it was.
  saved_path = os.environ.get("PATH", "")
  bin_dir = os.path.dirname(sys.executable)
  os.environ["PATH"] = os.pathsep.join(
      p for p in saved_path.split(os.pathsep) if p != bin_dir)
  caller_path = os.environ["PATH"]
  try:
    paths = export_tflite.export(
        modeling.BertConfig.from_dict(config_dict), prefix + ".index",
        str(root / "export"), SEQ,
        kinds=export_tflite.file_kinds(
            use_post_quantization=True,
            activation_quantization=tf_compat.IS_TF2,
            float_softmax=tf_compat.IS_TF2),
        calibration_features=calibration)
    path_after_export = os.environ["PATH"]
  finally:
    os.environ["PATH"] = saved_path
  references = [numpy_squad_logits(config_dict, weights, f) for f in tests]
  return {"paths": paths, "prefix": prefix, "config": config_dict,
          "weights": weights, "features": tests, "references": references,
          "root": root, "calibration": calibration, "caller_path": caller_path,
          "path_after_export": path_after_export}


def test_export_leaves_the_callers_path_alone(float_export):
  assert float_export["path_after_export"] == float_export["caller_path"]


def test_export_writes_the_asked_files_only(float_export):
  paths = float_export["paths"]
  expected = {"saved_model", "float", "dynamic_range"}
  if tf_compat.IS_TF2:
    expected.update(["int8", "int8_float_softmax"])
  assert set(paths) == expected
  export_dir = str(float_export["root"] / "export")
  names = {"float": "model_float.tflite",
           "dynamic_range": "model_dynamic_range.tflite",
           "int8": "model_int8.tflite",
           "int8_float_softmax": "model_int8_float_softmax.tflite",
           "saved_model": "saved_model"}
  for kind, path in paths.items():
    assert path == os.path.join(export_dir, names[kind])
  # No temporary or QAT file left behind.
  assert sorted(os.listdir(export_dir)) == sorted(names[k] for k in expected)


def test_float_tflite_matches_numpy_model(float_export):
  lite_model = tflite_runner.LiteModel(float_export["paths"]["float"])
  assert lite_model.output_names == ["end_logits", "start_logits"]
  worst = _max_abs_diff(lite_model, float_export["features"],
                        float_export["references"])
  assert _logit_scale(float_export["references"]) > 0.5
  assert worst < 1e-4
  # The float model has no quantized tensor.
  types = _tensor_types(float_export["paths"]["float"])
  assert not [n for n, t in types.items() if t in ("int8", "uint8")]


def test_lite_model_runs_on_litert_when_installed(float_export):
  """LiteModel prefers LiteRT (requirements.txt from Python 3.10) and says
  so; both interpreters give the numpy model's logits."""
  path = float_export["paths"]["float"]
  tensorflow_model = tflite_runner.LiteModel(path, use_litert=False)
  assert tensorflow_model.runtime.startswith("TensorFlow ")
  if importlib.util.find_spec("ai_edge_litert") is None:
    if sys.version_info >= (3, 10):
      _skip_or_fail_under_ci("ai-edge-litert is not installed")
    with pytest.raises(ValueError, match="LiteRT is not installed"):
      tflite_runner.LiteModel(path, use_litert=True)
    assert tflite_runner.LiteModel(path).runtime == tensorflow_model.runtime
    return
  litert_model = tflite_runner.LiteModel(path)
  assert litert_model.runtime.startswith("LiteRT ")
  for model in (litert_model, tensorflow_model):
    assert _max_abs_diff(model, float_export["features"],
                         float_export["references"]) < 1e-4


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


def test_dynamic_range_model_has_int8_weights(float_export):
  path = float_export["paths"]["dynamic_range"]
  assert os.path.getsize(path) < 0.5 * os.path.getsize(
      float_export["paths"]["float"])
  int8_tensors = [n for n, t in _tensor_types(path).items() if t == "int8"]
  # At least the 7 kernels of >= 1024 values per layer and the projection.
  assert len(int8_tensors) >= 1 + 2 * 7


def _last_in_dataflow(graph, names, skip_types=()):
  """Of the ops `names` (a file tensor's fused names) found in `graph`, the
  one that reads all the others: the tensor's value.  Ops of `skip_types`,
  constants and variables are left out."""
  known = {op.name for op in graph.get_operations()}
  ops = [graph.get_operation_by_name(name) for name in names if name in known]
  ops = [op for op in ops if op.outputs and op.type not in (
      ("Const", "VarHandleOp", "VariableV2") + tuple(skip_types))]
  last = [op for op in ops
          if all(rounding_model.reads_any(op, {other}) for other in ops)]
  assert len(last) == 1, names
  return last[0].outputs[0]


# A dense layer of a dynamic-range file, placed in the float graph: the
# graph's tensors of its input rows and of its output, and its int8 kernel
# [units, inputs] as the file holds it (dequantized, step per unit).  The
# file's output unit k is fold[k] times the graph's output (1 where the
# output tensor is taken after any fold).
RoundedDense = collections.namedtuple(
    "RoundedDense", ["inputs", "outputs", "kernel", "kernel_step", "fold"])


def _rounded_ops_from_op_list(graph, path):
  """([RoundedDense], [(lookup output tensor, table step)]) of a file
  written by TF 2.15's converter, matched to `graph` by the file's ops.

  The converter folds a NoNorm before or after a dense layer, and the
  attention's 1/sqrt(head size), into its int8 kernel, so the layer's input
  is the last of its input names in the graph's dataflow and its output the
  last of its output names (before a fused ReLU).
  """
  interpreter = _interpreter_without_delegates(path)
  tensors = {t["index"]: t for t in interpreter.get_tensor_details()}

  def step(tensor):
    scales = tensor["quantization_parameters"]["scales"]
    assert tensor["quantization_parameters"]["quantized_dimension"] == 0
    return scales if len(scales) > 1 else scales[0]

  dense_layers, lookups, looked_up = [], [], set()
  for op in interpreter._get_ops_details():  # pylint: disable=protected-access
    inputs = [tensors[i] for i in op["inputs"] if i >= 0]
    if not any(t["dtype"] == np.int8 for t in inputs):
      continue
    output_names = tensors[op["outputs"][0]]["name"].split(";")
    if op["op_name"] == "GATHER":
      lookups.append((_last_in_dataflow(graph, output_names),
                      step(inputs[0])))
      looked_up.add(op["outputs"][0])
      continue
    if op["op_name"] == "DEQUANTIZE":  # Of a lookup's rows, counted there.
      assert inputs[0]["index"] in looked_up, inputs[0]["name"]
      continue
    # A float input row and an int8 kernel [units, inputs], nothing else.
    assert op["op_name"] == "FULLY_CONNECTED", op["op_name"]
    assert [t["dtype"] for t in inputs[:2]] == [np.float32, np.int8]
    kernel_step = np.broadcast_to(step(inputs[1]), [inputs[1]["shape"][0]])
    dense_layers.append(RoundedDense(
        _last_in_dataflow(graph, inputs[0]["name"].split(";")),
        # The names end in "1" when the converter made them unique.
        _last_in_dataflow(graph, output_names + [output_names[-1][:-1]],
                          skip_types=("Relu",)),
        interpreter.get_tensor(inputs[1]["index"]) * kernel_step[:, None],
        kernel_step, np.ones_like(kernel_step)))
  return dense_layers, lookups


def _variable_read(tensor):
  """The name of the variable `tensor` reads, through identities."""
  while tensor.op.type in ("Identity", "ReadVariableOp"):
    tensor = tensor.op.inputs[0]
  return tensor.op.name


def _rounded_ops_from_kernel_names(graph, path, prefix):
  """([RoundedDense], [(lookup output tensor, table step)]) of a file
  written by TF 1.15's converter, matched to `graph` by its int8 constants.

  TF 1.15's interpreter cannot list a file's ops, but its converter names
  each int8 kernel after the variable it holds ("<variable>/transpose") and
  the table after the table, and folds only on a dense layer's output side
  (the attention's 1/sqrt(head size), the scale of a NoNorm after it): the
  layer is the graph's MatMul of that variable, its input rows the MatMul's,
  and fold[k] the least-squares factor between the file's kernel row k and
  the checkpoint's.  The two rows must then agree to one step: half a step
  of rounding and what the rounding does to the fitted factor (up to 0.75
  step measured; another variable's kernel is many steps off).
  """
  matmuls = {_variable_read(op.inputs[1]): op
             for op in graph.get_operations() if op.type == "MatMul"}
  gathers = {_variable_read(op.inputs[0]): op
             for op in graph.get_operations()
             if op.type in ("GatherV2", "ResourceGather")}
  reader = tf.train.load_checkpoint(prefix)
  interpreter = tf.lite.Interpreter(model_path=path)
  interpreter.allocate_tensors()
  dense_layers, lookups = [], []
  for tensor in interpreter.get_tensor_details():
    step = tensor["quantization"][0]
    if tensor["dtype"] != np.int8:
      continue
    variable = tensor["name"][:-len("/transpose")]
    if variable in matmuls:
      kernel = interpreter.get_tensor(tensor["index"]) * step
      checkpoint_kernel = reader.get_tensor(variable).T
      fold = (np.sum(kernel * checkpoint_kernel, axis=1) /
              np.sum(checkpoint_kernel ** 2, axis=1))
      assert np.all(np.abs(kernel - fold[:, None] * checkpoint_kernel) <=
                    step), variable
      kernel_step = np.full(kernel.shape[0], step)
      matmul = matmuls[variable]
      dense_layers.append(RoundedDense(matmul.inputs[0], matmul.outputs[0],
                                       kernel, kernel_step, fold))
    elif tensor["name"] in gathers:
      lookups.append((gathers[tensor["name"]].outputs[0], step))
    else:  # The looked-up rows, on the table's grid: counted there.
      assert tensor["name"] in {op.name for op in gathers.values()}, (
          tensor["name"])
  return dense_layers, lookups


def test_dynamic_range_model_matches_numpy_up_to_its_roundings(
    float_export):
  """The dynamic-range file computes the numpy MobileBERT up to its roundings.

  The file holds some kernels and the word-embedding table in int8 (step
  s_w, read from the file) and rounds the input rows of those kernels' dense
  layers at run time.  Each rounding is an error uniform in +-step/2,
  independent between elements, so a dense layer's output y = x W adds, in
  row r and unit k, an error of variance
    s_w^2 / 12 * sum_i x_ri^2  +  s_x(r)^2 / 12 * sum_i W_ik^2,
  with s_x(r) = max_i |x_ri| / 127, the symmetric step (the asymmetric
  scheme XNNPACK uses rounds to at most this step); the table's lookup adds
  s_w^2 / 12 to every embedding value.  Carried to a logit to first order
  with the float graph's gradients, these give it a standard deviation
  sigma; every logit lies within ROUNDING_SIGMAS sigma of the numpy
  model's (which the float graph and file match to 1e-4, far below sigma).
  (Measured: at most 2.5 sigma on TF 2.15 and 3.2 on TF 1.15, sigma at most
  0.005 for logits up to 2.2; Intel Xeon, AVX-512 VNNI.  NoNorm scales 1% off
  give 12.6 sigma or more on both, where 5% of the largest logit, the bound
  this replaced, held.)
  """
  config = modeling.BertConfig.from_dict(float_export["config"])
  path = float_export["paths"]["dynamic_range"]
  copies = 2 * SEQ
  with tf.Graph().as_default() as graph:
    placeholders, logits = rounding_model.squad_logits_on_copies(
        config, SEQ, False)
    dense_layers, lookups = (
        _rounded_ops_from_op_list(graph, path) if tf_compat.IS_TF2 else
        _rounded_ops_from_kernel_names(graph, path, float_export["prefix"]))
    assert len(lookups) == 1 and len(dense_layers) >= 1 + 2 * 7
    outputs = [layer.outputs for layer in dense_layers] + [
        t for t, _ in lookups]
    gradients = tf.gradients(tf.linalg.diag_part(logits), outputs)
    assert all(g is not None for g in gradients)
    model = tflite_runner.LiteModel(path)
    with tf.Session() as session:
      tf.train.Saver().restore(session, float_export["prefix"])
      for feature, reference in zip(float_export["features"],
                                    float_export["references"]):
        grads, inputs = session.run(
            [gradients, [layer.inputs for layer in dense_layers]],
            rounding_model.feed_copies(placeholders, feature))
        variance = np.zeros(2 * SEQ)
        for layer, x, g in zip(dense_layers, inputs, grads):
          rows = np.reshape(x, [copies, SEQ, -1])[0]
          row_step = np.abs(rows).max(axis=1) / 127.0
          # In the file's units, then the graph's.
          noise = (np.sum(rows ** 2, axis=1)[:, None] *
                   layer.kernel_step[None, :] ** 2 +
                   row_step[:, None] ** 2 *
                   np.sum(layer.kernel ** 2, axis=1)[None, :]) / 12.0
          noise /= layer.fold[None, :] ** 2
          variance += np.sum(np.reshape(g, [copies, SEQ, -1]) ** 2 *
                             noise[None], axis=(1, 2))
        for (_, table_step), g in zip(lookups, grads[len(dense_layers):]):
          variance += np.sum(np.reshape(g, [copies, -1]) ** 2,
                             axis=1) * table_step ** 2 / 12.0
        got = model.run(feature["input_ids"], feature["input_mask"],
                        feature["segment_ids"])
        got = np.concatenate([got["start_logits"][0], got["end_logits"][0]])
        expected = np.concatenate([reference["start_logits"],
                                   reference["end_logits"]])
        deviation = np.abs(got - expected) / np.sqrt(variance)
        assert np.all(deviation < rounding_model.ROUNDING_SIGMAS), deviation


@NEEDS_TF2
def test_dynamic_range_model_runs_float_activations_on_int8_kernels(
    float_export):
  # (TF 1.15's interpreter cannot list ops.)
  path = float_export["paths"]["dynamic_range"]
  fully_connected = [o for o in _ops(path) if o["op"] == "FULLY_CONNECTED"]
  # Every dense layer: the embedding projection, per layer 11 (bottleneck
  # input and attention, Q, K, V, attention output, 2 FFNs of 2, output
  # bottleneck) and the SQuAD head, one per output: 1 + 2 * 11 + 2.
  assert len(fully_connected) == 25
  # Dynamic-range quantization leaves kernels under 1024 values in float
  # (here the 32x32 ones and the head); all larger ones are int8, applied to
  # float activations.
  large = [o for o in fully_connected if o["sizes"][1] >= 1024]
  assert len(large) >= 1 + 2 * 7
  for op in large:
    assert op["inputs"][:2] == ["float32", "int8"], op["names"]


def _integer_model_paths(request):
  """The two integer files: calibrated (float checkpoint) and QAT."""
  return {"int8": request.getfixturevalue("float_export")["paths"]["int8"],
          "qat_int8": request.getfixturevalue("qat_export")["paths"][
              "qat_int8"]}


@NEEDS_TF2
@pytest.mark.parametrize("kind", ["int8", "qat_int8"])
def test_integer_dense_biases_are_in_the_units_kernels_add_them_in(kind,
                                                                   request):
  """An int8 FULLY_CONNECTED adds its int32 bias to the int32 accumulator,
  so the kernels (TF-Lite's and XNNPACK's) read the bias in units of input
  scale x filter scale, whatever scale the file records for it; the two
  must agree (docs/quantization_and_export.md, section 5).  TF-Lite's own
  kernels, which refuse a bias far from that unit, must load the file."""
  path = _integer_model_paths(request)[kind]
  interpreter = _interpreter_without_delegates(path)
  tensors = interpreter.get_tensor_details()
  checked = 0
  for op in interpreter._get_ops_details():  # pylint: disable=protected-access
    if op["op_name"] != "FULLY_CONNECTED" or op["inputs"][2] < 0:
      continue  # -1: a layer whose bias the converter folded away.
    accumulator_unit = (
        tensors[op["inputs"][0]]["quantization"][0] *
        tensors[op["inputs"][1]]["quantization_parameters"]["scales"])
    recorded = tensors[op["inputs"][2]]["quantization_parameters"]["scales"]
    np.testing.assert_allclose(recorded, accumulator_unit, rtol=1e-5,
                               err_msg=tensors[op["outputs"][0]]["name"])
    checked += 1
  assert checked >= 12  # 13 in the one-layer QAT model, more in int8's


@NEEDS_TF2
@pytest.mark.parametrize("kind", ["int8", "qat_int8"])
def test_integer_model_computes_nothing_in_float(kind, request):
  ops = _ops(_integer_model_paths(request)[kind])
  float_ops = [(o["op"], o["names"]) for o in ops
               if "float32" in o["inputs"] + o["outputs"]]
  # The only float step: the DEQUANTIZE of each output (start and end
  # logits), which keeps the float32 outputs apps and the Task Library read.
  assert sorted(op for op, _ in float_ops) == ["DEQUANTIZE", "DEQUANTIZE"], (
      float_ops)
  for o in ops:
    if o["op"] == "DEQUANTIZE":
      assert o["model_outputs"] == [True]
  counts = collections.Counter(o["op"] for o in ops)
  # Every dense layer (embedding projection, 11 per layer, head) and both
  # attention matmuls of every layer are there, on int8 inputs.
  num_layers = 1 if kind == "qat_int8" else 2
  # The head is one FULLY_CONNECTED per output (start, end).
  assert counts["FULLY_CONNECTED"] == 1 + 11 * num_layers + 2
  assert counts["BATCH_MATMUL"] == 2 * num_layers
  assert counts["SOFTMAX"] == num_layers
  # The embedding lookups (words, token types) and the mask table; the
  # residual adds and NoNorm products (several per layer).
  assert counts["GATHER"] >= 3
  assert counts["ADD"] >= 2 * num_layers and counts["MUL"] >= 2 * num_layers
  for o in ops:
    if o["op"] in ("FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX", "GATHER",
                   "ADD", "MUL"):
      assert o["inputs"][0] == "int8", (o["op"], o["names"])
  # int32 only for the id inputs (lookups, the mask table) and biases.
  for o in ops:
    for position, dtype in enumerate(o["inputs"]):
      if dtype == "int32":
        assert (o["op"] == "GATHER" and position == 1) or (
            o["op"] == "FULLY_CONNECTED" and position == 2) or (
                o["op"] in ("RESHAPE", "STRIDED_SLICE", "PAD", "TRANSPOSE")
                and position >= 1), (o["op"], position, o["names"])


@NEEDS_TF2
@pytest.mark.parametrize("kind", ["int8", "qat_int8"])
def test_integer_logits_each_have_their_own_int8_range(kind, request):
  """Start and end logits are quantized separately, each on its own range
  over the calibration features (docs/quantization_and_export.md, section
  4): one range spanning both would give the narrower one a coarser step.
  The ranges are read here from the float .tflite (itself checked against
  the numpy model) on the fixture's calibration features."""
  fixture = request.getfixturevalue(
      "float_export" if kind == "int8" else "qat_export")
  float_model = tflite_runner.LiteModel(fixture["paths"]["float"])
  logits = collections.defaultdict(list)
  for feature in fixture["calibration"]:
    outputs = float_model.run(feature["input_ids"], feature["input_mask"],
                              feature["segment_ids"])
    for name, value in outputs.items():
      logits[name].append(value)
  expected = {}
  for name, values in logits.items():
    values = np.concatenate(values, axis=None)
    # Calibrated ranges always hold 0; 256 levels across the range.
    expected[name] = (max(values.max(), 0.0) - min(values.min(), 0.0)) / 255.0
  # The test means something only if the two ranges differ.
  assert abs(expected["start_logits"] / expected["end_logits"] - 1) > 0.02, (
      expected)
  interpreter = tf.lite.Interpreter(model_path=fixture["paths"][kind])
  tensors = interpreter.get_tensor_details()
  found = {}
  for op in interpreter._get_ops_details():  # pylint: disable=protected-access
    if op["op_name"] == "DEQUANTIZE":
      name = tensors[op["outputs"][0]]["name"]
      found[name] = tensors[op["inputs"][0]]["quantization"][0]
  assert sorted(found) == sorted(expected)
  for name in expected:
    assert found[name] == pytest.approx(expected[name], rel=0.002), (
        name, found, expected)


@NEEDS_TF2
def test_op_table_counts_what_the_interpreter_reads(float_export):
  """The logged op table against TF 2.15's interpreter reading the same
  files: every op type with its count, dynamic-range dense layers as
  float32 activations on int8 weights, integer ones as int8."""
  for kind in ("dynamic_range", "int8"):
    path = float_export["paths"][kind]
    with open(path, "rb") as f:
      rows = tflite_flatbuffer.op_table(f.read())
    ops = _ops(path)
    counts = collections.Counter()
    for op, _, count in rows:
      counts[op] += count
    assert counts == collections.Counter(o["op"] for o in ops), kind
    by_op = collections.defaultdict(dict)
    for op, dtypes, count in rows:
      by_op[op][dtypes] = count
    large = sum(o["op"] == "FULLY_CONNECTED" and o["sizes"][1] >= 1024
                for o in ops)
    if kind == "dynamic_range":
      assert by_op["FULLY_CONNECTED"]["float32/int8"] == large
    else:
      assert by_op["FULLY_CONNECTED"] == {"int8": 25}
      assert by_op["DEQUANTIZE"] == {"int8->float32": 2}


@NEEDS_TF2
@pytest.mark.parametrize("kind", ["int8", "qat_int8"])
def test_integer_attention_matmuls_meet_xnnpack_rules(kind, request):
  """XNNPACK takes an int8 BATCH_MATMUL only if its second operand (K, V)
  has zero point 0 (docs/quantization_and_export.md, section 5)."""
  matmuls = [o for o in _ops(_integer_model_paths(request)[kind])
             if o["op"] == "BATCH_MATMUL"]
  assert matmuls
  for o in matmuls:
    assert o["inputs"][:2] == ["int8", "int8"]
    assert o["zero_points"][1] == 0, o["names"]


# Each float-softmax file and the integer file it edits.
FLOAT_SOFTMAX_OF = {"int8_float_softmax": "int8",
                    "qat_int8_float_softmax": "qat_int8"}


def _export_fixture(kind, request):
  return request.getfixturevalue(
      "qat_export" if kind.startswith("qat") else "float_export")


def _softmax_islands(ops):
  """{SOFTMAX position: (DEQUANTIZE position, QUANTIZE position)}: the
  float32 softmaxes with the op writing their input and the one op reading
  their output, found by tensor index."""
  producer = {index: position for position, o in enumerate(ops)
              for index in o["output_indices"]}
  readers = collections.defaultdict(list)
  for position, o in enumerate(ops):
    for index in o["input_indices"]:
      readers[index].append(position)
  islands = {}
  for position, o in enumerate(ops):
    if o["op"] == "SOFTMAX" and o["inputs"] == ["float32"]:
      (reader,) = readers[o["output_indices"][0]]
      islands[position] = (producer[o["input_indices"][0]], reader)
  return islands


@NEEDS_TF2
@pytest.mark.parametrize("kind", sorted(FLOAT_SOFTMAX_OF))
def test_float_softmax_file_computes_only_attention_softmaxes_in_float(
    kind, request):
  """Read from the written file: per layer one DEQUANTIZE (int8 scores) ->
  SOFTMAX (float32) -> QUANTIZE (to int8 probabilities on the softmax's
  fixed 1/256 scale, zero point -128), the two output DEQUANTIZEs, and no
  other float32 anywhere."""
  fixture = _export_fixture(kind, request)
  num_layers = fixture["config"]["num_hidden_layers"]
  ops = _ops(fixture["paths"][kind])
  float_ops = collections.Counter(
      (o["op"], "/".join(o["inputs"]) + "->" + "/".join(o["outputs"]))
      for o in ops if "float32" in o["inputs"] + o["outputs"])
  assert float_ops == {("DEQUANTIZE", "int8->float32"): num_layers + 2,
                       ("SOFTMAX", "float32->float32"): num_layers,
                       ("QUANTIZE", "float32->int8"): num_layers}, float_ops
  interpreter = tf.lite.Interpreter(model_path=fixture["paths"][kind])
  tensors = interpreter.get_tensor_details()
  islands = _softmax_islands(ops)
  assert len(islands) == num_layers
  for dequantize, quantize in islands.values():
    assert ops[dequantize]["op"] == "DEQUANTIZE"
    scores = tensors[ops[dequantize]["input_indices"][0]]
    assert len(scores["shape"]) == 4 and scores["shape"][-1] == SEQ
    assert ops[quantize]["op"] == "QUANTIZE"
    probabilities = tensors[ops[quantize]["output_indices"][0]]
    assert probabilities["quantization"] == (1.0 / 256, -128)


@NEEDS_TF2
@pytest.mark.parametrize("kind", sorted(FLOAT_SOFTMAX_OF))
def test_float_softmax_file_is_the_integer_file_but_the_islands(kind,
                                                                request):
  """Every op of the integer file, in order, with the softmax islands'
  DEQUANTIZE and QUANTIZE taken out; every tensor of the integer file with
  its dtype, shape and quantization.

  The QAT graph's score clip (modeling.QAT_SCORE_CLIP) is an int8 MINIMUM
  and MAXIMUM before each softmax; the edit leaves them out, which is exact
  only if each clamps at the int8 end of its operand's own range (127 for
  MINIMUM, -128 for MAXIMUM, one quantization for all three tensors): that
  is checked here on the integer file."""
  fixture = _export_fixture(kind, request)
  integer_path = fixture["paths"][FLOAT_SOFTMAX_OF[kind]]
  edited_ops = _ops(fixture["paths"][kind])
  island_ops = set()
  for dequantize, quantize in _softmax_islands(edited_ops).values():
    island_ops.update((dequantize, quantize))
  integer_ops = _ops(integer_path)
  interpreter = tf.lite.Interpreter(model_path=integer_path)
  interpreter.allocate_tensors()
  tensors = interpreter.get_tensor_details()
  clamps = [o for o in integer_ops if o["op"] in ("MINIMUM", "MAXIMUM")]
  assert len(clamps) == (2 * fixture["config"]["num_hidden_layers"]
                         if kind.startswith("qat") else 0)
  for clamp in clamps:
    operand, constant = clamp["input_indices"]
    assert interpreter.get_tensor(constant).tolist() == (
        127 if clamp["op"] == "MINIMUM" else -128), clamp["names"]
    assert (tensors[operand]["quantization"] ==
            tensors[constant]["quantization"] ==
            tensors[clamp["output_indices"][0]]["quantization"])
  assert [o["op"] for position, o in enumerate(edited_ops)
          if position not in island_ops] == [
              o["op"] for o in integer_ops if o not in clamps]

  def tensor_table(path):
    interpreter = tf.lite.Interpreter(model_path=path)
    return {t["name"]: (np.dtype(t["dtype"]).name, list(t["shape"]),
                        t["quantization"])
            for t in interpreter.get_tensor_details()}

  integer_tensors = tensor_table(integer_path)
  edited_tensors = tensor_table(fixture["paths"][kind])
  for name, description in integer_tensors.items():
    assert edited_tensors[name] == description, name
  added = set(edited_tensors) - set(integer_tensors)
  assert len(added) == 2 * fixture["config"]["num_hidden_layers"]
  assert {edited_tensors[name][0] for name in added} == {"float32"}


@NEEDS_TF2
@pytest.mark.parametrize("kind", sorted(FLOAT_SOFTMAX_OF))
def test_float_softmax_file_logits_against_numpy_model(kind, request):
  """Relative RMS error against the numpy MobileBERT's logits within 5%
  (as the integer files against the float one) on 40 padded and unpadded
  features, and no larger than the integer file's own error by more than a
  tenth: the edit removes the int8 softmax's table lookup and adds no
  rounding."""
  fixture = _export_fixture(kind, request)
  features = (_features(np.random.RandomState(14), 20,
                        fixture["config"]["vocab_size"],
                        **INPUT_SETS["padded"]) +
              _features(np.random.RandomState(15), 20,
                        fixture["config"]["vocab_size"],
                        **INPUT_SETS["unpadded"]))
  references = [numpy_squad_logits(fixture["config"], fixture["weights"], f)
                for f in features]

  def error(path):
    model = tflite_runner.LiteModel(path)
    squared_error = squared_norm = 0.0
    for feature, reference in zip(features, references):
      got = model.run(feature["input_ids"], feature["input_mask"],
                      feature["segment_ids"])
      real = np.array(feature["input_mask"], dtype=bool)
      for name in ("start_logits", "end_logits"):
        squared_error += np.sum((got[name][0][real] -
                                 reference[name][real]) ** 2)
        squared_norm += np.sum(reference[name][real] ** 2)
    return np.sqrt(squared_error / squared_norm)

  edited = error(fixture["paths"][kind])
  integer = error(fixture["paths"][FLOAT_SOFTMAX_OF[kind]])
  assert edited < 0.05, (edited, integer)
  assert edited <= 1.1 * integer, (edited, integer)


def _litert_partitions(path):
  """(XNNPACK partitions, {op: count} left to builtin kernels) of a file on
  LiteRT, as bench/bench_litert.py's delegation() counts them."""
  try:
    from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    _skip_or_fail_under_ci("LiteRT is not installed: %s" % error)
  sys.path.insert(0, os.path.join(ROOT, "bench"))
  try:
    import bench_litert  # pylint: disable=g-import-not-at-top
  finally:
    sys.path.pop(0)
  model = litert.Interpreter(model_path=path, num_threads=1)
  model.allocate_tensors()
  share = bench_litert.delegation(model)
  return share["partitions"], share["not_delegated"]


@NEEDS_TF2
@pytest.mark.parametrize("kind", sorted(FLOAT_SOFTMAX_OF))
def test_float_softmax_file_runs_in_one_xnnpack_partition(kind, request):
  """On LiteRT, XNNPACK takes the whole float-softmax model but the
  embedding lookups (GATHER) in one partition, where the integer file it
  edits leaves its int8 softmaxes out and splits into one partition per
  layer and one more."""
  fixture = _export_fixture(kind, request)
  num_layers = fixture["config"]["num_hidden_layers"]
  partitions, left = _litert_partitions(fixture["paths"][kind])
  assert partitions == 1 and set(left) == {"GATHER"}, (partitions, left)
  partitions, left = _litert_partitions(
      fixture["paths"][FLOAT_SOFTMAX_OF[kind]])
  assert partitions == num_layers + 1 and left.get("SOFTMAX") == num_layers, (
      partitions, left)


def _best_span(start_logits, end_logits, feature, max_answer_length=8):
  """The highest-scoring (start, end) in the context: start <= end, both real
  context tokens, at most max_answer_length long (as SQuAD post-processing)."""
  context = [i for i, (segment, mask) in enumerate(
      zip(feature["segment_ids"], feature["input_mask"]))
             if segment == 1 and mask == 1]
  best = None
  for start in context:
    for end in context:
      if start <= end < start + max_answer_length:
        score = start_logits[start] + end_logits[end]
        if best is None or score > best[0]:
          best = (score, start, end)
  return best[1:]


def _agreement_and_error(float_model, integer_model, features):
  """(share of features with the same best span, relative RMS logit error).

  The error is sqrt(sum (int8 - float)^2 / sum float^2) over the real
  tokens' start and end logits.
  """
  same, squared_error, squared_norm = 0, 0.0, 0.0
  for feature in features:
    args = (feature["input_ids"], feature["input_mask"],
            feature["segment_ids"])
    reference, got = float_model.run(*args), integer_model.run(*args)
    real = np.array(feature["input_mask"], dtype=bool)
    for name in ("start_logits", "end_logits"):
      squared_error += np.sum((got[name][0][real] -
                               reference[name][0][real]) ** 2)
      squared_norm += np.sum(reference[name][0][real] ** 2)
    same += (_best_span(reference["start_logits"][0],
                        reference["end_logits"][0], feature) ==
             _best_span(got["start_logits"][0], got["end_logits"][0],
                        feature))
  return same / float(len(features)), np.sqrt(squared_error / squared_norm)


# Short contexts at sequence SEQ (mostly padding), and no padding at all.
INPUT_SETS = {"padded": dict(min_length=8, max_length=12),
              "unpadded": dict(min_length=SEQ, max_length=SEQ)}


@NEEDS_TF2
@pytest.mark.parametrize("inputs", sorted(INPUT_SETS))
@pytest.mark.parametrize("kind", ["int8", "qat_int8", "int8_float_softmax",
                                  "qat_int8_float_softmax"])
def test_integer_model_logits_stay_close_to_float(kind, inputs, request):
  """Relative RMS error under 5% against the float .tflite of the same
  checkpoint, padded or not.  With the additive mask's -10000 in the int8
  range of the scores this was 8% padded on the calibrated model."""
  fixture = _export_fixture(kind, request)
  features = _features(np.random.RandomState(11), 40,
                       fixture["config"]["vocab_size"], **INPUT_SETS[inputs])
  _, error = _agreement_and_error(
      tflite_runner.LiteModel(fixture["paths"]["float"]),
      tflite_runner.LiteModel(fixture["paths"][kind]), features)
  assert error < 0.05


@NEEDS_TF2
def test_integer_models_pick_the_float_models_answers(tmp_path):
  """Best spans agree with the float .tflite on at least 97% of questions,
  and each float-softmax file's at least as often as its integer file's.

  The model has an answer to find: one planted token per context
  (`_answer_token_weights`, score 3), so best spans differ by a real margin
  rather than the near-ties of a purely random model.  Both integer kinds
  and their float-softmax files, padded and unpadded inputs.
  """
  rng = np.random.RandomState(12)
  results = {}
  for kind, qat in (("int8", False), ("qat_int8", True)):
    config_dict = _small_config(qat=qat)
    answer_id = config_dict["vocab_size"] - 1
    values = _answer_token_weights(answer_id, config_dict, rng, score=3.0)

    def with_answer(features):
      for feature in features:
        context = [i for i, segment in enumerate(feature["segment_ids"])
                   if segment == 1 and feature["input_mask"][i]][:-1]
        feature["input_ids"][context[rng.randint(len(context))]] = answer_id
      return features

    calibration = with_answer(_features(rng, CALIBRATION_FEATURES,
                                        config_dict["vocab_size"],
                                        min_length=8))
    directory = tmp_path / kind
    directory.mkdir()
    prefix, _ = _write_checkpoint(config_dict, str(directory), None, qat=qat,
                                  calibration=calibration, values=values)
    paths = export_tflite.export(
        modeling.BertConfig.from_dict(config_dict), prefix,
        str(directory / "export"), SEQ,
        kinds=export_tflite.file_kinds(
            use_quantized_training=qat, use_post_quantization=True,
            activation_quantization=True, float_softmax=True),
        use_quantized_training=qat, calibration_features=calibration)
    for inputs, lengths in sorted(INPUT_SETS.items()):
      features = with_answer(_features(rng, 40, config_dict["vocab_size"],
                                       **lengths))
      for each_kind in (kind, kind + "_float_softmax"):
        results[each_kind, inputs] = _agreement_and_error(
            tflite_runner.LiteModel(paths["float"]),
            tflite_runner.LiteModel(paths[each_kind]), features)[0]
  assert min(results.values()) >= 0.97, results
  for (kind, inputs), agreement in results.items():
    if kind in FLOAT_SOFTMAX_OF:
      assert agreement >= results[FLOAT_SOFTMAX_OF[kind], inputs], results


@NEEDS_TF2
def test_export_stops_when_an_op_cannot_be_integer(tmp_path, monkeypatch):
  """An activation without an int8 kernel (here cos) is named, and no file is
  written under an int8 name (nor any other: the export is all or nothing)."""
  config_dict = dict(_small_config(), hidden_act="gelu")
  monkeypatch.setattr(modeling, "gelu", lambda x: x * tf.cos(x))
  rng = np.random.RandomState(13)
  prefix, _ = _write_checkpoint(config_dict, str(tmp_path), rng)
  export_dir = tmp_path / "export"
  with pytest.raises(tflite_conversion.IntegerExportError,
                     match=r"int8 model would compute in float32 .*COS -> "
                           r"bert/encoder/layer_0/"):
    export_tflite.export(
        modeling.BertConfig.from_dict(config_dict), prefix, str(export_dir),
        SEQ, kinds=("float", "dynamic_range", "int8"),
        calibration_features=_features(rng, 4, config_dict["vocab_size"]))
  assert os.listdir(str(export_dir)) == []


CONTEXT_QUANTIZER = ("bert/encoder/layer_0/attention/self/"
                     "MobileBertActFakeQuantWithMinMaxVars_3")
OUTPUT_DENSE_INPUT_QUANTIZER = ("bert/encoder/layer_0/attention/output/dense/"
                                "MobileBertActFakeQuantWithMinMaxVars")


@pytest.fixture(scope="module")
def qat_export(tmp_path_factory):
  """A QAT checkpoint (ranges from one training pass) exported to int8."""
  if not tf_compat.IS_TF2:
    pytest.skip("QAT integer export needs TF 2.15")
  root = tmp_path_factory.mktemp("qat_export")
  rng = np.random.RandomState(2)
  # One layer: QAT graphs are slow to build and convert.
  config_dict = dict(_small_config(qat=True), num_hidden_layers=1)
  calibration = _features(rng, CALIBRATION_FEATURES, config_dict["vocab_size"],
                          min_length=8)
  # The attention output layer's input quantizer reads the context
  # quantizer's output.  After real QAT its range sits inside the context's
  # (it follows values already clipped there); half the range makes its
  # clipping matter.
  prefix, weights = _write_checkpoint(
      config_dict, str(root), rng, qat=True, calibration=calibration,
      narrowed_quantizers=[OUTPUT_DENSE_INPUT_QUANTIZER])
  paths = export_tflite.export(
      modeling.BertConfig.from_dict(config_dict), prefix, str(root / "export"),
      SEQ, kinds=("float", "qat_int8", "qat_int8_float_softmax"),
      use_quantized_training=True, calibration_features=calibration)
  tests = _features(np.random.RandomState(3), 4, config_dict["vocab_size"])
  return {"paths": paths, "prefix": prefix, "config": config_dict,
          "weights": weights, "features": tests, "root": root,
          "calibration": calibration}


def test_command_line_classifier_export(float_export, tmp_path):
  config_dict = float_export["config"]
  config_file = str(tmp_path / "config.json")
  with open(config_file, "w") as f:
    json.dump(config_dict, f)
  prefix, weights = _write_checkpoint(config_dict, str(tmp_path),
                                      np.random.RandomState(6), num_labels=3)
  export_dir = str(tmp_path / "export")
  _, output = script_helpers.run_script("export_tflite.py", [
      "--bert_config_file=" + config_file,
      "--init_checkpoint=" + prefix + ".index", "--export_dir=" + export_dir,
      "--max_seq_length=%d" % SEQ, "--task=classifier", "--num_labels=3"])
  # No --vocab_file: the log says why the file has no metadata.
  assert ("TF-Lite metadata skipped: no vocab_file or spm_model_file to "
          "embed.") in output
  assert sorted(os.listdir(export_dir)) == ["model_float.tflite",
                                            "saved_model"]
  lite_model = tflite_runner.LiteModel(
      os.path.join(export_dir, "model_float.tflite"))
  assert lite_model.output_names == ["probabilities"]
  for feature in float_export["features"][:2]:
    got = lite_model.run(feature["input_ids"], feature["input_mask"],
                         feature["segment_ids"])["probabilities"]
    # No pooler (classifier_activation false): the raw [CLS] state.
    expected = numpy_mobilebert.classifier_probabilities(
        config_dict, weights, np.array([feature["input_ids"]]),
        np.array([feature["input_mask"]]), np.array([feature["segment_ids"]]))
    assert got.shape == (1, 3)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def _write_feature_records(path, features):
  """A TFRecord of features as run_squad caches them (plus unique_ids)."""
  with tf.python_io.TFRecordWriter(path) as writer:
    for index, feature in enumerate(features):
      values = dict(feature, unique_ids=[1000000000 + index])
      example = tf.train.Example(features=tf.train.Features(feature={
          name: tf.train.Feature(int64_list=tf.train.Int64List(value=value))
          for name, value in values.items()}))
      writer.write(example.SerializeToString())


def test_command_line_squad_integer_export(float_export, tmp_path):
  """The README's export_tflite.py command for the calibrated integer file
  and its float-softmax twin: --use_post_quantization
  --activation_quantization --float_softmax --representative_file
  --vocab_file.  On TF 2.15 every file is written, the float one computes
  the numpy MobileBERT's logits and the quantized ones exactly those of
  export()'s files from the same checkpoint and calibration records; on TF
  1.15 the command stops in one line before any graph, naming the runtime
  it needs."""
  config_dict = float_export["config"]
  config_file = str(tmp_path / "config.json")
  with open(config_file, "w") as f:
    json.dump(config_dict, f)
  records = str(tmp_path / "train.tf_record")
  _write_feature_records(records, float_export["calibration"])
  vocab = str(tmp_path / "vocab.txt")
  _qa_vocab(vocab, config_dict["vocab_size"])
  export_dir = str(tmp_path / "export")
  args = ["--bert_config_file=" + config_file,
          "--init_checkpoint=" + float_export["prefix"],
          "--vocab_file=" + vocab, "--export_dir=" + export_dir,
          "--max_seq_length=%d" % SEQ, "--use_post_quantization",
          "--activation_quantization", "--float_softmax",
          "--representative_file=" + records]
  if not tf_compat.IS_TF2:
    code, output = script_helpers.run_script("export_tflite.py", args,
                                             expect_success=False)
    assert code == 1 and "Traceback" not in output, output[-3000:]
    last = script_helpers.last_line(output)
    assert last.startswith("export_tflite.py: ") and "TF 2.15" in last, last
    assert not os.path.exists(export_dir)
    return
  _, output = script_helpers.run_script("export_tflite.py", args)
  assert sorted(os.listdir(export_dir)) == [
      "model_dynamic_range.tflite", "model_float.tflite",
      "model_int8.tflite", "model_int8_float_softmax.tflite", "saved_model"]
  assert "int8_float_softmax model: %d attention softmaxes moved to " \
         "float32" % config_dict["num_hidden_layers"] in output
  float_model = tflite_runner.LiteModel(
      os.path.join(export_dir, "model_float.tflite"))
  assert _max_abs_diff(float_model, float_export["features"],
                       float_export["references"]) < 1e-4
  # Same checkpoint, same calibration features: the quantized files compute
  # what export()'s own files of the fixture compute (each checked against
  # the numpy model in the tests above), to the last bit.
  for kind in ("dynamic_range", "int8", "int8_float_softmax"):
    written = tflite_runner.LiteModel(
        os.path.join(export_dir, export_tflite.TFLITE_FILES[kind]))
    reference = tflite_runner.LiteModel(float_export["paths"][kind])
    for feature in float_export["features"]:
      args = (feature["input_ids"], feature["input_mask"],
              feature["segment_ids"])
      got, expected = written.run(*args), reference.run(*args)
      for name in ("start_logits", "end_logits"):
        np.testing.assert_array_equal(got[name], expected[name],
                                      err_msg=kind)


def test_command_line_bad_input_ends_in_one_line(float_export, tmp_path):
  """export_tflite.py refuses a damaged checkpoint, a config that does not
  fit it and an export directory that cannot exist, with one line each and
  before writing anything."""
  config_dict = float_export["config"]
  config_file = str(tmp_path / "config.json")
  with open(config_file, "w") as f:
    json.dump(config_dict, f)
  wide_file = str(tmp_path / "wide.json")
  with open(wide_file, "w") as f:
    json.dump(dict(config_dict, intermediate_size=48), f)
  damaged = script_helpers.copy_checkpoint(float_export["prefix"],
                                           str(tmp_path / "damaged"))
  script_helpers.damage_file(damaged + ".data-00000-of-00001")
  open(str(tmp_path / "a_file"), "w").close()
  export_dir = str(tmp_path / "export")
  cases = [
      (["--bert_config_file=" + config_file, "--init_checkpoint=" + damaged,
        "--export_dir=" + export_dir], ["is damaged", damaged]),
      (["--bert_config_file=" + wide_file,
        "--init_checkpoint=" + float_export["prefix"],
        "--export_dir=" + export_dir],
       ["intermediate/dense/bias", "[%d]" % config_dict["intermediate_size"],
        "[48]"]),
      (["--bert_config_file=" + config_file,
        "--init_checkpoint=" + float_export["prefix"],
        "--export_dir=" + str(tmp_path / "a_file" / "export")],
       ["--export_dir=", "a_file is a file"]),
  ]
  script_helpers.check_refusals("export_tflite", [
      (args + ["--max_seq_length=%d" % SEQ], wanted) for args, wanted in cases])
  assert not os.path.exists(export_dir)


@NEEDS_TF2
def test_qat_export_files(qat_export):
  assert set(qat_export["paths"]) == {"saved_model", "float", "qat_int8",
                                      "qat_int8_float_softmax"}
  assert os.path.basename(qat_export["paths"]["qat_int8"]) == (
      "model_qat_int8.tflite")
  assert os.path.basename(qat_export["paths"]["qat_int8_float_softmax"]) == (
      "model_qat_int8_float_softmax.tflite")


def _learned_range(prefix, scope):
  reader = tf.train.load_checkpoint(prefix)
  return reader.get_tensor(scope + "/min"), reader.get_tensor(scope + "/max")


def _dense_input_scale(path, layer):
  """The input scale of the FULLY_CONNECTED of dense layer `layer` (scope)."""
  interpreter = tf.lite.Interpreter(model_path=path)
  tensors = interpreter.get_tensor_details()
  scales = [tensors[op["inputs"][0]]["quantization"][0]
            for op in interpreter._get_ops_details()  # pylint: disable=protected-access
            if op["op_name"] == "FULLY_CONNECTED" and
            layer + "/MatMul" in tensors[op["outputs"][0]]["name"]]
  assert len(scales) == 1, (layer, scales)
  return scales[0]


def _fake_quant_scale(learned):
  """fake_quant's step: 256 levels over [min, max] (nudged to hold 0)."""
  return (learned[1] - learned[0]) / 255.0


@NEEDS_TF2
def test_qat_integer_model_keeps_the_learned_ranges(qat_export):
  """Calibration fills in only what QAT learns no range for: a tensor behind
  a fake-quant node keeps the node's range (docs/quantization_and_export.md
  2: the value projection's input has one,
  `.../attention/self/value/MobileBertActFakeQuantWithMinMaxVars`)."""
  layer = "bert/encoder/layer_0/attention/self/value"
  expected = _fake_quant_scale(_learned_range(
      qat_export["prefix"], layer + "/MobileBertActFakeQuantWithMinMaxVars"))
  scale = _dense_input_scale(qat_export["paths"]["qat_int8"], layer)
  assert abs(scale - expected) < 1e-3 * expected


@NEEDS_TF2
def test_qat_integer_context_clips_where_the_output_layer_learned(qat_export):
  """The context P.V is quantized twice in the QAT graph, by the context's
  quantizer and then by the output layer's input quantizer; an int8 tensor
  has one range, and it must be the narrower learned one, which clips as
  the trained graph does (docs/quantization_and_export.md, section 4)."""
  context = _learned_range(qat_export["prefix"], CONTEXT_QUANTIZER)
  dense_input = _learned_range(qat_export["prefix"],
                               OUTPUT_DENSE_INPUT_QUANTIZER)
  assert dense_input[1] - dense_input[0] < 0.6 * (context[1] - context[0])
  scale = _dense_input_scale(qat_export["paths"]["qat_int8"],
                             "bert/encoder/layer_0/attention/output/dense")
  assert abs(scale - _fake_quant_scale(dense_input)) < (
      1e-3 * _fake_quant_scale(dense_input))


@NEEDS_TF2
def test_qat_integer_model_matches_its_fake_quant_graph(qat_export):
  """The integer file computes the fake-quant graph up to its own roundings:
  every logit within ROUNDING_SIGMAS sigma of the rounding model of
  tests/rounding_model.py.  (Measured: at most 3.0 sigma, sigma at most
  0.023 for logits up to 1.8; Intel Xeon, AVX-512 VNNI.  NoNorm constants
  written 5% off give 7 sigma, where 10% of the largest logit, the bound
  this replaced, held.)"""
  path = qat_export["paths"]["qat_int8"]
  model = tflite_runner.LiteModel(path)
  for feature, (expected, sigma, _) in zip(
      qat_export["features"], rounding_model.qat_squad_logits_and_bounds(
          qat_export["config"], qat_export["prefix"], qat_export["features"],
          SEQ, tflite_path=path)):
    got = model.run(feature["input_ids"], feature["input_mask"],
                    feature["segment_ids"])
    got = np.concatenate([got["start_logits"][0], got["end_logits"][0]])
    deviation = np.abs(got - expected) / sigma
    assert np.all(deviation < rounding_model.ROUNDING_SIGMAS), deviation


def test_qat_export_of_a_float_checkpoint_names_the_problem(float_export,
                                                            tmp_path):
  config = modeling.BertConfig.from_dict(_small_config(qat=True))
  with pytest.raises(ValueError, match="no quantization ranges"):
    export_tflite.export(config, float_export["prefix"], str(tmp_path), SEQ,
                         use_quantized_training=True)
  assert not os.listdir(str(tmp_path))


# The seed README's export flags (use_quantized_training,
# use_post_quantization, activation_quantization, float_softmax) and the
# files they ask for.
FLAG_KINDS = [
    ((False, False, False, False), ("float",)),
    ((False, True, False, False), ("float", "dynamic_range")),
    ((False, True, True, False), ("float", "dynamic_range", "int8")),
    ((False, True, True, True),
     ("float", "dynamic_range", "int8", "int8_float_softmax")),
    ((True, False, False, False), ("float",)),
    ((True, True, False, False), ("float", "qat_int8")),
    ((True, True, True, False), ("float", "qat_int8")),
    ((True, True, False, True), ("float", "qat_int8",
                                 "qat_int8_float_softmax")),
]


@pytest.mark.parametrize("flags,kinds", FLAG_KINDS)
def test_file_kinds_decode_the_export_flags(flags, kinds):
  """Integer kinds need TF 2.15's converter: refused on TF 1.15 by name."""
  if tf_compat.IS_TF2 or not export_tflite.needs_calibration(kinds):
    assert export_tflite.file_kinds(*flags) == kinds
  else:
    with pytest.raises(ValueError, match="TF 2.15"):
      export_tflite.file_kinds(*flags)


def test_file_kinds_refuse_flags_that_ask_for_nothing():
  with pytest.raises(ValueError, match="--use_post_quantization"):
    export_tflite.file_kinds(False, False, True)
  # A float-softmax file is a variant of an integer one: not without it.
  for qat, post, activation in ((False, False, False), (False, True, False),
                                (True, False, False)):
    with pytest.raises(ValueError, match="--float_softmax .* needs one"):
      export_tflite.file_kinds(qat, post, activation, float_softmax=True)


def test_export_refuses_kinds_it_cannot_write_together(float_export,
                                                        tmp_path):
  config = modeling.BertConfig.from_dict(float_export["config"])
  cases = [
      (("float", "int4"), False, "Unknown TF-Lite kinds"),
      (("dynamic_range",), False, "lack \"float\""),
      (("float", "int8_float_softmax"), False, "made from int8"),
      (("float", "qat_int8"), False, "qat_int8 needs use_quantized_training"),
      (("float", "int8"), True, "made from a float checkpoint"),
  ]
  for kinds, qat, message in cases:
    with pytest.raises(ValueError, match=message):
      export_tflite.export(config, float_export["prefix"], str(tmp_path), SEQ,
                           kinds=kinds, use_quantized_training=qat)
  assert not os.listdir(str(tmp_path))


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
    with pytest.raises(ValueError, match="calibration_features"):
      export_tflite.export(config, prefix, str(tmp_path), SEQ,
                           kinds=("float", "dynamic_range", "int8"))
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
        float_export["prefix"], export_dir, SEQ,
        kinds=("float", "dynamic_range"))
  after = {}
  for dirpath, _, filenames in os.walk(export_dir):
    for filename in filenames:
      path = os.path.join(dirpath, filename)
      with open(path, "rb") as f:
        after[path] = f.read()
  assert after == before


def test_new_export_replaces_every_file_of_an_earlier_one(float_export,
                                                         tmp_path):
  """A float-only export over an earlier full one leaves no stale model of
  the kinds it does not write, and leaves other files alone."""
  export_dir = str(tmp_path / "export")
  shutil.copytree(str(float_export["root"] / "export"), export_dir)
  with open(os.path.join(export_dir, "notes.txt"), "w") as f:
    f.write("mine")
  earlier = os.path.getmtime(os.path.join(export_dir, "model_float.tflite"))
  paths = export_tflite.export(
      modeling.BertConfig.from_dict(float_export["config"]),
      float_export["prefix"], export_dir, SEQ)
  assert sorted(os.listdir(export_dir)) == ["model_float.tflite", "notes.txt",
                                            "saved_model"]
  assert os.path.getmtime(paths["float"]) >= earlier
  lite_model = tflite_runner.LiteModel(paths["float"])
  assert _max_abs_diff(lite_model, float_export["features"],
                       float_export["references"]) < 1e-4


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
  lite_model = tflite_runner.LiteModel(path)
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


def _answer_token_weights(answer_id, config_dict, rng, score):
  """Random weights (`_random_value`) plus one token the model answers with.

  Token `answer_id` alone has embedding feature 0 equal to `score`, the
  projection copies the current token's feature 0 to hidden unit 0 (rows
  embedding_size..2*embedding_size-1 act on the current token), and the
  SQuAD head (or classifier) reads unit 0 with weight 1.  The random blocks
  perturb that signal, as a trained model's other features would, without
  drowning it: the residual paths carry the embedding through
  (docs/architecture.md, section 3).
  """
  embedding_size = config_dict["embedding_size"]

  def values(name, shape):
    value = _random_value(name, shape, rng)
    if name == "bert/embeddings/word_embeddings":
      value[:, 0] = 0.0
      value[answer_id, 0] = score
    elif name == "bert/embeddings/embedding_transformation/kernel":
      value[:, 0] = 0.0
      value[embedding_size, 0] = 1.0
    elif name in ("cls/squad/output_weights", "output_weights"):
      value[:, 0] = 1.0
    elif name in ("cls/squad/output_bias", "output_bias"):
      value[:] = 0.0
    return value
  return values


def _task_library():
  """tflite-support's metadata module, or skip (fail under CI) with why.

  tflite-support belongs to the TF 2.15 runtime (Python 3.9-3.11); on TF
  1.15 the tests that need it are always skipped.
  """
  if not tf_compat.IS_TF2:
    pytest.skip("tflite-support is installed with the TF 2.15 runtime only")
  metadata, reason = _metadata_modules()
  if metadata is None:
    _skip_or_fail_under_ci("tflite-support is not installed in this runtime "
                           "(requirements-metadata.txt): %s" % reason)
  return metadata


def _skip_or_fail_under_ci(reason):
  """CI's runtime must have what the test needs (make test installs it);
  elsewhere a missing piece is a skip with its reason."""
  if os.environ.get("CI") == "true":
    pytest.fail(reason)
  pytest.skip(reason)


# Runs Task Library models in a process without TensorFlow (the Task runtime
# cannot share one with it; its metadata module imports TensorFlow when it
# can, so that import is blocked).  argv: a JSON list of [kind, path] pairs.
TASK_LIBRARY_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.modules["tensorflow"] = None
    from tflite_support.task import text
    context, question, sentence = sys.argv[2:5]
    results = {}
    for kind, path in json.loads(sys.argv[1]):
      if kind == "classifier":
        classifier = text.BertNLClassifier.create_from_file(path)
        categories = classifier.classify(sentence).classifications[0].categories
        results[kind] = sorted(c.score for c in categories)
      else:
        answerer = text.BertQuestionAnswerer.create_from_file(path)
        results[kind] = [a.text for a in answerer.answer(context,
                                                         question).answers]
    print(json.dumps({"results": results,
                      "tensorflow": sys.modules["tensorflow"] is not None}))
""")


def _run_task_library(models):
  # The Task runtime's generated protobuf code needs the pure-Python protobuf
  # backend under protobuf 4 (see requirements-fast-protobuf.txt).
  env = dict(os.environ, PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION="python")
  completed = subprocess.run(
      [sys.executable, "-c", TASK_LIBRARY_SCRIPT, json.dumps(models),
       QA_CONTEXT, QA_QUESTION, QA_CONTEXT],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300,
      check=False, env=env)
  stderr = completed.stderr.decode()
  if completed.returncode and "libusb" in stderr:
    _skip_or_fail_under_ci("the Task Library's native library needs "
                           "libusb-1.0 (apt-get install libusb-1.0-0): %s" %
                           stderr.strip().splitlines()[-1])
  assert completed.returncode == 0, stderr[-2000:]
  output = json.loads(completed.stdout.decode().strip().splitlines()[-1])
  assert not output["tensorflow"]
  return output["results"]


@NEEDS_TF2
def test_task_library_runs_every_exported_model(tmp_path):
  """BertQuestionAnswerer answers with the float, calibrated int8 and QAT
  int8 files and both float-softmax files, and BertNLClassifier runs the
  classifier export."""
  metadata = _task_library()
  # BertQuestionAnswerer (tflite-support 0.4.4) fills inputs of length 384.
  seq = 384
  vocab = str(tmp_path / "vocab.txt")
  models = []
  for qat in (False, True):
    config_dict = dict(_small_config(qat=qat), max_position_embeddings=seq)
    zebra_id = _qa_vocab(vocab, config_dict["vocab_size"])
    directory = tmp_path / ("qat" if qat else "float")
    directory.mkdir()
    calibration = [{name: values + [0] * (seq - SEQ)
                    for name, values in feature.items()}
                   for feature in _features(np.random.RandomState(5), 8,
                                            config_dict["vocab_size"])]
    prefix, _ = _write_checkpoint(
        config_dict, str(directory), None, qat=qat, calibration=calibration,
        values=_answer_token_weights(zebra_id, config_dict,
                                     np.random.RandomState(6), score=8.0),
        seq=seq)
    paths = export_tflite.export(
        modeling.BertConfig.from_dict(config_dict), prefix,
        str(directory / "export"), seq,
        kinds=export_tflite.file_kinds(
            use_quantized_training=qat, use_post_quantization=True,
            activation_quantization=True, float_softmax=True),
        use_quantized_training=qat, calibration_features=calibration,
        vocab_file=vocab)
    for kind in (("qat_int8", "qat_int8_float_softmax") if qat else
                 ("float", "int8", "int8_float_softmax")):
      models.append([kind, paths[kind]])
  classifier_dir = tmp_path / "classifier"
  classifier_dir.mkdir()
  config_dict = _small_config()
  prefix, _ = _write_checkpoint(
      config_dict, str(classifier_dir), None, num_labels=2,
      values=_answer_token_weights(
          _qa_vocab(vocab, config_dict["vocab_size"]), config_dict,
          np.random.RandomState(7), score=8.0))
  models.append(["classifier", export_tflite.export(
      modeling.BertConfig.from_dict(config_dict), prefix,
      str(classifier_dir / "export"), SEQ, task="classifier", num_labels=2,
      vocab_file=vocab)["float"]])

  for kind, path in models:
    displayer = metadata.MetadataDisplayer.with_model_file(path)
    subgraph = json.loads(displayer.get_metadata_json())[
        "subgraph_metadata"][0]
    assert sorted(t["name"] for t in subgraph["input_tensor_metadata"]) == [
        "ids", "mask", "segment_ids"], kind
    assert displayer.get_packed_associated_file_list() == ["vocab.txt"], kind
  results = _run_task_library(models)
  for kind in ("float", "int8", "qat_int8", "int8_float_softmax",
               "qat_int8_float_softmax"):
    assert results[kind] and results[kind][0] == "zebra", (kind, results)
  # BertNLClassifier's scores are the probabilities the file gives for the
  # sentence as our WordPiece tokenizer encodes it ([CLS] words [SEP],
  # padded to SEQ): the Task Library reads the metadata's vocabulary and
  # tensor names as we wrote them.
  import tokenization  # pylint: disable=g-import-not-at-top
  tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=True)
  ids = tokenizer.convert_tokens_to_ids(
      ["[CLS]"] + tokenizer.tokenize(QA_CONTEXT) + ["[SEP]"])
  expected = tflite_runner.LiteModel(models[-1][1]).run(
      ids + [0] * (SEQ - len(ids)), [1] * len(ids) + [0] * (SEQ - len(ids)),
      [0] * SEQ)["probabilities"][0]
  assert abs(expected[0] - expected[1]) > 0.01  # the order means something
  np.testing.assert_allclose(results["classifier"], sorted(expected),
                             atol=1e-5)


# Exports with a vocabulary in a process where tflite-support cannot be
# imported.  argv: config JSON, checkpoint prefix, export dir, vocab file,
# sequence length.
NO_TFLITE_SUPPORT_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.modules["tensorflow_lite_support"] = None
    import console
    import export_tflite, modeling
    config, prefix, export_dir, vocab, seq_length = sys.argv[1:6]
    console.setup()
    export_tflite.export(modeling.BertConfig.from_dict(json.loads(config)),
                         prefix, export_dir, int(seq_length), vocab_file=vocab)
""")


def test_export_without_tflite_support_says_metadata_was_skipped(
    float_export, tmp_path):
  """The README: without tflite-support the export still works and logs
  that metadata was skipped; the file it writes carries none."""
  vocab = str(tmp_path / "vocab.txt")
  _qa_vocab(vocab, float_export["config"]["vocab_size"])
  export_dir = str(tmp_path / "export")
  _, output = script_helpers.run_script(None, [
      "-c", NO_TFLITE_SUPPORT_SCRIPT, json.dumps(float_export["config"]),
      float_export["prefix"], export_dir, vocab, str(SEQ)])
  assert "TF-Lite metadata skipped: tflite-support is not importable" in (
      output), output[-3000:]
  assert "install requirements-metadata.txt" in output
  path = os.path.join(export_dir, "model_float.tflite")
  assert _io_types(path) == (["int32"] * 3, ["float32"] * 2)
  if tf_compat.IS_TF2 and _metadata_modules()[0] is not None:
    with pytest.raises(ValueError):
      _metadata_modules()[0].MetadataDisplayer.with_model_file(path)


def test_metadata_skipped_without_tokenizer_file(float_export):
  metadata = _task_library()
  # float_export passed no vocab_file: no metadata may be invented.
  with pytest.raises(ValueError):
    metadata.MetadataDisplayer.with_model_file(
        float_export["paths"]["float"])


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
  script_helpers.run_script("run_squad.py", common + [
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
    script_helpers.run_script("run_squad.py", common + ["--output_dir=" + runs[kind],
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
    # The integer-export goal: EM and F1 within 1 point of the float file.
    for metric in ("exact_match", "f1"):
      assert abs(results["int8"][metric] - results["float"][metric]) <= 1.0


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


def _xnnpack_ratio_violations(path):
  """Ops of an int8 file outside XNNPACK's scale-ratio limits, computed here
  from the file's own quantization parameters (the limits of XNNPACK's int8
  FULLY_CONNECTED / BATCH_MATMUL, MUL and ADD operators)."""
  interpreter = tf.lite.Interpreter(model_path=path)
  details = {d["index"]: d for d in interpreter.get_tensor_details()}

  def scale(index):
    scales = details[index]["quantization_parameters"]["scales"]
    return float(np.max(scales)) if len(scales) else None

  violations = []
  for op in interpreter._get_ops_details():  # pylint: disable=protected-access
    inputs = [i for i in op["inputs"] if i >= 0]
    out = scale(op["outputs"][0])
    if out is None or any(scale(i) is None for i in inputs[:2]):
      continue
    name = op["op_name"]
    if name in ("FULLY_CONNECTED", "BATCH_MATMUL", "MUL"):
      ratio = scale(inputs[0]) * scale(inputs[1]) / out
      low = 2.0 ** -16 if name == "MUL" else 2.0 ** -32
      if not low <= ratio < 256.0:
        violations.append((name, ratio))
    elif name in ("ADD", "SUB"):
      for index in inputs[:2]:
        if not 2.0 ** -10 <= scale(index) / out < 256.0:
          violations.append((name, scale(index) / out))
  return violations


@NEEDS_TF2
def test_int8_export_with_dead_units_still_runs_on_xnnpack(tmp_path):
  """Short training can leave a layer whose FFN never fires and whose
  attention scores are ~0; their calibrated ranges are almost empty.  The
  integer file must still satisfy XNNPACK's ratio limits (LiteRT otherwise
  cannot create the delegate at all) and give the float file's logits."""
  rng = np.random.RandomState(5)
  config_dict = _small_config()

  def values(name, shape):
    value = _random_value(name, shape, rng)
    if name == "bert/encoder/layer_1/ffn_layer_0/intermediate/dense/bias":
      return np.full(shape, -50.0)      # ReLU never fires
    if name.startswith("bert/encoder/layer_0/attention/self/query/"):
      return value * 1e-6               # scores ~0 in layer 0
    return value

  prefix, weights = _write_checkpoint(config_dict, str(tmp_path), rng,
                                      values=values)
  calibration = _features(rng, CALIBRATION_FEATURES,
                          config_dict["vocab_size"], min_length=8)
  paths = export_tflite.export(
      modeling.BertConfig.from_dict(config_dict), prefix, str(tmp_path / "x"),
      SEQ, kinds=("float", "dynamic_range", "int8"),
      calibration_features=calibration)
  assert _xnnpack_ratio_violations(paths["int8"]) == []
  tests = _features(np.random.RandomState(6), 4, config_dict["vocab_size"])
  references = [numpy_squad_logits(config_dict, weights, f) for f in tests]
  scale = max(np.abs(r[name]).max() for r in references
              for name in ("start_logits", "end_logits"))
  model = tflite_runner.LiteModel(paths["int8"])
  if importlib.util.find_spec("ai_edge_litert") is not None:
    assert model.runtime.startswith("LiteRT ")
  assert _max_abs_diff(model, tests, references) < 0.1 * scale
