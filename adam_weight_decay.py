"""BERT's Adam with decoupled weight decay, the base of both optimizers.

`optimization.create_optimizer(optimizer="adamw")` builds this class, and
`lamb_optimizer` builds LAMB on its moment update.  Both implement the
`tf.train.Optimizer` slot/update hooks instead of overriding
`apply_gradients`, so that the base class performs the cross-replica
gradient reduction under `tf.distribute` strategies and the same code runs
on one device, several GPUs or (through CrossShardOptimizer) a TPU.
"""

import re

import tensorflow.compat.v1 as tf


def matches_any(name, patterns):
  """Whether a variable name matches (re.search) any of `patterns`."""
  return any(re.search(p, name) is not None for p in patterns or [])


def variable_name(var):
  """The name of a variable without the ":0" suffix."""
  return var.op.name


class AdamWeightDecayOptimizer(tf.train.Optimizer):
  """BERT's Adam: no bias correction, decoupled L2 weight decay.

  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
  u = m / (sqrt(v) + eps) + wd * w (unless excluded);  w <- w - lr * u.
  Slots are named <var>/adam_m and <var>/adam_v, as in released checkpoints.
  Sparse (embedding) gradients are applied as dense updates, exactly like the
  original: every row's moments decay every step.
  """

  def __init__(self, learning_rate, weight_decay_rate=0.0, beta_1=0.9,
               beta_2=0.999, epsilon=1e-6, exclude_from_weight_decay=None,
               name="AdamWeightDecayOptimizer"):
    super(AdamWeightDecayOptimizer, self).__init__(False, name)
    self.learning_rate = learning_rate
    self.weight_decay_rate = weight_decay_rate
    self.beta_1 = beta_1
    self.beta_2 = beta_2
    self.epsilon = epsilon
    self.exclude_from_weight_decay = exclude_from_weight_decay

  def _create_slots(self, var_list):
    for var in var_list:
      self._zeros_slot(var, "m", "adam_m")
      self._zeros_slot(var, "v", "adam_v")

  def _prepare(self):
    self._lr_t = tf.convert_to_tensor(self.learning_rate, name="learning_rate")

  def _use_weight_decay(self, var):
    return (self.weight_decay_rate != 0.0 and
            not matches_any(variable_name(var), self.exclude_from_weight_decay))

  def adam_update(self, grad, var, gate=None):
    """Updates the moments of `var` and returns (update direction, assigns).

    Args:
      grad: dense gradient, same shape as `var`.
      var: the variable.
      gate: optional scalar float tensor in {0, 1} multiplying the new
        moments and the decay term (LAMB's layer-wise warm-up).

    Returns:
      (u, [m_assign, v_assign]) with u = m/(sqrt(v)+eps) [+ wd * w].
    """
    m = self.get_slot(var, "m")
    v = self.get_slot(var, "v")
    grad = tf.cast(grad, var.dtype.base_dtype)
    next_m = (tf.multiply(self.beta_1, m) +
              tf.multiply(1.0 - self.beta_1, grad))
    next_v = (tf.multiply(self.beta_2, v) +
              tf.multiply(1.0 - self.beta_2, tf.square(grad)))
    if gate is not None:
      next_m = tf.multiply(gate, next_m)
      next_v = tf.multiply(gate, next_v)
    update = next_m / (tf.sqrt(next_v) + self.epsilon)
    if self._use_weight_decay(var):
      decay = tf.multiply(self.weight_decay_rate, var)
      if gate is not None:
        decay = tf.multiply(gate, decay)
      update += decay
    return update, [m.assign(next_m), v.assign(next_v)]

  def _apply_dense(self, grad, var):
    update, moment_assigns = self.adam_update(grad, var)
    lr = tf.cast(self._lr_t, var.dtype.base_dtype)
    return tf.group(var.assign_sub(lr * update), *moment_assigns)

  def _resource_apply_dense(self, grad, var):
    return self._apply_dense(grad, var)

  def _apply_sparse(self, grad, var):
    return self._apply_dense(tf.convert_to_tensor(grad), var)

  def _resource_apply_sparse(self, grad, var, indices):
    num_rows = tf.shape(var)[0]
    return self._apply_dense(
        tf.math.unsorted_segment_sum(grad, indices, num_rows), var)
