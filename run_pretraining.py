"""MobileBERT pretraining: progressive knowledge transfer, then distillation.

Phase 1 (--layer_wise_warmup): the student learns the teacher's feature maps
and attention layer by layer for --num_distill_steps steps in
output_dir/warmup (student embeddings and heads copied from the teacher and
frozen; LAMB gates which layers move).
Phase 2: masked-LM against a mix of the teacher's distribution and the ground
truth (--distill_ground_truth_ratio) plus next-sentence prediction for
--num_train_steps steps in output_dir, optionally preceded by a round on
short sequences (--first_*).  Without --bert_teacher_config_file this is plain
BERT-style MLM + NSP pretraining.

Re-running the same command after an interruption resumes where it stopped:
a completed phase 1 is skipped, an incomplete one continues from its last
checkpoint, and phase 2 continues from output_dir.
"""

# First: it imports TensorFlow without its import-time noise (console.py).
import console  # pylint: disable=g-bad-import-order

import collections
import json
import os
import re
import sys

import tensorflow.compat.v1 as tf
import tensorflow.compat.v2 as tf2

import checkpoints
import directory_lock
import distill_modeling
import estimator_utils
import feature_records
import file_checks
import modeling
import optimization
import pretraining_data
import run_utils
import tf_compat

flags = tf.flags

FLAGS = flags.FLAGS

## Required parameters
flags.DEFINE_string(
    "bert_config_file", None,
    "The config json file of the (student) model. This specifies the model "
    "architecture.")

flags.DEFINE_string(
    "input_file", None,
    "Input TF example files (can be a glob or comma separated).")

flags.DEFINE_string(
    "output_dir", None,
    "The output directory where the model checkpoints will be written; phase "
    "1 writes to output_dir/warmup.")

## Other parameters
flags.DEFINE_string(
    "init_checkpoint", None,
    "Initial checkpoint: the teacher checkpoint for distillation, otherwise "
    "a checkpoint of the model itself (prefix, .index/.data file or "
    "directory).")

flags.DEFINE_integer(
    "max_seq_length", 128,
    "The maximum total input sequence length after WordPiece tokenization. "
    "Must match the data file.")

flags.DEFINE_integer(
    "max_predictions_per_seq", 20,
    "Maximum number of masked LM predictions per sequence. Must match the "
    "data file.")

flags.DEFINE_bool("do_train", False, "Whether to run training.")

flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")

flags.DEFINE_integer("train_batch_size", 32,
                     "Total batch size for training (over all replicas).")

flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.")

flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate.")

flags.DEFINE_integer("num_train_steps", 100000,
                     "Number of phase-2 training steps (also the length of "
                     "the learning-rate schedule).")

flags.DEFINE_integer("num_warmup_steps", 10000,
                     "Number of phase-2 learning-rate warm-up steps.")

flags.DEFINE_integer("save_checkpoints_steps", 1000,
                     "How often to save the model checkpoint.")

flags.DEFINE_integer("iterations_per_loop", 1000,
                     "How many steps to make in each estimator call.")

flags.DEFINE_integer("max_eval_steps", 100, "Maximum number of eval steps.")

flags.DEFINE_integer(
    "log_step_count_steps", 100,
    "How often the estimator writes its steps/sec summary (and, on TPU, logs "
    "the step rate and loss). Off TPU the progress line (step / total, loss, "
    "examples/s, time left) is logged every 60 s, or every "
    "$MOBILEBERT_PROGRESS_SECONDS.")

flags.DEFINE_integer("random_seed", None,
                     "Graph-level random seed, for reproducible runs; unset "
                     "means unseeded.")

flags.DEFINE_bool("use_tpu", False, "Whether to use TPU or GPU/CPU.")

flags.DEFINE_string(
    "tpu_name", None,
    "The Cloud TPU to use for training. This should be either the name "
    "used when creating the Cloud TPU, or a grpc://ip.address.of.tpu:8470 "
    "url.")

flags.DEFINE_string(
    "tpu_zone", None,
    "[Optional] GCE zone where the Cloud TPU is located in. If not "
    "specified, we will attempt to automatically detect the GCE project from "
    "metadata.")

flags.DEFINE_string(
    "gcp_project", None,
    "[Optional] Project name for the Cloud TPU-enabled project. If not "
    "specified, we will attempt to automatically detect the GCE project from "
    "metadata.")

flags.DEFINE_string("master", None, "[Optional] TensorFlow master URL.")

flags.DEFINE_integer(
    "num_tpu_cores", 8,
    "Only used if `use_tpu` is True. Total number of TPU cores to use.")

flags.DEFINE_bool("use_einsum", True,
                  "Use the einsum formulation of dense layers and attention "
                  "(same math and variables).")

flags.DEFINE_bool("use_summary", False,
                  "Write TensorBoard scalars of every loss term and the "
                  "learning rate to output_dir/my_summary/{warmup,main}.")

flags.DEFINE_string("bert_teacher_config_file", None,
                    "The config json file of the teacher. Needed for any "
                    "distillation.")

flags.DEFINE_string("first_input_file", None,
                    "Input TF example files of the first (short-sequence) "
                    "round of phase 2.")

flags.DEFINE_integer("first_max_seq_length", 128,
                     "Sequence length of the first round.")

flags.DEFINE_integer("first_train_batch_size", None,
                     "Batch size of the first round (default: "
                     "train_batch_size).")

flags.DEFINE_integer("first_num_train_steps", 0,
                     "Global step at which the first round ends; 0 disables "
                     "it.")

flags.DEFINE_enum("optimizer", "adamw", ["adamw", "lamb"],
                  "The optimizer for training.")

flags.DEFINE_bool("layer_wise_warmup", False,
                  "Run phase 1, progressive layer-wise knowledge transfer "
                  "(needs --optimizer=lamb).")

flags.DEFINE_integer("num_distill_steps", 100000,
                     "Length of phase 1, split evenly over the student's "
                     "layers.")

flags.DEFINE_float("distill_temperature", 1.0,
                   "Divides the teacher's MLM logits: targets are "
                   "softmax(teacher logits / T); above 1 they are softer.")

flags.DEFINE_float("distill_ground_truth_ratio", 1.0,
                   "Weight of the one-hot label in the MLM target; 1.0 "
                   "trains without the teacher in phase 2.")

flags.DEFINE_float("attention_distill_factor", 0.0,
                   "Weight of the attention transfer loss.")

flags.DEFINE_float("hidden_distill_factor", 0.0,
                   "Weight of the feature-map transfer loss.")

flags.DEFINE_float("gamma_distill_factor", 0.0,
                   "Weight of the variance transfer loss.")

flags.DEFINE_float("beta_distill_factor", 0.0,
                   "Weight of the mean transfer loss.")

flags.DEFINE_float("weight_decay_rate", 0.01,
                   "Decoupled weight decay (norms and biases excluded).")

flags.DEFINE_bool("fix_stat_distill", False,
                  "Mean/variance transfer against teacher layer l's "
                  "statistics. The default uses the statistics of all "
                  "teacher layers at once, as the published training did.")

flags.DEFINE_enum("distribution_strategy", "none",
                  list(estimator_utils.DISTRIBUTION_STRATEGIES),
                  "Off-TPU multi-device training: 'mirrored' (all local "
                  "GPUs, or --mirrored_devices) or 'multi_worker' (cluster "
                  "from TF_CONFIG).")

flags.DEFINE_integer(
    "worker_timeout_secs", 600,
    "With --distribution_strategy=multi_worker: a worker that finishes no "
    "training step for this long (after its first) stops the run with a "
    "message, instead of waiting forever for a worker that is gone.")

flags.DEFINE_list("mirrored_devices", None,
                  "Devices for --distribution_strategy=mirrored, e.g. "
                  "/gpu:0,/gpu:1. CPU devices beyond /cpu:0 split the CPU "
                  "(to try replication without GPUs).")

WARMUP_DIR = "warmup"
SUMMARY_DIR = "my_summary"

Settings = collections.namedtuple(
    "Settings", ["bert_config", "teacher_config", "input_files",
                 "first_input_files", "first_train_batch_size", "strategy"])


def validate_flags_and_load_configs():
  """Checks every flag before any graph is built.

  Every problem is reported, one line each, and the run exits (status 1);
  checks that read checkpoints run once the flags are sound.

  Returns:
    Settings.
  """
  problems = run_utils.FlagProblems("run_pretraining.py")
  problems.require_flags(FLAGS, "bert_config_file", "input_file",
                         "output_dir")
  problems.check(FLAGS.do_train or FLAGS.do_eval,
                 "At least one of --do_train or --do_eval must be True")

  bert_config = problems.load_config("bert_config_file",
                                     FLAGS.bert_config_file)
  teacher_config = problems.load_config("bert_teacher_config_file",
                                        FLAGS.bert_teacher_config_file)
  if bert_config is not None and teacher_config is not None:
    problems.call(distill_modeling.check_teacher_compatible, bert_config,
                  teacher_config, prefix="--bert_teacher_config_file and "
                  "--bert_config_file: ")
  has_teacher = bool(FLAGS.bert_teacher_config_file)

  configs = [(flag, config) for flag, config in (
      ("--bert_config_file", bert_config),
      ("--bert_teacher_config_file", teacher_config)) if config is not None]
  lengths = [("--max_seq_length", FLAGS.max_seq_length)]
  if FLAGS.do_train and FLAGS.first_num_train_steps > 0:
    lengths.append(("--first_max_seq_length", FLAGS.first_max_seq_length))
  for length_flag, length in lengths:
    for config_flag, config in configs:
      problems.check(
          length <= config.max_position_embeddings,
          "%s=%d exceeds max_position_embeddings=%d of %s" %
          (length_flag, length, config.max_position_embeddings, config_flag))
  problems.check(FLAGS.max_predictions_per_seq >= 1,
                 "--max_predictions_per_seq must be >= 1")

  problems.check(0.0 <= FLAGS.distill_ground_truth_ratio <= 1.0,
                 "--distill_ground_truth_ratio must be in [0, 1], got %g" %
                 FLAGS.distill_ground_truth_ratio)
  if FLAGS.distill_ground_truth_ratio < 1.0:
    problems.check(has_teacher, "--distill_ground_truth_ratio < 1 needs "
                   "--bert_teacher_config_file")
    problems.check(not FLAGS.do_train or FLAGS.init_checkpoint,
                   "--distill_ground_truth_ratio < 1 needs "
                   "--init_checkpoint (the trained teacher, or a "
                   "distillation checkpoint holding teacher/ variables)")

  if FLAGS.layer_wise_warmup and FLAGS.do_train:
    problems.check(
        FLAGS.optimizer == "lamb",
        "--layer_wise_warmup needs --optimizer=lamb; --optimizer=%s cannot "
        "gate layers" % FLAGS.optimizer)
    problems.check(has_teacher,
                   "--layer_wise_warmup needs --bert_teacher_config_file")
    problems.check(FLAGS.init_checkpoint, "--layer_wise_warmup needs "
                   "--init_checkpoint (the trained teacher)")
    problems.check(
        FLAGS.attention_distill_factor or FLAGS.hidden_distill_factor or
        (FLAGS.beta_distill_factor and FLAGS.gamma_distill_factor),
        "--layer_wise_warmup needs a non-zero --attention_distill_factor or "
        "--hidden_distill_factor, or both --beta_distill_factor and "
        "--gamma_distill_factor; otherwise the phase-1 loss is 0")
    if bert_config is not None:
      problems.check(
          FLAGS.num_distill_steps >= bert_config.num_hidden_layers,
          "--num_distill_steps=%d is less than one step per student layer "
          "(%d layers)" % (FLAGS.num_distill_steps,
                           bert_config.num_hidden_layers))

  if FLAGS.do_train:
    problems.check(FLAGS.num_train_steps > 0,
                   "--num_train_steps must be positive")
    problems.check(0 <= FLAGS.num_warmup_steps <= FLAGS.num_train_steps,
                   "--num_warmup_steps must be in [0, num_train_steps]")
    problems.check(
        FLAGS.first_num_train_steps < FLAGS.num_train_steps,
        "--first_num_train_steps=%d must be smaller than "
        "--num_train_steps=%d (both count global steps)" %
        (FLAGS.first_num_train_steps, FLAGS.num_train_steps))

  input_files = None
  if FLAGS.input_file:
    input_files = problems.call(pretraining_data.expand_input_patterns,
                                FLAGS.input_file, "input_file")
  first_input_files = None
  first_train_batch_size = FLAGS.first_train_batch_size or FLAGS.train_batch_size
  if FLAGS.do_train and FLAGS.first_num_train_steps > 0:
    if problems.check(FLAGS.first_input_file, "--first_num_train_steps > 0 "
                      "needs --first_input_file"):
      first_input_files = problems.call(
          pretraining_data.expand_input_patterns, FLAGS.first_input_file,
          "first_input_file")
  problems.call(file_checks.check_writable_dir, FLAGS.output_dir,
                "output_dir")
  if FLAGS.init_checkpoint:
    problems.call(checkpoints.resolve_checkpoint_path, FLAGS.init_checkpoint,
                  prefix="--init_checkpoint: ")
  problems.check(FLAGS.worker_timeout_secs > 0,
                 "--worker_timeout_secs must be positive, got %d" %
                 FLAGS.worker_timeout_secs)
  strategy = None
  if FLAGS.distribution_strategy != "none":
    problems.check(not FLAGS.use_tpu,
                   "--distribution_strategy=%s cannot be combined with "
                   "--use_tpu (TPUs replicate through TPUEstimator)" %
                   FLAGS.distribution_strategy)
    problems.check(
        not FLAGS.mirrored_devices or
        FLAGS.distribution_strategy == "mirrored",
        "--mirrored_devices needs --distribution_strategy=mirrored")
  problems.exit_if_any()

  # Every checkpoint this run restores must be whole and fit its config: the
  # starting one (a teacher's, or a checkpoint of this student) and the ones
  # it resumes from.
  if FLAGS.init_checkpoint:
    init_config = bert_config
    if teacher_config is not None and is_teacher_checkpoint(
        FLAGS.init_checkpoint):
      init_config = teacher_config
    problems.call(modeling.check_checkpoint, FLAGS.init_checkpoint,
                  init_config, prefix="--init_checkpoint: ")
  if holds_output_dir() and not problems.take_output_dir(FLAGS.output_dir):
    problems.exit_if_any()
  for model_dir in (os.path.join(FLAGS.output_dir, WARMUP_DIR),
                    FLAGS.output_dir):
    if holds_output_dir() and not problems.passes(
        checkpoints.set_aside_damaged, model_dir, modeling.checkpoint_damage,
        prefix="--output_dir: "):
      continue  # Nothing intact to check.
    if checkpoints.latest_checkpoint(model_dir):
      problems.call(modeling.check_checkpoint, model_dir, bert_config)
  if FLAGS.distribution_strategy != "none":
    strategy = problems.call(estimator_utils.make_distribution_strategy,
                             FLAGS.distribution_strategy,
                             FLAGS.mirrored_devices)
    if strategy is not None:
      num_replicas = strategy.num_replicas_in_sync
      for flag_name, batch in (("train_batch_size", FLAGS.train_batch_size),
                               ("first_train_batch_size",
                                first_train_batch_size)):
        problems.check(not batch % num_replicas,
                       "--%s=%d is not divisible by the %d replicas" %
                       (flag_name, batch, num_replicas))
  problems.exit_if_any()
  return Settings(bert_config, teacher_config, input_files, first_input_files,
                  first_train_batch_size, strategy)


def is_teacher_checkpoint(init_checkpoint):
  """True if the checkpoint holds a bare model (no `teacher/` variables)."""
  checkpoint = checkpoints.resolve_checkpoint_path(init_checkpoint)
  return not any(name.startswith(modeling.TEACHER_SCOPE + "/")
                 for name, _ in tf.train.list_variables(checkpoint))


def initialize_variables(init_checkpoint, use_tpu, teacher_present,
                         init_from_teacher):
  """Sets up variable initialisation from `init_checkpoint`.

  docs/distillation.md, section 2, gives the rules.

  From a teacher checkpoint the teacher gets every variable (`teacher/X` <-
  X) and the student its embeddings and heads (everything outside
  bert/encoder); otherwise names map to themselves.

  Returns:
    scaffold_fn for TPUEstimatorSpec, or None.
  """
  if not init_checkpoint:
    return None
  if teacher_present and init_from_teacher:
    scaffold_fns = [
        modeling.init_from_checkpoint(init_checkpoint, use_tpu=use_tpu,
                                      init_embedding=True),
        modeling.init_from_checkpoint(init_checkpoint, use_tpu=use_tpu,
                                      init_from_teacher=True)]
  else:
    scaffold_fns = [modeling.init_from_checkpoint(init_checkpoint,
                                                  use_tpu=use_tpu)]
  scaffold_fns = [fn for fn in scaffold_fns if fn is not None]
  if not scaffold_fns:
    return None

  def scaffold_fn():
    for fn in scaffold_fns:
      fn()
    return tf.train.Scaffold()

  return scaffold_fn


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


def make_host_call(summary_dir, global_step, scalars):
  """A TPU-compatible host_call writing `scalars` to `summary_dir`.

  Args:
    summary_dir: TensorBoard log directory.
    global_step: the global step variable.
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


def model_fn_builder(bert_config, teacher_config, init_checkpoint,
                     learning_rate, num_train_steps, num_warmup_steps, use_tpu,
                     use_one_hot_embeddings, optimizer, weight_decay_rate,
                     use_einsum, summary_dir=None, use_host_call=True,
                     layer_wise_warmup=False,
                     distill_factors=None, distill_temperature=1.0,
                     distill_ground_truth_ratio=1.0, fix_stat_distill=False):
  """Returns the model_fn for TPUEstimator (or, converted, a distributed one).

  Args:
    bert_config: student BertConfig.
    teacher_config: teacher BertConfig or None (plain MLM + NSP).
    init_checkpoint: checkpoint to initialise from, or None.
    learning_rate: base learning rate.
    num_train_steps: schedule length (num_distill_steps in phase 1).
    num_warmup_steps: linear warm-up steps (0 in phase 1).
    use_tpu: bool.
    use_one_hot_embeddings: bool.
    optimizer: "adamw" or "lamb".
    weight_decay_rate: float.
    use_einsum: bool.
    summary_dir: directory for scalar summaries, or None for none.
    use_host_call: write summaries through a TPU host_call (TPUEstimator);
      otherwise tf.summary into the model directory (distribution strategies).
    layer_wise_warmup: phase 1: transfer losses and LAMB layer gating.
    distill_factors: distill_modeling.DistillFactors (phase 1).
    distill_temperature: teacher temperature for the MLM targets.
    distill_ground_truth_ratio: one-hot weight of the MLM targets.
    fix_stat_distill: per-layer mean/variance statistics (see flag).

  Returns:
    model_fn(features, labels, mode, params) -> TPUEstimatorSpec.
  """
  num_layers = bert_config.num_hidden_layers
  init_from_teacher = (teacher_config is not None and init_checkpoint and
                       (layer_wise_warmup or
                        is_teacher_checkpoint(init_checkpoint)))

  def model_fn(features, labels, mode, params):
    """Builds the student (and teacher), losses and train/eval outputs."""
    del labels, params
    if mode not in (tf.estimator.ModeKeys.TRAIN, tf.estimator.ModeKeys.EVAL):
      raise ValueError("run_pretraining supports only TRAIN and EVAL, got %s" %
                       mode)
    tf.logging.info("*** Features ***")
    for name in sorted(features):
      tf.logging.info("  name = %s, shape = %s", name, features[name].shape)
    is_training = mode == tf.estimator.ModeKeys.TRAIN

    input_ids = features["input_ids"]
    masked_lm_positions = features["masked_lm_positions"]
    masked_lm_ids = features["masked_lm_ids"]
    masked_lm_weights = features["masked_lm_weights"]
    next_sentence_labels = features["next_sentence_labels"]

    student, teacher = distill_modeling.build_models(
        bert_config, teacher_config, input_ids, features["input_mask"],
        features["segment_ids"], is_training, use_one_hot_embeddings,
        use_einsum)
    global_step = tf.train.get_or_create_global_step()

    teacher_probs = None
    if teacher is not None:
      teacher_probs = distill_modeling.teacher_mlm_probabilities(
          teacher_config, teacher, masked_lm_positions, distill_temperature,
          use_einsum)
    mlm_targets = distill_modeling.masked_lm_targets(
        masked_lm_ids, bert_config.vocab_size, teacher_probs,
        distill_ground_truth_ratio)
    mlm_logits = distill_modeling.masked_lm_logits(
        bert_config, student.get_sequence_output(),
        student.get_embedding_table(), masked_lm_positions, use_einsum)
    (masked_lm_loss, masked_lm_example_loss,
     masked_lm_log_probs) = distill_modeling.masked_lm_loss(
         mlm_logits, mlm_targets, masked_lm_weights)
    (next_sentence_loss, next_sentence_example_loss,
     next_sentence_log_probs) = distill_modeling.next_sentence_output(
         bert_config, student.get_pooled_output(), next_sentence_labels)

    if layer_wise_warmup:
      losses = distill_modeling.layer_wise_transfer_losses(
          teacher, student, global_step, num_train_steps // num_layers,
          distill_factors, fix_stat_distill)
    else:
      losses = collections.OrderedDict([
          ("masked_lm_loss", masked_lm_loss),
          ("next_sentence_loss", next_sentence_loss)])
    total_loss = tf.add_n(list(losses.values()), name="total_loss")

    scaffold_fn = initialize_variables(init_checkpoint, use_tpu,
                                       teacher is not None, init_from_teacher)
    student_vars = [v for v in tf.trainable_variables() if not v.op.name
                    .startswith(modeling.TEACHER_SCOPE)]
    tf.logging.info("Trainable student parameters: %d",
                    modeling.count_parameters(student_vars))

    if mode == tf.estimator.ModeKeys.EVAL:
      return tf.estimator.tpu.TPUEstimatorSpec(
          mode=mode,
          loss=total_loss,
          eval_metrics=(metric_fn, [
              masked_lm_example_loss, masked_lm_log_probs, masked_lm_ids,
              masked_lm_weights, next_sentence_example_loss,
              next_sentence_log_probs, next_sentence_labels]),
          scaffold_fn=scaffold_fn)

    train_op = optimization.create_optimizer(
        total_loss, learning_rate, num_train_steps, num_warmup_steps, use_tpu,
        optimizer=optimizer, weight_decay_rate=weight_decay_rate,
        end_lr_rate=1.0 if layer_wise_warmup else 0.0001,
        use_layer_wise_warmup=layer_wise_warmup,
        total_warmup_phases=num_layers if layer_wise_warmup else 0)

    host_call = None
    if summary_dir:
      scalars = collections.OrderedDict(losses)
      if not layer_wise_warmup:
        scalars["masked_lm_accuracy"] = weighted_accuracy(
            masked_lm_log_probs, masked_lm_ids, masked_lm_weights)
        scalars["next_sentence_accuracy"] = weighted_accuracy(
            next_sentence_log_probs, next_sentence_labels)
      scalars["loss"] = total_loss
      scalars["learning_rate"] = optimization.learning_rate_schedule(
          global_step, learning_rate, num_train_steps, num_warmup_steps,
          1.0 if layer_wise_warmup else 0.0001)
      if use_host_call:
        host_call = make_host_call(summary_dir, global_step, scalars)
      else:
        for name, value in scalars.items():
          tf.summary.scalar(name, value)
    training_hooks = estimator_utils.progress_hooks(
        total_loss, use_tpu, num_train_steps, features["input_ids"])
    return tf.estimator.tpu.TPUEstimatorSpec(
        mode=mode, loss=total_loss, train_op=train_op, host_call=host_call,
        training_hooks=training_hooks, scaffold_fn=scaffold_fn)

  return model_fn


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


def build_estimator(model_fn, model_dir, strategy, train_batch_size,
                    keep_checkpoint_max):
  """TPUEstimator (TPU/CPU/one GPU) or a distributed Estimator."""
  if strategy is not None:
    session_config = None
    cpu_count = extra_cpu_device_count(FLAGS.mirrored_devices)
    if cpu_count > 1:
      session_config = tf.ConfigProto(device_count={"CPU": cpu_count},
                                      allow_soft_placement=True)
    return estimator_utils.make_distributed_estimator(
        model_fn, model_dir, strategy,
        save_checkpoints_steps=FLAGS.save_checkpoints_steps,
        keep_checkpoint_max=keep_checkpoint_max,
        log_step_count_steps=FLAGS.log_step_count_steps,
        session_config=session_config,
        tf_random_seed=FLAGS.random_seed)
  return estimator_utils.make_estimator_from_flags(
      model_fn, FLAGS, eval_batch_size=FLAGS.eval_batch_size,
      model_dir=model_dir, train_batch_size=train_batch_size,
      keep_checkpoint_max=keep_checkpoint_max,
      log_step_count_steps=FLAGS.log_step_count_steps)


def extra_cpu_device_count(devices):
  """Number of CPU devices a --mirrored_devices list needs (0 if none)."""
  indices = [int(m.group(1)) for m in
             (re.search(r"cpu:(\d+)$", d.lower()) for d in devices or []) if m]
  return max(indices) + 1 if indices else 0


def train_round(description, model_dir, model_fn, strategy, input_files,
                max_seq_length, train_batch_size, max_steps,
                keep_checkpoint_max):
  """Trains until the global step in `model_dir` reaches `max_steps`.

  Returns immediately (without building a graph) when a checkpoint at or
  beyond `max_steps` exists, so a re-run never repeats a finished stage.
  """
  done = checkpoints.latest_checkpoint_step(model_dir)
  if done >= max_steps:
    tf.logging.info("***** %s already complete (global step %d >= %d) in %s; "
                    "skipping *****", description, done, max_steps, model_dir)
    return
  tf.logging.info("***** Running %s in %s: steps %d -> %d, batch %d, "
                  "seq %d *****", description, model_dir, done, max_steps,
                  train_batch_size, max_seq_length)
  per_replica_batch = None
  if strategy is not None:
    per_replica_batch = train_batch_size // strategy.num_replicas_in_sync
  estimator = build_estimator(model_fn, model_dir, strategy, train_batch_size,
                              keep_checkpoint_max)
  input_fn = pretraining_data.input_fn_builder(
      input_files, max_seq_length, FLAGS.max_predictions_per_seq,
      is_training=True, batch_size=per_replica_batch)
  hooks = None
  if FLAGS.distribution_strategy == "multi_worker":
    hooks = [estimator_utils.StalledTrainingHook(
        FLAGS.worker_timeout_secs,
        "run_pretraining.py: no training step finished in %d s "
        "(--worker_timeout_secs): a worker of the cluster in TF_CONFIG has "
        "stopped or cannot be reached. Start every worker again with the "
        "same command; training resumes from the last checkpoint in %s." %
        (FLAGS.worker_timeout_secs, model_dir))]
  with run_utils.one_line_errors("run_pretraining.py"), \
      feature_records.reading(input_files):
    estimator_utils.train_estimator(estimator, input_fn, max_steps, hooks)


def holds_output_dir():
  """Whether this process takes --output_dir for itself (directory_lock).

  The workers of a multi-worker run share the chief's directory: only the
  chief (the `chief` task, else worker 0) takes it.
  """
  if FLAGS.distribution_strategy != "multi_worker":
    return True
  tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
  task = tf_config.get("task", {})
  if "chief" in tf_config.get("cluster", {}):
    return task.get("type") == "chief"
  return task.get("type") == "worker" and task.get("index", 0) == 0


def summary_dir_for(phase):
  if not FLAGS.use_summary:
    return None
  return os.path.join(FLAGS.output_dir, SUMMARY_DIR, phase)


def main(_):
  console.setup(keep_tensorflow_info=FLAGS.use_tpu)
  settings = validate_flags_and_load_configs()

  bert_config = settings.bert_config
  teacher_config = settings.teacher_config
  tf.gfile.MakeDirs(FLAGS.output_dir)
  if holds_output_dir():
    with run_utils.one_line_errors("run_pretraining.py"):
      directory_lock.acquire(FLAGS.output_dir)
  warmup_dir = os.path.join(FLAGS.output_dir, WARMUP_DIR)
  distributed = settings.strategy is not None
  common = dict(
      bert_config=bert_config,
      learning_rate=FLAGS.learning_rate,
      use_tpu=FLAGS.use_tpu,
      use_one_hot_embeddings=FLAGS.use_tpu,
      optimizer=FLAGS.optimizer,
      weight_decay_rate=FLAGS.weight_decay_rate,
      use_einsum=FLAGS.use_einsum,
      use_host_call=not distributed,
      distill_temperature=FLAGS.distill_temperature)

  if FLAGS.do_train and FLAGS.layer_wise_warmup:
    warmup_model_fn = model_fn_builder(
        teacher_config=teacher_config,
        init_checkpoint=FLAGS.init_checkpoint,
        num_train_steps=FLAGS.num_distill_steps,
        num_warmup_steps=0,
        summary_dir=summary_dir_for("warmup"),
        layer_wise_warmup=True,
        distill_factors=distill_modeling.DistillFactors(
            attention=FLAGS.attention_distill_factor,
            hidden=FLAGS.hidden_distill_factor,
            beta=FLAGS.beta_distill_factor,
            gamma=FLAGS.gamma_distill_factor),
        fix_stat_distill=FLAGS.fix_stat_distill,
        **common)
    train_round("phase 1: layer-wise knowledge transfer", warmup_dir,
                warmup_model_fn, settings.strategy, settings.input_files,
                FLAGS.max_seq_length, FLAGS.train_batch_size,
                FLAGS.num_distill_steps, keep_checkpoint_max=0)

  # Phase 2 without a teacher when the targets are pure ground truth.
  main_teacher_config = (teacher_config
                         if FLAGS.distill_ground_truth_ratio < 1.0 else None)
  init_checkpoint = (warmup_dir if FLAGS.layer_wise_warmup
                     else FLAGS.init_checkpoint)
  if (FLAGS.do_eval and not FLAGS.do_train and FLAGS.layer_wise_warmup and
      checkpoints.latest_checkpoint_step(warmup_dir) == 0):
    init_checkpoint = None
  main_model_fn = model_fn_builder(
      teacher_config=main_teacher_config,
      init_checkpoint=init_checkpoint,
      num_train_steps=FLAGS.num_train_steps,
      num_warmup_steps=FLAGS.num_warmup_steps,
      summary_dir=summary_dir_for("main"),
      distill_ground_truth_ratio=FLAGS.distill_ground_truth_ratio,
      **common)

  if FLAGS.do_train:
    if FLAGS.first_num_train_steps > 0:
      train_round("phase 2, first round", FLAGS.output_dir, main_model_fn,
                  settings.strategy, settings.first_input_files,
                  FLAGS.first_max_seq_length, settings.first_train_batch_size,
                  FLAGS.first_num_train_steps, keep_checkpoint_max=5)
    train_round("phase 2: pretraining distillation" if main_teacher_config
                else "phase 2: pretraining", FLAGS.output_dir, main_model_fn,
                settings.strategy, settings.input_files, FLAGS.max_seq_length,
                FLAGS.train_batch_size, FLAGS.num_train_steps,
                keep_checkpoint_max=5)

  if FLAGS.do_eval:
    tf.logging.info("***** Running evaluation *****")
    tf.logging.info("  Batch size = %d", FLAGS.eval_batch_size)
    estimator = build_estimator(main_model_fn, FLAGS.output_dir, None,
                                FLAGS.train_batch_size, keep_checkpoint_max=5)
    eval_input_fn = pretraining_data.input_fn_builder(
        settings.input_files, FLAGS.max_seq_length,
        FLAGS.max_predictions_per_seq, is_training=False)
    with run_utils.one_line_errors("run_pretraining.py"), \
        feature_records.reading(settings.input_files):
      result = estimator.evaluate(input_fn=eval_input_fn,
                                  steps=FLAGS.max_eval_steps)
    run_utils.write_eval_results(FLAGS.output_dir, result)

  if FLAGS.distribution_strategy == "multi_worker" and not tf_compat.IS_TF2:
    # TF 1.15's in-process gRPC server fails in its __del__ at interpreter
    # shutdown (a traceback after a successful run); everything is written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # pylint: disable=protected-access


if __name__ == "__main__":
  tf.app.run()
