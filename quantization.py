"""Fake-quantization helpers for quantization-aware training (QAT).

The quantizers of docs/quantization_and_export.md (section 1), with core
ops only:

* activations: per-tensor asymmetric range, tracked as a zero-debiased moving
  average (decay 0.999) of the batch min/max while training, so the first
  update equals the batch value; fixed at the stored range otherwise;
* weights: per-tensor symmetric, narrow range ([-127, 127]), the range being
  the last value of max(|min w|, |max w|).

Both create scalar `min`/`max` variables (initial -6/+6, non-trainable, only in
GLOBAL_VARIABLES) in a default-name scope directly under the caller's scope:
`MobileBertActFakeQuantWithMinMaxVars[_N]` and
`MobileBertWeightFakeQuantWithMinMaxVars[_N]`, the names QAT checkpoints hold
(docs/quantization_and_export.md, section 2).
"""

import tensorflow.compat.v1 as tf

ACTIVATION_SCOPE = "MobileBertActFakeQuantWithMinMaxVars"
WEIGHT_SCOPE = "MobileBertWeightFakeQuantWithMinMaxVars"
EMA_DECAY = 0.999
NUM_BITS = 8
INITIAL_MIN = -6.0
INITIAL_MAX = 6.0


def is_range_variable(name):
  """True for a quantizer's state: its `min`/`max` and their moving averages.

  These variables are not trainable, but a QAT checkpoint is only whole with
  them: they are the ranges the model was trained and is exported with.
  """
  return ACTIVATION_SCOPE in name or WEIGHT_SCOPE in name


def range_variables():
  """The quantizer state variables of the current graph (see above)."""
  return [var for var in tf.global_variables()
          if is_range_variable(var.op.name)]


def _new_range_variables():
  """Creates the `min` and `max` scalars of one quantizer in the current scope."""
  collections = [tf.GraphKeys.GLOBAL_VARIABLES]
  min_var = tf.get_variable(
      "min", shape=[], dtype=tf.float32,
      initializer=tf.constant_initializer(INITIAL_MIN), trainable=False,
      collections=collections)
  max_var = tf.get_variable(
      "max", shape=[], dtype=tf.float32,
      initializer=tf.constant_initializer(INITIAL_MAX), trainable=False,
      collections=collections)
  return min_var, max_var


def _assign_zero_debiased_ema(variable, value, name):
  """Updates `variable` to the zero-debiased moving average of `value`.

  biased <- biased * decay + value * (1 - decay); step <- step + 1;
  variable <- biased / (1 - decay^step).  The first update therefore sets
  `variable` to `value` exactly, instead of pulling it 0.1% of the way from
  its initial +-6.  (tf.train.assign_moving_average does the same but is not
  exported by tensorflow.compat.v1.)

  Returns:
    The updated value of `variable`.
  """
  collections = [tf.GraphKeys.GLOBAL_VARIABLES]
  with tf.variable_scope(name):
    biased = tf.get_variable("biased", shape=[], dtype=tf.float32,
                             initializer=tf.zeros_initializer(),
                             trainable=False, collections=collections)
    local_step = tf.get_variable("local_step", shape=[], dtype=tf.float32,
                                 initializer=tf.zeros_initializer(),
                                 trainable=False, collections=collections)
    new_biased = tf.assign(biased, biased * EMA_DECAY + value * (1 - EMA_DECAY))
    new_step = tf.assign_add(local_step, 1.0)
    unbiased = new_biased / (1.0 - tf.pow(EMA_DECAY, new_step))
    return tf.assign(variable, unbiased)


def quantize_activation(inputs, is_training):
  """Fake-quantizes an activation tensor with a moving-average range.

  Args:
    inputs: float Tensor of any shape.
    is_training: if True, update the range from this batch (zero-debiased EMA)
      and quantize with the updated range; otherwise use the stored range.

  Returns:
    A Tensor of the same shape, rounded to 256 levels of the range.
  """
  with tf.variable_scope(None, default_name=ACTIVATION_SCOPE):
    min_var, max_var = _new_range_variables()
    if is_training:
      # The range must contain 0 so that zero padding stays exact.
      batch_min = tf.minimum(tf.reduce_min(inputs), 0.0)
      batch_max = tf.maximum(tf.reduce_max(inputs), 0.0)
      range_min = _assign_zero_debiased_ema(min_var, batch_min, "AssignMinEma")
      range_max = _assign_zero_debiased_ema(max_var, batch_max, "AssignMaxEma")
    else:
      range_min, range_max = min_var, max_var
    return tf.quantization.fake_quant_with_min_max_vars(
        inputs, range_min, range_max, num_bits=NUM_BITS, narrow_range=False)


def quantize_weight(weights, is_training):
  """Fake-quantizes a weight tensor to symmetric narrow-range int8.

  Args:
    weights: float Tensor (a kernel variable's value).
    is_training: if True, set the range to the current max |w| first.

  Returns:
    A Tensor of the same shape, rounded to 255 levels symmetric around 0.
  """
  with tf.variable_scope(None, default_name=WEIGHT_SCOPE):
    min_var, max_var = _new_range_variables()
    if is_training:
      magnitude = tf.maximum(
          tf.abs(tf.reduce_min(weights)), tf.abs(tf.reduce_max(weights)))
      range_min = tf.assign(min_var, -magnitude, name="AssignMinLast")
      range_max = tf.assign(max_var, magnitude, name="AssignMaxLast")
    else:
      range_min, range_max = min_var, max_var
    return tf.quantization.fake_quant_with_min_max_vars(
        weights, range_min, range_max, num_bits=NUM_BITS, narrow_range=True)
