"""run_classifier.py end to end on generated GLUE-format data with a tiny model.

The generated MNLI-format task is learnable from one keyword of the
hypothesis ("yes" -> entailment, "no" -> contradiction, neither -> neutral),
so a tiny MobileBERT must reach high accuracy on both dev sets.
"""

import json
import math
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FILLER = ["the", "cat", "dog", "sat", "ran", "on", "mat", "big", "small", "red",
          "blue", "house", "tree", "park", "walked", "slowly", "today", "with",
          "friend", "car", "green", "old", "new", "man", "woman", "saw", "bird"]
KEYWORDS = {"yes": "entailment", "no": "contradiction", None: "neutral"}
MNLI_LABELS = ["contradiction", "entailment", "neutral"]
SEQ_LENGTH = 24

TINY_CONFIG = {
    "attention_probs_dropout_prob": 0.0,
    "hidden_act": "relu",
    "hidden_dropout_prob": 0.0,
    "hidden_size": 32,
    "embedding_size": 16,
    "initializer_range": 0.02,
    "intermediate_size": 32,
    "max_position_embeddings": 64,
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "type_vocab_size": 2,
    "trigram_input": True,
    "use_bottleneck": True,
    "intra_bottleneck_size": 16,
    "key_query_shared_bottleneck": True,
    "num_feedforward_networks": 2,
    "normalization_type": "no_norm",
    "classifier_activation": False,
}


def _write_vocab(directory):
  tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + FILLER + ["yes", "no"]
  path = os.path.join(directory, "vocab.txt")
  with open(path, "w") as f:
    f.write("\n".join(tokens) + "\n")
  return path, len(tokens)


def _write_config(directory, vocab_size, **overrides):
  config = dict(TINY_CONFIG, vocab_size=vocab_size, **overrides)
  path = os.path.join(directory, "bert_config.json")
  with open(path, "w") as f:
    json.dump(config, f)
  return path


def _sentence(rng, low, high):
  return " ".join(rng.choice(FILLER) for _ in range(rng.randint(low, high)))


def _mnli_pair(rng):
  keyword = rng.choice(list(KEYWORDS))
  premise = _sentence(rng, 3, 7)
  words = _sentence(rng, 2, 5).split()
  if keyword is not None:
    words.insert(rng.randint(0, len(words)), keyword)
  return premise, " ".join(words), KEYWORDS[keyword]


def _mnli_file(path, rng, count, num_label_columns):
  """An MNLI TSV: 10 text columns, then label1..labelN and gold_label."""
  header = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
            "sentence2_binary_parse", "sentence1_parse", "sentence2_parse",
            "sentence1", "sentence2"]
  if num_label_columns:
    header += ["label%d" % (i + 1) for i in range(num_label_columns - 1)]
    header += ["gold_label"]
  labels = []
  with open(path, "w") as f:
    f.write("\t".join(header) + "\n")
    for index in range(count):
      premise, hypothesis, label = _mnli_pair(rng)
      row = [str(index), "1", "1n", "fiction", "( x )", "( y )", "(ROOT x)",
             "(ROOT y)", premise, hypothesis]
      row += [label] * num_label_columns
      f.write("\t".join(row) + "\n")
      labels.append(label)
  return labels


def _make_mnli(directory):
  rng = random.Random(7)
  _mnli_file(os.path.join(directory, "train.tsv"), rng, 384, 2)
  for split in ("dev_matched", "dev_mismatched"):
    _mnli_file(os.path.join(directory, split + ".tsv"), rng, 48, 6)
  test = {}
  for split in ("test_matched", "test_mismatched"):
    test[split] = _mnli_file(os.path.join(directory, split + ".tsv"), rng, 30, 0)
  return test


def _run(args, expect_success=True):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  process = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "run_classifier.py")] + args,
      cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      universal_newlines=True)
  if expect_success and process.returncode != 0:
    raise AssertionError("run_classifier.py failed:\n" + process.stderr[-6000:])
  return process


def _read_eval_results(path):
  results = {}
  with open(path) as f:
    for line in f:
      key, value = line.strip().split(" = ")
      results[key] = float(value)
  return results


def _read_submission(path):
  with open(path) as f:
    lines = f.read().splitlines()
  assert lines[0] == "index\tprediction"
  rows = [line.split("\t") for line in lines[1:]]
  assert [int(index) for index, _ in rows] == list(range(len(rows)))
  return [prediction for _, prediction in rows]


@pytest.fixture(scope="module")
def trained_mnli(tmp_path_factory):
  """Trains, evaluates, predicts and exports in one run of the script."""
  root = str(tmp_path_factory.mktemp("mnli"))
  data_dir = os.path.join(root, "data")
  os.makedirs(data_dir)
  test_labels = _make_mnli(data_dir)
  vocab_file, vocab_size = _write_vocab(root)
  config_file = _write_config(root, vocab_size)
  output_dir = os.path.join(root, "output")
  export_dir = os.path.join(root, "export")
  _run(["--task_name=MNLI", "--data_dir=" + data_dir,
        "--bert_config_file=" + config_file, "--vocab_file=" + vocab_file,
        "--output_dir=" + output_dir, "--export_dir=" + export_dir,
        "--do_train", "--do_eval", "--do_predict", "--use_post_quantization",
        "--max_seq_length=%d" % SEQ_LENGTH, "--train_batch_size=16",
        "--eval_batch_size=16", "--predict_batch_size=16",
        "--learning_rate=2e-3", "--num_train_epochs=20",
        "--save_checkpoints_steps=1000"])
  return dict(root=root, data_dir=data_dir, vocab_file=vocab_file,
              config_file=config_file, output_dir=output_dir,
              export_dir=export_dir, test_labels=test_labels)


def test_tiny_model_learns_the_keyword_task(trained_mnli):
  results = _read_eval_results(
      os.path.join(trained_mnli["output_dir"], "eval_results.txt"))
  # 384 examples / batch 16 * 20 epochs.
  assert results["global_step"] == 480
  for split in ("matched", "mismatched"):
    assert results["eval_%s_num_examples" % split] == 48
    # Chance is about 1/3.
    assert results["eval_%s_accuracy" % split] >= 0.9, results
    assert results["eval_%s_loss" % split] < 0.5, results


def test_submission_files_hold_label_strings(trained_mnli):
  for split, name in (("test_matched", "MNLI-m"), ("test_mismatched", "MNLI-mm")):
    predictions = _read_submission(
        os.path.join(trained_mnli["output_dir"], name + ".tsv"))
    expected = trained_mnli["test_labels"][split]
    assert len(predictions) == len(expected) == 30
    assert set(predictions) <= set(MNLI_LABELS)
    correct = sum(p == e for p, e in zip(predictions, expected))
    assert correct >= 0.85 * len(expected)


def _graph_probabilities(config_file, checkpoint_dir, features):
  """probabilities [n, 3] of the trained checkpoint, built here in TF."""
  import heads  # pylint: disable=g-import-not-at-top
  import modeling  # pylint: disable=g-import-not-at-top
  config = modeling.BertConfig.from_json_file(config_file)
  with tf.Graph().as_default():
    ids = tf.constant([f.input_ids for f in features], tf.int32)
    mask = tf.constant([f.input_mask for f in features], tf.int32)
    segments = tf.constant([f.segment_ids for f in features], tf.int32)
    _, probabilities = heads.classifier_logits(config, False, ids, mask,
                                               segments, num_labels=3)
    saver = tf.train.Saver(tf.global_variables())
    with tf.Session() as sess:
      saver.restore(sess, tf.train.latest_checkpoint(checkpoint_dir))
      return sess.run(probabilities)


def test_tflite_float_export_agrees_with_the_graph(trained_mnli):
  import export_tflite  # pylint: disable=g-import-not-at-top
  import glue_data  # pylint: disable=g-import-not-at-top
  import tokenization  # pylint: disable=g-import-not-at-top
  tokenizer = tokenization.FullTokenizer(trained_mnli["vocab_file"])
  examples = glue_data.get_processor("mnli").get_examples(
      trained_mnli["data_dir"], "dev_matched")[:6]
  features = glue_data.convert_examples_to_features(
      examples, MNLI_LABELS, SEQ_LENGTH, tokenizer)
  expected = _graph_probabilities(trained_mnli["config_file"],
                                  trained_mnli["output_dir"], features)
  np.testing.assert_allclose(expected.sum(axis=-1), 1.0, atol=1e-5)
  float_model = export_tflite.LiteModel(
      os.path.join(trained_mnli["export_dir"], "model_float.tflite"))
  # --use_post_quantization: int8 weights, so only the decisions must agree.
  dynamic_model = export_tflite.LiteModel(
      os.path.join(trained_mnli["export_dir"], "model_dynamic_range.tflite"))
  agreeing_decisions = 0
  for feature, row in zip(features, expected):
    outputs = float_model.run(feature.input_ids, feature.input_mask,
                              feature.segment_ids)
    np.testing.assert_allclose(np.reshape(outputs["probabilities"], [-1]), row,
                               atol=1e-4)
    quantized = dynamic_model.run(feature.input_ids, feature.input_mask,
                                  feature.segment_ids)["probabilities"]
    agreeing_decisions += int(np.argmax(quantized) == np.argmax(row))
  assert agreeing_decisions >= len(features) - 1


def test_eval_through_tflite_matches_estimator_eval(trained_mnli, tmp_path):
  lite_output = str(tmp_path / "lite")
  _run(["--task_name=mnli", "--data_dir=" + trained_mnli["data_dir"],
        "--bert_config_file=" + trained_mnli["config_file"],
        "--vocab_file=" + trained_mnli["vocab_file"],
        "--output_dir=" + lite_output, "--do_eval",
        "--max_seq_length=%d" % SEQ_LENGTH,
        "--lite_model_path=" + os.path.join(trained_mnli["export_dir"],
                                            "model_float.tflite")])
  lite = _read_eval_results(os.path.join(lite_output, "eval_results.txt"))
  graph = _read_eval_results(
      os.path.join(trained_mnli["output_dir"], "eval_results.txt"))
  for split in ("matched", "mismatched"):
    key = "eval_%s_accuracy" % split
    assert abs(lite[key] - graph[key]) <= 1.0 / 48 + 1e-9
    assert lite["eval_%s_loss" % split] == pytest.approx(
        graph["eval_%s_loss" % split], rel=1e-2, abs=1e-3)


def _stsb_file(path, rng, count, with_score):
  """STS-B TSV whose score is 1.5 times the number of "yes" in sentence1."""
  header = ["index", "genre", "filename", "year", "old_index", "source1",
            "source2", "sentence1", "sentence2"] + (["score"] if with_score else [])
  scores = []
  with open(path, "w") as f:
    f.write("\t".join(header) + "\n")
    for index in range(count):
      count_yes = rng.randint(0, 3)
      words = _sentence(rng, 2, 5).split()
      for _ in range(count_yes):
        words.insert(rng.randint(0, len(words)), "yes")
      score = 1.5 * count_yes
      row = [str(index), "main", "x", "2012", "0", "none", "none", " ".join(words),
             _sentence(rng, 2, 5)]
      if with_score:
        row.append("%.3f" % score)
      f.write("\t".join(row) + "\n")
      scores.append(score)
  return scores


def test_stsb_regression_trains_and_reports_correlations(tmp_path):
  rng = random.Random(3)
  data_dir = str(tmp_path / "data")
  os.makedirs(data_dir)
  _stsb_file(os.path.join(data_dir, "train.tsv"), rng, 256, True)
  dev_scores = _stsb_file(os.path.join(data_dir, "dev.tsv"), rng, 40, True)
  _stsb_file(os.path.join(data_dir, "test.tsv"), rng, 10, False)
  vocab_file, vocab_size = _write_vocab(str(tmp_path))
  config_file = _write_config(str(tmp_path), vocab_size)
  output_dir = str(tmp_path / "output")
  _run(["--task_name=STS-B", "--data_dir=" + data_dir,
        "--bert_config_file=" + config_file, "--vocab_file=" + vocab_file,
        "--output_dir=" + output_dir, "--tfrecord_dir=" + str(tmp_path / "cache"),
        "--do_train", "--do_eval", "--do_predict",
        "--max_seq_length=20", "--train_batch_size=16", "--learning_rate=2e-3",
        "--num_train_epochs=12"])
  results = _read_eval_results(os.path.join(output_dir, "eval_results.txt"))
  assert set(results) == {"eval_pearson", "eval_spearman", "eval_loss",
                          "eval_num_examples", "global_step"}
  assert results["eval_pearson"] > 0.9, results
  assert results["eval_spearman"] > 0.9, results
  # Predicting the mean everywhere would give the variance of the scores.
  assert results["eval_loss"] < 0.2 * np.var(dev_scores), results
  predictions = [float(p) for p in _read_submission(
      os.path.join(output_dir, "STS-B.tsv"))]
  assert len(predictions) == 10 and all(math.isfinite(p) for p in predictions)
  for name in ("train", "dev", "test"):
    assert os.path.exists(str(tmp_path / "cache" / (name + ".tf_record")))


def test_invalid_flags_are_all_reported_before_any_graph(tmp_path):
  process = _run(["--task_name=xnli", "--bert_config_file=" + str(tmp_path / "none.json"),
                  "--output_dir=" + str(tmp_path / "out")], expect_success=False)
  assert process.returncode != 0
  assert "Traceback" not in process.stderr
  for expected in ("unknown --task_name 'xnli'", "cola, sst-2, mrpc, sts-b, qqp, "
                   "mnli, qnli, rte, wnli", "At least one of --do_train, --do_eval, "
                   "--do_predict or --export_dir", "--vocab_file and --spm_model_file",
                   "none.json"):
    assert expected in process.stderr


def test_config_and_data_problems_name_the_flags(tmp_path):
  vocab_file, vocab_size = _write_vocab(str(tmp_path))
  config_file = _write_config(str(tmp_path), vocab_size)
  process = _run(["--task_name=RTE", "--bert_config_file=" + config_file,
                  "--vocab_file=" + vocab_file, "--data_dir=" + str(tmp_path),
                  "--output_dir=" + str(tmp_path / "out"), "--do_eval",
                  "--max_seq_length=65", "--use_quantized_training"],
                 expect_success=False)
  assert process.returncode != 0
  assert "Traceback" not in process.stderr
  assert "--max_seq_length=65 exceeds max_position_embeddings=64" in process.stderr
  assert "hidden_act must be relu6" in process.stderr
  assert "has no dev.tsv" in process.stderr
  assert "--do_eval needs trained weights" in process.stderr


def test_malformed_row_stops_with_file_and_line(tmp_path):
  data_dir = str(tmp_path / "data")
  os.makedirs(data_dir)
  with open(os.path.join(data_dir, "train.tsv"), "w") as f:
    f.write("sentence\tlabel\ngood movie\t1\nbroken row without label\n")
  vocab_file, vocab_size = _write_vocab(str(tmp_path))
  config_file = _write_config(str(tmp_path), vocab_size)
  process = _run(["--task_name=sst-2", "--bert_config_file=" + config_file,
                  "--vocab_file=" + vocab_file, "--data_dir=" + data_dir,
                  "--output_dir=" + str(tmp_path / "out"), "--do_train",
                  "--max_seq_length=16"], expect_success=False)
  assert process.returncode != 0
  assert "Traceback" not in process.stderr
  assert os.path.join(data_dir, "train.tsv") + " line 3" in process.stderr
  assert not os.path.exists(str(tmp_path / "out" / "train.tf_record"))


_LOSS_SCRIPT = """
import json
import tensorflow.compat.v1 as tf
import run_classifier
with tf.Graph().as_default(), tf.Session() as sess:
  ce, mse = sess.run([
      run_classifier.classifier_loss(
          tf.constant([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]]), tf.constant([0, 2]), 3),
      run_classifier.classifier_loss(
          tf.constant([[1.5], [3.0]]), tf.constant([2.0, 2.0]), 1)])
print(json.dumps([float(ce), float(mse)]))
"""


def test_classifier_loss_matches_numpy():
  # In a subprocess: run_classifier's flags would clash with other scripts'
  # flags imported into the pytest process.
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  output = subprocess.check_output([sys.executable, "-c", _LOSS_SCRIPT],
                                   cwd=REPO_ROOT, env=env, universal_newlines=True)
  ce, mse = json.loads(output.strip().splitlines()[-1])
  logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]])
  log_softmax = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
  assert ce == pytest.approx(-(log_softmax[0, 0] + log_softmax[1, 2]) / 2, rel=1e-5)
  assert mse == pytest.approx(((1.5 - 2.0) ** 2 + (3.0 - 2.0) ** 2) / 2, rel=1e-6)
