"""Tests for feature_records.py and atomic_files.py.

Serialised records are checked against TensorFlow's own protobuf parser and
tf.data reading; the cache against the settings a test changes one by one.
"""

import collections
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import atomic_files
import feature_records


def test_serialized_records_parse_as_tf_example():
  fields = collections.OrderedDict([
      ("unique_ids", [1000000000]),
      ("input_ids", [0, 1, 127, 128, 300, 16383, 16384, 65535, 65536, 70000]),
      ("start_positions", [-1]),
      ("big", [2 ** 40, 2 ** 63 - 1]),
      ("weights", [1.0, 0.0, -2.5, 1e-3]),
      ("empty", []),
  ])
  parsed = tf.train.Example.FromString(
      feature_records.serialize_example(fields, float_names=("weights",)))
  assert set(parsed.features.feature) == set(fields)
  for name, values in fields.items():
    feature = parsed.features.feature[name]
    if name == "weights":
      np.testing.assert_array_equal(feature.float_list.value,
                                    np.float32(values))
    else:
      assert list(feature.int64_list.value) == values


def _read_all(path, name_to_features, batch_size):
  input_fn = feature_records.input_fn_builder(path, name_to_features,
                                              is_training=False,
                                              drop_remainder=False)
  with tf.Graph().as_default():
    batch = tf.data.make_one_shot_iterator(
        input_fn({"batch_size": batch_size})).get_next()
    with tf.Session() as session:
      return session.run(batch)


def test_writer_lands_whole_and_input_fn_casts_to_int32(tmp_path):
  path = str(tmp_path / "sub" / "records.tf_record")
  with feature_records.RecordWriter(path, float_names=("w",)) as writer:
    for i in range(3):
      writer.write({"ids": [i, i + 1], "w": [i / 2.0]})
    # Nothing is visible under the final name before the writer closes.
    assert not os.path.exists(path)
  assert writer.num_records == 3
  assert not os.path.exists(path + atomic_files.PARTIAL_SUFFIX)
  batch = _read_all(path, {"ids": tf.FixedLenFeature([2], tf.int64),
                           "w": tf.FixedLenFeature([1], tf.float32)}, 10)
  assert batch["ids"].dtype == np.int32 and batch["w"].dtype == np.float32
  np.testing.assert_array_equal(batch["ids"], [[0, 1], [1, 2], [2, 3]])
  np.testing.assert_array_equal(batch["w"][:, 0], [0.0, 0.5, 1.0])

  # A failed rewrite leaves the earlier file as it was, and no partial file.
  with pytest.raises(RuntimeError):
    with feature_records.RecordWriter(path, float_names=("w",)) as writer:
      writer.write({"ids": [7, 7], "w": [0.0]})
      raise RuntimeError("killed")
  assert not os.path.exists(path + atomic_files.PARTIAL_SUFFIX)
  assert sum(1 for _ in tf.io.tf_record_iterator(path)) == 3


def test_cache_reused_only_for_the_same_settings(tmp_path):
  path = str(tmp_path / "cache.tf_record")
  builds = []

  def build(target):
    with feature_records.RecordWriter(target) as writer:
      writer.write({"x": [len(builds)]})
    builds.append(target)
    return {"features": writer.num_records}

  settings = {"max_seq_length": 8, "vocab_sha256": "a"}
  assert feature_records.cached_records(path, settings, build) == (
      {"features": 1}, True)
  assert feature_records.cached_records(path, dict(settings), build) == (
      {"features": 1}, False)
  assert len(builds) == 1
  changed = dict(settings, vocab_sha256="b")
  assert feature_records.cached_records(path, changed, build)[1]
  # A damaged settings record, or a missing record file, means a rebuild.
  with open(path + feature_records.SETTINGS_SUFFIX, "w") as f:
    f.write("{not json")
  assert feature_records.cached_records(path, changed, build)[1]
  os.remove(path)
  assert feature_records.cached_records(path, changed, build)[1]
  assert len(builds) == 4


def test_file_sha256_and_tokenizer_settings(tmp_path):
  vocab = tmp_path / "vocab.txt"
  vocab.write_bytes(b"abc")
  # sha256("abc"), the FIPS 180-2 test vector.
  assert feature_records.file_sha256(str(vocab)) == (
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  assert feature_records.file_sha256(None) is None
  cased = feature_records.tokenizer_settings(str(vocab), do_lower_case=False)
  assert cased["do_lower_case"] is False and cased["spm_model_sha256"] is None


def test_replace_directory_keeps_one_complete_copy(tmp_path):
  target = str(tmp_path / "model")
  os.mkdir(target)
  (tmp_path / "model" / "old.txt").write_text("old")
  with atomic_files.staging_directory(str(tmp_path)) as staging:
    built = os.path.join(staging, "new")
    os.mkdir(built)
    with open(os.path.join(built, "new.txt"), "w") as f:
      f.write("new")
    atomic_files.replace_directory(built, target)
  assert os.listdir(target) == ["new.txt"]
  # Staging and retired copies are gone.
  assert sorted(os.listdir(str(tmp_path))) == ["model"]


def test_failed_rebuild_leaves_the_cache_and_its_record(tmp_path):
  """A rebuild that fails midway (a full disk) keeps the earlier file and its
  settings record, so the earlier settings still reuse it; a file replaced
  behind the record's back is rebuilt."""
  path = str(tmp_path / "cache.tf_record")

  def build(target, fail=False):
    with feature_records.RecordWriter(target) as writer:
      writer.write({"x": [1]})
      if fail:
        raise OSError(28, "No space left on device")
    return {"features": writer.num_records}

  settings = {"doc_stride": 128}
  assert feature_records.cached_records(path, settings, build)[1]
  with open(path, "rb") as f:
    cached_bytes = f.read()
  with open(path + feature_records.SETTINGS_SUFFIX) as f:
    cached_record = f.read()
  with pytest.raises(OSError):
    feature_records.cached_records(path, {"doc_stride": 64},
                                   lambda target: build(target, fail=True))
  with open(path, "rb") as f:
    assert f.read() == cached_bytes
  with open(path + feature_records.SETTINGS_SUFFIX) as f:
    assert f.read() == cached_record
  assert sorted(os.listdir(str(tmp_path))) == [
      "cache.tf_record", "cache.tf_record" + feature_records.SETTINGS_SUFFIX]
  assert not feature_records.cached_records(path, settings, build)[1]
  # Same settings, but the file is not the one the record describes.
  with open(path, "ab") as f:
    f.write(b"\0")
  assert feature_records.cached_records(path, settings, build)[1]
