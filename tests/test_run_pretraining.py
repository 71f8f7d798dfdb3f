"""run_pretraining.py end to end: plain pretraining, two-phase distillation,
resume after a kill, flag validation and the mirrored-strategy path.

Scripts run in subprocesses (their flags would clash with other scripts').
"""

import glob
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import tensorflow.compat.v1 as tf

import tf_compat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEQ, PREDS = 24, 4
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["w%d" % i for i in range(59)]

STUDENT = dict(
    vocab_size=64, hidden_size=32, embedding_size=16, num_hidden_layers=2,
    num_attention_heads=2, intermediate_size=32, hidden_act="relu",
    hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.1,
    max_position_embeddings=32, type_vocab_size=2, initializer_range=0.02,
    trigram_input=True, use_bottleneck=True, intra_bottleneck_size=16,
    num_feedforward_networks=1, normalization_type="no_norm",
    classifier_activation=False)
# A plain BERT teacher of the same width: small graphs keep the runs short.
TEACHER = dict(
    vocab_size=64, hidden_size=32, embedding_size=16, num_hidden_layers=2,
    num_attention_heads=2, intermediate_size=64, hidden_act="gelu",
    hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
    max_position_embeddings=32, type_vocab_size=2, initializer_range=0.02,
    trigram_input=True)


def run_script(args, timeout=600, script="run_pretraining.py"):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  command = [sys.executable] + ([script] if script else []) + args
  result = subprocess.run(command, cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=timeout)
  return result.returncode, result.stdout


def write_json(path, obj):
  with open(path, "w") as f:
    json.dump(obj, f)
  return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
  """Vocab, configs and pretraining TFRecords of a small structured corpus."""
  root = tmp_path_factory.mktemp("pretrain")
  rng = random.Random(0)
  with open(str(root / "vocab.txt"), "w") as f:
    f.write("\n".join(SPECIALS + WORDS) + "\n")
  # Zipf-distributed words with a topic-dependent successor rule: enough
  # structure for a few training steps to lower the MLM loss.
  zipf = [1.0 / (rank + 1) ** 1.3 for rank in range(59)]
  with open(str(root / "corpus.txt"), "w") as f:
    for _ in range(30):
      topic = rng.randint(0, 5)
      for _ in range(rng.randint(3, 7)):
        word = rng.choices(range(59), weights=zipf)[0]
        tokens = []
        for _ in range(rng.randint(4, 9)):
          tokens.append("w%d" % word)
          if rng.random() < 0.5:
            word = (word * 3 + topic) % 59
          else:
            word = rng.choices(range(59), weights=zipf)[0]
        f.write(" ".join(tokens) + "\n")
      f.write("\n")
  code, out = run_script([
      "--input_file=%s" % (root / "corpus.txt"),
      "--output_file=%s" % (root / "data.tfrecord"),
      "--vocab_file=%s" % (root / "vocab.txt"), "--max_seq_length=%d" % SEQ,
      "--max_predictions_per_seq=%d" % PREDS, "--dupe_factor=2"],
                         script="create_pretraining_data.py")
  assert code == 0, out[-3000:]
  write_json(str(root / "student.json"), STUDENT)
  write_json(str(root / "teacher.json"), TEACHER)
  return root


def read_scalars(summary_dir):
  """{tag: {step: value}} from the event files in summary_dir."""
  scalars = {}
  for path in glob.glob(os.path.join(summary_dir, "events.out.tfevents*")):
    for event in tf.train.summary_iterator(path):
      for value in event.summary.value:
        if value.HasField("tensor"):
          number = float(tf.make_ndarray(value.tensor))
        else:
          number = value.simple_value
        scalars.setdefault(value.tag, {})[event.step] = number
  return scalars


def checkpoint_steps(model_dir):
  pattern = os.path.join(model_dir, "model.ckpt-*.index")
  return sorted(int(p.split("-")[-1].split(".")[0])
                for p in glob.glob(pattern))


def recorded_step(model_dir):
  """The step of the latest checkpoint TF has recorded in `model_dir` (its
  `checkpoint` file, updated after the files are written), or -1."""
  latest = tf.train.latest_checkpoint(model_dir)
  return int(latest.split("-")[-1]) if latest else -1


def load(model_dir, step):
  return tf.train.load_checkpoint(os.path.join(model_dir,
                                               "model.ckpt-%d" % step))


@pytest.fixture(scope="module")
def teacher_dir(workdir):
  """Plain MLM + NSP pretraining of the teacher (no teacher config)."""
  output_dir = str(workdir / "teacher")
  code, out = run_script([
      "--bert_config_file=%s" % (workdir / "teacher.json"),
      "--input_file=%s" % (workdir / "data.tfrecord"),
      "--output_dir=" + output_dir, "--do_train",
      "--max_seq_length=%d" % SEQ, "--max_predictions_per_seq=%d" % PREDS,
      "--train_batch_size=8", "--learning_rate=2e-3",
      "--num_train_steps=16", "--num_warmup_steps=2",
      "--first_input_file=%s" % (workdir / "data.tfrecord"),
      "--first_max_seq_length=%d" % SEQ, "--first_train_batch_size=4",
      "--first_num_train_steps=4",
      "--save_checkpoints_steps=100", "--log_step_count_steps=5",
      "--use_summary"])
  assert code == 0, out[-5000:]
  return output_dir, out


def test_plain_pretraining_learns(teacher_dir):
  output_dir, log = teacher_dir
  # The short-sequence first round (batch 4) ends at step 4, then the main
  # round continues the same global step to 16.
  assert "phase 2, first round in %s: steps 0 -> 4, batch 4" % output_dir in log
  assert ("phase 2: pretraining in %s: steps 4 -> 16, batch 8" % output_dir
          in log)
  assert checkpoint_steps(output_dir)[-1] == 16
  scalars = read_scalars(os.path.join(output_dir, "my_summary", "main"))
  mlm = scalars["masked_lm_loss"]
  assert np.mean([mlm[s] for s in (13, 14, 15)]) < mlm[0] - 0.2, mlm
  lr = scalars["learning_rate"]
  np.testing.assert_allclose(lr[1], 2e-3 * 1 / 2, rtol=1e-5)
  np.testing.assert_allclose(lr[8], (2e-3 - 2e-7) * (1 - 8 / 16) + 2e-7,
                             rtol=1e-5)
  assert "global_step/sec" in log
  assert "loss = " in log


def distill_command(workdir, teacher_checkpoint, output_dir):
  """The seed README's distillation command at toy scale, minus --use_tpu."""
  return [
      "--attention_distill_factor=1",
      "--bert_config_file=%s" % (workdir / "student.json"),
      "--bert_teacher_config_file=%s" % (workdir / "teacher.json"),
      "--beta_distill_factor=5000",
      "--distill_ground_truth_ratio=0.5",
      "--distill_temperature=1",
      "--do_train",
      "--do_eval",
      "--max_eval_steps=2",
      "--first_input_file=%s" % (workdir / "data.tfrecord"),
      "--first_max_seq_length=%d" % SEQ,
      "--first_num_train_steps=0",
      "--first_train_batch_size=4096",
      "--gamma_distill_factor=5",
      "--hidden_distill_factor=100",
      "--init_checkpoint=" + teacher_checkpoint,
      "--input_file=%s" % (workdir / "data.tfrecord"),
      "--layer_wise_warmup",
      "--learning_rate=0.0015",
      "--max_predictions_per_seq=%d" % PREDS,
      "--max_seq_length=%d" % SEQ,
      "--num_distill_steps=6",
      "--num_train_steps=3",
      "--num_warmup_steps=1",
      "--optimizer=lamb",
      "--output_dir=" + output_dir,
      "--save_checkpoints_steps=1",
      "--train_batch_size=8",
      "--use_einsum",
      "--use_summary",
      "--log_step_count_steps=2",
  ]


def test_distillation_two_phases_with_kill_and_resume(workdir, teacher_dir):
  teacher_checkpoint = os.path.join(teacher_dir[0], "model.ckpt-16")
  output_dir = str(workdir / "student")
  warmup_dir = os.path.join(output_dir, "warmup")
  args = distill_command(workdir, teacher_checkpoint, output_dir)

  # Kill the run hard once phase 1 has recorded its second checkpoint.  A
  # restart resumes from the recorded one: a kill between a checkpoint's
  # files and its record leaves .index files one step ahead of it.
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  process = subprocess.Popen([sys.executable, "run_pretraining.py"] + args,
                             cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  deadline = time.time() + 400
  while time.time() < deadline and process.poll() is None:
    if recorded_step(warmup_dir) >= 2:
      break
    time.sleep(0.05)
  assert process.poll() is None, "run finished before it could be killed"
  process.send_signal(signal.SIGKILL)
  process.wait()
  killed_at = recorded_step(warmup_dir)
  assert 2 <= killed_at < 6 or checkpoint_steps(output_dir)

  code, log = run_script(args)
  assert code == 0, log[-5000:]
  if killed_at < 6:
    assert "model.ckpt-%d" % killed_at in log
    assert "steps %d -> 6" % killed_at in log
  assert "global_step/sec" in log and "loss = " in log
  assert checkpoint_steps(warmup_dir) == list(range(0, 7))
  assert checkpoint_steps(output_dir)[-1] == 3

  with open(os.path.join(output_dir, "eval_results.txt")) as f:
    results = dict(line.strip().split(" = ") for line in f if line.strip())
  for key in ("masked_lm_accuracy", "masked_lm_loss", "next_sentence_accuracy",
              "next_sentence_loss"):
    assert np.isfinite(float(results[key])), key
  assert 0.0 <= float(results["masked_lm_accuracy"]) <= 1.0
  assert int(results["global_step"]) == 3

  # Training again skips both finished phases without building a graph.
  code, log = run_script([a for a in args if a != "--do_eval"])
  assert code == 0, log[-5000:]
  assert "phase 1: layer-wise knowledge transfer already complete" in log
  assert "phase 2: pretraining distillation already complete" in log
  assert "Done calling model_fn" not in log
  assert checkpoint_steps(output_dir)[-1] == 3

  teacher = tf.train.load_checkpoint(teacher_checkpoint)
  teacher_names = [n for n in teacher.get_variable_to_shape_map()
                   if not n.startswith("cls/seq_relationship") and
                   "adam_" not in n and n != "global_step"]
  spp = 3
  previous = load(warmup_dir, 0)
  names = [n for n in previous.get_variable_to_shape_map()
           if "adam_" not in n and n != "global_step"]
  assert not [n for n in names if "distill" in n]
  # Embeddings and heads come from the teacher and stay frozen in phase 1.
  copied = [n for n in names if n.startswith(("bert/embeddings/", "cls/"))
            and teacher.has_tensor(n)]
  assert "bert/embeddings/word_embeddings" in copied
  for step in range(1, 7):
    current = load(warmup_dir, step)
    value = step - 1  # the global step seen by the update that made `step`

    def changed(prefix):
      return any(not np.array_equal(previous.get_tensor(n),
                                    current.get_tensor(n))
                 for n in names if n.startswith(prefix))

    active = value > 0 and value % spp != 0
    assert changed("bert/encoder/layer_0/") == active, step
    assert changed("bert/encoder/layer_1/") == (active and value > spp), step
    for name in copied:
      np.testing.assert_array_equal(current.get_tensor(name),
                                    teacher.get_tensor(name))
    previous = current
  final = load(output_dir, 3)
  for name in teacher_names:
    np.testing.assert_array_equal(final.get_tensor("teacher/" + name),
                                  teacher.get_tensor(name))
  table = "bert/embeddings/word_embeddings"
  assert not np.array_equal(final.get_tensor(table), teacher.get_tensor(table))

  # Summaries of the killed run were still queued; the resumed run's are
  # written from the step it restarted at.  (That the transfer losses go down
  # is checked on a fixed batch in test_distillation.py.)
  warm = read_scalars(os.path.join(output_dir, "my_summary", "warmup"))
  assert min(warm["loss"]) <= max(killed_at, 1) and max(warm["loss"]) == 5
  for name in ("feature_map_transfer_loss", "attention_transfer_loss",
               "mean_transfer_loss", "variance_transfer_loss"):
    assert all(value > 0.0 for value in warm[name].values()), name
  main = read_scalars(os.path.join(output_dir, "my_summary", "main"))
  assert set(main) >= {"masked_lm_loss", "next_sentence_loss",
                       "masked_lm_accuracy", "next_sentence_accuracy",
                       "learning_rate", "loss"}


def test_invalid_flags_stop_before_any_graph(workdir):
  script = textwrap.dedent("""
      import sys
      import run_pretraining
      FLAGS = run_pretraining.FLAGS
      base = sys.argv[1:]
      cases = [
          ["--layer_wise_warmup", "--optimizer=adamw"],
          ["--bert_teacher_config_file=%(bad)s"],
          ["--max_seq_length=64"],
          ["--input_file=%(root)s/missing-*.tfrecord"],
          ["--layer_wise_warmup", "--optimizer=lamb",
           "--bert_teacher_config_file=%(teacher)s",
           "--init_checkpoint=%(root)s/nothing.ckpt",
           "--hidden_distill_factor=1"],
      ]
      for extra in cases:
        FLAGS.unparse_flags()
        FLAGS(["run_pretraining.py"] + base + extra)
        try:
          run_pretraining.validate_flags_and_load_configs()
          print("NO ERROR")
        except ValueError as error:
          print("ERROR: " + str(error).replace("\\n", " "))
      """) % {"bad": workdir / "bad_teacher.json", "root": workdir,
              "teacher": workdir / "teacher.json"}
  write_json(str(workdir / "bad_teacher.json"),
             dict(TEACHER, hidden_size=48, num_attention_heads=4,
                  intra_bottleneck_size=48))
  code, out = run_script([
      "-c", script, "--bert_config_file=%s" % (workdir / "student.json"),
      "--input_file=%s" % (workdir / "data.tfrecord"),
      "--output_dir=%s" % (workdir / "never"), "--do_train",
      "--max_seq_length=%d" % SEQ, "--num_train_steps=10",
      "--num_warmup_steps=1"], script=None)
  lines = [l for l in out.splitlines() if l.startswith(("ERROR", "NO ERROR"))]
  assert code == 0 and len(lines) == 5, out[-3000:]
  assert "--layer_wise_warmup" in lines[0] and "lamb" in lines[0]
  assert "hidden_size" in lines[1] and "num_attention_heads" in lines[1]
  assert "--max_seq_length=64" in lines[2]
  assert "max_position_embeddings=32" in lines[2]
  assert "--input_file" in lines[3] and "missing-*" in lines[3]
  assert "nothing.ckpt" in lines[4]
  assert not os.path.exists(str(workdir / "never"))


def test_mirrored_strategy_on_two_cpu_devices(workdir):
  """Two replicas on one CPU: --mirrored_devices=/cpu:0,/cpu:1.

  run_pretraining asks its session for two CPU devices; on TF 2.15 the eager
  context also gets two logical CPUs first, as a GPU user's would hold GPUs.
  """
  output_dir = str(workdir / "mirrored")
  script = textwrap.dedent("""
      import tensorflow as tf
      cpu = tf.config.list_physical_devices("CPU")[0]
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      from absl import app
      import run_pretraining
      app.run(run_pretraining.main)
      """)
  launcher = ["-c", script] if tf_compat.IS_TF2 else ["run_pretraining.py"]
  code, log = run_script(launcher + [
      "--bert_config_file=%s" % (workdir / "student.json"),
      "--input_file=%s" % (workdir / "data.tfrecord"),
      "--output_dir=" + output_dir, "--do_train", "--optimizer=lamb",
      "--max_seq_length=%d" % SEQ, "--max_predictions_per_seq=%d" % PREDS,
      "--train_batch_size=8", "--learning_rate=1e-3", "--num_train_steps=3",
      "--num_warmup_steps=0", "--save_checkpoints_steps=100",
      "--log_step_count_steps=1", "--distribution_strategy=mirrored",
      "--mirrored_devices=/cpu:0,/cpu:1"], script=None)
  assert code == 0, log[-5000:]
  assert "CPU:1" in log
  assert checkpoint_steps(output_dir)[-1] == 3
  start, final = load(output_dir, 0), load(output_dir, 3)
  names = [n for n in final.get_variable_to_shape_map() if n != "global_step"]
  assert "bert/embeddings/word_embeddings/adam_m" in names
  for name in names:
    assert np.all(np.isfinite(final.get_tensor(name))), name
  kernel = "bert/encoder/layer_1/attention/self/query/kernel"
  assert not np.array_equal(start.get_tensor(kernel), final.get_tensor(kernel))
