"""Writes that land whole or not at all.

A killed or failed run must never leave a truncated file that a later run
takes for a valid one (a feature cache, a model export), nor destroy the
previous good copy before the new one is complete.  Everything is written
under a temporary name next to its destination, so that the final rename
stays on one file system, and renamed into place only after the last byte.
"""

import contextlib
import os
import shutil
import tempfile

import tensorflow.compat.v1 as tf

PARTIAL_SUFFIX = ".partial"
STAGING_PREFIX = ".staging."


def partial_path(path):
  """The temporary name `path` is written under; its directory is created.

  Write there, then `commit_partial(path)`, or `discard_partial(path)` on
  failure, which leaves an older `path` as it was.  Any TensorFlow file
  system works.
  """
  directory = os.path.dirname(path)
  if directory:
    tf.gfile.MakeDirs(directory)
  return path + PARTIAL_SUFFIX


def commit_partial(path):
  """Renames the finished `partial_path(path)` onto `path`."""
  tf.gfile.Rename(path + PARTIAL_SUFFIX, path, overwrite=True)


def discard_partial(path):
  """Deletes `partial_path(path)` if it exists."""
  if tf.gfile.Exists(path + PARTIAL_SUFFIX):
    tf.gfile.Remove(path + PARTIAL_SUFFIX)


@contextlib.contextmanager
def staging_directory(parent):
  """Yields a new hidden directory in `parent`, deleted when the block ends.

  The caller moves what it built out of it (`replace_entries` or
  `replace_directory`) before the block ends; whatever is left, after a
  success or a failure, is removed.
  """
  tf.gfile.MakeDirs(parent)
  staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent)
  try:
    yield staging
  finally:
    shutil.rmtree(staging, ignore_errors=True)


def replace_entries(staging, target_dir, names, retired_names):
  """Moves `names` from `staging` into `target_dir`, retiring old entries.

  Every entry of `retired_names` present in `target_dir` (an earlier
  export's files, including ones this run does not write) is first moved
  into `staging`, so it is deleted with it and no stale file survives beside
  the new ones.  Other entries of `target_dir` are left alone.

  Args:
    staging: a directory from `staging_directory(target_dir)`.
    target_dir: the destination directory.
    names: entries of `staging` to move in.
    retired_names: entries of `target_dir` to remove.
  """
  retired_dir = os.path.join(staging, ".previous")
  os.mkdir(retired_dir)
  for name in retired_names:
    if os.path.lexists(os.path.join(target_dir, name)):
      os.rename(os.path.join(target_dir, name), os.path.join(retired_dir, name))
  for name in names:
    os.rename(os.path.join(staging, name), os.path.join(target_dir, name))


def replace_directory(built_dir, target_dir):
  """Puts the directory `built_dir` at `target_dir`, replacing an old one.

  The old directory is renamed aside before the new one is renamed in and
  deleted only afterwards, so at every moment one complete copy exists.

  Args:
    built_dir: a finished directory on the same file system as target_dir,
      e.g. a subdirectory of `staging_directory(dirname(target_dir))`.
    target_dir: the destination path.
  """
  retired = None
  if os.path.lexists(target_dir):
    retired = tempfile.mkdtemp(prefix=STAGING_PREFIX,
                               dir=os.path.dirname(os.path.abspath(target_dir)))
    os.rename(target_dir, os.path.join(retired, "previous"))
  os.rename(built_dir, target_dir)
  if retired:
    shutil.rmtree(retired, ignore_errors=True)
