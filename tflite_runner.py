"""Runs exported TF-Lite models: the `.tflite` runner and its I/O contract.

Every file export_tflite.py writes takes the int32 inputs INPUT_NAMES
([1, max_seq_length] each) and gives float32 outputs by name
(start_logits / end_logits for SQuAD, probabilities for a classifier).
`LiteModel` runs any of them, and files from other tools that name their
inputs the Task Library's way (ids, mask, segment_ids), one example at a
time, on LiteRT when it is installed.  This module needs no converter:
predicting with a file (run_squad.py / run_classifier.py --lite_model_path)
imports it alone.
"""

import numpy as np
import tensorflow.compat.v1 as tf

import console
import file_checks
import modeling
import tf_compat

INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
# The word embedding table's tensor in every exported file: [vocab, dims].
WORD_EMBEDDINGS = modeling.MODEL_SCOPE + "/embeddings/word_embeddings"
# Interpreter tensor names that mean the same input (Task Library style names,
# or names from a SavedModel signature).
_INPUT_ALIASES = {"input_ids": ("input_ids", "ids"),
                  "input_mask": ("input_mask", "mask"),
                  "segment_ids": ("segment_ids", "input_type_ids")}


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
