"""Tests for tflite_flatbuffer.py on small models built here.

Each test converts a few ops with TF 2.15's converter (full integer, float
I/O), edits the file with the function under test, and checks the edit
against values computed here from the unedited file: scales, zero points and
bias values by hand, the float softmax with numpy.  The files are read back
with TF-Lite's own interpreter, not with tflite_flatbuffer's reader.
"""

import collections

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import tf_compat
import tflite_flatbuffer

pytestmark = pytest.mark.skipif(
    not tf_compat.IS_TF2,
    reason="reading and editing .tflite files needs TF 2.15's schema module")

HEADS, LENGTH = 2, 6


def _integer_model(function, input_shapes, seed=0, scale=3.0):
  """Bytes of `function` converted to int8 ops, int8 inputs and outputs.

  Calibrated on 16 normal samples times `scale`.
  """
  rng = np.random.RandomState(seed)
  graph = tf.Graph()
  with graph.as_default():
    placeholders = [tf.placeholder(tf.float32, shape) for shape in input_shapes]
    outputs = function(*placeholders)
    outputs = list(outputs) if isinstance(outputs, tuple) else [outputs]
    with tf.Session(graph=graph) as session:
      converter = tf.lite.TFLiteConverter.from_session(session, placeholders,
                                                       outputs)
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]

  def samples():
    for _ in range(16):
      yield [(scale * rng.randn(*shape)).astype(np.float32)
             for shape in input_shapes]

  converter.representative_dataset = samples
  converter.inference_input_type = converter.inference_output_type = tf.int8
  return bytes(converter.convert())


def _interpreter(model):
  interpreter = tf.lite.Interpreter(
      model_content=model, experimental_preserve_all_tensors=True,
      experimental_op_resolver_type=(
          tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
  interpreter.allocate_tensors()
  return interpreter


def _ops(interpreter):
  """[(op name, input tensor details, output tensor details)] in order."""
  tensors = interpreter.get_tensor_details()
  return [(op["op_name"], [tensors[i] for i in op["inputs"] if i >= 0],
           [tensors[i] for i in op["outputs"]])
          for op in interpreter._get_ops_details()]  # pylint: disable=protected-access


def _run(interpreter, *values):
  """Invokes the model on float values, quantized to its int8 inputs."""
  for detail, value in zip(interpreter.get_input_details(), values):
    scale, zero_point = detail["quantization"]
    interpreter.set_tensor(detail["index"], np.clip(
        np.round(value / scale) + zero_point, -128, 127).astype(np.int8))
  interpreter.invoke()


def _attention(scores, head_logits):
  """A rank-4 softmax over scores and a rank-2 one (a classifier head's)."""
  return (tf.nn.softmax(scores * 1.5, axis=-1),
          tf.nn.softmax(head_logits, axis=-1))


def _attention_model():
  return _integer_model(_attention, [[1, HEADS, LENGTH, LENGTH], [1, 3]])


def test_float_softmax_moves_only_the_attention_softmax():
  model, moved, clamps = tflite_flatbuffer.float_attention_softmax(
      _attention_model())
  assert (moved, clamps) == (1, 0)
  ops = _ops(_interpreter(model))
  softmaxes = [(np.dtype(inputs[0]["dtype"]).name, len(inputs[0]["shape"]))
               for name, inputs, _ in ops if name == "SOFTMAX"]
  assert sorted(softmaxes) == [("float32", 4), ("int8", 2)]
  (position,) = [i for i, (name, inputs, _) in enumerate(ops)
                  if name == "SOFTMAX" and len(inputs[0]["shape"]) == 4]
  softmax = ops[position]
  before, after = ops[position - 1], ops[position + 1]
  assert before[0] == "DEQUANTIZE" and after[0] == "QUANTIZE"
  assert before[2][0]["index"] == softmax[1][0]["index"]
  assert after[1][0]["index"] == softmax[2][0]["index"]
  assert np.dtype(before[1][0]["dtype"]).name == "int8"
  assert np.dtype(after[2][0]["dtype"]).name == "int8"
  assert after[2][0]["quantization"] == (1.0 / 256, -128)


def test_float_softmax_computes_the_softmax_of_the_int8_scores():
  """The int8 probabilities are round(softmax(dequantized scores) * 256) -
  128, computed here with numpy from the scores the file computes."""
  interpreter = _interpreter(
      tflite_flatbuffer.float_attention_softmax(_attention_model())[0])
  ops = _ops(interpreter)
  (_, scores, _), = [op for op in ops if op[0] == "DEQUANTIZE" and
                     len(op[1][0]["shape"]) == 4]
  (_, _, probabilities), = [op for op in ops if op[0] == "QUANTIZE" and
                            np.dtype(op[1][0]["dtype"]).name == "float32"
                            and len(op[1][0]["shape"]) == 4]
  rng = np.random.RandomState(1)
  exact = total = 0
  for _ in range(4):
    _run(interpreter,
         (3 * rng.randn(1, HEADS, LENGTH, LENGTH)).astype(np.float32),
         rng.randn(1, 3).astype(np.float32))
    scale, zero_point = scores[0]["quantization"]
    real = (interpreter.get_tensor(scores[0]["index"]).astype(np.float64) -
            zero_point) * scale
    expected = np.exp(real - real.max(axis=-1, keepdims=True))
    expected /= expected.sum(axis=-1, keepdims=True)
    expected_int8 = np.clip(np.round(expected * 256) - 128, -128, 127)
    got = interpreter.get_tensor(probabilities[0]["index"])
    # float32 arithmetic may land across a rounding tie: one step at most.
    assert np.abs(got - expected_int8).max() <= 1
    exact += np.sum(got == expected_int8)
    total += got.size
  assert exact >= 0.98 * total


def test_float_compute_ops_allows_exactly_the_softmax_island():
  integer = _attention_model()
  assert tflite_flatbuffer.float_compute_ops(integer) == []
  edited = tflite_flatbuffer.float_attention_softmax(integer)[0]
  assert tflite_flatbuffer.float_compute_ops(edited, float_softmax=True) == []
  # Read as an integer-only file, the island is float compute.
  listed = tflite_flatbuffer.float_compute_ops(edited)
  assert sorted(text.split()[0] for text in listed) == ["QUANTIZE", "SOFTMAX"]


def test_float_compute_ops_names_a_float_op_outside_the_island():
  """A model computing in float (no int8 conversion) is listed op by op,
  float softmax allowed or not."""
  graph = tf.Graph()
  with graph.as_default():
    scores = tf.placeholder(tf.float32, [1, HEADS, LENGTH, LENGTH])
    probabilities = tf.nn.softmax(tf.cos(scores), axis=-1)
    with tf.Session(graph=graph) as session:
      model = tf.lite.TFLiteConverter.from_session(
          session, [scores], [probabilities]).convert()
  listed = tflite_flatbuffer.float_compute_ops(model, float_softmax=True)
  # The SOFTMAX reads a COS, not a DEQUANTIZE: not an island.
  assert sorted(text.split()[0] for text in listed) == ["COS", "SOFTMAX"]


def _clipped_attention(low, high):
  def function(scores):
    return tf.nn.softmax(tf.clip_by_value(scores, low, high), axis=-1)
  return function


@pytest.mark.parametrize("low,high,kept", [(-6.0, 60.0, []),
                                           (-0.5, 0.5, ["MINIMUM"])])
def test_score_clamps_left_out_only_where_they_change_nothing(low, high,
                                                              kept):
  """The converter gives a clip's operand, constant and output the clipped
  range.  Scores calibrated within about [-3, 3] and clipped to [-6, 60]:
  both constants sit at the int8 ends (127, -128), both clamps are
  identities and are left out.  Clipped to [-0.5, 0.5] (scale 1/255, zero
  point -1): 0.5 is 126, a real clamp that stays; -0.5 is -128, an identity
  left out.  Either way the edited file gives the integer file's
  probabilities up to the softmax's own rounding (one step of 1/256)."""
  integer = _integer_model(_clipped_attention(low, high),
                           [[1, HEADS, LENGTH, LENGTH]], scale=1.0)
  clamps = [op for op in _ops(_interpreter(integer))
            if op[0] in ("MINIMUM", "MAXIMUM")]
  assert len(clamps) == 2
  edited, moved, removed = tflite_flatbuffer.float_attention_softmax(integer)
  assert (moved, removed) == (1, 2 - len(kept))
  assert [op[0] for op in _ops(_interpreter(edited))
          if op[0] in ("MINIMUM", "MAXIMUM")] == kept
  rng = np.random.RandomState(2)
  models = [_interpreter(integer), _interpreter(edited)]
  for _ in range(3):
    scores = rng.randn(1, HEADS, LENGTH, LENGTH).astype(np.float32)
    outputs = []
    for interpreter in models:
      _run(interpreter, scores)
      outputs.append(interpreter.get_tensor(
          interpreter.get_output_details()[0]["index"]).astype(np.int32))
    assert np.abs(outputs[0] - outputs[1]).max() <= 1


def test_identity_clamp_read_elsewhere_too_stays():
  """A clamp whose output also feeds another op is kept, identity or not:
  that op still needs its input written."""
  def clipped_twice_read(scores):
    clipped = tf.clip_by_value(scores, -6.0, 60.0)
    return tf.nn.softmax(clipped, axis=-1), clipped + 1.0

  integer = _integer_model(clipped_twice_read, [[1, HEADS, LENGTH, LENGTH]],
                           scale=1.0)
  edited, moved, removed = tflite_flatbuffer.float_attention_softmax(integer)
  assert (moved, removed) == (1, 0)
  assert sorted(op[0] for op in _ops(_interpreter(edited))
                if op[0] in ("MINIMUM", "MAXIMUM")) == ["MAXIMUM", "MINIMUM"]


def _dense_and_matmul(x, y):
  """A dense layer with a bias, and a matmul whose second operand (y + 1)
  is not centred on zero."""
  kernel = tf.constant(np.random.RandomState(3).randn(8, 8).astype(np.float32))
  bias = tf.constant(np.linspace(-1, 1, 8).astype(np.float32))
  hidden = tf.matmul(x, kernel) + bias
  return tf.matmul(tf.reshape(hidden, [1, 4, 4]), y + 1.0)


def _by_name(interpreter):
  return {t["name"]: t for t in interpreter.get_tensor_details()}


def test_matmul_second_operand_made_symmetric():
  """Zero point 0 and scale max(|min|, |max|) / 127 of the range the
  converter gave it (section 5 of docs/quantization_and_export.md)."""
  integer = _integer_model(_dense_and_matmul, [[2, 8], [1, 4, 3]])
  (_, inputs, _), = [op for op in _ops(_interpreter(integer))
                     if op[0] == "BATCH_MATMUL"]
  scale, zero_point = inputs[1]["quantization"]
  assert zero_point != 0  # The edit has something to do.
  low, high = (-128 - zero_point) * scale, (127 - zero_point) * scale
  edited, _, num_symmetric, _ = (
      tflite_flatbuffer.runtime_compatible_quantization(integer))
  assert num_symmetric == 1
  edited_tensors = _by_name(_interpreter(edited))
  new_scale, new_zero_point = edited_tensors[inputs[1]["name"]][
      "quantization"]
  assert new_zero_point == 0
  assert new_scale == pytest.approx(max(abs(low), abs(high)) / 127, rel=1e-6)


def test_bias_in_another_unit_re_expressed():
  """A dense bias written at twice its accumulator unit (values halved) is
  given input scale x filter scale again, its values re-rounded from the
  real values it encodes: round(values x written scale / unit)."""
  schema = pytest.importorskip("tensorflow.lite.python.schema_py_generated")
  import flatbuffers  # pylint: disable=g-import-not-at-top
  integer = _integer_model(_dense_and_matmul, [[2, 8], [1, 4, 3]])
  (_, inputs, _), = [op for op in _ops(_interpreter(integer))
                     if op[0] == "FULLY_CONNECTED"]
  bias_name = inputs[2]["name"]
  unit = (inputs[0]["quantization_parameters"]["scales"][0] *
          inputs[1]["quantization_parameters"]["scales"])
  # Rewrite the bias in twice its unit with the schema module directly.
  model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(integer, 0))
  (bias,) = [t for t in model.subgraphs[0].tensors
             if t.name.decode() == bias_name]
  buffer = model.buffers[bias.buffer]
  original = np.frombuffer(bytes(bytearray(buffer.data)), dtype="<i4")
  halved = np.round(original / 2.0).astype("<i4")
  buffer.data = np.frombuffer(halved.tobytes(), dtype=np.uint8)
  bias.quantization.scale = [float(s) for s in 2 * unit]
  builder = flatbuffers.Builder(1024)
  builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
  skewed = bytes(builder.Output())

  edited, num_biases, _, _ = (
      tflite_flatbuffer.runtime_compatible_quantization(skewed))
  assert num_biases == 1
  interpreter = _interpreter(edited)
  edited_bias = _by_name(interpreter)[bias_name]
  np.testing.assert_allclose(
      edited_bias["quantization_parameters"]["scales"], unit, rtol=1e-6)
  values = interpreter.get_tensor(edited_bias["index"])
  np.testing.assert_array_equal(
      values, np.round(halved * (2 * unit) / unit).astype(np.int32))
  # The unedited file was in units already: nothing to re-express.
  assert tflite_flatbuffer.runtime_compatible_quantization(integer)[1] == 0


def test_op_table_counts_ops_by_dtype():
  rows = tflite_flatbuffer.op_table(
      tflite_flatbuffer.float_attention_softmax(_attention_model())[0])
  table = {(op, dtype): count for op, dtype, count in rows}
  interpreter_counts = collections.Counter(
      op[0] for op in _ops(_interpreter(_attention_model())))
  assert table[("SOFTMAX", "float32")] == 1
  assert table[("SOFTMAX", "int8")] == 1
  assert table[("QUANTIZE", "float32->int8")] >= 1
  assert sum(count for (op, _), count in table.items()
             if op == "SOFTMAX") == interpreter_counts["SOFTMAX"]
