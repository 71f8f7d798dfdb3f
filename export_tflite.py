# coding=utf-8
"""Exports a fine-tuned MobileBERT to a SavedModel and TF-Lite models.

What `export(...)` writes to the export directory:

  saved_model/                 inputs input_ids, input_mask, segment_ids
                               (int32 [1, max_seq_length]); outputs
                               start_logits, end_logits (SQuAD) or
                               probabilities (classifier), float32.
  model_float.tflite           always.
  model_dynamic_range.tflite   --use_post_quantization on a float checkpoint:
                               int8 weights, float activations.
  model_int8.tflite            --use_post_quantization --activation_quantization
                               on a float checkpoint: integer only, every
                               activation range calibrated on representative
                               features (written beside the dynamic-range one).
  model_qat_int8.tflite        --use_quantized_training --use_post_quantization
                               on a QAT checkpoint: integer only, with the
                               ranges learned in training; the tensors the QAT
                               scheme learns no range for (dense outputs into
                               residual adds, the embeddings, the head) are
                               calibrated on the representative features.
  model_int8_float_softmax.tflite, model_qat_int8_float_softmax.tflite
                               --float_softmax beside an integer model: the
                               same model with each attention softmax in
                               float32 (DEQUANTIZE -> SOFTMAX -> QUANTIZE),
                               for x86 CPUs; see `float_softmax` below.

Integer-only means what runs between the int32 inputs and the float32
outputs is int8 (int32 for biases): the converter may use int8 builtins only,
and the written model is checked op by op; an op that would compute in float
stops the export with its name (IntegerExportError).  Some range choices
differ from the converter's own, for speed or accuracy on phones:

* with the additive mask, masked keys get a calibrated score just below the
  real ones instead of their own score minus 10000 (`masked_key_scores`), so
  the int8 range of the masked scores is the real scores' range;
* the second operand of each attention matmul (K and V) is quantized
  symmetrically, which XNNPACK needs to run int8 BATCH_MATMUL, and
  near-empty calibrated scales are widened to XNNPACK's ratio limits; dense
  biases the converter wrote in another unit are re-expressed in the one
  the kernels read (`tflite_flatbuffer.runtime_compatible_quantization`);
* in a QAT graph, two quantizers in a row share the intersection of their
  ranges, so the int8 tensor clips where the trained graph does
  (`_frozen_graph_def`).

The float-softmax file is for CPUs running XNNPACK (LiteRT's default on
x86): XNNPACK takes SOFTMAX in float only, so in the integer-only file the
attention softmaxes run on TF-Lite's builtin int8 kernel (a scalar loop on
one thread on x86) and cut the delegated graph into one partition per layer.
With the softmax in float the whole model but the embedding lookups runs in
one XNNPACK partition.  The integer-only file stays the one for integer-only
accelerators (EdgeTPU, NNAPI, Hexagon) and phones' int8 paths.

Every export logs a table of the written model's ops by type and dtype.

Every TF-Lite file keeps the phone-friendly I/O of the float model: int32 ids
inputs and float32 outputs (int8 models quantize and dequantize inside), so
the TFLite Task Library and `LiteModel` use any of them the same way.  When
tflite-support is installed (requirements-metadata.txt) and a vocabulary or
SentencePiece model is given, the files carry Task Library metadata
(BertQuestionAnswerer for SQuAD, BertNLClassifier for classification).

Integer models need TF 2.15's converter; on TF 1.15 `check_export_supported`
refuses them before any graph is built.  An export is built in a staging
directory inside the export directory and moved into place only when every
file is converted: a failed export leaves an earlier one as it was, and a
successful one replaces all of an earlier export's files (no stale model of
another kind survives beside the new ones).

Usable on its own for a checkpoint produced elsewhere:

  python3 export_tflite.py --bert_config_file=... --init_checkpoint=... \
    --export_dir=... [--vocab_file=...] [--use_post_quantization]"""

# First: it imports TensorFlow without its import-time noise (console.py).
import console  # pylint: disable=g-bad-import-order

import collections
import contextlib
import itertools
import os
import sys

from google.protobuf import message
import numpy as np
import tensorflow.compat.v1 as tf

import atomic_files
import checkpoints
import feature_records
import file_checks
import heads
import modeling
import quantization
import run_utils
import tf_compat
import tflite_flatbuffer
import tokenization

INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
OUTPUT_NAMES = {
    "squad": ("start_logits", "end_logits"),
    "classifier": ("probabilities",),
}
SAVED_MODEL_DIR = "saved_model"
# Examples (SQuAD questions, GLUE rows, records) an integer export is
# calibrated on, unless a caller passes another set.
CALIBRATION_EXAMPLES = 100
# The kinds the converter writes as integer-only models.
INTEGER_KINDS = ("int8", "qat_int8")
# Float-softmax kinds and the integer kind each one edits.
FLOAT_SOFTMAX_KINDS = collections.OrderedDict([
    ("int8_float_softmax", "int8"),
    ("qat_int8_float_softmax", "qat_int8"),
])
TFLITE_FILES = collections.OrderedDict([
    ("float", "model_float.tflite"),
    ("dynamic_range", "model_dynamic_range.tflite"),
    ("int8", "model_int8.tflite"),
    ("qat_int8", "model_qat_int8.tflite"),
    ("int8_float_softmax", "model_int8_float_softmax.tflite"),
    ("qat_int8_float_softmax", "model_qat_int8_float_softmax.tflite"),
])
# The help of --float_softmax, in every script that exports.
FLOAT_SOFTMAX_HELP = (
    "Beside the integer model, also write model_[qat_]int8_float_softmax"
    ".tflite: the same model with its attention softmaxes in float32, the "
    "fastest file on x86 CPUs (XNNPACK runs all of it but the embedding "
    "lookups).  Ship the integer-only file to integer-only accelerators.")
# The word embedding table's tensor in every exported file: [vocab, dims].
WORD_EMBEDDINGS = modeling.MODEL_SCOPE + "/embeddings/word_embeddings"
# Interpreter tensor names that mean the same input (Task Library style names,
# or names from a SavedModel signature).
_INPUT_ALIASES = {"input_ids": ("input_ids", "ids"),
                  "input_mask": ("input_mask", "mask"),
                  "segment_ids": ("segment_ids", "input_type_ids")}


def check_export_supported(use_quantized_training, use_post_quantization,
                           activation_quantization, float_softmax=False):
  """Refuses an export this runtime cannot do; call it in flag validation.

  Args:
    use_quantized_training: the checkpoint was fine-tuned with fake-quant nodes.
    use_post_quantization: write a quantized TF-Lite model.
    activation_quantization: calibrate activations on representative data.
    float_softmax: also write the integer model with float attention softmaxes.

  Raises:
    ValueError: naming the flags, when activation quantization is asked for
      without post-training quantization, a float-softmax file without an
      integer model, or an integer model on TF 1.15.
  """
  if activation_quantization and not use_post_quantization:
    raise ValueError(
        "--activation_quantization only applies together with "
        "--use_post_quantization (it adds calibrated int8 activations to "
        "post-training quantization).")
  wants_integer = use_post_quantization and (activation_quantization or
                                             use_quantized_training)
  if float_softmax and not wants_integer:
    raise ValueError(
        "--float_softmax writes a variant of the integer model, so it needs "
        "one: add --use_post_quantization with --activation_quantization (a "
        "float checkpoint) or with --use_quantized_training (a QAT "
        "checkpoint).")
  if wants_integer and not tf_compat.IS_TF2:
    raise ValueError(
        "Integer TF-Lite export (--use_post_quantization with %s) needs the "
        "TF 2.15 runtime; TF %s's converter cannot quantize MobileBERT's "
        "gather and attention ops to int8.  Run the export with TF 2.15 (the "
        "checkpoint loads unchanged), or export a float checkpoint without "
        "--activation_quantization for a dynamic-range model." %
        ("--use_quantized_training" if use_quantized_training else
         "--activation_quantization", tf.__version__))


def calibration_inputs(features):
  """`representative_features` for export() from featurised examples.

  Args:
    features: objects with .input_ids, .input_mask and .segment_ids (SQuAD
      or GLUE InputFeatures).

  Returns:
    list of dicts name -> list of ints, one per feature.
  """
  return [{"input_ids": list(f.input_ids), "input_mask": list(f.input_mask),
           "segment_ids": list(f.segment_ids)} for f in features]


def writes_integer_model(use_quantized_training, use_post_quantization,
                         activation_quantization):
  """Whether an export with these settings writes an integer-only model.

  Such an export needs representative features: a calibrated model takes all
  its activation ranges from them, a QAT one the ranges its fake-quant nodes
  do not learn.
  """
  return bool(set(_tflite_kinds(use_quantized_training, use_post_quantization,
                                activation_quantization)) &
              set(INTEGER_KINDS))


def export(bert_config, checkpoint, export_dir, max_seq_length, task="squad",
           num_labels=None, use_quantized_training=False,
           use_post_quantization=False, activation_quantization=False,
           float_softmax=False, representative_features=None, vocab_file=None,
           spm_model_file=None, do_lower_case=True):
  """Writes a SavedModel and TF-Lite models for one checkpoint.

  Args:
    bert_config: modeling.BertConfig of the checkpoint.
    checkpoint: checkpoint prefix, `.index`/`.data-*` path or directory.
    export_dir: output directory (created if needed).
    max_seq_length: static sequence length S of the exported inputs [1, S].
    task: "squad" (start/end logits) or "classifier" (probabilities).
    num_labels: classifier classes (1 for regression); only for "classifier".
    use_quantized_training: build the graph with fake-quant nodes and read
      their ranges from the (QAT) checkpoint.
    use_post_quantization: also write a quantized model (see module doc).
    activation_quantization: calibrate int8 activations on
      `representative_features` (float checkpoints; a QAT checkpoint has
      learned ranges).
    float_softmax: beside the integer model, write it with its attention
      softmaxes in float32 (`tflite_flatbuffer.float_attention_softmax`).
    representative_features: list of dicts with int lists "input_ids",
      "input_mask", "segment_ids" of length max_seq_length.
    vocab_file: WordPiece vocabulary to embed as Task Library metadata.
    spm_model_file: SentencePiece model to embed instead of a vocabulary.
    do_lower_case: the tokenizer's casing; the Task Library metadata has no
      casing option, so a cased WordPiece model gets a warning.

  Returns:
    dict kind -> path, kinds "saved_model" and those of TFLITE_FILES written.

  Raises:
    ValueError: bad arguments, or a checkpoint that does not match the graph.
  """
  check_export_supported(use_quantized_training, use_post_quantization,
                         activation_quantization, float_softmax)
  kinds = _tflite_kinds(use_quantized_training, use_post_quantization,
                        activation_quantization, float_softmax)
  integer_kinds = [kind for kind in kinds if kind in INTEGER_KINDS]
  calibration_features = (representative_features if integer_kinds else None)
  _validate_export_args(bert_config, max_seq_length, task, num_labels,
                        use_quantized_training, integer_kinds,
                        calibration_features, vocab_file, spm_model_file)
  prefix = checkpoints.resolve_checkpoint_path(checkpoint)
  tf.gfile.MakeDirs(export_dir)

  if integer_kinds:
    calibration_features = _with_padding(calibration_features)
  masks_additively = (
      modeling.effective_mask_mode(bert_config, use_quantized_training) ==
      modeling.MASK_MODE_ADDITIVE)
  with _converter_on_path(), atomic_files.staging_directory(
      export_dir) as staging_dir:
    graph = tf.Graph()
    with graph.as_default():
      inputs, outputs, attention_maps = _build_inference_graph(
          bert_config, max_seq_length, task, num_labels,
          use_quantized_training)
      with tf.Session(graph=graph) as session:
        _restore(session, prefix, use_quantized_training)
        models = _convert(session, inputs, outputs,
                          [k for k in kinds if k in ("float",
                                                     "dynamic_range")])
        _write_saved_model(session, inputs, outputs,
                           os.path.join(staging_dir, SAVED_MODEL_DIR))
        masked_key_scores = None
        if integer_kinds and masks_additively:
          masked_key_scores = _calibrate_masked_key_scores(
              session, inputs, attention_maps, calibration_features)
    for kind in integer_kinds:
      models[kind] = _integer_model(
          bert_config, prefix, max_seq_length, task, num_labels,
          use_quantized_training, calibration_features, masked_key_scores)
    for kind in kinds:
      if kind in FLOAT_SOFTMAX_KINDS:
        models[kind] = _with_float_softmax(kind,
                                           models[FLOAT_SOFTMAX_KINDS[kind]])
    for kind, model in models.items():
      _log_op_table(kind, model)
      model = _add_metadata(model, task, vocab_file, spm_model_file,
                            do_lower_case)
      with open(os.path.join(staging_dir, TFLITE_FILES[kind]), "wb") as f:
        f.write(model)
      tf.logging.info("Converted %s (%d bytes).", TFLITE_FILES[kind],
                      len(model))
    names = [SAVED_MODEL_DIR] + [TFLITE_FILES[kind] for kind in models]
    atomic_files.replace_entries(
        staging_dir, export_dir, names,
        [SAVED_MODEL_DIR] + list(TFLITE_FILES.values()))
  paths = {"saved_model": os.path.join(export_dir, SAVED_MODEL_DIR)}
  paths.update((kind, os.path.join(export_dir, TFLITE_FILES[kind]))
               for kind in models)
  for kind, path in sorted(paths.items()):
    tf.logging.info("Wrote %s: %s", kind, path)
  return paths


def _tflite_kinds(use_quantized_training, use_post_quantization,
                  activation_quantization, float_softmax=False):
  """The TF-Lite models to write, in order (see the module doc)."""
  kinds = ["float"]
  if use_post_quantization:
    if use_quantized_training:
      kinds.append("qat_int8")
    else:
      kinds.append("dynamic_range")
      if activation_quantization:
        kinds.append("int8")
  if float_softmax:
    kinds += [kind for kind, integer_kind in FLOAT_SOFTMAX_KINDS.items()
              if integer_kind in kinds]
  return kinds


def _validate_export_args(bert_config, max_seq_length, task, num_labels,
                          use_quantized_training, integer_kinds,
                          representative_features, vocab_file,
                          spm_model_file):
  """Raises ValueError for arguments that cannot give a useful export."""
  if task not in OUTPUT_NAMES:
    raise ValueError("Unknown export task %r; expected one of %s." %
                     (task, sorted(OUTPUT_NAMES)))
  if task == "classifier" and (num_labels is None or num_labels < 1):
    raise ValueError("A classifier export needs num_labels >= 1 (got %r)." %
                     num_labels)
  if not 0 < max_seq_length <= bert_config.max_position_embeddings:
    raise ValueError(
        "max_seq_length=%d must be in [1, max_position_embeddings=%d] of the "
        "model config." % (max_seq_length, bert_config.max_position_embeddings))
  if use_quantized_training:
    modeling.check_quantizable(bert_config)
  if vocab_file and spm_model_file:
    raise ValueError("Give vocab_file or spm_model_file for the metadata, not "
                     "both (got %s and %s)." % (vocab_file, spm_model_file))
  for path in (vocab_file, spm_model_file):
    if path and not tf.gfile.Exists(path):
      raise ValueError("Tokenizer file %s does not exist." % path)
  if integer_kinds and not representative_features:
    raise ValueError(
        "An integer TF-Lite model needs representative_features (the "
        "calibration set): a float checkpoint has no activation ranges, and "
        "a QAT checkpoint has none for the tensors its fake-quant nodes do "
        "not cover.")
  for index, feature in enumerate(representative_features or ()):
    for name in INPUT_NAMES:
      if len(feature.get(name, ())) != max_seq_length:
        raise ValueError(
            "representative_features[%d][%r] must have length "
            "max_seq_length=%d (got %d)." %
            (index, name, max_seq_length, len(feature.get(name, ()))))


@contextlib.contextmanager
def _converter_on_path():
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


def _build_inference_graph(bert_config, max_seq_length, task, num_labels,
                           use_quantized_training, masked_key_scores=None):
  """Placeholders and named outputs of the serving graph (is_training=False).

  The int32 `input_mask` becomes the model's float mask through a lookup in
  the constant table [0, 1] rather than a cast: an integer model then reads
  it with an int8 GATHER, with no float step between the inputs and the
  first integer op.

  Args:
    masked_key_scores: see modeling.BertModel; the integer export passes
      the values of `_calibrate_masked_key_scores`.

  Returns:
    (inputs, outputs, attention_maps): OrderedDicts name -> Tensor, inputs
    int32 [1, max_seq_length], outputs start_logits/end_logits [1, S] or
    probabilities [1, num_labels]; and the encoder's masked pre-softmax
    scores, one [1, heads, S, S] Tensor per layer.
  """
  inputs = collections.OrderedDict(
      (name, tf.placeholder(tf.int32, [1, max_seq_length], name=name))
      for name in INPUT_NAMES)
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


def _restore(session, prefix, use_quantized_training):
  """Loads every graph variable from the checkpoint, checking names and shapes.

  Unlike fine-tuning initialisation, an export must not fall back to random
  values, so any missing variable is an error.

  Raises:
    ValueError: naming the checkpoint and the missing or mismatched variables.
  """
  stored_shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  missing, mismatched = [], []
  for variable in tf.global_variables():
    name = variable.op.name
    shape = variable.shape.as_list()
    if name not in stored_shapes:
      missing.append(name)
    elif list(stored_shapes[name]) != shape:
      mismatched.append("%s: graph %s, checkpoint %s" %
                        (name, shape, list(stored_shapes[name])))
  if mismatched:
    raise ValueError("Checkpoint %s does not match the export graph's shapes "
                     "(is --bert_config_file right?): %s" %
                     (prefix, "; ".join(mismatched)))
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


def _convert(session, inputs, outputs, kinds):
  """Converts the session's graph to the float-activation models `kinds`.

  One converter (one frozen graph) serves both: dynamic-range only adds
  weight quantization to the float settings.

  Returns:
    OrderedDict kind -> model bytes.
  """
  converter = tf.lite.TFLiteConverter(
      _frozen_graph_def(session, outputs), list(inputs.values()),
      list(outputs.values()))
  models = collections.OrderedDict()
  for kind in kinds:
    tf.logging.info("Converting to a %s TF-Lite model.", kind)
    if kind == "dynamic_range":
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
    with console.stderr_without(console.CONVERTER_NOISE):
      models[kind] = bytes(converter.convert())
  return models


def _integer_model(bert_config, prefix, max_seq_length, task, num_labels,
                   use_quantized_training, representative_features,
                   masked_key_scores):
  """An integer-only TF-Lite model of the checkpoint.

  The converter is restricted to int8 builtins and calibrates every tensor on
  the representative features; a QAT graph's fake-quant nodes keep their
  learned ranges, so there calibration only fills in the tensors the QAT
  scheme leaves without one (dense outputs into residual adds, the
  embeddings, the head).  With the additive mask, masked keys get
  `masked_key_scores` (see `_calibrate_masked_key_scores`) instead of their
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
  kind = "qat_int8" if use_quantized_training else "int8"
  if masked_key_scores is not None:
    tf.logging.info("%s model: masked keys score %s (per layer) instead of "
                    "their own score minus 10000.", kind,
                    ", ".join("%.1f" % v for v in masked_key_scores))
  tf.logging.info("Converting to a %s TF-Lite model (integer only, "
                  "calibrated on %d features).", kind,
                  len(representative_features))
  graph = tf.Graph()
  with graph.as_default():
    inputs, outputs, _ = _build_inference_graph(
        bert_config, max_seq_length, task, num_labels, use_quantized_training,
        masked_key_scores)
    with tf.Session(graph=graph) as session:
      _restore(session, prefix, use_quantized_training)
      converter = tf.lite.TFLiteConverter(
          _frozen_graph_def(session, outputs), list(inputs.values()),
          list(outputs.values()))
  converter.optimizations = [tf.lite.Optimize.DEFAULT]
  converter.representative_dataset = _representative_dataset(
      representative_features)
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


def _with_float_softmax(kind, integer_model):
  """The integer model with its attention softmaxes in float32 (`kind`).

  Raises:
    IntegerExportError: the edited model computes in float32 anywhere but
      the attention softmax islands; names the op.
  """
  model, moved, clamps = tflite_flatbuffer.float_attention_softmax(
      integer_model)
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


def _with_padding(features):
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
            for name in INPUT_NAMES}
  tf.logging.info("No representative feature has padding; calibrating on a "
                  "padded copy of the first one as well.")
  return list(features) + [padded]


class IntegerExportError(ValueError):
  """An integer TF-Lite model cannot be written for this graph."""


# How far below the lowest real row maximum masked keys are put: each keeps a
# weight of at most exp(-16) ~ 1.1e-7 against the row's best real key, so 383
# masked keys change a row of probabilities by under 5e-5.
MASKED_KEY_MARGIN = 16.0


def _calibrate_masked_key_scores(session, inputs, attention_maps,
                                 representative_features):
  """Per-layer scores for masked keys, from the model's real scores.

  For each layer: the smallest maximum over real keys of any real query row
  of the representative features, minus MASKED_KEY_MARGIN.  Masked keys at
  that score keep a negligible weight, and the int8 range of the masked
  scores is the real scores' range widened by at most the margin.

  Args:
    session: holding the float export graph, weights restored.
    inputs: its input placeholders (`_build_inference_graph`).
    attention_maps: its per-layer masked scores [1, heads, S, S].
    representative_features: the calibration features.

  Returns:
    List of one float per layer.
  """
  lowest = np.full([len(attention_maps)], np.inf)
  for feature in representative_features:
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


def _log_op_table(kind, model):
  """Logs how many ops of each type and dtype the written model holds."""
  rows = tflite_flatbuffer.op_table(model)
  if rows is None:
    tf.logging.info("%s model: no op table on TF %s (its TF-Lite package "
                    "cannot read model files).", kind, tf.__version__)
    return
  lines = ["%s model: %d ops" % (kind, sum(row[2] for row in rows)),
           "  %-22s %-17s %5s" % ("op", "dtype", "count")]
  lines += ["  %-22s %-17s %5d" % row for row in rows]
  tf.logging.info("\n".join(lines))


def _frozen_graph_def(session, outputs):
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


def _representative_dataset(representative_features):
  """A calibration generator yielding [input_ids, input_mask, segment_ids].

  Logs "Calibrating: feature N of total" progress lines as the converter
  draws them.
  """
  def generate():
    progress = console.Progress("Calibrating", len(representative_features),
                                unit="feature")
    for index, feature in enumerate(representative_features):
      yield [np.array([feature[name]], dtype=np.int32) for name in INPUT_NAMES]
      progress.update(index + 1)
  return generate


def _write_saved_model(session, inputs, outputs, saved_model_dir):
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


def _metadata_writers():
  """tflite-support's metadata writer modules, or None with the reason.

  Imported from `tensorflow_lite_support` directly: the `tflite_support`
  package also loads the Task runtime, which cannot share a process with
  TensorFlow.
  """
  try:
    from tensorflow_lite_support.metadata.python.metadata_writers import metadata_info  # pylint: disable=g-import-not-at-top
    from tensorflow_lite_support.metadata.python.metadata_writers import metadata_writer  # pylint: disable=g-import-not-at-top
    from tensorflow_lite_support.metadata.python.metadata_writers import writer_utils  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    return None, "tflite-support is not importable (%s)" % error
  return (metadata_info, metadata_writer, writer_utils), None


def _add_metadata(model, task, vocab_file, spm_model_file, do_lower_case):
  """The model with Task Library metadata, or unchanged (logged) if impossible."""
  if not (vocab_file or spm_model_file):
    tf.logging.info("TF-Lite metadata skipped: no vocab_file or "
                    "spm_model_file to embed.")
    return model
  modules, reason = _metadata_writers()
  if modules is None:
    tf.logging.warning(
        "TF-Lite metadata skipped: %s; install requirements-metadata.txt for "
        "TFLite Task Library compatible models.", reason)
    return model
  metadata_info, metadata_writer, writer_utils = modules
  if spm_model_file:
    tokenizer_md = metadata_info.SentencePieceTokenizerMd(spm_model_file)
  else:
    tokenizer_md = metadata_info.BertTokenizerMd(vocab_file)
  input_md = metadata_info.BertInputTensorsMd(
      model, *INPUT_NAMES, tokenizer_md=tokenizer_md)
  model_names = writer_utils.get_output_tensor_names(model)
  if task == "squad":
    general_md = metadata_info.GeneralMd(
        name="MobileBERT question answerer",
        description="Answers questions about a passage (SQuAD) with "
                    "MobileBERT: span start and end logits over the tokens.")
    descriptions = {
        "start_logits": "Logit of each token being the answer start.",
        "end_logits": "Logit of each token being the answer end."}
  else:
    general_md = metadata_info.GeneralMd(
        name="MobileBERT classifier",
        description="Classifies a sentence or sentence pair with MobileBERT.")
    descriptions = {"probabilities": "Probability of each class."}
  # BertNLClassifier looks its scores up under the metadata name
  # "probability"; the tensor itself keeps its name.
  metadata_names = {"probabilities": "probability"}
  output_metadata = [
      metadata_info.TensorMd(name=metadata_names.get(name, name),
                             description=descriptions[name])
      .create_metadata() for name in model_names]
  writer = metadata_writer.MetadataWriter.create_from_metadata(
      model,
      model_metadata=general_md.create_metadata(),
      input_metadata=input_md.create_input_tesnor_metadata(),
      output_metadata=output_metadata,
      associated_files=input_md.get_tokenizer_associated_files(),
      input_process_units=input_md.create_input_process_unit_metadata())
  tf.logging.info("TF-Lite metadata added (Task Library %s).",
                  "BertQuestionAnswerer" if task == "squad" else
                  "BertNLClassifier")
  if not do_lower_case and not spm_model_file:
    tf.logging.warning(
        "The metadata's BertTokenizer has no casing option; make sure the "
        "Task Library's tokenization matches this cased model.")
  return bytes(writer.populate())


class LiteModel(object):
  """Runs an exported TF-Lite model one example at a time.

  Tensors are found by name, never by position: converters do not keep the
  outputs' order.  int8/uint8 inputs and outputs are quantized and
  dequantized with their own quantization parameters.
  """

  def __init__(self, path, num_threads=2, use_litert=None):
    """Loads `path`.

    Args:
      path: the .tflite file.
      num_threads: interpreter threads (TF 1.15's interpreter uses one).
      use_litert: True: LiteRT's interpreter (ai-edge-litert) or an error;
        False: tf.lite's; None: LiteRT's when it is installed.  `runtime`
        says which one runs.

    Raises:
      ValueError: the file is missing, is not a TF-Lite model, or lacks a
        needed input tensor.
    """
    if not tf.gfile.Exists(path):
      raise ValueError("TF-Lite model %s does not exist." % path)
    self.path = path
    try:
      self._interpreter, self.runtime = _make_interpreter(path, num_threads,
                                                          use_litert)
      self._interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
      raise ValueError("%s is not a TF-Lite model this runtime can load (%s)."
                       % (path, file_checks.first_line(error)))
    details = {_plain_name(d["name"]): d
               for d in self._interpreter.get_input_details()}
    self._inputs = {}
    for name, aliases in _INPUT_ALIASES.items():
      found = [details[alias] for alias in aliases if alias in details]
      if not found:
        raise ValueError("TF-Lite model %s has no input named %s (inputs: "
                         "%s)." % (path, " or ".join(aliases),
                                   sorted(details)))
      self._inputs[name] = found[0]
    self._outputs = {_plain_name(d["name"]): d
                     for d in self._interpreter.get_output_details()}

  @property
  def output_names(self):
    return sorted(self._outputs)

  @property
  def sequence_length(self):
    return int(self._inputs["input_ids"]["shape"][-1])

  def output_shape(self, name):
    """The shape of output `name`, e.g. [1, 3] for three labels."""
    return [int(d) for d in self._outputs[name]["shape"]]

  @property
  def vocab_size(self):
    """Rows of the word embedding table, or None if no tensor has its name."""
    for detail in self._interpreter.get_tensor_details():
      if (_plain_name(detail["name"]) == WORD_EMBEDDINGS and
          len(detail["shape"]) == 2):
        return int(detail["shape"][0])
    return None

  def check_vocab_size(self, vocab_size, config_flag, config_path):
    """Refuses a model whose embedding table is not the config's.

    Token ids beyond the table would fail inside the interpreter's GATHER.

    Raises:
      ValueError: naming the variable and both sizes.
    """
    rows = self.vocab_size
    if rows is not None and rows != vocab_size:
      raise ValueError(
          "--lite_model_path=%s does not fit --%s=%s: %s has %d rows in the "
          "file but vocab_size=%d in the config; pass the config the model "
          "was exported with." % (self.path, config_flag, config_path,
                                  WORD_EMBEDDINGS, rows, vocab_size))

  def check_task(self, output_name, max_seq_length, flag_name):
    """Refuses a model without `output_name` or of another sequence length.

    Raises:
      ValueError: naming `flag_name` (e.g. "lite_model_path"), the file and
        what differs.
    """
    if output_name not in self._outputs:
      raise ValueError("--%s=%s has no %r output (outputs: %s); it is not an "
                       "export of this task." %
                       (flag_name, self.path, output_name,
                        ", ".join(self.output_names)))
    if self.sequence_length != max_seq_length:
      raise ValueError("--%s=%s takes sequences of %d tokens but "
                       "--max_seq_length=%d; pass the length the model was "
                       "exported with." % (flag_name, self.path,
                                           self.sequence_length,
                                           max_seq_length))

  def predict(self, features):
    """Yields `run(...)` for each feature (with input_ids, input_mask,
    segment_ids).

    Logs the runtime once and "TF-Lite: feature N of total" progress lines
    (console.Progress).
    """
    features = list(features)
    tf.logging.info("Running %s on %s (%d features).", self.path,
                    self.runtime, len(features))
    progress = console.Progress("TF-Lite", len(features), unit="feature")
    for index, feature in enumerate(features):
      outputs = self.run(feature.input_ids, feature.input_mask,
                         feature.segment_ids)
      progress.update(index + 1)
      yield outputs

  def run(self, input_ids, input_mask, segment_ids):
    """One forward pass.

    Args:
      input_ids: ints, shape [S] or [1, S] with S the model's sequence length.
      input_mask: same shape.
      segment_ids: same shape.

    Returns:
      dict output name (e.g. "start_logits") -> float32 numpy array of the
      output tensor's shape ([1, S] for logits).
    """
    values = {"input_ids": input_ids, "input_mask": input_mask,
              "segment_ids": segment_ids}
    for name, detail in self._inputs.items():
      value = np.asarray(values[name])
      if value.size != np.prod(detail["shape"]):
        raise ValueError("%s has %d values; %s expects shape %s." %
                         (name, value.size, self.path, list(detail["shape"])))
      value = _quantize(value.reshape(detail["shape"]), detail)
      self._interpreter.set_tensor(detail["index"], value)
    self._interpreter.invoke()
    return {name: _dequantize(self._interpreter.get_tensor(detail["index"]),
                              detail)
            for name, detail in self._outputs.items()}


def lite_model_for_task(path, output_name, max_seq_length, bert_config,
                        config_path, output_width=None,
                        flag_name="lite_model_path"):
  """LiteModel(path), refused unless it has `output_name` at this length
  (`output_width` values per example, when given) and the embedding table of
  `bert_config` (read from --bert_config_file=`config_path`).

  Raises:
    ValueError: naming `flag_name`: not a loadable model, another task's
      file, another sequence length, another number of labels or another
      vocabulary size.
  """
  try:
    lite_model = LiteModel(path)
  except ValueError as error:
    raise ValueError("--%s: %s" % (flag_name, error))
  lite_model.check_task(output_name, max_seq_length, flag_name)
  width = int(lite_model.output_shape(output_name)[-1])
  if output_width is not None and width != output_width:
    raise ValueError("--%s=%s gives %d %s per example but this task has %d "
                     "labels; it is an export of another task." %
                     (flag_name, path, width, output_name, output_width))
  lite_model.check_vocab_size(bert_config.vocab_size, "bert_config_file",
                              config_path)
  return lite_model


def _make_interpreter(path, num_threads, use_litert):
  """A TF-Lite interpreter for `path` and the runtime's name.

  By default LiteRT (`ai-edge-litert`, the runtime apps ship) when it is
  importable: its XNNPACK delegate takes the attention matmuls that TF 2.15's
  bundled interpreter leaves to slower builtin kernels.  Otherwise tf.lite's,
  which on TF 1.15 takes no thread count (one thread).

  Raises:
    ValueError: use_litert is True and LiteRT is not installed.
  """
  litert = None
  if use_litert is not False:
    try:
      from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top
    except ImportError as error:
      if use_litert:
        raise ValueError("LiteRT is not installed (pip install "
                         "ai-edge-litert): %s" % error)
  if litert is not None:
    version = getattr(litert, "__version__", None) or _package_version(
        "ai-edge-litert")
    return (litert.Interpreter(model_path=path, num_threads=num_threads),
            "LiteRT %s" % version)
  name = "TensorFlow %s tf.lite" % tf.__version__
  if tf_compat.IS_TF2:
    return tf.lite.Interpreter(model_path=path, num_threads=num_threads), name
  return tf.lite.Interpreter(model_path=path), name


def _package_version(distribution):
  """An installed distribution's version, or "(version unknown)"."""
  try:
    from importlib import metadata  # pylint: disable=g-import-not-at-top
    return metadata.version(distribution)
  except Exception:  # pylint: disable=broad-except
    return "(version unknown)"


def _plain_name(tensor_name):
  """'serving_default_input_ids:0' -> 'input_ids'."""
  name = tensor_name.split(":")[0]
  prefix = "serving_default_"
  return name[len(prefix):] if name.startswith(prefix) else name


def _quantize(value, detail):
  """Casts or quantizes an input to the tensor's dtype."""
  dtype = detail["dtype"]
  scale, zero_point = detail["quantization"]
  if dtype in (np.int8, np.uint8) and scale:
    info = np.iinfo(dtype)
    value = np.clip(np.round(value / scale + zero_point), info.min, info.max)
  return value.astype(dtype)


def _dequantize(value, detail):
  """A float32 copy of an output, dequantized if it is int8/uint8."""
  scale, zero_point = detail["quantization"]
  if detail["dtype"] in (np.int8, np.uint8) and scale:
    return ((value.astype(np.float32) - zero_point) * scale).astype(np.float32)
  return np.array(value, dtype=np.float32)


def _define_flags():
  """Command-line flags; defined only when run as a script, because
  run_squad.py and run_classifier.py import this module and define flags of
  the same names."""
  flags = tf.flags
  flags.DEFINE_string("bert_config_file", None,
                      "The config json file of the checkpoint's model.")
  flags.DEFINE_string(
      "init_checkpoint", None,
      "Checkpoint to export: a prefix, a path ending in .index or .data-*, or "
      "a directory (its latest checkpoint).")
  flags.DEFINE_string("export_dir", None, "Where to write the export.")
  flags.DEFINE_integer("max_seq_length", 384,
                       "Static sequence length of the exported inputs.")
  flags.DEFINE_enum("task", "squad", sorted(OUTPUT_NAMES),
                    "squad: start/end logits; classifier: probabilities.")
  flags.DEFINE_integer("num_labels", None,
                       "Classes of a classifier checkpoint (1: regression).")
  flags.DEFINE_bool("use_quantized_training", False,
                    "The checkpoint was fine-tuned with "
                    "--use_quantized_training; export its fake-quant graph.")
  flags.DEFINE_bool("use_post_quantization", False,
                    "Also write a quantized model: dynamic-range, or int8 "
                    "with --activation_quantization or a QAT checkpoint.")
  flags.DEFINE_bool("activation_quantization", False,
                    "Calibrate int8 activations on --representative_file.")
  flags.DEFINE_bool("float_softmax", False, FLOAT_SOFTMAX_HELP)
  flags.DEFINE_string(
      "representative_file", None,
      "TFRecord of features (input_ids, input_mask, segment_ids of length "
      "--max_seq_length), e.g. run_squad's train.tf_record, for "
      "--activation_quantization.")
  flags.DEFINE_integer("num_representative_features", CALIBRATION_EXAMPLES,
                       "How many records of --representative_file to use.")
  flags.DEFINE_string("vocab_file", None,
                      "WordPiece vocabulary to embed as Task Library metadata.")
  flags.DEFINE_string("spm_model_file", None,
                      "SentencePiece model to embed instead of --vocab_file.")
  flags.DEFINE_bool("do_lower_case", True,
                    "Whether the tokenizer lower-cases (metadata).")


def _validate_flags():
  """Checks the command-line flags before any graph is built.

  Every problem is reported, one line each, and the run exits (status 1).

  Returns:
    The BertConfig of --bert_config_file.
  """
  flags_values = tf.flags.FLAGS
  problems = run_utils.FlagProblems("export_tflite.py")
  problems.require_flags(flags_values, "bert_config_file", "init_checkpoint",
                         "export_dir")
  bert_config = problems.load_config("bert_config_file",
                                     flags_values.bert_config_file)
  problems.call(file_checks.check_writable_dir, flags_values.export_dir,
                "export_dir")
  problems.call(check_export_supported, flags_values.use_quantized_training,
                flags_values.use_post_quantization,
                flags_values.activation_quantization,
                flags_values.float_softmax)
  if writes_integer_model(flags_values.use_quantized_training,
                          flags_values.use_post_quantization,
                          flags_values.activation_quantization):
    problems.require_file(
        "representative_file", flags_values.representative_file,
        "an integer model (--use_post_quantization with "
        "--activation_quantization or --use_quantized_training): the "
        "calibration features")
  elif flags_values.representative_file:
    problems.require_file("representative_file",
                          flags_values.representative_file, "calibration")
  problems.check(flags_values.task != "classifier" or flags_values.num_labels,
                 "--task=classifier needs --num_labels.")
  problems.positive(flags_values, "num_representative_features")
  if bert_config is not None:
    if flags_values.init_checkpoint:
      problems.call(modeling.check_checkpoint, flags_values.init_checkpoint,
                    bert_config, prefix="--init_checkpoint: ")
    for name in ("vocab_file", "spm_model_file"):
      path = getattr(flags_values, name)
      if path:
        problems.call(tokenization.create_tokenizer,
                      vocab_size=bert_config.vocab_size,
                      prefix="--%s=%s: " % (name, path), **{name: path})
  problems.exit_if_any()
  return bert_config


def read_representative_features(path, max_seq_length, limit):
  """The first `limit` features of a TFRecord file as export() expects them.

  Raises:
    ValueError: a damaged record, or one that lacks a field or has the wrong
      length.
  """
  features = []
  with feature_records.reading(path):
    records = list(itertools.islice(tf.python_io.tf_record_iterator(path),
                                    limit))
  for record in records:
    try:
      example = tf.train.Example.FromString(record)
    except message.DecodeError as error:
      raise ValueError("%s: record %d is not a tf.train.Example (%s)." %
                       (path, len(features), error))
    feature = {}
    for name in INPUT_NAMES:
      if name not in example.features.feature:
        raise ValueError("%s: record %d has no %r feature." %
                         (path, len(features), name))
      values = list(example.features.feature[name].int64_list.value)
      if len(values) != max_seq_length:
        raise ValueError("%s: record %d has %s of length %d, not "
                         "--max_seq_length=%d." %
                         (path, len(features), name, len(values),
                          max_seq_length))
      feature[name] = values
    features.append(feature)
  return features


def main(_):
  console.setup()
  flags_values = tf.flags.FLAGS
  bert_config = _validate_flags()
  with run_utils.one_line_errors("export_tflite.py"):  # IntegerExportError too.
    representative = None
    if writes_integer_model(flags_values.use_quantized_training,
                            flags_values.use_post_quantization,
                            flags_values.activation_quantization):
      representative = read_representative_features(
          flags_values.representative_file, flags_values.max_seq_length,
          flags_values.num_representative_features)
    paths = export(
        bert_config, flags_values.init_checkpoint, flags_values.export_dir,
        flags_values.max_seq_length, task=flags_values.task,
        num_labels=flags_values.num_labels,
        use_quantized_training=flags_values.use_quantized_training,
        use_post_quantization=flags_values.use_post_quantization,
        activation_quantization=flags_values.activation_quantization,
        float_softmax=flags_values.float_softmax,
        representative_features=representative,
        vocab_file=flags_values.vocab_file,
        spm_model_file=flags_values.spm_model_file,
        do_lower_case=flags_values.do_lower_case)
  for kind, path in sorted(paths.items()):
    tf.logging.info("  %s: %s", kind, path)


if __name__ == "__main__":
  _define_flags()
  tf.app.run()
