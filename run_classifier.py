"""MobileBERT fine-tuning, evaluation, prediction and export on GLUE.

  python3 run_classifier.py \
    --task_name=MRPC --data_dir=/path/to/glue/MRPC \
    --bert_config_file=config/uncased_L-24_H-128_B-512_A-4_F-4_OPT.json \
    --vocab_file=${INIT_CHECKPOINT}/vocab.txt \
    --init_checkpoint=${INIT_CHECKPOINT}/mobilebert_variables.ckpt \
    --do_train --do_eval --output_dir=/tmp/mobilebert/mrpc

--do_eval scores every dev set (MNLI: matched and mismatched) with the
task's GLUE metrics into output_dir/eval_results.txt; --do_predict writes the
GLUE submission files output_dir/<TASK>.tsv; --export_dir writes a SavedModel
and TF-Lite models whose output is named "probabilities".  Training,
evaluation, prediction and export can share one run.
"""

# First: it imports TensorFlow without its import-time noise (console.py).
import console  # pylint: disable=g-bad-import-order

import os

import numpy as np
import tensorflow.compat.v1 as tf

import checkpoints
import common_flags
import directory_lock
import estimator_utils
import export_tflite
import feature_records
import file_checks
import fine_tuning_model
import glue_data
import glue_metrics
import run_utils
import tflite_runner
import tokenization

FLAGS = tf.flags.FLAGS


def define_flags():
  """The script's flags: the shared ones (common_flags) and its own."""
  common_flags.define_model_flags()
  common_flags.define_tokenizer_flags()
  common_flags.define_output_dir_flag()
  common_flags.define_max_seq_length_flag(128)
  common_flags.define_training_flags()
  common_flags.define_eval_flags()
  common_flags.define_fine_tuning_flags()
  common_flags.define_export_flags()
  tf.flags.DEFINE_string(
      "task_name", None,
      "GLUE task: one of %s (case-insensitive)." %
      ", ".join(glue_data.PROCESSORS))
  tf.flags.DEFINE_string(
      "tfrecord_dir", None,
      "Where featurised TFRecords are cached; defaults to --output_dir.  A "
      "cache is rebuilt whenever the data, tokenizer or --max_seq_length "
      "change.")
  # --helpshort lists the shared flags with the script's own.
  tf.flags.adopt_module_key_flags(common_flags)


def validate_flags():
  """Checks the flags before any graph is built.

  Every problem is reported, one line each, and the run exits (status 1);
  checks that read files run once the flags naming them are sound.

  Returns:
    (processor, bert_config, tokenizer, lite_model or None, the TF-Lite file
    kinds --export_dir gets or None).
  """
  problems = run_utils.FlagProblems("run_classifier.py")
  processor = problems.call(glue_data.get_processor, FLAGS.task_name)
  export_kinds = _check_run_flags(problems)
  bert_config = _check_config(problems)
  _check_checkpoint_flags(problems)
  if processor is not None:
    _check_data_files(problems, processor, export_kinds)
  problems.exit_if_any()

  tokenizer = problems.tokenizer(FLAGS, bert_config.vocab_size)
  lite_model = None
  if FLAGS.lite_model_path:
    lite_model = problems.call(tflite_runner.lite_model_for_task,
                               FLAGS.lite_model_path, "probabilities",
                               FLAGS.max_seq_length, bert_config,
                               FLAGS.bert_config_file,
                               output_width=len(processor.get_labels()) or 1)
  resumed_from = problems.restored_checkpoints_fit(
      bert_config, FLAGS.init_checkpoint, FLAGS.output_dir)
  if _uses_tf_model() and not FLAGS.do_train:
    problems.quantization_ranges_trained(FLAGS.use_quantized_training,
                                         resumed_from)
  problems.exit_if_any()
  return processor, bert_config, tokenizer, lite_model, export_kinds


def _check_run_flags(problems):
  """Checks the run's mode flags; returns the export's file kinds or None."""
  """What to do, tokenizer files, sizes and TF-Lite flags."""
  problems.check(FLAGS.output_dir, "--output_dir is required.")
  for name in ("output_dir", "export_dir", "tfrecord_dir"):
    problems.call(file_checks.check_writable_dir, getattr(FLAGS, name), name)
  problems.check(FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict or
                 FLAGS.export_dir,
                 "At least one of --do_train, --do_eval, --do_predict or "
                 "--export_dir must be set.")
  problems.check(bool(FLAGS.vocab_file) != bool(FLAGS.spm_model_file),
                 "Give exactly one of --vocab_file and --spm_model_file.")
  for name in ("vocab_file", "spm_model_file", "lite_model_path"):
    path = getattr(FLAGS, name)
    if path:
      problems.require_file(name, path, "this run")
  problems.positive(FLAGS, "train_batch_size", "eval_batch_size",
                    "predict_batch_size")
  problems.check(FLAGS.max_seq_length >= 3,
                 "--max_seq_length must be at least 3 ([CLS] a [SEP]), got "
                 "%d." % FLAGS.max_seq_length)
  if FLAGS.do_train:
    problems.check(FLAGS.num_train_epochs > 0,
                   "--num_train_epochs must be positive with --do_train.")
  problems.check(0.0 <= FLAGS.warmup_proportion <= 1.0,
                 "--warmup_proportion must be in [0, 1], got %g." %
                 FLAGS.warmup_proportion)
  if FLAGS.lite_model_path:
    problems.check(FLAGS.do_eval or FLAGS.do_predict,
                   "--lite_model_path is only used by --do_eval and "
                   "--do_predict; set one of them.")
  if not FLAGS.export_dir:
    return None
  return problems.call(export_tflite.file_kinds,
                       FLAGS.use_quantized_training,
                       FLAGS.use_post_quantization,
                       FLAGS.activation_quantization, FLAGS.float_softmax,
                       prefix="--export_dir: ")


def _check_config(problems):
  """Loads --bert_config_file; checks sequence length and QAT against it."""
  problems.require_flags(FLAGS, "bert_config_file")
  bert_config = problems.load_config("bert_config_file",
                                     FLAGS.bert_config_file)
  if bert_config is not None:
    problems.config_fits(bert_config, FLAGS)
  return bert_config


def _check_checkpoint_flags(problems):
  """--init_checkpoint must load; evaluation and export need some weights."""
  if FLAGS.init_checkpoint:
    problems.call(checkpoints.resolve_checkpoint_path, FLAGS.init_checkpoint,
                  prefix="--init_checkpoint: ")
    problems.call(tokenization.validate_case_matches_checkpoint,
                  FLAGS.do_lower_case, FLAGS.init_checkpoint,
                  prefix="--init_checkpoint: ")
  uses_tf_model = _uses_tf_model()
  problems.check(
      not (uses_tf_model and not FLAGS.do_train and not FLAGS.init_checkpoint
           and FLAGS.output_dir and
           checkpoints.latest_checkpoint(FLAGS.output_dir) is None),
      "%s needs trained weights: train in this run (--do_train), keep a "
      "checkpoint in --output_dir=%s, or give --init_checkpoint." %
      (" and ".join(uses_tf_model), FLAGS.output_dir))


def _uses_tf_model():
  """The flags of the stages that run the TensorFlow graph, not a .tflite."""
  return [name for name, is_set in (
      ("--do_eval", FLAGS.do_eval and not FLAGS.lite_model_path),
      ("--do_predict", FLAGS.do_predict and not FLAGS.lite_model_path),
      ("--export_dir", FLAGS.export_dir)) if is_set]


def _check_data_files(problems, processor, export_kinds):
  """Every TSV this run reads must exist in --data_dir."""
  needed = []
  if FLAGS.do_train or _needs_calibration(export_kinds):
    needed.append("train")
  if FLAGS.do_eval:
    needed.extend(split for split, _ in processor.dev_splits)
  if FLAGS.do_predict:
    needed.extend(split for split, _ in processor.test_splits)
  if not needed:
    return
  if not problems.check(FLAGS.data_dir, "--data_dir is required to read "
                        "%s.tsv." % ".tsv, ".join(needed)):
    return
  for split in needed:
    problems.check(
        tf.gfile.Exists(os.path.join(FLAGS.data_dir, split + ".tsv")),
        "--data_dir=%s has no %s.tsv (needed for %s)." %
        (FLAGS.data_dir, split, _purpose(split)))


def _purpose(split):
  if split == "train":
    return ("--do_train" if FLAGS.do_train else
            "the integer TF-Lite model's calibration")
  return "--do_eval" if split.startswith("dev") else "--do_predict"


def _needs_calibration(export_kinds):
  return bool(export_kinds and export_tflite.needs_calibration(export_kinds))


def _record_file(name):
  return os.path.join(FLAGS.tfrecord_dir or FLAGS.output_dir,
                      name + ".tf_record")


def _make_estimator(model_fn, predict_batch_size):
  return estimator_utils.make_estimator_from_flags(
      model_fn, FLAGS, predict_batch_size=predict_batch_size)


def predict_outputs(examples, split, label_list, tokenizer, tokenizer_settings,
                    model_fn, batch_size, lite_model):
  """Model outputs for `examples` through the TensorFlow graph or TF-Lite.

  Returns:
    float32 array [len(examples), num_labels]: class probabilities, or the
    score [len(examples), 1] for regression.
  """
  if lite_model is not None:
    return _lite_outputs(lite_model, examples, label_list, tokenizer)
  # TPUs need full batches: pad with examples of weight 0 and drop them below.
  if FLAGS.use_tpu:
    examples = glue_data.pad_examples(examples, batch_size)
  record_file = _record_file(split)
  glue_data.cached_tfrecord(examples, label_list, FLAGS.max_seq_length,
                            tokenizer, tokenizer_settings, record_file)
  input_fn = glue_data.input_fn_builder(
      record_file, FLAGS.max_seq_length, is_training=False,
      drop_remainder=FLAGS.use_tpu, is_regression=not label_list)
  estimator = _make_estimator(model_fn, batch_size)
  with feature_records.reading(record_file):
    return np.array([result["probabilities"]
                     for result in estimator_utils.predict_with_progress(
                         estimator, input_fn, len(examples))
                     if result["is_real_example"]], dtype=np.float32)


def _lite_outputs(lite_model, examples, label_list, tokenizer):
  """Runs the TF-Lite model one example at a time (its inputs are [1, seq])."""
  features = glue_data.convert_examples_to_features(
      examples, label_list, FLAGS.max_seq_length, tokenizer)
  return np.array([np.reshape(outputs["probabilities"], [-1])
                   for outputs in lite_model.predict(features)],
                  dtype=np.float32)


def score_outputs(task_name, outputs, examples, label_list):
  """GLUE metrics and loss of model outputs on labelled examples.

  Args:
    task_name: lower-case task name.
    outputs: [num_examples, num_labels] probabilities, or [num_examples, 1]
      scores for regression.
    examples: the labelled InputExamples, in the same order.
    label_list: label strings in id order; empty for regression.

  Returns:
    OrderedDict: the task's metrics, then "loss" (mean cross-entropy, or mean
    squared error) and "num_examples".
  """
  if label_list:
    labels = np.array([label_list.index(e.label) for e in examples])
    predictions = np.argmax(outputs, axis=-1)
    picked = outputs[np.arange(len(labels)), labels].astype(np.float64)
    # A float32 softmax underflows to 0 on confident mistakes; cap their loss.
    loss = float(np.mean(-np.log(np.maximum(picked, 1e-30))))
  else:
    labels = np.array([e.label for e in examples], dtype=np.float64)
    predictions = outputs[:, 0].astype(np.float64)
    loss = float(np.mean(np.square(predictions - labels)))
  results = glue_metrics.compute_metrics(task_name, predictions, labels)
  results["loss"] = loss
  results["num_examples"] = len(examples)
  return results


def _eval_key_prefix(split):
  """"eval_" for dev.tsv; "eval_matched_" etc. for MNLI's two dev sets."""
  if split == "dev":
    return "eval_"
  return "eval_%s_" % split[len("dev_"):]


def calibration_features(train_examples, label_list, tokenizer):
  """Features of the first train examples, to calibrate integer export."""
  return export_tflite.calibration_inputs(
      glue_data.convert_examples_to_features(
          train_examples[:export_tflite.CALIBRATION_EXAMPLES], label_list,
          FLAGS.max_seq_length, tokenizer))


def read_examples(processor, export_kinds):
  """Reads every TSV this run needs, so bad data stops it before training.

  Returns:
    (train_examples or None, [(dev split, examples)],
     [(test split, submission name, examples)]).

  Raises:
    ValueError: a malformed file, naming the file and line.
  """
  train_examples = None
  if FLAGS.do_train or _needs_calibration(export_kinds):
    train_examples = processor.get_train_examples(FLAGS.data_dir)
  dev_sets = []
  if FLAGS.do_eval:
    dev_sets = [(split, processor.get_examples(FLAGS.data_dir, split))
                for split, _ in processor.dev_splits]
  test_sets = []
  if FLAGS.do_predict:
    test_sets = [(split, name, processor.get_examples(FLAGS.data_dir, split))
                 for split, name in processor.test_splits]
  return train_examples, dev_sets, test_sets


def main(_):
  console.setup(keep_tensorflow_info=FLAGS.use_tpu)
  processor, bert_config, tokenizer, lite_model, export_kinds = (
      validate_flags())
  # A malformed data file (and an export this graph cannot make) ends the
  # run with one line too; files written by an earlier stage stay.
  with run_utils.one_line_errors("run_classifier.py"):
    tf.gfile.MakeDirs(FLAGS.output_dir)
    directory_lock.acquire(FLAGS.output_dir)
    train_examples, dev_sets, test_sets = read_examples(processor,
                                                        export_kinds)
    task_name = FLAGS.task_name.lower()
    label_list = processor.get_labels()
    num_labels = len(label_list) or 1
    tokenizer_settings = feature_records.tokenizer_settings(
        FLAGS.vocab_file, FLAGS.spm_model_file, FLAGS.do_lower_case)

    num_train_steps = 0
    num_warmup_steps = 0
    if FLAGS.do_train:
      num_train_steps, num_warmup_steps = run_utils.train_steps(
          len(train_examples), FLAGS.train_batch_size, FLAGS.num_train_epochs,
          FLAGS.warmup_proportion)

    model_fn = fine_tuning_model.classifier_model_fn_builder(
        bert_config, num_labels, fine_tuning_model.settings_from_flags(
            FLAGS, num_train_steps, num_warmup_steps))

    if FLAGS.do_train:
      train_file = _record_file("train")
      glue_data.cached_tfrecord(train_examples, label_list, FLAGS.max_seq_length,
                                tokenizer, tokenizer_settings, train_file)
      tf.logging.info("***** Running training *****")
      tf.logging.info("  Num examples = %d", len(train_examples))
      tf.logging.info("  Batch size = %d", FLAGS.train_batch_size)
      tf.logging.info("  Num steps = %d", num_train_steps)
      train_input_fn = glue_data.input_fn_builder(
          train_file, FLAGS.max_seq_length, is_training=True,
          drop_remainder=True, is_regression=not label_list)
      estimator = _make_estimator(model_fn, FLAGS.predict_batch_size)
      with feature_records.reading(train_file):
        estimator.train(input_fn=train_input_fn, max_steps=num_train_steps)

    if FLAGS.do_eval:
      results = {}
      for split, examples in dev_sets:
        tf.logging.info("***** Running evaluation on %s (%d examples) *****",
                        split, len(examples))
        outputs = predict_outputs(examples, split, label_list, tokenizer,
                                  tokenizer_settings, model_fn,
                                  FLAGS.eval_batch_size, lite_model)
        scores = score_outputs(task_name, outputs, examples, label_list)
        prefix = _eval_key_prefix(split)
        for key, value in scores.items():
          results[prefix + key] = value
      if lite_model is None:
        results["global_step"] = checkpoints.latest_checkpoint_step(
            FLAGS.output_dir)
      run_utils.write_eval_results(FLAGS.output_dir, results)

    if FLAGS.do_predict:
      for split, submission_name, examples in test_sets:
        tf.logging.info("***** Running prediction on %s (%d examples) *****",
                        split, len(examples))
        outputs = predict_outputs(examples, split, label_list, tokenizer,
                                  tokenizer_settings, model_fn,
                                  FLAGS.predict_batch_size, lite_model)
        predictions = (np.argmax(outputs, axis=-1) if label_list
                       else outputs[:, 0])
        output_file = os.path.join(FLAGS.output_dir, submission_name + ".tsv")
        glue_data.write_submission_file(output_file, predictions, label_list)
        tf.logging.info("Wrote %s", output_file)

    if FLAGS.export_dir:
      checkpoint = checkpoints.checkpoint_to_use(FLAGS.output_dir,
                                                 FLAGS.init_checkpoint)
      features_for_calibration = None
      if _needs_calibration(export_kinds):
        features_for_calibration = calibration_features(
            train_examples, label_list, tokenizer)
      # export() logs each file it writes.
      export_tflite.export(
          bert_config=bert_config,
          checkpoint=checkpoint,
          export_dir=FLAGS.export_dir,
          max_seq_length=FLAGS.max_seq_length,
          kinds=export_kinds,
          task="classifier",
          num_labels=num_labels,
          use_quantized_training=FLAGS.use_quantized_training,
          calibration_features=features_for_calibration,
          vocab_file=FLAGS.vocab_file,
          spm_model_file=FLAGS.spm_model_file,
          do_lower_case=FLAGS.do_lower_case)


if __name__ == "__main__":
  define_flags()
  tf.app.run()
