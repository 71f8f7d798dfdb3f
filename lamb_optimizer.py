"""LAMB with MobileBERT's progressive layer-wise warm-up gating.

Update for a variable w with gradient g (no bias correction):
  m <- gate * (b1 m + (1-b1) g);  v <- gate * (b2 v + (1-b2) g^2)
  u = m / (sqrt(v) + eps) + gate * wd * w        (decay unless excluded)
  r = ||w|| / ||u|| if both are > 0 else 1       (1 for excluded variables)
  w <- w - lr_mult * r * lr * u

Without layer-wise warm-up gate = lr_mult = 1.  With it, the global step s
selects a stage l = ceil(s / P) - 1 (P = steps per stage) and, for a student
variable under bert/encoder/layer_{i}/:
  lr_mult = 3 * background(s) * c_i(s);  gate = 1 if lr_mult > 0 else 0,
with background and c_i from `layer_schedule`.
Every other variable (embeddings, heads) has lr_mult = gate = 0, so it stays
frozen; at each stage boundary t = 0 makes every gate 0, which resets all
moments.
"""

import tensorflow.compat.v1 as tf

import adam_weight_decay
import layer_schedule


class LAMBOptimizer(adam_weight_decay.AdamWeightDecayOptimizer):
  """Layer-wise adaptive moments (LAMB) with optional layer-wise warm-up.

  Slots are <var>/adam_m and <var>/adam_v like AdamWeightDecayOptimizer.
  `exclude_from_layer_adaptation` defaults to `exclude_from_weight_decay`.
  """

  def __init__(self, learning_rate, weight_decay_rate=0.0, beta_1=0.9,
               beta_2=0.999, epsilon=1e-6, exclude_from_weight_decay=None,
               exclude_from_layer_adaptation=None, use_layer_wise_warmup=False,
               steps_per_phase=1, name="LAMBOptimizer"):
    super(LAMBOptimizer, self).__init__(
        learning_rate=learning_rate,
        weight_decay_rate=weight_decay_rate,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
        exclude_from_weight_decay=exclude_from_weight_decay,
        name=name)
    if exclude_from_layer_adaptation is None:
      exclude_from_layer_adaptation = exclude_from_weight_decay
    self.exclude_from_layer_adaptation = exclude_from_layer_adaptation
    self.use_layer_wise_warmup = use_layer_wise_warmup
    self.steps_per_phase = max(int(steps_per_phase), 1)
    self._global_step = None

  def apply_gradients(self, grads_and_vars, global_step=None, name=None):
    """As tf.train.Optimizer; layer-wise warm-up reads `global_step`."""
    if self.use_layer_wise_warmup and global_step is None:
      raise ValueError("LAMB layer-wise warm-up needs the global_step passed "
                       "to apply_gradients")
    self._global_step = global_step
    return super(LAMBOptimizer, self).apply_gradients(
        grads_and_vars, global_step=global_step, name=name)

  def _prepare(self):
    super(LAMBOptimizer, self)._prepare()
    if self.use_layer_wise_warmup:
      self._step_t = tf.identity(self._global_step)
      self._background_t = layer_schedule.background_lr(
          self._step_t, self.steps_per_phase)

  def _lr_multiplier_and_gate(self, var):
    """(lr_mult, gate) scalars for `var`, or (None, None) when ungated."""
    if not self.use_layer_wise_warmup:
      return None, None
    layer_id = layer_schedule.encoder_layer_id(
        adam_weight_decay.variable_name(var))
    if layer_id is None:
      return tf.constant(0.0), tf.constant(0.0)
    lr_mult = (layer_schedule.ACTIVE_LAYER_LR_MULTIPLIER *
               self._background_t *
               layer_schedule.layer_stage_value(self._step_t, layer_id,
                                                self.steps_per_phase))
    gate = tf.cast(lr_mult > 0.0, tf.float32)
    return lr_mult, gate

  def _apply_dense(self, grad, var):
    lr_mult, gate = self._lr_multiplier_and_gate(var)
    update, moment_assigns = self.adam_update(grad, var, gate=gate)
    ratio = 1.0
    if not adam_weight_decay.matches_any(
        adam_weight_decay.variable_name(var),
        self.exclude_from_layer_adaptation):
      w_norm = tf.norm(var, ord=2)
      u_norm = tf.norm(update, ord=2)
      ratio = tf.where(
          tf.greater(w_norm, 0.0),
          tf.where(tf.greater(u_norm, 0.0), w_norm / u_norm, 1.0), 1.0)
    step_size = ratio * tf.cast(self._lr_t, var.dtype.base_dtype)
    if lr_mult is not None:
      step_size *= lr_mult
    return tf.group(var.assign_sub(step_size * update), *moment_assigns)
