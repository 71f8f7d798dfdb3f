"""Reading and editing TF-Lite flatbuffers: bytes in, bytes out.

No graph and no session: these functions read a written `.tflite` model
(its ops, their dtypes, its tensors' quantization) and return edited copies.
export_tflite.py applies them to the models TF 2.15's converter writes:

  runtime_compatible_quantization   puts an integer model's quantization in
                                    the form the int8 kernels (XNNPACK's
                                    included) assume;
  float_attention_softmax           moves an integer model's attention
                                    softmaxes to float32 so that XNNPACK
                                    runs them;
  float_compute_ops, op_table       what the export checks and logs.

The schema module ships with TF 2.15 only; on TF 1.15 `read_ops` and
`op_table` return None and the edits are never reached (integer export is
refused there before any graph is built)."""

import collections

import numpy as np


def _schema():
  """TF-Lite's flatbuffer schema module (TF 2.15), or None on TF 1.15."""
  try:
    from tensorflow.lite.python import schema_py_generated  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return schema_py_generated


def _enum_names(enum_class):
  return {value: name for name, value in vars(enum_class).items()
          if not name.startswith("_")}


# One operator of a model: its type, input and output tensor indices
# (optional inputs, -1, left out) and their dtype names, its first output's name.
Operator = collections.namedtuple(
    "Operator", ["op_type", "inputs", "outputs", "input_dtypes",
                 "output_dtypes", "name"])


def _operators(model):
  """The Operators of every subgraph of a model, in execution order."""
  parsed = _EditableModel(model)
  type_names = _enum_names(parsed.schema.TensorType)
  for subgraph in parsed.model.subgraphs:
    tensors = subgraph.tensors
    for operator in subgraph.operators:
      inputs = [i for i in (operator.inputs if operator.inputs is not None
                            else []) if i >= 0]
      outputs = list(operator.outputs)
      yield Operator(
          parsed.op_type(operator), inputs, outputs,
          [type_names[tensors[i].type].lower() for i in inputs],
          [type_names[tensors[i].type].lower() for i in outputs],
          _tensor_name(tensors[outputs[0]]))


def read_ops(model):
  """The operators of a TF-Lite model, read from its flatbuffer.

  Args:
    model: model bytes.

  Returns:
    List of (op type, [input dtype names], [output dtype names], first output
    tensor name) in execution order, optional inputs left out; None on TF
    1.15, whose TF-Lite package has no schema module.
  """
  if _schema() is None:
    return None
  return [(op.op_type, op.input_dtypes, op.output_dtypes, op.name)
          for op in _operators(model)]


class _EditableModel(object):
  """A TF-Lite flatbuffer unpacked for editing tensor quantization (TF 2.15)."""

  def __init__(self, model):
    self.schema = _schema()
    self.model = self.schema.ModelT.InitFromObj(
        self.schema.Model.GetRootAs(model, 0))
    self._op_names = _enum_names(self.schema.BuiltinOperator)

  def op_type(self, operator):
    return self._op_names.get(
        _builtin_code(self.model.operatorCodes[operator.opcodeIndex]),
        "CUSTOM")

  def opcode_index(self, op_name):
    """The index of builtin op `op_name`'s operator code, added if absent.

    An added code gets version 2, the one TF 2.15's converter writes for
    the ops added here: DEQUANTIZE from int8 and QUANTIZE to int8.
    """
    builtin = getattr(self.schema.BuiltinOperator, op_name)
    for index, code in enumerate(self.model.operatorCodes):
      if _builtin_code(code) == builtin:
        return index
    code = self.schema.OperatorCodeT()
    code.builtinCode = builtin
    # Codes past 127 live only in builtinCode (see op_type).
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 2
    self.model.operatorCodes.append(code)
    return len(self.model.operatorCodes) - 1

  def to_bytes(self):
    import flatbuffers  # pylint: disable=g-import-not-at-top  (TF 2.15 only)
    builder = flatbuffers.Builder(1024)
    builder.Finish(self.model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _builtin_code(operator_code):
  # Codes past 127 live only in builtinCode; older ones in both fields.
  return max(operator_code.builtinCode, operator_code.deprecatedBuiltinCode)


def _tensor_name(tensor):
  return tensor.name.decode() if isinstance(tensor.name, bytes) else tensor.name


def _int8_range(quantization):
  """(min, max) real values of a per-tensor int8 quantization."""
  scale, zero_point = quantization.scale[0], quantization.zeroPoint[0]
  return (-128 - zero_point) * scale, (127 - zero_point) * scale


# Ops whose int8 output must carry the quantization of their first input
# (every input for CONCATENATION): they move values without requantizing.
_PARAMETER_TIED_OPS = ("RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS",
                       "GATHER", "STRIDED_SLICE", "PAD", "UNPACK",
                       "CONCATENATION")
# The scale ratios XNNPACK's int8 operators accept (it refuses to create the
# whole delegate otherwise): FULLY_CONNECTED and BATCH_MATMUL need
# input * filter / output < 2^8; MUL needs a * b / output in [2^-16, 2^8);
# ADD and SUB need each input / output in [2^-10, 2^8).
_MAX_REQUANTIZATION_RATIO = 2.0 ** 8
_MIN_MUL_RATIO = 2.0 ** -16
_MIN_ADD_RATIO = 2.0 ** -10
# Widened scales land this far inside the bound, clear of float rounding.
_RATIO_MARGIN = 1.01


def runtime_compatible_quantization(model):
  """Edits an integer model's quantization to what the int8 kernels assume.

  Three edits, on tensors TF 2.15's calibrating converter quantizes in ways
  the kernels read differently or refuse (one operator LiteRT's XNNPACK
  delegate refuses keeps the delegate from the whole model):

  * every FULLY_CONNECTED's int32 bias is expressed in input scale x filter
    scale, the unit every int8 kernel adds it in.  The converter writes some
    QAT biases in another unit (after the demo's QAT, the first dense layer
    of most FFN blocks, read up to 1.44 times too large), which XNNPACK
    silently runs with the wrong bias and TF-Lite's own kernel refuses;
  * the second operand of every int8 BATCH_MATMUL (K and V) gets zero point
    0, XNNPACK's condition for that op: its range is widened to the
    symmetric one covering it, scale max(|min|, |max|) / 127;
  * a near-empty calibrated range (a ReLU block no calibration feature
    activates, attention scores ~0 in a layer: both happen after short
    training) gives scales near 1e-8 whose ratios to their neighbours leave
    XNNPACK's limits; each such scale is widened just enough, its zero point
    kept, so the range still covers what calibration saw and the values lost
    are below the resolution of the tensors they are combined with.

  The last two change every tensor tied to the edited one through
  `_PARAMETER_TIED_OPS` and re-express the bias of a FULLY_CONNECTED
  reading it (`_TiedQuantization.set_scale_and_biases`); constants and SOFTMAX outputs are
  never changed.

  Args:
    model: integer model bytes.

  Returns:
    (model bytes, biases re-expressed, operands made symmetric, tensors
    widened).
  """
  editable = _EditableModel(model)
  num_biases = num_symmetric = num_widened = 0
  for subgraph in editable.model.subgraphs:
    tied = _TiedQuantization(editable, subgraph)
    num_biases += _biases_in_accumulator_units(tied)
    num_symmetric += _symmetric_matmul_operands(tied)
    num_widened += _widen_near_empty_scales(tied)
  return editable.to_bytes(), num_biases, num_symmetric, num_widened


def _is_dense_with_bias(op_type, operator):
  """A FULLY_CONNECTED with a bias tensor (-1 or absent: none)."""
  return (op_type(operator) == "FULLY_CONNECTED" and
          len(operator.inputs) > 2 and operator.inputs[2] >= 0)


class _TiedQuantization(object):
  """The int8 quantization of one subgraph, edited group by group.

  Tensors joined by a `_PARAMETER_TIED_OPS` op must share one quantization,
  so an edit applies to the whole group; a group holding a constant or a
  SOFTMAX output (whose parameters the kernel fixes) cannot be edited.
  """

  def __init__(self, editable, subgraph):
    self.editable = editable
    self.subgraph = subgraph
    self.op_type = editable.op_type
    self.tensors = subgraph.tensors
    self.consumers = collections.defaultdict(list)
    parent = list(range(len(self.tensors)))

    def root(index):
      while parent[index] != index:
        parent[index] = parent[parent[index]]
        index = parent[index]
      return index

    for operator in subgraph.operators:
      for index in operator.inputs:
        self.consumers[index].append(operator)
      op_type = self.op_type(operator)
      if op_type in _PARAMETER_TIED_OPS:
        data = ([i for i in operator.inputs if i >= 0]
                if op_type == "CONCATENATION" else operator.inputs[:1])
        for index in list(data) + list(operator.outputs):
          parent[root(index)] = root(operator.outputs[0])
    groups = collections.defaultdict(list)
    for index in range(len(parent)):
      groups[root(index)].append(index)
    self.group = {index: groups[root(index)] for index in range(len(parent))}
    self.fixed = set()
    for index, tensor in enumerate(self.tensors):
      buffer = editable.model.buffers[tensor.buffer]
      if tensor.buffer and buffer.data is not None and len(buffer.data):
        self.fixed.update(self.group[index])
    for operator in subgraph.operators:
      if self.op_type(operator) == "SOFTMAX":
        self.fixed.update(self.group[operator.outputs[0]])
    self.changed = set()

  def scale(self, index):
    """The (largest) scale of an int8 tensor, or None for other tensors."""
    tensor = self.tensors[index]
    quantization = tensor.quantization
    if (tensor.type != self.editable.schema.TensorType.INT8 or
        quantization is None or quantization.scale is None or
        len(quantization.scale) == 0):
      return None
    return max(quantization.scale)

  def zero_point(self, index):
    return self.tensors[index].quantization.zeroPoint[0]

  def set_scale_and_biases(self, index, scale, zero_point=None):
    """Gives `index`'s group `scale` (and `zero_point`); False if fixed.

    The int32 bias of every FULLY_CONNECTED whose input is in the group is
    re-expressed in the new input scale (requantize_bias).
    """
    if index in self.fixed or self.scale(index) is None:
      return False
    for member in self.group[index]:
      if self.scale(member) is None:
        continue
      self.tensors[member].quantization.scale = [float(scale)]
      if zero_point is not None:
        self.tensors[member].quantization.zeroPoint = [zero_point]
      self.changed.add(member)
      for consumer in self.consumers[member]:
        if (_is_dense_with_bias(self.op_type, consumer) and
            consumer.inputs[0] == member):
          self.requantize_bias(consumer)
    return True

  def widen(self, index, scale):
    """Raises `index`'s scale to `scale` (zero point kept) if it is below."""
    return (self.scale(index) is not None and scale > self.scale(index) and
            self.set_scale_and_biases(index, scale))

  def requantize_bias(self, operator):
    """Re-expresses a FULLY_CONNECTED's int32 bias in input x filter scale.

    The int8 kernel takes the bias scale to be input scale * filter scale,
    so a changed input scale needs the bias values in the new unit.
    """
    bias = self.tensors[operator.inputs[2]]
    buffer = self.editable.model.buffers[bias.buffer]
    values = np.frombuffer(bytes(bytearray(buffer.data)), dtype="<i4")
    real = values.astype(np.float64) * np.asarray(bias.quantization.scale)
    new_scales = (self.tensors[operator.inputs[0]].quantization.scale[0] *
                  np.asarray(self.tensors[operator.inputs[1]].quantization.scale))
    limit = np.iinfo(np.int32)
    quantized = np.clip(np.round(real / new_scales), limit.min, limit.max)
    buffer.data = np.frombuffer(quantized.astype("<i4").tobytes(),
                                dtype=np.uint8)
    bias.quantization.scale = [float(value) for value in new_scales]
    bias.quantization.zeroPoint = [0] * len(new_scales)


# Relative difference between a bias scale and input x filter scale below
# which the bias is taken as already in accumulator units (float32 rounding).
_BIAS_SCALE_TOLERANCE = 1e-5


def _biases_in_accumulator_units(tied):
  """Re-expresses each FULLY_CONNECTED bias not in input x filter scale."""
  changed = 0
  for operator in tied.subgraph.operators:
    if (not _is_dense_with_bias(tied.op_type, operator) or
        tied.scale(operator.inputs[0]) is None):
      continue
    tensors = tied.tensors
    expected = (tied.scale(operator.inputs[0]) *
                np.asarray(tensors[operator.inputs[1]].quantization.scale))
    written = np.asarray(tensors[operator.inputs[2]].quantization.scale)
    if np.max(np.abs(written - expected) / expected) > _BIAS_SCALE_TOLERANCE:
      tied.requantize_bias(operator)
      changed += 1
  return changed


def _symmetric_matmul_operands(tied):
  """Zero point 0 for every int8 BATCH_MATMUL's second operand; the count."""
  changed = 0
  for operator in tied.subgraph.operators:
    if tied.op_type(operator) != "BATCH_MATMUL":
      continue
    operand = operator.inputs[1]
    if (tied.scale(operand) is None or
        tied.zero_point(operand) == 0):
      continue
    bound = max(abs(value) for value in
                _int8_range(tied.tensors[operand].quantization))
    changed += tied.set_scale_and_biases(operand, bound / 127.0, zero_point=0)
  return changed


def _widen_near_empty_scales(tied):
  """Widens the scales that break XNNPACK's ratio limits; the count."""
  scale = tied.scale
  before = len(tied.changed)
  for _ in range(10):
    changed = False
    for operator in tied.subgraph.operators:
      op_type = tied.op_type(operator)
      inputs = [i for i in operator.inputs if i >= 0]
      output = operator.outputs[0]
      if scale(output) is None or any(scale(i) is None for i in inputs[:2]):
        continue
      if op_type in ("FULLY_CONNECTED", "BATCH_MATMUL", "MUL"):
        product = scale(inputs[0]) * scale(inputs[1])
        if product / scale(output) >= _MAX_REQUANTIZATION_RATIO:
          changed |= tied.widen(
              output, product * _RATIO_MARGIN / _MAX_REQUANTIZATION_RATIO)
        elif op_type == "MUL" and product / scale(output) < _MIN_MUL_RATIO:
          smaller = min(inputs[:2], key=scale)
          other = inputs[1] if smaller == inputs[0] else inputs[0]
          changed |= tied.widen(
              smaller, _MIN_MUL_RATIO * _RATIO_MARGIN * scale(output) /
              scale(other))
      elif op_type in ("ADD", "SUB"):
        for index in inputs[:2]:
          ratio = scale(index) / scale(output)
          if ratio < _MIN_ADD_RATIO:
            changed |= tied.widen(
                index, _MIN_ADD_RATIO * _RATIO_MARGIN * scale(output))
          elif ratio >= _MAX_REQUANTIZATION_RATIO:
            changed |= tied.widen(
                output, scale(index) * _RATIO_MARGIN /
                _MAX_REQUANTIZATION_RATIO)
    if not changed:
      break
  return len(tied.changed) - before


def float_attention_softmax(model):
  """An integer model with its attention softmaxes computed in float32.

  Each int8 SOFTMAX over attention scores (rank 4: [1, heads, S, S]) becomes

    DEQUANTIZE (int8 scores -> float32) -> SOFTMAX (float32)
      -> QUANTIZE (float32 -> the int8 probabilities tensor)

  The int8 scores and probabilities tensors keep their quantization (the
  probabilities the softmax kernel's fixed scale 1/256, zero point -128), so
  everything around the island reads exactly what it read before.  Other
  softmaxes (a classifier head's) stay int8.  A QAT graph clips its scores
  to modeling.QAT_SCORE_CLIP right before the softmax; where that int8
  MINIMUM / MAXIMUM clamps at the end of the scores' own int8 range it
  changes no value, and it is left out (`_identity_clamp`), since XNNPACK
  takes neither op in int8.

  Why: XNNPACK takes SOFTMAX in float only.  An int8 SOFTMAX runs on
  TF-Lite's builtin kernel, which on x86 is a scalar loop on one thread, and
  splits the delegated graph around each attention layer; the three ops of
  the island all run in XNNPACK.

  Args:
    model: integer model bytes (TF 2.15).

  Returns:
    (model bytes, softmaxes moved to float32, identity clamps left out).
  """
  editable = _EditableModel(model)
  schema = editable.schema
  moved = 0
  clamps = set()
  for subgraph in editable.model.subgraphs:
    producer = {index: operator for operator in subgraph.operators
                for index in operator.outputs}
    num_readers = collections.Counter(
        index for operator in subgraph.operators for index in operator.inputs)
    operators = []
    for operator in subgraph.operators:
      scores = subgraph.tensors[operator.inputs[0]]
      if (editable.op_type(operator) != "SOFTMAX" or
          scores.type != schema.TensorType.INT8 or len(scores.shape) != 4):
        operators.append(operator)
        continue
      scores_index = operator.inputs[0]
      clamp = producer.get(scores_index)
      # A clamp whose output something else reads too must stay.
      while (clamp is not None and num_readers[scores_index] == 1 and
             _identity_clamp(editable, subgraph, clamp)):
        clamps.add(id(clamp))
        scores_index = _clamped_operand(editable, subgraph, clamp)
        clamp = producer.get(scores_index)
      float_scores = _add_float_twin(schema, subgraph, scores_index)
      float_probabilities = _add_float_twin(schema, subgraph,
                                            operator.outputs[0])
      dequantize = schema.OperatorT()
      dequantize.opcodeIndex = editable.opcode_index("DEQUANTIZE")
      dequantize.inputs, dequantize.outputs = [scores_index], [float_scores]
      quantize = schema.OperatorT()
      quantize.opcodeIndex = editable.opcode_index("QUANTIZE")
      quantize.inputs, quantize.outputs = [float_probabilities], [
          operator.outputs[0]]
      operator.inputs, operator.outputs = [float_scores], [float_probabilities]
      operators += [dequantize, operator, quantize]
      moved += 1
    subgraph.operators = [operator for operator in operators
                          if id(operator) not in clamps]
  return editable.to_bytes(), moved, len(clamps)


def _constant_int8(editable, subgraph, index):
  """The value of a scalar int8 constant tensor, or None for other tensors."""
  tensor = subgraph.tensors[index]
  data = editable.model.buffers[tensor.buffer].data
  if (tensor.type != editable.schema.TensorType.INT8 or not tensor.buffer or
      data is None or len(data) != 1):
    return None
  return int(np.asarray(data, dtype=np.uint8).view(np.int8)[0])


def _clamped_operand(editable, subgraph, operator):
  """The operand of a MINIMUM / MAXIMUM that is not a scalar constant."""
  first, second = operator.inputs[:2]
  return second if _constant_int8(editable, subgraph, first) is not None else (
      first)


def _identity_clamp(editable, subgraph, operator):
  """Whether an int8 MINIMUM / MAXIMUM leaves every value as it is.

  True when its operand, its output and its scalar constant share one
  quantization and the constant is the int8 end it clamps towards (127 for
  MINIMUM, -128 for MAXIMUM): no int8 value lies beyond it.
  """
  bound = {"MINIMUM": 127, "MAXIMUM": -128}.get(editable.op_type(operator))
  if bound is None or len(operator.inputs) != 2:
    return False
  operand = _clamped_operand(editable, subgraph, operator)
  constant = [i for i in operator.inputs if i != operand]
  if len(constant) != 1 or _constant_int8(editable, subgraph,
                                          constant[0]) != bound:
    return False

  def parameters(index):
    quantization = subgraph.tensors[index].quantization
    if quantization is None or quantization.scale is None:
      return None
    return (list(quantization.scale), list(quantization.zeroPoint))

  return (parameters(operand) is not None and
          parameters(operand) == parameters(operator.outputs[0]) ==
          parameters(constant[0]))


def _add_float_twin(schema, subgraph, index):
  """Appends an unquantized float32 tensor shaped like tensor `index`."""
  original = subgraph.tensors[index]
  twin = schema.TensorT()
  twin.shape = list(original.shape)
  if original.shapeSignature is not None:
    twin.shapeSignature = list(original.shapeSignature)
  twin.type = schema.TensorType.FLOAT32
  twin.buffer = 0  # Buffer 0 is the empty one: a tensor computed at run time.
  twin.name = _tensor_name(original) + "/float32"
  subgraph.tensors.append(twin)
  return len(subgraph.tensors) - 1


def float_compute_ops(model, float_softmax=False):
  """The ops of an integer model that compute in float32, as readable strings.

  In an integer-only model the only op allowed to touch float32 is a
  DEQUANTIZE (the ones that produce the float32 outputs).  With
  `float_softmax`, so is each attention softmax island that
  `float_attention_softmax` writes: a float32 SOFTMAX reading a DEQUANTIZE
  and read only by a QUANTIZE to int8.
  """
  ops = list(_operators(model))
  producer = {index: op for op in ops for index in op.outputs}
  readers = collections.defaultdict(list)
  for position, op in enumerate(ops):
    for index in op.inputs:
      readers[index].append(position)
  island = set()
  for position, op in enumerate(ops):
    if not (float_softmax and op.op_type == "SOFTMAX" and
            op.input_dtypes == ["float32"]):
      continue
    source = producer.get(op.inputs[0])
    quantizers = readers[op.outputs[0]]
    if (source is not None and source.op_type == "DEQUANTIZE" and
        quantizers and all(ops[reader].op_type == "QUANTIZE" and
                           ops[reader].output_dtypes == ["int8"]
                           for reader in quantizers)):
      island.add(position)
      island.update(quantizers)
  return ["%s -> %s (%s)" % (op.op_type, op.name,
                             "/".join(op.input_dtypes + op.output_dtypes))
          for position, op in enumerate(ops)
          if "float32" in op.input_dtypes + op.output_dtypes and
          op.op_type != "DEQUANTIZE" and position not in island]


def op_table(model):
  """Rows (op type, dtypes, count) of a TF-Lite model, or None on TF 1.15.

  The dtypes are those of the inputs that carry values, e.g. "float32/int8"
  for a dynamic-range FULLY_CONNECTED; int32 inputs (ids, indices, shapes,
  biases) are left out unless there is nothing else.  QUANTIZE and
  DEQUANTIZE are listed as "from->to".
  """
  ops = read_ops(model)
  if ops is None:
    return None
  counts = collections.Counter()
  for op, inputs, outputs, _ in ops:
    if op in ("QUANTIZE", "DEQUANTIZE"):
      dtype = "%s->%s" % (inputs[0], outputs[0])
    else:
      values = [dtype for dtype in inputs if dtype != "int32"] or inputs
      dtype = "/".join(sorted(set(values), key=values.index)) or "-"
    counts[(op, dtype)] += 1
  return [(op, dtype, count) for (op, dtype), count in sorted(counts.items())]
