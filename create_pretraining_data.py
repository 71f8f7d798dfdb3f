"""Text to pretraining TFRecords (BERT's masked-LM + next-sentence data).

Input: plain text, one sentence per line, documents separated by blank lines.
Output: tf.train.Examples with input_ids, input_mask, segment_ids,
masked_lm_positions, masked_lm_ids, masked_lm_weights and
next_sentence_labels (0 = B follows A, 1 = B is random), the features
pretraining_data.py reads.
"""

# First: it imports TensorFlow without its import-time noise (console.py).
import console  # pylint: disable=g-bad-import-order

import os
import random

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
  common_flags.define_tokenizer_flags()
  common_flags.define_max_seq_length_flag(128)
  common_flags.define_max_predictions_flag()
  common_flags.define_random_seed_flag(12345)
  common_flags.define_dupe_factor_flag(10)
  flags = tf.flags
  flags.DEFINE_bool(
      "do_whole_word_mask", False,
      "Whether to mask all of the word pieces of a word together.")
  flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.")
  flags.DEFINE_float(
      "short_seq_prob", 0.1,
      "Probability of creating sequences shorter than the maximum length.")
  # --helpshort lists the shared flags with the script's own.
  tf.flags.adopt_module_key_flags(common_flags)


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
  problems.check(FLAGS.max_seq_length > pretraining_data.NUM_SPECIAL_POSITIONS + 1,
                 "--max_seq_length must be > %d, got %d" %
                 (pretraining_data.NUM_SPECIAL_POSITIONS + 1, FLAGS.max_seq_length))
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
    instances, num_documents = pretraining_data.create_training_instances(
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
    num_written = pretraining_data.write_instance_to_example_files(
        instances, tokenizer, FLAGS.max_seq_length,
        FLAGS.max_predictions_per_seq, output_files)
    tf.logging.info("Read %d documents; wrote %d instances to %d file(s).",
                    num_documents, num_written, len(output_files))
    print("documents: %d  instances: %d  files: %d" %
          (num_documents, num_written, len(output_files)))


if __name__ == "__main__":
  define_flags()
  tf.app.run()
