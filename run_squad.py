"""Fine-tunes MobileBERT on SQuAD v1.1 / v2.0, predicts, evaluates, exports.

Stages, each optional and run in this order:
  --do_train     fine-tune from --init_checkpoint (resuming from the latest
                 checkpoint in --output_dir when there is one);
  --do_predict   answer the questions of --predict_file with the estimator or,
                 with --lite_model_path, a TF-Lite model; write
                 predictions.json / nbest_predictions.json (/ null_odds.json),
                 and when the file carries answers, eval_results.json;
  --export_dir   export a SavedModel and TF-Lite models from the latest
                 checkpoint in --output_dir (or --init_checkpoint).
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
import run_utils
import squad_data
import squad_metrics
import squad_postprocess
import tflite_runner
import tokenization

FLAGS = tf.flags.FLAGS


def define_flags():
  """The script's flags: the shared ones (common_flags) and its own."""
  common_flags.define_model_flags()
  common_flags.define_tokenizer_flags()
  common_flags.define_output_dir_flag()
  common_flags.define_max_seq_length_flag(384)
  common_flags.define_training_flags()
  common_flags.define_fine_tuning_flags()
  common_flags.define_export_flags()
  flags = tf.flags
  flags.DEFINE_string(
      "train_file", None,
      "SQuAD json for training, e.g. train-v1.1.json.  Also the source of "
      "the set that calibrates integer TF-Lite exports.")
  flags.DEFINE_string("predict_file", None,
                      "SQuAD json for predictions, e.g. dev-v1.1.json.")
  flags.DEFINE_string(
      "hub_module_url", None,
      "TF-Hub module URL.  Not supported by this code base (tensorflow_hub "
      "is not a dependency); use --init_checkpoint.")
  flags.DEFINE_integer(
      "doc_stride", 128,
      "When splitting a long document into windows, how far each window "
      "advances.")
  flags.DEFINE_integer(
      "max_query_length", 64,
      "Questions longer than this (in sub-tokens) are truncated.")
  flags.DEFINE_integer(
      "n_best_size", 20,
      "The total number of n-best predictions to generate in "
      "nbest_predictions.json.")
  flags.DEFINE_integer(
      "max_answer_length", 30,
      "The maximum length of an answer that can be generated, in "
      "sub-tokens.")
  flags.DEFINE_bool(
      "verbose_logging", False,
      "Log why predicted texts could not be aligned with the original text.")
  flags.DEFINE_bool("version_2_with_negative", False,
                    "SQuAD 2.0: some questions have no answer.")
  flags.DEFINE_float(
      "null_score_diff_threshold", 0.0,
      "SQuAD 2.0: answer \"\" when null score - best span score exceeds "
      "this.")
  # --helpshort lists the shared flags with the script's own.
  tf.flags.adopt_module_key_flags(common_flags)


EVAL_RECORD_NAME = "eval.tf_record"


def validate_flags():
  """Checks every flag before any graph is built.

  Every problem is reported, one line each, and the run exits (status 1);
  checks that read files run once the flags naming them are sound.

  Returns:
    (bert_config, tokenizer, lite_model or None, the TF-Lite file kinds
    --export_dir gets or None).
  """
  problems = run_utils.FlagProblems("run_squad.py")
  problems.require_flags(FLAGS, "bert_config_file", "output_dir")
  bert_config = problems.load_config("bert_config_file",
                                     FLAGS.bert_config_file)
  problems.check(not FLAGS.hub_module_url,
                 "TF-Hub modules are not supported; use --init_checkpoint "
                 "(got --hub_module_url=%s)." % FLAGS.hub_module_url)
  problems.check(FLAGS.do_train or FLAGS.do_predict or FLAGS.export_dir,
                 "At least one of --do_train, --do_predict or --export_dir "
                 "must be given.")
  if problems.check(bool(FLAGS.vocab_file) != bool(FLAGS.spm_model_file),
                    "Exactly one of --vocab_file and --spm_model_file is "
                    "required (got --vocab_file=%s, --spm_model_file=%s)." %
                    (FLAGS.vocab_file, FLAGS.spm_model_file)):
    name = "vocab_file" if FLAGS.vocab_file else "spm_model_file"
    problems.require_file(name, getattr(FLAGS, name), "tokenization")
  problems.call(tokenization.validate_case_matches_checkpoint,
                FLAGS.do_lower_case, FLAGS.init_checkpoint)
  if FLAGS.init_checkpoint:
    problems.call(checkpoints.resolve_checkpoint_path, FLAGS.init_checkpoint,
                  prefix="--init_checkpoint: ")
  if FLAGS.do_train:
    problems.require_file("train_file", FLAGS.train_file, "--do_train")
  if FLAGS.do_predict:
    problems.require_file("predict_file", FLAGS.predict_file, "--do_predict")
  if FLAGS.lite_model_path:
    problems.check(FLAGS.do_predict,
                   "--lite_model_path=%s is only used with --do_predict." %
                   FLAGS.lite_model_path)
    problems.require_file("lite_model_path", FLAGS.lite_model_path,
                          "TF-Lite prediction")

  if bert_config is not None:
    problems.config_fits(bert_config, FLAGS)
  problems.check(
      FLAGS.max_seq_length > FLAGS.max_query_length + 3,
      "--max_seq_length (%d) must be greater than --max_query_length (%d) + 3 "
      "to leave room for the document." %
      (FLAGS.max_seq_length, FLAGS.max_query_length))
  problems.positive(FLAGS, "doc_stride", "max_query_length", "n_best_size",
                    "max_answer_length", "train_batch_size",
                    "predict_batch_size", "save_checkpoints_steps",
                    "iterations_per_loop")
  if FLAGS.do_train:
    problems.check(FLAGS.num_train_epochs > 0,
                   "--num_train_epochs must be positive (got %r)." %
                   FLAGS.num_train_epochs)
  problems.check(0.0 <= FLAGS.warmup_proportion <= 1.0,
                 "--warmup_proportion must be in [0, 1] (got %r)." %
                 FLAGS.warmup_proportion)

  export_kinds = None
  if FLAGS.export_dir:
    export_kinds = problems.call(
        export_tflite.file_kinds, FLAGS.use_quantized_training,
        FLAGS.use_post_quantization, FLAGS.activation_quantization,
        FLAGS.float_softmax)
    if export_kinds and export_tflite.needs_calibration(export_kinds):
      problems.require_file(
          "train_file", FLAGS.train_file,
          "the integer TF-Lite model (it is calibrated on the first %d "
          "questions)" % export_tflite.CALIBRATION_EXAMPLES)
  problems.call(file_checks.check_writable_dir, FLAGS.output_dir,
                "output_dir")
  problems.call(file_checks.check_writable_dir, FLAGS.export_dir,
                "export_dir")
  problems.exit_if_any()

  # The flags are sound; now the files they name.
  tokenizer = problems.tokenizer(FLAGS, bert_config.vocab_size)
  lite_model = None
  if FLAGS.lite_model_path:
    lite_model = problems.call(tflite_runner.lite_model_for_task,
                               FLAGS.lite_model_path, "start_logits",
                               FLAGS.max_seq_length, bert_config,
                               FLAGS.bert_config_file)
  resumed_from = problems.restored_checkpoints_fit(
      bert_config, FLAGS.init_checkpoint, FLAGS.output_dir)
  needs_checkpoint = (FLAGS.export_dir or
                      (FLAGS.do_predict and not FLAGS.lite_model_path))
  problems.check(
      not needs_checkpoint or FLAGS.do_train or resumed_from is not None,
      "Prediction and export without --do_train need trained weights, but "
      "--output_dir=%s has no checkpoint and --init_checkpoint is not set." %
      FLAGS.output_dir)
  if needs_checkpoint and not FLAGS.do_train:
    problems.quantization_ranges_trained(FLAGS.use_quantized_training,
                                         resumed_from)
  problems.exit_if_any()
  return bert_config, tokenizer, lite_model, export_kinds


def _make_estimator(bert_config, num_train_steps=0, num_warmup_steps=0):
  """The TPUEstimator of the SQuAD model; no training steps to predict."""
  model_fn = fine_tuning_model.squad_model_fn_builder(
      bert_config, fine_tuning_model.settings_from_flags(
          FLAGS, num_train_steps, num_warmup_steps))
  return estimator_utils.make_estimator_from_flags(
      model_fn, FLAGS, predict_batch_size=FLAGS.predict_batch_size)


def train(bert_config, tokenizer):
  """Featurises (or reuses) the training set and fine-tunes."""
  cache_dir = FLAGS.data_dir or FLAGS.output_dir
  record_path, num_examples, num_features = (
      squad_data.prepare_train_features(
          cache_dir, FLAGS.train_file, tokenizer, FLAGS.vocab_file,
          FLAGS.spm_model_file, FLAGS.do_lower_case, FLAGS.max_seq_length,
          FLAGS.doc_stride, FLAGS.max_query_length,
          FLAGS.version_2_with_negative))
  num_train_steps, num_warmup_steps = run_utils.train_steps(
      num_examples, FLAGS.train_batch_size, FLAGS.num_train_epochs,
      FLAGS.warmup_proportion, unit="questions")
  tf.logging.info("***** Running training *****")
  tf.logging.info("  Num questions = %d", num_examples)
  tf.logging.info("  Num features (windows) = %d", num_features)
  tf.logging.info("  Batch size = %d", FLAGS.train_batch_size)
  tf.logging.info("  Num steps = %d (warm-up %d)", num_train_steps,
                  num_warmup_steps)
  estimator = _make_estimator(bert_config, num_train_steps, num_warmup_steps)
  train_input_fn = squad_data.input_fn_builder(
      record_path, FLAGS.max_seq_length, is_training=True,
      drop_remainder=True)
  with feature_records.reading(record_path):
    estimator.train(input_fn=train_input_fn, max_steps=num_train_steps)


def _featurise(input_file, tokenizer, max_examples=None):
  """Prediction examples and features of a SQuAD file (no labels)."""
  examples, skipped = squad_data.read_squad_examples(
      input_file, is_training=False,
      version_2_with_negative=FLAGS.version_2_with_negative,
      max_examples=max_examples)
  squad_data.log_skipped(input_file, len(examples), skipped)
  features = []
  squad_data.convert_examples_to_features(
      examples, tokenizer, FLAGS.max_seq_length, FLAGS.doc_stride,
      FLAGS.max_query_length, is_training=False, output_fn=features.append)
  return examples, features


def _check_finite(unique_id, start_logits, end_logits):
  if not (np.all(np.isfinite(start_logits)) and
          np.all(np.isfinite(end_logits))):
    raise ValueError(
        "The model produced non-finite logits (feature %d). The weights are "
        "broken: check --init_checkpoint and the checkpoints in "
        "--output_dir." % unique_id)


def _estimator_results(bert_config, features):
  """RawResults for `features` from the estimator (latest checkpoint)."""
  eval_record = os.path.join(FLAGS.output_dir, EVAL_RECORD_NAME)
  squad_data.write_features(features, eval_record, is_training=False)
  estimator = _make_estimator(bert_config)
  predict_input_fn = squad_data.input_fn_builder(
      eval_record, FLAGS.max_seq_length, is_training=False,
      drop_remainder=False)
  results = []
  for result in estimator_utils.predict_with_progress(
      estimator, predict_input_fn, len(features)):
    unique_id = int(result["unique_ids"])
    _check_finite(unique_id, result["start_logits"], result["end_logits"])
    results.append(squad_postprocess.RawResult(
        unique_id=unique_id, start_logits=result["start_logits"],
        end_logits=result["end_logits"]))
  return results


def _lite_results(lite_model, features):
  """RawResults for `features` from the TF-Lite model, one at a time."""
  results = []
  for feature, outputs in zip(features, lite_model.predict(features)):
    start_logits = np.reshape(outputs["start_logits"], [-1])
    end_logits = np.reshape(outputs["end_logits"], [-1])
    _check_finite(feature.unique_id, start_logits, end_logits)
    results.append(squad_postprocess.RawResult(
        unique_id=feature.unique_id, start_logits=start_logits,
        end_logits=end_logits))
  return results


def predict(bert_config, tokenizer, lite_model):
  """Predicts --predict_file, writes the prediction files and metrics."""
  examples, features = _featurise(FLAGS.predict_file, tokenizer)
  tf.logging.info("***** Running predictions *****")
  tf.logging.info("  Num questions = %d", len(examples))
  tf.logging.info("  Num features (windows) = %d", len(features))
  if lite_model is not None:
    results = _lite_results(lite_model, features)
  else:
    results = _estimator_results(bert_config, features)

  predictions, nbest, null_odds = squad_postprocess.compute_predictions(
      examples, features, results, FLAGS.n_best_size, FLAGS.max_answer_length,
      FLAGS.do_lower_case,
      version_2_with_negative=FLAGS.version_2_with_negative,
      null_score_diff_threshold=FLAGS.null_score_diff_threshold,
      sentencepiece=bool(FLAGS.spm_model_file),
      verbose_logging=FLAGS.verbose_logging)
  squad_postprocess.write_predictions(FLAGS.output_dir, predictions, nbest,
                                      null_odds)
  evaluate(predictions, null_odds)


def evaluate(predictions, null_odds):
  """Scores predictions against --predict_file if it carries answers.

  A file without any answers (a test set) is not scored.  One where only
  some questions have answers is refused (after the predictions are
  written): most often a SQuAD 2.0 file read without
  --version_2_with_negative.

  Raises:
    ValueError: some but not all questions can be scored.
  """
  dataset = squad_data.load_squad_json(FLAGS.predict_file)
  unscorable, total = squad_metrics.questions_without_gold(
      dataset, FLAGS.version_2_with_negative)
  if len(unscorable) == total:
    tf.logging.info("%s has no gold answers; predictions written, no "
                    "evaluation.", FLAGS.predict_file)
    return
  if unscorable:
    hint = ("; for a SQuAD 2.0 file pass --version_2_with_negative"
            if not FLAGS.version_2_with_negative else "")
    raise ValueError(
        "--predict_file=%s: %d of %d questions (e.g. %s) have no gold "
        "answer, so the file cannot be scored%s. The predictions are in "
        "--output_dir=%s." % (FLAGS.predict_file, len(unscorable), total,
                              unscorable[0], hint, FLAGS.output_dir))
  if FLAGS.version_2_with_negative:
    # With the threshold used for predictions.json, the official no-answer
    # thresholding agrees with the written predictions.
    metrics = squad_metrics.evaluate_v2(
        dataset, predictions, na_probs=null_odds,
        na_prob_thresh=FLAGS.null_score_diff_threshold)
  else:
    metrics = squad_metrics.evaluate_v1(dataset, predictions)
  run_utils.write_eval_results(FLAGS.output_dir, metrics)


def export(bert_config, tokenizer, kinds):
  """Exports a SavedModel and the TF-Lite files `kinds` to --export_dir."""
  checkpoint = checkpoints.checkpoint_to_use(FLAGS.output_dir,
                                             FLAGS.init_checkpoint)
  calibration_features = None
  if export_tflite.needs_calibration(kinds):
    _, features = _featurise(FLAGS.train_file, tokenizer,
                             max_examples=export_tflite.CALIBRATION_EXAMPLES)
    calibration_features = export_tflite.calibration_inputs(features)
    tf.logging.info("Calibration set: %d features from the first %d "
                    "questions of %s.", len(calibration_features),
                    export_tflite.CALIBRATION_EXAMPLES, FLAGS.train_file)
  tf.logging.info("Exporting %s to %s", checkpoint, FLAGS.export_dir)
  # export() logs each file it writes.
  export_tflite.export(
      bert_config, checkpoint, FLAGS.export_dir, FLAGS.max_seq_length,
      kinds=kinds, task="squad",
      use_quantized_training=FLAGS.use_quantized_training,
      calibration_features=calibration_features,
      vocab_file=FLAGS.vocab_file, spm_model_file=FLAGS.spm_model_file,
      do_lower_case=FLAGS.do_lower_case)


def main(_):
  console.setup(keep_tensorflow_info=FLAGS.use_tpu)
  bert_config, tokenizer, lite_model, export_kinds = validate_flags()
  # Bad data found later (and an export this graph cannot make) ends the
  # run with one line too; files written by an earlier stage stay.
  with run_utils.one_line_errors("run_squad.py"):
    tf.gfile.MakeDirs(FLAGS.output_dir)
    directory_lock.acquire(FLAGS.output_dir)
    if FLAGS.do_train:
      train(bert_config, tokenizer)
    if FLAGS.do_predict:
      predict(bert_config, tokenizer, lite_model)
    if FLAGS.export_dir:
      export(bert_config, tokenizer, export_kinds)


if __name__ == "__main__":
  define_flags()
  tf.app.run()
