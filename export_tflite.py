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
                               on a float checkpoint: int8 weights and
                               activations calibrated on representative
                               features (written beside the dynamic-range one).
  model_qat_int8.tflite        --use_quantized_training --use_post_quantization
                               on a QAT checkpoint: int8 from the ranges learned
                               in training, no calibration (so
                               --activation_quantization changes nothing here).
                               QAT learns no range for dense outputs that feed
                               a residual add (reference_spec 6.3), so those
                               layers keep float kernels on int8 weights; the
                               rest (bottleneck inputs, FFN intermediates,
                               NoNorm products, softmax) run int8 and the model
                               matches the fake-quant graph closely.

Every TF-Lite file keeps the phone-friendly I/O of the float model: int32 ids
inputs and float32 outputs (int8 models quantize and dequantize inside), so
the TFLite Task Library and `LiteModel` use any of them the same way.  When
tflite-support is installed (requirements-metadata.txt) and a vocabulary or
SentencePiece model is given, the files carry Task Library metadata
(BertQuestionAnswerer for SQuAD, BertNLClassifier for classification).

Integer models need TF 2.15's converter; on TF 1.15 `check_export_supported`
refuses them before any graph is built.  Every file is written to a temporary
name in the export directory and renamed when complete, so a failed export
never leaves a half-written file under a final name.

Usable on its own for a checkpoint produced elsewhere:

  python3 export_tflite.py --bert_config_file=... --init_checkpoint=... \
    --export_dir=... [--vocab_file=...] [--use_post_quantization]
"""

import collections
import os
import shutil
import sys
import tempfile

import numpy as np
import tensorflow.compat.v1 as tf

import heads
import modeling
import quantization
import tf_compat

INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
OUTPUT_NAMES = {
    "squad": ("start_logits", "end_logits"),
    "classifier": ("probabilities",),
}
SAVED_MODEL_DIR = "saved_model"
TFLITE_FILES = collections.OrderedDict([
    ("float", "model_float.tflite"),
    ("dynamic_range", "model_dynamic_range.tflite"),
    ("int8", "model_int8.tflite"),
    ("qat_int8", "model_qat_int8.tflite"),
])
# Interpreter tensor names that mean the same input (Task Library style names,
# or names from a SavedModel signature).
_INPUT_ALIASES = {"input_ids": ("input_ids", "ids"),
                  "input_mask": ("input_mask", "mask"),
                  "segment_ids": ("segment_ids", "input_type_ids")}


def check_export_supported(use_quantized_training, use_post_quantization,
                           activation_quantization):
  """Refuses an export this runtime cannot do; call it in flag validation.

  Args:
    use_quantized_training: the checkpoint was fine-tuned with fake-quant nodes.
    use_post_quantization: write a quantized TF-Lite model.
    activation_quantization: calibrate activations on representative data.

  Raises:
    ValueError: naming the flags, when activation quantization is asked for
      without post-training quantization, or when an integer model is asked
      for on TF 1.15.
  """
  if activation_quantization and not use_post_quantization:
    raise ValueError(
        "--activation_quantization only applies together with "
        "--use_post_quantization (it adds calibrated int8 activations to "
        "post-training quantization).")
  wants_integer = use_post_quantization and (activation_quantization or
                                             use_quantized_training)
  if wants_integer and not tf_compat.IS_TF2:
    raise ValueError(
        "Integer TF-Lite export (--use_post_quantization with %s) needs the "
        "TF 2.15 runtime; TF %s's converter cannot quantize MobileBERT's "
        "gather and attention ops to int8.  Run the export with TF 2.15 (the "
        "checkpoint loads unchanged), or export a float checkpoint without "
        "--activation_quantization for a dynamic-range model." %
        ("--use_quantized_training" if use_quantized_training else
         "--activation_quantization", tf.__version__))


def export(bert_config, checkpoint, export_dir, max_seq_length, task="squad",
           num_labels=None, use_quantized_training=False,
           use_post_quantization=False, activation_quantization=False,
           representative_features=None, vocab_file=None, spm_model_file=None,
           do_lower_case=True):
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
                         activation_quantization)
  kinds = _tflite_kinds(use_quantized_training, use_post_quantization,
                        activation_quantization)
  calibration_features = (representative_features
                          if "int8" in kinds else None)
  _validate_export_args(bert_config, max_seq_length, task, num_labels,
                        use_quantized_training, kinds, calibration_features,
                        vocab_file, spm_model_file)
  prefix = modeling.resolve_checkpoint_path(checkpoint)
  _put_converter_on_path()
  tf.gfile.MakeDirs(export_dir)

  graph = tf.Graph()
  with graph.as_default():
    inputs, outputs = _build_inference_graph(
        bert_config, max_seq_length, task, num_labels, use_quantized_training)
    with tf.Session(graph=graph) as session:
      _restore(session, prefix, use_quantized_training)
      models = _convert(session, inputs, outputs, kinds,
                        calibration_features)
      saved_model_path = _write_saved_model(session, inputs, outputs,
                                            export_dir)

  paths = {"saved_model": saved_model_path}
  for kind, model in models.items():
    model = _add_metadata(model, task, vocab_file, spm_model_file,
                          do_lower_case)
    path = os.path.join(export_dir, TFLITE_FILES[kind])
    write_file_atomically(path, model)
    paths[kind] = path
    tf.logging.info("Wrote %s (%d bytes).", path, len(model))
  return paths


def _tflite_kinds(use_quantized_training, use_post_quantization,
                  activation_quantization):
  """The TF-Lite models to write, in order (see the module doc)."""
  kinds = ["float"]
  if use_post_quantization:
    if use_quantized_training:
      kinds.append("qat_int8")
    else:
      kinds.append("dynamic_range")
      if activation_quantization:
        kinds.append("int8")
  return kinds


def _validate_export_args(bert_config, max_seq_length, task, num_labels,
                          use_quantized_training, kinds,
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
  if "int8" in kinds and not representative_features:
    raise ValueError(
        "activation_quantization needs representative_features (the "
        "calibration set) for a float checkpoint.")
  for index, feature in enumerate(representative_features or ()):
    for name in INPUT_NAMES:
      if len(feature.get(name, ())) != max_seq_length:
        raise ValueError(
            "representative_features[%d][%r] must have length "
            "max_seq_length=%d (got %d)." %
            (index, name, max_seq_length, len(feature.get(name, ()))))


def _put_converter_on_path():
  """TF 1.15's converter runs `toco_from_protos`, installed beside python."""
  bin_dir = os.path.dirname(sys.executable)
  path = os.environ.get("PATH", "")
  if bin_dir not in path.split(os.pathsep):
    os.environ["PATH"] = bin_dir + os.pathsep + path


def _build_inference_graph(bert_config, max_seq_length, task, num_labels,
                           use_quantized_training):
  """Placeholders and named outputs of the serving graph (is_training=False).

  Returns:
    (inputs, outputs): OrderedDicts name -> Tensor; inputs are int32
    [1, max_seq_length]; outputs are start_logits/end_logits [1, S] or
    probabilities [1, num_labels].
  """
  inputs = collections.OrderedDict(
      (name, tf.placeholder(tf.int32, [1, max_seq_length], name=name))
      for name in INPUT_NAMES)
  # use_einsum=False: plain MatMul/BatchMatMul, which TF-Lite quantizes.
  if task == "squad":
    tensors = heads.squad_logits(
        bert_config, False, inputs["input_ids"], inputs["input_mask"],
        inputs["segment_ids"], use_einsum=False,
        use_quantized_training=use_quantized_training)
  else:
    _, probabilities = heads.classifier_logits(
        bert_config, False, inputs["input_ids"], inputs["input_mask"],
        inputs["segment_ids"], num_labels, use_einsum=False,
        use_quantized_training=use_quantized_training)
    tensors = (probabilities,)
  outputs = collections.OrderedDict(zip(OUTPUT_NAMES[task], tensors))
  for name, tensor in outputs.items():
    if tensor.op.name != name:
      raise ValueError("Export output %r came out named %r; the export graph "
                       "must be built in a fresh graph." %
                       (name, tensor.op.name))
  return inputs, outputs


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
  missing_ranges = [n for n in missing
                    if quantization.ACTIVATION_SCOPE in n or
                    quantization.WEIGHT_SCOPE in n]
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


def _convert(session, inputs, outputs, kinds, representative_features):
  """Converts the session's graph to the TF-Lite models `kinds`.

  One converter (one frozen graph) serves every kind, float first: each kind
  only adds quantization settings to the previous ones.

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
    elif kind == "int8":
      converter.optimizations = [tf.lite.Optimize.DEFAULT]
      converter.representative_dataset = _representative_dataset(
          representative_features)
    elif kind == "qat_int8":
      # Integer kernels from the FakeQuant ranges alone.  The int32 id inputs
      # carry no real-valued scale, hence the placeholder (mean, std) = (0, 1).
      converter.inference_type = tf.int8
      converter.quantized_input_stats = {name: (0.0, 1.0)
                                         for name in INPUT_NAMES}
    models[kind] = bytes(converter.convert())
  return models


def _frozen_graph_def(session, outputs):
  """The session's graph with variables turned into constants.

  Activation quantizers whose input is constant at inference (the ones QAT
  puts on NoNorm's beta and gamma, reference_spec 6.3) are replaced by
  constants holding their fake-quantized values.  Nothing is lost: the range
  such a quantizer learns is the constant's own min/max widened to 0, which
  is what TF-Lite gives any constant.  Left as fake-quant ops, TF 2.15's
  converter folds the last NoNorm's beta into the SQuAD head's bias as an int8
  tensor, which the FULLY_CONNECTED kernel then rejects.

  Returns:
    A GraphDef.
  """
  graph_def = tf.graph_util.convert_variables_to_constants(
      session, session.graph.as_graph_def(),
      [tensor.op.name for tensor in outputs.values()])
  nodes = {node.name: node for node in graph_def.node}

  def is_constant(input_name):
    node = nodes[input_name.split(":")[0]]
    while node.op == "Identity":
      node = nodes[node.input[0].split(":")[0]]
    return node.op == "Const"

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


def _representative_dataset(representative_features):
  """A calibration generator yielding [input_ids, input_mask, segment_ids]."""
  def generate():
    for feature in representative_features:
      yield [np.array([feature[name]], dtype=np.int32) for name in INPUT_NAMES]
  return generate


def _write_saved_model(session, inputs, outputs, export_dir):
  """Writes export_dir/saved_model (signature serving_default), atomically.

  The SavedModel is built in a temporary directory beside the final one and
  renamed into place; an existing export is removed only after that.

  Returns:
    The SavedModel directory.
  """
  final_dir = os.path.join(export_dir, SAVED_MODEL_DIR)
  staging_root = tempfile.mkdtemp(prefix="." + SAVED_MODEL_DIR + ".",
                                  dir=export_dir)
  try:
    staging_dir = os.path.join(staging_root, SAVED_MODEL_DIR)
    builder = tf.saved_model.builder.SavedModelBuilder(staging_dir)
    signature = tf.saved_model.signature_def_utils.predict_signature_def(
        inputs=dict(inputs), outputs=dict(outputs))
    builder.add_meta_graph_and_variables(
        session, [tf.saved_model.tag_constants.SERVING],
        signature_def_map={
            tf.saved_model.signature_constants
            .DEFAULT_SERVING_SIGNATURE_DEF_KEY: signature})
    builder.save()
    if os.path.isdir(final_dir):
      retired_dir = os.path.join(staging_root, "previous")
      os.rename(final_dir, retired_dir)
    os.rename(staging_dir, final_dir)
  finally:
    shutil.rmtree(staging_root, ignore_errors=True)
  return final_dir


def write_file_atomically(path, data):
  """Writes bytes to `path` via a temporary file in the same directory."""
  handle, temp_path = tempfile.mkstemp(
      prefix="." + os.path.basename(path) + ".", suffix=".tmp",
      dir=os.path.dirname(os.path.abspath(path)))
  try:
    with os.fdopen(handle, "wb") as writer:
      writer.write(data)
    # mkstemp creates the file private (0600); give it the usual mode.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temp_path, 0o666 & ~umask)
    os.replace(temp_path, path)
  except BaseException:
    if os.path.exists(temp_path):
      os.remove(temp_path)
    raise


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
  output_metadata = [
      metadata_info.TensorMd(name=name, description=descriptions[name])
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

  Tensors are found by name, never by position (the original's runner read
  end_logits as start_logits).  int8/uint8 inputs and outputs are quantized
  and dequantized with their own quantization parameters.
  """

  def __init__(self, path, num_threads=2):
    """Loads `path`.

    Raises:
      ValueError: the file is missing or lacks a needed input tensor.
    """
    if not tf.gfile.Exists(path):
      raise ValueError("TF-Lite model %s does not exist." % path)
    self.path = path
    self._interpreter = _make_interpreter(path, num_threads)
    self._interpreter.allocate_tensors()
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


def _make_interpreter(path, num_threads):
  """A tf.lite.Interpreter; TF 1.15's takes no num_threads (one thread)."""
  if tf_compat.IS_TF2:
    return tf.lite.Interpreter(model_path=path, num_threads=num_threads)
  return tf.lite.Interpreter(model_path=path)


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
  flags.DEFINE_string(
      "representative_file", None,
      "TFRecord of features (input_ids, input_mask, segment_ids of length "
      "--max_seq_length), e.g. run_squad's train.tf_record, for "
      "--activation_quantization.")
  flags.DEFINE_integer("num_representative_features", 100,
                       "How many records of --representative_file to use.")
  flags.DEFINE_string("vocab_file", None,
                      "WordPiece vocabulary to embed as Task Library metadata.")
  flags.DEFINE_string("spm_model_file", None,
                      "SentencePiece model to embed instead of --vocab_file.")
  flags.DEFINE_bool("do_lower_case", True,
                    "Whether the tokenizer lower-cases (metadata).")


def _validate_flags():
  """Checks the command-line flags before any graph is built.

  Raises:
    ValueError: naming the offending flags.
  """
  flags_values = tf.flags.FLAGS
  for name in ("bert_config_file", "init_checkpoint", "export_dir"):
    if not getattr(flags_values, name):
      raise ValueError("--%s is required." % name)
  if not tf.gfile.Exists(flags_values.bert_config_file):
    raise ValueError("--bert_config_file=%s does not exist." %
                     flags_values.bert_config_file)
  modeling.resolve_checkpoint_path(flags_values.init_checkpoint)
  check_export_supported(flags_values.use_quantized_training,
                         flags_values.use_post_quantization,
                         flags_values.activation_quantization)
  needs_calibration = (flags_values.activation_quantization and
                       not flags_values.use_quantized_training)
  if needs_calibration and not flags_values.representative_file:
    raise ValueError("--activation_quantization on a float checkpoint needs "
                     "--representative_file (the calibration features).")
  if (flags_values.representative_file and
      not tf.gfile.Exists(flags_values.representative_file)):
    raise ValueError("--representative_file=%s does not exist." %
                     flags_values.representative_file)
  if flags_values.task == "classifier" and not flags_values.num_labels:
    raise ValueError("--task=classifier needs --num_labels.")
  if flags_values.num_representative_features <= 0:
    raise ValueError("--num_representative_features must be positive.")


def read_representative_features(path, max_seq_length, limit):
  """The first `limit` features of a TFRecord file as export() expects them.

  Raises:
    ValueError: a record lacks a field or has the wrong length.
  """
  features = []
  for record in tf.python_io.tf_record_iterator(path):
    example = tf.train.Example.FromString(record)
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
    if len(features) >= limit:
      break
  return features


def main(_):
  tf.logging.set_verbosity(tf.logging.INFO)
  _validate_flags()
  flags_values = tf.flags.FLAGS
  bert_config = modeling.BertConfig.from_json_file(
      flags_values.bert_config_file)
  representative = None
  if flags_values.activation_quantization and not (
      flags_values.use_quantized_training):
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
      representative_features=representative,
      vocab_file=flags_values.vocab_file,
      spm_model_file=flags_values.spm_model_file,
      do_lower_case=flags_values.do_lower_case)
  for kind, path in sorted(paths.items()):
    tf.logging.info("  %s: %s", kind, path)


if __name__ == "__main__":
  _define_flags()
  tf.app.run()
