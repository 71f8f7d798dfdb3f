"""Official SQuAD metrics on cases worked out by hand."""

import pytest

import squad_metrics


def _dataset(questions):
  """A SQuAD `data` list with one paragraph holding `questions`."""
  qas = []
  for qid, golds in questions:
    qa = {"id": qid, "question": "?",
          "answers": [{"text": t, "answer_start": 0} for t in golds]}
    if not golds:
      qa["is_impossible"] = True
    qas.append(qa)
  return [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]


def test_normalize_answer():
  assert squad_metrics.normalize_answer("The  Quick, Brown fox!") == (
      "quick brown fox")
  # Articles only as whole words; apostrophes and hyphens are punctuation.
  assert squad_metrics.normalize_answer("Anna and an apple") == "anna and apple"
  assert squad_metrics.normalize_answer("Levi's half-time") == "levis halftime"
  assert squad_metrics.normalize_answer(" A \t the\n") == ""


def test_exact_and_f1_single_answers():
  assert squad_metrics.exact_match_score("an Apple.", "apple") == 1.0
  assert squad_metrics.exact_match_score("apples", "apple") == 0.0
  # pred [big, red, ball] vs gold [red, ball, game]: 2 common,
  # P = R = 2/3 -> F1 = 2/3.
  assert squad_metrics.f1_score_v1("the big red ball", "red ball game") == (
      pytest.approx(2.0 / 3.0))
  # Repeated tokens count once per gold occurrence: P = 1/2, R = 1 -> 2/3.
  assert squad_metrics.f1_score_v1("ball ball", "ball") == pytest.approx(
      2.0 / 3.0)
  assert squad_metrics.f1_score_v1("cat", "dog") == 0.0
  # Empty answers: v1.1 has no overlap -> 0; v2.0 scores agreement of emptiness.
  assert squad_metrics.f1_score_v1("", "the") == 0.0
  assert squad_metrics.f1_score_v2("", "the") == 1.0
  assert squad_metrics.f1_score_v2("", "dog") == 0.0
  assert squad_metrics.f1_score_v2("dog", "") == 0.0


def test_evaluate_v1_max_over_golds_and_missing():
  dataset = _dataset([
      ("q1", ["Denver Broncos", "The Broncos"]),
      ("q2", ["Santa Clara, California", "Levi's Stadium"]),
      ("q3", ["1995"]),
  ])
  predictions = {"q1": "broncos", "q2": "Levi's Stadium in Santa Clara"}
  result = squad_metrics.evaluate_v1(dataset, predictions)
  # q1: "broncos" equals normalised "The Broncos" -> EM 1, F1 1.
  # q2: pred [levis stadium in santa clara]; vs [santa clara california]:
  #   P 2/5, R 2/3 -> F1 0.5; vs [levis stadium]: P 2/5, R 1 -> F1 4/7.
  # q3: missing -> 0.
  assert result["exact_match"] == pytest.approx(100.0 / 3.0)
  assert result["f1"] == pytest.approx(100.0 * (1.0 + 4.0 / 7.0) / 3.0)
  assert result["total"] == 3 and result["missing"] == 1


def _v2_case():
  dataset = _dataset([
      ("q1", ["red ball"]),
      ("q2", []),
      ("q3", []),
      ("q4", ["blue", "the blue"]),
  ])
  predictions = {"q1": "red", "q2": "", "q3": "blue", "q4": ""}
  na_probs = {"q1": -2.0, "q2": 3.0, "q3": 1.0, "q4": 0.5}
  return dataset, predictions, na_probs


def test_evaluate_v2_breakdown_and_best_thresholds():
  dataset, predictions, na_probs = _v2_case()
  result = squad_metrics.evaluate_v2(dataset, predictions, na_probs=na_probs,
                                     na_prob_thresh=1.0)
  # Per question (EM, F1): q1 (0, 2/3); q2 (1, 1); q3 (0, 0); q4 (0, 0).
  # Threshold 1.0 only affects q2 (3 > 1), which already predicts "".
  assert result["exact_match"] == pytest.approx(25.0)
  assert result["f1"] == pytest.approx(100.0 * (2.0 / 3.0 + 1.0) / 4.0)
  assert result["total"] == 4
  assert result["HasAns_exact"] == pytest.approx(0.0)
  assert result["HasAns_f1"] == pytest.approx(100.0 / 3.0)
  assert result["HasAns_total"] == 2
  assert result["NoAns_exact"] == pytest.approx(50.0)
  assert result["NoAns_f1"] == pytest.approx(50.0)
  assert result["NoAns_total"] == 2
  # Sweep: all "" scores 2 (the two NoAns); admit in na order q1 (-2),
  # q4 (0.5), q3 (1), q2 (3).  EM: 2, 2, 1, 1 -> best 2 at the initial
  # threshold 0.0.  F1: 2 + 2/3 after q1 (threshold -2), then 2 + 2/3, 1 + 2/3.
  assert result["best_exact"] == pytest.approx(50.0)
  assert result["best_exact_thresh"] == 0.0
  assert result["best_f1"] == pytest.approx(100.0 * (2.0 + 2.0 / 3.0) / 4.0)
  assert result["best_f1_thresh"] == -2.0


def test_evaluate_v2_threshold_turns_answers_into_no_answer():
  dataset, predictions, na_probs = _v2_case()
  result = squad_metrics.evaluate_v2(dataset, predictions, na_probs=na_probs,
                                     na_prob_thresh=0.0)
  # Now q4 (0.5) and q3 (1.0) count as "": q3 becomes right (1, 1), q4 stays
  # wrong, q2 stays right, q1 (-2) keeps its span.
  assert result["exact_match"] == pytest.approx(50.0)
  assert result["f1"] == pytest.approx(100.0 * (2.0 / 3.0 + 2.0) / 4.0)
  assert result["NoAns_exact"] == pytest.approx(100.0)


def test_evaluate_v2_without_na_probs_or_with_missing_predictions():
  dataset, predictions, _ = _v2_case()
  del predictions["q4"]
  result = squad_metrics.evaluate_v2(dataset, predictions)
  # Missing questions are left out (as the official v2 script does).
  assert result["total"] == 3 and result["missing"] == 1
  assert result["exact_match"] == pytest.approx(100.0 / 3.0)
  assert "best_f1" not in result


def test_questions_without_gold():
  def unscorable(dataset, version_2):
    return squad_metrics.questions_without_gold(dataset, version_2)

  assert unscorable(_dataset([("q1", ["a"]), ("q2", [])]), False) == (
      ["q2"], 2)
  assert unscorable(_dataset([("q1", [])]), True) == ([], 1)
  no_answers_key = [{"paragraphs": [{"context": "c",
                                     "qas": [{"id": "q", "question": "?"}]}]}]
  assert unscorable(no_answers_key, True) == (["q"], 1)
