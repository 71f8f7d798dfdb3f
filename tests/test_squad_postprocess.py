"""SQuAD post-processing with hand-built logits."""

import json

import numpy as np
import pytest

import squad_data
import squad_postprocess
import tokenization

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat",
         "on", "mat", ".", "q", "w0", "w1", "w2", "w3", "w4", "w5"]
LOW = -10.0


@pytest.fixture(name="tokenizer")
def fixture_tokenizer(tmp_path):
  vocab_file = tmp_path / "vocab.txt"
  vocab_file.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
  return tokenization.create_tokenizer(vocab_file=str(vocab_file))


def _features(context, tokenizer, max_seq_length, doc_stride):
  example = squad_data.SquadExample(
      qas_id="q1", question_text="q",
      doc_tokens=squad_data.split_paragraph(context)[0])
  features = []
  squad_data.convert_examples_to_features(
      [example], tokenizer, max_seq_length, doc_stride, 8, False,
      features.append)
  return [example], features


def _logits(length, values):
  logits = np.full([length], LOW, dtype=np.float32)
  for index, value in values.items():
    logits[index] = value
  return logits


def _softmax(scores):
  exp = np.exp(np.asarray(scores) - np.max(scores))
  return exp / exp.sum()


def test_get_final_text():
  assert squad_postprocess.get_final_text(
      "steve smith", "Steve Smith's", True) == "Steve Smith"
  assert squad_postprocess.get_final_text("cafe", u"Caf\u00e9!", True) == (
      u"Caf\u00e9")
  assert squad_postprocess.get_final_text("Smith", "Smith's", False) == (
      "Smith")
  # Not found: the whole original span.
  assert squad_postprocess.get_final_text("jones", "Smith's", True) == (
      "Smith's")


def test_detokenize():
  assert squad_postprocess.detokenize(["play", "##ing", "chess", "."]) == (
      "playing chess .")
  assert squad_postprocess.detokenize(
      [u"\u2581play", u"ing", u"\u2581chess"], sentencepiece=True) == (
          "playing chess")


def test_v1_nbest_order_texts_and_probabilities(tokenizer):
  examples, features = _features(u"the cat sat on the mat.", tokenizer, 16, 8)
  # [CLS] q [SEP] the cat sat on the mat . [SEP] + 5 padding
  #   0   1   2    3   4   5   6  7   8  9   10
  assert len(features) == 1
  start = _logits(16, {1: 9.0, 12: 8.0, 8: 5.0, 4: 3.0, 3: 1.0})
  end = _logits(16, {2: 9.0, 9: 4.0, 8: 3.5, 5: 2.0})
  results = [squad_postprocess.RawResult(features[0].unique_id, start, end)]
  predictions, nbest, null_odds = squad_postprocess.compute_predictions(
      examples, features, results, n_best_size=5, max_answer_length=3,
      do_lower_case=True)
  # Best starts 1 (query), 12 (padding), 8, 4, 3; best ends 2 ([SEP]), 9, 8,
  # 5, then 0.  Valid pairs with length <= 3: (8,9) 9.0 "mat." (the word),
  # (8,8) 8.5 "mat" (trimmed by get_final_text), (4,5) 5.0 "cat sat",
  # (3,5) 3.0 "the cat sat".
  texts = [entry["text"] for entry in nbest["q1"]]
  assert texts == ["mat.", "mat", "cat sat", "the cat sat"]
  np.testing.assert_allclose(
      [entry["probability"] for entry in nbest["q1"]],
      _softmax([9.0, 8.5, 5.0, 3.0]), rtol=1e-6)
  assert nbest["q1"][1]["start_logit"] == 5.0
  assert nbest["q1"][1]["end_logit"] == 3.5
  assert predictions == {"q1": "mat."}
  assert not null_odds


def test_duplicate_texts_are_merged(tokenizer):
  examples, features = _features(u"the cat sat on the mat.", tokenizer, 16, 8)
  # "the" at tokens 3 and 7: both single-token spans give the text "the".
  start = _logits(16, {3: 2.0, 7: 1.0})
  end = _logits(16, {3: 2.0, 7: 1.0})
  results = [squad_postprocess.RawResult(features[0].unique_id, start, end)]
  _, nbest, _ = squad_postprocess.compute_predictions(
      examples, features, results, n_best_size=3, max_answer_length=5,
      do_lower_case=True)
  # Pairs: (3,3) 4.0 "the", (3,7) 3.0 "the cat sat on the", (7,7) 2.0 "the"
  # (a duplicate, dropped, so the 3-best list has two entries).
  assert [e["text"] for e in nbest["q1"]] == ["the", "the cat sat on the"]


def _two_window_v2(tokenizer, best_span_start, best_span_end):
  examples, features = _features(u"w0 w1 w2 w3 w4 w5", tokenizer, 8, 2)
  # Window A: [CLS] q [SEP] w0 w1 w2 w3 [SEP]; window B: ... w2 w3 w4 w5.
  # Token w4 is index 5 of window B.
  assert [f.tokens[3:7] for f in features] == [
      ["w0", "w1", "w2", "w3"], ["w2", "w3", "w4", "w5"]]
  results = [
      squad_postprocess.RawResult(
          features[0].unique_id, _logits(8, {0: 2.0}), _logits(8, {0: 1.0})),
      squad_postprocess.RawResult(
          features[1].unique_id, _logits(8, {0: 1.0, 5: best_span_start}),
          _logits(8, {0: 0.5, 5: best_span_end})),
  ]
  return examples, features, results


@pytest.mark.parametrize("threshold,expected", [
    (0.0, ""), (0.49, ""), (0.5, "w4"), (1.0, "w4")])
def test_v2_null_decision_around_threshold(tokenizer, threshold, expected):
  examples, features, results = _two_window_v2(tokenizer, 1.0, 0.0)
  predictions, nbest, null_odds = squad_postprocess.compute_predictions(
      examples, features, results, n_best_size=2, max_answer_length=5,
      do_lower_case=True, version_2_with_negative=True,
      null_score_diff_threshold=threshold)
  # Null scores: window A 2 + 1 = 3, window B 1 + 0.5 = 1.5 -> the minimum,
  # 1.5, is the example's null score.  Best span "w4": 1.0 + 0.0.
  # diff = 1.5 - 1.0 = 0.5; "" when diff > threshold.
  assert null_odds == {"q1": pytest.approx(0.5)}
  assert predictions == {"q1": expected}
  assert [e["text"] for e in nbest["q1"]] == ["", "w4"]
  np.testing.assert_allclose([e["probability"] for e in nbest["q1"]],
                             _softmax([1.5, 1.0]), rtol=1e-6)
  assert (nbest["q1"][0]["start_logit"], nbest["q1"][0]["end_logit"]) == (
      1.0, 0.5)


def test_v2_null_appended_when_outside_nbest(tokenizer):
  examples, features, results = _two_window_v2(tokenizer, 3.0, 0.6)
  predictions, nbest, null_odds = squad_postprocess.compute_predictions(
      examples, features, results, n_best_size=1, max_answer_length=5,
      do_lower_case=True, version_2_with_negative=True)
  # Span "w4" scores 3.6 and fills the 1-best list; "" (1.5) is appended.
  assert [e["text"] for e in nbest["q1"]] == ["w4", ""]
  assert null_odds["q1"] == pytest.approx(1.5 - 3.6)
  assert predictions == {"q1": "w4"}


def test_example_without_features_and_missing_results(tokenizer, tmp_path):
  empty = squad_data.SquadExample(qas_id="e", question_text="q",
                                  doc_tokens=[])
  predictions, nbest, _ = squad_postprocess.compute_predictions(
      [empty], [], [], 20, 30, True)
  assert predictions == {"e": "empty"}
  predictions, nbest, null_odds = squad_postprocess.compute_predictions(
      [empty], [], [], 20, 30, True, version_2_with_negative=True)
  assert predictions == {"e": ""} and null_odds["e"] > 1e5
  assert nbest["e"][0]["probability"] == 1.0

  examples, features = _features(u"the cat", tokenizer, 16, 8)
  with pytest.raises(ValueError, match="no model output"):
    squad_postprocess.compute_predictions(examples, features, [], 20, 30, True)

  paths = squad_postprocess.write_predictions(
      str(tmp_path), {"e": ""}, nbest, {"e": 1.0})
  with open(paths["predictions"]) as f:
    assert json.load(f) == {"e": ""}
  with open(paths["null_odds"]) as f:
    assert json.load(f) == {"e": 1.0}
  assert paths["nbest"].endswith("nbest_predictions.json")
