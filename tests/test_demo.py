"""`make demo`, run as a user runs demo.py.

`--quick` runs every stage for real (one-layer models, a few hundred steps):
its results are checked against the files the stages wrote, scored by the
test itself, and a second run reuses every stage.  The bookkeeping the quick
run cannot reach (a stage whose settings changed runs again; a tie fails the
demo) runs on stage records the test writes, so that demo.py runs no stage.
"""

import collections
import json
import os
import re
import string

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import script_helpers
import tf_compat

# Small settings, passed to every run.
FLAGS = ["--teacher_steps=6", "--transfer_steps=8", "--distill_steps=4",
         "--squad_train_questions=20", "--squad_dev_questions=5",
         "--squad_epochs=1", "--qat_epochs=1", "--dupe_factor=1",
         "--max_seq_length=64", "--pretrain_batch_size=8",
         "--squad_batch_size=8"]

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
    {stage.name: stage.settings
     for stage in demo.make_stages(demo.demo_configs())}))
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


# --quick's step counts (demo.QUICK_SETTINGS) and the commands each stage
# runs: build_vocab + two create_pretraining_data; training + evaluation;
# run_squad training, then one prediction per .tflite file.
QUICK_TEACHER_STEPS, QUICK_TRANSFER_STEPS, QUICK_DISTILL_STEPS = 600, 40, 80
QUICK_TFLITE = {"squad": ["float", "dynamic_range", "int8",
                          "int8_float_softmax"],
                "qat": ["float", "qat_int8", "qat_int8_float_softmax"]}
QUICK_COMMANDS = {"data": 3, "teacher": 2, "scratch": 2, "distill": 2,
                  "squad": 1 + 4, "qat": 1 + 3}


def _normalized_words(text):
  """SQuAD v1.1's answer normalisation, written out here."""
  text = "".join(c for c in text.lower() if c not in string.punctuation)
  return re.sub(r"\b(a|an|the)\b", " ", text).split()


def _squad_scores(dataset_path, predictions):
  """(exact match, F1) in percent, best over each question's answers."""
  with open(dataset_path) as f:
    dataset = json.load(f)
  exact, f1 = [], []
  for article in dataset["data"]:
    for paragraph in article["paragraphs"]:
      for qa in paragraph["qas"]:
        predicted = _normalized_words(predictions.get(qa["id"], ""))
        golds = [_normalized_words(a["text"]) for a in qa["answers"]]
        exact.append(max(float(predicted == gold) for gold in golds))
        scores = [0.0]
        for gold in golds:
          common = sum((collections.Counter(predicted) &
                        collections.Counter(gold)).values())
          if common:
            precision, recall = common / len(predicted), common / len(gold)
            scores.append(2 * precision * recall / (precision + recall))
        f1.append(max(scores))
  return 100.0 * np.mean(exact), 100.0 * np.mean(f1)


def _read_json(path):
  with open(path) as f:
    return json.load(f)


def _checkpoint_steps(model_dir):
  return sorted(int(name[len("model.ckpt-"):-len(".index")])
                for name in os.listdir(model_dir)
                if re.match(r"model\.ckpt-\d+\.index$", name))


@NEEDS_TF2
def test_quick_demo_runs_every_stage_then_reuses_them(tmp_path):
  output_dir = str(tmp_path / "quick")
  exit_code, output = _quick_demo(output_dir)
  records = {name: _read_json(os.path.join(output_dir, name,
                                           "stage_done.json"))
             for name in METRICS}
  metrics = {name: record["metrics"] for name, record in records.items()}
  assert "Traceback" not in output, output[-3000:]

  # Each stage ran its commands once, from the shipped configs cut to one
  # layer.
  for name, count in QUICK_COMMANDS.items():
    with open(os.path.join(output_dir, name, "log.txt")) as f:
      assert sum(line.startswith("$ ") for line in f) == count, name
  assert output.count("\n$ ") == sum(QUICK_COMMANDS.values())
  for name in ("tiny_teacher.json", "tiny_mobilebert.json",
               "tiny_mobilebert_qat.json"):
    cut = _read_json(os.path.join(output_dir, "configs", name))
    shipped = _read_json(os.path.join(script_helpers.REPO_ROOT, "config",
                                      name))
    assert cut["num_hidden_layers"] == 1
    assert cut["hidden_size"] == shipped["hidden_size"]
  distilled = tf.train.load_checkpoint(os.path.join(output_dir, "distill"))
  names = distilled.get_variable_to_shape_map()
  assert any(n.startswith("bert/encoder/layer_0/") for n in names)
  assert not any(n.startswith("bert/encoder/layer_1/") for n in names)

  # The data the later stages read.
  data_dir = os.path.join(output_dir, "data")
  with open(os.path.join(data_dir, "vocab.txt")) as f:
    assert metrics["data"]["vocab_size"] == len(f.read().splitlines()) == 1024
  for key, name in (("train_records", "pretrain_train.tfrecord"),
                    ("eval_records", "pretrain_eval.tfrecord")):
    count = sum(1 for _ in tf.io.tf_record_iterator(
        os.path.join(data_dir, name)))
    assert metrics["data"][key] == count > 0

  # Every training run took its steps.
  assert _checkpoint_steps(os.path.join(output_dir, "teacher"))[-1] == (
      QUICK_TEACHER_STEPS)
  assert _checkpoint_steps(os.path.join(output_dir, "distill", "warmup"))[
      -1] == QUICK_TRANSFER_STEPS
  assert _checkpoint_steps(os.path.join(output_dir, "distill"))[-1] == (
      QUICK_DISTILL_STEPS)
  assert _checkpoint_steps(os.path.join(output_dir, "scratch"))[-1] == (
      QUICK_TRANSFER_STEPS + QUICK_DISTILL_STEPS) == (
          metrics["scratch"]["steps"])

  # The gate.  At these settings the student trained from scratch still
  # predicts the commonest word, which the distilled one has got past: a
  # wide margin (0.039 against 0.092 on Xeon), not a coin toss.
  scratch = metrics["scratch"]["masked_lm_accuracy"]
  distill = metrics["distill"]["masked_lm_accuracy"]
  assert distill > scratch + 0.02, (distill, scratch)
  assert exit_code == 0, output[-3000:]
  assert ("Distilled student (MLM accuracy %.3f) beats the same student "
          "trained from scratch for the same %d steps (%.3f)." % (
              distill, QUICK_TRANSFER_STEPS + QUICK_DISTILL_STEPS, scratch)
          in output)

  # SQuAD and QAT: every score the demo reports, from the predictions the
  # runs wrote, scored here; agreement counted here.
  dev = os.path.join(data_dir, "squad_dev.json")
  for stage, kinds in QUICK_TFLITE.items():
    stage_dir = os.path.join(output_dir, stage)
    tf_scores = (metrics[stage] if stage == "squad" else metrics[stage]["tf"])
    exact, f1 = _squad_scores(
        dev, _read_json(os.path.join(stage_dir, "predictions.json")))
    assert tf_scores["exact_match"] == pytest.approx(exact)
    assert tf_scores["f1"] == pytest.approx(f1)
    assert sorted(metrics[stage]["tflite"]) == sorted(kinds)
    float_answers = _read_json(os.path.join(stage_dir, "lite_float",
                                            "predictions.json"))
    for kind in kinds:
      answers = _read_json(os.path.join(stage_dir, "lite_" + kind,
                                        "predictions.json"))
      scores = metrics[stage]["tflite"][kind]
      exact, f1 = _squad_scores(dev, answers)
      assert scores["exact_match"] == pytest.approx(exact), kind
      assert scores["f1"] == pytest.approx(f1), kind
      if kind != "float":
        same = np.mean([answers[q] == a for q, a in float_answers.items()])
        assert scores["agreement"] == pytest.approx(same), kind
        assert "same answer as float on %.1f%%" % (100 * same) in output
  assert "held-out EM %.1f / F1 %.1f" % (
      metrics["squad"]["exact_match"], metrics["squad"]["f1"]) in output

  # A second run with the same flags reuses every stage and runs nothing.
  done_times = {name: os.path.getmtime(os.path.join(
      output_dir, name, "stage_done.json")) for name in METRICS}
  again_code, again = _quick_demo(output_dir)
  assert again_code == 0, again[-3000:]
  assert again.count("finished earlier, reusing") == 6, again[-3000:]
  assert "$ " not in again
  assert again.splitlines()[-2] == output.splitlines()[-2]  # The verdict.
  for name, mtime in done_times.items():
    assert os.path.getmtime(os.path.join(
        output_dir, name, "stage_done.json")) == mtime, name


def _quick_demo(output_dir):
  return script_helpers.run_script(
      "demo.py", ["--output_dir=" + output_dir, "--quick"], timeout=1200,
      expect_success=False)


@NEEDS_TF2
def test_a_tie_fails_the_demo(tmp_path):
  """Equal accuracies: the distilled student does not beat the baseline, and
  the demo says so and exits 1 (the quick run shows the winning side)."""
  output_dir = str(tmp_path / "demo")
  metrics = dict(METRICS)
  metrics["distill"] = dict(metrics["distill"], masked_lm_accuracy=0.25)
  metrics["scratch"] = dict(metrics["scratch"], masked_lm_accuracy=0.25)
  settings = _stage_settings(FLAGS)
  assert list(settings) == list(METRICS)
  _write_records(output_dir, settings, metrics)
  exit_code, output = _demo(output_dir)
  assert exit_code == 1, output[-3000:]
  assert "Traceback" not in output
  for index, name in enumerate(METRICS):
    assert "[%d/6] %s: " % (index + 1, name) in output
  assert output.count("finished earlier, reusing") == 6, output[-3000:]
  assert "$ " not in output  # No stage command ran.
  assert ("Distilled student (MLM accuracy 0.250) does NOT beat the same "
          "student trained from scratch for the same 12 steps (0.250)."
          in output)
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


@NEEDS_TF2
def test_flags_that_cannot_work_stop_before_any_stage(tmp_path):
  """Checked before the data stage, rather than minutes later in the stage
  that would fail; a flag given with --quick keeps its value.  (Every case
  also names a missing interpreter, so that none can start the demo.)"""
  output_dir = str(tmp_path / "demo")
  missing_python = str(tmp_path / "no_python")
  common = ["--output_dir=" + output_dir, "--python=" + missing_python]
  results = script_helpers.run_main_per_argv("demo", [
      common + ["--squad_train_questions=20", "--squad_batch_size=32",
                "--squad_epochs=1.5", "--qat_epochs=1"],
      common + ["--quick", "--max_seq_length=30"],
  ])
  no_python = "demo.py: --python=%s is not an executable interpreter." % (
      missing_python)
  assert [r["exit"] for r in results] == [1, 1], results
  # 20 / 32 * 1.5 = 0.94 steps, 20 / 32 * 1 = 0.63.
  assert results[0]["message"].splitlines() == [no_python] + [
      "demo.py: the %s stage's run_squad.py (--squad_train_questions, "
      "--squad_batch_size, --%s) would stop: No training step: 20 questions "
      "/ --train_batch_size=32 * --num_train_epochs=%s is below 1." % (
          stage, flag, epochs)
      for stage, flag, epochs in (("squad", "squad_epochs", "1.5"),
                                  ("qat", "qat_epochs", "1"))]
  assert results[1]["message"].splitlines() == [
      no_python, "demo.py: --max_seq_length=30 leaves no room for a SQuAD "
      "context after a 32-token question."]
  assert not os.path.exists(output_dir)
