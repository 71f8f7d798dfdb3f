"""The pretraining model of both phases, as an estimator model_fn.

`PretrainingModel` builds one batch's graph: the student (and, when
distilling, the frozen teacher), the masked-LM and next-sentence heads, the
losses of the phase and their metrics.  `model_fn_builder` wraps it with
checkpoint initialisation, the optimizer and the TensorBoard scalars.
run_pretraining.py drives it; bench/bench_pretraining.py times it.

Phase 1 (layer-wise knowledge transfer) trains on the gated transfer losses
with LAMB moving one layer per stage (layer_schedule.py) and keeps its peak
learning rate to the end; phase 2 trains masked-LM against the mixed targets
plus next-sentence prediction, its learning rate decaying to
PHASE_2_END_LR_RATE of the peak.  docs/distillation.md has the details.
"""

import collections

import tensorflow.compat.v1 as tf
import tensorflow.compat.v2 as tf2

import checkpoints
import distill_modeling
import estimator_utils
import heads
import layer_schedule
import modeling
import optimization

# Phase 1's model directory, under run_pretraining.py's --output_dir.
WARMUP_DIR = "warmup"
# --use_summary's scalars: output_dir/SUMMARY_DIR/{warmup,main}.
SUMMARY_DIR = "my_summary"
WARMUP_SUMMARY_NAME = "warmup"
MAIN_SUMMARY_NAME = "main"
PHASE_2_END_LR_RATE = 0.0001

PretrainingConfig = collections.namedtuple(
    "PretrainingConfig",
    ["bert_config",                 # the student's BertConfig.
     "teacher_config",              # BertConfig, or None: no teacher.
     "init_checkpoint",             # str or None.
     "learning_rate",               # float: the peak learning rate.
     "num_train_steps",             # int: the phase's length.
     "num_warmup_steps",            # int: linear warm-up (0 in phase 1).
     "optimizer",                   # "adamw" or "lamb".
     "weight_decay_rate",           # float.
     "use_tpu",                     # bool; also one-hot embedding lookups.
     "use_einsum",                  # bool.
     "layer_wise_warmup",           # bool: phase 1.
     "distill_factors",             # distill_modeling.DistillFactors.
     "distill_temperature",         # float: teacher MLM temperature.
     "distill_ground_truth_ratio",  # float: one-hot weight of MLM targets.
     "fix_stat_distill",            # bool: per-layer mean/variance stats.
     "summary_dir",                 # str or None: no scalars.
     "use_host_call"],              # bool: scalars via a TPU host_call.
    # From `optimizer` on, the flags' defaults (phase 2, no summaries).
    defaults=("adamw", 0.01, False, True, False, None, 1.0, 1.0, False, None,
              True))


def end_lr_rate(layer_wise_warmup):
  """The learning rate at the end of a phase, as a fraction of the peak."""
  return 1.0 if layer_wise_warmup else PHASE_2_END_LR_RATE


def steps_per_layer(config):
  """Phase 1's stage length P, or None in phase 2 (no layer gating)."""
  if not config.layer_wise_warmup:
    return None
  return layer_schedule.steps_per_layer(
      config.num_train_steps, config.bert_config.num_hidden_layers)


class PretrainingModel(object):
  """One batch's graph: models, heads, the phase's losses and metrics.

  Features: input_ids, input_mask, segment_ids [batch, seq] int32;
  masked_lm_positions, masked_lm_ids [batch, P] int32 and masked_lm_weights
  [batch, P] float32; next_sentence_labels [batch, 1] int32.

  Attributes:
    losses: OrderedDict name -> scalar; phase 1: the four transfer losses,
      phase 2: masked_lm_loss and next_sentence_loss.
    total_loss: their sum.
  """

  def __init__(self, config, features, is_training):
    self._features = features
    student, teacher = distill_modeling.build_models(
        config.bert_config, config.teacher_config, features["input_ids"],
        features["input_mask"], features["segment_ids"], is_training,
        config.use_tpu, config.use_einsum)
    # Created here, before the heads, so that a seeded run draws the same
    # initial values as it always has (op seeds follow creation order).
    global_step = tf.train.get_or_create_global_step()
    teacher_probs = None
    if teacher is not None:
      teacher_probs = distill_modeling.teacher_mlm_probabilities(
          config.teacher_config, teacher, features["masked_lm_positions"],
          config.distill_temperature, config.use_einsum)
    mlm_targets = distill_modeling.masked_lm_targets(
        features["masked_lm_ids"], config.bert_config.vocab_size,
        teacher_probs, config.distill_ground_truth_ratio)
    mlm_logits = heads.masked_lm_logits(
        config.bert_config, student.get_sequence_output(),
        student.get_embedding_table(), features["masked_lm_positions"],
        config.use_einsum)
    (masked_lm_loss, self._masked_lm_example_loss,
     self._masked_lm_log_probs) = heads.masked_lm_loss(
         mlm_logits, mlm_targets, features["masked_lm_weights"])
    (next_sentence_loss, self._next_sentence_example_loss,
     self._next_sentence_log_probs) = heads.next_sentence_output(
         config.bert_config, student.get_pooled_output(),
         features["next_sentence_labels"])
    if config.layer_wise_warmup:
      self.losses = distill_modeling.layer_wise_transfer_losses(
          teacher, student, global_step, steps_per_layer(config),
          config.distill_factors, config.fix_stat_distill)
    else:
      self.losses = collections.OrderedDict([
          ("masked_lm_loss", masked_lm_loss),
          ("next_sentence_loss", next_sentence_loss)])
    self.total_loss = tf.add_n(list(self.losses.values()), name="total_loss")

  def eval_metrics(self):
    """(metric_fn, tensors) for TPUEstimatorSpec(eval_metrics=...)."""
    return (metric_fn, [
        self._masked_lm_example_loss, self._masked_lm_log_probs,
        self._features["masked_lm_ids"], self._features["masked_lm_weights"],
        self._next_sentence_example_loss, self._next_sentence_log_probs,
        self._features["next_sentence_labels"]])

  def accuracies(self):
    """OrderedDict of the batch's masked-LM and next-sentence accuracy."""
    return collections.OrderedDict([
        ("masked_lm_accuracy", weighted_accuracy(
            self._masked_lm_log_probs, self._features["masked_lm_ids"],
            self._features["masked_lm_weights"])),
        ("next_sentence_accuracy", weighted_accuracy(
            self._next_sentence_log_probs,
            self._features["next_sentence_labels"]))])


def model_fn_builder(config):
  """The model_fn for TPUEstimator (or, converted, a distributed Estimator).

  Reads `config.init_checkpoint`'s variable names once, here.
  """
  init_from_teacher = bool(
      config.teacher_config is not None and config.init_checkpoint and
      (config.layer_wise_warmup or
       not checkpoints.holds_teacher_variables(config.init_checkpoint)))

  def model_fn(features, labels, mode, params):
    """The spec of TRAIN or EVAL."""
    del labels, params
    if mode not in (tf.estimator.ModeKeys.TRAIN, tf.estimator.ModeKeys.EVAL):
      raise ValueError("run_pretraining supports only TRAIN and EVAL, got %s" %
                       mode)
    tf.logging.info("*** Features ***")
    for name in sorted(features):
      tf.logging.info("  name = %s, shape = %s", name, features[name].shape)
    model = PretrainingModel(config, features,
                             mode == tf.estimator.ModeKeys.TRAIN)
    scaffold_fn = None
    if config.init_checkpoint:
      scaffold_fn = checkpoints.init_from_checkpoint(
          config.init_checkpoint, use_tpu=config.use_tpu,
          from_teacher=init_from_teacher)
    student_vars = [v for v in tf.trainable_variables() if not v.op.name
                    .startswith(modeling.TEACHER_SCOPE)]
    tf.logging.info("Trainable student parameters: %d",
                    modeling.count_parameters(student_vars))
    if mode == tf.estimator.ModeKeys.EVAL:
      return tf.estimator.tpu.TPUEstimatorSpec(
          mode=mode, loss=model.total_loss, eval_metrics=model.eval_metrics(),
          scaffold_fn=scaffold_fn)
    train_op = optimization.create_optimizer(
        model.total_loss, config.learning_rate, config.num_train_steps,
        config.num_warmup_steps, config.use_tpu, optimizer=config.optimizer,
        weight_decay_rate=config.weight_decay_rate,
        end_lr_rate=end_lr_rate(config.layer_wise_warmup),
        steps_per_layer=steps_per_layer(config))
    return tf.estimator.tpu.TPUEstimatorSpec(
        mode=mode, loss=model.total_loss, train_op=train_op,
        host_call=_summaries(config, model, train_op),
        training_hooks=estimator_utils.progress_hooks(
            model.total_loss, config.use_tpu, config.num_train_steps,
            features["input_ids"]),
        scaffold_fn=scaffold_fn)

  return model_fn


def _summaries(config, model, train_op):
  """Writes the phase's scalars when config.summary_dir is set.

  Returns:
    The TPU host_call, or None (no summaries, or tf.summary ops in the
    graph when not config.use_host_call).
  """
  if not config.summary_dir:
    return None
  scalars = collections.OrderedDict(model.losses)
  if not config.layer_wise_warmup:
    scalars.update(model.accuracies())
  scalars["loss"] = model.total_loss
  # The step the update was for: read after the update's increment and less
  # one.  Read beside the update, in the same session.run, the value would
  # be either side of the increment, as the scheduler happens to order them.
  with tf.control_dependencies([train_op]):
    step = tf.identity(tf.train.get_or_create_global_step()) - 1
  scalars["learning_rate"] = optimization.learning_rate_schedule(
      step, config.learning_rate, config.num_train_steps,
      config.num_warmup_steps, end_lr_rate(config.layer_wise_warmup))
  if config.use_host_call:
    return make_host_call(config.summary_dir, step, scalars)
  for name, value in scalars.items():
    tf.summary.scalar(name, value)
  return None


def metric_fn(masked_lm_example_loss, masked_lm_log_probs, masked_lm_ids,
              masked_lm_weights, next_sentence_example_loss,
              next_sentence_log_probs, next_sentence_labels):
  """MLM accuracy/loss (weighted by masked_lm_weights) and NSP accuracy/loss.

  Args:
    masked_lm_example_loss: [batch * P].
    masked_lm_log_probs: [batch * P, vocab].
    masked_lm_ids: [batch, P].
    masked_lm_weights: [batch, P].
    next_sentence_example_loss: [batch].
    next_sentence_log_probs: [batch, 2].
    next_sentence_labels: [batch, 1].

  Returns:
    dict of tf.metrics (value, update_op) pairs.
  """
  masked_lm_predictions = tf.argmax(masked_lm_log_probs, axis=-1,
                                    output_type=tf.int32)
  masked_lm_ids = tf.reshape(masked_lm_ids, [-1])
  masked_lm_weights = tf.reshape(masked_lm_weights, [-1])
  next_sentence_predictions = tf.argmax(next_sentence_log_probs, axis=-1,
                                        output_type=tf.int32)
  next_sentence_labels = tf.reshape(next_sentence_labels, [-1])
  return {
      "masked_lm_accuracy": tf.metrics.accuracy(
          labels=masked_lm_ids, predictions=masked_lm_predictions,
          weights=masked_lm_weights),
      "masked_lm_loss": tf.metrics.mean(
          values=masked_lm_example_loss, weights=masked_lm_weights),
      "next_sentence_accuracy": tf.metrics.accuracy(
          labels=next_sentence_labels, predictions=next_sentence_predictions),
      "next_sentence_loss": tf.metrics.mean(
          values=next_sentence_example_loss),
  }


def weighted_accuracy(log_probs, labels, weights=None):
  """Accuracy of argmax(log_probs) [N, C] against labels (any shape, N items).

  Weighted by `weights` (same size as labels) with 1e-5 added to the
  denominator, like the MLM loss.
  """
  predictions = tf.argmax(log_probs, axis=-1, output_type=tf.int32)
  correct = tf.cast(tf.equal(predictions, tf.reshape(labels, [-1])),
                    tf.float32)
  if weights is None:
    return tf.reduce_mean(correct)
  weights = tf.reshape(weights, [-1])
  return tf.reduce_sum(correct * weights) / (tf.reduce_sum(weights) + 1e-5)


def make_host_call(summary_dir, global_step, scalars):
  """A TPU-compatible host_call writing `scalars` to `summary_dir`.

  Args:
    summary_dir: TensorBoard log directory.
    global_step: scalar integer tensor, the step the scalars are written at.
    scalars: OrderedDict name -> scalar tensor.

  Returns:
    (host_call_fn, dict of [1]-shaped tensors) for TPUEstimatorSpec.
  """
  tensors = {"global_step": tf.reshape(global_step, [1])}
  for name, value in scalars.items():
    tensors[name] = tf.reshape(tf.cast(value, tf.float32), [1])

  def host_call_fn(**kwargs):
    """Runs on the host (CPU); each value has one row per host loop step."""
    step = tf.cast(kwargs.pop("global_step")[0], tf.int64)
    writer = tf2.summary.create_file_writer(summary_dir, max_queue=1000)
    with writer.as_default(), tf2.summary.record_if(True):
      for name in sorted(kwargs):
        tf2.summary.scalar(name, tf.reduce_mean(kwargs[name]), step=step)
      summary_ops = tf.summary.all_v2_summary_ops()
      # Flushed after every host call, so a killed run keeps the summaries
      # of every step it finished.
      with tf.control_dependencies(summary_ops):
        return summary_ops + [writer.flush()]

  return host_call_fn, tensors
