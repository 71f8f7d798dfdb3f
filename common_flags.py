"""Command-line flags that more than one script takes, each defined here once.

A script calls the `define_*` functions it needs in its own `define_flags()`,
next to the flags only it has, and calls that from `if __name__ ==
"__main__"`: importing a script defines no flag, and one help text serves
every script.  Where scripts differ only in a default (the sequence length
of a SQuAD and of a GLUE run), the function takes the default.

Scripts read FLAGS in `main` and their validation; the helpers and
libraries they call take values.
"""

import tensorflow.compat.v1 as tf

flags = tf.flags


def define_model_flags():
  """--bert_config_file and --init_checkpoint."""
  flags.DEFINE_string(
      "bert_config_file", None,
      "The BertConfig JSON of the model (the student's, when distilling).")
  flags.DEFINE_string(
      "init_checkpoint", None,
      "A checkpoint: a prefix, a path ending in .index or .data-*, or a "
      "directory (its latest checkpoint).  Fine-tuning and pretraining start "
      "from it; when distilling it is the trained teacher's.  The exporters "
      "export it.")


def define_lower_case_flag():
  """--do_lower_case."""
  flags.DEFINE_bool(
      "do_lower_case", True,
      "Lower-case and strip accents before WordPiece; True for uncased "
      "models.  Must match the vocabulary and the checkpoint.")


def define_tokenizer_flags():
  """--vocab_file, --spm_model_file and --do_lower_case."""
  flags.DEFINE_string("vocab_file", None,
                      "The WordPiece vocab.txt of the model.")
  flags.DEFINE_string("spm_model_file", None,
                      "A SentencePiece model, instead of --vocab_file.")
  define_lower_case_flag()


def define_max_seq_length_flag(default):
  """--max_seq_length with the script's `default`."""
  flags.DEFINE_integer(
      "max_seq_length", default,
      "Tokens per input sequence after WordPiece tokenization, special "
      "tokens included: longer inputs are cut, shorter ones padded.  At most "
      "the config's max_position_embeddings; pretraining data and "
      "run_pretraining.py must agree on it.")


def define_max_predictions_flag():
  """--max_predictions_per_seq."""
  flags.DEFINE_integer(
      "max_predictions_per_seq", 20,
      "Masked positions per pretraining sequence; pretraining data and "
      "run_pretraining.py must agree on it.")


def define_dupe_factor_flag(default):
  """--dupe_factor with the script's `default`."""
  flags.DEFINE_integer(
      "dupe_factor", default,
      "Passes over the corpus when making pretraining data, each with fresh "
      "masks and sentence pairs.")


def define_random_seed_flag(default=None):
  """--random_seed with the script's `default`."""
  flags.DEFINE_integer(
      "random_seed", default,
      "Seed for reproducible runs: the graph-level seed of a training run "
      "(initializers, dropout, input order), or the seed of the masking and "
      "pairing of pretraining data.  Unset means unseeded.")


def define_input_file_flag():
  """--input_file."""
  flags.DEFINE_string(
      "input_file", None,
      "Input files: one path, a glob, or several separated by commas.  Plain "
      "text (one sentence per line, a blank line between documents) for "
      "create_pretraining_data.py and build_vocab.py; the TFRecords "
      "create_pretraining_data.py writes for run_pretraining.py.")


def define_output_file_flag():
  """--output_file."""
  flags.DEFINE_string(
      "output_file", None,
      "Where to write: the vocab.txt of build_vocab.py; the TFRecord file(s) "
      "of create_pretraining_data.py (several separated by commas).")


def define_output_dir_flag(default=None):
  """--output_dir with the script's `default`."""
  flags.DEFINE_string(
      "output_dir", default,
      "Where the run writes: checkpoints, summaries, predictions and "
      "eval_results.json for the run_* scripts (a re-run resumes from its "
      "checkpoints; phase 1 of run_pretraining.py goes to output_dir/warmup), "
      "the model directory of export_huggingface.py.")


def define_task_flags(default):
  """--task (the script checks it against what it exports) and --num_labels."""
  flags.DEFINE_string(
      "task", default,
      "What the checkpoint was trained for, which decides the heads "
      "exported: squad (span logits) or classifier (GLUE labels); "
      "export_huggingface.py also takes pretraining (MLM and NSP heads) and "
      "masked_lm (the MLM head; a distillation teacher has no NSP head).")
  flags.DEFINE_integer(
      "num_labels", None,
      "Classes of a --task=classifier checkpoint (1: regression, STS-B).")


def define_training_flags(use_einsum_default=False):
  """Estimator, batch and TPU flags of the three run_* scripts."""
  flags.DEFINE_bool(
      "do_train", False,
      "Train: fine-tune, or pretrain with run_pretraining.py; a run resumes "
      "from the latest checkpoint in --output_dir.")
  flags.DEFINE_integer(
      "train_batch_size", 32,
      "Training batch size, over all replicas (TPU cores or devices).")
  flags.DEFINE_float("learning_rate", 5e-5,
                     "Peak learning rate (after the linear warm-up).")
  flags.DEFINE_integer("save_checkpoints_steps", 1000,
                       "Training steps between checkpoints.")
  flags.DEFINE_integer(
      "iterations_per_loop", 1000,
      "Steps per TPU loop (per estimator call); also how often a TPU logs.")
  flags.DEFINE_bool(
      "use_einsum", use_einsum_default,
      "Einsum maths for the 3-D dense layers and attention.  Same results "
      "and variables; the MatMul path converts best to TF-Lite.")
  define_random_seed_flag()
  flags.DEFINE_bool("use_tpu", False,
                    "Run on a Cloud TPU (with one-hot embedding lookups).")
  flags.DEFINE_string(
      "tpu_name", None,
      "The Cloud TPU: the name it was created with, or a "
      "grpc://ip.address.of.tpu:8470 address.")
  flags.DEFINE_string(
      "tpu_zone", None,
      "GCE zone of the Cloud TPU; unset, it is read from the GCE metadata.")
  flags.DEFINE_string(
      "gcp_project", None,
      "GCP project of the Cloud TPU; unset, it is read from the GCE "
      "metadata.")
  flags.DEFINE_string("master", None, "TensorFlow master URL.")
  flags.DEFINE_integer("num_tpu_cores", 8,
                       "With --use_tpu: total number of TPU cores.")


def define_eval_flags():
  """--do_eval and --eval_batch_size."""
  flags.DEFINE_bool(
      "do_eval", False,
      "Evaluate: the dev set(s) of run_classifier.py; the masked-LM and "
      "next-sentence metrics of run_pretraining.py on --input_file.")
  flags.DEFINE_integer("eval_batch_size", 8, "Batch size of evaluation.")


def define_fine_tuning_flags():
  """Flags of run_squad.py and run_classifier.py beyond training's."""
  flags.DEFINE_string(
      "data_dir", None,
      "run_classifier.py: the task's GLUE TSV files (train.tsv, dev.tsv, "
      "test.tsv; MNLI: dev_matched.tsv, dev_mismatched.tsv, "
      "test_matched.tsv, test_mismatched.tsv).  run_squad.py: where the "
      "featurised training set (train.tf_record) is cached, by default "
      "--output_dir.")
  flags.DEFINE_float("num_train_epochs", 3.0, "Training epochs.")
  flags.DEFINE_float(
      "warmup_proportion", 0.1,
      "Fraction of training with a linear learning-rate warm-up.")
  flags.DEFINE_bool(
      "do_predict", False,
      "Predict: answers to --predict_file (run_squad.py), GLUE submission "
      "files for the test set(s) (run_classifier.py).")
  flags.DEFINE_integer("predict_batch_size", 8, "Batch size of prediction.")
  flags.DEFINE_string(
      "lite_model_path", None,
      "Predict (and with run_classifier.py, evaluate) with this TF-Lite "
      "model instead of the TensorFlow graph.")


def define_export_flags():
  """--export_dir and the quantization flags that choose the files."""
  flags.DEFINE_string(
      "export_dir", None,
      "Where to write the export (SavedModel and TF-Lite files).  The run_* "
      "scripts export after training, evaluation and prediction, from the "
      "latest checkpoint in --output_dir (or --init_checkpoint).")
  flags.DEFINE_bool(
      "use_quantized_training", False,
      "Quantization-aware training: fake-quant nodes in the encoder; needs "
      "a relu6 + no_norm config such as "
      "config/uncased_L-24_H-128_B-512_A-4_F-4_OPT_QAT.json.  Exports write "
      "the QAT graph's float and integer TF-Lite files.")
  flags.DEFINE_bool(
      "use_post_quantization", False,
      "On export, also write a post-training-quantized TF-Lite model: "
      "dynamic-range, or full integer with --activation_quantization.")
  flags.DEFINE_bool(
      "activation_quantization", False,
      "With --use_post_quantization, quantize activations too (the "
      "full-integer model), calibrated on the first 100 training examples: "
      "questions of --train_file (run_squad.py), train.tsv in --data_dir "
      "(run_classifier.py), --representative_file (export_tflite.py).  With "
      "--use_quantized_training the integer model is written either way and "
      "only the tensors QAT learns no range for are calibrated.")
  flags.DEFINE_bool(
      "float_softmax", False,
      "Beside the integer model, also write "
      "model_[qat_]int8_float_softmax.tflite: the same model with its "
      "attention softmaxes in float32, the fastest file on x86 CPUs (XNNPACK "
      "runs all of it but the embedding lookups).  Ship the integer-only "
      "file to integer-only accelerators.")
