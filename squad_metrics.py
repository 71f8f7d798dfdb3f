"""Official SQuAD v1.1 and v2.0 metrics: exact match and F1.

Follows the definitions of the official evaluation scripts
(`evaluate-v1.1.py`, `evaluate-v2.0.py`): answers are normalised (lower case,
punctuation and the articles a/an/the removed, whitespace collapsed), each
question scores the maximum over its gold answers, and totals are percentages.
SQuAD v2.0 adds unanswerable questions (gold answer ""), the HasAns / NoAns
breakdown, and the best no-answer thresholds over `null_odds.json`.
"""

import collections
import re
import string

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES_RE = re.compile(r"\b(a|an|the)\b", re.UNICODE)


def normalize_answer(text):
  """Lower case, drop punctuation and articles, collapse whitespace."""
  text = text.lower()
  text = "".join(ch for ch in text if ch not in _PUNCTUATION)
  text = _ARTICLES_RE.sub(" ", text)
  return " ".join(text.split())


def _answer_tokens(text):
  return normalize_answer(text).split()


def exact_match_score(prediction, ground_truth):
  """1.0 if the normalised strings are equal, else 0.0."""
  return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1_score_v1(prediction, ground_truth):
  """Token-overlap F1 as in evaluate-v1.1.py (no overlap, or empty, gives 0)."""
  prediction_tokens = _answer_tokens(prediction)
  ground_truth_tokens = _answer_tokens(ground_truth)
  return _overlap_f1(prediction_tokens, ground_truth_tokens)


def f1_score_v2(prediction, ground_truth):
  """Token-overlap F1 as in evaluate-v2.0.py.

  When either side normalises to nothing (a no-answer), F1 is 1.0 only if both
  do.
  """
  prediction_tokens = _answer_tokens(prediction)
  ground_truth_tokens = _answer_tokens(ground_truth)
  if not prediction_tokens or not ground_truth_tokens:
    return float(prediction_tokens == ground_truth_tokens)
  return _overlap_f1(prediction_tokens, ground_truth_tokens)


def _overlap_f1(prediction_tokens, ground_truth_tokens):
  common = (collections.Counter(prediction_tokens) &
            collections.Counter(ground_truth_tokens))
  num_same = sum(common.values())
  if num_same == 0:
    return 0.0
  precision = num_same / len(prediction_tokens)
  recall = num_same / len(ground_truth_tokens)
  return 2.0 * precision * recall / (precision + recall)


def _iter_questions(dataset):
  """Yields every question dict of a SQuAD `data` list."""
  for article in dataset:
    for paragraph in article["paragraphs"]:
      for qa in paragraph["qas"]:
        yield qa


def evaluate_v1(dataset, predictions):
  """SQuAD v1.1 metrics.

  Args:
    dataset: the `data` list of a SQuAD JSON file (questions with `answers`).
    predictions: dict question id -> predicted answer text.

  Returns:
    dict with `exact_match`, `f1` (percentages over all questions; a question
    without a prediction scores 0, as in the official script), `total` and
    `missing` (questions without a prediction).
  """
  exact_match = 0.0
  f1 = 0.0
  total = 0
  missing = 0
  for qa in _iter_questions(dataset):
    total += 1
    if qa["id"] not in predictions:
      missing += 1
      continue
    prediction = predictions[qa["id"]]
    gold_texts = [answer["text"] for answer in qa["answers"]]
    exact_match += max(exact_match_score(prediction, gold)
                       for gold in gold_texts)
    f1 += max(f1_score_v1(prediction, gold) for gold in gold_texts)
  return {
      "exact_match": 100.0 * exact_match / total if total else 0.0,
      "f1": 100.0 * f1 / total if total else 0.0,
      "total": total,
      "missing": missing,
  }


def _raw_scores_v2(dataset, predictions):
  """Per-question exact and F1 against the gold answers ("" if none)."""
  exact_scores = {}
  f1_scores = {}
  has_answer = {}
  for qa in _iter_questions(dataset):
    qid = qa["id"]
    gold_texts = [answer["text"] for answer in qa.get("answers", [])
                  if normalize_answer(answer["text"])]
    has_answer[qid] = bool(gold_texts)
    if not gold_texts:
      gold_texts = [""]
    if qid not in predictions:
      continue
    prediction = predictions[qid]
    exact_scores[qid] = max(exact_match_score(prediction, gold)
                            for gold in gold_texts)
    f1_scores[qid] = max(f1_score_v2(prediction, gold) for gold in gold_texts)
  return exact_scores, f1_scores, has_answer


def _apply_no_answer_threshold(scores, na_probs, has_answer, na_prob_thresh):
  """A question whose no-answer score exceeds the threshold counts as ""."""
  new_scores = {}
  for qid, score in scores.items():
    if na_probs.get(qid, 0.0) > na_prob_thresh:
      new_scores[qid] = float(not has_answer[qid])
    else:
      new_scores[qid] = score
  return new_scores


def _best_threshold(predictions, scores, na_probs, has_answer):
  """Best total score and threshold for predicting "" when na_prob > thresh.

  Starts with every question answered "" (each no-answer question scores 1)
  and admits the questions in increasing order of their no-answer score: an
  answerable question then gains its score, an unanswerable one loses 1 if the
  model proposed a non-empty text.
  """
  num_no_answer = sum(1 for qid in scores if not has_answer[qid])
  current = float(num_no_answer)
  best = current
  best_thresh = 0.0
  for qid in sorted(scores, key=lambda q: na_probs.get(q, 0.0)):
    if has_answer[qid]:
      current += scores[qid]
    elif predictions[qid]:
      current -= 1.0
    if current > best:
      best = current
      best_thresh = na_probs.get(qid, 0.0)
  return 100.0 * best / len(scores), best_thresh


def evaluate_v2(dataset, predictions, na_probs=None, na_prob_thresh=1.0):
  """SQuAD v2.0 metrics.

  Args:
    dataset: the `data` list of a SQuAD v2.0 JSON file.
    predictions: dict question id -> predicted text ("" for no answer).
    na_probs: optional dict question id -> no-answer score (null_odds.json).
      When given, the best thresholds are computed too.
    na_prob_thresh: questions with a no-answer score above this count as "".

  Returns:
    dict with `exact_match`, `f1`, `total`, `HasAns_exact`, `HasAns_f1`,
    `HasAns_total`, `NoAns_exact`, `NoAns_f1`, `NoAns_total` (breakdowns only
    for the groups that have questions), `missing`, and with `na_probs` also
    `best_exact`, `best_exact_thresh`, `best_f1`, `best_f1_thresh`.
    Questions without a prediction are left out, as in the official script.
  """
  exact_raw, f1_raw, has_answer = _raw_scores_v2(dataset, predictions)
  probs = na_probs if na_probs is not None else {}
  exact_thresh = _apply_no_answer_threshold(exact_raw, probs, has_answer,
                                            na_prob_thresh)
  f1_thresh = _apply_no_answer_threshold(f1_raw, probs, has_answer,
                                         na_prob_thresh)
  scored = list(exact_raw)
  result = collections.OrderedDict()
  result["exact_match"] = _mean_percent(exact_thresh, scored)
  result["f1"] = _mean_percent(f1_thresh, scored)
  result["total"] = len(scored)
  for prefix, wanted in (("HasAns", True), ("NoAns", False)):
    group = [qid for qid in scored if has_answer[qid] == wanted]
    if group:
      result[prefix + "_exact"] = _mean_percent(exact_thresh, group)
      result[prefix + "_f1"] = _mean_percent(f1_thresh, group)
      result[prefix + "_total"] = len(group)
  result["missing"] = len(has_answer) - len(scored)
  if na_probs is not None and scored:
    best_exact, best_exact_thresh = _best_threshold(predictions, exact_raw,
                                                    na_probs, has_answer)
    best_f1, best_f1_thresh = _best_threshold(predictions, f1_raw, na_probs,
                                              has_answer)
    result["best_exact"] = best_exact
    result["best_exact_thresh"] = best_exact_thresh
    result["best_f1"] = best_f1
    result["best_f1_thresh"] = best_f1_thresh
  return result


def _mean_percent(scores, qids):
  if not qids:
    return 0.0
  return 100.0 * sum(scores[qid] for qid in qids) / len(qids)


def questions_without_gold(dataset, version_2_with_negative):
  """(ids of the questions that cannot be scored, number of questions).

  v1.1 questions need at least one answer; v2.0 questions may have none when
  they are marked `is_impossible`.  A question without an `answers` key
  cannot be scored either way.
  """
  unscorable = []
  total = 0
  for qa in _iter_questions(dataset):
    total += 1
    answers = qa.get("answers")
    if answers is None or (not answers and not (
        version_2_with_negative and qa.get("is_impossible", False))):
      unscorable.append(qa["id"])
  return unscorable, total
