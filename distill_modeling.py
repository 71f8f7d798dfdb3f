"""Teacher/student graph, distillation targets and knowledge-transfer losses.

The student (scope `bert`, heads `cls/...`) and, for distillation, the frozen
teacher (scope `teacher/bert`, MLM head `teacher/cls/predictions`) read the
same inputs.  Phase 1 of MobileBERT pretraining (progressive layer-wise
knowledge transfer) trains the student on the transfer losses of one layer at
a time; phase 2 trains it on masked-LM (targets mixing the teacher's
distribution with the ground truth) plus next-sentence prediction; those
heads and losses are heads.py's.
"""

import collections

import tensorflow.compat.v1 as tf

import heads
import layer_schedule
import modeling

FEATURE_MAP_LOSS = "feature_map_transfer_loss"
ATTENTION_LOSS = "attention_transfer_loss"
MEAN_LOSS = "mean_transfer_loss"
VARIANCE_LOSS = "variance_transfer_loss"
TRANSFER_LOSS_NAMES = (FEATURE_MAP_LOSS, ATTENTION_LOSS, MEAN_LOSS,
                       VARIANCE_LOSS)

# Standardisation epsilon of the feature-map loss (docs/distillation.md, 3).
STANDARDIZE_EPSILON = 1e-12

DistillFactors = collections.namedtuple(
    "DistillFactors", ["attention", "hidden", "beta", "gamma"])


def check_teacher_compatible(student_config, teacher_config):
  """Raises ValueError if the teacher cannot be paired with the student.

  Layer-wise transfer pairs student layer l with teacher layer l, so the
  teacher needs at least as many layers, the same residual width and the same
  number of heads; the student is seeded with the teacher's embeddings and
  heads and learns from its MLM distribution, so vocabulary, embedding size
  and trigram input must agree too.
  """
  problems = []
  if teacher_config.num_hidden_layers < student_config.num_hidden_layers:
    problems.append("num_hidden_layers: teacher %d < student %d" %
                    (teacher_config.num_hidden_layers,
                     student_config.num_hidden_layers))
  for key in ("hidden_size", "num_attention_heads", "vocab_size",
              "embedding_size", "trigram_input"):
    teacher_value = getattr(teacher_config, key)
    student_value = getattr(student_config, key)
    if teacher_value != student_value:
      problems.append("%s: teacher %s != student %s" %
                      (key, teacher_value, student_value))
  if problems:
    raise ValueError(
        "The teacher config cannot teach the student config: " +
        "; ".join(problems))


def build_models(bert_config, teacher_config, input_ids, input_mask,
                 segment_ids, is_training, use_one_hot_embeddings, use_einsum):
  """Builds the student and, if `teacher_config` is set, the teacher.

  The student has no dropout whenever a teacher is present, the regime the
  published student was distilled in; the teacher never has dropout.

  Args:
    bert_config: student BertConfig.
    teacher_config: teacher BertConfig or None.
    input_ids, input_mask, segment_ids: int32 [batch, seq].
    is_training: bool, training mode (dropout for a lone student).
    use_one_hot_embeddings: bool, one-hot word lookup (TPU).
    use_einsum: bool, einsum formulation of dense layers and attention.

  Returns:
    (student BertModel, teacher BertModel or None).
  """
  student = modeling.BertModel(
      config=bert_config,
      is_training=is_training and teacher_config is None,
      input_ids=input_ids,
      input_mask=input_mask,
      token_type_ids=segment_ids,
      use_one_hot_embeddings=use_one_hot_embeddings,
      use_einsum=use_einsum)
  if teacher_config is None:
    return student, None
  with tf.variable_scope(modeling.TEACHER_SCOPE):
    teacher = modeling.BertModel(
        config=teacher_config,
        is_training=False,
        input_ids=input_ids,
        input_mask=input_mask,
        token_type_ids=segment_ids,
        use_one_hot_embeddings=use_one_hot_embeddings,
        use_einsum=use_einsum)
  return student, teacher


def teacher_mlm_probabilities(teacher_config, teacher, positions, temperature,
                              use_einsum=True):
  """The teacher's MLM distribution at `positions`, [batch * P, vocab].

  softmax(teacher logits / temperature): a temperature above 1 softens the
  targets (docs/distillation.md, section 5).
  """
  with tf.variable_scope(modeling.TEACHER_SCOPE):
    logits = heads.masked_lm_logits(
        teacher_config, teacher.get_sequence_output(),
        teacher.get_embedding_table(), positions, use_einsum=use_einsum)
  return tf.nn.softmax(logits / temperature, axis=-1)


def masked_lm_targets(label_ids, vocab_size, teacher_probs=None,
                      ground_truth_ratio=1.0):
  """MLM target distribution [batch * P, vocab], gradient-free.

  Args:
    label_ids: int32 [batch, P], the original tokens.
    vocab_size: int.
    teacher_probs: float [batch * P, vocab] or None for one-hot targets.
    ground_truth_ratio: weight r of the one-hot in
      teacher_probs * (1 - r) + one_hot * r.

  Returns:
    float32 [batch * P, vocab].
  """
  one_hot = tf.one_hot(tf.reshape(label_ids, [-1]), depth=vocab_size,
                       dtype=tf.float32)
  if teacher_probs is None or ground_truth_ratio == 1.0:
    return one_hot
  mixed = (teacher_probs * (1.0 - ground_truth_ratio) +
           one_hot * ground_truth_ratio)
  return tf.stop_gradient(mixed)


def standardize(hidden):
  """(x - mean) / sqrt(var + 1e-12) over the last axis, no parameters.

  tf.nn.moments creates no variable, so distillation checkpoints hold only
  the models' variables.
  """
  mean, variance = tf.nn.moments(hidden, [-1], keep_dims=True)
  return (hidden - mean) * tf.rsqrt(variance + STANDARDIZE_EPSILON)


def feature_map_transfer_loss(teacher_hidden, student_hidden):
  """MSE between standardised hidden states, padding included.

  Args:
    teacher_hidden: float [batch, seq, hidden] (no gradient flows into it).
    student_hidden: float [batch, seq, hidden].

  Returns:
    Scalar mean over batch * seq * hidden.
  """
  teacher_norm = tf.stop_gradient(standardize(teacher_hidden))
  student_norm = standardize(student_hidden)
  return tf.reduce_mean(tf.squared_difference(teacher_norm, student_norm))


def attention_transfer_loss(teacher_scores, student_scores):
  """Cross-entropy of the student's attention against the teacher's.

  Args:
    teacher_scores: float [batch, heads, seq, seq], masked pre-softmax scores.
    student_scores: float [batch, heads, seq, seq].

  Returns:
    Scalar: mean over (batch, heads, from) of -sum_to p_t log p_s.
  """
  teacher_probs = tf.stop_gradient(tf.nn.softmax(teacher_scores, axis=-1))
  student_log_probs = tf.nn.log_softmax(student_scores, axis=-1)
  return tf.reduce_mean(
      -tf.reduce_sum(teacher_probs * student_log_probs, axis=-1))


def hidden_statistics(hidden):
  """Mean and biased variance over the last axis, keepdims."""
  mean = tf.reduce_mean(hidden, axis=-1, keepdims=True)
  variance = tf.reduce_mean(tf.squared_difference(hidden, mean), axis=-1,
                            keepdims=True)
  return mean, variance


def mean_variance_transfer_losses(teacher_hidden, student_hidden):
  """Mean (beta) and variance (gamma) transfer losses.

  Args:
    teacher_hidden: float [..., batch, seq, hidden]: by default the stack of
      all teacher hidden states [L+1, batch, seq, hidden], with
      fix_stat_distill layer l's [batch, seq, hidden]
      (docs/distillation.md, section 3).
    student_hidden: float [batch, seq, hidden].

  Returns:
    (mean((mu_t - mu_s)^2), mean(|var_t - var_s|)), both broadcast over the
    teacher's leading axes.
  """
  teacher_mean, teacher_variance = hidden_statistics(
      tf.stop_gradient(teacher_hidden))
  student_mean, student_variance = hidden_statistics(student_hidden)
  mean_loss = tf.reduce_mean(tf.squared_difference(teacher_mean,
                                                   student_mean))
  variance_loss = tf.reduce_mean(tf.abs(teacher_variance - student_variance))
  return mean_loss, variance_loss


def layer_wise_transfer_losses(teacher, student, global_step, steps_per_phase,
                               factors, fix_stat_distill=False):
  """Phase-1 losses, each gated to the layer whose stage is active.

  Student layer l (output index l + 1) is paired with teacher layer l; the
  loss of layer l counts only for P l < global_step <= P (l + 1).  Totals are
  factor / L * sum_l gate_l * loss_l.  A factor of 0 leaves its term out; the
  mean and variance terms are built only when both of their factors are
  non-zero (docs/distillation.md, section 3).

  Args:
    teacher: teacher BertModel.
    student: student BertModel.
    global_step: scalar integer tensor.
    steps_per_phase: int P.
    factors: DistillFactors(attention, hidden, beta, gamma).
    fix_stat_distill: use teacher layer l's statistics for the mean/variance
      losses instead of the statistics of all teacher layers.

  Returns:
    OrderedDict loss name -> scalar float32 (all TRANSFER_LOSS_NAMES; absent
    terms are 0.0 constants).
  """
  teacher_hiddens = teacher.get_all_encoder_layers()
  student_hiddens = student.get_all_encoder_layers()
  teacher_maps = teacher.get_all_attention_maps()
  student_maps = student.get_all_attention_maps()
  num_layers = len(student_maps)
  stacked_teacher = None
  if not fix_stat_distill and factors.beta and factors.gamma:
    stacked_teacher = tf.stack(teacher_hiddens, axis=0)

  terms = collections.OrderedDict((name, []) for name in TRANSFER_LOSS_NAMES)
  for layer in range(num_layers):
    gate = layer_schedule.layer_loss_gate(global_step, layer, steps_per_phase)
    teacher_hidden = teacher_hiddens[layer + 1]
    student_hidden = student_hiddens[layer + 1]
    with tf.name_scope("hidden_distill_%d" % layer):
      if factors.hidden:
        terms[FEATURE_MAP_LOSS].append(
            gate * feature_map_transfer_loss(teacher_hidden, student_hidden))
      if factors.beta and factors.gamma:
        mean_loss, variance_loss = mean_variance_transfer_losses(
            teacher_hidden if fix_stat_distill else stacked_teacher,
            student_hidden)
        terms[MEAN_LOSS].append(gate * mean_loss)
        terms[VARIANCE_LOSS].append(gate * variance_loss)
    if factors.attention:
      with tf.name_scope("attention_distill_%d" % layer):
        terms[ATTENTION_LOSS].append(
            gate * attention_transfer_loss(teacher_maps[layer],
                                           student_maps[layer]))

  factor_of = {FEATURE_MAP_LOSS: factors.hidden,
               ATTENTION_LOSS: factors.attention,
               MEAN_LOSS: factors.beta,
               VARIANCE_LOSS: factors.gamma}
  losses = collections.OrderedDict()
  for name, gated in terms.items():
    if gated:
      losses[name] = tf.identity(
          factor_of[name] / num_layers * tf.add_n(gated), name=name)
    else:
      losses[name] = tf.constant(0.0, name=name)
  return losses
