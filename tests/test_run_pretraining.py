"""run_pretraining.py end to end: plain pretraining, two-phase distillation,
resume after a kill, flag validation and the mirrored-strategy path.

Scripts run in subprocesses (their flags would clash with other scripts').
"""

import glob
import json
import os
import random
import re
import socket
import tempfile
import textwrap
import time

import numpy as np
import pytest

import tensorflow.compat.v1 as tf

import console
import numpy_mobilebert
import script_helpers
import tf_compat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEQ, PREDS = 24, 4
DISTILL_STEPS, TRAIN_STEPS = 6, 4  # phase 1 (3 steps per layer), phase 2
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
  """(exit code, output) of `python3 <script> <args>` (script None: python
  arguments); the test judges the exit code."""
  return script_helpers.run_script(script, args, timeout=timeout,
                                   expect_success=False)


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
  script_helpers.write_json(str(root / "student.json"), STUDENT)
  # For the runs that meet faults or strategies: they need a model, not its
  # depth, and a smaller graph starts sooner.
  script_helpers.write_json(str(root / "one_layer_student.json"),
                            dict(STUDENT, num_hidden_layers=1))
  script_helpers.write_json(str(root / "teacher.json"), TEACHER)
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
      "--random_seed=1",
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
  # The progress line of the last step: step / total, loss, rates.
  assert re.search(r"Training: step 16 of 16 \(100%\), loss -?\d+\.\d{4}, "
                   r"[\d.]+ steps/s, [\d.]+ examples/s\n", log), log[-3000:]


def distill_command(workdir, teacher_checkpoint, output_dir):
  """The published MobileBERT README's distillation command at toy scale,
  minus --use_tpu (README, Distillation)."""
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
      "--num_distill_steps=%d" % DISTILL_STEPS,
      "--num_train_steps=%d" % TRAIN_STEPS,
      "--num_warmup_steps=1",
      "--optimizer=lamb",
      "--output_dir=" + output_dir,
      "--save_checkpoints_steps=1",
      "--train_batch_size=8",
      "--use_einsum",
      "--use_summary",
      "--log_step_count_steps=2",
      "--random_seed=1",
  ]


def _eval_records(path, count):
  """The first `count` records of a pretraining TFRecord file as arrays."""
  rows = []
  for record in tf.python_io.tf_record_iterator(path):
    feature = tf.train.Example.FromString(record).features.feature
    rows.append({name: np.array(feature[name].int64_list.value or
                                feature[name].float_list.value)
                 for name in ("input_ids", "input_mask", "segment_ids",
                              "masked_lm_positions", "masked_lm_ids",
                              "masked_lm_weights")})
    if len(rows) == count:
      break
  return {name: np.stack([row[name] for row in rows]) for name in rows[0]}


def _numpy_masked_lm_accuracy(checkpoint, records):
  """MLM accuracy of the student in `checkpoint`, by numpy_mobilebert."""
  weights = {name: checkpoint.get_tensor(name)
             for name in checkpoint.get_variable_to_shape_map()
             if not name.startswith("teacher/") and "adam_" not in name}
  outputs = numpy_mobilebert.forward(
      STUDENT, weights, records["input_ids"], records["input_mask"],
      records["segment_ids"])
  logits = numpy_mobilebert.masked_lm_logits(
      STUDENT, weights, outputs["sequence_output"],
      records["masked_lm_positions"])
  correct = np.argmax(logits, axis=-1) == records["masked_lm_ids"].reshape(-1)
  mask_weights = records["masked_lm_weights"].reshape(-1)
  return float(np.sum(correct * mask_weights) / np.sum(mask_weights))


def test_distillation_two_phases_with_kill_and_resume(workdir, teacher_dir):
  teacher_checkpoint = os.path.join(teacher_dir[0], "model.ckpt-16")
  output_dir = str(workdir / "student")
  warmup_dir = os.path.join(output_dir, "warmup")
  args = distill_command(workdir, teacher_checkpoint, output_dir)

  # Killed hard in phase 1, then (same command) in phase 2, then run to the
  # end.  Each restart resumes from the checkpoint TF recorded last (a kill
  # between a checkpoint's files and its record leaves .index files one step
  # ahead of it).
  killed_in_phase_1, _ = script_helpers.run_and_kill(
      "run_pretraining.py", args, warmup_dir, 2)
  assert 2 <= killed_in_phase_1 < DISTILL_STEPS
  killed_in_phase_2, log = script_helpers.run_and_kill(
      "run_pretraining.py", args, output_dir, 1)
  assert 1 <= killed_in_phase_2 < TRAIN_STEPS
  assert "model.ckpt-%d" % killed_in_phase_1 in log
  assert "steps %d -> %d" % (killed_in_phase_1, DISTILL_STEPS) in log
  code, log = run_script(args)
  assert code == 0, log[-5000:]
  assert "phase 1: layer-wise knowledge transfer already complete" in log
  assert "model.ckpt-%d" % killed_in_phase_2 in log
  assert "steps %d -> %d" % (killed_in_phase_2, TRAIN_STEPS) in log
  assert "Training: step %d of %d (100%%), loss " % (TRAIN_STEPS,
                                                     TRAIN_STEPS) in log
  assert checkpoint_steps(warmup_dir) == list(range(0, DISTILL_STEPS + 1))
  assert checkpoint_steps(output_dir) == list(range(0, TRAIN_STEPS + 1))

  # Evaluation of the final student, recomputed by the numpy MobileBERT on
  # the records it read (in order: 2 steps of the default batch of 8).
  results = script_helpers.read_key_value_results(
      os.path.join(output_dir, "eval_results.txt"))
  assert int(results["global_step"]) == TRAIN_STEPS
  final = load(output_dir, TRAIN_STEPS)
  expected = _numpy_masked_lm_accuracy(
      final, _eval_records(str(workdir / "data.tfrecord"), 16))
  assert results["masked_lm_accuracy"] == pytest.approx(expected, abs=1e-6)

  # Training again skips both finished phases without building a graph.
  code, log = run_script([a for a in args if a != "--do_eval"])
  assert code == 0, log[-5000:]
  assert "phase 1: layer-wise knowledge transfer already complete" in log
  assert "phase 2: pretraining distillation already complete" in log
  assert "Done calling model_fn" not in log
  assert checkpoint_steps(output_dir)[-1] == TRAIN_STEPS

  teacher = tf.train.load_checkpoint(teacher_checkpoint)
  teacher_names = [n for n in teacher.get_variable_to_shape_map()
                   if not n.startswith("cls/seq_relationship") and
                   "adam_" not in n and n != "global_step"]
  spp = DISTILL_STEPS // STUDENT["num_hidden_layers"]
  previous = load(warmup_dir, 0)
  names = [n for n in previous.get_variable_to_shape_map()
           if "adam_" not in n and n != "global_step"]
  assert not [n for n in names if "distill" in n]
  # Embeddings and heads come from the teacher and stay frozen in phase 1.
  copied = [n for n in names if n.startswith(("bert/embeddings/", "cls/"))
            and teacher.has_tensor(n)]
  assert "bert/embeddings/word_embeddings" in copied
  for step in range(1, DISTILL_STEPS + 1):
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
  # Phase 2 starts from phase 1's last student, with the teacher loaded.
  phase_1_end, phase_2_start = load(warmup_dir, DISTILL_STEPS), load(
      output_dir, 0)
  student_names = [n for n in names if not n.startswith("teacher/")]
  assert len(student_names) > 20
  for name in student_names:
    np.testing.assert_array_equal(phase_2_start.get_tensor(name),
                                  phase_1_end.get_tensor(name), name)
  for name in teacher_names:
    np.testing.assert_array_equal(final.get_tensor("teacher/" + name),
                                  teacher.get_tensor(name))
  table = "bert/embeddings/word_embeddings"
  assert not np.array_equal(final.get_tensor(table), teacher.get_tensor(table))

  # Summaries are flushed every step, so the killed runs kept theirs.  The
  # phase-1 transfer losses are gated: layer l's count for steps
  # spp*l < s <= spp*(l+1), so the total is 0 at step 0 only.  (That they go
  # down is checked on a fixed batch in test_distillation.py.)
  warm = read_scalars(os.path.join(output_dir, "my_summary", "warmup"))
  for name in ("feature_map_transfer_loss", "attention_transfer_loss",
               "mean_transfer_loss", "variance_transfer_loss"):
    assert sorted(warm[name]) == list(range(DISTILL_STEPS)), (name,
                                                              warm[name])
    assert warm[name][0] == 0.0, name
    assert all(warm[name][s] > 0.0 for s in range(1, DISTILL_STEPS)), name
  main = read_scalars(os.path.join(output_dir, "my_summary", "main"))
  assert set(main) >= {"masked_lm_loss", "next_sentence_loss",
                       "masked_lm_accuracy", "next_sentence_accuracy",
                       "learning_rate", "loss"}
  assert sorted(main["loss"]) == list(range(TRAIN_STEPS))


def test_invalid_flags_stop_before_any_graph(workdir, teacher_dir):
  damaged = script_helpers.copy_checkpoint(
      os.path.join(teacher_dir[0], "model.ckpt-16"), str(workdir / "damaged"))
  script_helpers.damage_file(damaged + ".data-00000-of-00001")
  script_helpers.write_json(str(workdir / "wide_teacher.json"),
             dict(TEACHER, intermediate_size=96))
  open(str(workdir / "a_file"), "w").close()
  script = textwrap.dedent("""
      import sys
      import run_pretraining
      run_pretraining.define_flags()
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
          ["--bert_teacher_config_file=%(teacher)s",
           "--init_checkpoint=%(damaged)s"],
          ["--bert_teacher_config_file=%(root)s/wide_teacher.json",
           "--init_checkpoint=%(good)s"],
          ["--output_dir=%(root)s/a_file/out"],
      ]
      for extra in cases:
        FLAGS.unparse_flags()
        FLAGS(["run_pretraining.py"] + base + extra)
        try:
          run_pretraining.validate_flags_and_load_configs()
          print("NO ERROR")
        except SystemExit as error:
          print("ERROR: " + str(error.code).replace("\\n", " "))
      """) % {"bad": workdir / "bad_teacher.json", "root": workdir,
              "teacher": workdir / "teacher.json", "damaged": damaged,
              "good": os.path.join(teacher_dir[0], "model.ckpt-16")}
  script_helpers.write_json(str(workdir / "bad_teacher.json"),
             dict(TEACHER, hidden_size=48, num_attention_heads=4,
                  intra_bottleneck_size=48))
  code, out = run_script([
      "-c", script, "--bert_config_file=%s" % (workdir / "student.json"),
      "--input_file=%s" % (workdir / "data.tfrecord"),
      "--output_dir=%s" % (workdir / "never"), "--do_train",
      "--max_seq_length=%d" % SEQ, "--num_train_steps=10",
      "--num_warmup_steps=1"], script=None)
  lines = [l for l in out.splitlines() if l.startswith(("ERROR", "NO ERROR"))]
  assert code == 0 and len(lines) == 8, out[-3000:]
  assert "--layer_wise_warmup" in lines[0] and "lamb" in lines[0]
  assert "hidden_size" in lines[1] and "num_attention_heads" in lines[1]
  assert "--max_seq_length=64" in lines[2]
  assert "max_position_embeddings=32" in lines[2]
  assert "--input_file" in lines[3] and "missing-*" in lines[3]
  assert "nothing.ckpt" in lines[4]
  assert "is damaged" in lines[5] and damaged in lines[5]
  assert ("variable bert/encoder/layer_0/intermediate/dense/bias has shape "
          "[64] in the checkpoint" in lines[6] and "[96]" in lines[6]), lines[6]
  assert "--output_dir=" in lines[7] and "a_file is a file" in lines[7]
  assert not os.path.exists(str(workdir / "never"))


def test_diverged_training_ends_in_one_line_and_keeps_checkpoints(workdir):
  """A NaN loss ends run_pretraining in one line, as it does run_squad.

  A learning rate of 1e12 takes the weights to inf in the first update; the
  next step's loss is NaN.
  """
  output_dir = str(workdir / "diverged")
  code, log = run_script([
      "--bert_config_file=%s" % (workdir / "one_layer_student.json"),
      "--input_file=%s" % (workdir / "data.tfrecord"),
      "--output_dir=" + output_dir, "--do_train", "--optimizer=adamw",
      "--max_seq_length=%d" % SEQ, "--max_predictions_per_seq=%d" % PREDS,
      "--train_batch_size=8", "--learning_rate=1e12", "--num_train_steps=4",
      "--num_warmup_steps=0", "--save_checkpoints_steps=100"])
  assert code == 1, log[-3000:]
  assert script_helpers.last_line(log).startswith(
      "run_pretraining.py: training diverged: the loss became NaN."), (
          log[-3000:])
  assert "Traceback" not in log
  assert checkpoint_steps(output_dir) == [0]


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
      run_pretraining.define_flags()
      app.run(run_pretraining.main)
      """)
  launcher = ["-c", script] if tf_compat.IS_TF2 else ["run_pretraining.py"]
  code, log = run_script(launcher + [
      "--bert_config_file=%s" % (workdir / "one_layer_student.json"),
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
  # The script splits --train_batch_size over the replicas: each takes 4
  # examples, so a step is 8 examples, as on one device (and as
  # test_optimization's two replicas, which equal one device, assume).  The
  # progress line counts a replica's batch times the replicas; with the
  # global batch on each replica it would say 16.
  last = [console.parse_progress(line) for line in log.splitlines()
          if console.parse_progress(line)][-1]
  assert last["done"] == 3 and last["rate"], last
  assert 6.0 < last["examples_per_second"] / last["rate"] < 10.0, last
  start, final = load(output_dir, 0), load(output_dir, 3)
  names = [n for n in final.get_variable_to_shape_map() if n != "global_step"]
  assert "bert/embeddings/word_embeddings/adam_m" in names
  for name in names:
    assert np.all(np.isfinite(final.get_tensor(name))), name
  kernel = "bert/encoder/layer_0/attention/self/query/kernel"
  assert not np.array_equal(start.get_tensor(kernel), final.get_tensor(kernel))


def _free_ports(count):
  sockets = [socket.socket() for _ in range(count)]
  for s in sockets:
    s.bind(("localhost", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


# A tiny step takes well under a second even on a slow, loaded runner; the
# lost-worker case waits this long for nothing.
WORKER_TIMEOUT_SECS = 6


def _start_workers(workdir, output_dir, num_train_steps):
  """Two run_pretraining.py workers on this machine, TF_CONFIG on localhost.

  Returns:
    [(ScriptProcess, the path of its output)] per worker.
  """
  cluster = {"worker": ["localhost:%d" % p for p in _free_ports(2)]}
  workers = []
  for index in range(2):
    descriptor, log_path = tempfile.mkstemp(
        prefix="worker_%d_" % index, suffix=".log", dir=str(workdir))
    os.close(descriptor)
    workers.append((script_helpers.start_script(
        "run_pretraining.py",
        ["--bert_config_file=%s" % (workdir / "one_layer_student.json"),
         "--input_file=%s" % (workdir / "data.tfrecord"),
         "--output_dir=" + output_dir, "--do_train",
         "--max_seq_length=%d" % SEQ, "--max_predictions_per_seq=%d" % PREDS,
         "--train_batch_size=8", "--learning_rate=1e-3",
         "--num_train_steps=%d" % num_train_steps, "--num_warmup_steps=0",
         "--save_checkpoints_steps=1000", "--log_step_count_steps=1",
         "--distribution_strategy=multi_worker",
         "--worker_timeout_secs=%d" % WORKER_TIMEOUT_SECS], log_path,
        extra_env={"MOBILEBERT_PROGRESS_SECONDS": "0", "TF_CONFIG": json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}})}),
                    log_path))
  return workers


def test_multi_worker_training_and_a_lost_worker(workdir):
  """--distribution_strategy=multi_worker with two worker processes: both
  take the same synchronous steps, the chief writes the checkpoint; then a
  worker killed mid-run stops the other with one line instead of a hang."""
  output_dir = str(workdir / "multi_worker")
  workers = _start_workers(workdir, output_dir, 4)
  for worker, _ in workers:
    worker.wait(timeout=300)
  for worker, log_path in workers:
    output = script_helpers.read_text(log_path)
    assert worker.returncode == 0, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
  assert script_helpers.recorded_step(output_dir) == 4
  # The non-chief keeps its own copy in a temporary directory; synchronous
  # all-reduce steps leave both copies equal.
  chief = load(output_dir, 4)
  other = tf.train.load_checkpoint(
      os.path.join(output_dir, "tmp_worker_1", "model.ckpt-4"))
  start = load(output_dir, 0)
  kernel = "bert/encoder/layer_0/attention/self/query/kernel"
  assert not np.array_equal(start.get_tensor(kernel), chief.get_tensor(kernel))
  for name in chief.get_variable_to_shape_map():
    np.testing.assert_array_equal(chief.get_tensor(name),
                                  other.get_tensor(name), name)

  # Resume the same run for many more steps and kill worker 1 mid-way.
  (survivor, survivor_log), (lost, lost_log) = _start_workers(
      workdir, output_dir, 100000)
  deadline = time.time() + 300
  while ("Training: step 20 of" not in script_helpers.read_text(lost_log) and
         lost.poll() is None and time.time() < deadline):
    time.sleep(0.05)
  lost_output = script_helpers.read_text(lost_log)
  assert "Training: step 20 of" in lost_output, lost_output[-4000:]
  lost.kill()
  lost.wait()
  killed = time.time()
  survivor.wait(timeout=240)
  output = script_helpers.read_text(survivor_log)
  assert survivor.returncode == 1
  assert time.time() - killed < 120
  last = [l for l in output.splitlines() if l.strip()][-1]
  assert last.startswith(
      "run_pretraining.py: no training step finished in %d s "
      "(--worker_timeout_secs)" % WORKER_TIMEOUT_SECS), output[-3000:]
  assert "Start every worker again with the same command" in last


def _student_args(workdir, output_dir, input_file, num_train_steps):
  """Plain pretraining of the one-layer student."""
  return ["--bert_config_file=%s" % (workdir / "one_layer_student.json"),
          "--input_file=" + str(input_file), "--output_dir=" + output_dir,
          "--do_train", "--max_seq_length=%d" % SEQ,
          "--max_predictions_per_seq=%d" % PREDS, "--train_batch_size=8",
          "--learning_rate=1e-3", "--num_train_steps=%d" % num_train_steps,
          "--num_warmup_steps=0", "--save_checkpoints_steps=1"]


def _intact_prefix(data):
  """(records, byte offset of the first record that does not fit) of TFRecord
  bytes, by the format's framing: u64 length, u32 crc, data, u32 crc."""
  offset = records = 0
  while offset + 12 <= len(data):
    length = int.from_bytes(data[offset:offset + 8], "little")
    if offset + 16 + length > len(data):
      break
    offset += 16 + length
    records += 1
  return records, offset


def test_cut_tfrecord_ends_in_one_line_naming_file_and_record(workdir):
  """A TFRecord cut mid-record (an interrupted copy, a full disk): the run
  stops with the file, the record and TensorFlow's reason, and keeps what it
  saved before."""
  with open(str(workdir / "data.tfrecord"), "rb") as f:
    data = f.read()
  # Cut inside the payload of the record that starts after the middle (a
  # cut inside a record's 12-byte header reads as a clean end of file).
  records, offset = _intact_prefix(data[:len(data) // 2])
  cut = workdir / "cut.tfrecord"
  cut.write_bytes(data[:offset + 12 + 5])
  assert _intact_prefix(cut.read_bytes()) == (records, offset)
  output_dir = str(workdir / "cut_run")
  code, log = run_script(_student_args(workdir, output_dir, cut, 80))
  assert code == 1
  assert "Traceback" not in log
  assert script_helpers.last_line(log) == (
      "run_pretraining.py: %s is damaged: record %d cannot be read "
      "(truncated record at %d%s). The records before it are intact; copy "
      "or write the file again." % (
          cut, records, offset,
          "' failed with Read less bytes than requested"
          if tf_compat.IS_TF2 else "")), log[-2000:]
  assert 0 in checkpoint_steps(output_dir)


def test_second_run_into_a_live_runs_output_dir_is_refused(workdir):
  """A second run into the --output_dir of a live run stops in one line
  naming the first, which goes on undisturbed; once the first is killed
  (SIGKILL), the same command resumes from its last checkpoint."""
  output_dir = str(workdir / "shared_dir")
  args = _student_args(workdir, output_dir, workdir / "data.tfrecord", 100000)
  first = script_helpers.start_script("run_pretraining.py", args, os.devnull)
  try:
    deadline = time.time() + 300
    while (script_helpers.recorded_step(output_dir) < 1 and
           first.poll() is None and time.time() < deadline):
      time.sleep(0.1)
    assert first.poll() is None and script_helpers.recorded_step(output_dir)
    code, log = run_script(args)
    assert code == 1, log[-3000:]
    line = script_helpers.last_line(log)
    assert line.startswith("run_pretraining.py: --output_dir=%s is in use by "
                           "another run (pid %d on " % (output_dir, first.pid)
                           ), line
    assert "run_pretraining.py --bert_config_file=" in line
    step_then = script_helpers.recorded_step(output_dir)
    deadline = time.time() + 120
    while (script_helpers.recorded_step(output_dir) < step_then + 3 and
           time.time() < deadline):
      time.sleep(0.1)
    assert first.poll() is None  # still training
    assert script_helpers.recorded_step(output_dir) >= step_then + 3
  finally:
    first.kill()
    first.wait()
  killed_at = script_helpers.recorded_step(output_dir)
  code, log = run_script(_student_args(workdir, output_dir,
                                       workdir / "data.tfrecord",
                                       killed_at + 2))
  assert code == 0, log[-3000:]
  assert "model.ckpt-%d" % killed_at in log
  assert script_helpers.recorded_step(output_dir) == killed_at + 2
  assert not os.path.exists(os.path.join(output_dir, ".run_lock"))


def test_damaged_newest_checkpoint_is_set_aside_on_resume(workdir):
  """A resumed run whose newest checkpoint is damaged resumes from the
  newest intact one and says so, keeping the damaged files; if every
  checkpoint is damaged it stops in one line instead of starting over."""
  output_dir = str(workdir / "damaged_resume")
  data = workdir / "data.tfrecord"
  code, log = run_script(_student_args(workdir, output_dir, data, 4))
  assert code == 0, log[-3000:]
  assert checkpoint_steps(output_dir) == [0, 1, 2, 3, 4]
  newest = os.path.join(output_dir, "model.ckpt-4")
  script_helpers.damage_file(newest + ".data-00000-of-00001")
  code, log = run_script(_student_args(workdir, output_dir, data, 6))
  assert code == 0, log[-3000:]
  assert ("Checkpoint %s is damaged (variable " % newest) in log
  assert ("the run resumes from %s, the newest intact checkpoint" %
          os.path.join(output_dir, "model.ckpt-3")) in log
  assert "Restoring parameters from %s" % os.path.join(
      output_dir, "model.ckpt-3") in log
  assert script_helpers.recorded_step(output_dir) == 6
  assert os.path.exists(newest + ".data-00000-of-00001.damaged")

  for step in checkpoint_steps(output_dir):
    script_helpers.damage_file(
        os.path.join(output_dir, "model.ckpt-%d.data-00000-of-00001" % step))
  code, log = run_script(_student_args(workdir, output_dir, data, 8))
  assert code == 1
  line = script_helpers.last_line(log)
  assert line.startswith("run_pretraining.py: --output_dir: Every checkpoint "
                         "in %s is damaged (the newest, %s" %
                         (output_dir, os.path.join(output_dir,
                                                   "model.ckpt-6"))), line
  assert script_helpers.recorded_step(output_dir) == 6
