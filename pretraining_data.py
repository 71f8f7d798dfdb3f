"""The pretraining TFRecord input_fn (create_pretraining_data.py features)."""

import tensorflow.compat.v1 as tf

import feature_records

# The one float feature of a pretraining record.
FLOAT_FEATURES = ("masked_lm_weights",)


def expand_input_patterns(patterns, flag_name="input_file"):
  """Files matching comma-separated globs.

  Args:
    patterns: str, comma-separated glob patterns.
    flag_name: the flag the patterns came from, for the error message.

  Returns:
    Sorted list of matching files.

  Raises:
    ValueError: naming the flag and the pattern when a glob matches nothing.
  """
  files = []
  for pattern in (patterns or "").split(","):
    pattern = pattern.strip()
    if not pattern:
      continue
    matched = tf.gfile.Glob(pattern)
    if not matched:
      raise ValueError("--%s: pattern %r matches no file" %
                       (flag_name, pattern))
    files.extend(sorted(matched))
  if not files:
    raise ValueError("--%s is empty" % flag_name)
  return files


def feature_spec(max_seq_length, max_predictions_per_seq):
  """The tf.train.Example features and their fixed lengths."""
  return {
      "input_ids": tf.FixedLenFeature([max_seq_length], tf.int64),
      "input_mask": tf.FixedLenFeature([max_seq_length], tf.int64),
      "segment_ids": tf.FixedLenFeature([max_seq_length], tf.int64),
      "masked_lm_positions":
          tf.FixedLenFeature([max_predictions_per_seq], tf.int64),
      "masked_lm_ids": tf.FixedLenFeature([max_predictions_per_seq], tf.int64),
      "masked_lm_weights":
          tf.FixedLenFeature([max_predictions_per_seq], tf.float32),
      "next_sentence_labels": tf.FixedLenFeature([1], tf.int64),
  }


def input_fn_builder(input_files, max_seq_length, max_predictions_per_seq,
                     is_training, batch_size=None):
  """An input_fn(params) for TPUEstimator / Estimator.

  Batches have `batch_size` examples (default: params["batch_size"], which
  TPUEstimator sets; under a tf.distribute strategy pass the per-replica
  batch): input_ids, input_mask, segment_ids [batch, max_seq_length] int32;
  masked_lm_positions, masked_lm_ids [batch, max_predictions_per_seq] int32;
  masked_lm_weights [batch, max_predictions_per_seq] float32;
  next_sentence_labels [batch, 1] int32.  Training shuffles; both training
  and evaluation (a fixed number of steps) repeat the files and drop the
  last partial batch (TPUs need fixed shapes).
  """
  return feature_records.input_fn_builder(
      input_files, feature_spec(max_seq_length, max_predictions_per_seq),
      is_training, drop_remainder=True, batch_size=batch_size, repeat=True)
