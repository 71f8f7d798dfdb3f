# coding=utf-8
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

import json
import os
import sys

import numpy as np
import tensorflow.compat.v1 as tf

import estimator_utils
import export_tflite
import file_checks
import heads
import modeling
import optimization
import squad_data
import squad_metrics
import squad_postprocess
import tokenization

flags = tf.flags
FLAGS = flags.FLAGS

flags.DEFINE_string(
    "bert_config_file", None,
    "The config json file corresponding to the pre-trained MobileBERT model.")
flags.DEFINE_string("vocab_file", None,
                    "The WordPiece vocabulary the model was trained on.")
flags.DEFINE_string(
    "spm_model_file", None,
    "A SentencePiece model to use instead of --vocab_file.")
flags.DEFINE_string(
    "output_dir", None,
    "Where checkpoints, predictions and eval_results.json are written.")
flags.DEFINE_string(
    "data_dir", None,
    "Where the training features (train.tf_record) are cached; defaults to "
    "--output_dir.")
flags.DEFINE_string("train_file", None,
                    "SQuAD json for training, e.g. train-v1.1.json. Also the "
                    "source of the representative dataset that calibrates "
                    "integer TF-Lite exports.")
flags.DEFINE_string("predict_file", None,
                    "SQuAD json for predictions, e.g. dev-v1.1.json.")
flags.DEFINE_string(
    "init_checkpoint", None,
    "Initial checkpoint (usually a pre-trained MobileBERT): a prefix, a path "
    "ending in .index or .data-*, or a directory.")
flags.DEFINE_string(
    "hub_module_url", None,
    "TF-Hub module URL. Not supported by this code base (tensorflow_hub is "
    "not a dependency); use --init_checkpoint.")
flags.DEFINE_bool(
    "do_lower_case", True,
    "Whether to lower case the input text. Should be True for uncased models.")
flags.DEFINE_integer(
    "max_seq_length", 384,
    "Total tokens per feature after WordPiece tokenization (query, document "
    "window and three special tokens).")
flags.DEFINE_integer(
    "doc_stride", 128,
    "When splitting a long document into windows, how far each window "
    "advances.")
flags.DEFINE_integer(
    "max_query_length", 64,
    "Questions longer than this (in sub-tokens) are truncated.")
flags.DEFINE_bool("do_train", False, "Whether to run training.")
flags.DEFINE_bool("do_predict", False,
                  "Whether to run prediction on --predict_file.")
flags.DEFINE_string(
    "lite_model_path", None,
    "With --do_predict, predict with this TF-Lite model instead of the "
    "estimator.")
flags.DEFINE_bool("use_quantized_training", False,
                  "Quantization-aware training (needs a relu6 + no_norm "
                  "config such as the _QAT one).")
flags.DEFINE_bool("use_post_quantization", False,
                  "Apply post-training quantization when exporting TF-Lite.")
flags.DEFINE_bool(
    "activation_quantization", False,
    "With --use_post_quantization, also quantize activations (full-integer "
    "model), calibrated on the first 100 questions of --train_file.  With "
    "--use_quantized_training the integer model is written either way (and "
    "calibrated there too, for the tensors QAT learns no range for).")
flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.")
flags.DEFINE_integer("predict_batch_size", 8,
                     "Total batch size for predictions.")
flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate for Adam.")
flags.DEFINE_float("num_train_epochs", 3.0,
                   "Total number of training epochs to perform.")
flags.DEFINE_float(
    "warmup_proportion", 0.1,
    "Proportion of training to perform linear learning rate warmup for.")
flags.DEFINE_integer("save_checkpoints_steps", 1000,
                     "How often to save the model checkpoint.")
flags.DEFINE_integer("iterations_per_loop", 1000,
                     "How many steps to make in each estimator call.")

flags.DEFINE_integer("random_seed", None,
                     "Graph-level random seed, for reproducible runs; unset "
                     "means unseeded.")
flags.DEFINE_integer(
    "n_best_size", 20,
    "The total number of n-best predictions to generate in "
    "nbest_predictions.json.")
flags.DEFINE_integer(
    "max_answer_length", 30,
    "The maximum length of an answer that can be generated, in sub-tokens.")
flags.DEFINE_bool(
    "use_einsum", False,
    "Use tf.einsum for the 3-D dense layers; the original SQuAD script used "
    "the matmul path (False). Numerically equivalent.")
flags.DEFINE_bool("use_tpu", False, "Whether to use TPU or GPU/CPU.")
flags.DEFINE_string("tpu_name", None, "The Cloud TPU to use for training.")
flags.DEFINE_string("tpu_zone", None, "GCE zone of the Cloud TPU.")
flags.DEFINE_string("gcp_project", None, "GCP project of the Cloud TPU.")
flags.DEFINE_string("master", None, "TensorFlow master URL.")
flags.DEFINE_integer("num_tpu_cores", 8,
                     "Only used if --use_tpu: total number of TPU cores.")
flags.DEFINE_bool(
    "verbose_logging", False,
    "Log why predicted texts could not be aligned with the original text.")
flags.DEFINE_bool(
    "version_2_with_negative", False,
    "SQuAD 2.0: some questions have no answer.")
flags.DEFINE_float(
    "null_score_diff_threshold", 0.0,
    "SQuAD 2.0: answer \"\" when null score - best span score exceeds this.")
flags.DEFINE_string(
    "export_dir", None,
    "If set, export a SavedModel and TF-Lite models here after training and "
    "prediction.")

EVAL_RECORD_NAME = "eval.tf_record"
EVAL_RESULTS_FILE = "eval_results.json"
REPRESENTATIVE_EXAMPLES = 100


def _require_file(flag_name, needed_for):
  path = getattr(FLAGS, flag_name)
  if not path:
    raise ValueError("--%s is required for %s." % (flag_name, needed_for))
  if not tf.gfile.Exists(path):
    raise ValueError("--%s=%s does not exist." % (flag_name, path))


def _checkpoint_to_use():
  """Latest checkpoint in --output_dir, else --init_checkpoint, else None."""
  if tf.gfile.IsDirectory(FLAGS.output_dir):
    latest = tf.train.latest_checkpoint(FLAGS.output_dir)
    if latest:
      return latest
  if FLAGS.init_checkpoint:
    return modeling.resolve_checkpoint_path(FLAGS.init_checkpoint)
  return None


def validate_flags_or_throw(bert_config):
  """Checks flag values and their combinations before any graph is built.

  Raises:
    ValueError: naming the offending flags.
  """
  if FLAGS.hub_module_url:
    raise ValueError("TF-Hub modules are not supported; use --init_checkpoint "
                     "(got --hub_module_url=%s)." % FLAGS.hub_module_url)
  if not (FLAGS.do_train or FLAGS.do_predict or FLAGS.export_dir):
    raise ValueError("At least one of --do_train, --do_predict or "
                     "--export_dir must be given.")
  if bool(FLAGS.vocab_file) == bool(FLAGS.spm_model_file):
    raise ValueError("Exactly one of --vocab_file and --spm_model_file is "
                     "required (got --vocab_file=%s, --spm_model_file=%s)." %
                     (FLAGS.vocab_file, FLAGS.spm_model_file))
  _require_file("vocab_file" if FLAGS.vocab_file else "spm_model_file",
                "tokenization")
  tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case,
                                                FLAGS.init_checkpoint)
  if FLAGS.init_checkpoint:
    modeling.resolve_checkpoint_path(FLAGS.init_checkpoint)

  if FLAGS.do_train:
    _require_file("train_file", "--do_train")
  if FLAGS.do_predict:
    _require_file("predict_file", "--do_predict")
  if FLAGS.lite_model_path:
    if not FLAGS.do_predict:
      raise ValueError("--lite_model_path=%s is only used with --do_predict." %
                       FLAGS.lite_model_path)
    _require_file("lite_model_path", "TF-Lite prediction")

  if FLAGS.max_seq_length > bert_config.max_position_embeddings:
    raise ValueError(
        "Cannot use --max_seq_length=%d because the model in "
        "--bert_config_file=%s was trained with max_position_embeddings=%d." %
        (FLAGS.max_seq_length, FLAGS.bert_config_file,
         bert_config.max_position_embeddings))
  if FLAGS.max_seq_length <= FLAGS.max_query_length + 3:
    raise ValueError(
        "--max_seq_length (%d) must be greater than --max_query_length (%d) "
        "+ 3 to leave room for the document." %
        (FLAGS.max_seq_length, FLAGS.max_query_length))
  for flag_name in ("doc_stride", "max_query_length", "n_best_size",
                    "max_answer_length", "train_batch_size",
                    "predict_batch_size", "save_checkpoints_steps",
                    "iterations_per_loop"):
    if getattr(FLAGS, flag_name) <= 0:
      raise ValueError("--%s must be positive (got %d)." %
                       (flag_name, getattr(FLAGS, flag_name)))
  if FLAGS.do_train and FLAGS.num_train_epochs <= 0:
    raise ValueError("--num_train_epochs must be positive (got %r)." %
                     FLAGS.num_train_epochs)
  if not 0.0 <= FLAGS.warmup_proportion <= 1.0:
    raise ValueError("--warmup_proportion must be in [0, 1] (got %r)." %
                     FLAGS.warmup_proportion)

  if FLAGS.use_quantized_training:
    try:
      modeling.check_quantizable(bert_config)
    except ValueError as error:
      raise ValueError("--use_quantized_training with --bert_config_file=%s: "
                       "%s" % (FLAGS.bert_config_file, error))

  if FLAGS.export_dir:
    export_tflite.check_export_supported(FLAGS.use_quantized_training,
                                         FLAGS.use_post_quantization,
                                         FLAGS.activation_quantization)
    if export_tflite.writes_integer_model(FLAGS.use_quantized_training,
                                          FLAGS.use_post_quantization,
                                          FLAGS.activation_quantization):
      _require_file("train_file", "the integer TF-Lite model (it is "
                    "calibrated on the first %d questions)" %
                    REPRESENTATIVE_EXAMPLES)

  needs_checkpoint = (FLAGS.export_dir or
                      (FLAGS.do_predict and not FLAGS.lite_model_path))
  if needs_checkpoint and not FLAGS.do_train and _checkpoint_to_use() is None:
    raise ValueError(
        "Prediction and export without --do_train need trained weights, but "
        "--output_dir=%s has no checkpoint and --init_checkpoint is not set." %
        FLAGS.output_dir)

  file_checks.check_writable_dir(FLAGS.output_dir, "output_dir")
  file_checks.check_writable_dir(FLAGS.export_dir, "export_dir")
  if FLAGS.lite_model_path:
    export_tflite.LiteModel(FLAGS.lite_model_path)
  # Every checkpoint this run restores, once each: the one it starts from
  # and the one it resumes (or predicts and exports) from, often the same.
  checkpoints = set()
  if FLAGS.init_checkpoint:
    checkpoints.add(modeling.resolve_checkpoint_path(FLAGS.init_checkpoint))
  resumed_from = _checkpoint_to_use()
  if resumed_from:
    checkpoints.add(resumed_from)
  for checkpoint in sorted(checkpoints):
    modeling.check_checkpoint(checkpoint, bert_config)


def compute_span_loss(logits, positions):
  """Mean cross-entropy of span logits against gold positions.

  Args:
    logits: [batch, seq] float32.
    positions: [batch] int32 gold indexes.

  Returns:
    scalar float32.
  """
  seq_length = modeling.get_shape_list(logits, expected_rank=2)[1]
  one_hot_positions = tf.one_hot(positions, depth=seq_length,
                                 dtype=tf.float32)
  log_probs = tf.nn.log_softmax(logits, axis=-1)
  return -tf.reduce_mean(tf.reduce_sum(one_hot_positions * log_probs, axis=-1))


def model_fn_builder(bert_config, init_checkpoint, learning_rate,
                     num_train_steps, num_warmup_steps, use_tpu,
                     use_einsum, use_quantized_training):
  """Returns the TPUEstimator model_fn (TRAIN and PREDICT modes)."""

  def model_fn(features, labels, mode, params):
    """Span logits, and in TRAIN the loss and train op."""
    del labels, params  # Labels travel inside `features`.
    is_training = mode == tf.estimator.ModeKeys.TRAIN
    if mode not in (tf.estimator.ModeKeys.TRAIN,
                    tf.estimator.ModeKeys.PREDICT):
      raise ValueError("Only TRAIN and PREDICT modes are supported: %s" % mode)
    start_logits, end_logits = heads.squad_logits(
        bert_config, is_training=is_training,
        input_ids=features["input_ids"], input_mask=features["input_mask"],
        segment_ids=features["segment_ids"], use_one_hot_embeddings=False,
        use_einsum=use_einsum, use_quantized_training=use_quantized_training)

    scaffold_fn = None
    if init_checkpoint:
      scaffold_fn = modeling.init_from_checkpoint(
          init_checkpoint, tf.trainable_variables(), use_tpu=use_tpu)

    if is_training:
      start_loss = compute_span_loss(start_logits, features["start_positions"])
      end_loss = compute_span_loss(end_logits, features["end_positions"])
      total_loss = (start_loss + end_loss) / 2.0
      train_op = optimization.create_optimizer(
          total_loss, learning_rate, num_train_steps, num_warmup_steps,
          use_tpu)
      return tf.estimator.tpu.TPUEstimatorSpec(
          mode=mode, loss=total_loss, train_op=train_op,
          training_hooks=estimator_utils.loss_logging_hooks(
              total_loss, use_tpu),
          scaffold_fn=scaffold_fn)

    predictions = {"start_logits": start_logits, "end_logits": end_logits}
    # Serving inputs carry no unique_ids; pass them through only when present
    # (the original dropped them whenever --export_dir was set, which broke
    # prediction in the same run).
    if "unique_ids" in features:
      predictions["unique_ids"] = features["unique_ids"]
    return tf.estimator.tpu.TPUEstimatorSpec(
        mode=mode, predictions=predictions, scaffold_fn=scaffold_fn)

  return model_fn


def _make_estimator(model_fn):
  return estimator_utils.make_estimator(
      model_fn, FLAGS.output_dir, use_tpu=FLAGS.use_tpu,
      tpu_name=FLAGS.tpu_name, tpu_zone=FLAGS.tpu_zone,
      gcp_project=FLAGS.gcp_project, master=FLAGS.master,
      num_tpu_cores=FLAGS.num_tpu_cores,
      iterations_per_loop=FLAGS.iterations_per_loop,
      save_checkpoints_steps=FLAGS.save_checkpoints_steps,
      tf_random_seed=FLAGS.random_seed,
      train_batch_size=FLAGS.train_batch_size,
      predict_batch_size=FLAGS.predict_batch_size)


def train(bert_config, tokenizer):
  """Featurises (or reuses) the training set and fine-tunes."""
  cache_dir = FLAGS.data_dir or FLAGS.output_dir
  record_path, num_examples, num_features = (
      squad_data.prepare_train_features(
          cache_dir, FLAGS.train_file, tokenizer, FLAGS.vocab_file,
          FLAGS.spm_model_file, FLAGS.do_lower_case, FLAGS.max_seq_length,
          FLAGS.doc_stride, FLAGS.max_query_length,
          FLAGS.version_2_with_negative))
  # As in the original, steps are counted over questions, not windows, so
  # published epoch counts keep their meaning.
  num_train_steps = int(num_examples / FLAGS.train_batch_size *
                        FLAGS.num_train_epochs)
  if num_train_steps < 1:
    raise ValueError(
        "No training steps: %d questions / --train_batch_size=%d * "
        "--num_train_epochs=%r is below 1." %
        (num_examples, FLAGS.train_batch_size, FLAGS.num_train_epochs))
  num_warmup_steps = int(num_train_steps * FLAGS.warmup_proportion)
  tf.logging.info("***** Running training *****")
  tf.logging.info("  Num questions = %d", num_examples)
  tf.logging.info("  Num features (windows) = %d", num_features)
  tf.logging.info("  Batch size = %d", FLAGS.train_batch_size)
  tf.logging.info("  Num steps = %d (warm-up %d)", num_train_steps,
                  num_warmup_steps)
  model_fn = model_fn_builder(
      bert_config, FLAGS.init_checkpoint, FLAGS.learning_rate,
      num_train_steps, num_warmup_steps, FLAGS.use_tpu, FLAGS.use_einsum,
      FLAGS.use_quantized_training)
  estimator = _make_estimator(model_fn)
  train_input_fn = squad_data.input_fn_builder(
      record_path, FLAGS.max_seq_length, is_training=True,
      drop_remainder=True)
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
  model_fn = model_fn_builder(
      bert_config, FLAGS.init_checkpoint, FLAGS.learning_rate, 0, 0,
      FLAGS.use_tpu, FLAGS.use_einsum, FLAGS.use_quantized_training)
  estimator = _make_estimator(model_fn)
  predict_input_fn = squad_data.input_fn_builder(
      eval_record, FLAGS.max_seq_length, is_training=False,
      drop_remainder=False)
  results = []
  for result in estimator.predict(predict_input_fn,
                                  yield_single_examples=True):
    if len(results) % 1000 == 0:
      tf.logging.info("Processing feature %d of %d", len(results),
                      len(features))
    unique_id = int(result["unique_ids"])
    _check_finite(unique_id, result["start_logits"], result["end_logits"])
    results.append(squad_postprocess.RawResult(
        unique_id=unique_id, start_logits=result["start_logits"],
        end_logits=result["end_logits"]))
  return results


def _lite_results(features):
  """RawResults for `features` from the TF-Lite model, one at a time."""
  lite_model = export_tflite.LiteModel(FLAGS.lite_model_path)
  tf.logging.info("Predicting with %s on %s.", FLAGS.lite_model_path,
                  lite_model.runtime)
  if lite_model.sequence_length != FLAGS.max_seq_length:
    raise ValueError(
        "--lite_model_path=%s takes sequences of %d tokens but "
        "--max_seq_length=%d; pass the length the model was exported with." %
        (FLAGS.lite_model_path, lite_model.sequence_length,
         FLAGS.max_seq_length))
  results = []
  for feature in features:
    if len(results) % 1000 == 0:
      tf.logging.info("TF-Lite: feature %d of %d", len(results),
                      len(features))
    outputs = lite_model.run(feature.input_ids, feature.input_mask,
                             feature.segment_ids)
    start_logits = np.reshape(outputs["start_logits"], [-1])
    end_logits = np.reshape(outputs["end_logits"], [-1])
    _check_finite(feature.unique_id, start_logits, end_logits)
    results.append(squad_postprocess.RawResult(
        unique_id=feature.unique_id, start_logits=start_logits,
        end_logits=end_logits))
  return results


def predict(bert_config, tokenizer):
  """Predicts --predict_file, writes the prediction files and metrics."""
  examples, features = _featurise(FLAGS.predict_file, tokenizer)
  tf.logging.info("***** Running predictions *****")
  tf.logging.info("  Num questions = %d", len(examples))
  tf.logging.info("  Num features (windows) = %d", len(features))
  if FLAGS.lite_model_path:
    results = _lite_results(features)
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
  path = os.path.join(FLAGS.output_dir, EVAL_RESULTS_FILE)
  with tf.gfile.GFile(path, "w") as writer:
    writer.write(json.dumps(metrics, indent=2) + "\n")
  tf.logging.info("***** Eval results (%s) *****", path)
  for key, value in metrics.items():
    tf.logging.info("  %s = %s", key, value)


def export(bert_config, tokenizer):
  """Exports a SavedModel and TF-Lite models to --export_dir."""
  checkpoint = _checkpoint_to_use()
  if checkpoint is None:
    raise ValueError("Nothing to export: --output_dir=%s has no checkpoint "
                     "and --init_checkpoint is not set." % FLAGS.output_dir)
  representative_features = None
  if export_tflite.writes_integer_model(FLAGS.use_quantized_training,
                                        FLAGS.use_post_quantization,
                                        FLAGS.activation_quantization):
    _, features = _featurise(FLAGS.train_file, tokenizer,
                             max_examples=REPRESENTATIVE_EXAMPLES)
    representative_features = [
        {"input_ids": f.input_ids, "input_mask": f.input_mask,
         "segment_ids": f.segment_ids} for f in features]
    tf.logging.info("Representative dataset: %d features from the first %d "
                    "questions of %s.", len(representative_features),
                    REPRESENTATIVE_EXAMPLES, FLAGS.train_file)
  tf.logging.info("Exporting %s to %s", checkpoint, FLAGS.export_dir)
  paths = export_tflite.export(
      bert_config, checkpoint, FLAGS.export_dir, FLAGS.max_seq_length,
      task="squad", use_quantized_training=FLAGS.use_quantized_training,
      use_post_quantization=FLAGS.use_post_quantization,
      activation_quantization=FLAGS.activation_quantization,
      representative_features=representative_features,
      vocab_file=FLAGS.vocab_file, spm_model_file=FLAGS.spm_model_file,
      do_lower_case=FLAGS.do_lower_case)
  for kind, path in sorted(paths.items()):
    tf.logging.info("  exported %s: %s", kind, path)


def main(_):
  tf.logging.set_verbosity(tf.logging.INFO)
  # Bad flags, files and data raise ValueError naming them: the run ends with
  # that one line (and nothing written by an earlier stage is lost).
  try:
    bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
    validate_flags_or_throw(bert_config)
    tokenizer = tokenization.create_tokenizer(
        vocab_file=FLAGS.vocab_file, spm_model_file=FLAGS.spm_model_file,
        do_lower_case=FLAGS.do_lower_case, vocab_size=bert_config.vocab_size)
    tf.gfile.MakeDirs(FLAGS.output_dir)
    if FLAGS.do_train:
      train(bert_config, tokenizer)
    if FLAGS.do_predict:
      predict(bert_config, tokenizer)
    if FLAGS.export_dir:
      export(bert_config, tokenizer)
  except export_tflite.IntegerExportError as error:
    sys.exit("run_squad.py: --export_dir: %s" % error)
  except ValueError as error:
    sys.exit("run_squad.py: %s" % error)


if __name__ == "__main__":
  flags.mark_flag_as_required("bert_config_file")
  flags.mark_flag_as_required("output_dir")
  tf.app.run()
