"""One live run per output directory.

A run takes `<output_dir>/.run_lock` with an exclusive `flock` that it holds
until the process ends.  The kernel releases the lock however the process
ends, SIGKILL and power loss included, so a killed run never blocks the next
start; a run that ends normally also removes the file.  The file names the
run holding it (pid, host, start time, command) for the message of a run that
finds the directory taken.

Not locked: remote directories (`gs://…`, where TPU runs write; flock needs
a local file system) and the non-chief workers of a multi-worker run, which
share the chief's directory by design.
"""

import atexit
import errno
import fcntl
import json
import os
import socket
import sys
import time

LOCK_FILE = ".run_lock"
# Lock files this process holds (a process may start several stages in one
# directory).
_HELD = set()


def _describe(holder):
  if not holder:
    return "a run that is starting"
  return "pid %s on %s, started %s: %s" % (
      holder.get("pid"), holder.get("host"), holder.get("started"),
      holder.get("command"))


def _read_holder(descriptor):
  os.lseek(descriptor, 0, os.SEEK_SET)
  text = os.read(descriptor, 65536).decode("utf-8", "replace")
  try:
    return json.loads(text)
  except ValueError:
    return None


def _lock(path, directory, flag_name):
  """An open descriptor of `path` holding its flock, or ValueError."""
  descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as error:
    if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
      os.close(descriptor)
      raise
    holder = _read_holder(descriptor)
    os.close(descriptor)
    raise ValueError(
        "--%s=%s is in use by another run (%s). Wait for it to end, or give "
        "this run another --%s." % (flag_name, directory, _describe(holder),
                                    flag_name))
  return descriptor


def acquire(directory, flag_name="output_dir"):
  """Takes `directory` for this process (creating it), or refuses.

  Raises:
    ValueError: another live process holds the directory; the message names
      it and the flag.
  """
  if "://" in directory:
    return
  if not os.path.isdir(directory):
    os.makedirs(directory)
  path = os.path.join(os.path.realpath(directory), LOCK_FILE)
  if path in _HELD:
    return
  while True:
    descriptor = _lock(path, directory, flag_name)
    # A run that ended between our open and our flock removed the file we
    # locked; lock the file that is there now instead.
    try:
      if os.fstat(descriptor).st_ino == os.stat(path).st_ino:
        break
    except OSError:
      pass
    os.close(descriptor)
  holder = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join([os.path.basename(sys.executable)] +
                                sys.argv)}
  os.ftruncate(descriptor, 0)
  os.lseek(descriptor, 0, os.SEEK_SET)
  os.write(descriptor, json.dumps(holder).encode("utf-8"))

  _HELD.add(path)

  def release():
    _HELD.discard(path)
    try:
      os.remove(path)
    except OSError:
      pass
    os.close(descriptor)

  atexit.register(release)
