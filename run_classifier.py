# coding=utf-8
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
and TF-Lite models whose output is named "probabilities".  Unlike the
original, training, evaluation, prediction and export can share one run.
"""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import os
import sys

import numpy as np
import tensorflow.compat.v1 as tf

import estimator_utils
import export_tflite
import file_checks
import feature_records
import glue_data
import glue_metrics
import heads
import modeling
import optimization
import tokenization

flags = tf.flags
FLAGS = flags.FLAGS

flags.DEFINE_string(
    "data_dir", None,
    "Directory of the task's GLUE TSV files (train.tsv, dev.tsv, test.tsv; "
    "MNLI: dev_matched.tsv, dev_mismatched.tsv, test_matched.tsv, "
    "test_mismatched.tsv).")

flags.DEFINE_string(
    "tfrecord_dir", None,
    "Where featurised TFRecords are cached; defaults to --output_dir. A cache "
    "is rebuilt whenever the data, tokenizer or --max_seq_length change.")

flags.DEFINE_string("bert_config_file", None,
                    "The config JSON file of the pre-trained model.")

flags.DEFINE_string(
    "task_name", None,
    "GLUE task: one of %s (case-insensitive)." % ", ".join(glue_data.PROCESSORS))

flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary (vocab.txt).")

flags.DEFINE_string("spm_model_file", None,
                    "SentencePiece model, instead of --vocab_file.")

flags.DEFINE_string(
    "output_dir", None,
    "Where checkpoints, eval_results.txt and submission files are written.")

flags.DEFINE_string(
    "init_checkpoint", None,
    "Initial checkpoint: a prefix, a .index/.data-* file or a directory.")

flags.DEFINE_bool("do_lower_case", True, "Lower-case the input text.")

flags.DEFINE_integer(
    "max_seq_length", 128,
    "Total tokens per example after WordPiece, [CLS] and [SEP]; longer "
    "inputs are truncated (longest text first), shorter ones padded.")

flags.DEFINE_bool("do_train", False, "Fine-tune on train.tsv.")

flags.DEFINE_bool("do_eval", False, "Score the dev set(s).")

flags.DEFINE_bool("do_predict", False,
                  "Write GLUE submission files for the test set(s).")

flags.DEFINE_integer("train_batch_size", 32, "Batch size for training.")

flags.DEFINE_integer("eval_batch_size", 8, "Batch size for evaluation.")

flags.DEFINE_integer("predict_batch_size", 8, "Batch size for prediction.")

flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate of AdamW.")

flags.DEFINE_float("num_train_epochs", 3.0, "Training epochs.")

flags.DEFINE_float(
    "warmup_proportion", 0.1,
    "Fraction of training with a linear learning-rate warm-up.")

flags.DEFINE_integer("save_checkpoints_steps", 1000,
                     "Steps between checkpoints.")

flags.DEFINE_integer("iterations_per_loop", 1000,
                     "Steps per TPU loop (per estimator call).")

flags.DEFINE_integer("random_seed", None,
                     "Graph-level random seed, for reproducible runs; unset "
                     "means unseeded.")

flags.DEFINE_bool(
    "use_einsum", False,
    "Einsum maths in the encoder; the default MatMul path (as the original "
    "classifier) converts best to TF-Lite. The two are numerically equal.")

flags.DEFINE_bool(
    "use_quantized_training", False,
    "Quantization-aware training: fake-quant nodes in the encoder. Needs a "
    "relu6 + no_norm config such as "
    "config/uncased_L-24_H-128_B-512_A-4_F-4_OPT_QAT.json.")

flags.DEFINE_bool(
    "use_post_quantization", False,
    "On export, also write a post-training-quantized TF-Lite model "
    "(dynamic range, or full integer with --activation_quantization).")

flags.DEFINE_bool(
    "activation_quantization", False,
    "Quantize activations too on export (full-integer model).  Integer "
    "models are calibrated on the first 100 train examples (needs train.tsv "
    "in --data_dir); with --use_quantized_training the integer model is "
    "written either way and only the tensors QAT learns no range for are "
    "calibrated.")

flags.DEFINE_string(
    "export_dir", None,
    "If set, export a SavedModel and TF-Lite models here after any "
    "training, evaluation and prediction.")

flags.DEFINE_string(
    "lite_model_path", None,
    "If set, --do_eval and --do_predict run this TF-Lite model instead of "
    "the TensorFlow graph.")

flags.DEFINE_bool("use_tpu", False, "Run on a TPU (also one-hot embeddings).")

flags.DEFINE_string("tpu_name", None, "Cloud TPU name or grpc:// address.")

flags.DEFINE_string("tpu_zone", None, "GCE zone of the Cloud TPU.")

flags.DEFINE_string("gcp_project", None, "GCP project of the Cloud TPU.")

flags.DEFINE_string("master", None, "TensorFlow master URL.")

flags.DEFINE_integer("num_tpu_cores", 8, "TPU cores (only with --use_tpu).")

# Examples whose features calibrate activation ranges for full-integer export.
NUM_REPRESENTATIVE_EXAMPLES = 100


def validate_flags(processor):
  """Checks the flags before any graph is built.

  Args:
    processor: the task's glue_data.DataProcessor, or None if --task_name is
      unknown (already reported).

  Returns:
    (problems, bert_config): a list of messages, each naming the offending
    flag, and the loaded BertConfig (None if it could not be loaded).
  """
  problems = _run_flag_problems()
  config_problems, bert_config = _config_problems()
  problems.extend(config_problems)
  problems.extend(_checkpoint_problems())
  if not problems:
    problems.extend(_checkpoint_content_problems(bert_config))
  if processor is not None:
    problems.extend(_data_file_problems(processor))
  return problems, bert_config


def _run_flag_problems():
  """What to do, tokenizer files, sizes and TF-Lite flags."""
  problems = []
  if not FLAGS.output_dir:
    problems.append("--output_dir is required.")
  for name in ("output_dir", "export_dir", "tfrecord_dir"):
    try:
      file_checks.check_writable_dir(getattr(FLAGS, name), name)
    except ValueError as e:
      problems.append(str(e))
  if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict or
          FLAGS.export_dir):
    problems.append("At least one of --do_train, --do_eval, --do_predict or "
                    "--export_dir must be set.")
  if bool(FLAGS.vocab_file) == bool(FLAGS.spm_model_file):
    problems.append("Give exactly one of --vocab_file and --spm_model_file.")
  for name in ("vocab_file", "spm_model_file", "lite_model_path"):
    path = getattr(FLAGS, name)
    if path and not tf.gfile.Exists(path):
      problems.append("--%s=%s does not exist." % (name, path))
  for name in ("train_batch_size", "eval_batch_size", "predict_batch_size"):
    if getattr(FLAGS, name) < 1:
      problems.append("--%s must be positive, got %d." %
                      (name, getattr(FLAGS, name)))
  if FLAGS.max_seq_length < 3:
    problems.append("--max_seq_length must be at least 3 ([CLS] a [SEP]), "
                    "got %d." % FLAGS.max_seq_length)
  if FLAGS.do_train and FLAGS.num_train_epochs <= 0:
    problems.append("--num_train_epochs must be positive with --do_train.")
  if not 0.0 <= FLAGS.warmup_proportion <= 1.0:
    problems.append("--warmup_proportion must be in [0, 1], got %g." %
                    FLAGS.warmup_proportion)
  if FLAGS.lite_model_path:
    if not (FLAGS.do_eval or FLAGS.do_predict):
      problems.append("--lite_model_path is only used by --do_eval and "
                      "--do_predict; set one of them.")
    if tf.gfile.Exists(FLAGS.lite_model_path):
      problems.extend(_lite_model_problems())
  if FLAGS.export_dir:
    try:
      export_tflite.check_export_supported(FLAGS.use_quantized_training,
                                           FLAGS.use_post_quantization,
                                           FLAGS.activation_quantization)
    except ValueError as e:
      problems.append("--export_dir: %s" % e)
  return problems


def _config_problems():
  """Loads --bert_config_file; checks sequence length and QAT against it."""
  if not FLAGS.bert_config_file:
    return ["--bert_config_file is required."], None
  try:
    bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
  except ValueError as e:
    return ["--bert_config_file: %s" % e], None
  problems = []
  if FLAGS.max_seq_length > bert_config.max_position_embeddings:
    problems.append(
        "--max_seq_length=%d exceeds max_position_embeddings=%d of "
        "--bert_config_file=%s." %
        (FLAGS.max_seq_length, bert_config.max_position_embeddings,
         FLAGS.bert_config_file))
  if FLAGS.use_quantized_training:
    try:
      modeling.check_quantizable(bert_config)
    except ValueError as e:
      problems.append("--use_quantized_training with --bert_config_file=%s: "
                      "%s" % (FLAGS.bert_config_file, e))
  return problems, bert_config


def _checkpoint_problems():
  """--init_checkpoint must load; evaluation and export need some weights."""
  problems = []
  if FLAGS.init_checkpoint:
    try:
      modeling.resolve_checkpoint_path(FLAGS.init_checkpoint)
      tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case,
                                                    FLAGS.init_checkpoint)
    except ValueError as e:
      problems.append("--init_checkpoint: %s" % e)
  uses_tf_model = [
      name for name, is_set in (
          ("--do_eval", FLAGS.do_eval and not FLAGS.lite_model_path),
          ("--do_predict", FLAGS.do_predict and not FLAGS.lite_model_path),
          ("--export_dir", FLAGS.export_dir)) if is_set]
  if (uses_tf_model and not FLAGS.do_train and not FLAGS.init_checkpoint and
      FLAGS.output_dir and _latest_checkpoint() is None):
    problems.append(
        "%s needs trained weights: train in this run (--do_train), keep a "
        "checkpoint in --output_dir=%s, or give --init_checkpoint." %
        (" and ".join(uses_tf_model), FLAGS.output_dir))
  return problems


def _checkpoint_content_problems(bert_config):
  """Every checkpoint this run restores must be whole and fit the config."""
  checkpoints = [("--init_checkpoint", FLAGS.init_checkpoint),
                 ("--output_dir", _latest_checkpoint())]
  problems = []
  for flag, checkpoint in checkpoints:
    if checkpoint:
      try:
        modeling.check_checkpoint(checkpoint, bert_config)
      except ValueError as e:
        problems.append("%s: %s" % (flag, e))
  return problems


def _data_file_problems(processor):
  """Every TSV this run reads must exist in --data_dir."""
  needed = []
  if FLAGS.do_train or _needs_representative_set():
    needed.append("train")
  if FLAGS.do_eval:
    needed.extend(split for split, _ in processor.dev_splits)
  if FLAGS.do_predict:
    needed.extend(split for split, _ in processor.test_splits)
  if not needed:
    return []
  if not FLAGS.data_dir:
    return ["--data_dir is required to read %s.tsv." % ".tsv, ".join(needed)]
  return ["--data_dir=%s has no %s.tsv (needed for %s)." %
          (FLAGS.data_dir, split, _purpose(split))
          for split in needed
          if not tf.gfile.Exists(os.path.join(FLAGS.data_dir, split + ".tsv"))]


def _lite_model_problems():
  """Checks that --lite_model_path is a classifier for --max_seq_length."""
  try:
    lite_model = export_tflite.LiteModel(FLAGS.lite_model_path)
  except ValueError as e:
    return ["--lite_model_path: %s" % e]
  problems = []
  if "probabilities" not in lite_model.output_names:
    problems.append("--lite_model_path=%s has no 'probabilities' output "
                    "(outputs: %s); it is not a classifier export." %
                    (FLAGS.lite_model_path, ", ".join(lite_model.output_names)))
  if lite_model.sequence_length != FLAGS.max_seq_length:
    problems.append("--lite_model_path=%s takes sequences of %d tokens but "
                    "--max_seq_length=%d." %
                    (FLAGS.lite_model_path, lite_model.sequence_length,
                     FLAGS.max_seq_length))
  return problems


def _purpose(split):
  if split == "train":
    return ("--do_train" if FLAGS.do_train else
            "the integer TF-Lite model's representative set")
  return "--do_eval" if split.startswith("dev") else "--do_predict"


def _needs_representative_set():
  return bool(FLAGS.export_dir and export_tflite.writes_integer_model(
      FLAGS.use_quantized_training, FLAGS.use_post_quantization,
      FLAGS.activation_quantization))


def _latest_checkpoint():
  if not tf.gfile.IsDirectory(FLAGS.output_dir):
    return None
  return tf.train.latest_checkpoint(FLAGS.output_dir)


def model_fn_builder(bert_config, num_labels, init_checkpoint, learning_rate,
                     num_train_steps, num_warmup_steps, use_tpu):
  """The TPUEstimator model_fn: TRAIN and PREDICT (evaluation uses PREDICT).

  Features: input_ids, input_mask, segment_ids [batch, seq] int32, label_ids
  [batch] (int32, float32 for regression), is_real_example [batch] int32.
  Predictions: probabilities [batch, num_labels] (the score [batch, 1] for
  regression) and is_real_example [batch].
  """

  def model_fn(features, labels, mode, params):
    del labels, params  # Labels travel in `features`; batch size is implicit.
    if mode not in (tf.estimator.ModeKeys.TRAIN, tf.estimator.ModeKeys.PREDICT):
      raise ValueError("run_classifier's model_fn supports TRAIN and PREDICT "
                       "(evaluation runs PREDICT and scores in numpy), got %s"
                       % mode)
    is_training = mode == tf.estimator.ModeKeys.TRAIN
    logits, probabilities = heads.classifier_logits(
        bert_config=bert_config,
        is_training=is_training,
        input_ids=features["input_ids"],
        input_mask=features["input_mask"],
        segment_ids=features["segment_ids"],
        num_labels=num_labels,
        use_one_hot_embeddings=use_tpu,
        use_einsum=FLAGS.use_einsum,
        use_quantized_training=FLAGS.use_quantized_training)

    scaffold_fn = None
    if init_checkpoint:
      scaffold_fn = modeling.init_from_checkpoint(init_checkpoint,
                                                  use_tpu=use_tpu)

    if is_training:
      loss = classifier_loss(logits, features["label_ids"], num_labels)
      train_op = optimization.create_optimizer(
          loss, learning_rate, num_train_steps, num_warmup_steps, use_tpu)
      return tf.estimator.tpu.TPUEstimatorSpec(
          mode=mode, loss=loss, train_op=train_op,
          training_hooks=estimator_utils.loss_logging_hooks(loss, use_tpu),
          scaffold_fn=scaffold_fn)
    return tf.estimator.tpu.TPUEstimatorSpec(
        mode=mode,
        predictions={"probabilities": probabilities,
                     "is_real_example": features["is_real_example"]},
        scaffold_fn=scaffold_fn)

  return model_fn


def classifier_loss(logits, label_ids, num_labels):
  """Mean cross-entropy, or mean squared error when num_labels is 1.

  Args:
    logits: [batch, num_labels] float32.
    label_ids: [batch] int32 class ids, or float32 scores for regression.
    num_labels: int.

  Returns:
    scalar float32 loss.
  """
  if num_labels == 1:
    scores = tf.squeeze(logits, axis=[-1])
    return tf.reduce_mean(tf.square(scores - tf.cast(label_ids, tf.float32)))
  log_probs = tf.nn.log_softmax(logits, axis=-1)
  one_hot_labels = tf.one_hot(label_ids, depth=num_labels, dtype=tf.float32)
  return tf.reduce_mean(-tf.reduce_sum(one_hot_labels * log_probs, axis=-1))


def _record_file(name):
  return os.path.join(FLAGS.tfrecord_dir or FLAGS.output_dir,
                      name + ".tf_record")


def _make_estimator(model_fn, predict_batch_size):
  return estimator_utils.make_estimator(
      model_fn=model_fn,
      model_dir=FLAGS.output_dir,
      use_tpu=FLAGS.use_tpu,
      tpu_name=FLAGS.tpu_name,
      tpu_zone=FLAGS.tpu_zone,
      gcp_project=FLAGS.gcp_project,
      master=FLAGS.master,
      num_tpu_cores=FLAGS.num_tpu_cores,
      iterations_per_loop=FLAGS.iterations_per_loop,
      save_checkpoints_steps=FLAGS.save_checkpoints_steps,
      tf_random_seed=FLAGS.random_seed,
      train_batch_size=FLAGS.train_batch_size,
      predict_batch_size=predict_batch_size)


def predict_outputs(examples, split, label_list, tokenizer, tokenizer_settings,
                    model_fn, batch_size):
  """Model outputs for `examples` through the TensorFlow graph or TF-Lite.

  Returns:
    float32 array [len(examples), num_labels]: class probabilities, or the
    score [len(examples), 1] for regression.
  """
  if FLAGS.lite_model_path:
    return _lite_outputs(examples, label_list, tokenizer)
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
  return np.array([result["probabilities"]
                   for result in estimator.predict(input_fn=input_fn,
                                                   yield_single_examples=True)
                   if result["is_real_example"]], dtype=np.float32)


def _lite_outputs(examples, label_list, tokenizer):
  """Runs --lite_model_path one example at a time (its inputs are [1, seq])."""
  lite_model = export_tflite.LiteModel(FLAGS.lite_model_path)
  tf.logging.info("Running %s on %s.", FLAGS.lite_model_path,
                  lite_model.runtime)
  features = glue_data.convert_examples_to_features(
      examples, label_list, FLAGS.max_seq_length, tokenizer)
  outputs = []
  for feature in features:
    result = lite_model.run(feature.input_ids, feature.input_mask,
                            feature.segment_ids)
    outputs.append(np.reshape(result["probabilities"], [-1]))
  return np.array(outputs, dtype=np.float32)


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


def write_eval_results(results, output_file):
  """Writes and logs `key = value` lines."""
  tf.logging.info("***** Eval results *****")
  with tf.gfile.GFile(output_file, "w") as writer:
    for key in sorted(results):
      tf.logging.info("  %s = %s", key, results[key])
      writer.write("%s = %s\n" % (key, results[key]))


def representative_features(train_examples, label_list, tokenizer):
  """Features of the first train examples, to calibrate integer export."""
  features = glue_data.convert_examples_to_features(
      train_examples[:NUM_REPRESENTATIVE_EXAMPLES], label_list,
      FLAGS.max_seq_length, tokenizer)
  return [{"input_ids": f.input_ids, "input_mask": f.input_mask,
           "segment_ids": f.segment_ids} for f in features]


def read_examples(processor):
  """Reads every TSV this run needs, so bad data stops it before training.

  Returns:
    (train_examples or None, [(dev split, examples)],
     [(test split, submission name, examples)]).

  Raises:
    ValueError: a malformed file, naming the file and line.
  """
  train_examples = None
  if FLAGS.do_train or _needs_representative_set():
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


def _exit_with_problems(problems):
  for problem in problems:
    tf.logging.error(problem)
  sys.exit("run_classifier.py: invalid flags:\n  " + "\n  ".join(problems))


def main(_):
  tf.logging.set_verbosity(tf.logging.INFO)

  processor = None
  problems = []
  try:
    processor = glue_data.get_processor(FLAGS.task_name)
  except ValueError as e:
    problems.append(str(e))
  more_problems, bert_config = validate_flags(processor)
  problems.extend(more_problems)
  if problems:
    _exit_with_problems(problems)

  try:
    tokenizer = tokenization.create_tokenizer(
        vocab_file=FLAGS.vocab_file, spm_model_file=FLAGS.spm_model_file,
        do_lower_case=FLAGS.do_lower_case, vocab_size=bert_config.vocab_size)
    train_examples, dev_sets, test_sets = read_examples(processor)
  except ValueError as e:
    _exit_with_problems([str(e)])

  task_name = FLAGS.task_name.lower()
  label_list = processor.get_labels()
  num_labels = len(label_list) or 1
  tokenizer_settings = feature_records.tokenizer_settings(
      FLAGS.vocab_file, FLAGS.spm_model_file, FLAGS.do_lower_case)

  num_train_steps = 0
  num_warmup_steps = 0
  if FLAGS.do_train:
    num_train_steps = int(len(train_examples) / FLAGS.train_batch_size *
                          FLAGS.num_train_epochs)
    num_warmup_steps = int(num_train_steps * FLAGS.warmup_proportion)
    if num_train_steps < 1:
      _exit_with_problems([
          "%d training examples at --train_batch_size=%d for "
          "--num_train_epochs=%g make no training step." %
          (len(train_examples), FLAGS.train_batch_size,
           FLAGS.num_train_epochs)])
  tf.gfile.MakeDirs(FLAGS.output_dir)

  model_fn = model_fn_builder(
      bert_config=bert_config,
      num_labels=num_labels,
      init_checkpoint=FLAGS.init_checkpoint,
      learning_rate=FLAGS.learning_rate,
      num_train_steps=num_train_steps,
      num_warmup_steps=num_warmup_steps,
      use_tpu=FLAGS.use_tpu)

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
    estimator.train(input_fn=train_input_fn, max_steps=num_train_steps)

  if FLAGS.do_eval:
    results = {}
    for split, examples in dev_sets:
      tf.logging.info("***** Running evaluation on %s (%d examples) *****",
                      split, len(examples))
      outputs = predict_outputs(examples, split, label_list, tokenizer,
                                tokenizer_settings, model_fn,
                                FLAGS.eval_batch_size)
      scores = score_outputs(task_name, outputs, examples, label_list)
      prefix = _eval_key_prefix(split)
      for key, value in scores.items():
        results[prefix + key] = value
    if not FLAGS.lite_model_path:
      results["global_step"] = modeling.latest_checkpoint_step(
          FLAGS.output_dir)
    write_eval_results(results,
                       os.path.join(FLAGS.output_dir, "eval_results.txt"))

  if FLAGS.do_predict:
    for split, submission_name, examples in test_sets:
      tf.logging.info("***** Running prediction on %s (%d examples) *****",
                      split, len(examples))
      outputs = predict_outputs(examples, split, label_list, tokenizer,
                                tokenizer_settings, model_fn,
                                FLAGS.predict_batch_size)
      predictions = (np.argmax(outputs, axis=-1) if label_list
                     else outputs[:, 0])
      output_file = os.path.join(FLAGS.output_dir, submission_name + ".tsv")
      glue_data.write_submission_file(output_file, predictions, label_list)
      tf.logging.info("Wrote %s", output_file)

  if FLAGS.export_dir:
    checkpoint = _latest_checkpoint() or modeling.resolve_checkpoint_path(
        FLAGS.init_checkpoint)
    rep_features = None
    if _needs_representative_set():
      rep_features = representative_features(train_examples, label_list,
                                             tokenizer)
    try:
      exported = export_tflite.export(
          bert_config=bert_config,
          checkpoint=checkpoint,
          export_dir=FLAGS.export_dir,
          max_seq_length=FLAGS.max_seq_length,
          task="classifier",
          num_labels=num_labels,
          use_quantized_training=FLAGS.use_quantized_training,
          use_post_quantization=FLAGS.use_post_quantization,
          activation_quantization=FLAGS.activation_quantization,
          representative_features=rep_features,
          vocab_file=FLAGS.vocab_file,
          spm_model_file=FLAGS.spm_model_file,
          do_lower_case=FLAGS.do_lower_case)
    except export_tflite.IntegerExportError as error:
      sys.exit("run_classifier.py: --export_dir: %s" % error)
    for kind, path in sorted(exported.items()):
      tf.logging.info("Exported %s: %s", kind, path)


if __name__ == "__main__":
  tf.app.run()
