"""How far a TF-Lite file of a fake-quant graph may be from that graph.

The file rounds tensors to grids (s the step of tensor t): the integer file
every int8 tensor, with the steps it records; a float file of the
fake-quant graph the graph's own quantizers.  Carried to a logit to first
order, with the gradients taken in the graph:

* independent errors uniform in +-s/2 give it a standard deviation
    sigma = sqrt(sum over t and elements i of (d logit / d t_i)^2 s_t^2 / 12);
  a file whose roundings are of that kind keeps every logit within
  ROUNDING_SIGMAS sigma of the graph's;
* a rounding that lands one grid point off (a float file where float32
  reordering carries a value across a grid point, an integer kernel's
  requantization) moves an element by a whole step, and on a trained model a
  few such elements can carry most of a logit's gradient.  Whatever the
  pattern, a file whose every rounded element is at most one step from the
  graph's keeps every logit within
    one_step = sum over t and i of |d logit / d t_i| s_t.
"""

import numpy as np
import tensorflow.compat.v1 as tf

import heads
import modeling
import tflite_runner

# For Gaussian deviations the largest of a few thousand logits is about 3.5
# sigma; 5 or more has a chance of about 1e-3 over 2,000 logits, and uniform
# roundings (bounded tails) make it smaller still.
ROUNDING_SIGMAS = 5.0


def int8_steps_by_op_name(path):
  """{TF op name: quantization step} of a .tflite file's int8 tensors (a
  tensor the converter fused carries its ops' names joined by ";")."""
  steps = {}
  for tensor in tf.lite.Interpreter(model_path=path).get_tensor_details():
    scale = tensor["quantization"][0]
    if tensor["dtype"] == np.int8 and scale > 0:
      for name in tensor["name"].split(";"):
        steps.setdefault(name, scale)
  return steps


def reads_any(op, sources):
  """Whether `op` depends on any of the ops `sources` in its graph."""
  seen, pending = {op}, [op]
  while pending:
    current = pending.pop()
    if current in sources:
      return True
    for tensor in current.inputs:
      if tensor.op not in seen:
        seen.add(tensor.op)
        pending.append(tensor.op)
  return False


def squad_logits_on_copies(config, seq_length, use_quantized_training):
  """heads.squad_logits, in the current graph, on 2 * seq_length copies of
  one feature (feed them with `feed_copies`).

  One backward pass then gives every logit's gradients: row j's logit j is
  differentiated (tf.linalg.diag_part of the logits), and the rows do not
  interact.

  Returns:
    (the three int32 placeholders [2 * seq_length, seq_length] in
    tflite_runner.INPUT_NAMES order, the logits [2 * seq_length,
    2 * seq_length]: start logits then end logits).
  """
  copies = 2 * seq_length
  placeholders = [tf.placeholder(tf.int32, [copies, seq_length])
                  for _ in tflite_runner.INPUT_NAMES]
  logits = tf.concat(heads.squad_logits(
      config, False, *placeholders,
      use_quantized_training=use_quantized_training), 1)
  return placeholders, logits


def feed_copies(placeholders, feature):
  """The feed of squad_logits_on_copies' placeholders for `feature` (a dict
  of input_ids, input_mask and segment_ids)."""
  copies = int(placeholders[0].shape[0])
  return dict(zip(placeholders, [[list(feature[name])] * copies
                                 for name in tflite_runner.INPUT_NAMES]))


def qat_squad_logits_and_bounds(config_dict, checkpoint, features,
                                seq_length, tflite_path=None):
  """The fake-quant SQuAD graph's logits and their rounding bounds.

  The graph is heads.squad_logits with use_quantized_training, restored from
  `checkpoint` (straight-through gradients at its quantizers).  The rounded
  tensors are every int8 tensor of `tflite_path`, or without it the graph's
  own activation quantizers with their learned steps (the roundings a float
  file of the fake-quant graph repeats).

  The gradients come from squad_logits_on_copies (every rounded tensor is
  batch-major).

  Args:
    config_dict: the QAT BertConfig as a dict.
    checkpoint: the QAT checkpoint prefix.
    features: dicts with input_ids, input_mask and segment_ids, each a list
      of seq_length ints.
    seq_length: the sequence length.
    tflite_path: an integer .tflite file exported from `checkpoint`, or None.

  Returns:
    [(logits, sigma, one_step)] per feature, each a float array
    [2 * seq_length]: start logits then end logits.
  """
  config = modeling.BertConfig.from_dict(config_dict)
  copies = 2 * seq_length
  with tf.Graph().as_default() as graph:
    placeholders, logits = squad_logits_on_copies(config, seq_length, True)
    # Activation quantizers (a variable's, as the weights' and the NoNorm
    # scales', reads no input).
    inputs = {placeholder.op for placeholder in placeholders}
    activation_quantizers = [
        op for op in graph.get_operations()
        if op.type == "FakeQuantWithMinMaxVars" and reads_any(op, inputs)]
    assert activation_quantizers
    if tflite_path is None:
      rounded = activation_quantizers
      steps = [(op.inputs[2] - op.inputs[1]) / 255.0 for op in rounded]
    else:
      file_steps = int8_steps_by_op_name(tflite_path)
      rounded = [op for op in graph.get_operations()
                 if op.name in file_steps and op.outputs and
                 op.outputs[0].dtype == tf.float32 and
                 op.type not in ("Const", "VariableV2", "Identity")]
      steps = [file_steps[op.name] for op in rounded]
      # Every activation quantizer is an int8 tensor of the file, named
      # after the quantizer or after the op it quantizes.
      matched = {op.name for op in rounded}
      for op in activation_quantizers:
        assert op.name in matched or op.inputs[0].op.name in matched, op.name
    # A tensor without the batch dimension would sum the rows' gradients.
    # Those are functions of the weights alone (the NoNorm scales and
    # offsets, the position-embedding slice, the head's kernel rows): left
    # out, as the kernels' own rounding is.
    batch_major = [op.outputs[0].shape[0] in (copies, copies * seq_length)
                   for op in rounded]
    for op, kept in zip(rounded, batch_major):
      assert kept or not reads_any(op, inputs), op.name
    steps = [step for step, kept in zip(steps, batch_major) if kept]
    gradients = tf.gradients(tf.linalg.diag_part(logits), [
        op.outputs[0] for op, kept in zip(rounded, batch_major) if kept])
    reached = [i for i, gradient in enumerate(gradients)
               if gradient is not None]
    gradients = [gradients[i] for i in reached]
    results = []
    with tf.Session() as session:
      tf.train.Saver().restore(session, checkpoint)
      if tflite_path is None:
        steps = session.run(steps)
      steps = [steps[i] for i in reached]
      for feature in features:
        expected, values = session.run(
            [logits[0], gradients], feed_copies(placeholders, feature))
        rows = [np.reshape(value, [copies, -1]) for value in values]
        variance = sum(np.sum(row ** 2, axis=1) * step ** 2
                       for row, step in zip(rows, steps)) / 12.0
        one_step = sum(np.sum(np.abs(row), axis=1) * step
                       for row, step in zip(rows, steps))
        results.append((expected, np.sqrt(variance), one_step))
  return results
