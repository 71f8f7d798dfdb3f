"""A Python process with TensorFlow imported that runs each script in a fork.

`python forkserver.py SOCKET_PATH` imports TensorFlow once, prints "ready"
and serves one run per connection on the Unix socket: the request (one JSON
line) holds argv (`["x.py", args...]` or `["-c", code, args...]`), the
directory, the environment and the output file; a forked child runs it as
`python <argv>` would, with stdout and stderr appended to that file.  The
connection gets `{"pid": ...}` when the run starts and `{"returncode": ...}`
when it ends (minus the signal's number if a signal ended it, as
subprocess reports).  The server exits when the process that started it does.

Why: `import tensorflow` costs a TF 2.15 process about 2 s of CPU (1 s on TF
1.15), and the suite starts some 200 script runs.  What differs from a fresh
interpreter is only what happens at import: TensorFlow is imported before
the script's first line, with the server's environment.  Tests of the
import-time console run a fresh interpreter (script_helpers.run_script's
fresh_process).
"""

import atexit
import builtins
import importlib
import json
import os
import runpy
import select
import signal
import socket
import sys
import threading
import traceback
import types


def _exit_code(run):
  """Runs `run()` and returns the exit status Python itself would give."""
  try:
    run()
  except SystemExit as exit_:
    code = exit_.code
    if code is None:
      return 0
    if isinstance(code, int):
      return code & 0xFF
    print(code, file=sys.stderr)
    return 1
  except BaseException:  # pylint: disable=broad-except
    traceback.print_exc()
    return 1
  return 0


def _run(request):
  """Runs one request in this (forked) process; never returns."""
  os.chdir(request["cwd"])
  os.environ.clear()
  os.environ.update(request["env"])
  output = os.open(request["output"], os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                   0o644)
  os.dup2(output, 1)
  os.dup2(output, 2)
  os.close(output)
  null = os.open(os.devnull, os.O_RDONLY)
  os.dup2(null, 0)
  os.close(null)
  argv = request["argv"]
  if argv[0] == "-c":
    sys.argv = ["-c"] + argv[2:]
    sys.path[0] = ""
    main = types.ModuleType("__main__")
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    program = compile(argv[1], "<string>", "exec")
    code = _exit_code(lambda: exec(program, main.__dict__))  # pylint: disable=exec-used
  else:  # runpy puts the script's module in sys.modules["__main__"].
    script = os.path.abspath(argv[0])
    sys.argv = list(argv)
    sys.path[0] = os.path.dirname(script)
    code = _exit_code(lambda: runpy.run_path(script, run_name="__main__"))
  # As the interpreter ends: wait for non-daemon threads, run the exit
  # functions, flush.
  threading._shutdown()  # pylint: disable=protected-access
  atexit._run_exitfuncs()  # pylint: disable=protected-access
  for stream in (sys.stdout, sys.stderr):
    try:
      stream.flush()
    except (OSError, ValueError):
      pass
  os._exit(code)  # pylint: disable=protected-access


def _serve_one(connection, request):
  """In a forked process: runs `request` in a child and reports on it."""
  signal.signal(signal.SIGCHLD, signal.SIG_DFL)
  pid = os.fork()
  if pid == 0:
    connection.close()
    _run(request)
  try:
    connection.sendall((json.dumps({"pid": pid}) + "\n").encode())
    _, status = os.waitpid(pid, 0)
    returncode = (-os.WTERMSIG(status) if os.WIFSIGNALED(status)
                  else os.WEXITSTATUS(status))
    connection.sendall((json.dumps({"returncode": returncode}) + "\n").encode())
  finally:
    os._exit(0)  # pylint: disable=protected-access


def main():
  socket_path = sys.argv[1]
  starter = os.getppid()
  # Imported once here, before any fork, so that no run imports them again.
  for module in ("numpy", "tensorflow.compat.v1"):
    importlib.import_module(module)
  server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
  server.bind(socket_path)
  server.listen(64)
  # The forked reporters are reaped by the kernel.
  signal.signal(signal.SIGCHLD, signal.SIG_IGN)
  print("ready", flush=True)
  null = os.open(os.devnull, os.O_WRONLY)
  os.dup2(null, 1)  # The starter has read its line; keep no pipe open.
  os.close(null)
  while os.getppid() == starter:
    if not select.select([server], [], [], 1.0)[0]:
      continue
    connection, _ = server.accept()
    with connection.makefile("r") as lines:
      request = json.loads(lines.readline())
    if os.fork() == 0:
      server.close()
      _serve_one(connection, request)
    connection.close()


if __name__ == "__main__":
  main()
