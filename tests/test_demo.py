"""`make demo`'s bookkeeping, run as a user runs demo.py: finished stages are
reused, a stage whose settings changed runs again, and the closing verdict
(the distilled student beats the one trained from scratch, or the demo
fails) follows the two stages' held-out MLM accuracies.

The stages' own work is the scripts', which their tests run; here every
stage is given a finished record, so that demo.py runs none of them except
where the test changes a setting.  (The whole demo takes minutes even at
its smallest settings.)
"""

import json
import os

import pytest

import script_helpers
import tf_compat

# Small settings, passed to every run.
FLAGS = ["--teacher_steps=6", "--transfer_steps=8", "--distill_steps=4",
         "--squad_train_questions=20", "--squad_dev_questions=5",
         "--squad_epochs=1", "--qat_epochs=1", "--dupe_factor=1",
         "--max_seq_length=64", "--pretrain_batch_size=8"]

NEEDS_TF2 = pytest.mark.skipif(not tf_compat.IS_TF2,
                               reason="the demo runs on TF 2.15")

_MLM = {"masked_lm_accuracy": 0.25, "next_sentence_accuracy": 0.5}
_SCORES = {"exact_match": 40.0, "f1": 50.0, "bytes": 2048}
METRICS = {
    "data": {"documents": 3, "sentences": 30, "words": 300,
             "vocab_size": 100, "train_records": 20, "eval_records": 10},
    "teacher": _MLM,
    "scratch": dict(_MLM, steps=12),
    "distill": dict(_MLM, steps=12, transfer_losses={
        "attention_transfer_loss": {"start": 2.0, "end": 1.0}}),
    "squad": {"exact_match": 40.0, "f1": 50.0,
              "tflite": {"float": _SCORES,
                         "int8": dict(_SCORES, agreement=0.75)}},
    "qat": {"tf": {"exact_match": 30.0, "f1": 35.0},
            "tflite": {"float": _SCORES}},
}

# What a driver prints: each stage's settings under these FLAGS, read from
# demo.make_stages (the test writes the records the demo will look for).
_SETTINGS_DRIVER = r"""
import json, sys
import demo
demo.define_flags()
demo.FLAGS(["demo.py"] + json.loads(sys.argv[1]))
print("SETTINGS=" + json.dumps(
    {stage.name: stage.settings for stage in demo.make_stages()}))
"""


def _stage_settings(flags):
  _, output = script_helpers.run_script(
      None, ["-c", _SETTINGS_DRIVER, json.dumps(flags)])
  line = [l for l in output.splitlines() if l.startswith("SETTINGS=")][0]
  return json.loads(line[len("SETTINGS="):])


def _write_records(output_dir, settings, metrics):
  for name, stage_settings in settings.items():
    os.makedirs(os.path.join(output_dir, name))
    with open(os.path.join(output_dir, name, "stage_done.json"), "w") as f:
      json.dump({"settings": stage_settings, "metrics": metrics[name],
                 "seconds": 1.0}, f)


def _demo(output_dir, *extra):
  return script_helpers.run_script(
      "demo.py", ["--output_dir=" + output_dir] + FLAGS + list(extra),
      timeout=300, expect_success=False)


@NEEDS_TF2
@pytest.mark.parametrize("distilled, scratch, code, verdict", [
    (0.30, 0.25, 0, "(MLM accuracy 0.300) beats the same student trained "
     "from scratch for the same 12 steps (0.250)."),
    (0.25, 0.25, 1, "(MLM accuracy 0.250) does NOT beat the same student "
     "trained from scratch for the same 12 steps (0.250)."),
])
def test_finished_stages_are_reused_and_the_verdict_follows_the_accuracies(
    tmp_path, distilled, scratch, code, verdict):
  output_dir = str(tmp_path / "demo")
  metrics = dict(METRICS)
  metrics["distill"] = dict(metrics["distill"], masked_lm_accuracy=distilled)
  metrics["scratch"] = dict(metrics["scratch"], masked_lm_accuracy=scratch)
  settings = _stage_settings(FLAGS)
  assert list(settings) == list(METRICS)
  _write_records(output_dir, settings, metrics)
  exit_code, output = _demo(output_dir)
  assert exit_code == code, output[-3000:]
  assert "Traceback" not in output
  for index, name in enumerate(METRICS):
    assert "[%d/6] %s: " % (index + 1, name) in output
  assert output.count("finished earlier, reusing") == 6, output[-3000:]
  assert "$ " not in output  # No stage command ran.
  assert "Distilled student " + verdict in output
  # The summary reports the records' numbers.
  assert "squad " in output and "int8 .tflite (2 KB) EM 40.0 / F1 50.0, " \
      "same answer as float on 75.0%" in output
  assert "teacher" in output and "held-out MLM accuracy 0.250" in output


@NEEDS_TF2
def test_a_changed_setting_runs_that_stage_again(tmp_path):
  """--squad_epochs belongs to the squad stage: data to distill are reused,
  squad starts again (and stops at once: the distill record has no
  checkpoint beside it, which the demo reports in one line)."""
  output_dir = str(tmp_path / "demo")
  _write_records(output_dir, _stage_settings(FLAGS), METRICS)
  exit_code, output = _demo(output_dir, "--squad_epochs=2")
  assert exit_code == 1, output[-3000:]
  assert output.count("finished earlier, reusing") == 4, output[-3000:]
  assert "[5/6] squad: SQuAD fine-tuning" in output
  assert "reusing %s" % os.path.join(output_dir, "squad") not in output
  assert script_helpers.last_line(output) == (
      "demo.py: stage squad failed: No checkpoint in %s." %
      os.path.join(output_dir, "distill")), output[-3000:]
  # The stage's directory was started afresh: the old record is gone.
  assert not os.path.exists(os.path.join(output_dir, "squad",
                                         "stage_done.json"))


@pytest.mark.skipif(tf_compat.IS_TF2, reason="the TF 1.15 refusal")
def test_on_tf1_the_demo_says_it_needs_tf2(tmp_path):
  exit_code, output = _demo(str(tmp_path / "demo"))
  assert exit_code == 1
  assert "Traceback" not in output
  assert script_helpers.last_line(output).startswith(
      "demo.py: the qat stage exports an int8 TF-Lite model, so the demo "
      "runs on TF 2.15"), output[-2000:]
  assert not os.path.exists(str(tmp_path / "demo"))
