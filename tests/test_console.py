"""console.py: progress lines, their parser and the log filter.

Rates and times are hand-computed from a fake clock; the filter is judged on
records made the way TensorFlow's and our modules' log calls make them.
"""

import logging
import os

import tensorflow as tf

import console

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeClock(object):

  def __init__(self):
    self.now = 1000.0

  def __call__(self):
    return self.now


def test_training_progress_lines_state_rate_and_time_left():
  clock = FakeClock()
  progress = console.Progress("Training", 400, unit="step",
                              examples_per_unit=8, interval_seconds=20,
                              clock=clock)
  first = progress.update(1, loss=6.9)
  assert first == "Training: step 1 of 400 (0%), loss 6.9000"
  clock.now += 10
  assert not progress.due(41)
  assert progress.update(41, loss=3.0) is None  # 10 s < 20 s: no line
  clock.now += 15  # 25 s after the first line, 99 steps later.
  assert progress.due(100)
  line = progress.update(100, loss=2.25)
  # 99 steps / 25 s = 3.96 steps/s, x 8 = 31.7 examples/s; 300 steps left
  # at 3.96 steps/s = 75.76 s.
  assert line == ("Training: step 100 of 400 (25%), loss 2.2500, 3.96 "
                  "steps/s, 31.7 examples/s, 1m16s left")
  clock.now += 1  # The last step is always reported, with no time left.
  assert progress.due(400)
  assert progress.update(400, loss=1.5) == (
      "Training: step 400 of 400 (100%), loss 1.5000, 300.00 steps/s, "
      "2400.0 examples/s")


def test_counted_work_lines_and_the_parser():
  clock = FakeClock()
  progress = console.Progress("Predicting", 3000, interval_seconds=1,
                              clock=clock)
  progress.update(1)
  clock.now += 4
  line = progress.update(1001)
  assert line == "Predicting: example 1001 of 3000, 250.0 examples/s, 8s left"
  fields = console.parse_progress(
      "I1205 01:07:18.058282 1398 console.py:180] " + line + "\n")
  assert fields == {"phase": "Predicting", "unit": "example", "done": 1001,
                    "total": 3000, "loss": None, "rate": 250.0,
                    "examples_per_second": 250.0, "left": "8s"}
  training = console.parse_progress(
      "INFO:tensorflow:Training: step 100 of 400 (25%), loss 2.2500, "
      "3.96 steps/s, 31.7 examples/s, 1h02m left")
  assert (training["done"], training["total"], training["loss"],
          training["rate"], training["examples_per_second"],
          training["left"]) == (100, 400, "2.2500", 3.96, 31.7, "1h02m")
  assert console.parse_progress("INFO:tensorflow:  Num steps = 25") is None


def test_format_seconds():
  assert [console.format_seconds(s) for s in (0, 45.4, 185, 7620, 158400)] == [
      "0s", "45s", "3m05s", "2h07m", "1d 20h"]


def _record(pathname, level, message, *args):
  return logging.LogRecord("tensorflow", level, pathname, 1, message, args,
                           None)


def test_log_filter_keeps_ours_and_real_warnings_drops_noise():
  site = os.path.join(os.path.dirname(os.path.dirname(tf.__file__)),
                      "tensorflow_estimator", "estimator.py")
  ours = os.path.join(REPO_ROOT, "run_squad.py")
  log_filter = console.LogFilter()
  kept = [
      _record(ours, logging.INFO, "  Num steps = %d", 25),
      _record(site, logging.WARNING, "Training with estimator made no steps."),
      _record(site, logging.ERROR, "Model diverged with loss = NaN."),
      _record(site, logging.INFO, "Saving checkpoints for %d into %s.", 25,
              "/x/model.ckpt"),
      _record(site, logging.INFO, "Restoring parameters from /x/model.ckpt-25"),
  ]
  dropped = [
      _record(site, logging.INFO, "Calling model_fn."),
      _record(site, logging.INFO, "global_step/sec: 16.5"),
      _record(site, logging.WARNING,
              "From %s: RunConfig.__init__ (from tensorflow_estimator) is "
              "deprecated and will be removed in a future version.\n"
              "Instructions for updating:\nUse tf.keras instead.", ours),
      _record(site, logging.WARNING, "From /x.py:84: The name "
              "tf.estimator.tpu.RunConfig is deprecated. Please use "
              "tf.compat.v1.estimator.tpu.RunConfig instead."),
      _record(site, logging.WARNING, "Estimator's model_fn (<function f>) "
              "includes params argument, but params are not passed to "
              "Estimator."),
  ]
  assert [log_filter.filter(r) for r in kept] == [True] * len(kept)
  assert [log_filter.filter(r) for r in dropped] == [False] * len(dropped)
  # On TPU the estimator's INFO lines are the loss and rate report.
  assert console.LogFilter(keep_tensorflow_info=True).filter(dropped[1])
