"""The README's paths from pretraining to a phone, end to end with SentencePiece.

One chain, as a user runs it, at toy scale:

  SentencePiece model -> create_pretraining_data.py --spm_model_file
  -> run_pretraining.py -> run_squad.py / run_classifier.py --init_checkpoint
     (each killed mid-training and restarted with the same command)
  -> run_squad.py --use_quantized_training from the same float checkpoint
  -> the README's export commands -> --lite_model_path prediction per file.

Each fine-tuning run is checked against the checkpoint files themselves
(read independently of the scripts): backbone equal to the pretrained values
at step 0, head freshly initialised, the loading report naming exactly the
variables the checkpoint lacks, resume at the recorded step.
"""

import collections
import json
import os
import random
import re
import zipfile

import numpy as np
import pytest

import script_helpers
import tf_compat
import toy_tasks

REPO_ROOT = script_helpers.REPO_ROOT
# tiny_mobilebert(_qat).json cut to 1 layer of 2 FFNs: graph building is
# most of each run's time, and the chain needs a backbone to hand on, not
# depth (every run here still reaches F1 100 / accuracy 1.0).
CUT = {"num_hidden_layers": 1, "num_feedforward_networks": 2}
SEQ = 32
# The query and document spans of every run_squad.py run here (and of the
# features the tests compute themselves).
SQUAD_SPANS = ["--max_query_length=%d" % toy_tasks.MAX_QUERY_LENGTH,
               "--doc_stride=%d" % toy_tasks.DOC_STRIDE]
PRETRAIN_STEPS = 10
SQUAD_QUESTIONS, SQUAD_BATCH, SQUAD_EPOCHS = 400, 32, 12.0
SQUAD_STEPS = 150  # int(400 / 32 * 12)
SST_EXAMPLES, SST_BATCH, SST_EPOCHS = 256, 16, 10.0
SST_STEPS = 160  # int(256 / 16 * 10)


def _read_json(path):
  with open(path) as f:
    return json.load(f)


# A log line's message after the logger's prefix: "I1202 ... file.py:12] "
# (absl, TF 2.15) or "INFO:tensorflow:" (TF 1.15).
_LOG_MESSAGE = re.compile(r"^(?:[IWE]\d{4} [^\]]*\] |INFO:tensorflow:)(.*)$")


def _not_loaded(log):
  """Variable names the last loading report says kept their initial values."""
  messages = [match.group(1) for match in map(_LOG_MESSAGE.match,
                                              log.splitlines()) if match]
  starts = [i for i, message in enumerate(messages)
            if "variables keep their initial values" in message]
  assert starts, "no loading report in the log"
  names = []
  for message in messages[starts[-1] + 1:]:
    if not message.startswith("  ") or " " in message.strip():
      break
    names.append(message.strip())
  return set(names)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
  """SentencePiece model, pretraining records and a pretrained checkpoint."""
  root = tmp_path_factory.mktemp("spm_chain")
  float_config, qat_config = (
      script_helpers.write_cut_config(root / name, name, **CUT)
      for name in ("tiny_mobilebert.json", "tiny_mobilebert_qat.json"))
  rng = random.Random(3)
  lines = []
  for paragraph in toy_tasks.colour_paragraphs(200, seed=11):
    lines += [paragraph["context"], toy_tasks.QUESTION]
    if rng.random() < 0.3:
      lines.append("")
  lines += [toy_tasks.keyword_sentence(rng)[0] for _ in range(100)]
  corpus = root / "corpus.txt"
  corpus.write_text("\n".join(lines) + "\n")
  spm_model = toy_tasks.train_sentencepiece(corpus, root / "spm", 64)

  records = str(root / "pretrain.tfrecord")
  script_helpers.run_script("create_pretraining_data.py", [
      "--input_file=%s" % corpus, "--output_file=" + records,
      "--spm_model_file=" + spm_model, "--max_seq_length=%d" % SEQ,
      "--max_predictions_per_seq=5", "--dupe_factor=2"])
  output_dir = str(root / "pretrain")
  script_helpers.run_script("run_pretraining.py", [
      "--bert_config_file=" + float_config, "--input_file=" + records,
      "--output_dir=" + output_dir, "--do_train",
      "--max_seq_length=%d" % SEQ, "--max_predictions_per_seq=5",
      "--train_batch_size=16", "--learning_rate=1e-3",
      "--num_train_steps=%d" % PRETRAIN_STEPS, "--num_warmup_steps=1",
      "--save_checkpoints_steps=100", "--random_seed=1"])
  checkpoint = os.path.join(output_dir, "model.ckpt-%d" % PRETRAIN_STEPS)
  return dict(root=root, spm_model=spm_model, checkpoint=checkpoint,
              float_config=float_config, qat_config=qat_config,
              train=toy_tasks.make_colour_squad_file(
                  root / "train.json", SQUAD_QUESTIONS, 1),
              dev=toy_tasks.make_colour_squad_file(root / "dev.json", 100, 2))


def _squad_flags(pretrained, config, output_dir, learning_rate=1e-3):
  # --init_checkpoint as a path ending in .index, one of the README's forms.
  return ["--bert_config_file=" + config,
          "--spm_model_file=" + pretrained["spm_model"],
          "--init_checkpoint=" + pretrained["checkpoint"] + ".index",
          "--output_dir=" + output_dir,
          "--data_dir=" + str(pretrained["root"] / "squad_cache"),
          "--do_lower_case", "--max_seq_length=%d" % SEQ,
          "--train_file=" + pretrained["train"],
          "--predict_file=" + pretrained["dev"],
          "--train_batch_size=%d" % SQUAD_BATCH,
          "--num_train_epochs=%s" % SQUAD_EPOCHS,
          "--learning_rate=%g" % learning_rate,
          "--warmup_proportion=0.1", "--do_train", "--do_predict",
          "--random_seed=1"] + SQUAD_SPANS


@pytest.fixture(scope="module")
def squad_run(pretrained):
  """run_squad.py from the pretrained checkpoint, killed after its step-50
  checkpoint and run again with the same command (which also exports)."""
  output_dir = str(pretrained["root"] / "squad")
  export_dir = str(pretrained["root"] / "squad_export")
  args = _squad_flags(pretrained, pretrained["float_config"], output_dir) + [
      "--save_checkpoints_steps=50", "--export_dir=" + export_dir]
  killed_at, first_log = script_helpers.run_and_kill("run_squad.py", args,
                                                     output_dir, 50)
  _, log = script_helpers.run_script("run_squad.py", args)
  return dict(output_dir=output_dir, export_dir=export_dir, log=log,
              first_log=first_log,
              killed_at=killed_at)


def _check_fresh_start(pretrained, run, head):
  """Step 0 of a fine-tuning run: the backbone is the pretrained checkpoint's,
  exactly `head` is new (truncated normal, stddev 0.02 cut at 2 stddevs, and
  a zero bias) and the first run's loading report names exactly it; the
  restarted run says it restores from its own checkpoint instead."""
  pretrained_values = script_helpers.checkpoint_values(pretrained["checkpoint"])
  start = script_helpers.checkpoint_values(
      os.path.join(run["output_dir"], "model.ckpt-0"))
  backbone = sorted(name for name in start if name.startswith("bert/"))
  assert backbone == sorted(name for name in pretrained_values
                            if name.startswith("bert/"))
  for name in backbone:
    np.testing.assert_array_equal(start[name], pretrained_values[name], name)
  assert sorted(set(start) - set(pretrained_values)) == sorted(head)
  weights, bias = (start[name] for name in head)
  assert 0.01 < weights.std() < 0.03 and np.abs(weights).max() <= 0.04
  np.testing.assert_array_equal(bias, 0.0)
  assert _not_loaded(run["first_log"]) == set(head)
  assert ("Restoring every variable from %s" %
          os.path.join(run["output_dir"], "model.ckpt-%d" % run["killed_at"])
          in run["log"])
  assert "variables keep their initial values" not in run["log"]


def test_squad_starts_from_the_pretrained_backbone(pretrained, squad_run):
  _check_fresh_start(pretrained, squad_run,
                     ["cls/squad/output_weights", "cls/squad/output_bias"])


def test_killed_squad_run_resumes_to_the_same_final_step(pretrained,
                                                          squad_run):
  killed_at = squad_run["killed_at"]
  assert 50 <= killed_at < SQUAD_STEPS
  log = squad_run["log"]
  assert "Num steps = %d" % SQUAD_STEPS in log
  assert "model.ckpt-%d" % killed_at in log  # restored from, not restarted
  assert script_helpers.recorded_step(squad_run["output_dir"]) == SQUAD_STEPS
  results = _read_json(os.path.join(squad_run["output_dir"],
                                    "eval_results.json"))
  gold = toy_tasks.gold_answers(pretrained["dev"])
  predictions = _read_json(os.path.join(squad_run["output_dir"],
                                        "predictions.json"))
  exact = 100.0 * np.mean([predictions[q] == gold[q] for q in gold])
  assert results["exact_match"] == pytest.approx(exact)
  assert exact >= 80.0, results


@pytest.mark.skipif(not tf_compat.IS_TF2,
                    reason="tflite-support (metadata) is in the TF 2.15 "
                    "runtime only")
def test_export_carries_the_sentencepiece_model(pretrained, squad_run):
  """The float .tflite's metadata packs the SentencePiece model byte for byte
  (TF-Lite metadata appends its associated files as a zip archive)."""
  path = os.path.join(squad_run["export_dir"], "model_float.tflite")
  with zipfile.ZipFile(path) as archive:
    packed = {name: archive.read(name) for name in archive.namelist()}
  with open(pretrained["spm_model"], "rb") as f:
    spm_bytes = f.read()
  assert spm_bytes in packed.values(), sorted(packed)
  assert not any(name.endswith(".txt") for name in packed), sorted(packed)


def _classifier_data(directory, seed):
  """SST-2 layout (header "sentence\tlabel"; test: "index\tsentence")."""
  rng = random.Random(seed)
  os.makedirs(directory)
  rows = {}
  for split, count in (("train", SST_EXAMPLES), ("dev", 64)):
    rows[split] = [toy_tasks.keyword_sentence(rng) for _ in range(count)]
    with open(os.path.join(directory, split + ".tsv"), "w") as f:
      f.write("sentence\tlabel\n")
      for sentence, label in rows[split]:
        f.write("%s\t%d\n" % (sentence, label))
  return rows


@pytest.fixture(scope="module")
def classifier_run(pretrained):
  data_dir = os.path.join(str(pretrained["root"]), "sst2")
  _classifier_data(data_dir, 5)
  output_dir = str(pretrained["root"] / "sst2_out")
  args = ["--task_name=SST-2", "--data_dir=" + data_dir,
          "--bert_config_file=" + pretrained["float_config"],
          "--spm_model_file=" + pretrained["spm_model"],
          # The pretraining directory: its latest checkpoint, the one
          # pretrained["checkpoint"] names.
          "--init_checkpoint=" + os.path.dirname(pretrained["checkpoint"]),
          "--output_dir=" + output_dir, "--do_train", "--do_eval",
          "--max_seq_length=%d" % SEQ, "--train_batch_size=%d" % SST_BATCH,
          "--learning_rate=2e-3", "--num_train_epochs=%s" % SST_EPOCHS,
          "--save_checkpoints_steps=40",
          # Seeded: the accuracy threshold holds for one initialisation and
          # record order, not for every one.
          "--random_seed=1"]
  killed_at, first_log = script_helpers.run_and_kill("run_classifier.py",
                                                     args, output_dir, 40)
  _, log = script_helpers.run_script("run_classifier.py", args)
  return dict(output_dir=output_dir, log=log, first_log=first_log,
              killed_at=killed_at)


def test_classifier_starts_from_the_pretrained_backbone(pretrained,
                                                        classifier_run):
  _check_fresh_start(pretrained, classifier_run,
                     ["output_weights", "output_bias"])


def test_killed_classifier_run_resumes_to_the_same_final_step(classifier_run):
  killed_at = classifier_run["killed_at"]
  assert 40 <= killed_at < SST_STEPS
  assert "Num steps = %d" % SST_STEPS in classifier_run["log"]
  assert "model.ckpt-%d" % killed_at in classifier_run["log"]
  results = script_helpers.read_key_value_results(
      os.path.join(classifier_run["output_dir"], "eval_results.txt"))
  assert results["global_step"] == SST_STEPS
  assert results["eval_accuracy"] >= 0.9, results


@pytest.fixture(scope="module")
def qat_run(pretrained):
  """The README's QAT recipe from the float checkpoint (relu -> relu6)."""
  output_dir = str(pretrained["root"] / "qat")
  # relu6 and the quantizers keep activations small: a larger learning rate
  # than the float run's (1e-3 learns this task in 150 steps only
  # sometimes; 3e-3 reliably).
  _, log = script_helpers.run_script("run_squad.py", _squad_flags(
      pretrained, pretrained["qat_config"], output_dir, learning_rate=3e-3) + [
          "--use_quantized_training=true", "--save_checkpoints_steps=1000"])
  return dict(output_dir=output_dir, log=log)


def test_qat_learns_ranges_and_stays_finite(qat_run):
  start = script_helpers.checkpoint_values(
      os.path.join(qat_run["output_dir"], "model.ckpt-0"))
  final = script_helpers.checkpoint_values(
      os.path.join(qat_run["output_dir"], "model.ckpt-%d" % SQUAD_STEPS))
  for name, value in final.items():
    assert np.all(np.isfinite(value)), name
  ranges = [name for name in final
            if name.endswith(("/min", "/max")) and "FakeQuant" in name]
  assert len(ranges) > 20
  for name in ranges:
    assert abs(start[name]) == 6.0, (name, start[name])  # initial +-6
  moved = [name for name in ranges if final[name] != start[name]]
  assert len(moved) >= 0.9 * len(ranges), sorted(set(ranges) - set(moved))
  f1 = _read_json(os.path.join(qat_run["output_dir"], "eval_results.json"))
  assert f1["f1"] >= 70.0, f1


def _range_variables(checkpoint):
  """The quantizer state a checkpoint holds, by the names of
  docs/quantization_and_export.md (section 2)."""
  return sorted(name for name in script_helpers.checkpoint_values(checkpoint)
                if "FakeQuantWithMinMaxVars" in name)


def _predict_only_flags(pretrained, init_checkpoint, output_dir):
  return ["--bert_config_file=" + pretrained["qat_config"],
          "--spm_model_file=" + pretrained["spm_model"],
          "--init_checkpoint=" + init_checkpoint,
          "--output_dir=" + output_dir, "--do_lower_case",
          "--max_seq_length=%d" % SEQ, "--predict_file=" + pretrained["dev"],
          "--do_predict", "--use_quantized_training=true"] + SQUAD_SPANS


def test_qat_checkpoint_as_init_checkpoint_predicts_as_its_run(pretrained,
                                                               qat_run):
  """The README's QAT recipe from a float checkpoint reports fresh ranges;
  its QAT checkpoint given as --init_checkpoint to a new --output_dir
  predicts exactly what its own run did, ranges loaded with the weights."""
  trained = os.path.join(qat_run["output_dir"], "model.ckpt-%d" % SQUAD_STEPS)
  ranges = _range_variables(trained)
  assert len(ranges) > 100  # min/max, EMA state: several per quantizer
  assert not _range_variables(pretrained["checkpoint"])
  assert ("the %d range variables start fresh" % len(ranges)
          in qat_run["log"])

  output_dir = str(pretrained["root"] / "qat_from_init_checkpoint")
  _, log = script_helpers.run_script(
      "run_squad.py", _predict_only_flags(pretrained, trained, output_dir))
  # A prediction graph has each quantizer's min and max, not the moving
  # averages that training updates them with.
  min_max = [name for name in ranges if name.endswith(("/min", "/max"))]
  assert 0 < len(min_max) < len(ranges)
  assert ("Loaded all %d quantization-range variables" % len(min_max)) in log
  assert (_read_json(os.path.join(output_dir, "predictions.json")) ==
          _read_json(os.path.join(qat_run["output_dir"], "predictions.json")))
  assert (_read_json(os.path.join(output_dir, "eval_results.json")) ==
          _read_json(os.path.join(qat_run["output_dir"], "eval_results.json")))


def test_qat_prediction_without_trained_ranges_is_refused(pretrained):
  output_dir = str(pretrained["root"] / "qat_from_float")
  code, log = script_helpers.run_script(
      "run_squad.py",
      _predict_only_flags(pretrained, pretrained["checkpoint"], output_dir),
      expect_success=False)
  assert code == 1
  assert "Traceback" not in log
  line = script_helpers.last_line(log)
  assert line.startswith("run_squad.py: --use_quantized_training without "
                         "--do_train: "), line
  assert pretrained["checkpoint"] in line
  assert "holds no quantization ranges" in line
  assert not os.path.exists(os.path.join(output_dir, "predictions.json"))


@pytest.fixture(scope="module")
def qat_export(pretrained, qat_run):
  """The README's integer-only export command (TF 2.15), or its refusal
  and a float export (TF 1.15)."""
  export_dir = str(pretrained["root"] / "qat_export")
  common = ["--use_quantized_training=true",
            "--data_dir=" + str(pretrained["root"] / "squad_cache"),
            "--output_dir=" + qat_run["output_dir"],
            "--spm_model_file=" + pretrained["spm_model"],
            "--bert_config_file=" + pretrained["qat_config"],
            "--train_file=" + pretrained["train"],
            "--max_seq_length=%d" % SEQ,
            "--export_dir=" + export_dir] + SQUAD_SPANS
  readme = ["--use_post_quantization=true", "--activation_quantization=true"]
  code, log = script_helpers.run_script("run_squad.py", readme + common,
                                        expect_success=tf_compat.IS_TF2)
  if not tf_compat.IS_TF2:
    assert code != 0
    assert "needs the TF 2.15 runtime" in script_helpers.last_line(log)
    assert not os.path.exists(export_dir)
    script_helpers.run_script("run_squad.py", common)
  return export_dir


def _dev_features(pretrained):
  """The dev file's questions and prediction features, as run_squad.py
  makes them."""
  import tokenization  # pylint: disable=g-import-not-at-top
  return toy_tasks.prediction_features(
      pretrained["dev"],
      tokenization.create_tokenizer(spm_model_file=pretrained["spm_model"]),
      SEQ)


# The dev features whose every logit is checked against the rounding bound
# (each costs a backward pass over 2 * SEQ rows); the features of a question
# a file answers otherwise than the graph are checked too.
CHECKED_FEATURES = 8


def _check_answers_within_rounding(pretrained, qat_run, path, predictions):
  """Every logit of the file at `path` on the checked features lies within
  the one-step bound of the QAT graph's, and each answer of the file's run is
  the graph's or one the graph ranks lower by less than the file's logits
  on that question's features can account for.

  The bound is the one-step bound of tests/rounding_model.py on this chain's
  trained QAT weights, over the integer file's int8 tensors or, for the float
  file (the fake-quant graph in float32), the graph's own quantizers.  (The
  uniform-rounding sigma, which test_export holds its small random model to,
  does not bound this sharply trained one: under ONEDNN_MAX_CPU_ISA=AVX2 the
  integer file's logits reach 13 sigma.  Measured: at most 0.12 of the
  one-step bound, under the default, AVX2 and oneDNN-off settings.)
  """
  import rounding_model  # pylint: disable=g-import-not-at-top
  import tflite_runner  # pylint: disable=g-import-not-at-top
  graph_predictions = _read_json(os.path.join(qat_run["output_dir"],
                                              "predictions.json"))
  graph_nbest = _read_json(os.path.join(qat_run["output_dir"],
                                        "nbest_predictions.json"))
  assert sorted(predictions) == sorted(graph_predictions)
  differing = {qid for qid, text in predictions.items()
               if text != graph_predictions[qid]}
  examples, features = _dev_features(pretrained)
  features = [feature for index, feature in enumerate(features)
              if index < CHECKED_FEATURES or
              examples[feature.example_index].qas_id in differing]
  inputs = [{name: getattr(feature, name)
             for name in tflite_runner.INPUT_NAMES} for feature in features]
  bounds = rounding_model.qat_squad_logits_and_bounds(
      _read_json(pretrained["qat_config"]),
      os.path.join(qat_run["output_dir"], "model.ckpt-%d" % SQUAD_STEPS),
      inputs, SEQ, tflite_path=None if path.endswith("_float.tflite") else path)
  model = tflite_runner.LiteModel(path)
  allowed = collections.defaultdict(float)
  for feature, values, (expected, _, one_step) in zip(features, inputs,
                                                      bounds):
    got = model.run(values["input_ids"], values["input_mask"],
                    values["segment_ids"])
    got = np.concatenate([got["start_logits"][0], got["end_logits"][0]])
    change = np.abs(got - expected)
    assert np.all(change <= one_step), change / one_step
    # A score is a start plus an end logit, and both answers' scores move:
    # the file can only prefer an answer the graph ranks lower by less than
    # twice its largest start and end logit changes.
    qid = examples[feature.example_index].qas_id
    allowed[qid] = max(allowed[qid],
                       2 * (change[:SEQ].max() + change[SEQ:].max()))
  for qid in differing:
    scores = {entry["text"]: entry["start_logit"] + entry["end_logit"]
              for entry in graph_nbest[qid]}
    assert predictions[qid] in scores, (qid, predictions[qid])
    margin = scores[graph_predictions[qid]] - scores[predictions[qid]]
    assert margin <= allowed[qid], (qid, margin, allowed[qid])


def test_every_exported_file_predicts_like_the_graph(pretrained, qat_run,
                                                     qat_export):
  """--lite_model_path with each file of the README's QAT export answers as
  the QAT graph does up to the file's roundings (both files compute the
  fake-quant graph: the float file in float32, the integer file in int8)."""
  files = sorted(name for name in os.listdir(qat_export)
                 if name.endswith(".tflite"))
  assert files == (["model_float.tflite", "model_qat_int8.tflite"]
                   if tf_compat.IS_TF2 else ["model_float.tflite"])
  for name in files:
    path = os.path.join(qat_export, name)
    output_dir = str(pretrained["root"] / ("lite_" + name))
    script_helpers.run_script("run_squad.py", [
        "--bert_config_file=" + pretrained["qat_config"],
        "--spm_model_file=" + pretrained["spm_model"],
        "--output_dir=" + output_dir, "--do_predict",
        "--predict_file=" + pretrained["dev"], "--max_seq_length=%d" % SEQ,
        "--lite_model_path=" + path] + SQUAD_SPANS)
    _check_answers_within_rounding(
        pretrained, qat_run, path,
        _read_json(os.path.join(output_dir, "predictions.json")))
