"""Optimizer construction: schedule, AdamW or LAMB, clipping, train op.

`create_optimizer` is shared by pretraining and every fine-tuning script.  It
builds the learning-rate schedule (linear warm-up, then linear decay to
`end_lr_rate * init_lr`), picks AdamW or LAMB, freezes every variable under
the `teacher` scope, clips the global gradient norm to 1.0 and returns a train
op that also increments the global step.

The optimizers themselves live in `adam_weight_decay.py` and
`lamb_optimizer.py`; this module depends on them, never the other way.
"""

import tensorflow.compat.v1 as tf

import adam_weight_decay
import lamb_optimizer
import modeling

# Variables whose name matches one of these regexes get no weight decay (and,
# for LAMB, no trust-ratio adaptation): the frozen teacher, every
# normalisation parameter and every bias.
EXCLUDE_FROM_WEIGHT_DECAY = [modeling.TEACHER_SCOPE, "LayerNorm", "layer_norm",
                             "bias", "FakeLayerNorm"]

OPTIMIZERS = ("adamw", "lamb")

ADAM_BETA_1 = 0.9
ADAM_BETA_2 = 0.999
ADAM_EPSILON = 1e-6
GRADIENT_CLIP_NORM = 1.0


def learning_rate_schedule(global_step, init_lr, num_train_steps,
                           num_warmup_steps, end_lr_rate=0.0001):
  """The learning rate at `global_step` as a scalar float32 tensor.

  lr(s) = (init_lr - end) * (1 - min(s, T) / T) + end, with
  end = init_lr * end_lr_rate and T = num_train_steps; for s < num_warmup_steps
  the linear ramp init_lr * s / num_warmup_steps replaces it.

  Args:
    global_step: scalar integer tensor.
    init_lr: float, the peak learning rate.
    num_train_steps: int > 0, the length of the decay.
    num_warmup_steps: int >= 0; 0 disables the warm-up ramp.
    end_lr_rate: float, the final learning rate as a fraction of init_lr.

  Returns:
    A scalar float32 tensor.
  """
  if num_train_steps <= 0:
    raise ValueError("num_train_steps must be positive, got %d" %
                     num_train_steps)
  if num_warmup_steps < 0:
    raise ValueError("num_warmup_steps must be >= 0, got %d" %
                     num_warmup_steps)
  step = tf.cast(global_step, tf.float32)
  end_lr = init_lr * end_lr_rate
  progress = tf.minimum(step, float(num_train_steps)) / float(num_train_steps)
  decayed_lr = (init_lr - end_lr) * (1.0 - progress) + end_lr
  if num_warmup_steps == 0:
    return decayed_lr
  warmup_lr = init_lr * step / float(num_warmup_steps)
  return tf.where(step < float(num_warmup_steps), warmup_lr, decayed_lr)


def create_optimizer(loss, init_lr, num_train_steps, num_warmup_steps, use_tpu,
                     optimizer="adamw", weight_decay_rate=0.01,
                     end_lr_rate=0.0001, steps_per_layer=None):
  """Builds the train op for `loss`.

  Args:
    loss: scalar float32 loss tensor.
    init_lr: float, peak learning rate.
    num_train_steps: int, length of the learning-rate schedule.
    num_warmup_steps: int, linear warm-up steps (0 for none).
    use_tpu: bool; wraps the optimizer in CrossShardOptimizer.
    optimizer: "adamw" or "lamb".
    weight_decay_rate: float, decoupled weight decay for non-excluded variables.
    end_lr_rate: float, final learning rate as a fraction of init_lr.
    steps_per_layer: phase 1's stage length P (layer_schedule.steps_per_layer);
      given, LAMB gates the layers progressively.  None for no gating.

  Returns:
    A train op that applies one update and increments the global step.

  Raises:
    ValueError: on an unknown optimizer, layer-wise warm-up without LAMB, or
      when there is nothing to train.
  """
  if optimizer not in OPTIMIZERS:
    raise ValueError("optimizer must be one of %s, got %r" %
                     (", ".join(OPTIMIZERS), optimizer))
  layer_wise = steps_per_layer is not None
  if layer_wise and optimizer != "lamb":
    raise ValueError(
        "layer-wise gating needs optimizer='lamb'; %r cannot gate layers"
        % optimizer)
  if layer_wise and steps_per_layer <= 0:
    raise ValueError("steps_per_layer must be positive, got %d" %
                     steps_per_layer)

  global_step = tf.train.get_or_create_global_step()
  learning_rate = learning_rate_schedule(global_step, init_lr, num_train_steps,
                                         num_warmup_steps, end_lr_rate)

  if optimizer == "lamb":
    opt = lamb_optimizer.LAMBOptimizer(
        learning_rate=learning_rate,
        weight_decay_rate=weight_decay_rate,
        beta_1=ADAM_BETA_1,
        beta_2=ADAM_BETA_2,
        epsilon=ADAM_EPSILON,
        exclude_from_weight_decay=EXCLUDE_FROM_WEIGHT_DECAY,
        use_layer_wise_warmup=layer_wise,
        steps_per_phase=steps_per_layer or 1)
  else:
    opt = adam_weight_decay.AdamWeightDecayOptimizer(
        learning_rate=learning_rate,
        weight_decay_rate=weight_decay_rate,
        beta_1=ADAM_BETA_1,
        beta_2=ADAM_BETA_2,
        epsilon=ADAM_EPSILON,
        exclude_from_weight_decay=EXCLUDE_FROM_WEIGHT_DECAY)

  if use_tpu:
    opt = tf.tpu.CrossShardOptimizer(opt)

  # The teacher is frozen by never differentiating with respect to it.
  tvars = [v for v in tf.trainable_variables()
           if not adam_weight_decay.variable_name(v).startswith(
               modeling.TEACHER_SCOPE)]
  if not tvars:
    raise ValueError("create_optimizer found no trainable non-teacher "
                     "variables")
  grads = tf.gradients(loss, tvars, colocate_gradients_with_ops=True)
  grads = clip_global_batch_gradients(grads)
  return opt.apply_gradients(zip(grads, tvars), global_step=global_step)


def _num_replicas():
  replica_context = tf.distribute.get_replica_context()
  return (replica_context.num_replicas_in_sync
          if replica_context is not None else 1)


def clip_global_batch_gradients(grads):
  """Clips gradients to GRADIENT_CLIP_NORM as one device would.

  On one device this is tf.clip_by_global_norm.  On TPU each core clips its
  own gradient before CrossShardOptimizer averages them, the way the
  published training ran (docs/distillation.md, section 6).  Under a tf.distribute strategy
  each replica holds the gradient of the mean loss over its share of the
  global batch, and the base optimizer sums the replicas' gradients.  Each
  gradient is divided by the replica count (so the sum is the global-batch
  mean) and clipped by the norm of that global-batch gradient, which takes
  one extra all-reduce: N replicas then take the step one device takes on
  the whole batch.  Clipping each replica by its own norm would make the
  step depend on the replica count whenever clipping is active.

  Args:
    grads: list of gradient tensors / IndexedSlices / None, of this replica.

  Returns:
    The clipped list (None entries kept), ready for apply_gradients.
  """
  num_replicas = _num_replicas()
  if num_replicas == 1:
    clipped, _ = tf.clip_by_global_norm(grads, clip_norm=GRADIENT_CLIP_NORM)
    return clipped
  scale = 1.0 / num_replicas
  scaled = [None if grad is None else tf.convert_to_tensor(grad) * scale
            for grad in grads]
  present = [grad for grad in scaled if grad is not None]
  clipped, _ = tf.clip_by_global_norm(
      scaled, clip_norm=GRADIENT_CLIP_NORM,
      use_norm=tf.linalg.global_norm(_sum_over_replicas(present)))
  return clipped


def _sum_over_replicas(values):
  """This replica's view of the sum of `values` over all replicas.

  A merge_call with batch_reduce_to, as the base optimizer reduces its
  gradients (ReplicaContext.all_reduce would wrap the sum in a custom
  gradient, which cannot find mirrored variables in graph mode).
  """
  def merge_fn(strategy, *per_replica_values):
    return strategy.extended.batch_reduce_to(
        tf.distribute.ReduceOp.SUM,
        [(value, value) for value in per_replica_values])

  return tf.distribute.get_replica_context().merge_call(merge_fn,
                                                        args=tuple(values))
