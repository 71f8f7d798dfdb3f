"""Text to pretraining TFRecords (BERT's masked-LM + next-sentence data).

Input: plain text, one sentence per line, documents separated by blank lines.
Output: tf.train.Examples with input_ids, input_mask, segment_ids,
masked_lm_positions, masked_lm_ids, masked_lm_weights and
next_sentence_labels (0 = B follows A, 1 = B is random), the features
pretraining_data.py reads.
"""

# First: it imports TensorFlow without its import-time noise (console.py).
import console  # pylint: disable=g-bad-import-order

import collections
import os
import random

import tensorflow.compat.v1 as tf

import feature_records
import file_checks
import pretraining_data
import run_utils
import tokenization

flags = tf.flags

FLAGS = flags.FLAGS

flags.DEFINE_string("input_file", None,
                    "Input raw text file (or comma-separated list of files / "
                    "globs).")

flags.DEFINE_string("output_file", None,
                    "Output TFRecord file (or comma-separated list of files).")

flags.DEFINE_string("vocab_file", None,
                    "The WordPiece vocabulary file the model was trained on.")

flags.DEFINE_string("spm_model_file", None,
                    "A SentencePiece model file, used instead of vocab_file.")

flags.DEFINE_bool("do_lower_case", True,
                  "Whether to lower case the input text.")

flags.DEFINE_bool("do_whole_word_mask", False,
                  "Whether to mask all of the word pieces of a word together.")

flags.DEFINE_integer("max_seq_length", 128, "Maximum sequence length.")

flags.DEFINE_integer("max_predictions_per_seq", 20,
                     "Maximum number of masked LM predictions per sequence.")

flags.DEFINE_integer("random_seed", 12345, "Random seed for data generation.")

flags.DEFINE_integer("dupe_factor", 10,
                     "Number of times to duplicate the input data (with "
                     "different masks).")

flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.")

flags.DEFINE_float("short_seq_prob", 0.1,
                   "Probability of creating sequences shorter than the "
                   "maximum length.")

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
      f, pretraining_data.FLOAT_FEATURES) for f in output_files]
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


def validate_flags():
  """Checks flags before reading any data; exits with every problem.

  Returns:
    (input_files, tokenizer).
  """
  problems = run_utils.FlagProblems("create_pretraining_data.py")
  for name in ("input_file", "output_file"):
    problems.check(getattr(FLAGS, name), "--%s is required" % name)
  problems.check(bool(FLAGS.vocab_file) != bool(FLAGS.spm_model_file),
                 "exactly one of --vocab_file and --spm_model_file is "
                 "required")
  problems.check(FLAGS.max_seq_length > NUM_SPECIAL_POSITIONS + 1,
                 "--max_seq_length must be > %d, got %d" %
                 (NUM_SPECIAL_POSITIONS + 1, FLAGS.max_seq_length))
  problems.check(FLAGS.max_predictions_per_seq >= 1,
                 "--max_predictions_per_seq must be >= 1")
  problems.check(0.0 < FLAGS.masked_lm_prob < 1.0,
                 "--masked_lm_prob must be in (0, 1), got %g" %
                 FLAGS.masked_lm_prob)
  problems.check(0.0 <= FLAGS.short_seq_prob <= 1.0,
                 "--short_seq_prob must be in [0, 1]")
  problems.check(FLAGS.dupe_factor >= 1, "--dupe_factor must be >= 1")
  input_files = None
  if FLAGS.input_file:
    input_files = problems.call(pretraining_data.expand_input_patterns,
                                FLAGS.input_file)
  for output_file in (FLAGS.output_file or "").split(","):
    if output_file.strip():
      problems.call(file_checks.check_writable_dir,
                    os.path.dirname(os.path.abspath(output_file.strip())),
                    "output_file")
  problems.exit_if_any()
  tokenizer = problems.tokenizer(FLAGS, vocab_size=None)
  if tokenizer is not None:
    problems.call(check_special_tokens, tokenizer)
  problems.exit_if_any()
  return input_files, tokenizer


def check_special_tokens(tokenizer):
  needed = (tokenization.CLS_TOKEN, tokenization.SEP_TOKEN,
            tokenization.MASK_TOKEN)
  missing = [t for t in needed if t not in tokenizer.vocab]
  if missing:
    raise ValueError("the vocabulary (%s) lacks %s" % (
        FLAGS.vocab_file or FLAGS.spm_model_file, ", ".join(missing)))


def main(_):
  console.setup()
  input_files, tokenizer = validate_flags()
  # Undecodable or unreadable input ends the run with one line.
  with run_utils.one_line_errors("create_pretraining_data.py"):
    tf.logging.info("*** Reading from input files ***")
    for input_file in input_files:
      tf.logging.info("  %s", input_file)
    rng = random.Random(FLAGS.random_seed)
    instances, num_documents = create_training_instances(
        input_files, tokenizer, FLAGS.max_seq_length, FLAGS.dupe_factor,
        FLAGS.short_seq_prob, FLAGS.masked_lm_prob,
        FLAGS.max_predictions_per_seq, rng, FLAGS.do_whole_word_mask,
        word_start_marker=u"\u2581" if FLAGS.spm_model_file else None)
    if num_documents < 2:
      tf.logging.warning("only %d document(s): every next_sentence_label is 0",
                         num_documents)

    output_files = [f.strip() for f in FLAGS.output_file.split(",")
                    if f.strip()]
    tf.logging.info("*** Writing to output files ***")
    for output_file in output_files:
      tf.logging.info("  %s", output_file)
    num_written = write_instance_to_example_files(
        instances, tokenizer, FLAGS.max_seq_length,
        FLAGS.max_predictions_per_seq, output_files)
    tf.logging.info("Read %d documents; wrote %d instances to %d file(s).",
                    num_documents, num_written, len(output_files))
    print("documents: %d  instances: %d  files: %d" %
          (num_documents, num_written, len(output_files)))


if __name__ == "__main__":
  tf.app.run()
