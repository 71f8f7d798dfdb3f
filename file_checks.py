"""Checks on the files and directories a script's flags name, and reading
text files with errors that name the file and line.

The run_* scripts and export_tflite.py call the checks while validating
their flags, before any graph is built, so that a path that cannot work ends
the run with one line naming the flag instead of an error from inside a
TensorFlow session after minutes of work.
"""

import os

import tensorflow.compat.v1 as tf


def check_writable_dir(path, flag_name):
  """Refuses a local output directory that cannot be created or written.

  Nothing is created here (a run refused for another reason leaves no
  directory behind).  Remote paths (gs://..., any "scheme://") are left to
  TensorFlow's file system, which this check cannot see into.

  Args:
    path: the directory the run will write (it may not exist yet).
    flag_name: the flag that set it, e.g. "output_dir".

  Raises:
    ValueError: an existing path that is not a directory, an ancestor that
      is a file, or a directory the user may not write.
  """
  if not path or "://" in path:
    return
  path = os.path.abspath(path)
  if os.path.exists(path) and not os.path.isdir(path):
    raise ValueError("--%s=%s is a file, not a directory." % (flag_name, path))
  existing = path
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ValueError("--%s=%s cannot be created: %s is a file." %
                     (flag_name, path, existing))
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ValueError("--%s=%s cannot be written: no write permission on %s." %
                     (flag_name, path, existing))


def first_line(error):
  """The first line of an exception's message (TensorFlow's run to pages)."""
  text = str(getattr(error, "message", None) or error).strip()
  return text.splitlines()[0] if text else type(error).__name__


def text_lines(path):
  """Yields (1-based line number, line) of a UTF-8 text file (any tf.gfile
  path), line endings kept.

  Raises:
    ValueError: a line is not UTF-8; names the file, the line and the byte.
  """
  with tf.gfile.GFile(path, "rb") as reader:
    for line_number, raw_line in enumerate(reader, 1):
      try:
        yield line_number, raw_line.decode("utf-8")
      except UnicodeDecodeError as error:
        raise ValueError("%s line %d is not UTF-8 text (byte 0x%02x at "
                         "column %d)." % (path, line_number,
                                          raw_line[error.start],
                                          error.start + 1))
