"""Pretraining data: documents to masked sentence pairs, records, input_fn.

create_pretraining_data.py turns text into records with
`create_training_instances` and `write_instance_to_example_files`:
tf.train.Examples with input_ids, input_mask, segment_ids,
masked_lm_positions, masked_lm_ids, masked_lm_weights and
next_sentence_labels (0 = B follows A, 1 = B is random); run_pretraining.py
reads them with `input_fn_builder`.
"""

import collections

import tensorflow.compat.v1 as tf

import console
import feature_records
import file_checks
import tokenization

# The one float feature of a pretraining record.
FLOAT_FEATURES = ("masked_lm_weights",)


def expand_input_patterns(patterns, flag_name="input_file"):
  """Files matching comma-separated globs.

  Args:
    patterns: str, comma-separated glob patterns.
    flag_name: the flag the patterns came from, for the error message.

  Returns:
    Sorted list of matching files.

  Raises:
    ValueError: naming the flag and the pattern when a glob matches nothing.
  """
  files = []
  for pattern in (patterns or "").split(","):
    pattern = pattern.strip()
    if not pattern:
      continue
    matched = tf.gfile.Glob(pattern)
    if not matched:
      raise ValueError("--%s: pattern %r matches no file" %
                       (flag_name, pattern))
    files.extend(sorted(matched))
  if not files:
    raise ValueError("--%s is empty" % flag_name)
  return files


def feature_spec(max_seq_length, max_predictions_per_seq):
  """The tf.train.Example features and their fixed lengths."""
  return {
      "input_ids": tf.FixedLenFeature([max_seq_length], tf.int64),
      "input_mask": tf.FixedLenFeature([max_seq_length], tf.int64),
      "segment_ids": tf.FixedLenFeature([max_seq_length], tf.int64),
      "masked_lm_positions":
          tf.FixedLenFeature([max_predictions_per_seq], tf.int64),
      "masked_lm_ids": tf.FixedLenFeature([max_predictions_per_seq], tf.int64),
      "masked_lm_weights":
          tf.FixedLenFeature([max_predictions_per_seq], tf.float32),
      "next_sentence_labels": tf.FixedLenFeature([1], tf.int64),
  }


def input_fn_builder(input_files, max_seq_length, max_predictions_per_seq,
                     is_training, batch_size=None):
  """An input_fn(params) for TPUEstimator / Estimator.

  Batches have `batch_size` examples (default: params["batch_size"], which
  TPUEstimator sets; under a tf.distribute strategy pass the per-replica
  batch): input_ids, input_mask, segment_ids [batch, max_seq_length] int32;
  masked_lm_positions, masked_lm_ids [batch, max_predictions_per_seq] int32;
  masked_lm_weights [batch, max_predictions_per_seq] float32;
  next_sentence_labels [batch, 1] int32.  Training shuffles; both training
  and evaluation (a fixed number of steps) repeat the files and drop the
  last partial batch (TPUs need fixed shapes).
  """
  return feature_records.input_fn_builder(
      input_files, feature_spec(max_seq_length, max_predictions_per_seq),
      is_training, drop_remainder=True, batch_size=batch_size, repeat=True)


# [CLS] A [SEP] B [SEP]
NUM_SPECIAL_POSITIONS = 3

TrainingInstance = collections.namedtuple(
    "TrainingInstance",
    ["tokens", "segment_ids", "masked_lm_positions", "masked_lm_labels",
     "is_random_next"])

MaskedLmInstance = collections.namedtuple("MaskedLmInstance",
                                          ["index", "label"])


def read_documents(input_files, tokenizer):
  """Tokenised documents: a list of documents, each a list of token lists.

  Blank lines end a document; empty documents are dropped.

  Raises:
    ValueError: a file is not UTF-8 text; names the file and line.
  """
  all_documents = [[]]
  for input_file in input_files:
    for _, line in file_checks.text_lines(input_file):
      line = line.strip()
      if not line:
        all_documents.append([])
        continue
      tokens = tokenizer.tokenize(line)
      if tokens:
        all_documents[-1].append(tokens)
  return [doc for doc in all_documents if doc]


def create_training_instances(input_files, tokenizer, max_seq_length,
                              dupe_factor, short_seq_prob, masked_lm_prob,
                              max_predictions_per_seq, rng,
                              do_whole_word_mask=False,
                              word_start_marker=None):
  """Builds shuffled TrainingInstances from raw text files.

  Args:
    input_files: list of text file paths.
    tokenizer: object with .tokenize(text) and .vocab (token -> id).
    max_seq_length: int, length of [CLS] A [SEP] B [SEP] including specials.
    dupe_factor: int, passes over the data with fresh segmentation and masks.
    short_seq_prob: float, probability of a random shorter target length.
    masked_lm_prob: float, fraction of tokens to predict.
    max_predictions_per_seq: int, cap on predictions per sequence.
    rng: random.Random.
    do_whole_word_mask: bool, mask whole words rather than word pieces.
    word_start_marker: None for WordPiece ("##" marks a continuation), or the
      SentencePiece word-start prefix (pieces without it continue a word).

  Returns:
    (instances, num_documents).
  """
  all_documents = read_documents(input_files, tokenizer)
  rng.shuffle(all_documents)
  # Random replacements never produce a special token: a [CLS] or [SEP]
  # inside a sequence would teach the model a wrong segment structure.
  vocab_words = [w for w in tokenizer.vocab
                 if w not in tokenization.SPECIAL_TOKENS]
  instances = []
  progress = console.Progress("Masking", dupe_factor * len(all_documents),
                              unit="document")
  for dupe in range(dupe_factor):
    for document_index in range(len(all_documents)):
      instances.extend(create_instances_from_document(
          all_documents, document_index, max_seq_length, short_seq_prob,
          masked_lm_prob, max_predictions_per_seq, vocab_words, rng,
          do_whole_word_mask, word_start_marker))
      progress.update(dupe * len(all_documents) + document_index + 1)
  rng.shuffle(instances)
  return instances, len(all_documents)


def create_instances_from_document(all_documents, document_index,
                                   max_seq_length, short_seq_prob,
                                   masked_lm_prob, max_predictions_per_seq,
                                   vocab_words, rng, do_whole_word_mask,
                                   word_start_marker):
  """Segment pairs (A, B) from one document, half with a random B."""
  document = all_documents[document_index]
  max_num_tokens = max_seq_length - NUM_SPECIAL_POSITIONS
  # Mostly fill the sequence (pretraining is cheapest at full length), but
  # sometimes go shorter so fine-tuning on short inputs is not out of domain.
  target_seq_length = max_num_tokens
  if rng.random() < short_seq_prob:
    target_seq_length = rng.randint(2, max_num_tokens)

  instances = []
  current_chunk = []
  current_length = 0
  i = 0
  while i < len(document):
    segment = document[i]
    current_chunk.append(segment)
    current_length += len(segment)
    if i == len(document) - 1 or current_length >= target_seq_length:
      if current_chunk:
        a_end = 1
        if len(current_chunk) >= 2:
          a_end = rng.randint(1, len(current_chunk) - 1)
        tokens_a = []
        for j in range(a_end):
          tokens_a.extend(current_chunk[j])

        tokens_b = []
        is_random_next = False
        if (len(current_chunk) == 1 or rng.random() < 0.5) and (
            len(all_documents) > 1):
          is_random_next = True
          target_b_length = target_seq_length - len(tokens_a)
          random_document = pick_other_document(all_documents, document_index,
                                                rng)
          random_start = rng.randint(0, len(random_document) - 1)
          for j in range(random_start, len(random_document)):
            tokens_b.extend(random_document[j])
            if len(tokens_b) >= target_b_length:
              break
          # The unused tail of this chunk is not wasted: step back over it.
          num_unused_segments = len(current_chunk) - a_end
          i -= num_unused_segments
        else:
          for j in range(a_end, len(current_chunk)):
            tokens_b.extend(current_chunk[j])
        tokenization.truncate_longer_at_random_end(
            tokens_a, tokens_b, max_num_tokens, rng)

        if tokens_a and tokens_b:
          tokens = ([tokenization.CLS_TOKEN] + tokens_a +
                    [tokenization.SEP_TOKEN])
          segment_ids = [0] * len(tokens)
          tokens += tokens_b + [tokenization.SEP_TOKEN]
          segment_ids += [1] * (len(tokens_b) + 1)
          tokens, positions, labels = create_masked_lm_predictions(
              tokens, masked_lm_prob, max_predictions_per_seq, vocab_words,
              rng, do_whole_word_mask, word_start_marker)
          instances.append(TrainingInstance(
              tokens=tokens, segment_ids=segment_ids,
              masked_lm_positions=positions, masked_lm_labels=labels,
              is_random_next=is_random_next))
      current_chunk = []
      current_length = 0
    i += 1
  return instances


def pick_other_document(all_documents, document_index, rng):
  """A random document other than `document_index` (needs >= 2 documents)."""
  random_index = rng.randint(0, len(all_documents) - 2)
  if random_index >= document_index:
    random_index += 1
  return all_documents[random_index]


def is_word_continuation(token, word_start_marker):
  if word_start_marker is None:
    return token.startswith("##")
  return not token.startswith(word_start_marker)


def create_masked_lm_predictions(tokens, masked_lm_prob,
                                 max_predictions_per_seq, vocab_words, rng,
                                 do_whole_word_mask=False,
                                 word_start_marker=None):
  """Masks about masked_lm_prob of the tokens, never [CLS] or [SEP].

  Each chosen position becomes [MASK] 80% of the time, stays 10% and becomes
  a random vocabulary word 10%.

  Returns:
    (output_tokens, sorted masked positions, original tokens at them).
  """
  candidate_groups = []
  for index, token in enumerate(tokens):
    if token in (tokenization.CLS_TOKEN, tokenization.SEP_TOKEN):
      continue
    if (do_whole_word_mask and candidate_groups and
        is_word_continuation(token, word_start_marker) and
        candidate_groups[-1][-1] == index - 1):
      candidate_groups[-1].append(index)
    else:
      candidate_groups.append([index])
  rng.shuffle(candidate_groups)

  output_tokens = list(tokens)
  num_to_predict = min(max_predictions_per_seq,
                       max(1, int(round(len(tokens) * masked_lm_prob))))
  masked = []
  covered = set()
  for group in candidate_groups:
    if len(masked) >= num_to_predict:
      break
    # A whole word that would overshoot the budget is skipped, not cut.
    if len(masked) + len(group) > num_to_predict:
      continue
    if any(index in covered for index in group):
      continue
    for index in group:
      covered.add(index)
      if rng.random() < 0.8:
        replacement = tokenization.MASK_TOKEN
      elif rng.random() < 0.5:
        replacement = tokens[index]
      else:
        replacement = vocab_words[rng.randint(0, len(vocab_words) - 1)]
      output_tokens[index] = replacement
      masked.append(MaskedLmInstance(index=index, label=tokens[index]))
  masked.sort(key=lambda m: m.index)
  return (output_tokens, [m.index for m in masked], [m.label for m in masked])


def instance_fields(instance, tokenizer, max_seq_length,
                    max_predictions_per_seq):
  """The seven pretraining features of one instance, zero-padded."""
  input_ids = tokenizer.convert_tokens_to_ids(instance.tokens)
  input_mask = [1] * len(input_ids)
  segment_ids = list(instance.segment_ids)
  padding = [0] * (max_seq_length - len(input_ids))
  input_ids += padding
  input_mask += padding
  segment_ids += padding

  positions = list(instance.masked_lm_positions)
  label_ids = tokenizer.convert_tokens_to_ids(instance.masked_lm_labels)
  weights = [1.0] * len(label_ids)
  prediction_padding = max_predictions_per_seq - len(positions)
  positions += [0] * prediction_padding
  label_ids += [0] * prediction_padding
  weights += [0.0] * prediction_padding

  fields = collections.OrderedDict()
  fields["input_ids"] = input_ids
  fields["input_mask"] = input_mask
  fields["segment_ids"] = segment_ids
  fields["masked_lm_positions"] = positions
  fields["masked_lm_ids"] = label_ids
  fields["masked_lm_weights"] = weights
  fields["next_sentence_labels"] = [1 if instance.is_random_next else 0]
  return fields


def write_instance_to_example_files(instances, tokenizer, max_seq_length,
                                    max_predictions_per_seq, output_files):
  """Writes instances round-robin over output_files; returns the count.

  Each file appears only once all of them are complete.
  """
  writers = [feature_records.RecordWriter(
      f, FLOAT_FEATURES) for f in output_files]
  progress = console.Progress("Writing", len(instances), unit="instance")
  try:
    for index, instance in enumerate(instances):
      writers[index % len(writers)].write(instance_fields(
          instance, tokenizer, max_seq_length, max_predictions_per_seq))
      progress.update(index + 1)
      if index < 5:
        tf.logging.info("*** Example ***")
        tf.logging.info("tokens: %s", " ".join(
            tokenization.printable_text(t) for t in instance.tokens))
        tf.logging.info("masked_lm_positions: %s",
                        instance.masked_lm_positions)
        tf.logging.info("next_sentence_labels: %d",
                        1 if instance.is_random_next else 0)
  except BaseException:
    for writer in writers:
      writer.discard()
    raise
  for writer in writers:
    writer.close()
  return len(instances)
