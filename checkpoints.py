"""Checkpoint files of a run directory: which one to load, and its step.

Nothing here knows the model; `modeling.check_checkpoint` compares a
checkpoint's variables with a config, and `modeling.init_from_checkpoint`
loads it into a graph.
"""

import re

import tensorflow.compat.v1 as tf

_CHECKPOINT_SUFFIX = re.compile(r"\.(index|meta|data-\d+-of-\d+)$")


def resolve_checkpoint_path(path):
  """Turns what a user may pass as --init_checkpoint into a checkpoint prefix.

  Accepts a prefix (`mobilebert_variables.ckpt`), a path ending in `.index`,
  `.meta` or `.data-00000-of-00001` (the file a user is most likely to
  point at), or a directory (its latest checkpoint).

  Raises:
    ValueError: nothing loadable at `path`.
  """
  if tf.gfile.IsDirectory(path):
    latest = tf.train.latest_checkpoint(path)
    if latest is None:
      raise ValueError("No checkpoint found in directory %s." % path)
    return latest
  prefix = _CHECKPOINT_SUFFIX.sub("", path)
  if not tf.gfile.Exists(prefix + ".index"):
    raise ValueError(
        "No checkpoint at %s (expected %s.index and its .data files)." %
        (path, prefix))
  return prefix


def latest_checkpoint(model_dir):
  """The newest checkpoint prefix in `model_dir`, or None (also if no dir)."""
  if not model_dir or not tf.gfile.IsDirectory(model_dir):
    return None
  return tf.train.latest_checkpoint(model_dir)


def checkpoint_to_use(output_dir, init_checkpoint):
  """What a run restores: its own latest checkpoint, else --init_checkpoint.

  A run that was stopped resumes from `output_dir`; a new one starts from
  `init_checkpoint` (resolved to a prefix); None if there is neither.
  """
  latest = latest_checkpoint(output_dir)
  if latest:
    return latest
  if init_checkpoint:
    return resolve_checkpoint_path(init_checkpoint)
  return None


def latest_checkpoint_step(model_dir):
  """global_step of the latest checkpoint in `model_dir`, or 0 if none."""
  latest = latest_checkpoint(model_dir)
  if latest is None:
    return 0
  reader = tf.train.load_checkpoint(latest)
  if not reader.has_tensor("global_step"):
    return 0
  return int(reader.get_tensor("global_step"))
