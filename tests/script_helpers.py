"""Running the repository's scripts as a user does: in a subprocess, from the
repository root, killed and restarted; reading what they write.

Scripts run in forks of a fork server (forkserver.py) of this test's
interpreter, which has imported TensorFlow once: a fresh interpreter would
spend most of a tiny run importing it.  `run_script(..., fresh_process=True)`
starts a new interpreter instead, for the tests of what a script prints
while TensorFlow is imported.
"""

import atexit
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import tensorflow.compat.v1 as tf

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT_ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO_ROOT)


FORKSERVER = os.path.join(REPO_ROOT, "tests", "forkserver.py")
_SERVER_START_SECS = 300


class _ForkServer(object):
  """forkserver.py running under this test's interpreter."""

  def __init__(self):
    self._directory = tempfile.mkdtemp(prefix="forkserver-")
    self.socket_path = os.path.join(self._directory, "socket")
    self._log_path = os.path.join(self._directory, "log")
    with open(self._log_path, "w") as log:
      self._process = subprocess.Popen(
          [sys.executable, FORKSERVER, self.socket_path], cwd=REPO_ROOT,
          env=SCRIPT_ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
          stderr=log)
    atexit.register(self.close)
    ready = select.select([self._process.stdout], [], [],
                          _SERVER_START_SECS)[0]
    line = self._process.stdout.readline() if ready else b""
    self._process.stdout.close()
    if line != b"ready\n":
      raise AssertionError("the fork server did not start:\n" +
                           self.log_tail())

  def log_tail(self):
    """The end of what the server wrote (its own errors, not the runs')."""
    return read_text(self._log_path)[-3000:]

  def close(self):
    self._process.kill()
    self._process.wait()
    shutil.rmtree(self._directory, ignore_errors=True)


_servers = []


def _server():
  """The session's fork server, started on first use."""
  if not _servers:
    _servers.append(_ForkServer())
  return _servers[0]


class ScriptProcess(object):
  """A run in a fork of the fork server, with Popen's pid, returncode,
  poll, wait, send_signal and kill."""

  def __init__(self, argv, output_path, env):
    self.args = list(argv)
    self._connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server = _server()
    try:
      self._connection.connect(server.socket_path)
    except OSError as error:
      raise AssertionError("the fork server does not answer (%s):\n%s" % (
          error, server.log_tail()))
    self._connection.sendall((json.dumps(
        {"argv": self.args, "cwd": REPO_ROOT, "env": env,
         "output": output_path}) + "\n").encode())
    self._received = b""
    self.pid = self._reply(None)["pid"]
    self.returncode = None

  def _reply(self, timeout):
    """The next reply, or None if none came within `timeout` seconds."""
    deadline = None if timeout is None else time.time() + timeout
    while b"\n" not in self._received:
      left = None if deadline is None else max(0.0, deadline - time.time())
      if not select.select([self._connection], [], [], left)[0]:
        return None
      data = self._connection.recv(4096)
      assert data, "the fork server lost the run of %s" % self.args[:1]
      self._received += data
    line, self._received = self._received.split(b"\n", 1)
    return json.loads(line.decode())

  def poll(self):
    return self.wait(0, raise_on_timeout=False)

  def wait(self, timeout=None, raise_on_timeout=True):
    if self.returncode is None:
      reply = self._reply(timeout)
      if reply is not None:
        self.returncode = reply["returncode"]
        self._connection.close()
      elif raise_on_timeout:
        raise subprocess.TimeoutExpired(self.args, timeout)
    return self.returncode

  def send_signal(self, signal_number):
    if self.poll() is None:
      try:
        os.kill(self.pid, signal_number)
      except ProcessLookupError:  # It ended after the poll.
        pass

  def kill(self):
    self.send_signal(signal.SIGKILL)


def _argv(script, args):
  """What follows `python3` on the command line."""
  return ([os.path.join(REPO_ROOT, script)] if script else []) + list(args)


def start_script(script, args, output_path, extra_env=None):
  """Starts `python3 <script> <args>` (script None: `python3 <args>`) with
  stdout and stderr appended to `output_path`; returns its ScriptProcess.

  extra_env: variables to add to SCRIPT_ENV, read by the run after
  TensorFlow's import (the fork server imported it with SCRIPT_ENV).
  """
  return ScriptProcess(_argv(script, args), output_path,
                       dict(SCRIPT_ENV, **(extra_env or {})))


def read_text(path):
  """What a run wrote to `path` (start_script's output file)."""
  with open(path, encoding="utf-8", errors="replace") as f:
    return f.read()


def run_script(script, args, timeout=900, expect_success=True,
               fresh_process=False):
  """Runs `python3 <script> <args>`; returns (exit code, stdout + stderr).

  script None runs `python3 <args>` (e.g. ["-c", code, ...]).  With
  expect_success, a non-zero exit fails the test with the output's end.
  The interpreter is this test's; fresh_process starts a new one rather
  than forking the fork server.
  """
  if fresh_process:
    process = subprocess.run(
        [sys.executable] + _argv(script, args), cwd=REPO_ROOT,
        env=SCRIPT_ENV, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, universal_newlines=True, timeout=timeout)
    returncode, output = process.returncode, process.stdout
  else:
    with tempfile.TemporaryDirectory() as directory:
      output_path = os.path.join(directory, "output")
      process = start_script(script, args, output_path)
      try:
        returncode = process.wait(timeout)
      except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
      output = read_text(output_path)
  if expect_success:
    assert returncode == 0, "%s failed:\n%s" % (script, output[-6000:])
  return returncode, output


# Runs <module>.main once per argv in one process, as tf.app.run would (absl
# flags parsed; a SystemExit's message is the line the user sees), and prints
# one JSON result per run: the exit message, exit 0, or the traceback of any
# other exception.  One process instead of one per case saves TF's start-up.
_MAIN_DRIVER = r"""
import importlib, json, sys, traceback
from absl import flags
module = importlib.import_module(sys.argv[1])
module.define_flags()
for argv in json.loads(sys.argv[2]):
  flags.FLAGS.unparse_flags()
  flags.FLAGS([sys.argv[1] + ".py"] + argv)
  try:
    module.main(None)
    result = {"exit": 0}
  except SystemExit as exit_:
    result = {"exit": 0 if exit_.code in (None, 0) else 1,
              "message": str(exit_.code)}
  except Exception:  # pylint: disable=broad-except
    result = {"exit": 1, "traceback": traceback.format_exc()}
  print("RESULT=" + json.dumps(result), flush=True)
"""


def run_main_per_argv(module, argvs, timeout=900):
  """[{"exit": 0 or 1, "message" or "traceback": ...}] per argv."""
  _, output = run_script(None, ["-c", _MAIN_DRIVER, module, json.dumps(argvs)],
                         timeout=timeout)
  results = [json.loads(line[len("RESULT="):])
             for line in output.splitlines() if line.startswith("RESULT=")]
  assert len(results) == len(argvs), output[-6000:]
  return results


def check_refusals(module, cases):
  """Runs `module`'s main once per case (run_main_per_argv): each must end
  with exit status 1 and one `<module>.py: ` line holding every wanted part.

  Args:
    module: a script's module name, e.g. "export_tflite".
    cases: [(argv, wanted)]; wanted is a string or a list of strings.
  """
  results = run_main_per_argv(module, [argv for argv, _ in cases])
  for (argv, wanted), result in zip(cases, results):
    assert "traceback" not in result, result["traceback"]
    assert result["exit"] == 1, argv
    message = result["message"]
    assert "\n" not in message and message.startswith(module + ".py: "), (
        message)
    for part in [wanted] if isinstance(wanted, str) else wanted:
      assert part in message, (part, message)


def cut_config(name, **overrides):
  """config/<name> as a dict, with `overrides` (e.g. fewer layers).

  A tiny run's time is its graph's size, not its steps (DEVELOPERS.md,
  "Tests"): tests that do not need the shipped depth cut it.
  """
  with open(os.path.join(REPO_ROOT, "config", name)) as f:
    return dict(json.load(f), **overrides)


def write_cut_config(path, name, **overrides):
  """Writes cut_config(name, **overrides) to `path`; returns the path."""
  return write_json(path, cut_config(name, **overrides))


def write_json(path, obj):
  """Writes `obj` as JSON to `path`; returns the path as a string."""
  with open(str(path), "w") as f:
    json.dump(obj, f)
  return str(path)


def last_line(output):
  lines = [line for line in output.splitlines() if line.strip()]
  return lines[-1] if lines else ""


def recorded_step(model_dir):
  """The step of the latest checkpoint TF has recorded in `model_dir` (its
  `checkpoint` file, written after the checkpoint's own files), or -1."""
  latest = (tf.train.latest_checkpoint(model_dir)
            if os.path.isdir(model_dir) else None)
  return int(latest.split("-")[-1]) if latest else -1


def run_and_kill(script, args, model_dir, at_step, timeout=400):
  """Starts the script and SIGKILLs it once `model_dir` records `at_step`.

  Returns:
    (the recorded step at the kill, the run's output so far).  Fails the
    test if the run ended first.
  """
  with tempfile.TemporaryDirectory() as directory:
    output_path = os.path.join(directory, "output")
    process = start_script(script, args, output_path)
    deadline = time.time() + timeout
    while (time.time() < deadline and process.poll() is None and
           recorded_step(model_dir) < at_step):
      time.sleep(0.02)
    finished = process.poll() is not None
    process.kill()
    process.wait()
    output = read_text(output_path)
  assert not finished, "%s finished before it could be killed:\n%s" % (
      script, output[-3000:])
  return recorded_step(model_dir), output


def read_key_value_results(path):
  """{key: float} of an eval_results.txt ("key = value" lines)."""
  results = {}
  with open(path) as f:
    for line in f:
      if line.strip():
        key, value = line.strip().split(" = ")
        results[key] = float(value)
  return results


def checkpoint_values(checkpoint, prefix="", model_only=True):
  """{name: array} of a checkpoint's variables under `prefix`: the model's
  (no optimizer slots, no global_step), or with model_only False all."""
  reader = tf.train.load_checkpoint(checkpoint)
  return {name: reader.get_tensor(name)
          for name in reader.get_variable_to_shape_map()
          if name.startswith(prefix) and not (
              model_only and (name == "global_step" or "adam_" in name))}


def copy_checkpoint(checkpoint, directory):
  """Copies a checkpoint's files into `directory`; returns the new prefix."""
  os.makedirs(directory)
  for path in tf.io.gfile.glob(checkpoint + ".*"):
    tf.io.gfile.copy(path, os.path.join(directory, os.path.basename(path)))
  return os.path.join(directory, os.path.basename(checkpoint))


def damage_file(path, offset_from_end=None):
  """Flips one byte (a checksummed tensor byte of a .data file, or the
  magic number at the end of an .index file)."""
  with open(path, "r+b") as f:
    data = bytearray(f.read())
    position = len(data) // 2 if offset_from_end is None else (
        len(data) - offset_from_end)
    data[position] ^= 0xFF
    f.seek(0)
    f.write(data)
