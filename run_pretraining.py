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

import checkpoints
import common_flags
import directory_lock
import distill_modeling
import estimator_utils
import feature_records
import file_checks
import layer_schedule
import optimization
import pretraining_data
import pretraining_model
import run_utils
import tf_compat

FLAGS = tf.flags.FLAGS


def define_flags():
  """The script's flags: the shared ones (common_flags) and its own."""
  common_flags.define_model_flags()
  common_flags.define_input_file_flag()
  common_flags.define_output_dir_flag()
  common_flags.define_max_seq_length_flag(128)
  common_flags.define_max_predictions_flag()
  common_flags.define_training_flags(use_einsum_default=True)
  common_flags.define_eval_flags()
  flags = tf.flags
  flags.DEFINE_integer("num_train_steps", 100000,
                       "Number of phase-2 training steps (also the length of "
                       "the learning-rate schedule).")
  flags.DEFINE_integer("num_warmup_steps", 10000,
                       "Number of phase-2 learning-rate warm-up steps.")
  flags.DEFINE_integer("max_eval_steps", 100, "Maximum number of eval steps.")
  flags.DEFINE_integer(
      "log_step_count_steps", 100,
      "How often the estimator writes its steps/sec summary (and, on TPU, "
      "logs the step rate and loss). Off TPU the progress line (step / "
      "total, loss, examples/s, time left) is logged every 60 s, or every "
      "$MOBILEBERT_PROGRESS_SECONDS.")
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
                       "Global step at which the first round ends; 0 "
                       "disables it.")
  flags.DEFINE_enum("optimizer", "adamw", list(optimization.OPTIMIZERS),
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
  # --helpshort lists the shared flags with the script's own.
  tf.flags.adopt_module_key_flags(common_flags)


Settings = collections.namedtuple(
    "Settings", ["bert_config", "teacher_config", "input_files",
                 "first_input_files", "first_train_batch_size", "strategy"])


def validate_flags_and_load_configs():
  """Checks every flag before any graph is built.

  Every problem is reported, one line each, and the run exits (status 1);
  checks that read checkpoints run once the flags are sound, and the
  distribution strategy is built last (its replica count checks the batch
  sizes).

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
  _check_lengths(problems, bert_config, teacher_config)
  _check_distillation(problems, bert_config)
  _check_schedule(problems)
  input_files = None
  if FLAGS.input_file:
    input_files = problems.call(pretraining_data.expand_input_patterns,
                                FLAGS.input_file, "input_file")
  first_input_files = None
  first_train_batch_size = (FLAGS.first_train_batch_size or
                            FLAGS.train_batch_size)
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
  _check_distribution_flags(problems)
  problems.exit_if_any()

  _check_checkpoints(problems, bert_config, teacher_config)
  strategy = _distribution_strategy(problems, first_train_batch_size)
  problems.exit_if_any()
  return Settings(bert_config, teacher_config, input_files, first_input_files,
                  first_train_batch_size, strategy)


def _check_lengths(problems, bert_config, teacher_config):
  """The sequence lengths fit both configs; masked positions are >= 1."""
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


def _check_distillation(problems, bert_config):
  """Target mixing and phase 1 have a teacher, a checkpoint and losses."""
  has_teacher = bool(FLAGS.bert_teacher_config_file)
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
  if not (FLAGS.layer_wise_warmup and FLAGS.do_train):
    return
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
        layer_schedule.steps_per_layer(
            FLAGS.num_distill_steps, bert_config.num_hidden_layers) >= 1,
        "--num_distill_steps=%d is less than one step per student layer "
        "(%d layers)" % (FLAGS.num_distill_steps,
                         bert_config.num_hidden_layers))


def _check_schedule(problems):
  """Phase 2's steps, warm-up and first round."""
  if not FLAGS.do_train:
    return
  problems.check(FLAGS.num_train_steps > 0,
                 "--num_train_steps must be positive")
  problems.check(0 <= FLAGS.num_warmup_steps <= FLAGS.num_train_steps,
                 "--num_warmup_steps must be in [0, num_train_steps]")
  problems.check(
      FLAGS.first_num_train_steps < FLAGS.num_train_steps,
      "--first_num_train_steps=%d must be smaller than "
      "--num_train_steps=%d (both count global steps)" %
      (FLAGS.first_num_train_steps, FLAGS.num_train_steps))


def _check_distribution_flags(problems):
  problems.check(FLAGS.worker_timeout_secs > 0,
                 "--worker_timeout_secs must be positive, got %d" %
                 FLAGS.worker_timeout_secs)
  if FLAGS.distribution_strategy != "none":
    problems.check(not FLAGS.use_tpu,
                   "--distribution_strategy=%s cannot be combined with "
                   "--use_tpu (TPUs replicate through TPUEstimator)" %
                   FLAGS.distribution_strategy)
    problems.check(
        not FLAGS.mirrored_devices or
        FLAGS.distribution_strategy == "mirrored",
        "--mirrored_devices needs --distribution_strategy=mirrored")


def _check_checkpoints(problems, bert_config, teacher_config):
  """Every checkpoint the run restores is whole and fits its config.

  They are the starting one (a teacher's, or a checkpoint of this student)
  and the ones it resumes from in output_dir and output_dir/warmup, whose
  damaged newest checkpoints are set aside first.
  """
  if FLAGS.init_checkpoint:
    init_config = bert_config
    if teacher_config is not None and not checkpoints.holds_teacher_variables(
        FLAGS.init_checkpoint):
      init_config = teacher_config
    problems.call(checkpoints.check_checkpoint, FLAGS.init_checkpoint,
                  init_config, prefix="--init_checkpoint: ")
  if holds_output_dir() and not problems.take_output_dir(FLAGS.output_dir):
    problems.exit_if_any()
  for model_dir in (_warmup_dir(), FLAGS.output_dir):
    if holds_output_dir() and not problems.passes(
        checkpoints.set_aside_damaged, model_dir,
        prefix="--output_dir: "):
      continue  # Nothing intact to check.
    if checkpoints.latest_checkpoint(model_dir):
      problems.call(checkpoints.check_checkpoint, model_dir, bert_config)


def _distribution_strategy(problems, first_train_batch_size):
  """The --distribution_strategy, or None; batches must split evenly."""
  if FLAGS.distribution_strategy == "none":
    return None
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
  return strategy


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


def _warmup_dir():
  return os.path.join(FLAGS.output_dir, pretraining_model.WARMUP_DIR)


def _summary_dir(phase_name):
  if not FLAGS.use_summary:
    return None
  return os.path.join(FLAGS.output_dir, pretraining_model.SUMMARY_DIR,
                      phase_name)


def phase_configs(settings):
  """(phase 1's PretrainingConfig or None, phase 2's) from the flags."""
  main_config = pretraining_model.PretrainingConfig(
      bert_config=settings.bert_config,
      # Phase 2 runs without a teacher when its targets are pure ground
      # truth.
      teacher_config=(settings.teacher_config
                      if FLAGS.distill_ground_truth_ratio < 1.0 else None),
      init_checkpoint=(_warmup_dir() if FLAGS.layer_wise_warmup
                       else FLAGS.init_checkpoint),
      learning_rate=FLAGS.learning_rate,
      num_train_steps=FLAGS.num_train_steps,
      num_warmup_steps=FLAGS.num_warmup_steps,
      optimizer=FLAGS.optimizer,
      weight_decay_rate=FLAGS.weight_decay_rate,
      use_tpu=FLAGS.use_tpu,
      use_einsum=FLAGS.use_einsum,
      distill_temperature=FLAGS.distill_temperature,
      distill_ground_truth_ratio=FLAGS.distill_ground_truth_ratio,
      summary_dir=_summary_dir(pretraining_model.MAIN_SUMMARY_NAME),
      use_host_call=settings.strategy is None)
  if (FLAGS.do_eval and not FLAGS.do_train and FLAGS.layer_wise_warmup and
      checkpoints.latest_checkpoint_step(_warmup_dir()) == 0):
    main_config = main_config._replace(init_checkpoint=None)
  if not (FLAGS.do_train and FLAGS.layer_wise_warmup):
    return None, main_config
  warmup_config = main_config._replace(
      teacher_config=settings.teacher_config,
      init_checkpoint=FLAGS.init_checkpoint,
      num_train_steps=FLAGS.num_distill_steps,
      num_warmup_steps=0,
      layer_wise_warmup=True,
      distill_factors=distill_modeling.DistillFactors(
          attention=FLAGS.attention_distill_factor,
          hidden=FLAGS.hidden_distill_factor,
          beta=FLAGS.beta_distill_factor,
          gamma=FLAGS.gamma_distill_factor),
      distill_ground_truth_ratio=1.0,
      fix_stat_distill=FLAGS.fix_stat_distill,
      summary_dir=_summary_dir(pretraining_model.WARMUP_SUMMARY_NAME))
  return warmup_config, main_config


def main(_):
  console.setup(keep_tensorflow_info=FLAGS.use_tpu)
  settings = validate_flags_and_load_configs()
  tf.gfile.MakeDirs(FLAGS.output_dir)
  if holds_output_dir():
    with run_utils.one_line_errors("run_pretraining.py"):
      directory_lock.acquire(FLAGS.output_dir)
  warmup_config, main_config = phase_configs(settings)
  if warmup_config is not None:
    train_round("phase 1: layer-wise knowledge transfer", _warmup_dir(),
                pretraining_model.model_fn_builder(warmup_config),
                settings.strategy, settings.input_files,
                FLAGS.max_seq_length, FLAGS.train_batch_size,
                FLAGS.num_distill_steps, keep_checkpoint_max=0)

  main_model_fn = pretraining_model.model_fn_builder(main_config)
  if FLAGS.do_train:
    if FLAGS.first_num_train_steps > 0:
      train_round("phase 2, first round", FLAGS.output_dir, main_model_fn,
                  settings.strategy, settings.first_input_files,
                  FLAGS.first_max_seq_length, settings.first_train_batch_size,
                  FLAGS.first_num_train_steps, keep_checkpoint_max=5)
    train_round("phase 2: pretraining distillation"
                if main_config.teacher_config
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
  define_flags()
  tf.app.run()
