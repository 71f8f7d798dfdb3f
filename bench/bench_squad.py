"""SQuAD benchmarks: featurisation speed and fine-tuning throughput.

  python bench/bench_squad.py                      # both, SQuAD-sized file
  python bench/bench_squad.py --skip_training      # featurisation only
  python bench/bench_squad.py --num_questions=5000 --train_steps=2

Featurisation reads a generated SQuAD v1.1 file of --num_questions questions
(5 per paragraph of ~120 words, words of 1-3 WordPiece pieces) and writes
training features exactly as run_squad.py does; the goal is the SQuAD v1.1
training set (88k questions) in under 3 minutes.  Fine-tuning times the
run_squad.py training step (forward, backward, AdamW) for --bert_config_file
(default the published OPT config) at batch 8 and sequence 384 on random ids,
after one untimed warm-up step, in a fresh process for its own peak RSS: once
with TensorFlow's defaults ("fine_tuning") and once with
TF_ENABLE_ONEDNN_OPTS=1 ("fine_tuning_onednn").  TensorFlow 2.15 turns its
oneDNN graph rewrites on by default only on CPUs with AVX-512 VNNI or newer;
on AVX2-only CPUs they are off unless that variable is set.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time

import numpy as np
import tensorflow.compat.v1 as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_util  # pylint: disable=g-import-not-at-top,wrong-import-position
import feature_records  # pylint: disable=g-import-not-at-top,wrong-import-position
import fine_tuning_model  # pylint: disable=g-import-not-at-top,wrong-import-position
import modeling  # pylint: disable=g-import-not-at-top,wrong-import-position
import squad_data  # pylint: disable=g-import-not-at-top,wrong-import-position
import tokenization  # pylint: disable=g-import-not-at-top,wrong-import-position

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"] + [
    c + v + "n" for c in "bdgkmst" for v in "aeiou"]


def _parse_args():
  parser = bench_util.argument_parser(__doc__)
  parser.add_argument("--num_questions", type=int, default=88000)
  parser.add_argument("--questions_per_paragraph", type=int, default=5)
  parser.add_argument("--words_per_paragraph", type=int, default=120)
  parser.add_argument("--max_seq_length", type=int, default=384)
  parser.add_argument("--doc_stride", type=int, default=128)
  parser.add_argument("--max_query_length", type=int, default=64)
  bench_util.add_config_argument(parser)
  parser.add_argument("--train_batch_size", type=int, default=8)
  parser.add_argument("--train_steps", type=int, default=5)
  parser.add_argument("--skip_featurisation", action="store_true")
  parser.add_argument("--skip_training", action="store_true")
  bench_util.add_timeout_argument(parser, 3600)
  bench_util.add_output_arguments(parser, "bench_squad")
  bench_util.add_result_file_argument(parser)
  # Child mode: one fine-tuning measurement in this process.
  parser.add_argument("--measure_training", action="store_true",
                      help=argparse.SUPPRESS)
  return parser.parse_args()


def _write_vocab(path):
  pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "?"]
  pieces += _SYLLABLES + ["##" + s for s in _SYLLABLES]
  with open(path, "w") as f:
    f.write("\n".join(pieces) + "\n")


def _write_squad_file(path, args):
  """A SQuAD v1.1-format file with args.num_questions answerable questions."""
  rng = random.Random(0)
  lexicon = ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3)))
             for _ in range(5000)]
  paragraphs = []
  num_paragraphs = -(-args.num_questions // args.questions_per_paragraph)
  remaining = args.num_questions
  for p in range(num_paragraphs):
    words = [rng.choice(lexicon) for _ in range(args.words_per_paragraph)]
    for i in range(11, len(words), 12):
      words[i] += "."
    context = " ".join(words)
    offsets = np.cumsum([0] + [len(w) + 1 for w in words])
    qas = []
    for q in range(min(args.questions_per_paragraph, remaining)):
      start = rng.randrange(len(words) - 3)
      length = rng.randint(1, 3)
      answer = " ".join(words[start:start + length])
      question = " ".join(rng.choice(lexicon) for _ in range(
          rng.randint(6, 14))) + " ?"
      qas.append({"id": "p%d_q%d" % (p, q), "question": question,
                  "answers": [{"text": answer,
                               "answer_start": int(offsets[start])}]})
    remaining -= len(qas)
    paragraphs.append({"context": context, "qas": qas})
  with open(path, "w") as f:
    json.dump({"version": "1.1",
               "data": [{"title": "bench", "paragraphs": paragraphs}]}, f)


def bench_featurisation(args, workdir):
  """Rows (stage, count, seconds) for reading and featurising a file."""
  vocab_file = os.path.join(workdir, "vocab.txt")
  train_file = os.path.join(workdir, "train.json")
  _write_vocab(vocab_file)
  _write_squad_file(train_file, args)
  tokenizer = tokenization.create_tokenizer(vocab_file=vocab_file)

  start = time.time()
  examples, _ = squad_data.read_squad_examples(train_file, True, False)
  read_seconds = time.time() - start

  start = time.time()
  with feature_records.RecordWriter(
      os.path.join(workdir, "train.tf_record")) as writer:
    stats = squad_data.convert_examples_to_features(
        examples, tokenizer, args.max_seq_length, args.doc_stride,
        args.max_query_length, is_training=True,
        output_fn=lambda f: writer.write(squad_data.feature_fields(f, True)))
  featurise_seconds = time.time() - start
  return [
      ("read SQuAD json (questions)", len(examples), read_seconds),
      ("featurise + write (questions)", stats["examples"], featurise_seconds),
      ("featurise + write (features)", stats["features"], featurise_seconds),
      ("total (questions)", len(examples), read_seconds + featurise_seconds),
  ]


def bench_training(args):
  """Times run_squad's training step; returns (examples, seconds)."""
  bert_config = modeling.BertConfig.from_json_file(args.bert_config_file)
  batch, seq = args.train_batch_size, args.max_seq_length
  rng = np.random.RandomState(0)
  with tf.Graph().as_default():
    features = {
        "input_ids": tf.constant(rng.randint(
            0, bert_config.vocab_size, [batch, seq]), tf.int32),
        "input_mask": tf.ones([batch, seq], tf.int32),
        "segment_ids": tf.constant(
            np.concatenate([np.zeros([batch, seq // 4]),
                            np.ones([batch, seq - seq // 4])], 1), tf.int32),
        "start_positions": tf.constant(rng.randint(0, seq, [batch]), tf.int32),
        "end_positions": tf.constant(rng.randint(0, seq, [batch]), tf.int32),
    }
    model_fn = fine_tuning_model.squad_model_fn_builder(
        bert_config, fine_tuning_model.FineTuningSettings(
            init_checkpoint=None, output_dir=None, learning_rate=4e-5,
            num_train_steps=1000, num_warmup_steps=100, use_tpu=False,
            use_einsum=False, use_quantized_training=False))
    spec = model_fn(features, None, tf.estimator.ModeKeys.TRAIN,
                    {"batch_size": batch})
    with tf.Session() as session:
      session.run(tf.global_variables_initializer())
      session.run(spec.train_op)
      start = time.time()
      for _ in range(args.train_steps):
        session.run(spec.train_op)
      seconds = time.time() - start
  return batch * args.train_steps, seconds


# Result key -> extra environment of the fine-tuning child.
TRAINING_SETTINGS = (("fine_tuning", {}),
                     ("fine_tuning_onednn", {"TF_ENABLE_ONEDNN_OPTS": "1"}))


def measure_training_in_subprocess(args, extra_env):
  """bench_training in a fresh process with `extra_env`; its result dict."""
  result_file = args.output_file + ".child.json"
  command = bench_util.child_command(
      __file__, args, ("bert_config_file", "train_batch_size",
                       "max_seq_length", "train_steps"),
      ["--measure_training", "--result_file", result_file])
  # "TF defaults" must not inherit a TF_ENABLE_ONEDNN_OPTS from the caller.
  env = {name: value for name, value in os.environ.items()
         if name != "TF_ENABLE_ONEDNN_OPTS"}
  env.update(extra_env)
  return bench_util.run_child(command, result_file, args.timeout, env=env)


def main():
  args = _parse_args()
  tf.logging.set_verbosity(tf.logging.WARN)
  if args.measure_training:
    examples, seconds = bench_training(args)
    bench_util.write_child_result(args.result_file, {
        "examples": examples, "seconds": seconds,
        "examples_per_sec": examples / seconds})
    return
  result = {}
  rows = []
  if not args.skip_featurisation:
    with tempfile.TemporaryDirectory() as workdir:
      featurisation_rows = bench_featurisation(args, workdir)
    rows += featurisation_rows
    _, questions, seconds = featurisation_rows[-1]
    result["featurisation"] = {"questions": questions, "seconds": seconds,
                               "questions_per_sec": questions / seconds,
                               "peak_rss_mb": bench_util.peak_rss_mb()}
  if not args.skip_training:
    for key, extra_env in TRAINING_SETTINGS:
      result[key] = measure_training_in_subprocess(args, extra_env)
      if result[key]["status"] == "ok":
        rows.append(("fine-tune b%d s%d, %s (examples)" % (
            args.train_batch_size, args.max_seq_length,
            " ".join("%s=%s" % kv for kv in extra_env.items()) or
            "TF defaults"), result[key]["examples"], result[key]["seconds"]))
      else:
        print("bench_squad: %s failed: %s" % (key, result[key]["error"]),
              file=sys.stderr)
  print("TensorFlow %s, %d CPU(s)" % (tf.__version__, os.cpu_count()))
  print("%-60s %10s %10s %12s" % ("stage", "count", "seconds", "per second"))
  for stage, count, seconds in rows:
    print("%-60s %10d %10.2f %12.1f" % (stage, count, seconds,
                                         count / max(seconds, 1e-9)))
  bench_util.write_json(args.output_file, result)


if __name__ == "__main__":
  main()
