"""SQuAD reading, featurisation, TFRecords and the training-feature cache.

Expected positions, windows and max-context flags are worked out by hand in
the comments next to each assertion.
"""

import json

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import squad_data
import tokenization

VOCAB = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "the", "cat", "sat", "on", "mat", "what", "did", "do", "?", ".", ",",
    "play", "##ing", "##ed", "chess", "they", "were", "year", "(", ")", "-",
    "1895", "1943", "was", "new", "york", "is", "big", "cafe", "q",
    "w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7", "w8", "w9",
]


@pytest.fixture(name="tokenizer")
def fixture_tokenizer(tmp_path):
  vocab_file = tmp_path / "vocab.txt"
  vocab_file.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
  return tokenization.create_tokenizer(vocab_file=str(vocab_file),
                                       do_lower_case=True)


def _ids(tokens):
  return [VOCAB.index(token) for token in tokens]


def _write_squad(path, paragraphs, version="1.1"):
  data = {"version": version,
          "data": [{"title": "t", "paragraphs": paragraphs}]}
  path.write_text(json.dumps(data), encoding="utf-8")
  return str(path)


def _qa(qid, question, answer_text=None, answer_start=None,
        is_impossible=None):
  qa = {"id": qid, "question": question, "answers": []}
  if answer_text is not None:
    qa["answers"] = [{"text": answer_text, "answer_start": answer_start}]
  if is_impossible is not None:
    qa["is_impossible"] = is_impossible
  return qa


def _featurise(examples, tokenizer, max_seq_length, doc_stride,
               max_query_length, is_training):
  features = []
  stats = squad_data.convert_examples_to_features(
      examples, tokenizer, max_seq_length, doc_stride, max_query_length,
      is_training, features.append)
  return features, stats


def test_split_paragraph_whitespace_rules():
  # Narrow no-break space U+202F splits words; tabs and newlines too; the
  # no-break space U+00A0 does not (it stays inside the word).
  text = u" Hello\u202fworld \t\nNew\u00a0York"
  doc_tokens, offsets = squad_data.split_paragraph(text)
  assert doc_tokens == [u"Hello", u"world", u"New\u00a0York"]
  # Leading space -> -1; "Hello" (1..5) -> 0; U+202F (6) -> 0; "world"
  # (7..11) -> 1; the three whitespace chars -> 1; "New York" -> 2.
  assert offsets == [-1] + [0] * 5 + [0] + [1] * 5 + [1] * 3 + [2] * 8


def test_answer_positions_after_subword_split(tmp_path, tokenizer):
  context = u"they were playing chess."
  path = _write_squad(tmp_path / "train.json", [{
      "context": context,
      "qas": [_qa("q1", "what did they do?", "playing",
                  context.index("playing"))]}])
  examples, skipped = squad_data.read_squad_examples(path, True, False)
  assert not skipped
  # Words: they(0) were(1) playing(2) chess.(3)
  assert examples[0].start_position == 2 and examples[0].end_position == 2
  features, stats = _featurise(examples, tokenizer, 24, 8, 8, True)
  assert stats == {"examples": 1, "features": 1,
                   "examples_without_features": 0}
  feature = features[0]
  # [CLS] what did they do ? [SEP] they were play ##ing chess . [SEP]
  #   0    1    2   3    4  5   6    7    8    9    10   11  12  13
  assert feature.tokens == [
      "[CLS]", "what", "did", "they", "do", "?", "[SEP]", "they", "were",
      "play", "##ing", "chess", ".", "[SEP]"]
  assert (feature.start_position, feature.end_position) == (9, 10)
  assert feature.token_to_orig_map == {7: 0, 8: 1, 9: 2, 10: 2, 11: 3, 12: 3}
  assert feature.input_ids[:14] == _ids(feature.tokens)
  assert feature.input_ids[14:] == [0] * 10
  assert feature.input_mask == [1] * 14 + [0] * 10
  assert feature.segment_ids == [0] * 7 + [1] * 7 + [0] * 10
  assert feature.unique_id == 1000000000


def test_improve_answer_span_narrows_to_answer_tokens(tmp_path, tokenizer):
  context = u"the year (1895-1943) was big"
  path = _write_squad(tmp_path / "train.json", [{
      "context": context,
      "qas": [_qa("q1", "what year?", "1895", context.index("1895"))]}])
  examples, _ = squad_data.read_squad_examples(path, True, False)
  # The word containing the answer is "(1895-1943)" (index 2).
  assert examples[0].start_position == 2 and examples[0].end_position == 2
  features, _ = _featurise(examples, tokenizer, 32, 8, 8, True)
  feature = features[0]
  # [CLS] what year ? [SEP] the year ( 1895 - 1943 ) was big [SEP]
  #   0    1    2   3   4    5   6   7   8   9  10  11 12  13
  assert feature.tokens[7:12] == ["(", "1895", "-", "1943", ")"]
  assert (feature.start_position, feature.end_position) == (8, 8)


def test_doc_stride_windows_and_max_context(tmp_path, tokenizer):
  context = u" ".join("w%d" % i for i in range(10))
  path = _write_squad(tmp_path / "train.json", [{
      "context": context, "qas": [_qa("q1", "q", "w5", context.index("w5"))]
  }])
  examples, _ = squad_data.read_squad_examples(path, True, False)
  # max_seq_length 8 with a 1-token query leaves 8 - 1 - 3 = 4 document
  # tokens per window; stride 2 gives windows starting at 0, 2, 4, 6.
  features, _ = _featurise(examples, tokenizer, 8, 2, 8, True)
  assert [f.doc_span_index for f in features] == [0, 1, 2, 3]
  assert [f.tokens[3:7] for f in features] == [
      ["w%d" % i for i in range(start, start + 4)] for start in (0, 2, 4, 6)]
  # Score of token t in window [s, s+3]: min(t - s, s + 3 - t) + 0.04.
  # Token 0,1: only / best in window 0.  Token 2: w0 gives min(2,1)=1,
  # w1 gives min(0,3)=0 -> w0.  Token 3: w0 0, w1 min(1,2)=1 -> w1.
  # Token 4: w1 min(2,1)=1, w2 0 -> w1.  Token 5: w1 0, w2 1 -> w2.
  # Token 6: w2 min(2,1)=1, w3 0 -> w2.  Token 7: w2 0, w3 1 -> w3.
  # Tokens 8, 9: w3.
  best_window = [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]
  for window, feature in enumerate(features):
    start = 2 * window
    expected = {3 + i: best_window[start + i] == window for i in range(4)}
    assert feature.token_is_max_context == expected
    assert feature.token_to_orig_map == {3 + i: start + i for i in range(4)}
  # Answer w5 (token 5) is inside windows 1 and 2 only: position
  # 5 - start + 3; elsewhere the label is [CLS] (0, 0).
  assert [(f.start_position, f.end_position) for f in features] == [
      (0, 0), (6, 6), (4, 4), (0, 0)]


def test_stride_larger_than_window_does_not_skip_tokens():
  # Windows of 4 with a stride of 10 advance by the window length.
  assert squad_data.doc_spans_for(10, 4, 10) == [(0, 4), (4, 4), (8, 2)]
  assert squad_data.doc_spans_for(4, 4, 2) == [(0, 4)]
  assert squad_data.doc_spans_for(0, 4, 2) == []


def test_long_question_is_truncated(tmp_path, tokenizer):
  path = _write_squad(tmp_path / "dev.json", [{
      "context": u"the cat sat.",
      "qas": [_qa("q1", "what did the cat do on the mat?")]}])
  examples, _ = squad_data.read_squad_examples(path, False, False)
  features, _ = _featurise(examples, tokenizer, 12, 8, 4, False)
  feature = features[0]
  # Query cut to 4 sub-tokens: [CLS] what did the cat [SEP] the cat sat . [SEP]
  assert feature.tokens == ["[CLS]", "what", "did", "the", "cat", "[SEP]",
                            "the", "cat", "sat", ".", "[SEP]"]
  assert feature.segment_ids == [0] * 6 + [1] * 5 + [0]
  assert feature.input_mask == [1] * 11 + [0]
  assert feature.token_to_orig_map == {6: 0, 7: 1, 8: 2, 9: 2}
  assert feature.start_position is None


def test_unicode_oddities(tmp_path, tokenizer):
  # "Café" loses its accent, U+00A0 splits "New York" inside one word, and a
  # zero-width joiner (format character) is dropped by the tokenizer.
  context = u"Caf\u00e9 is new\u00a0york,\u200d big"
  path = _write_squad(tmp_path / "train.json", [{
      "context": context,
      "qas": [_qa("q1", "what is big?", u"big", context.index("big"))]}])
  examples, _ = squad_data.read_squad_examples(path, True, False)
  assert examples[0].doc_tokens == [
      u"Caf\u00e9", u"is", u"new\u00a0york,\u200d", u"big"]
  assert examples[0].start_position == 3
  features, _ = _featurise(examples, tokenizer, 20, 8, 8, True)
  feature = features[0]
  # [CLS] what is big ? [SEP] cafe is new york , big [SEP]
  #   0    1   2   3  4   5    6   7   8   9  10  11  12
  assert feature.tokens[6:12] == ["cafe", "is", "new", "york", ",", "big"]
  assert feature.token_to_orig_map[8] == 2
  assert feature.token_to_orig_map[10] == 2
  assert (feature.start_position, feature.end_position) == (11, 11)


def test_v2_impossible_questions(tmp_path, tokenizer):
  context = u" ".join("w%d" % i for i in range(10))
  path = _write_squad(tmp_path / "train.json", [{
      "context": context,
      "qas": [_qa("q1", "q", is_impossible=True),
              _qa("q2", "q", "w9", context.index("w9"), is_impossible=False)]
  }], version="v2.0")
  examples, _ = squad_data.read_squad_examples(path, True, True)
  assert examples[0].is_impossible
  assert (examples[0].start_position, examples[0].end_position) == (-1, -1)
  features, _ = _featurise(examples, tokenizer, 8, 4, 8, True)
  # Windows of 4 with stride 4: [0..3], [4..7], [8..9] for each question.
  impossible = [f for f in features if f.example_index == 0]
  assert len(impossible) == 3
  assert all((f.start_position, f.end_position, f.is_impossible) == (0, 0, True)
             for f in impossible)
  possible = [f for f in features if f.example_index == 1]
  # w9 is token 9: position 9 - 8 + 3 in the last window.
  assert [(f.start_position, f.end_position) for f in possible] == [
      (0, 0), (0, 0), (4, 4)]
  # The same file read as v1.1 training data has a question without answer.
  with pytest.raises(ValueError, match="exactly one answer"):
    squad_data.read_squad_examples(path, True, False)


def test_bad_input_errors_and_skips(tmp_path):
  bad_json = tmp_path / "broken.json"
  bad_json.write_text("{\"data\": [", encoding="utf-8")
  with pytest.raises(ValueError, match="broken.json is not valid JSON"):
    squad_data.read_squad_examples(str(bad_json), True, False)

  no_data = tmp_path / "nodata.json"
  no_data.write_text("[1, 2]", encoding="utf-8")
  with pytest.raises(ValueError, match="nodata.json must be a JSON object"):
    squad_data.read_squad_examples(str(no_data), False, False)

  no_context = _write_squad(tmp_path / "nocontext.json",
                            [{"qas": [_qa("q1", "q")]}])
  with pytest.raises(ValueError,
                     match=r"nocontext.json at data\[0\].paragraphs\[0\]"):
    squad_data.read_squad_examples(no_context, False, False)

  two_answers = tmp_path / "two.json"
  qa = _qa("q7", "q", "w1", 3)
  qa["answers"].append({"text": "w2", "answer_start": 6})
  _write_squad(two_answers, [{"context": u"w0 w1 w2", "qas": [qa]}])
  with pytest.raises(ValueError, match=r"qas\[0\].*'q7'.*found 2"):
    squad_data.read_squad_examples(str(two_answers), True, False)
  # Prediction does not need the answers.
  examples, _ = squad_data.read_squad_examples(str(two_answers), False, False)
  assert len(examples) == 1

  context = u"the cat sat on the mat."
  path = _write_squad(tmp_path / "offsets.json", [{
      "context": context,
      "qas": [_qa("good", "q", "mat", context.index("mat")),
              _qa("wrong_offset", "q", "mat", context.index("cat")),
              _qa("past_end", "q", "mat", len(context) + 5)]}])
  examples, skipped = squad_data.read_squad_examples(path, True, False)
  assert [e.qas_id for e in examples] == ["good"]
  assert skipped == {"answer text does not match the context": 1,
                     "answer outside the context": 1}


class _CountingTokenizer(object):
  """Counts how often each text is tokenized."""

  def __init__(self, tokenizer):
    self._tokenizer = tokenizer
    self.calls = []

  def tokenize(self, text):
    self.calls.append(text)
    return self._tokenizer.tokenize(text)

  def convert_tokens_to_ids(self, tokens):
    return self._tokenizer.convert_tokens_to_ids(tokens)


def test_each_paragraph_is_tokenized_once(tmp_path, tokenizer):
  context = u"the cat sat on the mat"
  path = _write_squad(tmp_path / "dev.json", [{
      "context": context,
      "qas": [_qa("q%d" % i, "what did the cat do?") for i in range(5)]}])
  examples, _ = squad_data.read_squad_examples(path, False, False)
  counting = _CountingTokenizer(tokenizer)
  _featurise(examples, counting, 32, 8, 8, False)
  # 5 distinct words ("the" twice) once each, plus one question per example.
  assert counting.calls.count(u"cat") == 1
  assert counting.calls.count(u"the") == 1
  assert counting.calls.count(u"what did the cat do?") == 5
  assert len(counting.calls) == 5 + 5


def _read_records(path, seq_length, is_training):
  input_fn = squad_data.input_fn_builder(path, seq_length, is_training,
                                         drop_remainder=False)
  with tf.Graph().as_default():
    dataset = input_fn({"batch_size": 100})
    batch = tf.data.make_one_shot_iterator(dataset).get_next()
    with tf.Session() as session:
      return session.run(batch)


def test_feature_writer_round_trip(tmp_path, tokenizer):
  context = u" ".join("w%d" % i for i in range(10))
  path = _write_squad(tmp_path / "train.json", [{
      "context": context, "qas": [_qa("q1", "q", "w5", context.index("w5"))]
  }])
  examples, _ = squad_data.read_squad_examples(path, True, False)
  features, _ = _featurise(examples, tokenizer, 9, 2, 8, True)
  record = str(tmp_path / "f.tf_record")
  assert squad_data.write_features(features, record, is_training=True) == 4
  batch = _read_records(record, 9, is_training=False)
  assert batch["input_ids"].dtype == np.int32
  np.testing.assert_array_equal(batch["unique_ids"],
                                [f.unique_id for f in features])
  np.testing.assert_array_equal(batch["input_ids"],
                                [f.input_ids for f in features])
  np.testing.assert_array_equal(batch["segment_ids"],
                                [f.segment_ids for f in features])
  # 9 - 1 - 3 = 5 per window, stride 2: windows at 0, 2, 4 (4 + 5 = 9 < 10)
  # and 6 (6 + 4 = 10); w5 is token 5 -> window 0 ends at 4 -> 0, window 1:
  # 5 - 2 + 3 = 6, window 2: 5 - 4 + 3 = 4, window 3 starts at 6 -> 0.
  with tf.Graph().as_default():
    parsed = [tf.train.Example.FromString(r)
              for r in tf.io.tf_record_iterator(record)]
  starts = [p.features.feature["start_positions"].int64_list.value[0]
            for p in parsed]
  assert starts == [0, 6, 4, 0]


def _cache_args(cache_dir, train_file, vocab_file, **overrides):
  args = dict(cache_dir=cache_dir, train_file=train_file,
              vocab_file=vocab_file, spm_model_file=None, do_lower_case=True,
              max_seq_length=8, doc_stride=2, max_query_length=8,
              version_2_with_negative=False)
  args.update(overrides)
  return args


def test_train_cache_reused_and_rebuilt_when_stale(tmp_path, tokenizer,
                                                   monkeypatch):
  context = u" ".join("w%d" % i for i in range(10))
  train_file = _write_squad(tmp_path / "train.json", [{
      "context": context,
      "qas": [_qa("q1", "q", "w5", context.index("w5")),
              _qa("q2", "q", "w1", context.index("w1"))]}])
  vocab_file = str(tmp_path / "vocab.txt")
  cache_dir = str(tmp_path / "cache")

  path, num_examples, num_features = squad_data.prepare_train_features(
      tokenizer=tokenizer, **_cache_args(cache_dir, train_file, vocab_file))
  # 10 tokens, windows of 4 with stride 2: 4 windows per question.
  assert (num_examples, num_features) == (2, 8)
  assert sum(1 for _ in tf.io.tf_record_iterator(path)) == 8

  def must_not_featurise(*unused_args, **unused_kwargs):
    raise AssertionError("a valid cache was rebuilt")

  with monkeypatch.context() as patch:
    patch.setattr(squad_data, "convert_examples_to_features",
                  must_not_featurise)
    assert squad_data.prepare_train_features(
        tokenizer=tokenizer,
        **_cache_args(cache_dir, train_file, vocab_file)) == (path, 2, 8)

  # A longer stride: windows at 0, 4, 8 -> 3 per question.
  assert squad_data.prepare_train_features(
      tokenizer=tokenizer, **_cache_args(cache_dir, train_file, vocab_file,
                                         doc_stride=4)) == (path, 2, 6)
  assert sum(1 for _ in tf.io.tf_record_iterator(path)) == 6

  # A changed vocabulary file (same tokens, different contents) is stale too.
  with open(vocab_file, "a") as extra:
    extra.write("extra\n")
  calls = []
  original = squad_data.convert_examples_to_features
  with monkeypatch.context() as patch:
    patch.setattr(squad_data, "convert_examples_to_features",
                  lambda *a, **k: calls.append(1) or original(*a, **k))
    squad_data.prepare_train_features(
        tokenizer=tokenizer,
        **_cache_args(cache_dir, train_file, vocab_file, doc_stride=4))
  assert calls == [1]

  # So is an edited train file (one question fewer).
  _write_squad(tmp_path / "train.json", [{
      "context": context, "qas": [_qa("q1", "q", "w5", context.index("w5"))]
  }])
  assert squad_data.prepare_train_features(
      tokenizer=tokenizer, **_cache_args(cache_dir, train_file, vocab_file,
                                         doc_stride=4)) == (path, 1, 3)
  with open(path + ".settings.json") as f:
    assert json.load(f)["settings"]["doc_stride"] == 4
