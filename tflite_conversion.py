"""The TensorFlow side of the export: serving graph to TF-Lite bytes.

build_inference_graph builds the serving graph of a checkpoint (int32
inputs, named float outputs) and restore loads it, refusing any missing or
mismatched variable; float_models converts it to the float and
dynamic-range models; integer_model converts a fresh copy to an
integer-only model (calibrated, with the masked-key scores of
calibrate_masked_key_scores under the additive mask, the QAT ranges kept
and shared along chained quantizers by the graph freezing) and puts its
quantization in the form the int8 kernels read
(tflite_flatbuffer.runtime_compatible_quantization); with_float_softmax
derives the float-softmax file from it.  Every integer model is checked op
by op: an op computing in float32 where none may raises IntegerExportError
naming it.  write_saved_model writes the same graph as a SavedModel.

export_tflite.export() drives these in order; docs/quantization_and_export.md
explains the range choices.
"""

import collections
import contextlib
import os
import sys

import numpy as np
import tensorflow.compat.v1 as tf

import checkpoints
import console
import heads
import quantization
import tflite_flatbuffer
import tflite_runner

OUTPUT_NAMES = {
    "squad": ("start_logits", "end_logits"),
    "classifier": ("probabilities",),
}


@contextlib.contextmanager
def converter_on_path():
  """PATH holds python's bin directory inside the block, as before after it.

  TF 1.15's converter runs `toco_from_protos`, installed beside python, as a
  subprocess found through PATH; a venv's python may be run without its
  bin directory on PATH.
  """
  bin_dir = os.path.dirname(sys.executable)
  saved = os.environ.get("PATH")
  if bin_dir not in (saved or "").split(os.pathsep):
    os.environ["PATH"] = os.pathsep.join(p for p in (bin_dir, saved) if p)
  try:
    yield
  finally:
    if saved is None:
      os.environ.pop("PATH", None)
    else:
      os.environ["PATH"] = saved


def build_inference_graph(bert_config, max_seq_length, task, num_labels,
                           use_quantized_training, masked_key_scores=None):
  """Placeholders and named outputs of the serving graph (is_training=False).

  The int32 `input_mask` becomes the model's float mask through a lookup in
  the constant table [0, 1] rather than a cast: an integer model then reads
  it with an int8 GATHER, with no float step between the inputs and the
  first integer op.

  Args:
    masked_key_scores: see modeling.BertModel; the integer export passes
      the values of `calibrate_masked_key_scores`.

  Returns:
    (inputs, outputs, attention_maps): OrderedDicts name -> Tensor, inputs
    int32 [1, max_seq_length], outputs start_logits/end_logits [1, S] or
    probabilities [1, num_labels]; and the encoder's masked pre-softmax
    scores, one [1, heads, S, S] Tensor per layer.
  """
  inputs = collections.OrderedDict(
      (name, tf.placeholder(tf.int32, [1, max_seq_length], name=name))
      for name in tflite_runner.INPUT_NAMES)
  input_mask = tf.gather(tf.constant([0.0, 1.0]), inputs["input_mask"])
  # use_einsum=False: plain MatMul/BatchMatMul, which TF-Lite quantizes.
  model = heads.encoder(
      bert_config, False, inputs["input_ids"], input_mask,
      inputs["segment_ids"], use_einsum=False,
      use_quantized_training=use_quantized_training,
      masked_key_scores=masked_key_scores)
  if task == "squad":
    tensors = heads.squad_head(model)
  else:
    tensors = heads.classifier_head(model, False, num_labels)[1:]
  outputs = collections.OrderedDict(zip(OUTPUT_NAMES[task], tensors))
  for name, tensor in outputs.items():
    if tensor.op.name != name:
      raise ValueError("Export output %r came out named %r; the export graph "
                       "must be built in a fresh graph." %
                       (name, tensor.op.name))
  return inputs, outputs, model.get_all_attention_maps()


def restore(session, prefix, use_quantized_training):
  """Loads every graph variable from the checkpoint, checking names and shapes.

  Unlike fine-tuning initialisation, an export must not fall back to random
  values, so any missing variable is an error.

  Raises:
    ValueError: naming the checkpoint and the missing variables, or a
      variable whose shape differs (checkpoints.shape_mismatch).
  """
  stored_shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  missing = []
  for variable in tf.global_variables():
    name = variable.op.name
    shape = variable.shape.as_list()
    if name not in stored_shapes:
      missing.append(name)
    elif list(stored_shapes[name]) != shape:
      raise checkpoints.shape_mismatch(prefix, name, stored_shapes[name], name,
                                       shape)
  missing_ranges = [n for n in missing if quantization.is_range_variable(n)]
  if use_quantized_training and missing_ranges:
    raise ValueError(
        "Checkpoint %s has no quantization ranges (e.g. %s): "
        "--use_quantized_training export needs a checkpoint fine-tuned with "
        "--use_quantized_training." % (prefix, missing_ranges[0]))
  if missing:
    raise ValueError("Checkpoint %s lacks %d variables of the export graph, "
                     "e.g. %s (was it trained for this task?)." %
                     (prefix, len(missing), ", ".join(missing[:5])))
  tf.train.Saver(var_list=tf.global_variables()).restore(session, prefix)


def float_models(session, inputs, outputs, kinds):
  """Converts the session's graph to the float-activation models `kinds`.

  One converter (one frozen graph) serves both: dynamic-range only adds
  weight quantization to the float settings.

  Returns:
    OrderedDict kind -> model bytes.
  """
  converter = tf.lite.TFLiteConverter(
      _frozen_graph_def_with_merged_quantizers(session, outputs), list(inputs.values()),
      list(outputs.values()))
  models = collections.OrderedDict()
  for kind in kinds:
    tf.logging.info("Converting the %s TF-Lite model.", kind)
    if kind == "dynamic_range":
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
    with console.stderr_without(console.CONVERTER_NOISE):
      models[kind] = bytes(converter.convert())
  return models


def integer_model(kind, bert_config, prefix, max_seq_length, task, num_labels,
                  use_quantized_training, calibration_features,
                  masked_key_scores):
  """An integer-only TF-Lite model of the checkpoint.

  The converter is restricted to int8 builtins and calibrates every tensor on
  the calibration features; a QAT graph's fake-quant nodes keep their
  learned ranges, so there calibration only fills in the tensors the QAT
  scheme leaves without one (dense outputs into residual adds, the
  embeddings, the head).  With the additive mask, masked keys get
  `masked_key_scores` (see `calibrate_masked_key_scores`) instead of their
  own score minus 10000, and
  `tflite_flatbuffer.runtime_compatible_quantization` puts the
  quantization in the form the int8 kernels (XNNPACK's included) assume.

  Returns:
    Model bytes with int32 inputs, float32 outputs and nothing but integer
    compute in between.

  Raises:
    IntegerExportError: the converter cannot make some op integer, or the
      converted model still computes in float; names the op.
  """
  if masked_key_scores is not None:
    tf.logging.info("%s model: masked keys score %s (per layer) instead of "
                    "their own score minus 10000.", kind,
                    ", ".join("%.1f" % v for v in masked_key_scores))
  tf.logging.info("Converting the %s TF-Lite model (integer only, "
                  "calibrated on %d features).", kind,
                  len(calibration_features))
  graph = tf.Graph()
  with graph.as_default():
    inputs, outputs, _ = build_inference_graph(
        bert_config, max_seq_length, task, num_labels, use_quantized_training,
        masked_key_scores)
    with tf.Session(graph=graph) as session:
      restore(session, prefix, use_quantized_training)
      converter = tf.lite.TFLiteConverter(
          _frozen_graph_def_with_merged_quantizers(session, outputs), list(inputs.values()),
          list(outputs.values()))
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.representative_dataset = _representative_dataset(
      calibration_features)
  # No float fallback: an op without an int8 kernel is a conversion error.
  converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
  try:
    with console.stderr_without(console.CONVERTER_NOISE):
      model = bytes(converter.convert())
  except Exception as error:  # pylint: disable=broad-except
    raise IntegerExportError(
        "The %s model cannot be made integer-only: %s" %
        (kind, _converter_error_summary(error)))
  model, num_biases, num_symmetric, num_widened = (
      tflite_flatbuffer.runtime_compatible_quantization(model))
  tf.logging.info("%s model: %d dense biases re-expressed in input x filter "
                  "scale, %d matmul operands made symmetric and %d near-empty "
                  "scales widened for XNNPACK.", kind, num_biases,
                  num_symmetric, num_widened)
  _check_integer_compute(kind, model)
  return model


def with_float_softmax(kind, integer_bytes):
  """The integer model with its attention softmaxes in float32 (`kind`).

  Raises:
    IntegerExportError: the edited model computes in float32 anywhere but
      the attention softmax islands; names the op.
  """
  model, moved, clamps = tflite_flatbuffer.float_attention_softmax(
      integer_bytes)
  tf.logging.info("%s model: %d attention softmaxes moved to float32 "
                  "(DEQUANTIZE -> SOFTMAX -> QUANTIZE), %d score clamps that "
                  "change no int8 value left out.", kind, moved, clamps)
  _check_integer_compute(kind, model, float_softmax=True)
  return model


def _check_integer_compute(kind, model, float_softmax=False):
  """Raises IntegerExportError naming an op that computes in float32.

  Allowed in float32: the DEQUANTIZE of each output and, with
  `float_softmax`, the attention softmax islands.
  """
  # Compute ops first: they are what the message is about.
  float_ops = sorted(
      tflite_flatbuffer.float_compute_ops(model, float_softmax=float_softmax),
      key=lambda text: text.startswith("QUANTIZE "))
  if float_ops:
    raise IntegerExportError(
        "The %s model would compute in float32 at %d ops, e.g. %s; no file "
        "is written under an int8 name." %
        (kind, len(float_ops), "; ".join(float_ops[:3])))


def with_padding(features):
  """The calibration features, with a padded one added if none has padding.

  The tensors that carry the mask's effect on the scores only get a range
  that holds the masked-key values if calibration sees masked keys; without
  one, padded inputs would later be clipped into attending to their padding.
  The added feature is the first one with its second half turned into
  padding ([PAD] ids, mask 0, segment 0).
  """
  if any(0 in feature["input_mask"] for feature in features):
    return features
  first = features[0]
  length = len(first["input_mask"])
  kept = max(1, length // 2)
  padded = {name: list(first[name][:kept]) + [0] * (length - kept)
            for name in tflite_runner.INPUT_NAMES}
  tf.logging.info("No calibration feature has padding; calibrating on a "
                  "padded copy of the first one as well.")
  return list(features) + [padded]


class IntegerExportError(ValueError):
  """An integer TF-Lite model cannot be written for this graph."""

# How far below the lowest real row maximum masked keys are put: each keeps a
# weight of at most exp(-16) ~ 1.1e-7 against the row's best real key, so 383
# masked keys change a row of probabilities by under 5e-5.
MASKED_KEY_MARGIN = 16.0


def calibrate_masked_key_scores(session, inputs, attention_maps,
                                 calibration_features):
  """Per-layer scores for masked keys, from the model's real scores.

  For each layer: the smallest maximum over real keys of any real query row
  of the calibration features, minus MASKED_KEY_MARGIN.  Masked keys at
  that score keep a negligible weight, and the int8 range of the masked
  scores is the real scores' range widened by at most the margin.

  Args:
    session: holding the float export graph, weights restored.
    inputs: its input placeholders (`build_inference_graph`).
    attention_maps: its per-layer masked scores [1, heads, S, S].
    calibration_features: the calibration features.

  Returns:
    List of one float per layer.
  """
  lowest = np.full([len(attention_maps)], np.inf)
  for feature in calibration_features:
    scores = session.run(attention_maps, {
        placeholder: [feature[name]] for name, placeholder in inputs.items()})
    real = np.array(feature["input_mask"], dtype=bool)
    for layer, layer_scores in enumerate(scores):
      # [heads, real queries, real keys] of the one example.
      real_scores = layer_scores[0][:, real][:, :, real]
      lowest[layer] = min(lowest[layer], real_scores.max(axis=-1).min())
  return [float(value) - MASKED_KEY_MARGIN for value in lowest]


def _converter_error_summary(error):
  """The lines of a converter error that name the failing op."""
  lines = [line.strip() for line in str(error).splitlines() if line.strip()]
  named = [line for line in lines if "error:" in line]
  if named:
    return " | ".join(named[:3])
  return lines[0] if lines else repr(error)


def _frozen_graph_def_with_merged_quantizers(session, outputs):
  """The session's graph with variables turned into constants, for TF-Lite.

  Two rewrites of QAT fake-quant ops (docs/quantization_and_export.md,
  sections 2 and 4):

  * Activation quantizers whose input is constant at inference (the ones QAT
    puts on NoNorm's beta and gamma) are replaced by constants holding their
    fake-quantized values.  Nothing is lost: the range such a quantizer
    learns is the constant's own min/max widened to 0, which is what TF-Lite
    gives any constant.  Left as fake-quant ops, TF 2.15's converter folds
    the last NoNorm's beta into the SQuAD head's bias as an int8 tensor,
    which the FULLY_CONNECTED kernel then rejects.
  * A quantizer that reads another's output directly (the attention context
    quantizer feeding the output dense layer's input quantizer) gets, with
    that one, the intersection of the two ranges.  An int8 tensor has one
    range, and the converter keeps the first quantizer's: the second one's
    clipping, which the model trained with, would be lost.  With one shared
    range both TF-Lite files clip as the trained graph does; the only
    difference left is the training graph's second rounding, at most half a
    step of the first range.

  Returns:
    A GraphDef.
  """
  graph_def = tf.graph_util.convert_variables_to_constants(
      session, session.graph.as_graph_def(),
      [tensor.op.name for tensor in outputs.values()])
  nodes = {node.name: node for node in graph_def.node}
  _share_chained_quantizer_ranges(nodes)

  def is_constant(input_name):
    return _graph_source(nodes, input_name).op == "Const"

  for node in graph_def.node:
    if (node.op == "FakeQuantWithMinMaxVars" and
        quantization.ACTIVATION_SCOPE in node.name and
        all(is_constant(name) for name in node.input)):
      value = session.run(session.graph.get_tensor_by_name(node.name + ":0"))
      node.op = "Const"
      del node.input[:]
      node.attr.clear()
      node.attr["dtype"].type = tf.float32.as_datatype_enum
      node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
  return graph_def


def _graph_source(nodes, input_name):
  """The node behind a frozen GraphDef input, past Identity nodes."""
  node = nodes[input_name.split(":")[0]]
  while node.op == "Identity":
    node = nodes[node.input[0].split(":")[0]]
  return node


def _share_chained_quantizer_ranges(nodes):
  """Gives each fake quant reading another's output, and that one, the
  intersection of their ranges (see `_frozen_graph_def`).

  Args:
    nodes: dict name -> NodeDef of a frozen GraphDef, edited in place.
  """
  for node in nodes.values():
    if node.op != "FakeQuantWithMinMaxVars":
      continue
    inner = _graph_source(nodes, node.input[0])
    if inner.op != "FakeQuantWithMinMaxVars":
      continue
    # [[inner min, inner max], [outer min, outer max]] constants.
    bounds = [[_graph_source(nodes, name) for name in quantizer.input[1:3]]
              for quantizer in (inner, node)]
    values = [[float(tf.make_ndarray(bound.attr["value"].tensor))
               for bound in pair] for pair in bounds]
    shared = (max(values[0][0], values[1][0]),
              min(values[0][1], values[1][1]))
    for pair in bounds:
      for bound, value in zip(pair, shared):
        bound.attr["value"].tensor.CopyFrom(
            tf.make_tensor_proto(np.float32(value)))


def _representative_dataset(calibration_features):
  """A calibration generator yielding [input_ids, input_mask, segment_ids].

  Logs "Calibrating: feature N of total" progress lines as the converter
  draws them.
  """
  def generate():
    progress = console.Progress("Calibrating", len(calibration_features),
                                unit="feature")
    for index, feature in enumerate(calibration_features):
      yield [np.array([feature[name]], dtype=np.int32) for name in tflite_runner.INPUT_NAMES]
      progress.update(index + 1)
  return generate


def write_saved_model(session, inputs, outputs, saved_model_dir):
  """Writes the session's graph as a SavedModel (signature serving_default)."""
  builder = tf.saved_model.builder.SavedModelBuilder(saved_model_dir)
  signature = tf.saved_model.signature_def_utils.predict_signature_def(
      inputs=dict(inputs), outputs=dict(outputs))
  builder.add_meta_graph_and_variables(
      session, [tf.saved_model.tag_constants.SERVING],
      signature_def_map={
          tf.saved_model.signature_constants
          .DEFAULT_SERVING_SIGNATURE_DEF_KEY: signature})
  builder.save()
