"""What the scripts print: every log line once, TensorFlow's noise filtered,
and one kind of progress line for every long phase.

Scripts import this module before TensorFlow (their first import): importing
TensorFlow 2.15 writes lines to the process's stderr from C++ that no Python
setting reaches afterwards.  Among them three "Unable to register cuDNN /
cuFFT / cuBLAS factory" errors and a TensorRT warning, printed on every
machine, with or without a GPU, and meaning nothing there; they are dropped,
every other import-time line is passed on.  TF_CPP_MIN_LOG_LEVEL defaults to
1 (C++ INFO lines off; warnings and errors stay), unless the user set it.

`setup()`, called first in each script's main:

* one handler: TensorFlow's logger adds a handler of its own at import and
  absl adds one to the root logger, so every line was printed twice; the
  TensorFlow one is removed and absl's (with its timestamps) prints;
* `LogFilter`, on TensorFlow's logger and absl's (which TF-Lite's converter
  uses): TensorFlow's deprecation notices, the INFO chatter of the installed
  libraries (the estimator's step counters, "Calling model_fn", its config),
  warnings that say nothing about the run and the estimator's copy of an
  error it re-raises are dropped; our own lines, every other warning and
  error, and checkpoint saves and restores are kept.  absl's
  `--verbosity=1` turns the filter off.

`stderr_without(CONVERTER_NOISE)` does for TF-Lite conversions what the
import filter does for the import.

`Progress` writes the progress lines:

  Training: step 1200 of 500000 (0%), loss 2.3451, 3.10 steps/s,
    99.2 examples/s, 1d 20h left
  Predicting: example 1000 of 3000, 250.0 examples/s, 8s left

(one line each), at the first and the last unit and at most every
`PROGRESS_SECONDS` in between (60 unless MOBILEBERT_PROGRESS_SECONDS says
otherwise), so a week-long run logs about 10,000 of them.  `parse_progress`
reads one back; it is the demo's source for its console.
"""

import contextlib
import logging
import os
import re
import sys
import threading
import time

_IMPORT_NOISE = re.compile(
    r"Unable to register (cuDNN|cuFFT|cuBLAS) factory|"
    r"TF-TRT Warning: Could not find TensorRT")
# What TF 2.15's TF-Lite converter prints from C++ on every conversion: a
# table of the constants it kept in the MLIR arith dialect, its settings,
# ignored legacy options and grappler's note that the frozen graph has no
# variable initialisers.  The op table we log says what was written.
CONVERTER_NOISE = re.compile(
    r"^\s*$|^-+$|Summary on the non-converted ops|"
    r"^ \* (Accepted dialects|Non-Converted Ops|\d+ ARITH ops)|"
    r"^- arith\.constant:|^\s*\((\w+: \d+(, )?)+\)$|"
    r"Ignored (output_format|drop_control_dependency)\.|"
    r"^fully_quantize: \d+, inference_type:|"
    r"Init node \S+ doesn't exist in graph")


@contextlib.contextmanager
def stderr_without(noise):
  """Drops the lines matching `noise` that anything in the block writes to
  the process's stderr (file descriptor 2, C++ included); the other lines
  pass on as they come."""
  try:
    saved_stderr = os.dup(2)
  except OSError:  # No stderr to filter.
    yield
    return
  read_end, write_end = os.pipe()

  def forward():
    with os.fdopen(read_end, "rb") as pipe:
      for line in pipe:
        if not noise.search(line.decode("utf-8", "replace")):
          os.write(saved_stderr, line)

  forwarder = threading.Thread(target=forward, daemon=True)
  forwarder.start()
  sys.stderr.flush()
  os.dup2(write_end, 2)
  os.close(write_end)
  try:
    yield
  finally:
    sys.stderr.flush()
    os.dup2(saved_stderr, 2)  # Closes the pipe's last write end.
    forwarder.join(timeout=10)
    if not forwarder.is_alive():
      os.close(saved_stderr)


if "tensorflow" not in sys.modules:
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
  with stderr_without(_IMPORT_NOISE):
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import

import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top,g-bad-import-order

# Where TensorFlow, its estimator and their dependencies are installed: log
# records from files there are TensorFlow's, the rest are ours.
_LIBRARY_DIR = os.path.dirname(os.path.dirname(
    os.path.abspath(sys.modules["tensorflow"].__file__))) + os.sep
DEFAULT_PROGRESS_SECONDS = 60.0


def _progress_seconds(text):
  """MOBILEBERT_PROGRESS_SECONDS's value, or None if it is not a number >= 0."""
  try:
    value = float(text)
  except (TypeError, ValueError):
    return None
  return value if value >= 0 else None


_PROGRESS_SETTING = os.environ.get("MOBILEBERT_PROGRESS_SECONDS")
PROGRESS_SECONDS = _progress_seconds(_PROGRESS_SETTING)
if PROGRESS_SECONDS is None:  # Unset, or not a number: setup() says so.
  PROGRESS_SECONDS = DEFAULT_PROGRESS_SECONDS

_DEPRECATION = re.compile(
    r"is deprecated and will be removed|The name tf\.\S+ is deprecated")
# Warnings and errors that add nothing: TPUEstimator passes params itself,
# eval_on_tpu is its default, and an error the estimator records (with the
# op's stack, pages of it) and re-raises is reported where it ends the run.
_ADDS_NOTHING = re.compile(
    r"includes params argument, but params are not passed to Estimator|"
    r"eval_on_tpu ignored because use_tpu is False|"
    r"^Reraising captured error|"
    r"^Error recorded from (training|prediction|evaluation|infeed|outfeed)")
# TensorFlow INFO lines worth a researcher's attention.
_KEPT_TENSORFLOW_INFO = re.compile(
    r"^(Saving checkpoints for|Restoring parameters from|Loss for final step|"
    r"Evaluation \[\d+/\d+\]|Finished evaluation|"
    r"Using \w*Strategy with devices|MultiWorkerMirroredStrategy with)")


class LogFilter(logging.Filter):
  """Drops TensorFlow's noise from the `tensorflow` logger (module doc)."""

  def __init__(self, keep_tensorflow_info=False):
    super(LogFilter, self).__init__()
    self.keep_tensorflow_info = keep_tensorflow_info

  def filter(self, record):
    message = record.getMessage()
    if _DEPRECATION.search(message):
      return False
    if not record.pathname.startswith(_LIBRARY_DIR):
      return True
    if record.levelno >= logging.WARNING:
      return not _ADDS_NOTHING.search(message)
    return (self.keep_tensorflow_info or
            bool(_KEPT_TENSORFLOW_INFO.search(message)))


def setup(keep_tensorflow_info=False):
  """Sets up the console of a script; call first in main.

  Args:
    keep_tensorflow_info: keep the estimator's INFO lines (on TPU they are
      the only report of the loss and the step rate).
  """
  logger = tf.get_logger()
  verbose = _absl_verbosity() >= 1
  tf.logging.set_verbosity(tf.logging.DEBUG if verbose else tf.logging.INFO)
  if logging.getLogger().handlers:
    for handler in list(logger.handlers):
      logger.removeHandler(handler)
  for filtered in (logger, logging.getLogger("absl")):
    for old in [f for f in filtered.filters if isinstance(f, LogFilter)]:
      filtered.removeFilter(old)
    if not verbose:
      filtered.addFilter(LogFilter(keep_tensorflow_info))
  if (_PROGRESS_SETTING is not None and
      _progress_seconds(_PROGRESS_SETTING) is None):
    tf.logging.warning("MOBILEBERT_PROGRESS_SECONDS=%s is not a number of "
                       "seconds; progress lines every %g s.",
                       _PROGRESS_SETTING, DEFAULT_PROGRESS_SECONDS)


def _absl_verbosity():
  try:
    from absl import flags  # pylint: disable=g-import-not-at-top
    return int(flags.FLAGS.verbosity) if flags.FLAGS.is_parsed() else 0
  except (ImportError, AttributeError):
    return 0


def format_seconds(seconds):
  """'45s', '3m05s', '2h07m', '1d 20h'."""
  seconds = int(round(max(seconds, 0)))
  if seconds < 60:
    return "%ds" % seconds
  if seconds < 3600:
    return "%dm%02ds" % divmod(seconds, 60)
  if seconds < 86400:
    return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
  return "%dd %dh" % (seconds // 86400, seconds % 86400 // 3600)


class Progress(object):
  """Progress lines of one long phase: `<phase>: <unit> done of total, ...`.

  Training counts steps (with the loss and, given the batch size, examples
  per second); other phases count examples or features.  The rate and the
  time left are those since the previous line.
  """

  def __init__(self, phase, total, unit="example", examples_per_unit=None,
               interval_seconds=None, clock=time.time):
    self.phase = phase
    self.total = total
    self.unit = unit
    self.examples_per_unit = examples_per_unit
    self.interval_seconds = (PROGRESS_SECONDS if interval_seconds is None
                             else interval_seconds)
    self._clock = clock
    self._last = None  # (time, done) of the previous line.

  def due(self, done):
    """Whether update(done) would print a line."""
    return (self._last is None or done >= self.total or
            self._clock() - self._last[0] >= self.interval_seconds)

  def update(self, done, loss=None):
    """Logs a line if one is due; returns the line or None."""
    if not self.due(done):
      return None
    now = self._clock()
    parts = ["%s %d of %d" % (self.unit, done, self.total)]
    if self.unit == "step":
      parts[0] += " (%d%%)" % (100 * done // max(self.total, 1))
    if loss is not None:
      parts.append("loss %.4f" % loss)
    if self._last is not None and now > self._last[0] and done > self._last[1]:
      rate = (done - self._last[1]) / (now - self._last[0])
      if self.examples_per_unit:
        parts.append("%.2f %ss/s" % (rate, self.unit))
        parts.append("%.1f examples/s" % (rate * self.examples_per_unit))
      else:
        parts.append("%.1f %ss/s" % (rate, self.unit))
      if done < self.total:
        parts.append("%s left" % format_seconds((self.total - done) / rate))
    line = "%s: %s" % (self.phase, ", ".join(parts))
    tf.logging.info("%s", line)
    self._last = (now, done)
    return line


_PROGRESS_LINE = re.compile(
    r"(?P<phase>[A-Z][\w-]*(?: [\w-]+)*): (?P<unit>[a-z]+) (?P<done>\d+) of "
    r"(?P<total>\d+)(?: \(\d+%\))?(?:, loss (?P<loss>[-+.\w]+))?"
    r"(?:, (?P<rate>[\d.]+) [a-z]+s/s)?"
    r"(?:, (?P<examples_per_second>[\d.]+) examples/s)?"
    r"(?:, (?P<left>[\w ]+) left)?$")


def parse_progress(line):
  """The fields of a progress line in a log line, or None.

  Returns:
    dict with phase, unit, done and total, and loss, rate (units per
    second), examples_per_second and left (text) where the line has them.
  """
  match = _PROGRESS_LINE.search(line.rstrip("\n"))
  if not match:
    return None
  fields = match.groupdict()
  fields["done"] = int(fields["done"])
  fields["total"] = int(fields["total"])
  for name in ("rate", "examples_per_second"):
    if fields[name] is not None:
      fields[name] = float(fields[name])
  if (fields["examples_per_second"] is None and fields["rate"] is not None
      and fields["unit"] == "example"):
    fields["examples_per_second"] = fields["rate"]
  return fields
