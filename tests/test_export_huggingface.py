"""export_huggingface.py, checked by transformers itself.

Checkpoints of the tiny config (backbone with every head), an IB-BERT-style
teacher inside a distillation checkpoint, a QAT checkpoint and the published
OPT config are exported; tests/hf_consumer.py loads each directory with
transformers 5.x in the PyTorch venv (.venv/hf, no TensorFlow) and its outputs
on a padded two-segment batch must equal this code base's TensorFlow graph on
the same checkpoint.
"""

import contextlib
import json
import os
import subprocess
import time

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import export_huggingface
import heads
import modeling
import script_helpers
import tf_compat

ROOT = script_helpers.REPO_ROOT
# A transformers venv's interpreter, to run this module by hand.
HF_PYTHON = os.environ.get("MOBILEBERT_HF_PYTHON", "")
SEQ, NUM_LABELS = 12, 3


def _config(name, **overrides):
  """config/<name> cut to 2 layers, with `overrides`."""
  return script_helpers.cut_config(
      name, **dict({"num_hidden_layers": 2}, **overrides))


TINY = _config("tiny_mobilebert.json")
QAT = _config("tiny_mobilebert_qat.json")
# A teacher of the shapes transformers' MobileBERT can hold (the IB-BERT
# teacher's query/key layout it cannot, see test_bad_input): LayerNorm, gelu,
# one FFN, a pooler.
TEACHER = _config("tiny_mobilebert.json", hidden_act="gelu",
                  normalization_type="layer_norm", num_feedforward_networks=1,
                  classifier_activation=True)


# make test builds .venv/hf beside the running suites and names the file its
# interpreter's path lands in when the build ends (empty if it failed).
HF_PYTHON_FILE = os.environ.get("MOBILEBERT_HF_PYTHON_FILE", "")
HF_BUILD_WAIT_SECS = 900


def _hf_python():
  if not HF_PYTHON_FILE:
    return HF_PYTHON
  deadline = time.time() + HF_BUILD_WAIT_SECS
  while not os.path.exists(HF_PYTHON_FILE) and time.time() < deadline:
    time.sleep(1)
  try:
    with open(HF_PYTHON_FILE) as f:
      return f.read().strip()
  except OSError:  # the build has not ended in time
    return ""


def _hf_python_or_skip():
  hf_python = _hf_python()
  if hf_python and os.path.exists(hf_python):
    return hf_python
  reason = ("the transformers venv (.venv/hf, requirements-huggingface.txt) "
            "is not available; make test builds it")
  if os.environ.get("CI") == "true":
    pytest.fail(reason)
  pytest.skip(reason)


def _inputs():
  """A batch of two: the second padded after 7 tokens; two segments each."""
  rng = np.random.RandomState(4)
  ids = rng.randint(5, 1024, size=(2, SEQ))
  mask = np.ones((2, SEQ), np.int64)
  mask[1, 7:] = 0
  ids[1, 7:] = 0
  types = np.zeros((2, SEQ), np.int64)
  types[:, 5:] = 1
  types[1, 7:] = 0
  return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _random_value(name, shape, rng):
  """O(1) activations: kernels 0.5/sqrt(fan_in), NoNorm/LayerNorm scales near
  1, small biases."""
  if name.endswith(("gamma", "/weight")):
    return 1.0 + 0.1 * rng.randn(*shape)
  if len(shape) == 2 and "embeddings" not in name and (
      "output_weights" not in name):
    return rng.randn(*shape) * 0.5 / np.sqrt(shape[0])
  if len(shape) == 2:
    return rng.randn(*shape) * 0.5
  return 0.1 * rng.randn(*shape)


def _graph(config_dict, scope, qat, inputs):
  """Our model with every head, in the current graph.  Returns outputs."""
  config = modeling.BertConfig.from_dict(config_dict)
  tensors = [tf.constant(inputs[name], tf.int32)
             for name in ("input_ids", "attention_mask", "token_type_ids")]
  with tf.variable_scope(scope) if scope else contextlib.nullcontext():
    model = modeling.BertModel(config, False, *tensors,
                               use_quantized_training=qat, use_einsum=False)
    positions = tf.tile(tf.range(SEQ)[None], [2, 1])
    outputs = {
        "sequence_output": model.get_sequence_output(),
        "prediction_logits": tf.reshape(heads.masked_lm_logits(
            config, model.get_sequence_output(), model.get_embedding_table(),
            positions, use_einsum=False), [2, SEQ, -1])}
    if not scope:
      outputs["seq_relationship_log_probs"] = (
          heads.next_sentence_output(
              config, model.get_pooled_output(), tf.zeros([2], tf.int32))[2])
      outputs["start_logits"], outputs["end_logits"] = heads.squad_head(model)
      outputs["logits"] = heads.classifier_head(model, False, NUM_LABELS)[0]
    if config_dict["classifier_activation"]:
      outputs["pooler_output"] = model.get_pooled_output()
  return outputs


def _write_checkpoint(config_dict, path, scope="", qat=False, seed=0):
  """Random weights through our graph; returns the float graph's outputs on
  _inputs() for the same checkpoint (QAT: without fake quant)."""
  rng = np.random.RandomState(seed)
  inputs = _inputs()
  with tf.Graph().as_default():
    _graph(config_dict, scope, qat, inputs)
    assigns = [tf.assign(v, _random_value(v.op.name, v.shape.as_list(),
                                          rng).astype(np.float32))
               for v in tf.global_variables() if "FakeQuant" not in v.op.name]
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      session.run(assigns)
      prefix = tf.train.Saver().save(session, path)
  with tf.Graph().as_default():
    outputs = _graph(config_dict, scope, False, inputs)
    saver = tf.train.Saver([v for v in tf.global_variables()
                            if "FakeQuant" not in v.op.name])
    with tf.Session() as session:
      saver.restore(session, prefix)
      return prefix, session.run(outputs)


def _write_opt_checkpoint(config_dict, path):
  """The published OPT config with random weights and every head."""
  rng = np.random.RandomState(3)
  with tf.Graph().as_default():
    _graph(config_dict, "", False, _inputs())
    placeholders, assigns = [], []
    for v in tf.global_variables():
      placeholder = tf.placeholder(tf.float32, v.shape)
      placeholders.append((placeholder, v))
      assigns.append(tf.assign(v, placeholder))
    with tf.Session() as session:
      session.run(assigns, {p: _random_value(v.op.name, v.shape.as_list(),
                                              rng).astype(np.float32)
                            for p, v in placeholders})
      return tf.train.Saver().save(session, path)


def _model_size(checkpoint):
  reader = tf.train.load_checkpoint(checkpoint)
  return sum(int(np.prod(shape)) for name, shape in
             reader.get_variable_to_shape_map().items()
             if name != "global_step" and not name.startswith(
                 ("cls/squad", "output_")))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  """Every export loaded by transformers: {key: (report, hf outputs, ours)}."""
  hf_python = _hf_python_or_skip()
  root = tmp_path_factory.mktemp("hf")
  vocab = os.path.join(str(root), "vocab.txt")
  with open(vocab, "w") as f:
    f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] +
                      ["w%d" % i for i in range(1019)]) + "\n")
  tiny, tiny_outputs = _write_checkpoint(TINY, str(root / "tiny" / "ckpt"))
  teacher, teacher_outputs = _write_checkpoint(
      TEACHER, str(root / "distill" / "ckpt"), scope="teacher", seed=1)
  qat, qat_outputs = _write_checkpoint(QAT, str(root / "qat" / "ckpt"),
                                       qat=True, seed=2)
  if tf_compat.IS_TF2:
    opt = _config("uncased_L-24_H-128_B-512_A-4_F-4_OPT.json",
                  num_hidden_layers=24)
    opt_checkpoint = _write_opt_checkpoint(opt, str(root / "opt" / "ckpt"))
  # key: (config, checkpoint, task, scope, export, transformers class, ours)
  cases = {
      "pretraining": (TINY, tiny, "pretraining", "bert", "tiny_pretraining",
                      "MobileBertForPreTraining", tiny_outputs),
      "squad": (TINY, tiny, "squad", "bert", "tiny_squad",
                "MobileBertForQuestionAnswering", tiny_outputs),
      "classifier": (TINY, tiny, "classifier", "bert", "tiny_classifier",
                     "MobileBertForSequenceClassification", tiny_outputs),
      "teacher": (TEACHER, teacher, "masked_lm", "teacher", "teacher",
                  "MobileBertForMaskedLM", teacher_outputs),
      "teacher_backbone": (None, None, None, None, "teacher",
                           "MobileBertModel", teacher_outputs),
      "qat": (QAT, qat, "squad", "bert", "qat_squad",
              "MobileBertForQuestionAnswering", qat_outputs),
  }
  if tf_compat.IS_TF2:
    cases.update({
        "opt": (opt, opt_checkpoint, "pretraining", "bert", "opt",
                "MobileBertForPreTraining", None),
        "opt_backbone": (None, None, None, None, "opt", "MobileBertModel",
                         None)})
  np.savez(str(root / "inputs.npz"), **_inputs())
  jobs = []
  for key, (config, checkpoint, task, scope, name, model_class,
            _) in cases.items():
    directory = str(root / ("export_" + name))
    if key == "squad":
      # The README's command line.
      config_file = str(root / "tiny.json")
      with open(config_file, "w") as f:
        json.dump(config, f)
      script_helpers.run_script("export_huggingface.py", [
          "--bert_config_file=" + config_file,
          "--init_checkpoint=" + checkpoint, "--vocab_file=" + vocab,
          "--task=squad", "--output_dir=" + directory])
    elif config is not None:
      export_huggingface.export(
          modeling.BertConfig.from_dict(config), checkpoint, directory,
          task=task, num_labels=NUM_LABELS, vocab_file=vocab, scope=scope)
    jobs.append({"dir": directory, "class": model_class,
                 "inputs": str(root / "inputs.npz"),
                 "outputs": str(root / ("outputs_" + key + ".npz")),
                 "tokenize": TOKENIZED_TEXT if key == "squad" else None})
  completed = subprocess.run(
      [hf_python, os.path.join(ROOT, "tests", "hf_consumer.py"),
       json.dumps(jobs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      universal_newlines=True, timeout=600, cwd=str(root))
  assert completed.returncode == 0, completed.stderr[-4000:]
  reports = json.loads(completed.stdout.strip().splitlines()[-1])
  exported_models = {
      key: (report, dict(np.load(job["outputs"])), cases[key][-1])
      for key, job, report in zip(cases, jobs, reports)}
  if tf_compat.IS_TF2:
    exported_models["opt"][0]["checkpoint_size"] = _model_size(
        opt_checkpoint)
  exported_models["root"] = root
  exported_models["tiny_checkpoint"] = tiny
  exported_models["vocab"] = vocab
  return exported_models


# Words of the fixture's vocabulary (w0 ... w1018), one it lacks, casing and
# punctuation.
TOKENIZED_TEXT = "w7 W12 w1018 zebra, w3."


def test_tokenizer_files_load_in_transformers(exported):
  """MobileBertTokenizer.from_pretrained on the exported directory (the
  README's line) splits a text into the ids our WordPiece tokenizer gives,
  between [CLS] and [SEP]."""
  import tokenization  # pylint: disable=g-import-not-at-top
  tokenizer = tokenization.FullTokenizer(exported["vocab"], do_lower_case=True)
  ours = tokenizer.convert_tokens_to_ids(
      ["[CLS]"] + tokenizer.tokenize(TOKENIZED_TEXT) + ["[SEP]"])
  # [CLS] w7 w12 w1018 zebra , w3 . [SEP]; the fixture's vocabulary ([PAD]
  # [UNK] [CLS] [SEP] [MASK] w0 ... w1018) has neither "zebra" nor
  # punctuation, which become [UNK].
  assert ours == [2, 12, 17, 1023, 1, 1, 8, 1, 3]
  assert exported["squad"][0]["token_ids"] == ours


def test_sentencepiece_model_shipped_as_spiece_model(exported, tmp_path):
  """transformers has no SentencePiece MobileBERT tokenizer: the model file
  is shipped, byte for byte, as spiece.model, and no vocab.txt is made up;
  our SentencePiece tokenizer reads the shipped file as the original."""
  import tokenization  # pylint: disable=g-import-not-at-top
  import toy_tasks  # pylint: disable=g-import-not-at-top
  corpus = tmp_path / "corpus.txt"
  corpus.write_text("\n".join("the quick brown fox %d jumps over the lazy "
                              "dog" % i for i in range(200)) + "\n")
  model = toy_tasks.train_sentencepiece(corpus, tmp_path / "spm", 60)
  directory = str(tmp_path / "export")
  export_huggingface.export(modeling.BertConfig.from_dict(TINY),
                            exported["tiny_checkpoint"], directory,
                            task="squad", spm_model_file=model)
  names = sorted(os.listdir(directory))
  assert "spiece.model" in names and "vocab.txt" not in names, names
  with open(model, "rb") as original, open(
      os.path.join(directory, "spiece.model"), "rb") as shipped:
    assert shipped.read() == original.read()
  text = "the lazy fox jumps"
  assert (tokenization.create_tokenizer(
      spm_model_file=os.path.join(directory, "spiece.model")).tokenize(text)
          == tokenization.create_tokenizer(spm_model_file=model).tokenize(text))


# The published 24-layer config is exported on TF 2.15 only: writing its
# checkpoint through our graph is most of this module's time on TF 1.15, and
# what it checks does not depend on the runtime (the conversion is numpy once
# the checkpoint is read; test_modeling checks the config's variables on both).
TINY_KEYS = ["pretraining", "squad", "classifier", "teacher",
             "teacher_backbone", "qat"]
MODEL_KEYS = TINY_KEYS + [
    pytest.param(key, marks=pytest.mark.skipif(
        not tf_compat.IS_TF2,
        reason="the published 24-layer config is exported on TF 2.15"))
    for key in ("opt", "opt_backbone")]
# The published backbone of uncased_L-24_H-128_B-512_A-4_F-4_OPT, by shape.
OPT_BACKBONE_PARAMETERS = 24581888


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_transformers_fills_every_parameter(exported, key):
  report = exported[key][0]
  assert report["transformers"].startswith("5."), report
  assert not report["tensorflow_loaded"]
  assert report["missing"] == [] and report["mismatched"] == [], report
  if key == "teacher":
    # MobileBertForMaskedLM has no pooler; the export keeps the teacher's
    # for MobileBertModel (teacher_backbone).
    assert sorted(report["unexpected"]) == [
        "mobilebert.pooler.dense.bias", "mobilebert.pooler.dense.weight"]
  elif key.endswith("_backbone"):
    # MobileBertModel reads the backbone of a directory that has heads.
    assert report["unexpected"] and all(
        name.startswith("cls.") for name in report["unexpected"]), report
  else:
    assert report["unexpected"] == [], report
  if key == "opt":
    # Every weight of the checkpoint and nothing else (the MLM decoder is
    # tied to the word embeddings).
    assert report["parameters"] == report["checkpoint_size"]
  if key == "opt_backbone":
    assert report["parameters"] == OPT_BACKBONE_PARAMETERS


def _log_softmax(x):
  x = x - x.max(axis=-1, keepdims=True)
  return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


@pytest.mark.parametrize("key", TINY_KEYS)
def test_transformers_outputs_equal_ours(exported, key):
  _, theirs, ours = exported[key]
  compared = {"sequence_output": "sequence_output"}
  if key == "pretraining":
    compared.update(prediction_logits="prediction_logits")
  if key == "teacher":
    compared.update(logits="prediction_logits")  # MaskedLM names them logits
  if key in ("squad", "qat"):
    compared.update(start_logits="start_logits", end_logits="end_logits")
  if key == "classifier":
    compared.update(logits="logits")
  if key == "teacher_backbone":
    compared.update(pooler_output="pooler_output")
  mask = _inputs()["attention_mask"].astype(bool)
  for their_name, our_name in compared.items():
    got, want = theirs[their_name], ours[our_name]
    if got.shape[:2] == mask.shape:
      got, want = got[mask], want[mask]  # padded positions are not outputs
    assert got.shape == want.shape, (their_name, got.shape, want.shape)
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, atol=1e-4 * scale, rtol=1e-4,
                               err_msg="%s %s" % (key, their_name))
  if key == "pretraining":
    np.testing.assert_allclose(
        _log_softmax(theirs["seq_relationship_logits"]),
        ours["seq_relationship_log_probs"], atol=1e-4)


def test_bad_input_ends_in_one_line(exported, tmp_path):
  root = exported["root"]
  tiny, vocab = exported["tiny_checkpoint"], exported["vocab"]
  teacher_checkpoint = str(root / "distill" / "ckpt")
  wide = str(tmp_path / "wide.json")
  with open(wide, "w") as f:
    json.dump(dict(TINY, intermediate_size=48), f)
  tiny_config = str(tmp_path / "tiny.json")
  with open(tiny_config, "w") as f:
    json.dump(TINY, f)
  neg6_config = str(tmp_path / "neg6.json")
  with open(neg6_config, "w") as f:
    json.dump(dict(TINY, mask_mode="neg6"), f)
  teacher_config = str(tmp_path / "teacher.json")
  with open(teacher_config, "w") as f:
    json.dump(TEACHER, f)
  squad_dir = str(root / "export_tiny_squad")
  before = sorted(os.listdir(squad_dir))
  cases = [
      (["--bert_config_file=" + wide, "--init_checkpoint=" + tiny,
        "--output_dir=" + str(tmp_path / "a")],
       ["intermediate/dense/bias", "[64]", "[48]"]),
      (["--bert_config_file=" + teacher_config, "--scope=teacher",
        "--task=squad", "--init_checkpoint=" + teacher_checkpoint,
        "--output_dir=" + str(tmp_path / "b")],
       ["has no teacher/cls/squad/output_", "not a --task=squad checkpoint"]),
      (["--bert_config_file=" + tiny_config, "--task=ner",
        "--init_checkpoint=" + tiny, "--output_dir=" + str(tmp_path / "c")],
       ["--task must be one of pretraining, masked_lm, squad, classifier"]),
      (["--bert_config_file=" + tiny_config, "--task=pretraining",
        "--init_checkpoint=" + tiny, "--output_dir=" + squad_dir],
       ["--output_dir=" + squad_dir, "already holds a different model"]),
      (["--bert_config_file=" + os.path.join(ROOT, "config",
                                             "tiny_teacher.json"),
        "--init_checkpoint=" + tiny, "--output_dir=" + str(tmp_path / "a")],
       ["feeds query and key the hidden states (width 64)",
        "sizes them for the bottleneck (width 128)"]),
      (["--bert_config_file=" + neg6_config, "--init_checkpoint=" + tiny,
        "--output_dir=" + str(tmp_path / "d")],
       ["mask_mode 'neg6' cannot be expressed"]),
  ]
  script_helpers.check_refusals("export_huggingface", [
      (args + ["--vocab_file=" + vocab], wanted) for args, wanted in cases])
  # Nothing half-written: no new directory, the earlier export untouched.
  assert not [n for n in os.listdir(str(tmp_path)) if n in "abc"]
  assert sorted(os.listdir(squad_dir)) == before
  assert not [n for n in os.listdir(str(root)) if n.startswith(".staging")]
