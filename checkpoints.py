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


DAMAGED_SUFFIX = ".damaged"


def set_aside_damaged(model_dir, damage):
  """Makes a run in `model_dir` resume from its newest intact checkpoint.

  A run resumes from the newest checkpoint recorded in `model_dir`.  Newer
  ones found damaged are set aside: their files renamed to `<name>.damaged`
  (kept, not deleted) and their entries dropped from the directory's
  `checkpoint` record, each with a warning naming it and the one resumed
  from.

  Args:
    model_dir: a run directory (nothing happens without a record in it).
    damage: prefix -> what is wrong with it, or None if intact
      (modeling.checkpoint_damage).

  Raises:
    ValueError: every recorded checkpoint is damaged (the run would
      otherwise start again from the beginning).
  """
  state = tf.train.get_checkpoint_state(model_dir) if model_dir else None
  if state is None or not state.model_checkpoint_path:
    return
  recorded = list(state.all_model_checkpoint_paths) or [
      state.model_checkpoint_path]
  damaged = []
  for prefix in reversed(recorded):
    problem = damage(prefix)
    if problem is None:
      break
    damaged.append((prefix, problem))
  else:
    raise ValueError(
        "Every checkpoint in %s is damaged (the newest, %s: %s); restore the "
        "directory from a backup or start in a new --output_dir." %
        (model_dir, damaged[0][0], damaged[0][1]))
  if not damaged:
    return
  intact = recorded[len(recorded) - len(damaged) - 1]
  for prefix, problem in damaged:
    for path in tf.gfile.Glob(prefix + ".*"):
      if not path.endswith(DAMAGED_SUFFIX):
        tf.gfile.Rename(path, path + DAMAGED_SUFFIX, overwrite=True)
    tf.logging.warning(
        "Checkpoint %s is damaged (%s); its files are kept as *%s and the "
        "run resumes from %s, the newest intact checkpoint.", prefix,
        problem, DAMAGED_SUFFIX, intact)
  tf.train.update_checkpoint_state(
      model_dir, intact,
      all_model_checkpoint_paths=recorded[:len(recorded) - len(damaged)])
