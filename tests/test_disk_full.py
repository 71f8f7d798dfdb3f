"""A full disk, met by run_squad.py as a user meets it: one line, and what
was written before (the last checkpoint, an earlier export, a feature cache)
stays whole and usable by the next run.

The disk is a small tmpfs the test mounts (root only; skipped elsewhere),
filled to a few kilobytes before the write that must fail.
"""

import contextlib
import hashlib
import os
import subprocess

import pytest

import script_helpers
import toy_tasks

DISK_FULL = ("the disk is full (", "No space left on device).",
             "What was written before is kept whole")


@pytest.fixture(scope="module", name="disk")
def fixture_disk(tmp_path_factory):
  """A 64 MB tmpfs, unmounted after the module."""
  mount_point = str(tmp_path_factory.mktemp("small_disk"))
  mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs",
                            mount_point], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
  if mounted.returncode != 0:
    if os.environ.get("CI") == "true":
      pytest.fail("CI runs as root and must mount a tmpfs: %s" %
                  mounted.stdout)
    pytest.skip("cannot mount a tmpfs here (needs root)")
  yield mount_point
  subprocess.run(["umount", "-l", mount_point], timeout=60)


@contextlib.contextmanager
def filled(disk, free_bytes=16 * 1024):
  """`disk` filled up to `free_bytes` left inside the block."""
  path = os.path.join(disk, "filler")
  stat = os.statvfs(disk)
  size = stat.f_bavail * stat.f_frsize - free_bytes
  try:
    with open(path, "wb") as f:
      chunk = b"\0" * (1 << 20)
      while size > 0:
        f.write(chunk[:min(size, len(chunk))])
        size -= len(chunk)
    yield
  finally:
    os.remove(path)


def _digests(directory):
  """{relative path: sha256} of every file under `directory`."""
  digests = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        digests[os.path.relpath(path, directory)] = hashlib.sha256(
            f.read()).hexdigest()
  return digests


@pytest.fixture(scope="module", name="workspace")
def fixture_workspace(tmp_path_factory):
  root = tmp_path_factory.mktemp("disk_full")
  return {"root": root,
          # One layer of one FFN: these runs need a model, not its depth.
          "config": script_helpers.write_cut_config(
              root / "bert_config.json", "tiny_mobilebert.json",
              num_hidden_layers=1, num_feedforward_networks=1),
          "vocab": toy_tasks.write_vocab(root / "vocab.txt"),
          "train": toy_tasks.make_colour_squad_file(root / "train.json", 64,
                                                    1)}


def _squad(workspace, output_dir, data_dir, *extra, **kwargs):
  return script_helpers.run_script("run_squad.py", [
      "--bert_config_file=" + workspace["config"],
      "--vocab_file=" + workspace["vocab"],
      "--output_dir=" + output_dir, "--data_dir=" + data_dir,
      "--train_file=" + workspace["train"], "--max_seq_length=32",
      "--max_query_length=12", "--doc_stride=16", "--train_batch_size=16",
      "--learning_rate=1e-3", "--save_checkpoints_steps=4",
      "--random_seed=1"] + list(extra), **kwargs)


def _assert_disk_full_line(code, log, script="run_squad.py"):
  assert code == 1, log[-3000:]
  assert "Traceback" not in log, log[-3000:]
  line = script_helpers.last_line(log)
  assert line.startswith(script + ": "), line
  for part in DISK_FULL:
    assert part in line, (part, line)


def test_full_disk_during_training_keeps_the_last_checkpoint(workspace, disk):
  output_dir = os.path.join(disk, "train_out")
  cache = str(workspace["root"] / "cache")
  # 64 questions / 16 * 1 epoch = 4 steps: checkpoints 0 and 4.
  _squad(workspace, output_dir, cache, "--do_train", "--num_train_epochs=1")
  before = _digests(output_dir)
  assert "model.ckpt-4.index" in before
  with filled(disk):
    code, log = _squad(workspace, output_dir, cache, "--do_train",
                       "--num_train_epochs=2", expect_success=False)
  _assert_disk_full_line(code, log)
  after = _digests(output_dir)
  for name, digest in before.items():
    if name.startswith("model.ckpt-") or name == "checkpoint":
      assert after.get(name) == digest, name  # untouched
  _, log = _squad(workspace, output_dir, cache, "--do_train",
                  "--num_train_epochs=2")
  assert "Restoring parameters from %s" % os.path.join(
      output_dir, "model.ckpt-4") in log
  assert script_helpers.recorded_step(output_dir) == 8


def test_full_disk_during_export_keeps_the_earlier_export(workspace, disk):
  output_dir = str(workspace["root"] / "export_out")
  cache = str(workspace["root"] / "cache")
  export_dir = os.path.join(disk, "export")
  _squad(workspace, output_dir, cache, "--do_train", "--num_train_epochs=1",
         "--export_dir=" + export_dir)
  before = _digests(export_dir)
  assert "model_float.tflite" in before
  with filled(disk):
    code, log = _squad(workspace, output_dir, cache,
                       "--export_dir=" + export_dir, expect_success=False)
  _assert_disk_full_line(code, log)
  assert _digests(export_dir) == before


def test_full_disk_during_featurisation_keeps_the_feature_cache(workspace,
                                                                disk):
  output_dir = str(workspace["root"] / "cache_out")
  cache = os.path.join(disk, "cache")
  _squad(workspace, output_dir, cache, "--do_train", "--num_train_epochs=1")
  before = _digests(cache)
  assert "train.tf_record" in before
  # Another stride: the cache is stale and is rebuilt, onto a full disk.
  with filled(disk, free_bytes=1024):
    code, log = _squad(workspace, output_dir, cache, "--do_train",
                       "--num_train_epochs=1", "--doc_stride=8",
                       expect_success=False)
  _assert_disk_full_line(code, log)
  assert _digests(cache) == before
