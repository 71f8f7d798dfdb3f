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
                               activation range calibrated on the calibration
                               features (written beside the dynamic-range one).
  model_qat_int8.tflite        --use_quantized_training --use_post_quantization
                               on a QAT checkpoint: integer only, with the
                               ranges learned in training; the tensors the QAT
                               scheme learns no range for (dense outputs into
                               residual adds, the embeddings, the head) are
                               calibrated on the calibration features.
  model_int8_float_softmax.tflite, model_qat_int8_float_softmax.tflite
                               --float_softmax beside an integer model: the
                               same model with each attention softmax in
                               float32 (DEQUANTIZE -> SOFTMAX -> QUANTIZE),
                               for x86 CPUs; see `float_softmax` below.

Integer-only means what runs between the int32 inputs and the float32
outputs is int8 (int32 for biases): the converter may use int8 builtins only,
and the written model is checked op by op; an op that would compute in float
stops the export with its name (tflite_conversion.IntegerExportError).
Some range choices
differ from the converter's own, for speed or accuracy on phones:

* with the additive mask, masked keys get a calibrated score just below the
  real ones instead of their own score minus 10000
  (`tflite_conversion.calibrate_masked_key_scores`), so
  the int8 range of the masked scores is the real scores' range;
* the second operand of each attention matmul (K and V) is quantized
  symmetrically, which XNNPACK needs to run int8 BATCH_MATMUL, and
  near-empty calibrated scales are widened to XNNPACK's ratio limits; dense
  biases the converter wrote in another unit are re-expressed in the one
  the kernels read (`tflite_flatbuffer.runtime_compatible_quantization`);
* in a QAT graph, two quantizers in a row share the intersection of their
  ranges, so the int8 tensor clips where the trained graph does (the graph
  freezing in tflite_conversion).

The float-softmax file is for CPUs running XNNPACK (LiteRT's default on
x86): XNNPACK takes SOFTMAX in float only, so in the integer-only file the
attention softmaxes run on TF-Lite's builtin int8 kernel (a scalar loop on
one thread on x86) and cut the delegated graph into one partition per layer.
With the softmax in float the whole model but the embedding lookups runs in
one XNNPACK partition.  The integer-only file stays the one for integer-only
accelerators (EdgeTPU, NNAPI, Hexagon) and phones' int8 paths.

Every export logs a table of the written model's ops by type and dtype.

The work is split by concern: tflite_conversion (the TensorFlow side:
serving graph, restore, converter calls, calibration), tflite_flatbuffer
(reading and editing written files), tflite_metadata (Task Library
metadata) and tflite_runner (running a written file); this module decides
which files to write, drives the others and stages the result.

Every TF-Lite file keeps the phone-friendly I/O of the float model: int32 ids
inputs and float32 outputs (int8 models quantize and dequantize inside), so
the TFLite Task Library and `tflite_runner.LiteModel` use any of them the
same way.  When
tflite-support is installed (requirements-metadata.txt) and a vocabulary or
SentencePiece model is given, the files carry Task Library metadata
(BertQuestionAnswerer for SQuAD, BertNLClassifier for classification).

Which files are written is decided once, from the export flags, by
`file_kinds`, which refuses on TF 1.15 the integer models that need TF
2.15's converter, before any graph is built.  An export is built in a staging
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
import itertools
import os

from google.protobuf import message
import tensorflow.compat.v1 as tf

import atomic_files
import checkpoints
import common_flags
import feature_records
import file_checks
import modeling
import run_utils
import tf_compat
import tflite_conversion
import tflite_flatbuffer
import tflite_metadata
import tflite_runner
import tokenization

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


def file_kinds(use_quantized_training=False, use_post_quantization=False,
               activation_quantization=False, float_softmax=False):
  """The TF-Lite files the export flags ask for, as TFLITE_FILES kinds.

  The one place the seed README's flags are read: scripts call it while
  validating their flags and pass the kinds on (export(), needs_calibration).

    (none)                                    float
    --use_post_quantization                   float, dynamic_range
      --activation_quantization               ... int8
      --use_quantized_training (QAT)          float, qat_int8
    --float_softmax                           ... and the integer kind's
                                              float-softmax twin

  Args:
    use_quantized_training: the checkpoint was fine-tuned with fake-quant nodes.
    use_post_quantization: write a quantized TF-Lite model.
    activation_quantization: calibrate activations on calibration features.
    float_softmax: also write the integer model with float attention softmaxes.

  Returns:
    Tuple of kinds, in writing order.

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
  kinds = ["float"]
  if use_post_quantization:
    if use_quantized_training:
      kinds.append("qat_int8")
    else:
      kinds.append("dynamic_range")
      if activation_quantization:
        kinds.append("int8")
  kinds += [kind for kind, integer_kind in FLOAT_SOFTMAX_KINDS.items()
            if float_softmax and integer_kind in kinds]
  return tuple(kinds)


def calibration_inputs(features):
  """`calibration_features` for export() from featurised examples.

  Args:
    features: objects with .input_ids, .input_mask and .segment_ids (SQuAD
      or GLUE InputFeatures).

  Returns:
    list of dicts name -> list of ints, one per feature.
  """
  return [{"input_ids": list(f.input_ids), "input_mask": list(f.input_mask),
           "segment_ids": list(f.segment_ids)} for f in features]


def needs_calibration(kinds):
  """Whether writing `kinds` needs calibration features.

  An integer model does: a calibrated one takes all its activation ranges
  from them, a QAT one the ranges its fake-quant nodes do not learn.
  """
  return bool(set(kinds) & set(INTEGER_KINDS))


def export(bert_config, checkpoint, export_dir, max_seq_length,
           kinds=("float",), task="squad", num_labels=None,
           use_quantized_training=False, calibration_features=None,
           vocab_file=None, spm_model_file=None, do_lower_case=True):
  """Writes a SavedModel and TF-Lite models for one checkpoint.

  Args:
    bert_config: modeling.BertConfig of the checkpoint.
    checkpoint: checkpoint prefix, `.index`/`.data-*` path or directory.
    export_dir: output directory (created if needed).
    max_seq_length: static sequence length S of the exported inputs [1, S].
    kinds: the TF-Lite files to write, from file_kinds(); "float" always.
    task: "squad" (start/end logits) or "classifier" (probabilities).
    num_labels: classifier classes (1 for regression); only for "classifier".
    use_quantized_training: build the graph with fake-quant nodes and read
      their ranges from the (QAT) checkpoint; "qat_int8" needs it, "int8"
      and "dynamic_range" refuse it.
    calibration_features: list of dicts with int lists "input_ids",
      "input_mask", "segment_ids" of length max_seq_length; the calibration
      set of the integer kinds (see needs_calibration).
    vocab_file: WordPiece vocabulary to embed as Task Library metadata.
    spm_model_file: SentencePiece model to embed instead of a vocabulary.
    do_lower_case: the tokenizer's casing; the Task Library metadata has no
      casing option, so a cased WordPiece model gets a warning.

  Returns:
    dict kind -> path, kinds "saved_model" and those of TFLITE_FILES written.

  Raises:
    ValueError: bad arguments, or a checkpoint that does not match the graph.
  """
  _check_kinds(kinds, use_quantized_training)
  integer_kinds = [kind for kind in kinds if kind in INTEGER_KINDS]
  calibration_features = (calibration_features if integer_kinds else None)
  _validate_export_args(bert_config, max_seq_length, task, num_labels,
                        use_quantized_training, integer_kinds,
                        calibration_features, vocab_file, spm_model_file)
  prefix = checkpoints.resolve_checkpoint_path(checkpoint)
  tf.gfile.MakeDirs(export_dir)

  if integer_kinds:
    calibration_features = tflite_conversion.with_padding(
        calibration_features)
  masks_additively = (
      modeling.effective_mask_mode(bert_config, use_quantized_training) ==
      modeling.MASK_MODE_ADDITIVE)
  with tflite_conversion.converter_on_path(), atomic_files.staging_directory(
      export_dir) as staging_dir:
    graph = tf.Graph()
    with graph.as_default():
      inputs, outputs, attention_maps = (
          tflite_conversion.build_inference_graph(
              bert_config, max_seq_length, task, num_labels,
              use_quantized_training))
      with tf.Session(graph=graph) as session:
        tflite_conversion.restore(session, prefix, use_quantized_training)
        models = tflite_conversion.float_models(
            session, inputs, outputs,
            [k for k in kinds if k in ("float", "dynamic_range")])
        tflite_conversion.write_saved_model(
            session, inputs, outputs,
            os.path.join(staging_dir, SAVED_MODEL_DIR))
        masked_key_scores = None
        if integer_kinds and masks_additively:
          masked_key_scores = tflite_conversion.calibrate_masked_key_scores(
              session, inputs, attention_maps, calibration_features)
    for kind in integer_kinds:
      models[kind] = tflite_conversion.integer_model(
          kind, bert_config, prefix, max_seq_length, task, num_labels,
          use_quantized_training, calibration_features, masked_key_scores)
    for kind in kinds:
      if kind in FLOAT_SOFTMAX_KINDS:
        models[kind] = tflite_conversion.with_float_softmax(
            kind, models[FLOAT_SOFTMAX_KINDS[kind]])
    for kind, model in models.items():
      _log_op_table(kind, model)
      model = tflite_metadata.add_metadata(model, task, vocab_file,
                                           spm_model_file, do_lower_case)
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


def _check_kinds(kinds, use_quantized_training):
  """Raises ValueError for kinds export() cannot write together.

  file_kinds() only returns writable sets; this guards direct callers.
  """
  unknown = sorted(set(kinds) - set(TFLITE_FILES))
  if unknown:
    raise ValueError("Unknown TF-Lite kinds %s; expected some of %s." %
                     (unknown, list(TFLITE_FILES)))
  if "float" not in kinds:
    raise ValueError("Every export writes the float model; kinds %s lack "
                     "\"float\"." % (list(kinds),))
  for kind, integer_kind in FLOAT_SOFTMAX_KINDS.items():
    if kind in kinds and integer_kind not in kinds:
      raise ValueError("%s is made from %s, which kinds %s lack." %
                       (kind, integer_kind, list(kinds)))
  from_float_checkpoint = set(kinds) & {"dynamic_range", "int8"}
  if "qat_int8" in kinds and not use_quantized_training:
    raise ValueError("qat_int8 needs use_quantized_training (a QAT graph "
                     "and checkpoint).")
  if from_float_checkpoint and use_quantized_training:
    raise ValueError("%s are made from a float checkpoint, not with "
                     "use_quantized_training." % sorted(from_float_checkpoint))
  if needs_calibration(kinds) and not tf_compat.IS_TF2:
    raise ValueError("Integer TF-Lite export (%s) needs the TF 2.15 runtime."
                     % ", ".join(k for k in kinds if k in INTEGER_KINDS))


def _validate_export_args(bert_config, max_seq_length, task, num_labels,
                          use_quantized_training, integer_kinds,
                          calibration_features, vocab_file,
                          spm_model_file):
  """Raises ValueError for arguments that cannot give a useful export."""
  if task not in tflite_conversion.OUTPUT_NAMES:
    raise ValueError("Unknown export task %r; expected one of %s." %
                     (task, sorted(tflite_conversion.OUTPUT_NAMES)))
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
  if integer_kinds and not calibration_features:
    raise ValueError(
        "An integer TF-Lite model needs calibration_features (the "
        "calibration set): a float checkpoint has no activation ranges, and "
        "a QAT checkpoint has none for the tensors its fake-quant nodes do "
        "not cover.")
  for index, feature in enumerate(calibration_features or ()):
    for name in tflite_runner.INPUT_NAMES:
      if len(feature.get(name, ())) != max_seq_length:
        raise ValueError(
            "calibration_features[%d][%r] must have length "
            "max_seq_length=%d (got %d)." %
            (index, name, max_seq_length, len(feature.get(name, ()))))


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


def define_flags():
  """The script's flags: the shared ones (common_flags) and its own."""
  common_flags.define_model_flags()
  common_flags.define_tokenizer_flags()
  common_flags.define_max_seq_length_flag(384)
  common_flags.define_task_flags("squad")
  common_flags.define_export_flags()
  tf.flags.DEFINE_string(
      "representative_file", None,
      "TFRecord of features (input_ids, input_mask, segment_ids of length "
      "--max_seq_length), e.g. run_squad's train.tf_record, for "
      "--activation_quantization.")
  tf.flags.DEFINE_integer("num_representative_features", CALIBRATION_EXAMPLES,
                          "How many records of --representative_file to use.")
  # --helpshort lists the shared flags with the script's own.
  tf.flags.adopt_module_key_flags(common_flags)


def _validate_flags():
  """Checks the command-line flags before any graph is built.

  Every problem is reported, one line each, and the run exits (status 1).

  Returns:
    (the BertConfig of --bert_config_file, the file kinds to write).
  """
  flags_values = tf.flags.FLAGS
  problems = run_utils.FlagProblems("export_tflite.py")
  problems.require_flags(flags_values, "bert_config_file", "init_checkpoint",
                         "export_dir")
  bert_config = problems.load_config("bert_config_file",
                                     flags_values.bert_config_file)
  problems.call(file_checks.check_writable_dir, flags_values.export_dir,
                "export_dir")
  kinds = problems.call(file_kinds, flags_values.use_quantized_training,
                        flags_values.use_post_quantization,
                        flags_values.activation_quantization,
                        flags_values.float_softmax)
  if kinds and needs_calibration(kinds):
    problems.require_file(
        "representative_file", flags_values.representative_file,
        "an integer model (--use_post_quantization with "
        "--activation_quantization or --use_quantized_training): the "
        "calibration features")
  elif flags_values.representative_file:
    problems.require_file("representative_file",
                          flags_values.representative_file, "calibration")
  tasks = sorted(tflite_conversion.OUTPUT_NAMES)
  problems.check(flags_values.task in tasks, "--task must be one of %s, got "
                 "%r." % (", ".join(tasks), flags_values.task))
  problems.check(flags_values.task != "classifier" or flags_values.num_labels,
                 "--task=classifier needs --num_labels.")
  problems.positive(flags_values, "num_representative_features")
  if bert_config is not None:
    if flags_values.init_checkpoint:
      problems.call(checkpoints.check_checkpoint, flags_values.init_checkpoint,
                    bert_config, prefix="--init_checkpoint: ")
    for name in ("vocab_file", "spm_model_file"):
      path = getattr(flags_values, name)
      if path:
        problems.call(tokenization.create_tokenizer,
                      vocab_size=bert_config.vocab_size,
                      prefix="--%s=%s: " % (name, path), **{name: path})
  problems.exit_if_any()
  return bert_config, kinds


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
    for name in tflite_runner.INPUT_NAMES:
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
  bert_config, kinds = _validate_flags()
  with run_utils.one_line_errors("export_tflite.py"):  # IntegerExportError too.
    calibration = None
    if needs_calibration(kinds):
      calibration = read_representative_features(
          flags_values.representative_file, flags_values.max_seq_length,
          flags_values.num_representative_features)
    # export() logs each file it writes.
    export(
        bert_config, flags_values.init_checkpoint, flags_values.export_dir,
        flags_values.max_seq_length, kinds=kinds, task=flags_values.task,
        num_labels=flags_values.num_labels,
        use_quantized_training=flags_values.use_quantized_training,
        calibration_features=calibration,
        vocab_file=flags_values.vocab_file,
        spm_model_file=flags_values.spm_model_file,
        do_lower_case=flags_values.do_lower_case)


if __name__ == "__main__":
  define_flags()
  tf.app.run()
