"""SQuAD prediction post-processing: from start/end logits to answer texts.

For each question, every window (feature) proposes the `n_best_size` best
start and end positions; valid pairs (inside the document, start in its
max-context window, end >= start, not longer than `max_answer_length`) are
ranked by start + end logit, mapped back to the original words and trimmed to
the predicted characters with `get_final_text`.  SQuAD v2.0 adds a null
("no answer") candidate scored by the [CLS] logits and answers "" when the
null score beats the best span by more than `null_score_diff_threshold`.

Writes `predictions.json` (id -> text), `nbest_predictions.json` (id -> list of
{text, probability, start_logit, end_logit}) and, for v2.0, `null_odds.json`
(id -> null score minus best span score): the files the official SQuAD
evaluation scripts read.
"""

import collections
import json
import os

import numpy as np
import tensorflow.compat.v1 as tf

import tokenization

RawResult = collections.namedtuple("RawResult",
                                   ["unique_id", "start_logits", "end_logits"])

PREDICTIONS_FILE = "predictions.json"
NBEST_FILE = "nbest_predictions.json"
NULL_ODDS_FILE = "null_odds.json"

# What a v1.1 question gets when no window offers a valid span (BERT's text).
NO_CANDIDATE_TEXT = "empty"
# null_odds entry of a v2.0 question with no valid span at all: no-answer wins
# at any threshold a user would set.
NO_SPAN_NULL_ODDS = 1e6

_SENTENCEPIECE_WORD_START = u"\u2581"

_PrelimPrediction = collections.namedtuple(
    "PrelimPrediction",
    ["feature_index", "start_index", "end_index", "start_logit", "end_logit"])
_NbestPrediction = collections.namedtuple(
    "NbestPrediction", ["text", "start_logit", "end_logit"])


def get_best_indexes(logits, n_best_size):
  """Indexes of the `n_best_size` largest logits, largest first.

  Ties keep the lower index first.
  """
  order = sorted(range(len(logits)), key=lambda i: (-logits[i], i))
  return order[:n_best_size]


def compute_softmax(scores):
  """Softmax of a list of floats (an empty list gives [])."""
  if not scores:
    return []
  values = np.asarray(scores, dtype=np.float64)
  exp = np.exp(values - values.max())
  return [float(p) for p in exp / exp.sum()]


def _strip_spaces(text):
  """Text without spaces, and a map from its indexes to `text`'s indexes."""
  chars = []
  stripped_to_original = {}
  for i, char in enumerate(text):
    if char == " ":
      continue
    stripped_to_original[len(chars)] = i
    chars.append(char)
  return "".join(chars), stripped_to_original


def get_final_text(pred_text, orig_text, do_lower_case, verbose_logging=False):
  """Projects a de-tokenized prediction back onto the original text.

  `pred_text` is normalised (lower-cased, punctuation split off) while
  `orig_text` is the original words of the span, which can be longer: for the
  words "Steve Smith's" and the prediction "steve smith" this returns
  "Steve Smith".  The original is tokenized with BasicTokenizer, the
  prediction is located in it, and the character positions are carried back
  through the two texts with their spaces removed.  When that alignment fails
  the whole original span is returned.

  Args:
    pred_text: prediction from word pieces, words separated by single spaces.
    orig_text: the original words of the predicted span, joined by spaces.
    do_lower_case: how the tokenizer normalised the text.
    verbose_logging: log why an alignment failed.

  Returns:
    The predicted substring of orig_text (or orig_text itself).
  """
  tokenizer = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
  tok_text = " ".join(tokenizer.tokenize(orig_text))
  start_position = tok_text.find(pred_text)
  if start_position == -1:
    if verbose_logging:
      tf.logging.info("Unable to find text: %r in %r", pred_text, orig_text)
    return orig_text
  end_position = start_position + len(pred_text) - 1

  orig_ns_text, orig_ns_to_s_map = _strip_spaces(orig_text)
  tok_ns_text, tok_ns_to_s_map = _strip_spaces(tok_text)
  # Character-by-character alignment only holds if normalisation kept the
  # number of characters (it does not for some lower-casings and accents).
  if len(orig_ns_text) != len(tok_ns_text):
    if verbose_logging:
      tf.logging.info("Length not equal after stripping spaces: %r vs %r",
                      orig_ns_text, tok_ns_text)
    return orig_text
  tok_s_to_ns_map = {s: ns for ns, s in tok_ns_to_s_map.items()}

  orig_start_position = None
  if start_position in tok_s_to_ns_map:
    orig_start_position = orig_ns_to_s_map.get(tok_s_to_ns_map[start_position])
  orig_end_position = None
  if end_position in tok_s_to_ns_map:
    orig_end_position = orig_ns_to_s_map.get(tok_s_to_ns_map[end_position])
  if orig_start_position is None or orig_end_position is None:
    if verbose_logging:
      tf.logging.info("Couldn't map the span of %r back to %r", pred_text,
                      orig_text)
    return orig_text
  return orig_text[orig_start_position:orig_end_position + 1]


def detokenize(tokens, sentencepiece=False):
  """Joins sub-tokens into space-separated words.

  WordPiece continuations carry "##"; SentencePiece marks word starts with
  U+2581 instead.
  """
  if sentencepiece:
    text = "".join(tokens).replace(_SENTENCEPIECE_WORD_START, " ")
  else:
    text = " ".join(tokens).replace(" ##", "").replace("##", "")
  return " ".join(text.split())


def compute_predictions(examples, features, results, n_best_size,
                        max_answer_length, do_lower_case,
                        version_2_with_negative=False,
                        null_score_diff_threshold=0.0, sentencepiece=False,
                        verbose_logging=False):
  """Answer texts, n-best lists and (v2.0) null odds for every example.

  Args:
    examples: list of squad_data.SquadExample.
    features: their squad_data.InputFeatures (example_index indexes
      `examples`).
    results: iterable of RawResult, one per feature; the logits are sequences
      of length max_seq_length.
    n_best_size: candidates per window and length of each n-best list.
    max_answer_length: longest answer in sub-tokens.
    do_lower_case: tokenizer casing, for get_final_text.
    version_2_with_negative: add null candidates and the threshold decision.
    null_score_diff_threshold: predict "" when null score - best span score
      exceeds this.
    sentencepiece: the features hold SentencePiece pieces.
    verbose_logging: log alignment failures.

  Returns:
    (predictions, nbest, null_odds): OrderedDicts keyed by question id;
    null_odds is empty for v1.1.

  Raises:
    ValueError: a feature has no result.
  """
  features_by_example = collections.defaultdict(list)
  for feature in features:
    features_by_example[feature.example_index].append(feature)
  result_by_id = {int(result.unique_id): result for result in results}
  missing = [feature.unique_id for feature in features
             if feature.unique_id not in result_by_id]
  if missing:
    raise ValueError("%d of %d features have no model output (first missing "
                     "unique_id %d)." % (len(missing), len(features),
                                         missing[0]))

  predictions = collections.OrderedDict()
  nbest_json = collections.OrderedDict()
  null_odds = collections.OrderedDict()
  for example_index, example in enumerate(examples):
    example_features = features_by_example[example_index]
    prelim, null_candidate = _span_candidates(
        example_features, result_by_id, n_best_size, max_answer_length,
        version_2_with_negative)
    if null_candidate is not None:
      prelim.append(null_candidate)
    prelim.sort(key=lambda p: p.start_logit + p.end_logit, reverse=True)

    nbest = _nbest_texts(example, example_features, prelim, n_best_size,
                         do_lower_case, sentencepiece, verbose_logging)
    if version_2_with_negative and null_candidate is not None and not any(
        entry.text == "" for entry in nbest):
      nbest.append(_NbestPrediction(text="",
                                    start_logit=null_candidate.start_logit,
                                    end_logit=null_candidate.end_logit))
    if not nbest:
      nbest.append(_NbestPrediction(
          text="" if version_2_with_negative else NO_CANDIDATE_TEXT,
          start_logit=0.0, end_logit=0.0))

    probabilities = compute_softmax(
        [entry.start_logit + entry.end_logit for entry in nbest])
    nbest_json[example.qas_id] = [
        collections.OrderedDict([
            ("text", entry.text), ("probability", probability),
            ("start_logit", entry.start_logit),
            ("end_logit", entry.end_logit)])
        for entry, probability in zip(nbest, probabilities)]

    if not version_2_with_negative:
      predictions[example.qas_id] = nbest[0].text
      continue
    best_non_null = next((entry for entry in nbest if entry.text), None)
    if best_non_null is None:
      null_odds[example.qas_id] = NO_SPAN_NULL_ODDS
      predictions[example.qas_id] = ""
      continue
    score_null = null_candidate.start_logit + null_candidate.end_logit
    score_diff = score_null - (best_non_null.start_logit +
                               best_non_null.end_logit)
    null_odds[example.qas_id] = score_diff
    predictions[example.qas_id] = (
        "" if score_diff > null_score_diff_threshold else best_non_null.text)
  return predictions, nbest_json, null_odds


def _span_candidates(example_features, result_by_id, n_best_size,
                     max_answer_length, version_2_with_negative):
  """Valid (feature, start, end) candidates and the example's null candidate.

  The null candidate (v2.0) comes from the window with the lowest [CLS]
  score start_logit[0] + end_logit[0].
  """
  prelim = []
  null_candidate = None
  for feature_index, feature in enumerate(example_features):
    result = result_by_id[feature.unique_id]
    start_logits = [float(x) for x in result.start_logits]
    end_logits = [float(x) for x in result.end_logits]
    if version_2_with_negative:
      feature_null_score = start_logits[0] + end_logits[0]
      if null_candidate is None or feature_null_score < (
          null_candidate.start_logit + null_candidate.end_logit):
        null_candidate = _PrelimPrediction(
            feature_index=feature_index, start_index=0, end_index=0,
            start_logit=start_logits[0], end_logit=end_logits[0])
    num_tokens = len(feature.tokens)
    for start_index in get_best_indexes(start_logits, n_best_size):
      if (start_index >= num_tokens or
          start_index not in feature.token_to_orig_map or
          not feature.token_is_max_context.get(start_index, False)):
        continue
      for end_index in get_best_indexes(end_logits, n_best_size):
        if (end_index >= num_tokens or
            end_index not in feature.token_to_orig_map or
            end_index < start_index or
            end_index - start_index + 1 > max_answer_length):
          continue
        prelim.append(_PrelimPrediction(
            feature_index=feature_index, start_index=start_index,
            end_index=end_index, start_logit=start_logits[start_index],
            end_logit=end_logits[end_index]))
  return prelim, null_candidate


def _nbest_texts(example, example_features, prelim, n_best_size,
                 do_lower_case, sentencepiece, verbose_logging):
  """Up to n_best_size candidates with distinct texts, best first."""
  nbest = []
  seen_texts = set()
  for candidate in prelim:
    if len(nbest) >= n_best_size:
      break
    if candidate.start_index > 0:
      feature = example_features[candidate.feature_index]
      tok_text = detokenize(
          feature.tokens[candidate.start_index:candidate.end_index + 1],
          sentencepiece)
      orig_start = feature.token_to_orig_map[candidate.start_index]
      orig_end = feature.token_to_orig_map[candidate.end_index]
      orig_text = " ".join(example.doc_tokens[orig_start:orig_end + 1])
      text = get_final_text(tok_text, orig_text, do_lower_case,
                            verbose_logging)
    else:
      text = ""
    if text in seen_texts:
      continue
    seen_texts.add(text)
    nbest.append(_NbestPrediction(text=text,
                                  start_logit=candidate.start_logit,
                                  end_logit=candidate.end_logit))
  return nbest


def write_predictions(output_dir, predictions, nbest, null_odds=None):
  """Writes predictions.json, nbest_predictions.json and (v2) null_odds.json.

  Returns:
    dict kind -> path of the files written.
  """
  tf.gfile.MakeDirs(output_dir)
  paths = {"predictions": os.path.join(output_dir, PREDICTIONS_FILE),
           "nbest": os.path.join(output_dir, NBEST_FILE)}
  contents = {"predictions": predictions, "nbest": nbest}
  if null_odds:
    paths["null_odds"] = os.path.join(output_dir, NULL_ODDS_FILE)
    contents["null_odds"] = null_odds
  for kind, path in paths.items():
    tf.logging.info("Writing %s", path)
    with tf.gfile.GFile(path, "w") as writer:
      writer.write(json.dumps(contents[kind], indent=4) + "\n")
  return paths

