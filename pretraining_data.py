# coding=utf-8
"""The pretraining TFRecord input_fn (create_pretraining_data.py features)."""

from __future__ import absolute_import
from __future__ import division
from __future__ import print_function

import tensorflow.compat.v1 as tf

# Files read in parallel; more only helps with many shards.
MAX_PARALLEL_FILES = 4
SHUFFLE_BUFFER = 100


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


def decode_record(record, name_to_features):
  """Parses one Example; int64 features become int32 (TPUs lack int64)."""
  example = tf.parse_single_example(record, name_to_features)
  for name in list(example.keys()):
    if example[name].dtype == tf.int64:
      example[name] = tf.cast(example[name], tf.int32)
  return example


def input_fn_builder(input_files, max_seq_length, max_predictions_per_seq,
                     is_training, num_cpu_threads=4, batch_size=None):
  """An input_fn(params) for TPUEstimator / Estimator.

  Batches have `batch_size` examples (default: params["batch_size"], which
  TPUEstimator sets; under a tf.distribute strategy pass the per-replica
  batch): input_ids, input_mask,
  segment_ids [batch, max_seq_length] int32; masked_lm_positions,
  masked_lm_ids [batch, max_predictions_per_seq] int32; masked_lm_weights
  [batch, max_predictions_per_seq] float32; next_sentence_labels [batch, 1]
  int32.  Training repeats and shuffles; evaluation reads the files in order.
  Both drop the last partial batch (TPUs need fixed shapes).
  """
  name_to_features = feature_spec(max_seq_length, max_predictions_per_seq)

  def input_fn(params):
    batch = batch_size or params["batch_size"]
    if is_training:
      dataset = tf.data.Dataset.from_tensor_slices(tf.constant(input_files))
      dataset = dataset.repeat()
      dataset = dataset.shuffle(buffer_size=len(input_files))
      cycle_length = min(num_cpu_threads, MAX_PARALLEL_FILES,
                         len(input_files))
      dataset = dataset.interleave(tf.data.TFRecordDataset,
                                   cycle_length=cycle_length,
                                   num_parallel_calls=cycle_length)
      dataset = dataset.shuffle(buffer_size=SHUFFLE_BUFFER)
    else:
      dataset = tf.data.TFRecordDataset(input_files)
      dataset = dataset.repeat()
    dataset = dataset.map(lambda record: decode_record(record,
                                                       name_to_features),
                          num_parallel_calls=num_cpu_threads)
    return dataset.batch(batch, drop_remainder=True)

  return input_fn
