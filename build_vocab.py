# coding=utf-8
"""Builds a WordPiece vocab.txt from plain-text files.

For demos and small experiments that have no BERT vocabulary at hand (the
released MobileBERT checkpoint ships BERT's 30522-entry uncased vocab.txt; use
that one to fine-tune it).  The vocabulary holds, in this order:

  1. the special tokens [PAD] [UNK] [CLS] [SEP] [MASK] (ids 0..4).  BERT's
     uncased vocab puts them at [PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102,
     [MASK]=103; no code here depends on the ids, only on the tokens existing;
  2. every character seen, then the "##" form of every character seen, so
     that any word of the corpus can be segmented without [UNK];
  3. the most frequent whole words and word-final pieces ("##ing"), ranked by
     how many corpus tokens contain them, until --vocab_size entries.

Text is pre-tokenized with BERT's BasicTokenizer, with the same
--do_lower_case the model will use.  The result is deterministic: every tie
is broken alphabetically.

  python3 build_vocab.py --input_file='corpus/*.txt' --output_file=vocab.txt \
    --vocab_size=1000 --do_lower_case
"""

import collections
import os

import tensorflow.compat.v1 as tf

import tokenization

flags = tf.flags
FLAGS = flags.FLAGS

flags.DEFINE_string(
    "input_file", None,
    "Plain-text input: a file, a glob, or several separated by commas.")

flags.DEFINE_string("output_file", None, "Where to write the vocab.txt.")

flags.DEFINE_integer(
    "vocab_size", 1000,
    "Maximum number of entries, special tokens included.  Keep it at most "
    "the vocab_size of the model's bert_config.json.")

flags.DEFINE_bool(
    "do_lower_case", True,
    "Lower-case and strip accents before counting; must match the "
    "--do_lower_case used when tokenizing with this vocab.")

# A word-final piece is only worth an entry if it ends several different
# words; otherwise the tails of one frequent word ("##ecause", "##cause", ...)
# would crowd out productive suffixes.
_MIN_WORDS_PER_SUFFIX = 2


def _rank(counts):
  """Keys of `counts`, most frequent first, ties in alphabetical order."""
  return sorted(counts, key=lambda token: (-counts[token], token))


def build_wordpiece_vocab(texts, vocab_size, do_lower_case=True):
  """Builds a WordPiece vocabulary covering every character of `texts`.

  Args:
    texts: an iterable of strings (lines or documents).
    vocab_size: maximum number of entries, special tokens included.
    do_lower_case: pre-tokenize with BasicTokenizer(do_lower_case).

  Returns:
    The list of tokens; a token's id is its index.  It is shorter than
    vocab_size when the texts have fewer candidates.

  Raises:
    ValueError: the texts have no words, or vocab_size cannot hold the
      special tokens plus every character and its "##" form.
  """
  basic_tokenizer = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
  word_counts = collections.Counter()
  for text in texts:
    word_counts.update(basic_tokenizer.tokenize(text))
  if not word_counts:
    raise ValueError("The input texts contain no words to build a vocab from.")

  char_counts = collections.Counter()
  for word, count in word_counts.items():
    for char in word:
      char_counts[char] += count
  chars = _rank(char_counts)
  vocab = list(tokenization.SPECIAL_TOKENS)
  vocab.extend(chars)
  vocab.extend("##" + char for char in chars)
  if vocab_size < len(vocab):
    raise ValueError(
        "vocab_size=%d is too small: the %d special tokens and the %d distinct "
        "characters of the input (each also as a \"##\" piece) need %d "
        "entries." % (vocab_size, len(tokenization.SPECIAL_TOKENS),
                      len(chars), len(vocab)))

  piece_counts = collections.Counter()
  words_per_suffix = collections.Counter()
  for word, count in word_counts.items():
    if len(word) < 2:
      continue
    piece_counts[word] += count
    for start in range(1, len(word) - 1):
      suffix = "##" + word[start:]
      piece_counts[suffix] += count
      words_per_suffix[suffix] += 1
  candidates = [
      piece for piece in _rank(piece_counts)
      if not piece.startswith("##") or
      words_per_suffix[piece] >= _MIN_WORDS_PER_SUFFIX
  ]
  vocab.extend(candidates[:vocab_size - len(vocab)])
  return vocab


def _read_lines(input_files):
  """Yields every line of every file."""
  for input_file in input_files:
    with tf.gfile.GFile(input_file, "r") as reader:
      for line in reader:
        yield tokenization.convert_to_unicode(line)


def main(_):
  tf.logging.set_verbosity(tf.logging.INFO)

  if FLAGS.vocab_size <= len(tokenization.SPECIAL_TOKENS):
    raise ValueError(
        "--vocab_size=%d must be larger than the %d special tokens."
        % (FLAGS.vocab_size, len(tokenization.SPECIAL_TOKENS)))
  input_files = []
  for pattern in FLAGS.input_file.split(","):
    if pattern:
      input_files.extend(sorted(tf.gfile.Glob(pattern)))
  if not input_files:
    raise ValueError("--input_file=%s matches no file." % FLAGS.input_file)
  output_dir = os.path.dirname(FLAGS.output_file)
  if output_dir and not tf.gfile.IsDirectory(output_dir):
    raise ValueError("--output_file=%s: directory %s does not exist."
                     % (FLAGS.output_file, output_dir))

  tf.logging.info("Counting words in %d file(s)", len(input_files))
  vocab = build_wordpiece_vocab(
      _read_lines(input_files), FLAGS.vocab_size, FLAGS.do_lower_case)
  with tf.gfile.GFile(FLAGS.output_file, "w") as writer:
    for token in vocab:
      writer.write(token + "\n")
  tf.logging.info("Wrote %d tokens to %s", len(vocab), FLAGS.output_file)
  if len(vocab) < FLAGS.vocab_size:
    tf.logging.info("The input has fewer candidates than --vocab_size=%d",
                    FLAGS.vocab_size)


if __name__ == "__main__":
  flags.mark_flag_as_required("input_file")
  flags.mark_flag_as_required("output_file")
  tf.app.run()
