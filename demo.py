"""The whole MobileBERT pipeline at tiny scale on a CPU: `make demo`.

Stages, each in its own directory under --output_dir:

  data     English text shipped with Python -> one-sentence-per-line corpus,
           a vocab.txt made from it (build_vocab.py), pretraining TFRecords
           for training and a held-out evaluation (create_pretraining_data.py),
           and a generated SQuAD v1.1 question set (demo_data.py).
  teacher  an IB-BERT-style teacher (config/tiny_teacher.json) pretrained with
           masked-LM + next-sentence prediction (run_pretraining.py).
  scratch  the student (config/tiny_mobilebert.json) pretrained the same way,
           without a teacher, for as many steps as the distillation takes:
           the baseline the distilled student has to beat.
  distill  layer-wise knowledge transfer from the teacher into the student
           (phase 1), then pretraining distillation (phase 2).
  squad    the distilled student fine-tuned on the generated questions,
           EM/F1 on the held-out questions (run_squad.py), export to float,
           dynamic-range and calibrated int8 TF-Lite (integer-only, and its
           float-softmax twin for x86), and EM/F1 of each .tflite file
           through run_squad.py --lite_model_path, with the share of
           questions a quantized file answers as the float file does.
  qat      quantization-aware fine-tuning (config/tiny_mobilebert_qat.json)
           from the distilled student, export to float and integer-only
           TF-Lite (model_qat_int8.tflite and its float-softmax twin),
           evaluated the same way.

Every script is called with flags; each command is printed before it runs,
ready to copy (run it from the repository root), and its output streams to
the console and to a log beside the stage's results.  A stage is finished
when its stage_done.json exists; a re-run reuses finished stages whose
settings (flags and configs) are unchanged and whose inputs were not rebuilt,
and restarts any other stage from an empty directory.  The closing table
lists each stage's wall time and results.

  python3 demo.py --output_dir=demo_out
  python3 demo.py --output_dir=demo_out --quick   # every stage at its smallest
"""

import collections
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

# The stage commands get the caller's TensorFlow log level; this process only
# reads records and event files, so its import-time C++ lines (CUDA factory
# registration on CPU builds) are kept off the console.
_STAGE_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"

import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

import atomic_files
import checkpoints
import common_flags
import console
import demo_data
import distill_modeling
import export_tflite
import layer_schedule
import modeling
import pretraining_model
import run_utils

FLAGS = tf.flags.FLAGS


def define_flags():
  """The script's flags: the shared ones (common_flags) and its own."""
  common_flags.define_output_dir_flag("demo_out")
  common_flags.define_max_seq_length_flag(128)
  common_flags.define_max_predictions_flag()
  common_flags.define_dupe_factor_flag(5)
  flags = tf.flags
  flags.DEFINE_string(
      "python", sys.executable,
      "The Python interpreter that runs the stage scripts.")
  flags.DEFINE_integer(
      "seed", 12345,
      "Seed of the pretraining data (masking, sentence pairs), of the "
      "generated questions and of every training run.")
  flags.DEFINE_integer("pretrain_batch_size", 16,
                       "Batch size of every pretraining run.")
  flags.DEFINE_integer("teacher_steps", 800, "Teacher pretraining steps.")
  flags.DEFINE_float("teacher_learning_rate", 1e-2,
                     "Peak LAMB learning rate of the teacher.")
  flags.DEFINE_integer(
      "transfer_steps", 200,
      "Phase 1 (layer-wise knowledge transfer) steps, split evenly over the "
      "student's layers.")
  flags.DEFINE_integer("distill_steps", 300,
                       "Phase 2 (pretraining distillation) steps.")
  flags.DEFINE_float("distill_learning_rate", 1e-2,
                     "LAMB learning rate of both distillation phases.")
  flags.DEFINE_float(
      "scratch_learning_rate", 1e-2,
      "Peak LAMB learning rate of the student trained from scratch for "
      "transfer_steps + distill_steps steps.")
  flags.DEFINE_integer("squad_train_questions", 1500,
                       "Generated training questions.")
  flags.DEFINE_integer("squad_dev_questions", 150,
                       "Generated held-out questions.")
  flags.DEFINE_integer("squad_batch_size", 32, "SQuAD fine-tuning batch size.")
  flags.DEFINE_float("squad_epochs", 3.0, "Float SQuAD fine-tuning epochs.")
  flags.DEFINE_float("squad_learning_rate", 1e-3,
                     "Peak AdamW learning rate of SQuAD fine-tuning.")
  flags.DEFINE_float("qat_epochs", 2.0,
                     "Quantization-aware fine-tuning epochs.")
  flags.DEFINE_bool(
      "quick", False,
      "Every stage at its smallest: the settings in QUICK_SETTINGS for each "
      "of those flags not given on the command line, and the three configs "
      "cut to QUICK_CONFIG_CUT (one layer of one feed-forward network), "
      "written to <output_dir>/configs.  About two minutes; a check that "
      "the whole pipeline runs here (the tests run it), not a model worth "
      "evaluating.")
  # --helpshort lists the shared flags with the script's own.
  tf.flags.adopt_module_key_flags(common_flags)


REPO_DIR = os.path.dirname(os.path.abspath(__file__))
# The demo's models, by role; --quick writes cut copies of these files.
CONFIG_FILES = collections.OrderedDict([
    ("teacher", "config/tiny_teacher.json"),
    ("student", "config/tiny_mobilebert.json"),
    ("qat", "config/tiny_mobilebert_qat.json"),
])
# --quick: each flag's value unless the command line gives one, and the keys
# every config is cut to.  Graph size, not step count, sets a tiny run's time,
# hence one layer.  The one-layer teacher needs its 600 steps to get past
# predicting the commonest word (MLM accuracy 0.039 at 300 steps, 0.094 at
# 600); the student trained from scratch for 120 steps is still there, the
# distilled one is not.
QUICK_SETTINGS = collections.OrderedDict([
    ("teacher_steps", 600),
    ("transfer_steps", 40),
    ("distill_steps", 80),
    ("squad_train_questions", 200),
    ("squad_dev_questions", 30),
    ("squad_epochs", 2.0),
    ("qat_epochs", 1.0),
    ("dupe_factor", 1),
    ("max_seq_length", 64),
])
QUICK_CONFIG_CUT = {"num_hidden_layers": 1, "num_feedforward_networks": 1}
STAGE_DONE_FILE = "stage_done.json"
EVAL_BATCH_SIZE = 32
# The held-out pretraining data is small; more passes give it more masks.
EVAL_DUPE_FACTOR = 10
# README recipe: the four transfer-loss weights and the target mix.
DISTILL_FLAGS = (
    ("attention_distill_factor", 1),
    ("hidden_distill_factor", 100),
    ("beta_distill_factor", 5000),
    ("gamma_distill_factor", 5),
    ("distill_ground_truth_ratio", 0.5),
    ("distill_temperature", 1),
)
SQUAD_DOC_STRIDE = 64
SQUAD_MAX_QUERY_LENGTH = 32
# How often the stage commands log their progress lines (console.Progress),
# which the console's progress line is drawn from; every line goes to the log.
STAGE_PROGRESS_SECONDS = 2
# Lines of a failed command's log shown on the console.
FAILURE_TAIL_LINES = 25
# Without a terminal, a progress line is printed at most this often.
PROGRESS_INTERVAL_SECONDS = 15.0


class ProgressLine(object):
  """The console's one line about a running command, read from its output.

  Training shows step / total, loss, examples (or steps) per second and the
  time left; prediction shows the features done.  On a terminal the line is
  rewritten in place; otherwise it is printed every
  PROGRESS_INTERVAL_SECONDS.
  """

  def __init__(self, stream=None):
    self.stream = stream or sys.stdout
    self.interactive = self.stream.isatty()
    self.training = None  # The last training progress line's fields.
    self.work = None  # The last other phase's (prediction, TF-Lite ...).
    self._last_text = None
    self._last_print = 0.0

  def update(self, line):
    """Reads one output line; returns True if the progress changed."""
    fields = console.parse_progress(line)
    if fields is None:
      return False
    before = self.text()
    if fields["phase"] == "Training":
      self.training = fields
      if self.work and self.work["done"] >= self.work["total"]:
        self.work = None  # Finished before training started.
    else:
      self.work = fields
    return self.text() != before

  def text(self):
    """The progress line, or None before any progress was seen."""
    parts = []
    if self.training:
      training = self.training
      parts.append("step %d/%d" % (training["done"], training["total"]))
      if training["loss"] is not None:
        parts.append("loss %s" % training["loss"])
      if training["examples_per_second"] is not None:
        parts.append("%.0f examples/s" % training["examples_per_second"])
      elif training["rate"] is not None:
        parts.append("%.1f steps/s" % training["rate"])
      if training["left"]:
        parts.append("%s left" % training["left"])
    if self.work:
      parts.append("%s %d of %d" % (self.work["phase"], self.work["done"],
                                    self.work["total"]))
    return "  " + ", ".join(parts) if parts else None

  def show(self):
    text = self.text()
    if text is None or text == self._last_text:
      return
    if self.interactive:
      self.stream.write("\r\033[K" + text)
    elif time.time() - self._last_print >= PROGRESS_INTERVAL_SECONDS:
      self.stream.write(text + "\n")
      self._last_print = time.time()
    else:
      return
    self.stream.flush()
    self._last_text = text

  def finish(self):
    """Ends the line, showing the last progress once more."""
    text = self.text()
    if self.interactive and self._last_text is not None:
      self.stream.write("\n")
    elif not self.interactive and text is not None and text != self._last_text:
      self.stream.write(text + "\n")
    self.stream.flush()


class DemoError(Exception):
  """A stage cannot continue; the message says why and where to look."""


Stage = collections.namedtuple(
    "Stage", ["name", "title", "run", "settings", "inputs"])


class StageContext(object):
  """Paths and helpers shared by the stage functions.

  `configs` maps each role of CONFIG_FILES to its BertConfig, and
  `config_files` to the file the stage commands name.
  """

  def __init__(self, output_dir, configs, config_files):
    self.output_dir = output_dir
    self.configs = configs
    self.config_files = config_files

  def stage_dir(self, name):
    return os.path.join(self.output_dir, name)

  def data_file(self, name):
    return os.path.join(self.stage_dir("data"), name)


def display_path(path):
  """`path` relative to the repository root when inside it, else absolute."""
  path = os.path.abspath(path)
  relative = os.path.relpath(path, REPO_DIR)
  return path if relative.startswith(os.pardir) else relative


def format_command(args):
  """A copyable shell command, one flag per line."""
  quoted = [shlex.quote(arg) for arg in args]
  head = " ".join(quoted[:2])
  return " \\\n    ".join([head] + quoted[2:])


SEEDED_SCRIPTS = ("run_pretraining.py", "run_squad.py")


def script_command(script, flag_values):
  """The argument list running `script` with `--name=value` flags.

  Args:
    script: a script in the repository root, e.g. "run_squad.py".
    flag_values: sequence of (name, value); True gives `--name`.

  Returns:
    A list of strings for subprocess.
  """
  if not os.path.exists(os.path.join(REPO_DIR, script)):
    raise DemoError("%s is missing from %s." % (script, REPO_DIR))
  args = [display_path(FLAGS.python), script]
  if script in SEEDED_SCRIPTS:
    # Seeded so that the distilled-versus-scratch comparison does not hinge
    # on a lucky or unlucky initialisation.
    flag_values = list(flag_values) + [("random_seed", FLAGS.seed)]
  for name, value in flag_values:
    if value is True:
      args.append("--%s" % name)
    else:
      args.append("--%s=%s" % (name, value))
  return args


def run_command(args, log_path):
  """Runs `args` from the repository root, its output going to `log_path`.

  The console gets the command, a live progress line and, if the command
  fails, the last FAILURE_TAIL_LINES lines of its output.

  Args:
    args: the command, as built by script_command.
    log_path: every output line is appended here.

  Raises:
    DemoError: the command failed; names the log.
  """
  print("\n$ " + format_command(args), flush=True)
  print("  output: %s" % display_path(log_path), flush=True)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL=_STAGE_LOG_LEVEL,
             MOBILEBERT_PROGRESS_SECONDS=str(STAGE_PROGRESS_SECONDS))
  env["PYTHONUNBUFFERED"] = "1"
  # TF 1.15's TF-Lite converter runs a program installed beside python.
  env["PATH"] = os.pathsep.join(
      [os.path.dirname(os.path.abspath(FLAGS.python)), env.get("PATH", "")])
  start = time.time()
  progress = ProgressLine()
  tail = collections.deque(maxlen=FAILURE_TAIL_LINES)
  with open(log_path, "a") as log:
    log.write("$ %s\n" % format_command(args))
    process = subprocess.Popen(
        args, cwd=REPO_DIR, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, universal_newlines=True, bufsize=1)
    for line in process.stdout:
      log.write(line)
      tail.append(line.rstrip("\n"))
      if progress.update(line):
        progress.show()
    returncode = process.wait()
  progress.finish()
  if returncode:
    print("  last lines of its output:", flush=True)
    for line in tail:
      print("  | " + line)
    raise DemoError("%s exited with status %d after %.0f s; its output is in "
                    "%s." % (args[1], returncode, time.time() - start,
                             log_path))


def load_config(path):
  """A BertConfig from a path relative to the repository root."""
  return modeling.BertConfig.from_json_file(os.path.join(REPO_DIR, path))


def demo_configs():
  """Role -> the BertConfig the demo trains: CONFIG_FILES, cut by --quick."""
  configs = collections.OrderedDict()
  for role, path in CONFIG_FILES.items():
    if FLAGS.quick:
      configs[role] = modeling.BertConfig.from_dict(
          dict(read_json(os.path.join(REPO_DIR, path)), **QUICK_CONFIG_CUT),
          source="%s cut by --quick" % path)
    else:
      configs[role] = load_config(path)
  return configs


def write_config_files(configs, output_dir):
  """Role -> the config file the stage commands name.

  The shipped files, or under --quick the cut configs written whole to
  <output_dir>/configs.
  """
  if not FLAGS.quick:
    return collections.OrderedDict(CONFIG_FILES)
  paths = collections.OrderedDict()
  for role, config in configs.items():
    path = os.path.join(output_dir, "configs",
                        os.path.basename(CONFIG_FILES[role]))
    with open(atomic_files.partial_path(path), "w") as writer:
      writer.write(config.to_json_string())
    atomic_files.commit_partial(path)
    paths[role] = display_path(path)
  return paths


def latest_checkpoint(model_dir):
  """The newest checkpoint prefix in `model_dir`; DemoError if none."""
  checkpoint = checkpoints.latest_checkpoint(model_dir)
  if checkpoint is None:
    raise DemoError("No checkpoint in %s." % model_dir)
  return checkpoint


def count_records(path):
  """Number of records in a TFRecord file."""
  return sum(1 for _ in tf.io.tf_record_iterator(path))


def read_json(path):
  if not os.path.exists(path):
    raise DemoError("%s was not written." % path)
  with open(path) as reader:
    return json.load(reader)


def read_scalars(summary_dir, tags):
  """Scalar summaries under `summary_dir`: tag -> {step: value}."""
  values = collections.defaultdict(dict)
  for path in sorted(glob.glob(os.path.join(summary_dir, "**", "events.*"),
                               recursive=True)):
    for event in tf.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag not in tags:
          continue
        if value.HasField("simple_value"):
          number = value.simple_value
        else:
          number = float(tf.make_ndarray(value.tensor))
        values[value.tag][event.step] = number
  return values


def pretraining_flags(paths):
  """Flags every pretraining run shares (data, shapes, batch, logging).

  Every run uses LAMB: distillation needs it (the only optimizer with the
  layer-wise warm-up), and the teacher and the from-scratch baseline use the
  same optimizer so the comparison is like for like.  LAMB scales each step to
  the weight norm, hence learning rates far above AdamW's.
  """
  return [
      ("input_file", display_path(paths.train_records)),
      ("max_seq_length", FLAGS.max_seq_length),
      ("max_predictions_per_seq", FLAGS.max_predictions_per_seq),
      ("train_batch_size", FLAGS.pretrain_batch_size),
      ("optimizer", "lamb"),
      ("save_checkpoints_steps", 100000),
      ("log_step_count_steps", 50),
  ]


def evaluate_mlm(context, config, model_dir, log_path):
  """Runs run_pretraining.py --do_eval on the held-out records.

  Returns:
    The eval_results.json dict (masked_lm_accuracy, next_sentence_accuracy,
    losses, global_step).
  """
  eval_records = context.data_file("pretrain_eval.tfrecord")
  num_batches = max(1, count_records(eval_records) // EVAL_BATCH_SIZE)
  run_command(script_command("run_pretraining.py", [
      ("bert_config_file", config),
      ("input_file", display_path(eval_records)),
      ("output_dir", display_path(model_dir)),
      ("do_eval", True),
      ("max_seq_length", FLAGS.max_seq_length),
      ("max_predictions_per_seq", FLAGS.max_predictions_per_seq),
      ("eval_batch_size", EVAL_BATCH_SIZE),
      ("max_eval_steps", num_batches),
  ]), log_path)
  return read_json(os.path.join(model_dir, run_utils.EVAL_RESULTS_JSON))


class DataPaths(object):
  """The files the data stage writes and later stages read."""

  def __init__(self, context):
    self.train_records = context.data_file("pretrain_train.tfrecord")
    self.vocab_file = context.data_file("vocab.txt")
    self.squad_train = context.data_file("squad_train.json")
    self.squad_dev = context.data_file("squad_dev.json")


def run_data(context, paths, log_path):
  """Corpus, vocabulary, pretraining records and the question set."""
  student_config = context.configs["student"]
  train_documents, eval_documents = demo_data.build_corpus(
      demo_data.python_documentation_texts())
  corpus_train = context.data_file("corpus_train.txt")
  corpus_eval = context.data_file("corpus_eval.txt")
  demo_data.write_corpus(train_documents, corpus_train)
  demo_data.write_corpus(eval_documents, corpus_eval)
  num_sentences = sum(len(document) for document in train_documents)
  num_words = sum(len(sentence.split()) for document in train_documents
                  for sentence in document)
  print("Corpus from the documentation shipped with Python %d.%d: %d "
        "training documents (%d sentences, %d words) in %s, %d held-out "
        "documents in %s." % (
            sys.version_info[0], sys.version_info[1], len(train_documents),
            num_sentences, num_words, display_path(corpus_train),
            len(eval_documents), display_path(corpus_eval)), flush=True)

  run_command(script_command("build_vocab.py", [
      ("input_file", display_path(corpus_train)),
      ("output_file", display_path(paths.vocab_file)),
      ("vocab_size", student_config.vocab_size),
      ("do_lower_case", True),
  ]), log_path)
  eval_records = context.data_file("pretrain_eval.tfrecord")
  for corpus, records, dupe_factor in (
      (corpus_train, paths.train_records, FLAGS.dupe_factor),
      (corpus_eval, eval_records, EVAL_DUPE_FACTOR)):
    run_command(script_command("create_pretraining_data.py", [
        ("input_file", display_path(corpus)),
        ("output_file", display_path(records)),
        ("vocab_file", display_path(paths.vocab_file)),
        ("do_lower_case", True),
        ("max_seq_length", FLAGS.max_seq_length),
        ("max_predictions_per_seq", FLAGS.max_predictions_per_seq),
        ("dupe_factor", dupe_factor),
        ("random_seed", FLAGS.seed),
    ]), log_path)

  train_set, dev_set = demo_data.generate_squad(
      FLAGS.squad_train_questions, FLAGS.squad_dev_questions, FLAGS.seed)
  demo_data.write_json(train_set, paths.squad_train)
  demo_data.write_json(dev_set, paths.squad_dev)
  print("Generated %d training and %d held-out questions: %s, %s" % (
      FLAGS.squad_train_questions, FLAGS.squad_dev_questions,
      display_path(paths.squad_train), display_path(paths.squad_dev)),
        flush=True)
  with open(paths.vocab_file) as reader:
    vocab_size = sum(1 for _ in reader)
  return {
      "documents": len(train_documents),
      "sentences": num_sentences,
      "words": num_words,
      "vocab_size": vocab_size,
      "train_records": count_records(paths.train_records),
      "eval_records": count_records(eval_records),
  }


def describe_data(metrics):
  return ("%d docs, %d words; vocab %d; %d train / %d held-out sequences" %
          (metrics["documents"], metrics["words"], metrics["vocab_size"],
           metrics["train_records"], metrics["eval_records"]))


def run_teacher(context, paths, log_path):
  """Pretrains the IB-BERT-style teacher (MLM + NSP)."""
  model_dir = context.stage_dir("teacher")
  run_command(script_command("run_pretraining.py", [
      ("bert_config_file", context.config_files["teacher"]),
      ("output_dir", display_path(model_dir)),
      ("do_train", True),
      ("learning_rate", FLAGS.teacher_learning_rate),
      ("num_train_steps", FLAGS.teacher_steps),
      ("num_warmup_steps", FLAGS.teacher_steps // 10),
  ] + pretraining_flags(paths)), log_path)
  results = evaluate_mlm(context, context.config_files["teacher"], model_dir,
                         log_path)
  return {"masked_lm_accuracy": results["masked_lm_accuracy"],
          "next_sentence_accuracy": results["next_sentence_accuracy"]}


def describe_mlm(metrics):
  return "held-out MLM accuracy %.3f, NSP accuracy %.3f" % (
      metrics["masked_lm_accuracy"], metrics["next_sentence_accuracy"])


def run_scratch(context, paths, log_path):
  """Pretrains the student without a teacher, as long as distillation."""
  model_dir = context.stage_dir("scratch")
  num_steps = FLAGS.transfer_steps + FLAGS.distill_steps
  run_command(script_command("run_pretraining.py", [
      ("bert_config_file", context.config_files["student"]),
      ("output_dir", display_path(model_dir)),
      ("do_train", True),
      ("learning_rate", FLAGS.scratch_learning_rate),
      ("num_train_steps", num_steps),
      ("num_warmup_steps", num_steps // 10),
  ] + pretraining_flags(paths)), log_path)
  results = evaluate_mlm(context, context.config_files["student"], model_dir,
                         log_path)
  return {"masked_lm_accuracy": results["masked_lm_accuracy"],
          "next_sentence_accuracy": results["next_sentence_accuracy"],
          "steps": num_steps}


def run_distill(context, paths, log_path):
  """Layer-wise knowledge transfer, then pretraining distillation."""
  model_dir = context.stage_dir("distill")
  teacher_checkpoint = latest_checkpoint(context.stage_dir("teacher"))
  run_command(script_command("run_pretraining.py", [
      ("bert_config_file", context.config_files["student"]),
      ("bert_teacher_config_file", context.config_files["teacher"]),
      ("init_checkpoint", display_path(teacher_checkpoint)),
      ("output_dir", display_path(model_dir)),
      ("do_train", True),
      ("layer_wise_warmup", True),
      ("num_distill_steps", FLAGS.transfer_steps),
      ("num_train_steps", FLAGS.distill_steps),
      ("num_warmup_steps", FLAGS.distill_steps // 10),
      ("learning_rate", FLAGS.distill_learning_rate),
      ("use_summary", True),
  ] + list(DISTILL_FLAGS) + pretraining_flags(paths)), log_path)
  results = evaluate_mlm(context, context.config_files["student"], model_dir,
                         log_path)

  num_layers = context.configs["student"].num_hidden_layers
  last_phase_start = layer_schedule.stage_start(
      num_layers - 1,
      layer_schedule.steps_per_layer(FLAGS.transfer_steps, num_layers))
  summary_dir = os.path.join(model_dir, pretraining_model.SUMMARY_DIR,
                             pretraining_model.WARMUP_SUMMARY_NAME)
  scalars = read_scalars(summary_dir, distill_modeling.TRANSFER_LOSS_NAMES)
  transfer = {}
  for name in distill_modeling.TRANSFER_LOSS_NAMES:
    steps = sorted(scalars.get(name, {}))
    last_phase = [step for step in steps if step > last_phase_start]
    if last_phase:
      transfer[name] = {"start": scalars[name][last_phase[0]],
                        "end": scalars[name][last_phase[-1]]}
  if not transfer:
    raise DemoError("No transfer-loss summaries under %s." % summary_dir)
  return {"masked_lm_accuracy": results["masked_lm_accuracy"],
          "next_sentence_accuracy": results["next_sentence_accuracy"],
          "transfer_losses": transfer,
          "steps": FLAGS.transfer_steps + FLAGS.distill_steps}


def describe_distill(metrics):
  losses = ", ".join(
      "%s %.3g->%.3g" % (name.replace("_transfer_loss", ""), value["start"],
                         value["end"])
      for name, value in sorted(metrics["transfer_losses"].items()))
  return "%s; last layer's transfer losses %s" % (describe_mlm(metrics),
                                                  losses)


def squad_flags(paths, config, output_dir):
  """Flags every run_squad.py call shares."""
  return [
      ("bert_config_file", config),
      ("vocab_file", display_path(paths.vocab_file)),
      ("do_lower_case", True),
      ("output_dir", display_path(output_dir)),
      ("predict_file", display_path(paths.squad_dev)),
      ("max_seq_length", FLAGS.max_seq_length),
      ("doc_stride", SQUAD_DOC_STRIDE),
      ("max_query_length", SQUAD_MAX_QUERY_LENGTH),
      ("predict_batch_size", EVAL_BATCH_SIZE),
  ]


def squad_training_flags(paths, epochs, init_checkpoint):
  return [
      ("do_train", True),
      ("do_predict", True),
      ("train_file", display_path(paths.squad_train)),
      ("init_checkpoint", display_path(init_checkpoint)),
      ("train_batch_size", FLAGS.squad_batch_size),
      ("learning_rate", FLAGS.squad_learning_rate),
      ("num_train_epochs", epochs),
      ("warmup_proportion", 0.1),
      ("save_checkpoints_steps", 100000),
  ]


def squad_scores(output_dir):
  results = read_json(os.path.join(output_dir, run_utils.EVAL_RESULTS_JSON))
  return {"exact_match": results["exact_match"], "f1": results["f1"]}


EXPORT_FLAGS = (("use_post_quantization", True),
                ("activation_quantization", True),
                ("float_softmax", True))


def evaluate_tflite_files(paths, config, output_dir, export_dir, log_path):
  """EM/F1 of every .tflite file in `export_dir`, and agreement with float.

  Each file predicts the held-out questions through run_squad.py
  --lite_model_path; a quantized file's "agreement" is the share of
  questions it answers with the same text as model_float.tflite.

  Returns:
    {kind: {"exact_match", "f1", "bytes"[, "agreement"]}}.
  """
  results, predictions = {}, {}
  for kind, file_name in export_tflite.TFLITE_FILES.items():
    model_path = os.path.join(export_dir, file_name)
    if not os.path.exists(model_path):
      continue
    lite_dir = os.path.join(output_dir, "lite_" + kind)
    run_command(script_command(
        "run_squad.py",
        squad_flags(paths, config, lite_dir) +
        [("do_predict", True), ("lite_model_path", display_path(model_path))]),
                log_path)
    results[kind] = squad_scores(lite_dir)
    results[kind]["bytes"] = os.path.getsize(model_path)
    predictions[kind] = read_json(os.path.join(lite_dir, "predictions.json"))
  if "float" not in results or len(results) < 2:
    raise DemoError("Expected a float and a quantized TF-Lite model in %s, "
                    "found %s." % (export_dir, sorted(results)))
  reference = predictions["float"]
  for kind in results:
    if kind != "float":
      same = sum(predictions[kind].get(qid) == text
                 for qid, text in reference.items())
      results[kind]["agreement"] = same / float(len(reference))
  return results


def describe_tflite(results):
  parts = []
  for kind in export_tflite.TFLITE_FILES:
    if kind not in results:
      continue
    scores = results[kind]
    text = "%s .tflite (%.0f KB) EM %.1f / F1 %.1f" % (
        kind, scores["bytes"] / 1024.0, scores["exact_match"], scores["f1"])
    if "agreement" in scores:
      text += ", same answer as float on %.1f%%" % (100 * scores["agreement"])
    parts.append(text)
  return "; ".join(parts)


def run_squad(context, paths, log_path):
  """Fine-tunes the distilled student, exports it, evaluates every file."""
  output_dir = context.stage_dir("squad")
  export_dir = os.path.join(output_dir, "export")
  run_command(script_command(
      "run_squad.py",
      squad_flags(paths, context.config_files["student"], output_dir) +
      squad_training_flags(paths, FLAGS.squad_epochs,
                           latest_checkpoint(context.stage_dir("distill"))) +
      [("export_dir", display_path(export_dir))] + list(EXPORT_FLAGS)),
              log_path)
  metrics = squad_scores(output_dir)
  metrics["tflite"] = evaluate_tflite_files(
      paths, context.config_files["student"], output_dir, export_dir, log_path)
  return metrics


def describe_squad(metrics):
  return "held-out EM %.1f / F1 %.1f; %s" % (
      metrics["exact_match"], metrics["f1"], describe_tflite(metrics["tflite"]))


def run_qat(context, paths, log_path):
  """QAT fine-tuning, TF-Lite export, and EM/F1 of every exported model."""
  output_dir = context.stage_dir("qat")
  export_dir = os.path.join(output_dir, "export")
  run_command(script_command(
      "run_squad.py",
      squad_flags(paths, context.config_files["qat"], output_dir) +
      squad_training_flags(paths, FLAGS.qat_epochs,
                           latest_checkpoint(context.stage_dir("distill"))) +
      [("use_quantized_training", True),
       ("export_dir", display_path(export_dir))] + list(EXPORT_FLAGS)),
              log_path)
  return {"tf": squad_scores(output_dir),
          "tflite": evaluate_tflite_files(paths, context.config_files["qat"],
                                          output_dir, export_dir, log_path)}


def describe_qat(metrics):
  return "TF EM %.1f / F1 %.1f; %s" % (metrics["tf"]["exact_match"],
                                       metrics["tf"]["f1"],
                                       describe_tflite(metrics["tflite"]))


DESCRIBE = {
    "data": describe_data,
    "teacher": describe_mlm,
    "scratch": describe_mlm,
    "distill": describe_distill,
    "squad": describe_squad,
    "qat": describe_qat,
}


def make_stages(configs):
  """The stages in running order, with the settings each one depends on.

  Args:
    configs: role -> BertConfig, from demo_configs(); a stage's settings
      hold the configs it trains, so an edited config file reruns it.
  """
  config = {role: value.to_dict() for role, value in configs.items()}
  pretraining = dict(max_seq_length=FLAGS.max_seq_length,
                     max_predictions_per_seq=FLAGS.max_predictions_per_seq,
                     batch_size=FLAGS.pretrain_batch_size)
  squad = dict(max_seq_length=FLAGS.max_seq_length,
               batch_size=FLAGS.squad_batch_size,
               learning_rate=FLAGS.squad_learning_rate)
  return [
      Stage("data", "pretraining data, vocabulary and questions", run_data,
            dict(seed=FLAGS.seed, dupe_factor=FLAGS.dupe_factor,
                 squad_train_questions=FLAGS.squad_train_questions,
                 squad_dev_questions=FLAGS.squad_dev_questions,
                 vocab_size=configs["student"].vocab_size,
                 **pretraining), ()),
      Stage("teacher", "pretrain the IB-BERT-style teacher", run_teacher,
            dict(steps=FLAGS.teacher_steps, config=config["teacher"],
                 learning_rate=FLAGS.teacher_learning_rate, **pretraining),
            ("data",)),
      Stage("scratch", "pretrain the student from scratch (baseline)",
            run_scratch,
            dict(steps=FLAGS.transfer_steps + FLAGS.distill_steps,
                 config=config["student"],
                 learning_rate=FLAGS.scratch_learning_rate, **pretraining),
            ("data",)),
      Stage("distill", "layer-wise transfer + pretraining distillation",
            run_distill,
            dict(transfer_steps=FLAGS.transfer_steps,
                 distill_steps=FLAGS.distill_steps, config=config["student"],
                 learning_rate=FLAGS.distill_learning_rate, **pretraining),
            ("data", "teacher")),
      Stage("squad", "SQuAD fine-tuning, TF-Lite export and evaluation",
            run_squad,
            dict(epochs=FLAGS.squad_epochs, export=dict(EXPORT_FLAGS),
                 config=config["student"], **squad), ("data", "distill")),
      Stage("qat", "QAT fine-tuning, TF-Lite export and evaluation", run_qat,
            dict(epochs=FLAGS.qat_epochs, export=dict(EXPORT_FLAGS),
                 config=config["qat"], **squad), ("data", "distill")),
  ]


def finished_record(stage_dir, settings):
  """The stage_done.json content if the stage finished with `settings`."""
  path = os.path.join(stage_dir, STAGE_DONE_FILE)
  if not os.path.exists(path):
    return None
  with open(path) as reader:
    record = json.load(reader)
  return record if record.get("settings") == settings else None


def print_summary(rows, output_dir):
  """Prints the stage / wall time / result table."""
  headers = ("stage", "wall time", "result")
  widths = [max(len(headers[0]), max(len(row[0]) for row in rows)),
            max(len(headers[1]), max(len(row[1]) for row in rows))]
  print("\n" + "=" * 78)
  print("MobileBERT demo summary (outputs in %s)" % output_dir)
  print("=" * 78)
  line = "%-*s  %*s  %s"
  print(line % (widths[0], headers[0], widths[1], headers[1], headers[2]))
  for name, wall_time, result in rows:
    print(line % (widths[0], name, widths[1], wall_time, result))


def apply_quick_settings():
  """Under --quick, QUICK_SETTINGS for each flag the command line left out."""
  if not FLAGS.quick:
    return
  for name, value in QUICK_SETTINGS.items():
    if not FLAGS[name].present:
      setattr(FLAGS, name, value)


def validate_flags(configs):
  """Checks the flags against each other and `configs` (role -> BertConfig);
  every problem is reported, then the demo exits."""
  problems = run_utils.FlagProblems("demo.py")
  problems.positive(FLAGS, "max_seq_length", "max_predictions_per_seq",
                    "dupe_factor", "pretrain_batch_size", "teacher_steps",
                    "transfer_steps", "distill_steps", "squad_train_questions",
                    "squad_dev_questions", "squad_batch_size",
                    "teacher_learning_rate", "distill_learning_rate",
                    "scratch_learning_rate", "squad_learning_rate",
                    "squad_epochs", "qat_epochs")
  problems.call(export_tflite.file_kinds,
                use_quantized_training=True, use_post_quantization=True,
                activation_quantization=True, float_softmax=True,
                prefix="the qat stage exports an int8 TF-Lite model, so the "
                "demo runs on TF 2.15 (make demo sets it up): ")
  problems.check(os.access(FLAGS.python, os.X_OK),
                 "--python=%s is not an executable interpreter." %
                 FLAGS.python)
  max_positions = min(config.max_position_embeddings
                      for config in configs.values())
  problems.check(FLAGS.max_seq_length <= max_positions,
                 "--max_seq_length=%d exceeds max_position_embeddings=%d of "
                 "the demo configs." % (FLAGS.max_seq_length, max_positions))
  problems.check(FLAGS.max_seq_length > SQUAD_MAX_QUERY_LENGTH + 3,
                 "--max_seq_length=%d leaves no room for a SQuAD context "
                 "after a %d-token question." % (FLAGS.max_seq_length,
                                                  SQUAD_MAX_QUERY_LENGTH))
  num_layers = configs["student"].num_hidden_layers
  problems.check(not FLAGS.transfer_steps % num_layers,
                 "--transfer_steps=%d must be a multiple of the student's %d "
                 "layers (one transfer phase per layer)." %
                 (FLAGS.transfer_steps, num_layers))
  # run_squad.py refuses a run without a step; its count, checked here
  # rather than after the pretraining stages.
  if FLAGS.squad_batch_size > 0:
    for stage, flag in (("squad", "squad_epochs"), ("qat", "qat_epochs")):
      problems.call(run_utils.train_steps, FLAGS.squad_train_questions,
                    FLAGS.squad_batch_size, FLAGS[flag].value, 0.0,
                    unit="questions",
                    prefix="the %s stage's run_squad.py (--squad_train_"
                    "questions, --squad_batch_size, --%s) would stop: " % (
                        stage, flag))
  problems.exit_if_any()


def main(_):
  # This process only reads records and event files; its deprecation
  # warnings would interleave with the stage scripts' output.
  tf.logging.set_verbosity(tf.logging.ERROR)
  apply_quick_settings()
  configs = demo_configs()
  validate_flags(configs)

  output_dir = os.path.abspath(FLAGS.output_dir)
  context = StageContext(output_dir, configs,
                         write_config_files(configs, output_dir))
  paths = DataPaths(context)
  print("MobileBERT demo: every stage's commands run from %s; outputs go to "
        "%s." % (REPO_DIR, output_dir), flush=True)
  demo_start = time.time()
  rebuilt = set()
  rows = []
  stages = make_stages(configs)
  records = {}
  for index, stage in enumerate(stages):
    stage_dir = context.stage_dir(stage.name)
    header = "[%d/%d] %s: %s" % (index + 1, len(stages), stage.name,
                                 stage.title)
    record = finished_record(stage_dir, stage.settings)
    if record is not None and not rebuilt.intersection(stage.inputs):
      print("\n%s -- finished earlier, reusing %s" % (
          header, display_path(stage_dir)), flush=True)
      reused = " (reused)"
    else:
      elapsed = console.format_seconds(time.time() - demo_start)
      print("\n%s\n%s  (%s elapsed)" % ("=" * 78, header, elapsed),
            flush=True)
      if os.path.exists(stage_dir):
        shutil.rmtree(stage_dir)
      os.makedirs(stage_dir)
      stage_start = time.time()
      try:
        metrics = stage.run(context, paths,
                            os.path.join(stage_dir, "log.txt"))
      except DemoError as error:
        print_summary(rows, output_dir)
        sys.exit("demo.py: stage %s failed: %s" % (stage.name, error))
      record = {"settings": stage.settings, "metrics": metrics,
                "seconds": time.time() - stage_start}
      # Whole or not at all: a demo killed here reruns the stage.
      done_path = os.path.join(stage_dir, STAGE_DONE_FILE)
      with open(atomic_files.partial_path(done_path), "w") as writer:
        json.dump(record, writer, indent=2)
      atomic_files.commit_partial(done_path)
      rebuilt.add(stage.name)
      reused = ""
    records[stage.name] = record
    summary = DESCRIBE[stage.name](record["metrics"])
    print("%s: %s" % (stage.name, summary), flush=True)
    rows.append((stage.name,
                 console.format_seconds(record["seconds"]) + reused, summary))

  rows.append(("total", console.format_seconds(time.time() - demo_start), ""))
  print_summary(rows, display_path(output_dir))
  distilled = records["distill"]["metrics"]["masked_lm_accuracy"]
  scratch = records["scratch"]["metrics"]["masked_lm_accuracy"]
  verdict = "beats" if distilled > scratch else "does NOT beat"
  print("\nDistilled student (MLM accuracy %.3f) %s the same student trained "
        "from scratch for the same %d steps (%.3f)." % (
            distilled, verdict, records["scratch"]["metrics"]["steps"],
            scratch))
  print("Outputs: %s" % output_dir)
  if distilled <= scratch:
    sys.exit(1)


if __name__ == "__main__":
  define_flags()
  tf.app.run()
