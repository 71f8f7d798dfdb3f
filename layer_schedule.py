"""MobileBERT's progressive layer-wise schedule, shared by LAMB and the losses.

Phase 1 of distillation trains one student layer per stage of P steps.  With
the global step s and t = s mod P:

  c_i(s) = 0 (s <= P i), 1 (P i < s <= P (i+1)), 0.1 (after)
  background(s) = min(0.9 + 0.1 sqrt(1 - t/P), 10 t/P)

`lamb_optimizer` multiplies layer i's step by 3 * background(s) * c_i(s);
`distill_modeling` switches layer i's transfer losses on while c_i(s) = 1.
docs/distillation.md describes the whole schedule.
"""

import re

import tensorflow.compat.v1 as tf

# The student's encoder layers; the teacher never gets gradients.
_LAYER_ID_PATTERN = re.compile(r"^bert/encoder/layer_(\d+)/")

ACTIVE_LAYER_LR_MULTIPLIER = 3.0
LOWER_LAYER_LR_FRACTION = 0.1


def steps_per_layer(num_distill_steps, num_layers):
  """P: the length of each layer's stage in phase 1 of `num_distill_steps`.

  The num_distill_steps mod num_layers steps left over come after the last
  stage, when every layer moves at LOWER_LAYER_LR_FRACTION.
  """
  return num_distill_steps // num_layers


def stage_start(layer_id, steps_per_phase):
  """The global step after which layer `layer_id`'s stage begins (P l)."""
  return steps_per_phase * layer_id


def background_lr(global_step, steps_per_phase):
  """The periodic ramp shared by all layers, a scalar float32 tensor.

  Args:
    global_step: scalar integer tensor.
    steps_per_phase: int, P; the ramp restarts every P steps.

  Returns:
    min(0.9 + 0.1 * sqrt(1 - t/P), 10 * t/P) with t = global_step mod P, or
    1.0 when P <= 1.
  """
  if steps_per_phase <= 1:
    return tf.constant(1.0)
  step_in_phase = tf.cast(tf.math.floormod(global_step, steps_per_phase),
                          tf.float32)
  fraction = step_in_phase / float(steps_per_phase)
  slow_decay = 0.9 + 0.1 * tf.sqrt(1.0 - fraction)
  ramp = 10.0 * fraction
  return tf.minimum(slow_decay, ramp)


def layer_stage_value(global_step, layer_id, steps_per_phase):
  """c_l(s): 0 before layer l's stage, 1 during it, 0.1 afterwards.

  Args:
    global_step: scalar integer tensor s.
    layer_id: int l.
    steps_per_phase: int P.

  Returns:
    Scalar float32 tensor (tf.train.piecewise_constant semantics with
    boundaries [P l, P (l+1)]: the stage is P l < s <= P (l+1)).
  """
  step = tf.cast(global_step, tf.int64)
  start = tf.constant(stage_start(layer_id, steps_per_phase), tf.int64)
  end = tf.constant(stage_start(layer_id + 1, steps_per_phase), tf.int64)
  after = tf.where(step <= end, tf.constant(1.0),
                   tf.constant(LOWER_LAYER_LR_FRACTION))
  return tf.where(step <= start, tf.constant(0.0), after)


def layer_loss_gate(global_step, layer_id, steps_per_phase):
  """1.0 while layer l's transfer losses are active (P l < s <= P (l+1))."""
  stage = layer_stage_value(global_step, layer_id, steps_per_phase)
  return tf.cast(stage > 0.5, tf.float32)


def encoder_layer_id(name):
  """The student layer index from a variable name, or None."""
  match = _LAYER_ID_PATTERN.match(name)
  return int(match.group(1)) if match else None
