"""What the run_* scripts share besides their flags.

* `FlagProblems`: a script's flag validation collects every problem before
  any graph is built; they are reported together, one line each, and the
  process ends with exit status 1 and no traceback.
* `one_line_errors`: a ValueError raised later (a malformed data file, an
  export this runtime cannot do), a training run whose loss became NaN, or
  a full disk, ends the run the same way.
* `train_steps`: epochs to steps, as BERT counts them.
* `write_eval_results`: `eval_results.txt` ("key = value" lines, where the
  published scripts wrote them) and the same numbers as `eval_results.json`,
  the file the demo and the tests read.
"""

import collections
import contextlib
import errno
import json
import os
import sys

import tensorflow.compat.v1 as tf

import checkpoints
import directory_lock
import file_checks
import modeling
import tokenization

EVAL_RESULTS_TEXT = "eval_results.txt"
EVAL_RESULTS_JSON = "eval_results.json"


class FlagProblems(object):
  """Problems with a script's flags, each one line naming the flag.

  Independent checks all run, so a user fixes every flag in one go.  Checks
  that read the files the flags name (checkpoints, TF-Lite models,
  vocabularies) come after a first `exit_if_any()`, once those flags are
  sound.
  """

  def __init__(self, script_name):
    self.script_name = script_name
    self.messages = []

  def add(self, message):
    self.messages.append(file_checks.first_line(message))

  def check(self, condition, message):
    """Adds `message` unless `condition` holds; returns `condition`."""
    if not condition:
      self.add(message)
    return bool(condition)

  def call(self, function, *args, **kwargs):
    """Runs a check that raises ValueError; returns its result or None.

    A keyword `prefix` (e.g. "--init_checkpoint: ") is put before the
    error's message.
    """
    prefix = kwargs.pop("prefix", "")
    try:
      return function(*args, **kwargs)
    except ValueError as error:
      self.add(prefix + str(error))
      return None

  def passes(self, function, *args, **kwargs):
    """`call`, returning whether the check passed (no problem added)."""
    known = len(self.messages)
    self.call(function, *args, **kwargs)
    return len(self.messages) == known

  def require_file(self, flag_name, path, needed_for):
    """--flag_name must be set and name an existing file or directory."""
    if not path:
      self.add("--%s is required for %s." % (flag_name, needed_for))
    elif not tf.gfile.Exists(path):
      self.add("--%s=%s does not exist." % (flag_name, path))

  def require_flags(self, flags_values, *flag_names):
    """Each named flag must be set."""
    for name in flag_names:
      self.check(getattr(flags_values, name), "--%s is required." % name)

  def load_config(self, flag_name, path):
    """The BertConfig in --flag_name=path, or None with the problem added.

    An unset flag gives None silently: `require_flags` reports it.
    """
    if not path:
      return None
    return self.call(modeling.BertConfig.from_json_file, path,
                     prefix="--%s: " % flag_name)

  def config_fits(self, bert_config, flags_values):
    """--max_seq_length fits `bert_config`; a QAT run's config quantizes.

    flags_values needs bert_config_file, max_seq_length and
    use_quantized_training.
    """
    self.check(
        flags_values.max_seq_length <= bert_config.max_position_embeddings,
        "--max_seq_length=%d exceeds max_position_embeddings=%d of "
        "--bert_config_file=%s." %
        (flags_values.max_seq_length, bert_config.max_position_embeddings,
         flags_values.bert_config_file))
    if flags_values.use_quantized_training:
      self.call(modeling.check_quantizable, bert_config,
                prefix="--use_quantized_training with "
                "--bert_config_file=%s: " % flags_values.bert_config_file)

  def tokenizer(self, flags_values, vocab_size):
    """The tokenizer of --vocab_file / --spm_model_file, or None.

    flags_values needs vocab_file, spm_model_file and do_lower_case; a
    vocabulary larger than `vocab_size` (the config's) is a problem.
    """
    flag_name = "vocab_file" if flags_values.vocab_file else "spm_model_file"
    return self.call(tokenization.create_tokenizer,
                     vocab_file=flags_values.vocab_file,
                     spm_model_file=flags_values.spm_model_file,
                     do_lower_case=flags_values.do_lower_case,
                     vocab_size=vocab_size,
                     prefix="--%s=%s: " % (flag_name,
                                           getattr(flags_values, flag_name)))

  def restored_checkpoints_fit(self, bert_config, init_checkpoint,
                               output_dir):
    """Checks every checkpoint a fine-tuning run restores, once each.

    They are --init_checkpoint (where training starts) and the latest
    checkpoint in --output_dir (where training resumes, and what prediction
    and export read), often the same file; each must be whole and fit
    `bert_config` (checkpoints.check_checkpoint).  --output_dir is taken for
    this run first (take_output_dir), then its damaged newest checkpoints
    are set aside (checkpoints.set_aside_damaged): the run resumes from the
    newest intact one.

    Returns:
      checkpoints.checkpoint_to_use(output_dir, init_checkpoint), or None.
    """
    if not (self.take_output_dir(output_dir) and
            self.passes(checkpoints.set_aside_damaged, output_dir,
                        prefix="--output_dir: ")):
      return None
    restored = collections.OrderedDict()
    if init_checkpoint:
      prefix = self.call(checkpoints.resolve_checkpoint_path, init_checkpoint,
                         prefix="--init_checkpoint: ")
      if prefix:
        restored[prefix] = "--init_checkpoint"
    latest = checkpoints.latest_checkpoint(output_dir)
    if latest:
      restored.setdefault(latest, "--output_dir")
    for checkpoint, flag in restored.items():
      self.call(checkpoints.check_checkpoint, checkpoint, bert_config,
                prefix=flag + ": ")
    return latest or next(iter(restored), None)

  def quantization_ranges_trained(self, use_quantized_training, checkpoint):
    """A QAT graph used without --do_train must find trained ranges.

    Call when the run predicts, evaluates or exports with the TensorFlow
    graph and does not train first; `checkpoint` is what it restores
    (restored_checkpoints_fit's result).
    """
    if use_quantized_training and checkpoint:
      self.call(checkpoints.check_quantization_ranges, checkpoint,
                prefix="--use_quantized_training without --do_train: ")

  def take_output_dir(self, output_dir):
    """Takes an existing --output_dir for this run (directory_lock).

    Done before its checkpoints are read or set aside, since another live
    run may be writing them.  A directory that does not exist yet is taken
    when the run creates it.

    Returns:
      False if another run holds it (the problem is added).
    """
    if not output_dir or not tf.gfile.IsDirectory(output_dir):
      return True
    return self.passes(directory_lock.acquire, output_dir)

  def positive(self, flags_values, *flag_names):
    """Each named integer flag must be > 0."""
    for name in flag_names:
      value = getattr(flags_values, name)
      self.check(value > 0, "--%s must be positive, got %r." % (name, value))

  def exit_if_any(self):
    """Prints every problem to stderr, then exits with status 1."""
    if self.messages:
      sys.exit("\n".join("%s: %s" % (self.script_name, message)
                         for message in self.messages))


@contextlib.contextmanager
def one_line_errors(script_name):
  """A ValueError inside the block ends the process with one line, status 1.

  So do a diverged training run (the estimator's NaN-loss check) and a full
  disk (writes land whole or not at all, so nothing before is lost).  The
  message goes to stderr as "script_name: message"; files written before the
  error stay as they are, checkpoints included.
  """
  try:
    yield
  except ValueError as error:
    sys.exit("%s: %s" % (script_name, error))
  except tf.train.NanLossDuringTrainingError:
    sys.exit("%s: training diverged: the loss became NaN.  Checkpoints saved "
             "before it are kept; a lower --learning_rate (or more warm-up) "
             "usually avoids it." % script_name)
  except (OSError, tf.errors.OpError) as error:
    disk_full = _disk_full_line(error)
    if disk_full is None:
      raise
    sys.exit("%s: the disk is full (%s). What was written before is kept "
             "whole: the last complete checkpoint, earlier exports and "
             "feature caches. Free some space and run the same command "
             "again; training resumes from its last checkpoint." %
             (script_name, disk_full))


def _disk_full_line(error):
  """The line of `error` that says the disk is full, or None if it does not.

  Python says it with errno ENOSPC; TensorFlow's file writers raise an
  OpError (ResourceExhausted, or Unknown from some file systems) whose
  message has the C library's words and the file, often under a line of
  its own ("Graph execution error:").
  """
  if isinstance(error, OSError) and error.errno == errno.ENOSPC:
    return file_checks.first_line(error)
  text = str(getattr(error, "message", None) or error)
  for line in text.splitlines():
    if os.strerror(errno.ENOSPC) in line:
      return line.strip()
  return None


def train_steps(num_examples, batch_size, num_epochs, warmup_proportion,
                unit="examples"):
  """(num_train_steps, num_warmup_steps) for `num_epochs` over the data.

  As in BERT, steps = int(num_examples / batch_size * num_epochs), so that
  published epoch counts keep their meaning (SQuAD counts questions, not
  the windows they are split into).

  Raises:
    ValueError: the run would take no step.
  """
  num_train_steps = int(num_examples / batch_size * num_epochs)
  if num_train_steps < 1:
    raise ValueError(
        "No training step: %d %s / --train_batch_size=%d * "
        "--num_train_epochs=%g is below 1." %
        (num_examples, unit, batch_size, num_epochs))
  return num_train_steps, int(num_train_steps * warmup_proportion)


def write_eval_results(output_dir, results, title="Eval results"):
  """Writes `results` to eval_results.txt and eval_results.json, and logs it.

  Args:
    output_dir: the run's --output_dir.
    results: dict name -> number (numpy scalars are converted).
    title: the log heading.

  Returns:
    The path of the JSON file.
  """
  plain = {key: (value.item() if hasattr(value, "item") else value)
           for key, value in results.items()}
  tf.logging.info("***** %s *****", title)
  with tf.gfile.GFile(os.path.join(output_dir, EVAL_RESULTS_TEXT),
                      "w") as writer:
    for key in sorted(plain):
      tf.logging.info("  %s = %s", key, plain[key])
      writer.write("%s = %s\n" % (key, plain[key]))
  json_path = os.path.join(output_dir, EVAL_RESULTS_JSON)
  with tf.gfile.GFile(json_path, "w") as writer:
    writer.write(json.dumps(plain, indent=2, sort_keys=True) + "\n")
  return json_path
