"""GLUE processors, featurisation and the TFRecord cache on hand-written data."""

import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import feature_records
import glue_data


def _write(directory, name, lines):
  path = os.path.join(str(directory), name)
  with open(path, "w") as f:
    f.write("".join(line + "\n" for line in lines))
  return path


def _triples(examples):
  return [(e.guid, e.text_a, e.text_b, e.label) for e in examples]


def test_cola_layout_without_header(tmp_path):
  _write(tmp_path, "train.tsv", [
      "gj04\t1\t\tOur friends won't buy this analysis.",
      "gj04\t0\t*\tThey drank the pub.",
  ])
  _write(tmp_path, "test.tsv", ["index\tsentence", "0\tBill whistled past the house."])
  processor = glue_data.get_processor("CoLA")
  assert _triples(processor.get_train_examples(str(tmp_path))) == [
      ("train-0", "Our friends won't buy this analysis.", None, "1"),
      ("train-1", "They drank the pub.", None, "0"),
  ]
  assert _triples(processor.get_examples(str(tmp_path), "test")) == [
      ("test-0", "Bill whistled past the house.", None, None)]
  assert processor.dev_splits == (("dev", "CoLA"),)


def test_sst2_layout(tmp_path):
  _write(tmp_path, "dev.tsv", ["sentence\tlabel", 'it \'s a "charming" journey . \t1',
                               "unflinchingly bleak \t0"])
  _write(tmp_path, "test.tsv", ["index\tsentence", "0\tuneasy mishmash ."])
  processor = glue_data.get_processor("sst-2")
  # Quote characters are text, not CSV quoting.
  assert _triples(processor.get_examples(str(tmp_path), "dev")) == [
      ("dev-0", 'it \'s a "charming" journey . ', None, "1"),
      ("dev-1", "unflinchingly bleak ", None, "0")]
  assert _triples(processor.get_examples(str(tmp_path), "test")) == [
      ("test-0", "uneasy mishmash .", None, None)]


def test_mrpc_layout(tmp_path):
  _write(tmp_path, "train.tsv", [
      "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String",
      "1\t702876\t702977\tAmrozi accused his brother .\tReferring to him , Amrozi .",
      "0\t2108705\t2108831\tYucaipa owned Dominick 's .\tYucaipa bought Dominick 's ."])
  _write(tmp_path, "test.tsv", [
      "index\t#1 ID\t#2 ID\t#1 String\t#2 String",
      "0\t1089874\t1089925\tPCCW 's chief .\tCurrent Chief ."])
  processor = glue_data.get_processor("mrpc")
  assert _triples(processor.get_train_examples(str(tmp_path))) == [
      ("train-0", "Amrozi accused his brother .", "Referring to him , Amrozi .", "1"),
      ("train-1", "Yucaipa owned Dominick 's .", "Yucaipa bought Dominick 's .", "0")]
  assert _triples(processor.get_examples(str(tmp_path), "test")) == [
      ("test-0", "PCCW 's chief .", "Current Chief .", None)]
  assert processor.get_labels() == ["0", "1"]


def test_stsb_layout_is_regression(tmp_path):
  header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2"
  _write(tmp_path, "dev.tsv", [
      header + "\tscore",
      "0\tmain-captions\tMSRvid\t2012test\t0000\tnone\tnone\tA man with a hat.\tA man wearing a hat.\t5.000",
      "1\tmain-captions\tMSRvid\t2012test\t0002\tnone\tnone\tA cat plays.\tA dog runs.\t0.75"])
  _write(tmp_path, "test.tsv", [
      header,
      "0\tmain-captions\tMSRvid\t2012test\t0024\tnone\tnone\tA girl sings.\tA girl talks."])
  processor = glue_data.get_processor("STS-B")
  assert processor.is_regression
  assert processor.get_labels() == []
  assert _triples(processor.get_examples(str(tmp_path), "dev")) == [
      ("dev-0", "A man with a hat.", "A man wearing a hat.", 5.0),
      ("dev-1", "A cat plays.", "A dog runs.", 0.75)]
  assert _triples(processor.get_examples(str(tmp_path), "test")) == [
      ("test-0", "A girl sings.", "A girl talks.", None)]


def test_qqp_layout(tmp_path):
  _write(tmp_path, "train.tsv", [
      "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate",
      "133273\t213221\t213222\tHow is the life of a math student?\tWhich level of math?\t0"])
  _write(tmp_path, "test.tsv", [
      "id\tquestion1\tquestion2", "0\tWhy do rockets look white?\tWhy are rockets white?"])
  processor = glue_data.get_processor("qqp")
  assert _triples(processor.get_train_examples(str(tmp_path))) == [
      ("train-0", "How is the life of a math student?", "Which level of math?", "0")]
  assert _triples(processor.get_examples(str(tmp_path), "test")) == [
      ("test-0", "Why do rockets look white?", "Why are rockets white?", None)]


def _mnli_row(index, s1, s2, labels):
  return "\t".join([str(index), "31193", "31193n", "government", "( ( x ) )", "( y )",
                    "(ROOT x)", "(ROOT y)", s1, s2] + labels)


def test_mnli_layouts_matched_and_mismatched(tmp_path):
  base = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse"
          "\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2")
  _write(tmp_path, "train.tsv", [base + "\tlabel1\tgold_label",
                                 _mnli_row(0, "Conceptually cream.", "Cream is key.",
                                           ["neutral", "neutral"])])
  dev_header = base + "\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label"
  _write(tmp_path, "dev_matched.tsv", [
      dev_header,
      _mnli_row(0, "The new rights are nice.", "Everyone likes them.",
                ["neutral", "entailment", "neutral", "neutral", "neutral", "neutral"])])
  _write(tmp_path, "dev_mismatched.tsv", [
      dev_header,
      _mnli_row(0, "Your contribution helped.", "It did not help.",
                ["contradiction"] * 5 + ["contradiction"])])
  _write(tmp_path, "test_mismatched.tsv", [base, _mnli_row(0, "What a day.", "A day.", [])])
  processor = glue_data.get_processor("mnli")
  assert processor.get_labels() == ["contradiction", "entailment", "neutral"]
  assert _triples(processor.get_train_examples(str(tmp_path))) == [
      ("train-0", "Conceptually cream.", "Cream is key.", "neutral")]
  assert [split for split, _ in processor.dev_splits] == ["dev_matched", "dev_mismatched"]
  assert [name for _, name in processor.test_splits] == ["MNLI-m", "MNLI-mm"]
  assert _triples(processor.get_examples(str(tmp_path), "dev_matched")) == [
      ("dev_matched-0", "The new rights are nice.", "Everyone likes them.", "neutral")]
  assert _triples(processor.get_examples(str(tmp_path), "dev_mismatched")) == [
      ("dev_mismatched-0", "Your contribution helped.", "It did not help.", "contradiction")]
  assert _triples(processor.get_examples(str(tmp_path), "test_mismatched")) == [
      ("test_mismatched-0", "What a day.", "A day.", None)]


@pytest.mark.parametrize("task,labels", [
    ("qnli", ("entailment", "not_entailment")),
    ("rte", ("entailment", "not_entailment")),
    ("wnli", ("1", "0")),
])
def test_index_pair_label_layouts(tmp_path, task, labels):
  _write(tmp_path, "train.tsv", ["index\tquestion\tsentence\tlabel",
                                 "0\tWhat came first?\tThe egg came.\t" + labels[0],
                                 "1\tWho won?\tNobody played.\t" + labels[1]])
  _write(tmp_path, "test.tsv", ["index\tquestion\tsentence", "0\tWhy?\tBecause."])
  processor = glue_data.get_processor(task)
  # Guids are unique per row (the original gave every QNLI example "<set>-1").
  assert _triples(processor.get_train_examples(str(tmp_path))) == [
      ("train-0", "What came first?", "The egg came.", labels[0]),
      ("train-1", "Who won?", "Nobody played.", labels[1])]
  assert _triples(processor.get_examples(str(tmp_path), "test")) == [
      ("test-0", "Why?", "Because.", None)]


def test_malformed_row_names_file_and_line(tmp_path):
  path = _write(tmp_path, "train.tsv", ["index\tquestion\tsentence\tlabel",
                                        "0\tq\ts\tentailment",
                                        "",
                                        "1\tq\ts without label"])
  with pytest.raises(ValueError) as error:
    glue_data.get_processor("qnli").get_train_examples(str(tmp_path))
  assert path in str(error.value)
  assert "line 4" in str(error.value)
  assert "expected 4" in str(error.value) and "found 3" in str(error.value)
  # Header-less CoLA: the layout fixes four columns.
  path = _write(tmp_path, "dev.tsv", ["gj04\t1\t\tFine.", "gj04\t1\tNo source."])
  with pytest.raises(ValueError, match="dev.tsv line 2: expected 4 tab-separated "
                     "columns, found 3"):
    glue_data.get_processor("cola").get_examples(str(tmp_path), "dev")


def test_bad_labels_and_missing_files_are_reported(tmp_path):
  _write(tmp_path, "train.tsv", ["sentence\tlabel", "fine\t1", "odd\t2"])
  with pytest.raises(ValueError, match="line 3: label '2'"):
    glue_data.get_processor("sst-2").get_train_examples(str(tmp_path))
  header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore"
  _write(tmp_path, "dev.tsv", [header, "0\tg\tf\ty\to\tn\tn\ta\tb\thigh"])
  with pytest.raises(ValueError, match="line 2: score 'high'"):
    glue_data.get_processor("sts-b").get_examples(str(tmp_path), "dev")
  with pytest.raises(ValueError, match="test.tsv does not exist"):
    glue_data.get_processor("rte").get_examples(str(tmp_path), "test")


def test_unknown_task_lists_known_tasks():
  with pytest.raises(ValueError) as error:
    glue_data.get_processor("xnli")
  message = str(error.value)
  for name in ["cola", "sst-2", "mrpc", "sts-b", "qqp", "mnli", "qnli", "rte", "wnli"]:
    assert name in message


class _WhitespaceTokenizer(object):
  """A test tokenizer: lower-cased words, ids from a fixed dict."""

  def __init__(self, words):
    self.vocab = {w: i for i, w in enumerate(["[PAD]", "[CLS]", "[SEP]"] + words)}

  def tokenize(self, text):
    return text.lower().split()

  def convert_tokens_to_ids(self, tokens):
    return [self.vocab[t] for t in tokens]


WORDS = ["a", "b", "c", "d", "e", "f", "g", "h"]
PAD, CLS, SEP = 0, 1, 2
A, B, C, D, E, F, G, H = range(3, 11)


def test_pair_features_truncate_longest_first():
  tokenizer = _WhitespaceTokenizer(WORDS)
  example = glue_data.InputExample("x-0", "a b c d e f", "g h", "1")
  # max 8 leaves 5 tokens for the pair: a..f (6) + g h (2) -> drop f, e, then d
  # (a is the longer each time) leaving "a b c" + "g h".
  features = glue_data.convert_single_example(example, ["0", "1"], 8, tokenizer)
  assert features.input_ids == [CLS, A, B, C, SEP, G, H, SEP]
  assert features.segment_ids == [0, 0, 0, 0, 0, 1, 1, 1]
  assert features.input_mask == [1] * 8
  assert features.label_id == 1
  assert features.is_real_example
  # Equal lengths trim the second text.
  tied = glue_data.InputExample("x-1", "a b c", "d e f", "0")
  features = glue_data.convert_single_example(tied, ["0", "1"], 7, tokenizer)
  assert features.input_ids == [CLS, A, B, SEP, D, E, SEP]


def test_single_sentence_features_are_padded():
  tokenizer = _WhitespaceTokenizer(WORDS)
  example = glue_data.InputExample("x-0", "B a", None, "contradiction")
  features = glue_data.convert_single_example(
      example, ["entailment", "contradiction"], 6, tokenizer)
  assert features.input_ids == [CLS, B, A, SEP, PAD, PAD]
  assert features.input_mask == [1, 1, 1, 1, 0, 0]
  assert features.segment_ids == [0] * 6
  assert features.label_id == 1
  long_example = glue_data.InputExample("x-1", "a b c d e f", None, None)
  features = glue_data.convert_single_example(long_example, ["0", "1"], 4, tokenizer)
  assert features.input_ids == [CLS, A, B, SEP]
  assert features.label_id == 0   # test examples carry a dummy label


def test_regression_and_padding_features():
  tokenizer = _WhitespaceTokenizer(WORDS)
  features = glue_data.convert_single_example(
      glue_data.InputExample("x-0", "a", "b", 3.25), [], 6, tokenizer)
  assert features.label_id == 3.25
  padding = glue_data.convert_single_example(glue_data.PaddingInputExample(), [], 4,
                                             tokenizer)
  assert padding.input_ids == [0, 0, 0, 0] and padding.input_mask == [0, 0, 0, 0]
  assert not padding.is_real_example
  padded = glue_data.pad_examples([1, 2, 3, 4, 5], 4)
  assert padded[:5] == [1, 2, 3, 4, 5] and len(padded) == 8
  assert all(isinstance(e, glue_data.PaddingInputExample) for e in padded[5:])
  assert glue_data.pad_examples([1, 2, 3, 4], 4) == [1, 2, 3, 4]


def _read_records(path, seq_length, is_regression, batch_size):
  input_fn = glue_data.input_fn_builder(path, seq_length, is_training=False,
                                        drop_remainder=False,
                                        is_regression=is_regression)
  with tf.Graph().as_default():
    batch = tf.data.make_one_shot_iterator(
        input_fn({"batch_size": batch_size})).get_next()
    with tf.Session() as sess:
      return sess.run(batch)


def test_tfrecord_round_trip_and_cache_invalidation(tmp_path):
  tokenizer = _WhitespaceTokenizer(WORDS)
  vocab_path = _write(tmp_path, "vocab.txt", ["[PAD]", "[CLS]", "[SEP]"] + WORDS)
  settings = feature_records.tokenizer_settings(vocab_file=vocab_path, do_lower_case=True)
  examples = [glue_data.InputExample("dev-0", "a b", "c", "1"),
              glue_data.InputExample("dev-1", "d", None, "0")]
  examples = glue_data.pad_examples(examples, 3)
  record = os.path.join(str(tmp_path), "cache", "eval.tf_record")
  assert glue_data.cached_tfrecord(examples, ["0", "1"], 6, tokenizer, settings, record)

  batch = _read_records(record, 6, False, 3)
  np.testing.assert_array_equal(batch["input_ids"], [[CLS, A, B, SEP, C, SEP],
                                                     [CLS, D, SEP, PAD, PAD, PAD],
                                                     [0, 0, 0, 0, 0, 0]])
  np.testing.assert_array_equal(batch["segment_ids"][0], [0, 0, 0, 0, 1, 1])
  np.testing.assert_array_equal(batch["input_mask"][1], [1, 1, 1, 0, 0, 0])
  np.testing.assert_array_equal(batch["label_ids"], [1, 0, 0])
  np.testing.assert_array_equal(batch["is_real_example"], [1, 1, 0])
  assert batch["input_ids"].dtype == np.int32

  # Same settings: reused.  Any change of data, length, labels or vocab: rebuilt.
  assert not glue_data.cached_tfrecord(examples, ["0", "1"], 6, tokenizer, settings, record)
  assert glue_data.cached_tfrecord(examples, ["0", "1"], 8, tokenizer, settings, record)
  assert _read_records(record, 8, False, 3)["input_ids"].shape == (3, 8)
  changed = [glue_data.InputExample("dev-0", "a b", "c", "0")] + examples[1:]
  assert glue_data.cached_tfrecord(changed, ["0", "1"], 8, tokenizer, settings, record)
  np.testing.assert_array_equal(_read_records(record, 8, False, 3)["label_ids"], [0, 0, 0])
  assert not glue_data.cached_tfrecord(changed, ["0", "1"], 8, tokenizer, settings, record)
  _write(tmp_path, "vocab.txt", ["[PAD]", "[CLS]", "[SEP]"] + WORDS + ["i"])
  new_settings = feature_records.tokenizer_settings(vocab_file=vocab_path, do_lower_case=True)
  assert glue_data.cached_tfrecord(changed, ["0", "1"], 8, tokenizer, new_settings, record)
  uncased = feature_records.tokenizer_settings(vocab_file=vocab_path, do_lower_case=False)
  assert glue_data.cached_tfrecord(changed, ["0", "1"], 8, tokenizer, uncased, record)


def test_regression_records_hold_float_labels(tmp_path):
  tokenizer = _WhitespaceTokenizer(WORDS)
  record = os.path.join(str(tmp_path), "train.tf_record")
  examples = [glue_data.InputExample("train-0", "a", "b", 4.5),
              glue_data.InputExample("train-1", "c", "d", 0.2)]
  glue_data.cached_tfrecord(examples, [], 5, tokenizer, "settings", record)
  batch = _read_records(record, 5, True, 2)
  np.testing.assert_allclose(batch["label_ids"], [4.5, 0.2], rtol=1e-6)
  assert batch["label_ids"].dtype == np.float32


def test_submission_file_format(tmp_path):
  path = os.path.join(str(tmp_path), "MNLI-m.tsv")
  glue_data.write_submission_file(path, [2, 0, 1], ["contradiction", "entailment", "neutral"])
  with open(path) as f:
    assert f.read() == "index\tprediction\n0\tneutral\n1\tcontradiction\n2\tentailment\n"
  path = os.path.join(str(tmp_path), "STS-B.tsv")
  glue_data.write_submission_file(path, [3.5, 0.25], [])
  with open(path) as f:
    lines = f.read().splitlines()
  assert lines[0] == "index\tprediction"
  assert [float(line.split("\t")[1]) for line in lines[1:]] == [3.5, 0.25]
