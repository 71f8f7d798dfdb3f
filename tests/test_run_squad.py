"""run_squad.py end to end: flag validation, learning, resume, export, TF-Lite,
SQuAD 2.0 and bad input.

The script runs in subprocesses, as users run it (run_squad and run_classifier
define the same absl flags, so they cannot both be imported in one process).
The learning task is toy_tasks' colour questions.
"""

import json
import os
import re
import string
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import numpy_mobilebert
import script_helpers
import tf_compat
import toy_tasks

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The shipped configs, for runs that stop at flag validation.
TINY_CONFIG = os.path.join(REPO_ROOT, "config", "tiny_mobilebert.json")
TINY_QAT_CONFIG = os.path.join(REPO_ROOT, "config", "tiny_mobilebert_qat.json")

MAX_SEQ_LENGTH = 32
TRAIN_QUESTIONS = 400
TRAIN_BATCH = 32
TRAIN_EPOCHS = 12.0  # int(400 / 32 * 12) = 150 steps
TRAIN_STEPS = 150
RESUME_EPOCHS = 12.5  # int(400 / 32 * 12.5) = 156 steps
RESUME_STEPS = 156
V2_EPOCHS = 12.0  # int(400 / 32 * 12) = 150 steps
V2_STEPS = 150
PROBE_VARIABLE = "bert/encoder/layer_0/attention/self/query/kernel"


def _run_squad(args, timeout=900, fresh_process=False):
  return script_helpers.run_script("run_squad.py", args, timeout,
                                   fresh_process=fresh_process)[1]


def _load_json(path):
  with open(path) as f:
    return json.load(f)


@pytest.fixture(scope="module", name="workspace")
def fixture_workspace(tmp_path_factory):
  root = tmp_path_factory.mktemp("squad")
  return {
      "root": root,
      # Training runs use the tiny config cut to 2 layers of 2 FFNs.
      "config": script_helpers.write_cut_config(
          root / "bert_config.json", "tiny_mobilebert.json",
          num_hidden_layers=2, num_feedforward_networks=2),
      "vocab": toy_tasks.write_vocab(root / "vocab.txt"),
      "train": toy_tasks.make_colour_squad_file(root / "train.json",
                                                TRAIN_QUESTIONS, 1),
      "dev": toy_tasks.make_colour_squad_file(root / "dev.json", 100, 2),
  }


RANDOM_SEED = 7


def _common_flags(workspace, output_dir):
  return ["--bert_config_file=" + workspace["config"],
          "--vocab_file=" + workspace["vocab"],
          "--output_dir=" + output_dir,
          "--data_dir=" + str(workspace["root"] / "data_cache"),
          "--do_lower_case",
          "--max_seq_length=%d" % MAX_SEQ_LENGTH,
          "--max_query_length=%d" % toy_tasks.MAX_QUERY_LENGTH,
          "--doc_stride=%d" % toy_tasks.DOC_STRIDE,
          "--max_answer_length=30",
          "--n_best_size=20",
          # Seeded: the thresholds below hold for one record order and
          # initialisation, not for every one.
          "--random_seed=%d" % RANDOM_SEED]


@pytest.fixture(scope="module", name="trained")
def fixture_trained(workspace):
  output_dir = str(workspace["root"] / "out")
  # A fresh interpreter: its console is checked, TensorFlow's import included.
  log = _run_squad(_common_flags(workspace, output_dir) + [
      "--do_train", "--do_predict",
      "--train_file=" + workspace["train"],
      "--predict_file=" + workspace["dev"],
      "--train_batch_size=%d" % TRAIN_BATCH,
      "--num_train_epochs=%s" % TRAIN_EPOCHS,
      "--learning_rate=1e-3",
      "--warmup_proportion=0.1",
      "--save_checkpoints_steps=1000"], fresh_process=True)
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
  gold = toy_tasks.gold_answers(workspace["dev"])
  predictions = trained["predictions"]
  assert set(predictions) == set(gold)
  exact = 100.0 * np.mean([predictions[q] == gold[q] for q in gold])
  assert results["exact_match"] == pytest.approx(exact)
  assert results["total"] == 100
  nbest = _load_json(os.path.join(trained["output_dir"],
                                  "nbest_predictions.json"))
  assert all(nbest[q][0]["text"] == predictions[q] for q in gold)


def test_console_prints_each_line_once_without_tensorflow_noise(trained):
  """The README's recipe's console: our lines once each, the progress line
  of the last step, none of TensorFlow's import or deprecation noise."""
  log = trained["log"]
  for line in ("***** Running training *****", "Num steps = %d" % TRAIN_STEPS,
               "***** Running predictions *****", "***** Eval results *****"):
    assert log.count(line) == 1, (line, log.count(line))
  assert re.search(r"Training: step %d of %d \(100%%\), loss -?\d+\.\d{4}, "
                   r"[\d.]+ steps/s, [\d.]+ examples/s\n" %
                   (TRAIN_STEPS, TRAIN_STEPS), log), log[-3000:]
  assert re.search(r"Predicting: example 100 of 100, [\d.]+ examples/s\n", log)
  for noise in ("Unable to register", "is deprecated", "Calling model_fn",
                "global_step/sec", "INFO:tensorflow:"):
    assert noise not in log, noise
  assert len(log.splitlines()) < 60, log


@pytest.fixture(scope="module", name="resumed")
def fixture_resumed(workspace, trained):
  """Re-runs training (learning rate 0), prediction and export in one run."""
  output_dir = trained["output_dir"]
  export_dir = str(workspace["root"] / "export")
  export_flags = ["--use_post_quantization=true"]
  if tf_compat.IS_TF2:
    export_flags += ["--activation_quantization=true", "--float_softmax"]
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


def test_random_seed_makes_a_run_repeatable(workspace, trained, diverged):
  """The README's --random_seed: the fixture's training command run again
  with the same seed gives the same weights and predictions; another seed
  (the diverged run's) starts from other initial weights."""
  again = str(workspace["root"] / "seeded_again")
  _run_squad(_common_flags(workspace, again) + [
      "--do_train", "--train_file=" + workspace["train"],
      "--train_batch_size=%d" % TRAIN_BATCH,
      "--num_train_epochs=%s" % TRAIN_EPOCHS, "--learning_rate=1e-3",
      "--warmup_proportion=0.1", "--save_checkpoints_steps=1000",
      "--do_predict", "--predict_file=" + workspace["dev"]])
  # Every variable, the optimizer's slots and the step included.
  first = script_helpers.checkpoint_values(trained["checkpoint"],
                                           model_only=False)
  second = script_helpers.checkpoint_values(
      tf.train.latest_checkpoint(again), model_only=False)
  assert sorted(first) == sorted(second)
  for name, value in first.items():
    # float32 sums may be ordered differently between runs by threading.
    np.testing.assert_allclose(second[name], value, rtol=1e-5, atol=1e-6,
                               err_msg=name)
  assert _load_json(os.path.join(again, "predictions.json")) == (
      trained["predictions"])
  initial = os.path.join(trained["output_dir"], "model.ckpt-0")
  other_initial = os.path.join(diverged["output_dir"], "model.ckpt-0")
  assert not np.allclose(
      script_helpers.checkpoint_values(other_initial)[PROBE_VARIABLE],
      script_helpers.checkpoint_values(initial)[PROBE_VARIABLE])


def test_resume_predict_and_export_in_one_run(trained, resumed):
  assert "Reusing cached features" in resumed["log"]
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
    assert "Calibration set: 100 features" in resumed["log"]


def _numpy_references(workspace, trained, count=4):
  """(features, [(start, end) logits]) of the first `count` dev questions,
  from the numpy MobileBERT on the trained checkpoint's weights."""
  import tokenization  # pylint: disable=g-import-not-at-top
  _, features = toy_tasks.prediction_features(
      workspace["dev"], tokenization.FullTokenizer(workspace["vocab"]),
      MAX_SEQ_LENGTH, max_examples=count)
  weights = script_helpers.checkpoint_values(trained["checkpoint"])
  with open(workspace["config"]) as f:
    config = json.load(f)
  references = []
  for feature in features:
    start, end = numpy_mobilebert.squad_logits(
        config, weights, np.array([feature.input_ids]),
        np.array([feature.input_mask]), np.array([feature.segment_ids]))
    references.append((start[0], end[0]))
  return features, references


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
  # Both run the same graph code; the file's logits must also be the numpy
  # MobileBERT's on the trained weights.
  import tflite_runner  # pylint: disable=g-import-not-at-top
  lite_model = tflite_runner.LiteModel(
      os.path.join(resumed["export_dir"], "model_float.tflite"))
  for feature, reference in zip(*_numpy_references(workspace, trained)):
    got = lite_model.run(feature.input_ids, feature.input_mask,
                         feature.segment_ids)
    # float32 against float64 (the toy model's logits grow large).
    for name, expected in zip(("start_logits", "end_logits"), reference):
      np.testing.assert_allclose(
          got[name][0], expected, rtol=1e-5,
          atol=1e-5 * np.abs(expected).max() + 1e-4)


def test_every_quantized_file_run_squad_writes_predicts(workspace, trained,
                                                        resumed):
  """Each quantized file of the export (dynamic-range; on TF 2.15 also the
  calibrated int8 file and its float-softmax twin) puts the start and the
  end of every one of 20 dev questions on the numpy MobileBERT's token, and
  the last one answers through run_squad.py --lite_model_path as the
  estimator did.

  The toy model's logits reach 4e7 with runners-up near half that, so the
  answer tokens are clear while the int8 logits, 256 levels over such a
  range, carry little else; only the dynamic-range file (float
  activations) is held to the numpy logits' values (relative RMS error
  under 5% over the real tokens)."""
  import export_tflite  # pylint: disable=g-import-not-at-top
  import tflite_runner  # pylint: disable=g-import-not-at-top
  kinds = ["dynamic_range"] + (["int8", "int8_float_softmax"]
                               if tf_compat.IS_TF2 else [])
  assert sorted(name for name in os.listdir(resumed["export_dir"])
                if name.endswith(".tflite")) == sorted(
                    export_tflite.TFLITE_FILES[kind]
                    for kind in ["float"] + kinds)
  features, references = _numpy_references(workspace, trained, count=20)
  for kind in kinds:
    path = os.path.join(resumed["export_dir"],
                        export_tflite.TFLITE_FILES[kind])
    lite_model = tflite_runner.LiteModel(path)
    squared_error = squared_norm = 0.0
    for feature, reference in zip(features, references):
      got = lite_model.run(feature.input_ids, feature.input_mask,
                           feature.segment_ids)
      real = np.array(feature.input_mask, dtype=bool)
      for name, expected in zip(("start_logits", "end_logits"), reference):
        assert (np.argmax(np.where(real, got[name][0], -np.inf)) ==
                np.argmax(np.where(real, expected, -np.inf))), (kind, name)
        squared_error += np.sum((got[name][0][real] - expected[real]) ** 2)
        squared_norm += np.sum(expected[real] ** 2)
    if kind == "dynamic_range":
      assert np.sqrt(squared_error / squared_norm) < 0.05
  output_dir = str(workspace["root"] / ("lite_%s_out" % kinds[-1]))
  _run_squad(_common_flags(workspace, output_dir) + [
      "--do_predict", "--predict_file=" + workspace["dev"],
      "--lite_model_path=" + os.path.join(
          resumed["export_dir"], export_tflite.TFLITE_FILES[kinds[-1]])])
  assert _load_json(os.path.join(output_dir, "predictions.json")) == (
      trained["predictions"])


_VALIDATION_DRIVER = r"""
import json, sys
import run_squad
run_squad.define_flags()
results = []
for argv in json.loads(sys.argv[1]):
  run_squad.FLAGS.unparse_flags()
  run_squad.FLAGS(["run_squad"] + argv)
  try:
    run_squad.validate_flags()
    results.append(None)
  except SystemExit as error:
    results.append(str(error.code))
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
      (train + ["--export_dir=" + str(tmp / "x"),
                "--use_post_quantization=true", "--float_softmax"],
       "--float_softmax writes a variant of the integer model, so it needs "
       "one"),
  ]
  # Independent problems are all reported, one "run_squad.py: ..." line each.
  cases.append((train + ["--max_seq_length=256", "--warmup_proportion=2",
                         "--doc_stride=0"],
                "run_squad.py: --max_seq_length=256 exceeds "
                "max_position_embeddings=128"))
  argvs = [base + extra for extra, _ in cases]
  # The QAT config passes the QAT check.
  argvs.append(["--bert_config_file=" + TINY_QAT_CONFIG] + base[1:] + train +
               ["--use_quantized_training"])
  expected = [message for _, message in cases] + [None]
  _, output = script_helpers.run_script(
      None, ["-c", _VALIDATION_DRIVER, json.dumps(argvs)], timeout=300)
  line = [l for l in output.splitlines() if l.startswith("RESULTS=")][0]
  results = json.loads(line[len("RESULTS="):])
  for argv, want, got in zip(argvs, expected, results):
    if want is None:
      assert got is None, (argv, got)
    else:
      assert got is not None and want in got, (argv, want, got)
  several = results[len(cases) - 1].splitlines()
  assert len(several) == 3 and all(
      line.startswith("run_squad.py: --") or
      line.startswith("run_squad.py: Cannot") for line in several), several
  assert "--warmup_proportion must be in [0, 1]" in several[2], several
  assert "--doc_stride must be positive" in several[1], several


# --- SQuAD 2.0 ------------------------------------------------------------


@pytest.fixture(scope="module", name="squad_v2")
def fixture_squad_v2(workspace, trained):
  """Fine-tunes on SQuAD 2.0 questions (a third without a colour in the
  context, so without an answer) from the trained run's step-0 checkpoint and
  predicts a 2.0 dev set at the default threshold.

  Not from its final checkpoint: trained to a loss of about 0, that model
  puts the [CLS] logits so far off that its first 2.0 loss is in the
  millions, and whether training survives that depends on the CPU's float
  rounding (it diverged with oneDNN off).
  """
  root = workspace["root"]
  train = toy_tasks.write_squad_file(
      root / "train_v2.json", toy_tasks.colour_paragraphs(
          TRAIN_QUESTIONS, 3, unanswerable_every=3), version="v2.0")
  dev = toy_tasks.write_squad_file(
      root / "dev_v2.json", toy_tasks.colour_paragraphs(
          90, 4, unanswerable_every=3), version="v2.0")
  output_dir = str(root / "v2")
  log = _run_squad(_common_flags(workspace, output_dir) + [
      "--version_2_with_negative", "--do_train", "--do_predict",
      "--train_file=" + train, "--predict_file=" + dev,
      # A path ending in .data-*, one of the README's forms.
      "--init_checkpoint=" + os.path.join(
          trained["output_dir"], "model.ckpt-0.data-00000-of-00001"),
      "--train_batch_size=%d" % TRAIN_BATCH,
      "--num_train_epochs=%s" % V2_EPOCHS,
      "--learning_rate=1e-3", "--data_dir=" + str(root / "v2_cache")])
  return {"dev": dev, "output_dir": output_dir, "log": log}


def _v2_outputs(output_dir):
  return (_load_json(os.path.join(output_dir, "predictions.json")),
          _load_json(os.path.join(output_dir, "null_odds.json")),
          _load_json(os.path.join(output_dir, "eval_results.json")))


def test_squad_v2_answers_empty_above_the_threshold(workspace, squad_v2):
  assert "Num steps = %d" % V2_STEPS in squad_v2["log"]
  gold = toy_tasks.gold_answers(squad_v2["dev"])
  predictions, null_odds, results = _v2_outputs(squad_v2["output_dir"])
  assert set(predictions) == set(null_odds) == set(gold)
  # Default --null_score_diff_threshold=0: "" exactly where the null score
  # beats the best span.
  assert {q for q in gold if predictions[q] == ""} == {
      q for q in gold if null_odds[q] > 0.0}

  impossible = [q for q in gold if gold[q] == ""]
  answerable = [q for q in gold if gold[q]]
  assert results["NoAns_total"] == len(impossible) == 30
  assert results["HasAns_total"] == len(answerable) == 60

  def normalized(text):
    # SQuAD's answer normalization: lower case, no punctuation, no articles.
    words = "".join(c for c in text.lower() if c not in string.punctuation)
    return " ".join(w for w in words.split() if w not in ("a", "an", "the"))

  # Every answer is one word: exact match is equality after normalization.
  def share(questions):
    return 100.0 * np.mean([normalized(predictions[q]) == normalized(gold[q])
                            for q in questions])
  assert results["exact_match"] == pytest.approx(share(gold))
  assert results["HasAns_exact"] == pytest.approx(share(answerable))
  assert results["NoAns_exact"] == pytest.approx(share(impossible))
  assert results["NoAns_f1"] == pytest.approx(share(impossible))
  # The official script's threshold search, written here from its
  # description: start from "every question empty" (the impossible ones
  # right), then let questions answer in order of rising null odds; an
  # answerable one adds its score, an impossible one given an answer costs a
  # point; keep the best count and the null odds where it was reached.
  def best_threshold(score):
    count = best = len(impossible)
    threshold = 0.0
    for q in sorted(gold, key=lambda q: null_odds[q]):
      if gold[q]:
        count += score(q)
      elif predictions[q]:
        count -= 1
      if count > best:
        best, threshold = count, null_odds[q]
    return 100.0 * best / len(gold), threshold

  exact = lambda q: float(normalized(predictions[q]) == normalized(gold[q]))
  best_exact, best_exact_thresh = best_threshold(exact)
  assert results["best_exact"] == pytest.approx(best_exact)
  assert results["best_exact_thresh"] == pytest.approx(best_exact_thresh)
  # One-word gold answers: a prediction's F1 is 2 / (words + 1) when it
  # contains the answer, 0 otherwise.
  def f1(q):
    words = normalized(predictions[q]).split()
    return (2.0 / (len(words) + 1) if normalized(gold[q]) in words else 0.0)
  assert results["best_f1"] == pytest.approx(best_threshold(f1)[0])
  # Training with impossible questions teaches some of them.
  assert results["NoAns_exact"] > 0.0


def test_squad_v2_lower_threshold_answers_fewer(workspace, squad_v2):
  """The same logits at a lower threshold than the default 0: the empty
  answers are exactly the questions whose null odds exceed it, a superset of
  the default's."""
  _, null_odds, _ = _v2_outputs(squad_v2["output_dir"])
  odds = sorted(null_odds.values())
  threshold = odds[len(odds) // 4]
  assert threshold < 0.0, odds  # else pick a dev set with fewer null wins
  output_dir = str(workspace["root"] / "v2_low")
  _run_squad(_common_flags(workspace, output_dir) + [
      "--version_2_with_negative", "--do_predict",
      "--predict_file=" + squad_v2["dev"],
      "--init_checkpoint=" + tf.train.latest_checkpoint(
          squad_v2["output_dir"]),
      "--null_score_diff_threshold=%r" % threshold])
  low_predictions, low_odds, _ = _v2_outputs(output_dir)
  default_predictions, _, _ = _v2_outputs(squad_v2["output_dir"])
  assert low_odds == pytest.approx(null_odds)
  empty_low = {q for q, text in low_predictions.items() if text == ""}
  empty_default = {q for q, text in default_predictions.items() if text == ""}
  assert empty_low == {q for q in null_odds if null_odds[q] > threshold}
  assert empty_low > empty_default
  for q in set(null_odds) - empty_low:
    assert low_predictions[q] == default_predictions[q] != ""


# --- Bad input: one line, nothing lost ---------------------------------------

def _write_tflite_with_inputs(path, names):
  with tf.Graph().as_default():
    inputs = [tf.placeholder(tf.int32, [1, MAX_SEQ_LENGTH], name=name)
              for name in names]
    output = tf.identity(tf.cast(tf.add_n(inputs), tf.float32),
                         name="start_logits")
    with tf.Session() as session:
      converter = tf.lite.TFLiteConverter.from_session(session, inputs,
                                                       [output])
      with open(path, "wb") as f:
        f.write(converter.convert())
  return path


def test_bad_input_ends_in_one_line(workspace, trained, resumed, monkeypatch):
  # TF 1.15's converter runs `toco_from_protos` from the venv's bin, which
  # an activated venv has on PATH (the test process need not).
  monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep +
                     os.environ.get("PATH", ""))
  root = workspace["root"] / "bad"
  os.makedirs(str(root))
  checkpoint = trained["checkpoint"]
  bad_data = script_helpers.copy_checkpoint(checkpoint,
                                            str(root / "bad_data"))
  script_helpers.damage_file(bad_data + ".data-00000-of-00001")
  bad_index = script_helpers.copy_checkpoint(checkpoint,
                                             str(root / "bad_index"))
  script_helpers.damage_file(bad_index + ".index", offset_from_end=3)
  config_file = workspace["config"]
  wide = json.load(open(config_file))
  wide["intermediate_size"] = 96
  wide_config = str(root / "wide.json")
  json.dump(wide, open(wide_config, "w"))
  not_tflite = str(root / "model.tflite")
  with open(not_tflite, "w") as f:
    f.write("not a model")
  wrong_inputs = _write_tflite_with_inputs(str(root / "wrong.tflite"),
                                           ["tokens", "attention", "types"])
  big_vocab = str(root / "big_vocab.txt")
  with open(big_vocab, "w") as f:
    f.write("\n".join(toy_tasks.SPECIAL_TOKENS +
                      ["w%d" % i for i in range(1100)]) + "\n")
  big_model = dict(json.load(open(config_file)), vocab_size=2048)
  big_model_config = str(root / "big_model.json")
  json.dump(big_model, open(big_model_config, "w"))
  exported = os.path.join(resumed["export_dir"], "model_float.tflite")
  blocker = str(root / "a_file")
  open(blocker, "w").close()
  half_answered = toy_tasks.colour_paragraphs(10, 9)
  for paragraph in half_answered[:4]:
    paragraph["qas"][0]["answers"] = []
  half_answered_file = toy_tasks.write_squad_file(root / "half.json",
                                                  half_answered)
  unanswered = toy_tasks.colour_paragraphs(6, 9)
  for paragraph in unanswered:
    paragraph["qas"][0]["answers"] = []
  unanswered_file = toy_tasks.write_squad_file(root / "test.json", unanswered)

  def flags(output_dir, *extra):
    return _common_flags(workspace, str(root / output_dir)) + list(extra)

  predict = ["--do_predict", "--predict_file=" + workspace["dev"]]
  train = ["--do_train", "--train_file=" + workspace["train"],
           "--num_train_epochs=0.1"]
  cases = [
      (flags("o1", "--init_checkpoint=" + bad_data, *predict),
       ["is damaged", "cannot be read from its .data file", bad_data]),
      (flags("o2", "--init_checkpoint=" + bad_index, *predict),
       ["is damaged", ".index file cannot be read", bad_index]),
      ([a.replace(config_file, wide_config)
        for a in flags("o3", "--init_checkpoint=" + checkpoint, *train)],
       ["bert/encoder/layer_0/ffn_layer_0/intermediate/dense/bias", "[64]",
        "[96]"]),
      (flags("o4", "--lite_model_path=" + not_tflite, *predict),
       [not_tflite, "is not a TF-Lite model"]),
      (flags("o5", "--lite_model_path=" + wrong_inputs, *predict),
       [wrong_inputs, "no input named input_ids", "tokens"]),
      ([a.replace(workspace["vocab"], big_vocab)
        for a in flags("o6", "--init_checkpoint=" + checkpoint, *predict)],
       ["--vocab_file=" + big_vocab, "1105 tokens", "vocab_size", "1024"]),
      # A vocabulary (1105 tokens) beyond the file's embedding table (1024
      # rows) under a config that claims 2048: refused before any GATHER.
      ([a.replace(workspace["vocab"], big_vocab).replace(config_file,
                                                         big_model_config)
        for a in flags("o10", "--lite_model_path=" + exported, *predict)],
       ["--lite_model_path=" + exported, "--bert_config_file=" +
        big_model_config, "bert/embeddings/word_embeddings has 1024 rows",
        "vocab_size=2048"]),
      ([a.replace("--max_seq_length=%d" % MAX_SEQ_LENGTH,
                  "--max_seq_length=48")
        for a in flags("o11", "--lite_model_path=" + exported, *predict)],
       [exported, "takes sequences of %d tokens" % MAX_SEQ_LENGTH,
        "--max_seq_length=48"]),
      (flags("a_file/out", "--init_checkpoint=" + checkpoint, *predict),
       ["--output_dir=", "cannot be created", "a_file is a file"]),
      (flags("o8", "--init_checkpoint=" + checkpoint, "--do_predict",
             "--predict_file=" + half_answered_file),
       ["--predict_file=" + half_answered_file, "4 of 10 questions",
        "--version_2_with_negative"]),
      (flags("o9", "--init_checkpoint=" + checkpoint, "--do_predict",
             "--predict_file=" + unanswered_file), None),
  ]
  results = script_helpers.run_main_per_argv(
      "run_squad", [argv for argv, _ in cases])
  assert len(results) == len(cases), results
  for (argv, wanted), result in zip(cases, results):
    assert "traceback" not in result, result["traceback"]
    if wanted is None:
      assert result["exit"] == 0, (argv, result)
      continue
    assert result["exit"] == 1, argv
    message = result["message"]
    assert "\n" not in message and message.startswith("run_squad.py: "), (
        message)
    for part in wanted:
      assert part in message, (part, message)
  # Nothing lost: the refused half-answered file still got its predictions;
  # the test set got predictions and no scores.
  assert len(_load_json(str(root / "o8" / "predictions.json"))) == 10
  assert len(_load_json(str(root / "o9" / "predictions.json"))) == 6
  assert not os.path.exists(str(root / "o9" / "eval_results.json"))
  assert not os.path.exists(str(root / "o1"))  # refused before writing


@pytest.fixture(scope="module")
def diverged(workspace):
  """Training at a learning rate of 1e12 (it diverges from any start), with
  another seed than the other runs: the seed test reads its initial
  checkpoint."""
  output_dir = str(workspace["root"] / "diverged")
  flags = [flag for flag in _common_flags(workspace, output_dir)
           if not flag.startswith("--random_seed=")]
  # 1e12 takes the weights to inf in the first update; three steps
  # (400 / 32 * 0.25) reach the NaN loss.
  code, log = script_helpers.run_script(
      "run_squad.py", flags + [
          "--random_seed=%d" % (RANDOM_SEED + 1), "--do_train",
          "--train_file=" + workspace["train"],
          "--train_batch_size=%d" % TRAIN_BATCH, "--num_train_epochs=0.25",
          "--learning_rate=1e12", "--warmup_proportion=0"],
      expect_success=False)
  return dict(output_dir=output_dir, code=code, log=log)


def test_diverged_training_ends_in_one_line_and_keeps_checkpoints(diverged):
  log = diverged["log"]
  assert diverged["code"] == 1
  assert script_helpers.last_line(log).startswith(
      "run_squad.py: training diverged: the loss became NaN."), log[-2000:]
  assert "Traceback" not in log
  assert tf.train.latest_checkpoint(diverged["output_dir"]).endswith(
      "model.ckpt-0")


def test_no_flags_at_all_lists_what_is_missing():
  code, output = script_helpers.run_script("run_squad.py", [],
                                           expect_success=False)
  lines = [l for l in output.splitlines() if l.startswith("run_squad.py: ")]
  assert code == 1 and "Traceback" not in output and "FATAL" not in output
  assert lines[:2] == ["run_squad.py: --bert_config_file is required.",
                       "run_squad.py: --output_dir is required."], output[-2000:]
  assert any("At least one of --do_train" in l for l in lines), lines
