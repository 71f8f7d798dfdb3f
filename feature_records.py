"""TFRecord features of every task: written, cached and read one way.

SQuAD, GLUE and pretraining features are tf.train.Examples whose features
are int64 or float lists.  This module owns

* `RecordWriter`: serialises them without building protos (the pure-Python
  protobuf runtime spends about 10 ms per SQuAD feature building one) and
  lands the file whole or not at all;
* `cached_records`: reuse of a cache file only when a JSON record of the
  settings it was built with matches the current ones;
* `input_fn_builder`: the Estimator input_fn, with int64 cast to int32
  (TPUs have no int64) and the same parallelism for every task;
* `reading`: a damaged record met while an estimator reads the files ends
  in one ValueError naming the file, the record and the problem.
"""

import collections
import contextlib
import hashlib
import json
import re
import struct

import tensorflow.compat.v1 as tf

import atomic_files
import file_checks

# Varint encodings of small ints, precomputed: ids and positions are small.
_VARINT_TABLE_SIZE = 1 << 16
# Examples shuffled in memory while training (files are shuffled too).
SHUFFLE_BUFFER = 100
# Files read in parallel while training; more only helps with many shards.
MAX_PARALLEL_FILES = 4
# Appended to a cache file's name for the record of how it was built.
SETTINGS_SUFFIX = ".settings.json"


def _encode_varint(value):
  """Protobuf base-128 varint of an int64 (negatives as 64-bit 2s compl.)."""
  value &= 0xFFFFFFFFFFFFFFFF
  out = bytearray()
  while True:
    low = value & 0x7F
    value >>= 7
    if value:
      out.append(low | 0x80)
    else:
      out.append(low)
      return bytes(out)


_VARINTS = [_encode_varint(v) for v in range(_VARINT_TABLE_SIZE)]


def _packed_varints(values):
  return b"".join(_VARINTS[v] if 0 <= v < _VARINT_TABLE_SIZE
                  else _encode_varint(v) for v in values)


def _length_delimited(field_tag, payload):
  return field_tag + _encode_varint(len(payload)) + payload


# Field tags (field number << 3 | wire type 2) of the Example protos.
_TAG_FIELD_1 = b"\x0a"        # Example.features, Features.feature entry,
                              # map key, Int64List/FloatList.value
_TAG_MAP_VALUE = b"\x12"      # the Feature of a map entry
_TAG_FLOAT_LIST = b"\x12"     # Feature.float_list
_TAG_INT64_LIST = b"\x1a"     # Feature.int64_list


def serialize_example(fields, float_names=()):
  """Serialises {name: values} exactly as tf.train.Example would.

  Args:
    fields: mapping feature name -> list of Python ints (an Int64List) or,
      for names in `float_names`, of floats (a FloatList, float32).
    float_names: names whose values are floats.

  Returns:
    bytes that parse as a tf.train.Example (tests check this against the
    protobuf parser).
  """
  entries = []
  for name, values in fields.items():
    if name in float_names:
      payload = struct.pack("<%df" % len(values), *values)
      feature = _length_delimited(
          _TAG_FLOAT_LIST, _length_delimited(_TAG_FIELD_1, payload))
    else:
      feature = _length_delimited(
          _TAG_INT64_LIST,
          _length_delimited(_TAG_FIELD_1, _packed_varints(values)))
    entry = (_length_delimited(_TAG_FIELD_1, name.encode("utf-8")) +
             _length_delimited(_TAG_MAP_VALUE, feature))
    entries.append(_length_delimited(_TAG_FIELD_1, entry))
  return _length_delimited(_TAG_FIELD_1, b"".join(entries))


class RecordWriter(object):
  """Writes feature dicts to one TFRecord file that appears only when closed.

  Records go to `atomic_files.partial_path(path)`; `close()` renames that
  onto `path`, `discard()` deletes it.  As a context manager, an exception
  discards.  `num_records` counts the
  records written.
  """

  def __init__(self, path, float_names=()):
    self.path = path
    self.float_names = frozenset(float_names)
    self.num_records = 0
    self._writer = tf.python_io.TFRecordWriter(atomic_files.partial_path(path))

  def write(self, fields):
    """Writes one record; `fields` as for serialize_example."""
    self._writer.write(serialize_example(fields, self.float_names))
    self.num_records += 1

  def close(self):
    """Puts the finished file at `path` (or, if the last bytes cannot be
    written, deletes the partial file and raises)."""
    try:
      self._writer.close()
    except BaseException:
      atomic_files.discard_partial(self.path)
      raise
    atomic_files.commit_partial(self.path)

  def discard(self):
    """Deletes what was written; an older `path` keeps its contents."""
    self._writer.close()
    atomic_files.discard_partial(self.path)

  def __enter__(self):
    return self

  def __exit__(self, error_type, unused_error, unused_traceback):
    if error_type is None:
      self.close()
    else:
      self.discard()
    return False


def file_sha256(path):
  """sha256 hex digest of a file's bytes, or None for no file."""
  if not path:
    return None
  digest = hashlib.sha256()
  with tf.gfile.GFile(path, "rb") as reader:
    while True:
      chunk = reader.read(1 << 20)
      if not chunk:
        break
      digest.update(chunk)
  return digest.hexdigest()


def tokenizer_settings(vocab_file=None, spm_model_file=None,
                       do_lower_case=True):
  """What a cache of token ids depends on: the files' contents and casing."""
  return collections.OrderedDict([
      ("vocab_sha256", file_sha256(vocab_file)),
      ("spm_model_sha256", file_sha256(spm_model_file)),
      ("do_lower_case", bool(do_lower_case)),
  ])


def _read_settings_record(path):
  if not tf.gfile.Exists(path):
    return None
  with tf.gfile.GFile(path, "r") as reader:
    try:
      record = json.load(reader)
    except ValueError:
      return None
  return record if isinstance(record, dict) else None


def cached_records(record_path, settings, build):
  """The counts of `record_path`, rebuilt by `build` unless up to date.

  `record_path + SETTINGS_SUFFIX` records the settings the file was built
  with, the counts `build` returned and the file's size and modification
  time.  The file is reused only when that record exists, its settings
  equal `settings` and it describes the file there now; otherwise the
  settings that changed are logged and `build(path_to_write)` writes the
  records again.  Both files land whole (partial files, then renames), the
  record after the file: a build that fails (a full disk) leaves the earlier
  cache and its record as they were, and one interrupted between the two
  renames is rebuilt next time.

  Args:
    record_path: the cache file.
    settings: JSON-able dict of everything the records depend on.
    build: callable(path) writing the records to `path` through a
      RecordWriter and returning a JSON-able dict of counts.

  Returns:
    (counts dict, rebuilt bool).
  """
  settings = json.loads(json.dumps(settings))
  settings_path = record_path + SETTINGS_SUFFIX
  cached = _read_settings_record(settings_path)
  if cached is not None and tf.gfile.Exists(record_path):
    old = cached.get("settings") or {}
    if old == settings and cached.get("file") == _file_identity(record_path):
      tf.logging.info("Reusing cached features %s (%s).", record_path,
                      _describe_counts(cached.get("counts") or {}))
      return cached.get("counts") or {}, False
    changed = sorted(key for key in set(settings) | set(old)
                     if settings.get(key) != old.get(key))
    tf.logging.info("Rebuilding stale features %s; changed: %s.", record_path,
                    ", ".join("%s %r -> %r" % (key, old.get(key),
                                               settings.get(key))
                              for key in changed))
  elif tf.gfile.Exists(record_path):
    tf.logging.info("Rebuilding features %s: no readable %s records how they "
                    "were built.", record_path, settings_path)
  else:
    tf.logging.info("Building features %s.", record_path)
  counts = build(record_path)
  with tf.gfile.GFile(atomic_files.partial_path(settings_path), "w") as writer:
    json.dump({"settings": settings, "counts": counts,
               "file": _file_identity(record_path)}, writer, indent=2)
  atomic_files.commit_partial(settings_path)
  tf.logging.info("Wrote %s (%s).", record_path, _describe_counts(counts))
  return counts, True


def _file_identity(path):
  """[size, modification time in ns] of `path`."""
  stat = tf.gfile.Stat(path)
  return [int(stat.length), int(stat.mtime_nsec)]


def _describe_counts(counts):
  return ", ".join("%s %s" % (value, key) for key, value in counts.items())


def input_fn_builder(input_files, name_to_features, is_training,
                     drop_remainder, batch_size=None, repeat=None):
  """An Estimator / TPUEstimator input_fn over TFRecord files.

  Every int64 feature is cast to int32.  Training repeats the data and
  shuffles SHUFFLE_BUFFER examples; several files are read in a shuffled
  order, up to MAX_PARALLEL_FILES at a time.  Otherwise the files are read
  in order.

  Args:
    input_files: a path or a list of paths.
    name_to_features: dict name -> tf.FixedLenFeature.
    is_training: shuffle and repeat.
    drop_remainder: drop the last partial batch (TPUs need fixed shapes).
    batch_size: examples per batch; default params["batch_size"] (what
      TPUEstimator sets; under tf.distribute pass the per-replica batch).
    repeat: repeat outside training too (an evaluation of a fixed number of
      steps); defaults to is_training.

  Returns:
    input_fn(params) -> tf.data.Dataset of dicts of [batch, ...] tensors.
  """
  if isinstance(input_files, str):
    input_files = [input_files]
  input_files = list(input_files)
  repeat = is_training if repeat is None else repeat

  def decode(record):
    example = tf.parse_single_example(record, name_to_features)
    return {name: (tf.cast(tensor, tf.int32) if tensor.dtype == tf.int64
                   else tensor)
            for name, tensor in example.items()}

  def input_fn(params):
    batch = batch_size or params["batch_size"]
    if is_training and len(input_files) > 1:
      dataset = tf.data.Dataset.from_tensor_slices(tf.constant(input_files))
      dataset = dataset.repeat().shuffle(buffer_size=len(input_files))
      cycle_length = min(MAX_PARALLEL_FILES, len(input_files))
      dataset = dataset.interleave(tf.data.TFRecordDataset,
                                   cycle_length=cycle_length,
                                   num_parallel_calls=cycle_length)
      dataset = dataset.shuffle(buffer_size=SHUFFLE_BUFFER)
    elif is_training:
      dataset = tf.data.TFRecordDataset(input_files).repeat()
      dataset = dataset.shuffle(buffer_size=SHUFFLE_BUFFER)
    else:
      dataset = tf.data.TFRecordDataset(input_files)
      if repeat:
        dataset = dataset.repeat()
    dataset = dataset.map(decode,
                          num_parallel_calls=tf.data.experimental.AUTOTUNE)
    return dataset.batch(batch, drop_remainder=drop_remainder)

  return input_fn


def find_damaged_record(input_files):
  """(file, index of its first unreadable record, problem), or None.

  Reads every record of every file (record checksums included); meant for
  after a read failed, to say where.
  """
  for path in input_files:
    index = 0
    try:
      for _ in tf.io.tf_record_iterator(path):
        index += 1
    except tf.errors.OpError as error:
      return path, index, _op_error_problem(error)
  return None


def _op_error_problem(error):
  """A TensorFlow error's own sentence, without its graph-node suffix."""
  problem = file_checks.first_line(error)
  return re.sub(r"\s*\[\[.*$", "", problem).strip()


@contextlib.contextmanager
def reading(input_files):
  """Ends a damaged-record failure while the block reads `input_files` in
  one ValueError naming the file, the record and the problem.

  TensorFlow's DataLossError ("truncated record at 10240", "corrupted record
  at 0") names neither the file nor the record; the files are scanned only
  after such a failure.
  """
  if isinstance(input_files, str):
    input_files = [input_files]
  try:
    yield
  except tf.errors.DataLossError as error:
    damaged = find_damaged_record(input_files)
    if damaged is None:
      raise ValueError("A TFRecord file could not be read (%s); none of %s "
                       "is damaged now." % (_op_error_problem(error),
                                            ", ".join(input_files)))
    path, index, problem = damaged
    if index == 0:
      raise ValueError("%s is not a TFRecord file, or is damaged from its "
                       "first record (%s)." % (path, problem))
    raise ValueError(
        "%s is damaged: record %d cannot be read (%s). The records before it "
        "are intact; copy or write the file again." % (path, index, problem))
