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
is broken alphabetically.  The algorithm is tokenization.build_wordpiece_vocab.

  python3 build_vocab.py --input_file='corpus/*.txt' --output_file=vocab.txt \
    --vocab_size=1000 --do_lower_case
"""

# First: it imports TensorFlow without its import-time noise (console.py).
import console  # pylint: disable=g-bad-import-order

import os

import tensorflow.compat.v1 as tf

import common_flags
import file_checks
import pretraining_data
import run_utils
import tokenization

FLAGS = tf.flags.FLAGS


def define_flags():
  """The script's flags: the shared ones (common_flags) and its own."""
  common_flags.define_input_file_flag()
  common_flags.define_output_file_flag()
  common_flags.define_lower_case_flag()
  tf.flags.DEFINE_integer(
      "vocab_size", 1000,
      "Maximum number of entries, special tokens included.  Keep it at most "
      "the vocab_size of the model's bert_config.json.")
  # --helpshort lists the shared flags with the script's own.
  tf.flags.adopt_module_key_flags(common_flags)


def _read_lines(input_files):
  """Yields every line of every file."""
  for input_file in input_files:
    for _, line in file_checks.text_lines(input_file):
      yield line


def validate_flags():
  """Checks the flags; every problem is reported, then the run exits.

  Returns:
    The input files.
  """
  problems = run_utils.FlagProblems("build_vocab.py")
  problems.require_flags(FLAGS, "input_file", "output_file")
  problems.check(FLAGS.vocab_size > len(tokenization.SPECIAL_TOKENS),
                 "--vocab_size=%d must be larger than the %d special tokens."
                 % (FLAGS.vocab_size, len(tokenization.SPECIAL_TOKENS)))
  input_files = None
  if FLAGS.input_file:
    input_files = problems.call(pretraining_data.expand_input_patterns,
                                FLAGS.input_file)
  output_dir = os.path.dirname(FLAGS.output_file or "")
  problems.check(not output_dir or tf.gfile.IsDirectory(output_dir),
                 "--output_file=%s: directory %s does not exist." %
                 (FLAGS.output_file, output_dir))
  problems.exit_if_any()
  return input_files


def main(_):
  console.setup()
  input_files = validate_flags()
  tf.logging.info("Counting words in %d file(s)", len(input_files))
  with run_utils.one_line_errors("build_vocab.py"):
    vocab = tokenization.build_wordpiece_vocab(
        _read_lines(input_files), FLAGS.vocab_size, FLAGS.do_lower_case)
  with tf.gfile.GFile(FLAGS.output_file, "w") as writer:
    for token in vocab:
      writer.write(token + "\n")
  tf.logging.info("Wrote %d tokens to %s", len(vocab), FLAGS.output_file)
  if len(vocab) < FLAGS.vocab_size:
    tf.logging.info("The input has fewer candidates than --vocab_size=%d",
                    FLAGS.vocab_size)


if __name__ == "__main__":
  define_flags()
  tf.app.run()
