"""The estimator model_fns of fine-tuning: SQuAD spans and GLUE labels.

run_squad.py and run_classifier.py build their TPUEstimators on these; the
heads and their losses are heads.py's, the optimizer optimization.py's.  Both
model_fns run TRAIN and PREDICT (run_classifier.py evaluates by predicting
and scoring in numpy).  Variables come from the latest checkpoint in
`output_dir` when there is one, else from `init_checkpoint`.
"""

import collections

import tensorflow.compat.v1 as tf

import checkpoints
import estimator_utils
import heads
import optimization

FineTuningSettings = collections.namedtuple(
    "FineTuningSettings",
    ["init_checkpoint",          # str or None: where the weights come from.
     "output_dir",               # str or None: a run's own checkpoints win.
     "learning_rate",            # float: AdamW's peak learning rate.
     "num_train_steps",          # int: the schedule's length (0: no TRAIN).
     "num_warmup_steps",         # int: linear warm-up steps.
     "use_tpu",                  # bool.
     "use_einsum",               # bool: einsum maths in the encoder.
     "use_quantized_training"])  # bool: fake-quant nodes in the encoder.


def settings_from_flags(flags_values, num_train_steps=0, num_warmup_steps=0):
  """FineTuningSettings from a fine-tuning script's flags.

  flags_values needs init_checkpoint, output_dir, learning_rate, use_tpu,
  use_einsum and use_quantized_training; the step counts default to a
  prediction-only model_fn's.
  """
  return FineTuningSettings(
      init_checkpoint=flags_values.init_checkpoint,
      output_dir=flags_values.output_dir,
      learning_rate=flags_values.learning_rate,
      num_train_steps=num_train_steps, num_warmup_steps=num_warmup_steps,
      use_tpu=flags_values.use_tpu, use_einsum=flags_values.use_einsum,
      use_quantized_training=flags_values.use_quantized_training)


def squad_model_fn_builder(bert_config, settings):
  """The model_fn of run_squad.py.

  Features: input_ids, input_mask, segment_ids [batch, seq] int32; in TRAIN
  start_positions and end_positions [batch] int32; in PREDICT optionally
  unique_ids [batch] (serving inputs have none).
  Predictions: start_logits and end_logits [batch, seq] (and unique_ids).
  The training loss is the mean of the start and end span losses.
  """

  def squad_outputs(features, is_training):
    start_logits, end_logits = heads.squad_logits(
        bert_config, is_training=is_training,
        input_ids=features["input_ids"], input_mask=features["input_mask"],
        segment_ids=features["segment_ids"], use_one_hot_embeddings=False,
        use_einsum=settings.use_einsum,
        use_quantized_training=settings.use_quantized_training)
    if is_training:
      start_loss = heads.span_loss(start_logits, features["start_positions"])
      end_loss = heads.span_loss(end_logits, features["end_positions"])
      return (start_loss + end_loss) / 2.0, None
    predictions = {"start_logits": start_logits, "end_logits": end_logits}
    # Passed through only when present, so that prediction and export (whose
    # serving inputs have no ids) can share a run.
    if "unique_ids" in features:
      predictions["unique_ids"] = features["unique_ids"]
    return None, predictions

  return _model_fn_builder(squad_outputs, settings)


def classifier_model_fn_builder(bert_config, num_labels, settings):
  """The model_fn of run_classifier.py.

  Features: input_ids, input_mask, segment_ids [batch, seq] int32, label_ids
  [batch] (int32, float32 for regression), is_real_example [batch] int32.
  Predictions: probabilities [batch, num_labels] (the score [batch, 1] for
  regression) and is_real_example [batch].
  """

  def classifier_outputs(features, is_training):
    logits, probabilities = heads.classifier_logits(
        bert_config=bert_config, is_training=is_training,
        input_ids=features["input_ids"], input_mask=features["input_mask"],
        segment_ids=features["segment_ids"], num_labels=num_labels,
        use_one_hot_embeddings=settings.use_tpu,
        use_einsum=settings.use_einsum,
        use_quantized_training=settings.use_quantized_training)
    if is_training:
      return heads.classifier_loss(logits, features["label_ids"],
                                   num_labels), None
    return None, {"probabilities": probabilities,
                  "is_real_example": features["is_real_example"]}

  return _model_fn_builder(classifier_outputs, settings)


def _model_fn_builder(task_outputs, settings):
  """A TRAIN / PREDICT model_fn around task_outputs(features, is_training).

  task_outputs returns (loss, None) when training, (None, predictions)
  otherwise.
  """

  def model_fn(features, labels, mode, params):
    del labels, params  # Labels travel in `features`; batch size is implicit.
    if mode not in (tf.estimator.ModeKeys.TRAIN,
                    tf.estimator.ModeKeys.PREDICT):
      raise ValueError("Fine-tuning runs TRAIN and PREDICT (evaluation "
                       "predicts and scores in numpy), got %s" % mode)
    is_training = mode == tf.estimator.ModeKeys.TRAIN
    loss, predictions = task_outputs(features, is_training)
    scaffold_fn = None
    if settings.init_checkpoint:
      scaffold_fn = checkpoints.init_from_checkpoint(
          settings.init_checkpoint, use_tpu=settings.use_tpu,
          model_dir=settings.output_dir)
    if not is_training:
      return tf.estimator.tpu.TPUEstimatorSpec(
          mode=mode, predictions=predictions, scaffold_fn=scaffold_fn)
    train_op = optimization.create_optimizer(
        loss, settings.learning_rate, settings.num_train_steps,
        settings.num_warmup_steps, settings.use_tpu)
    return tf.estimator.tpu.TPUEstimatorSpec(
        mode=mode, loss=loss, train_op=train_op,
        training_hooks=estimator_utils.progress_hooks(
            loss, settings.use_tpu, settings.num_train_steps,
            features["input_ids"]),
        scaffold_fn=scaffold_fn)

  return model_fn
