"""GLUE data: reading the task TSV files, featurisation and the TFRecord cache.

Every GLUE task is a `DataProcessor` that knows the column layout of its
train/dev/test files (as distributed by the GLUE benchmark), its label set and
the names GLUE uses for its submission files.  Examples become
`[CLS] a [SEP] (b [SEP])` features, written to TFRecords that are reused only
while the settings that produced them (examples, tokenizer files, casing,
sequence length, labels) are unchanged.
"""

import collections
import csv
import hashlib
import json
import os

import tensorflow.compat.v1 as tf

import console
import feature_records
import file_checks
import tokenization

# Bump when the record layout changes, so that old caches are rebuilt.
_RECORD_FORMAT_VERSION = 1


class InputExample(object):
  """One sentence or sentence pair with its label (None for test data)."""

  def __init__(self, guid, text_a, text_b=None, label=None):
    self.guid = guid
    self.text_a = text_a
    self.text_b = text_b
    self.label = label


class PaddingInputExample(object):
  """A fake example that fills the last batch; it has weight 0 in metrics.

  TPUs need every batch full, so eval/predict sets are padded with these
  instead of dropping the real examples of the last partial batch.
  """


class InputFeatures(object):
  """Model inputs of one example, each id list of length max_seq_length."""

  def __init__(self, input_ids, input_mask, segment_ids, label_id,
               is_real_example=True):
    self.input_ids = input_ids
    self.input_mask = input_mask
    self.segment_ids = segment_ids
    self.label_id = label_id
    self.is_real_example = is_real_example


# Where the fields of one TSV layout live.  num_columns None means "as many
# as the header row has"; label None means the file carries no labels; a
# negative index counts from the last column.
TsvLayout = collections.namedtuple(
    "TsvLayout", ["has_header", "num_columns", "text_a", "text_b", "label"])


class DataProcessor(object):
  """Reads one GLUE task.

  Subclasses set:
    submission_name: the task's name in GLUE submission files, e.g. "SST-2".
    labels: the label strings in id order; empty for regression (STS-B).
    dev_splits / test_splits: (file stem, submission name) pairs, more than
      one for MNLI (matched and mismatched).
    labeled_layout / test_layout: TsvLayout of train/dev and of test files.
  """

  submission_name = None
  labels = ()
  labeled_layout = None
  test_layout = None

  @property
  def dev_splits(self):
    return (("dev", self.submission_name),)

  @property
  def test_splits(self):
    return (("test", self.submission_name),)

  @property
  def is_regression(self):
    return not self.labels

  def get_labels(self):
    """Label strings in id order (empty for regression tasks)."""
    return list(self.labels)

  def get_train_examples(self, data_dir):
    return self.get_examples(data_dir, "train")

  def get_examples(self, data_dir, split):
    """Examples of `<data_dir>/<split>.tsv`, e.g. split "dev_matched".

    Guids are "<split>-<n>" with n the 0-based data row.  Test files carry no
    labels, so test examples have label None.

    Raises:
      ValueError: naming the file and line of a row with the wrong number of
        columns, an unknown label or an unparsable score.
    """
    is_test = split.startswith("test")
    layout = self.test_layout if is_test else self.labeled_layout
    path = os.path.join(data_dir, split + ".tsv")
    examples = []
    for line_number, row in _read_tsv(path, layout):
      text_b = row[layout.text_b] if layout.text_b is not None else None
      label = None
      if layout.label is not None:
        label = self._parse_label(row[layout.label], path, line_number)
      examples.append(
          InputExample(guid="%s-%d" % (split, len(examples)),
                       text_a=row[layout.text_a], text_b=text_b, label=label))
    return examples

  def _parse_label(self, text, path, line_number):
    if self.is_regression:
      try:
        return float(text)
      except ValueError:
        raise ValueError("%s line %d: score '%s' is not a number" %
                         (path, line_number, text))
    if text not in self.labels:
      raise ValueError("%s line %d: label '%s' is not one of %s" %
                       (path, line_number, text, ", ".join(self.labels)))
    return text


def _read_tsv(path, layout):
  """Yields (1-based line number, columns) of the data rows of a GLUE TSV.

  Fields are taken verbatim: GLUE text contains quote characters that are not
  CSV quoting.  Blank lines are skipped.
  """
  if not tf.gfile.Exists(path):
    raise ValueError("GLUE data file %s does not exist" % path)
  num_columns = layout.num_columns
  needed = max(i for i in (layout.text_a, layout.text_b, layout.label)
               if i is not None) + 1
  rows = csv.reader((line for _, line in file_checks.text_lines(path)),
                    delimiter="\t", quotechar=None)
  header_pending = layout.has_header
  for row in rows:
    if not row:
      continue
    if header_pending:
      header_pending = False
      num_columns = num_columns or len(row)
      if len(row) < needed:
        raise ValueError(
            "%s line %d: header has %d columns, this task's layout needs at "
            "least %d" % (path, rows.line_num, len(row), needed))
      continue
    if len(row) != num_columns:
      raise ValueError("%s line %d: expected %d tab-separated columns, found "
                       "%d" % (path, rows.line_num, num_columns, len(row)))
    yield rows.line_num, row


class ColaProcessor(DataProcessor):
  """CoLA: train/dev have no header (source, label, original label, sentence)."""
  submission_name = "CoLA"
  labels = ("0", "1")
  labeled_layout = TsvLayout(False, 4, text_a=3, text_b=None, label=1)
  test_layout = TsvLayout(True, None, text_a=1, text_b=None, label=None)


class Sst2Processor(DataProcessor):
  """SST-2: header "sentence label"; test "index sentence"."""
  submission_name = "SST-2"
  labels = ("0", "1")
  labeled_layout = TsvLayout(True, None, text_a=0, text_b=None, label=1)
  test_layout = TsvLayout(True, None, text_a=1, text_b=None, label=None)


class MrpcProcessor(DataProcessor):
  """MRPC: "Quality #1 ID #2 ID #1 String #2 String"; test has index first."""
  submission_name = "MRPC"
  labels = ("0", "1")
  labeled_layout = TsvLayout(True, None, text_a=3, text_b=4, label=0)
  test_layout = TsvLayout(True, None, text_a=3, text_b=4, label=None)


class StsbProcessor(DataProcessor):
  """STS-B: ten columns ending sentence1, sentence2, score; a regression."""
  submission_name = "STS-B"
  labels = ()
  labeled_layout = TsvLayout(True, None, text_a=7, text_b=8, label=9)
  test_layout = TsvLayout(True, None, text_a=7, text_b=8, label=None)


class QqpProcessor(DataProcessor):
  """QQP: "id qid1 qid2 question1 question2 is_duplicate"; test "id q1 q2"."""
  submission_name = "QQP"
  labels = ("0", "1")
  labeled_layout = TsvLayout(True, None, text_a=3, text_b=4, label=5)
  test_layout = TsvLayout(True, None, text_a=1, text_b=2, label=None)


class MnliProcessor(DataProcessor):
  """MNLI: sentence1/2 in columns 8/9, gold label last (12 or 16 columns)."""
  submission_name = "MNLI"
  labels = ("contradiction", "entailment", "neutral")
  labeled_layout = TsvLayout(True, None, text_a=8, text_b=9, label=-1)
  test_layout = TsvLayout(True, None, text_a=8, text_b=9, label=None)

  @property
  def dev_splits(self):
    return (("dev_matched", "MNLI-m"), ("dev_mismatched", "MNLI-mm"))

  @property
  def test_splits(self):
    return (("test_matched", "MNLI-m"), ("test_mismatched", "MNLI-mm"))


class QnliProcessor(DataProcessor):
  """QNLI: "index question sentence label"."""
  submission_name = "QNLI"
  labels = ("entailment", "not_entailment")
  labeled_layout = TsvLayout(True, None, text_a=1, text_b=2, label=3)
  test_layout = TsvLayout(True, None, text_a=1, text_b=2, label=None)


class RteProcessor(DataProcessor):
  """RTE: "index sentence1 sentence2 label"."""
  submission_name = "RTE"
  labels = ("entailment", "not_entailment")
  labeled_layout = TsvLayout(True, None, text_a=1, text_b=2, label=3)
  test_layout = TsvLayout(True, None, text_a=1, text_b=2, label=None)


class WnliProcessor(DataProcessor):
  """WNLI: "index sentence1 sentence2 label" with labels 0/1."""
  submission_name = "WNLI"
  labels = ("0", "1")
  labeled_layout = TsvLayout(True, None, text_a=1, text_b=2, label=3)
  test_layout = TsvLayout(True, None, text_a=1, text_b=2, label=None)


PROCESSORS = collections.OrderedDict([
    ("cola", ColaProcessor),
    ("sst-2", Sst2Processor),
    ("mrpc", MrpcProcessor),
    ("sts-b", StsbProcessor),
    ("qqp", QqpProcessor),
    ("mnli", MnliProcessor),
    ("qnli", QnliProcessor),
    ("rte", RteProcessor),
    ("wnli", WnliProcessor),
])


def get_processor(task_name):
  """The processor of `task_name` (case-insensitive), or a ValueError listing the known tasks."""
  key = (task_name or "").lower()
  if key not in PROCESSORS:
    raise ValueError("unknown --task_name '%s'; known tasks: %s" %
                     (task_name, ", ".join(PROCESSORS)))
  return PROCESSORS[key]()


def convert_single_example(example, label_list, max_seq_length, tokenizer):
  """Featurises one example as [CLS] a [SEP] (b [SEP]), zero-padded.

  Args:
    example: InputExample, or PaddingInputExample for an all-zero filler.
    label_list: label strings in id order; empty for regression.
    max_seq_length: length of every id list.
    tokenizer: has .tokenize(text) and .convert_tokens_to_ids(tokens).

  Returns:
    InputFeatures with label_id an int (classification) or float (regression);
    test examples (label None) get label 0.
  """
  is_regression = not label_list
  if isinstance(example, PaddingInputExample):
    return InputFeatures(
        input_ids=[0] * max_seq_length, input_mask=[0] * max_seq_length,
        segment_ids=[0] * max_seq_length,
        label_id=0.0 if is_regression else 0, is_real_example=False)

  tokens_a = tokenizer.tokenize(example.text_a)
  tokens_b = tokenizer.tokenize(example.text_b) if example.text_b else None
  if tokens_b is not None:
    tokenization.truncate_longer_first(tokens_a, tokens_b,
                                       max_seq_length - 3)
  else:
    tokens_a = tokens_a[:max_seq_length - 2]

  tokens = [tokenization.CLS_TOKEN] + tokens_a + [tokenization.SEP_TOKEN]
  segment_ids = [0] * len(tokens)
  if tokens_b is not None:
    tokens += tokens_b + [tokenization.SEP_TOKEN]
    segment_ids += [1] * (len(tokens_b) + 1)
  input_ids = tokenizer.convert_tokens_to_ids(tokens)
  input_mask = [1] * len(input_ids)
  padding = [0] * (max_seq_length - len(input_ids))

  if is_regression:
    label_id = float(example.label) if example.label is not None else 0.0
  else:
    label_id = (label_list.index(example.label)
                if example.label is not None else 0)
  return InputFeatures(input_ids=input_ids + padding,
                       input_mask=input_mask + padding,
                       segment_ids=segment_ids + padding,
                       label_id=label_id)


def convert_examples_to_features(examples, label_list, max_seq_length,
                                 tokenizer):
  """convert_single_example over a list, logging the first few and the
  progress."""
  features = []
  progress = console.Progress("Featurising", len(examples))
  for index, example in enumerate(examples):
    feature = convert_single_example(example, label_list, max_seq_length,
                                     tokenizer)
    progress.update(index + 1)
    if index < 3 and not isinstance(example, PaddingInputExample):
      tf.logging.info("*** Example %s ***", example.guid)
      tf.logging.info("input_ids: %s", " ".join(map(str, feature.input_ids)))
      tf.logging.info("segment_ids: %s",
                      " ".join(map(str, feature.segment_ids)))
      tf.logging.info("label: %s (id = %s)", example.label, feature.label_id)
    features.append(feature)
  return features


def pad_examples(examples, batch_size):
  """`examples` followed by PaddingInputExamples up to a multiple of batch_size."""
  remainder = len(examples) % batch_size
  if remainder == 0:
    return list(examples)
  return list(examples) + [PaddingInputExample()] * (batch_size - remainder)


def examples_sha256(examples):
  """sha256 over the examples' ids, texts and labels, in order."""
  digest = hashlib.sha256()
  for example in examples:
    if isinstance(example, PaddingInputExample):
      fields = ["<padding>"]
    else:
      fields = [example.guid, example.text_a, example.text_b, example.label]
    digest.update(json.dumps(fields).encode("utf-8"))
    digest.update(b"\n")
  return digest.hexdigest()


def feature_fields(feature):
  """One InputFeatures as record fields (the keys input_fn_builder reads)."""
  fields = collections.OrderedDict()
  fields["input_ids"] = feature.input_ids
  fields["input_mask"] = feature.input_mask
  fields["segment_ids"] = feature.segment_ids
  fields["label_ids"] = [feature.label_id]
  fields["is_real_example"] = [int(feature.is_real_example)]
  return fields


def cached_tfrecord(examples, label_list, max_seq_length, tokenizer,
                    tokenizer_settings, output_file):
  """Featurises `examples` into `output_file` unless an up-to-date copy exists.

  The file is reused (feature_records.cached_records) while the examples,
  labels, sequence length and `tokenizer_settings`
  (feature_records.tokenizer_settings of the vocabulary) are unchanged.

  Returns:
    True if the file was (re)written, False if the cache was reused.
  """
  settings = collections.OrderedDict([
      ("format_version", _RECORD_FORMAT_VERSION),
      ("examples_sha256", examples_sha256(examples)),
      ("labels", list(label_list)),
      ("max_seq_length", max_seq_length),
      ("tokenizer", tokenizer_settings),
  ])
  is_regression = not label_list

  def build(path):
    features = convert_examples_to_features(examples, label_list,
                                            max_seq_length, tokenizer)
    float_names = ("label_ids",) if is_regression else ()
    with feature_records.RecordWriter(path, float_names) as writer:
      for feature in features:
        writer.write(feature_fields(feature))
    return {"features": writer.num_records}

  _, rebuilt = feature_records.cached_records(output_file, settings, build)
  return rebuilt


def input_fn_builder(input_file, seq_length, is_training, drop_remainder,
                     is_regression):
  """An Estimator input_fn over a TFRecord written by cached_tfrecord.

  Features: input_ids, input_mask, segment_ids [batch, seq_length] int32,
  label_ids [batch] (int32, float32 for regression), is_real_example [batch]
  int32.  Training repeats and shuffles.
  """
  name_to_features = {
      "input_ids": tf.FixedLenFeature([seq_length], tf.int64),
      "input_mask": tf.FixedLenFeature([seq_length], tf.int64),
      "segment_ids": tf.FixedLenFeature([seq_length], tf.int64),
      "label_ids": tf.FixedLenFeature(
          [], tf.float32 if is_regression else tf.int64),
      "is_real_example": tf.FixedLenFeature([], tf.int64),
  }
  return feature_records.input_fn_builder(input_file, name_to_features,
                                          is_training, drop_remainder)


def format_prediction(prediction, label_list):
  """A prediction as written in GLUE submissions: label string or score."""
  if not label_list:
    return "%.6f" % float(prediction)
  return label_list[int(prediction)]


def write_submission_file(output_file, predictions, label_list):
  """Writes GLUE's "index<TAB>prediction" file for one test set.

  Args:
    output_file: e.g. output_dir/MNLI-m.tsv.
    predictions: per real test example, in file order: class ids, or scores
      for regression.
    label_list: label strings in id order; empty for regression.
  """
  with tf.gfile.GFile(output_file, "w") as writer:
    writer.write("index\tprediction\n")
    for index, prediction in enumerate(predictions):
      writer.write("%d\t%s\n" % (index, format_prediction(prediction,
                                                          label_list)))
