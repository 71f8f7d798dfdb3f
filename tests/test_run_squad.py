# coding=utf-8
"""run_squad.py end to end: flag validation, learning, resume, export, TF-Lite.

The script runs in subprocesses, as users run it (run_squad and run_classifier
define the same absl flags, so they cannot both be imported in one process).

Learning task: each context is a random string of filler words with one
colour and two animals inserted at random places, and the question asks for
the colour.  The answer's position and text change with every context, so
only a model that reads the context can score; one that answers by position
alone gets about 1 in 15.
"""

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import tf_compat

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_CONFIG = os.path.join(REPO_ROOT, "config", "tiny_mobilebert.json")
TINY_QAT_CONFIG = os.path.join(REPO_ROOT, "config", "tiny_mobilebert_qat.json")

COLOURS = ["red", "blue", "green", "pink", "gray", "black", "white", "brown"]
ANIMALS = ["dog", "cat", "cow", "pig", "fox", "owl", "bee", "ant"]
FILLER = ["the", "a", "is", "on", "near", "big", "old", "box", "cup", "hat",
          "sat", "ran", "and", "with"]
QUESTION = "what color is named ?"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

MAX_SEQ_LENGTH = 32
TRAIN_QUESTIONS = 400
TRAIN_BATCH = 32
TRAIN_EPOCHS = 12.0  # int(400 / 32 * 12) = 150 steps
TRAIN_STEPS = 150
RESUME_EPOCHS = 12.5  # int(400 / 32 * 12.5) = 156 steps
RESUME_STEPS = 156
PROBE_VARIABLE = "bert/encoder/layer_0/attention/self/query/kernel"


def _make_squad_file(path, num_questions, seed):
  rng = random.Random(seed)
  paragraphs = []
  for p in range(num_questions):
    words = [rng.choice(FILLER) for _ in range(rng.randint(6, 12))]
    colour = rng.choice(COLOURS)
    for word in rng.sample(ANIMALS, 2) + [colour]:
      words.insert(rng.randint(0, len(words)), word)
    context = " ".join(words) + " ."
    index = words.index(colour)
    start = len(" ".join(words[:index])) + (1 if index else 0)
    assert context[start:start + len(colour)] == colour
    paragraphs.append({"context": context, "qas": [{
        "id": "p%d" % p, "question": QUESTION,
        "answers": [{"text": colour, "answer_start": start}]}]})
  with open(path, "w") as f:
    json.dump({"version": "1.1",
               "data": [{"title": "colours", "paragraphs": paragraphs}]}, f)
  return path


def _run_squad(args, timeout=900):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT)
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "run_squad.py")] + args,
      cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      universal_newlines=True, timeout=timeout)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return proc.stderr


def _load_json(path):
  with open(path) as f:
    return json.load(f)


def _gold_answers(squad_file):
  data = _load_json(squad_file)["data"]
  return {qa["id"]: qa["answers"][0]["text"]
          for article in data for paragraph in article["paragraphs"]
          for qa in paragraph["qas"]}


@pytest.fixture(scope="module", name="workspace")
def fixture_workspace(tmp_path_factory):
  root = tmp_path_factory.mktemp("squad")
  vocab = SPECIAL + sorted(set(COLOURS + ANIMALS + FILLER +
                               QUESTION.split() + ["."]))
  vocab_file = root / "vocab.txt"
  vocab_file.write_text("\n".join(vocab) + "\n")
  return {
      "root": root,
      "vocab": str(vocab_file),
      "train": _make_squad_file(str(root / "train.json"), TRAIN_QUESTIONS, 1),
      "dev": _make_squad_file(str(root / "dev.json"), 100, 2),
  }


def _common_flags(workspace, output_dir):
  return ["--bert_config_file=" + TINY_CONFIG,
          "--vocab_file=" + workspace["vocab"],
          "--output_dir=" + output_dir,
          "--data_dir=" + str(workspace["root"] / "data_cache"),
          "--do_lower_case",
          "--max_seq_length=%d" % MAX_SEQ_LENGTH,
          "--max_query_length=12",
          "--doc_stride=16",
          "--max_answer_length=30",
          "--n_best_size=20"]


@pytest.fixture(scope="module", name="trained")
def fixture_trained(workspace):
  output_dir = str(workspace["root"] / "out")
  log = _run_squad(_common_flags(workspace, output_dir) + [
      "--do_train", "--do_predict",
      "--train_file=" + workspace["train"],
      "--predict_file=" + workspace["dev"],
      "--train_batch_size=%d" % TRAIN_BATCH,
      "--num_train_epochs=%s" % TRAIN_EPOCHS,
      "--learning_rate=1e-3",
      "--warmup_proportion=0.1",
      "--save_checkpoints_steps=1000"])
  checkpoint = tf.train.latest_checkpoint(output_dir)
  return {
      "output_dir": output_dir,
      "log": log,
      "checkpoint": checkpoint,
      "probe": tf.train.load_checkpoint(checkpoint).get_tensor(PROBE_VARIABLE),
      "predictions": _load_json(os.path.join(output_dir, "predictions.json")),
  }


def test_learns_to_read_question_and_context(workspace, trained):
  log = trained["log"]
  assert "Num questions = %d" % TRAIN_QUESTIONS in log
  assert "Num features (windows) = %d" % TRAIN_QUESTIONS in log
  assert "Num steps = %d (warm-up %d)" % (TRAIN_STEPS, TRAIN_STEPS // 10) in log
  assert trained["checkpoint"].endswith("model.ckpt-%d" % TRAIN_STEPS)

  results = _load_json(os.path.join(trained["output_dir"],
                                    "eval_results.json"))
  assert results["f1"] >= 80.0, results
  # Every answer is one word, so exact match is plain string equality.
  gold = _gold_answers(workspace["dev"])
  predictions = trained["predictions"]
  assert set(predictions) == set(gold)
  exact = 100.0 * np.mean([predictions[q] == gold[q] for q in gold])
  assert results["exact_match"] == pytest.approx(exact)
  assert results["total"] == 100
  nbest = _load_json(os.path.join(trained["output_dir"],
                                  "nbest_predictions.json"))
  assert all(nbest[q][0]["text"] == predictions[q] for q in gold)


@pytest.fixture(scope="module", name="resumed")
def fixture_resumed(workspace, trained):
  """Re-runs training (learning rate 0), prediction and export in one run."""
  output_dir = trained["output_dir"]
  export_dir = str(workspace["root"] / "export")
  export_flags = ["--use_post_quantization=true"]
  if tf_compat.IS_TF2:
    export_flags.append("--activation_quantization=true")
  else:
    export_flags.append("--activation_quantization=false")
  log = _run_squad(_common_flags(workspace, output_dir) + export_flags + [
      "--do_train", "--do_predict",
      "--train_file=" + workspace["train"],
      "--predict_file=" + workspace["dev"],
      "--train_batch_size=%d" % TRAIN_BATCH,
      "--num_train_epochs=%s" % RESUME_EPOCHS,
      "--learning_rate=0",
      "--export_dir=" + export_dir])
  return {"log": log, "export_dir": export_dir, "output_dir": output_dir}


def test_resume_predict_and_export_in_one_run(trained, resumed):
  assert "Reusing cached training features" in resumed["log"]
  latest = tf.train.latest_checkpoint(resumed["output_dir"])
  assert latest.endswith("model.ckpt-%d" % RESUME_STEPS)
  # With learning rate 0 the weights can only equal the first run's if
  # training resumed from its checkpoint instead of a fresh initialisation.
  np.testing.assert_array_equal(
      tf.train.load_checkpoint(latest).get_tensor(PROBE_VARIABLE),
      trained["probe"])
  assert _load_json(os.path.join(resumed["output_dir"],
                                 "predictions.json")) == trained["predictions"]
  export_dir = resumed["export_dir"]
  assert os.path.exists(os.path.join(export_dir, "model_float.tflite"))
  assert os.path.isdir(os.path.join(export_dir, "saved_model"))
  if tf_compat.IS_TF2:
    # Calibrated on the first 100 questions of --train_file (one window each).
    assert "Representative dataset: 100 features" in resumed["log"]


def test_lite_prediction_matches_estimator(workspace, trained, resumed):
  output_dir = str(workspace["root"] / "lite_out")
  _run_squad(_common_flags(workspace, output_dir) + [
      "--do_predict",
      "--predict_file=" + workspace["dev"],
      "--lite_model_path=" + os.path.join(resumed["export_dir"],
                                          "model_float.tflite")])
  assert _load_json(os.path.join(output_dir, "predictions.json")) == (
      trained["predictions"])
  lite_results = _load_json(os.path.join(output_dir, "eval_results.json"))
  estimator_results = _load_json(os.path.join(trained["output_dir"],
                                              "eval_results.json"))
  assert lite_results["f1"] == pytest.approx(estimator_results["f1"])


_VALIDATION_DRIVER = r"""
import json, sys
import modeling, run_squad
results = []
for argv in json.loads(sys.argv[1]):
  run_squad.FLAGS.unparse_flags()
  run_squad.FLAGS(["run_squad"] + argv)
  config = modeling.BertConfig.from_json_file(run_squad.FLAGS.bert_config_file)
  try:
    run_squad.validate_flags_or_throw(config)
    results.append(None)
  except ValueError as error:
    results.append(str(error))
print("RESULTS=" + json.dumps(results))
"""


def test_flag_validation(workspace):
  tmp = workspace["root"]
  base = ["--bert_config_file=" + TINY_CONFIG,
          "--vocab_file=" + workspace["vocab"],
          "--output_dir=" + str(tmp / "empty_out")]
  train = ["--do_train", "--train_file=" + workspace["train"],
           "--max_seq_length=96"]
  cases = [
      (train, None),
      (train + ["--hub_module_url=https://tfhub.dev/x"],
       "TF-Hub modules are not supported; use --init_checkpoint"),
      ([], "At least one of --do_train, --do_predict or --export_dir"),
      (["--do_train", "--max_seq_length=96"], "--train_file is required"),
      (train + ["--max_seq_length=256"], "max_position_embeddings=128"),
      (train + ["--max_query_length=93"],
       "--max_seq_length (96) must be greater than --max_query_length (93)"),
      (train + ["--use_quantized_training"], "hidden_act must be relu6"),
      (["--do_predict", "--predict_file=" + str(tmp / "missing.json"),
        "--max_seq_length=96"], "missing.json does not exist"),
      (["--do_predict", "--predict_file=" + workspace["dev"],
        "--max_seq_length=96"], "has no checkpoint"),
      (["--export_dir=" + str(tmp / "x"), "--max_seq_length=96"],
       "has no checkpoint"),
      (train + ["--lite_model_path=" + str(tmp / "m.tflite")],
       "only used with --do_predict"),
      (train + ["--init_checkpoint=" + str(tmp / "nothing.ckpt")],
       "No checkpoint at"),
      (train + ["--export_dir=" + str(tmp / "x"),
                "--activation_quantization=true"],
       "only applies together with --use_post_quantization"),
  ]
  argvs = [base + extra for extra, _ in cases]
  # The QAT config passes the QAT check.
  argvs.append(["--bert_config_file=" + TINY_QAT_CONFIG] + base[1:] + train +
               ["--use_quantized_training"])
  expected = [message for _, message in cases] + [None]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT)
  proc = subprocess.run(
      [sys.executable, "-c", _VALIDATION_DRIVER, json.dumps(argvs)],
      cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      universal_newlines=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  line = [l for l in proc.stdout.splitlines() if l.startswith("RESULTS=")][0]
  results = json.loads(line[len("RESULTS="):])
  for argv, want, got in zip(argvs, expected, results):
    if want is None:
      assert got is None, (argv, got)
    else:
      assert got is not None and want in got, (argv, want, got)
