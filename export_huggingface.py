"""Exports a checkpoint as a Hugging Face transformers MobileBERT directory.

  python3 export_huggingface.py \
    --bert_config_file=config/uncased_L-24_H-128_B-512_A-4_F-4_OPT.json \
    --init_checkpoint=/tmp/mobilebert/squad --vocab_file=vocab.txt \
    --task=squad --output_dir=/tmp/mobilebert/hf_squad

The directory holds `config.json` (transformers' MobileBertConfig, every field
taken from the BertConfig), `model.safetensors` (transformers' parameter names
and layouts, written with numpy) and the tokenizer files.  transformers 4.x
and 5.x load it with `from_pretrained`; nothing on that side needs
TensorFlow.  Tasks: `pretraining` (MobileBertForPreTraining: backbone, MLM and
NSP heads), `masked_lm` (MobileBertForMaskedLM), `squad`
(MobileBertForQuestionAnswering), `classifier`
(MobileBertForSequenceClassification, --num_labels).  `--scope=teacher
--task=masked_lm` exports the IB-BERT teacher held by a distillation
checkpoint (it has no NSP head).

Every checkpoint variable is either converted or skipped by a rule that is
logged (optimizer slots, quantizer ranges, global_step, the other model of a
distillation checkpoint, heads of other tasks); anything else stops the
export with its name.
"""

# First: it imports TensorFlow without its import-time noise (console.py).
import console  # pylint: disable=g-bad-import-order

import json
import os
import re
import shutil

import numpy as np
import tensorflow.compat.v1 as tf

import atomic_files
import checkpoints
import common_flags
import file_checks
import modeling
import run_utils
import tokenization

TASKS = ("pretraining", "masked_lm", "squad", "classifier")
MODEL_CLASSES = {"pretraining": "MobileBertForPreTraining",
                 "masked_lm": "MobileBertForMaskedLM",
                 "squad": "MobileBertForQuestionAnswering",
                 "classifier": "MobileBertForSequenceClassification"}
SCOPES = (modeling.MODEL_SCOPE, modeling.TEACHER_SCOPE)
MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"

# Our hidden_act names -> transformers' ACT2FN keys ("gelu" here is the tanh
# approximation, transformers' "gelu_new").
_ACTIVATIONS = {"gelu": "gelu_new", "relu": "relu", "relu6": "relu6",
                "tanh": "tanh", "linear": "linear"}
# Each task's head: checkpoint name -> (transformers name, transpose).
_MLM_HEAD = {
    "cls/predictions/transform/dense/kernel":
        ("cls.predictions.transform.dense.weight", True),
    "cls/predictions/transform/dense/bias":
        ("cls.predictions.transform.dense.bias", False),
    "cls/predictions/transform/LayerNorm/gamma":
        ("cls.predictions.transform.LayerNorm.weight", False),
    "cls/predictions/transform/LayerNorm/beta":
        ("cls.predictions.transform.LayerNorm.bias", False),
    "cls/predictions/output_bias": ("cls.predictions.bias", False),
    "cls/predictions/extra_output_weights":
        ("cls.predictions.dense.weight", True),
}
_HEADS = {
    "pretraining": dict(_MLM_HEAD, **{
        "cls/seq_relationship/output_weights":
            ("cls.seq_relationship.weight", False),
        "cls/seq_relationship/output_bias":
            ("cls.seq_relationship.bias", False)}),
    "masked_lm": _MLM_HEAD,
    "squad": {"cls/squad/output_weights": ("qa_outputs.weight", False),
              "cls/squad/output_bias": ("qa_outputs.bias", False)},
    "classifier": {"output_weights": ("classifier.weight", False),
                   "output_bias": ("classifier.bias", False)},
}
_ALL_HEAD_NAMES = frozenset(name for head in _HEADS.values() for name in head)
# Variables that are not model weights, skipped wherever they appear.
_NOT_WEIGHTS = re.compile(
    r"(^global_step$|/adam_[mv]$|MobileBert(Act|Weight)FakeQuantWithMinMaxVars"
    r"|(^|/)AssignM(in|ax)Ema/)")


def define_flags():
  """The script's flags: the shared ones (common_flags) and its own."""
  common_flags.define_model_flags()
  common_flags.define_tokenizer_flags()
  common_flags.define_task_flags("pretraining")
  common_flags.define_output_dir_flag()
  tf.flags.DEFINE_enum("scope", "bert", list(SCOPES),
                       "bert: the model itself; teacher: the IB-BERT teacher "
                       "of a distillation checkpoint.")
  # --helpshort lists the shared flags with the script's own.
  tf.flags.adopt_module_key_flags(common_flags)


def transformers_config(bert_config, task, num_labels=None):
  """transformers' MobileBertConfig fields for `bert_config`, as a dict.

  Raises:
    ValueError: a setting transformers' MobileBERT cannot express.
  """
  if bert_config.hidden_act not in _ACTIVATIONS:
    raise ValueError("hidden_act %r has no transformers equivalent." %
                     bert_config.hidden_act)
  if bert_config.normalization_type not in ("no_norm", "layer_norm"):
    raise ValueError(
        "normalization_type %r has no transformers equivalent (it has "
        "no_norm and layer_norm)." % bert_config.normalization_type)
  if (bert_config.use_bottleneck and not bert_config.use_bottleneck_attention
      and not bert_config.key_query_shared_bottleneck and
      bert_config.intra_bottleneck_size != bert_config.hidden_size):
    raise ValueError(
        "this config feeds query and key the hidden states (width %d), but "
        "transformers' MobileBERT sizes them for the bottleneck (width %d); "
        "it can take configs with key_query_shared_bottleneck or "
        "use_bottleneck_attention, not this one (e.g. the IB-BERT teacher)." %
        (bert_config.hidden_size, bert_config.intra_bottleneck_size))
  if bert_config.mask_mode == modeling.MASK_MODE_NEG6:
    raise ValueError(
        "mask_mode 'neg6' cannot be expressed: transformers' MobileBERT gives "
        "masked keys the lowest float, as the additive mask's -10000 does.")
  config = {
      "architectures": [MODEL_CLASSES[task]],
      "model_type": "mobilebert",
      "vocab_size": bert_config.vocab_size,
      "hidden_size": bert_config.hidden_size,
      "embedding_size": bert_config.embedding_size,
      "num_hidden_layers": bert_config.num_hidden_layers,
      "num_attention_heads": bert_config.num_attention_heads,
      "intermediate_size": bert_config.intermediate_size,
      "hidden_act": _ACTIVATIONS[bert_config.hidden_act],
      "hidden_dropout_prob": bert_config.hidden_dropout_prob,
      "attention_probs_dropout_prob": bert_config.attention_probs_dropout_prob,
      "max_position_embeddings": bert_config.max_position_embeddings,
      "type_vocab_size": bert_config.type_vocab_size,
      "initializer_range": bert_config.initializer_range,
      "layer_norm_eps": 1e-12,
      "pad_token_id": 0,
      "trigram_input": bool(bert_config.trigram_input),
      "use_bottleneck": bool(bert_config.use_bottleneck),
      "intra_bottleneck_size": bert_config.intra_bottleneck_size,
      "use_bottleneck_attention": bool(bert_config.use_bottleneck_attention),
      "key_query_shared_bottleneck": bool(
          bert_config.key_query_shared_bottleneck),
      "num_feedforward_networks": bert_config.num_feedforward_networks,
      "normalization_type": bert_config.normalization_type,
      "classifier_activation": bool(bert_config.classifier_activation),
      "true_hidden_size": bert_config.true_hidden_size,
  }
  if task == "classifier":
    config["id2label"] = {str(i): "LABEL_%d" % i for i in range(num_labels)}
    config["label2id"] = {"LABEL_%d" % i: i for i in range(num_labels)}
    if num_labels == 1:
      config["problem_type"] = "regression"
  return config


def transformers_name(name):
  """(transformers parameter name, transpose) of a backbone variable."""
  name = re.sub(r"^bert/", "mobilebert/", name)
  name = re.sub(r"/layer_(\d+)/", r"/layer/\1/", name)
  name = re.sub(r"/ffn_layer_(\d+)/", r"/ffn/\1/", name)
  name = name.replace("FakeLayerNorm", "LayerNorm")
  transpose = name.endswith("/kernel")
  name = re.sub(r"/(kernel|gamma)$", "/weight", name)
  name = re.sub(r"/beta$", "/bias", name)
  if re.search(r"_embeddings$", name):
    name += "/weight"
  return name.replace("/", "."), transpose


def convert_checkpoint(checkpoint, bert_config, task, scope="bert"):
  """The transformers tensors of one model in `checkpoint`.

  Args:
    checkpoint: checkpoint prefix.
    bert_config: the BertConfig of the model under `scope`.
    task: one of TASKS.
    scope: "bert" (the model) or "teacher" (a distillation checkpoint's
      teacher, stored under teacher/).

  Returns:
    ({transformers name: float32 array}, {skip rule: [checkpoint names]}).

  Raises:
    ValueError: a model variable with no transformers destination, or a
      variable the task's model needs that the checkpoint lacks.
  """
  reader = tf.train.load_checkpoint(checkpoint)
  teacher_prefix = modeling.TEACHER_SCOPE + "/"
  prefix = teacher_prefix if scope == modeling.TEACHER_SCOPE else ""
  expected = set(modeling.encoder_variable_shapes(bert_config)) | set(
      _HEADS[task])
  if task in ("pretraining", "masked_lm") and (
      bert_config.hidden_size == bert_config.embedding_size):
    expected.discard("cls/predictions/extra_output_weights")
  tensors = {}
  skipped = {}

  def skip(rule, name):
    skipped.setdefault(rule, []).append(name)

  for name in sorted(reader.get_variable_to_shape_map()):
    if _NOT_WEIGHTS.search(name):
      skip("optimizer slots, quantizer ranges and global_step", name)
      continue
    if not name.startswith(prefix) or (
        scope == modeling.MODEL_SCOPE and name.startswith(teacher_prefix)):
      skip("the other model of a distillation checkpoint", name)
      continue
    local = name[len(prefix):]
    if local in _ALL_HEAD_NAMES and local not in _HEADS[task]:
      skip("heads of other tasks", name)
      continue
    if local not in expected:
      raise ValueError(
          "Checkpoint %s: variable %s has no place in transformers' %s for "
          "--bert_config_file (is it the config of this checkpoint, and of "
          "--scope=%s?)." % (checkpoint, name, MODEL_CLASSES[task], scope))
    if local in _HEADS[task]:
      target, transpose = _HEADS[task][local]
    else:
      target, transpose = transformers_name(local)
    value = reader.get_tensor(name).astype(np.float32)
    tensors[target] = np.ascontiguousarray(value.T if transpose else value)
    expected.discard(local)
  if expected:
    missing = sorted(expected)
    head = [n for n in missing if n in _HEADS[task]]
    raise ValueError(
        "Checkpoint %s has no %s%s (%d variables missing, e.g. %s)%s." %
        (checkpoint, prefix, missing[0], len(missing), missing[0],
         "; it is not a --task=%s checkpoint" % task if head else ""))
  if task in ("pretraining", "masked_lm"):
    # Tied in transformers: the decoder is the word embedding table and its
    # bias the prediction bias.
    tensors["cls.predictions.decoder.weight"] = tensors[
        "mobilebert.embeddings.word_embeddings.weight"]
    tensors["cls.predictions.decoder.bias"] = tensors["cls.predictions.bias"]
  return tensors, skipped


def _tokenizer_files(directory, vocab_file, spm_model_file, do_lower_case,
                     max_length):
  if vocab_file:
    shutil.copyfile(vocab_file, os.path.join(directory, "vocab.txt"))
    tokenizer_config = {"tokenizer_class": "MobileBertTokenizer",
                        "do_lower_case": do_lower_case,
                        "model_max_length": max_length}
  else:
    # transformers has no SentencePiece MobileBERT tokenizer: ship the model
    # for sentencepiece (or this code base's SentencePieceTokenizer).
    shutil.copyfile(spm_model_file, os.path.join(directory, "spiece.model"))
    tokenizer_config = {"do_lower_case": do_lower_case,
                        "model_max_length": max_length}
  special = {"unk_token": tokenization.UNK_TOKEN,
             "sep_token": tokenization.SEP_TOKEN,
             "pad_token": tokenization.PAD_TOKEN,
             "cls_token": tokenization.CLS_TOKEN,
             "mask_token": tokenization.MASK_TOKEN}
  tokenizer_config.update(special)
  for file_name, content in (("tokenizer_config.json", tokenizer_config),
                             ("special_tokens_map.json", special)):
    with open(os.path.join(directory, file_name), "w") as f:
      json.dump(content, f, indent=2, sort_keys=True)


def _check_output_dir(output_dir, config):
  """An existing output directory may only hold an earlier export of the
  same model (same config.json), which is then replaced."""
  file_checks.check_writable_dir(output_dir, "output_dir")
  if not os.path.isdir(output_dir) or not os.listdir(output_dir):
    return
  config_path = os.path.join(output_dir, CONFIG_FILE)
  existing = None
  if os.path.exists(config_path):
    with open(config_path) as f:
      existing = json.load(f)
  if existing != config:
    raise ValueError(
        "--output_dir=%s already holds %s; give an empty or new directory." %
        (output_dir, "a different model (its config.json differs)"
         if existing is not None else "files that are not an export"))


def export(bert_config, checkpoint, output_dir, task="pretraining",
           num_labels=None, vocab_file=None, spm_model_file=None,
           do_lower_case=True, scope="bert"):
  """Writes the transformers directory; see the module docstring.

  Everything is written into a temporary directory beside `output_dir` and
  moved into place at the end: a failed export leaves nothing behind, and an
  earlier export of the same model is replaced whole.

  Returns:
    {"config": path, "model": path} of the written files.

  Raises:
    ValueError: naming the problem (flags, checkpoint, directory).
  """
  if task not in TASKS:
    raise ValueError("task must be one of %s, got %r." %
                     (", ".join(TASKS), task))
  if scope not in SCOPES:
    raise ValueError("scope must be one of %s, got %r." %
                     (", ".join(SCOPES), scope))
  if task == "classifier" and not num_labels:
    raise ValueError("task 'classifier' needs num_labels.")
  if bool(vocab_file) == bool(spm_model_file):
    raise ValueError("Give exactly one of vocab_file and spm_model_file.")
  tokenization.create_tokenizer(vocab_file, spm_model_file, do_lower_case,
                                vocab_size=bert_config.vocab_size)
  config = transformers_config(bert_config, task, num_labels)
  prefix = checkpoints.check_checkpoint(
      checkpoint, bert_config,
      scope=(modeling.TEACHER_SCOPE + "/" + modeling.MODEL_SCOPE
             if scope == modeling.TEACHER_SCOPE else modeling.MODEL_SCOPE))
  _check_output_dir(output_dir, config)
  tensors, skipped = convert_checkpoint(prefix, bert_config, task, scope)
  for rule, names in sorted(skipped.items()):
    tf.logging.info("Skipped %d variables (%s), e.g. %s", len(names), rule,
                    names[0])
  tf.logging.info("Converted %d tensors for %s.", len(tensors),
                  MODEL_CLASSES[task])

  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  parent = os.path.dirname(os.path.abspath(output_dir))
  with atomic_files.staging_directory(parent) as staging:
    built = os.path.join(staging, "model")
    os.mkdir(built)
    # Tied tensors share memory in transformers; safetensors wants copies.
    save_file({name: np.array(value) for name, value in tensors.items()},
              os.path.join(built, MODEL_FILE), metadata={"format": "pt"})
    with open(os.path.join(built, CONFIG_FILE), "w") as f:
      json.dump(config, f, indent=2, sort_keys=True)
    _tokenizer_files(built, vocab_file, spm_model_file, do_lower_case,
                     bert_config.max_position_embeddings)
    atomic_files.replace_directory(built, output_dir)
  return {"config": os.path.join(output_dir, CONFIG_FILE),
          "model": os.path.join(output_dir, MODEL_FILE)}


def _validate_flags():
  """Checks the flags; every problem is reported, then the run exits.

  Returns:
    The BertConfig of --bert_config_file.
  """
  flags_values = tf.flags.FLAGS
  problems = run_utils.FlagProblems("export_huggingface.py")
  problems.require_flags(flags_values, "bert_config_file", "init_checkpoint",
                         "output_dir")
  problems.check(flags_values.task in TASKS, "--task must be one of %s, got "
                 "%r." % (", ".join(TASKS), flags_values.task))
  problems.check(flags_values.task != "classifier" or flags_values.num_labels,
                 "--task=classifier needs --num_labels.")
  problems.check(
      bool(flags_values.vocab_file) != bool(flags_values.spm_model_file),
      "Give exactly one of --vocab_file and --spm_model_file.")
  problems.call(file_checks.check_writable_dir, flags_values.output_dir,
                "output_dir")
  bert_config = problems.load_config("bert_config_file",
                                     flags_values.bert_config_file)
  problems.exit_if_any()
  return bert_config


def main(_):
  console.setup()
  flags_values = tf.flags.FLAGS
  bert_config = _validate_flags()
  # export() checks the checkpoint, the vocabulary and the directory before
  # converting anything.
  with run_utils.one_line_errors("export_huggingface.py"):
    paths = export(bert_config, flags_values.init_checkpoint,
                   flags_values.output_dir, task=flags_values.task,
                   num_labels=flags_values.num_labels,
                   vocab_file=flags_values.vocab_file,
                   spm_model_file=flags_values.spm_model_file,
                   do_lower_case=flags_values.do_lower_case,
                   scope=flags_values.scope)
  tf.logging.info("Wrote %s and %s", paths["config"], paths["model"])


if __name__ == "__main__":
  define_flags()
  tf.app.run()
