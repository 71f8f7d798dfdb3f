"""SQuAD v1.1 / v2.0 data: reading, featurisation, TFRecords, feature cache.

BERT's SQuAD pipeline: paragraphs are split into whitespace words, answers are
mapped from character offsets to words, words are sub-tokenized, and long
documents are cut into overlapping windows ("doc spans") of
`max_seq_length - len(query) - 3` sub-tokens that advance by `doc_stride`.
Each window becomes one feature `[CLS] query [SEP] window [SEP]`; a token that
appears in several windows is scored only in the window where it has the most
context on both sides.

Training features are cached as `train.tf_record` next to a settings file; a
cache built with other settings (lengths, vocabulary, casing, train file) is
rebuilt, never silently reused.
"""

import collections
import json
import os
import random

import tensorflow.compat.v1 as tf

import console
import feature_records
import tokenization

FIRST_UNIQUE_ID = 1000000000
TRAIN_RECORD_NAME = "train.tf_record"
# Bump when the feature layout changes so old caches are rebuilt.
_CACHE_FORMAT_VERSION = 1
_TRAIN_SHUFFLE_SEED = 12345


class SquadExample(object):
  """One question with its paragraph.

  Attributes:
    qas_id: the question id.
    question_text: the question.
    doc_tokens: the paragraph split on whitespace (shared by all questions of
      the paragraph, so featurisation tokenizes each paragraph once).
    orig_answer_text: training answer text, or None.
    start_position, end_position: training answer span as inclusive indexes
      into doc_tokens (-1 for impossible questions), or None.
    is_impossible: SQuAD v2.0 question without an answer.
  """

  def __init__(self, qas_id, question_text, doc_tokens, orig_answer_text=None,
               start_position=None, end_position=None, is_impossible=False):
    self.qas_id = qas_id
    self.question_text = question_text
    self.doc_tokens = doc_tokens
    self.orig_answer_text = orig_answer_text
    self.start_position = start_position
    self.end_position = end_position
    self.is_impossible = is_impossible

  def __repr__(self):
    return ("SquadExample(qas_id=%r, question_text=%r, start_position=%r, "
            "end_position=%r, is_impossible=%r)" %
            (self.qas_id, self.question_text, self.start_position,
             self.end_position, self.is_impossible))


class InputFeatures(object):
  """One doc-span window of one example, ready for the model.

  Attributes:
    unique_id: int id linking model outputs back to this feature.
    example_index: index of the example in the list that was featurised.
    doc_span_index: index of this window among the example's windows.
    tokens: the [max_seq_length]-or-shorter list of tokens (without padding).
    token_to_orig_map: dict feature token index -> doc_tokens index (document
      tokens only).
    token_is_max_context: dict feature token index -> whether this window is
      the one that gives the token most context.
    input_ids, input_mask, segment_ids: int lists of length max_seq_length.
    start_position, end_position: training labels (0 when the answer is not in
      this window or the question is impossible), or None.
    is_impossible: whether the example is impossible.
  """

  def __init__(self, unique_id, example_index, doc_span_index, tokens,
               token_to_orig_map, token_is_max_context, input_ids, input_mask,
               segment_ids, start_position=None, end_position=None,
               is_impossible=False):
    self.unique_id = unique_id
    self.example_index = example_index
    self.doc_span_index = doc_span_index
    self.tokens = tokens
    self.token_to_orig_map = token_to_orig_map
    self.token_is_max_context = token_is_max_context
    self.input_ids = input_ids
    self.input_mask = input_mask
    self.segment_ids = segment_ids
    self.start_position = start_position
    self.end_position = end_position
    self.is_impossible = is_impossible


def is_whitespace(char):
  """Whitespace for splitting paragraphs into words (BERT's SQuAD rule)."""
  return char in (" ", "\t", "\r", "\n") or ord(char) == 0x202F


def split_paragraph(paragraph_text):
  """Splits a paragraph into whitespace words.

  Returns:
    (doc_tokens, char_to_word_offset): the words, and for every character of
    the paragraph the index of the word it belongs to (whitespace maps to the
    preceding word, leading whitespace to -1).
  """
  doc_tokens = []
  char_to_word_offset = []
  prev_is_whitespace = True
  for char in paragraph_text:
    if is_whitespace(char):
      prev_is_whitespace = True
    else:
      if prev_is_whitespace:
        doc_tokens.append(char)
      else:
        doc_tokens[-1] += char
      prev_is_whitespace = False
    char_to_word_offset.append(len(doc_tokens) - 1)
  return doc_tokens, char_to_word_offset


def load_squad_json(input_file):
  """Reads a SQuAD JSON file and returns its `data` list.

  Raises:
    ValueError: the file is missing, is not JSON, or has no `data` list.
  """
  if not tf.gfile.Exists(input_file):
    raise ValueError("SQuAD file %s does not exist." % input_file)
  with tf.gfile.GFile(input_file, "r") as reader:
    try:
      document = json.load(reader)
    except ValueError as error:
      raise ValueError("SQuAD file %s is not valid JSON: %s" %
                       (input_file, error))
  if not isinstance(document, dict) or not isinstance(
      document.get("data"), list):
    raise ValueError(
        "SQuAD file %s must be a JSON object with a \"data\" list of articles "
        "(the official SQuAD layout)." % input_file)
  return document["data"]


def _require(condition, input_file, where, message):
  if not condition:
    raise ValueError("Malformed SQuAD file %s at %s: %s" %
                     (input_file, where, message))


def read_squad_examples(input_file, is_training, version_2_with_negative,
                        max_examples=None):
  """Reads a SQuAD JSON file into SquadExamples.

  Training questions must have exactly one answer (or, in v2.0, be marked
  `is_impossible`); a question whose answer offset does not fall on its text
  in the context is skipped and counted, with a warning naming it.

  Args:
    input_file: SQuAD JSON path.
    is_training: read the answer labels.
    version_2_with_negative: honour `is_impossible`.
    max_examples: stop after this many examples (None: all).

  Returns:
    (examples, skipped) where skipped is a Counter reason -> count.

  Raises:
    ValueError: malformed file (names the file and the article / paragraph /
      question index), or a training question without exactly one answer.
  """
  data = load_squad_json(input_file)
  examples = []
  skipped = collections.Counter()
  for article_index, article in enumerate(data):
    where_article = "data[%d]" % article_index
    _require(isinstance(article, dict) and
             isinstance(article.get("paragraphs"), list),
             input_file, where_article, "expected an object with a "
             "\"paragraphs\" list")
    for paragraph_index, paragraph in enumerate(article["paragraphs"]):
      where_paragraph = "%s.paragraphs[%d]" % (where_article, paragraph_index)
      _require(isinstance(paragraph, dict) and
               isinstance(paragraph.get("context"), str) and
               isinstance(paragraph.get("qas"), list),
               input_file, where_paragraph, "expected an object with a "
               "\"context\" string and a \"qas\" list")
      paragraph_text = paragraph["context"]
      doc_tokens, char_to_word_offset = split_paragraph(paragraph_text)
      for qa_index, qa in enumerate(paragraph["qas"]):
        where = "%s.qas[%d]" % (where_paragraph, qa_index)
        _require(isinstance(qa, dict) and "id" in qa and
                 isinstance(qa.get("question"), str),
                 input_file, where, "expected an object with \"id\" and a "
                 "\"question\" string")
        example = _read_question(input_file, where, qa, doc_tokens,
                                 char_to_word_offset, paragraph_text,
                                 is_training, version_2_with_negative,
                                 skipped)
        if example is not None:
          examples.append(example)
          if max_examples is not None and len(examples) >= max_examples:
            return examples, skipped
  return examples, skipped


def _read_question(input_file, where, qa, doc_tokens, char_to_word_offset,
                   paragraph_text, is_training, version_2_with_negative,
                   skipped):
  """One SquadExample from a question dict, or None if it is skipped."""
  qas_id = qa["id"]
  if not is_training:
    return SquadExample(qas_id=qas_id, question_text=qa["question"],
                        doc_tokens=doc_tokens)
  is_impossible = bool(version_2_with_negative and qa.get("is_impossible"))
  if is_impossible:
    return SquadExample(qas_id=qas_id, question_text=qa["question"],
                        doc_tokens=doc_tokens, orig_answer_text="",
                        start_position=-1, end_position=-1,
                        is_impossible=True)
  answers = qa.get("answers")
  _require(isinstance(answers, list) and len(answers) == 1, input_file, where,
           "training question %r must have exactly one answer, found %s" %
           (qas_id, len(answers) if isinstance(answers, list) else "none"))
  answer = answers[0]
  _require(isinstance(answer, dict) and isinstance(answer.get("text"), str)
           and isinstance(answer.get("answer_start"), int), input_file, where,
           "answer of question %r needs a \"text\" string and an integer "
           "\"answer_start\"" % (qas_id,))
  answer_text = answer["text"]
  answer_offset = answer["answer_start"]
  answer_end = answer_offset + len(answer_text) - 1
  if (not answer_text.strip() or answer_offset < 0 or
      answer_end >= len(paragraph_text) or
      char_to_word_offset[answer_offset] < 0):
    tf.logging.warning(
        "Skipping question %r (%s): answer_start %d with text %r lies outside "
        "the %d-character context.", qas_id, where, answer_offset,
        answer_text, len(paragraph_text))
    skipped["answer outside the context"] += 1
    return None
  start_position = char_to_word_offset[answer_offset]
  end_position = char_to_word_offset[answer_end]
  # The answer must be recoverable from the words, else its label would point
  # at the wrong words.  Whitespace differences are tolerated.
  actual_text = " ".join(doc_tokens[start_position:end_position + 1])
  cleaned_answer_text = " ".join(tokenization.whitespace_tokenize(answer_text))
  if actual_text.find(cleaned_answer_text) == -1:
    tf.logging.warning(
        "Skipping question %r (%s): answer %r not found at answer_start %d "
        "(the context there reads %r).", qas_id, where, answer_text,
        answer_offset, actual_text)
    skipped["answer text does not match the context"] += 1
    return None
  return SquadExample(qas_id=qas_id, question_text=qa["question"],
                      doc_tokens=doc_tokens, orig_answer_text=answer_text,
                      start_position=start_position,
                      end_position=end_position, is_impossible=False)


def improve_answer_span(doc_tokens, input_start, input_end, tokenizer,
                        orig_answer_text):
  """Narrows a sub-token answer span to the sub-tokens of the answer text.

  Word-level labels can include extra characters ("(1895-1943)." for the
  answer "1895"); this finds the tightest sub-span whose tokens equal the
  tokenized answer, keeping the span when there is none.

  Returns:
    (start, end) inclusive sub-token indexes.
  """
  tok_answer_text = " ".join(tokenizer.tokenize(orig_answer_text))
  for new_start in range(input_start, input_end + 1):
    for new_end in range(input_end, new_start - 1, -1):
      text_span = " ".join(doc_tokens[new_start:(new_end + 1)])
      if text_span == tok_answer_text:
        return new_start, new_end
  return input_start, input_end


def doc_spans_for(num_doc_tokens, max_tokens_for_doc, doc_stride):
  """Windows over a document: list of (start, length).

  Windows advance by min(length, doc_stride) until one reaches the end.
  """
  spans = []
  start_offset = 0
  while start_offset < num_doc_tokens:
    length = min(num_doc_tokens - start_offset, max_tokens_for_doc)
    spans.append((start_offset, length))
    if start_offset + length == num_doc_tokens:
      break
    start_offset += min(length, doc_stride)
  return spans


def is_max_context(doc_spans, cur_span_index, position):
  """Whether doc_spans[cur_span_index] gives `position` the most context.

  A token's score in a span is min(tokens to its left, tokens to its right)
  plus 0.01 * span length (ties favour longer spans, then earlier ones).
  """
  best_score = None
  best_span_index = None
  for span_index, (start, length) in enumerate(doc_spans):
    end = start + length - 1
    if position < start or position > end:
      continue
    num_left_context = position - start
    num_right_context = end - position
    score = min(num_left_context, num_right_context) + 0.01 * length
    if best_score is None or score > best_score:
      best_score = score
      best_span_index = span_index
  return cur_span_index == best_span_index


class _DocumentTokens(object):
  """Sub-tokens of one paragraph with maps to and from its words."""

  def __init__(self, doc_tokens, tokenize_word, tokenizer):
    self.doc_tokens = doc_tokens
    self.tok_to_orig_index = []
    self.orig_to_tok_index = []
    self.sub_tokens = []
    for i, token in enumerate(doc_tokens):
      self.orig_to_tok_index.append(len(self.sub_tokens))
      for sub_token in tokenize_word(token):
        self.tok_to_orig_index.append(i)
        self.sub_tokens.append(sub_token)
    self.sub_token_ids = tokenizer.convert_tokens_to_ids(self.sub_tokens)


def _memoized_word_tokenizer(tokenizer):
  """tokenizer.tokenize for single words, memoized (words repeat a lot)."""
  cache = {}

  def tokenize_word(word):
    sub_tokens = cache.get(word)
    if sub_tokens is None:
      sub_tokens = tokenizer.tokenize(word)
      cache[word] = sub_tokens
    return sub_tokens

  return tokenize_word


def convert_examples_to_features(examples, tokenizer, max_seq_length,
                                 doc_stride, max_query_length, is_training,
                                 output_fn):
  """Turns examples into InputFeatures, passing each to `output_fn`.

  Args:
    examples: list of SquadExample.
    tokenizer: from tokenization.create_tokenizer.
    max_seq_length: total tokens per feature (query, window, 3 specials).
    doc_stride: advance between windows, in sub-tokens.
    max_query_length: questions are cut to this many sub-tokens.
    is_training: compute start/end labels.
    output_fn: called with each InputFeatures.

  Returns:
    dict with `examples`, `features` and `examples_without_features` counts.
  """
  special_ids = tokenizer.convert_tokens_to_ids(
      [tokenization.CLS_TOKEN, tokenization.SEP_TOKEN])
  cls_id, sep_id = special_ids
  documents = {}
  tokenize_word = _memoized_word_tokenizer(tokenizer)
  unique_id = FIRST_UNIQUE_ID
  num_without_features = 0
  progress = console.Progress("Featurising", len(examples))
  for example_index, example in enumerate(examples):
    doc_key = id(example.doc_tokens)
    document = documents.get(doc_key)
    if document is None or document.doc_tokens is not example.doc_tokens:
      document = _DocumentTokens(example.doc_tokens, tokenize_word, tokenizer)
      documents[doc_key] = document

    query_tokens = tokenizer.tokenize(example.question_text)[:max_query_length]
    query_ids = tokenizer.convert_tokens_to_ids(query_tokens)

    tok_start_position = None
    tok_end_position = None
    if is_training and example.is_impossible:
      tok_start_position = -1
      tok_end_position = -1
    elif is_training:
      tok_start_position = document.orig_to_tok_index[example.start_position]
      if example.end_position < len(example.doc_tokens) - 1:
        tok_end_position = (
            document.orig_to_tok_index[example.end_position + 1] - 1)
      else:
        tok_end_position = len(document.sub_tokens) - 1
      tok_start_position, tok_end_position = improve_answer_span(
          document.sub_tokens, tok_start_position, tok_end_position,
          tokenizer, example.orig_answer_text)

    max_tokens_for_doc = max_seq_length - len(query_tokens) - 3
    doc_spans = doc_spans_for(len(document.sub_tokens), max_tokens_for_doc,
                              doc_stride)
    if not doc_spans:
      num_without_features += 1
    prefix_tokens = [tokenization.CLS_TOKEN] + query_tokens + [
        tokenization.SEP_TOKEN]
    prefix_ids = [cls_id] + query_ids + [sep_id]
    doc_offset = len(prefix_tokens)
    for doc_span_index, (span_start, span_length) in enumerate(doc_spans):
      span_end = span_start + span_length
      tokens = prefix_tokens + document.sub_tokens[span_start:span_end] + [
          tokenization.SEP_TOKEN]
      input_ids = prefix_ids + document.sub_token_ids[span_start:span_end] + [
          sep_id]
      token_to_orig_map = {}
      token_is_max_context = {}
      for i in range(span_length):
        token_to_orig_map[doc_offset + i] = (
            document.tok_to_orig_index[span_start + i])
        token_is_max_context[doc_offset + i] = is_max_context(
            doc_spans, doc_span_index, span_start + i)
      num_real = len(input_ids)
      padding = max_seq_length - num_real
      input_mask = [1] * num_real + [0] * padding
      segment_ids = [0] * doc_offset + [1] * (span_length + 1) + [0] * padding
      input_ids = input_ids + [0] * padding

      start_position = None
      end_position = None
      if is_training:
        start_position = 0
        end_position = 0
        if (not example.is_impossible and
            tok_start_position >= span_start and
            tok_end_position < span_end):
          start_position = tok_start_position - span_start + doc_offset
          end_position = tok_end_position - span_start + doc_offset

      output_fn(InputFeatures(
          unique_id=unique_id, example_index=example_index,
          doc_span_index=doc_span_index, tokens=tokens,
          token_to_orig_map=token_to_orig_map,
          token_is_max_context=token_is_max_context, input_ids=input_ids,
          input_mask=input_mask, segment_ids=segment_ids,
          start_position=start_position, end_position=end_position,
          is_impossible=example.is_impossible))
      unique_id += 1
    progress.update(example_index + 1)
  stats = {
      "examples": len(examples),
      "features": unique_id - FIRST_UNIQUE_ID,
      "examples_without_features": num_without_features,
  }
  tf.logging.info("Featurised %d examples into %d features (%d examples with "
                  "an empty context got no feature).", stats["examples"],
                  stats["features"], num_without_features)
  return stats


def feature_fields(feature, is_training):
  """One InputFeatures as the record fields RecordWriter writes (all ints)."""
  fields = collections.OrderedDict()
  fields["unique_ids"] = [feature.unique_id]
  fields["input_ids"] = feature.input_ids
  fields["input_mask"] = feature.input_mask
  fields["segment_ids"] = feature.segment_ids
  if is_training:
    fields["start_positions"] = [feature.start_position]
    fields["end_positions"] = [feature.end_position]
    fields["is_impossible"] = [int(feature.is_impossible)]
  return fields


def write_features(features, record_path, is_training):
  """Writes InputFeatures to `record_path`; returns how many."""
  with feature_records.RecordWriter(record_path) as writer:
    for feature in features:
      writer.write(feature_fields(feature, is_training))
  return writer.num_records


def input_fn_builder(input_file, seq_length, is_training, drop_remainder):
  """An input_fn for TPUEstimator reading `write_features` records.

  Features are int32: unique_ids [batch], input_ids / input_mask /
  segment_ids [batch, seq_length], and in training start_positions /
  end_positions [batch].  Training repeats and shuffles.
  """
  name_to_features = {
      "unique_ids": tf.FixedLenFeature([], tf.int64),
      "input_ids": tf.FixedLenFeature([seq_length], tf.int64),
      "input_mask": tf.FixedLenFeature([seq_length], tf.int64),
      "segment_ids": tf.FixedLenFeature([seq_length], tf.int64),
  }
  if is_training:
    name_to_features["start_positions"] = tf.FixedLenFeature([], tf.int64)
    name_to_features["end_positions"] = tf.FixedLenFeature([], tf.int64)
  return feature_records.input_fn_builder(input_file, name_to_features,
                                          is_training, drop_remainder)


def train_cache_settings(train_file, vocab_file, spm_model_file, do_lower_case,
                         max_seq_length, doc_stride, max_query_length,
                         version_2_with_negative):
  """Everything the cached training features depend on, as a JSON-able dict."""
  settings = collections.OrderedDict([
      ("format_version", _CACHE_FORMAT_VERSION),
      ("train_file_sha256", feature_records.file_sha256(train_file)),
  ])
  settings.update(feature_records.tokenizer_settings(
      vocab_file, spm_model_file, do_lower_case))
  settings.update([
      ("max_seq_length", int(max_seq_length)),
      ("doc_stride", int(doc_stride)),
      ("max_query_length", int(max_query_length)),
      ("version_2_with_negative", bool(version_2_with_negative)),
      ("shuffle_seed", _TRAIN_SHUFFLE_SEED),
  ])
  return settings


def prepare_train_features(cache_dir, train_file, tokenizer, vocab_file,
                           spm_model_file, do_lower_case, max_seq_length,
                           doc_stride, max_query_length,
                           version_2_with_negative):
  """Returns cached training features, rebuilding them if stale.

  The cache is `cache_dir/train.tf_record`, reused through
  feature_records.cached_records while train_cache_settings(...) is
  unchanged.  Examples are shuffled with a fixed seed before featurisation,
  as in BERT.

  Returns:
    (record_path, num_examples, num_features).
  """
  record_path = os.path.join(cache_dir, TRAIN_RECORD_NAME)
  settings = train_cache_settings(
      train_file, vocab_file, spm_model_file, do_lower_case, max_seq_length,
      doc_stride, max_query_length, version_2_with_negative)

  def build(path):
    examples, skipped = read_squad_examples(
        train_file, is_training=True,
        version_2_with_negative=version_2_with_negative)
    log_skipped(train_file, len(examples), skipped)
    if not examples:
      raise ValueError("No usable training question in %s." % train_file)
    random.Random(_TRAIN_SHUFFLE_SEED).shuffle(examples)
    with feature_records.RecordWriter(path) as writer:
      convert_examples_to_features(
          examples, tokenizer, max_seq_length, doc_stride, max_query_length,
          is_training=True,
          output_fn=lambda f: writer.write(feature_fields(f, True)))
    return collections.OrderedDict([("examples", len(examples)),
                                    ("features", writer.num_records)])

  counts, _ = feature_records.cached_records(record_path, settings, build)
  return record_path, counts["examples"], counts["features"]


def log_skipped(input_file, num_kept, skipped):
  """Logs how many questions of `input_file` were kept and skipped, and why."""
  total_skipped = sum(skipped.values())
  tf.logging.info("Read %d questions from %s; skipped %d.", num_kept,
                  input_file, total_skipped)
  for reason, count in sorted(skipped.items()):
    tf.logging.info("  skipped %d: %s", count, reason)
