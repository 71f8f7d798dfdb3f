"""Checkpoints: finding, checking, loading.

Which checkpoint a run loads (a run directory's latest, or what the user
passed as --init_checkpoint) and its step; damaged checkpoints set aside; a
checkpoint checked whole and against a config before any graph is built;
variables initialised from it (`init_from_checkpoint`) with a report of what
was loaded; and the one message a shape mismatch gets (`shape_mismatch`).
"""

import collections
import re

import tensorflow.compat.v1 as tf

import file_checks
import modeling
import quantization

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


def holds_teacher_variables(path):
  """Whether the checkpoint at `path` holds a distillation teacher.

  A distillation run's checkpoints carry the teacher under
  modeling.TEACHER_SCOPE; a model's own checkpoint (a trained teacher's,
  say) has no such variable.  `path`: what resolve_checkpoint_path accepts.
  """
  prefix = resolve_checkpoint_path(path)
  return any(name.startswith(modeling.TEACHER_SCOPE + "/")
             for name, _ in tf.train.list_variables(prefix))


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


def set_aside_damaged(model_dir):
  """Makes a run in `model_dir` resume from its newest intact checkpoint.

  A run resumes from the newest checkpoint recorded in `model_dir`.  Newer
  ones found damaged are set aside: their files renamed to `<name>.damaged`
  (kept, not deleted) and their entries dropped from the directory's
  `checkpoint` record, each with a warning naming it and the one resumed
  from.

  Args:
    model_dir: a run directory (nothing happens without a record in it).

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
    problem = checkpoint_damage(prefix)
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


def shape_mismatch(checkpoint, checkpoint_name, checkpoint_shape, graph_name,
                   graph_shape):
  return ValueError(
      "Checkpoint %s does not match the model: variable %s has shape %s in "
      "the checkpoint but %s has shape %s in the graph. Check that "
      "the config describes the checkpoint." %
      (checkpoint, checkpoint_name, list(checkpoint_shape), graph_name,
       list(graph_shape)))


def check_checkpoint(path, config=None, scope=modeling.MODEL_SCOPE):
  """Checks that a checkpoint can be read whole and fits `config`.

  Run before building the training or export graph, so that a damaged file
  or a wrong --bert_config_file ends in one message instead of a failure deep
  inside a TensorFlow session.  Every tensor is read once (the .data files'
  checksums are verified on read).

  Args:
    path: what resolve_checkpoint_path accepts.
    config: optional BertConfig; its encoder variables under `scope` must
      have the checkpoint's shapes wherever both have a variable.
    scope: the name scope the config's variables carry in the checkpoint.

  Returns:
    The checkpoint prefix.

  Raises:
    ValueError: nothing at `path`, a damaged .index or .data file (naming
      the variable that cannot be read), or a variable whose shape differs
      (naming the variable and both shapes).
  """
  prefix = resolve_checkpoint_path(path)
  damage = checkpoint_damage(prefix)
  if damage:
    raise ValueError("Checkpoint %s is damaged: %s." % (prefix, damage))
  shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
  if config is not None:
    graph_shapes = modeling.encoder_variable_shapes(config, scope)
    for name, graph_shape in sorted(graph_shapes.items()):
      if name in shapes and list(shapes[name]) != graph_shape:
        raise shape_mismatch(prefix, name, shapes[name], name, graph_shape)
  return prefix


_DAMAGE = {}


def checkpoint_damage(prefix):
  """What is wrong with the files of checkpoint `prefix`, or None if every
  tensor reads back (the .data files' checksums are verified on read).

  Each checkpoint is read once per process (a run checks the checkpoint it
  resumes from both for damage and against its config).
  """
  try:
    key = (prefix, tf.gfile.Stat(prefix + ".index").mtime_nsec)
  except tf.errors.OpError:
    return _read_every_tensor(prefix)
  if key not in _DAMAGE:
    _DAMAGE[key] = _read_every_tensor(prefix)
  return _DAMAGE[key]


def _read_every_tensor(prefix):
  """checkpoint_damage without the memo."""
  try:
    reader = tf.train.load_checkpoint(prefix)
    shapes = reader.get_variable_to_shape_map()
  except Exception as error:  # pylint: disable=broad-except
    return "its .index file cannot be read (%s)" % file_checks.first_line(
        error)
  for name in sorted(shapes):
    try:
      reader.get_tensor(name)
    except Exception as error:  # pylint: disable=broad-except
      return "variable %s cannot be read from its .data file (%s)" % (
          name, file_checks.first_line(error))
  return None


def get_assignment_map_from_checkpoint(tvars, checkpoint,
                                       init_from_teacher=False,
                                       init_embedding=False):
  """Maps checkpoint variables onto graph variables, checking shapes.

  Args:
    tvars: graph variables that may be initialized.
    checkpoint: a checkpoint prefix (resolve_checkpoint_path's result).
    init_from_teacher: map checkpoint name X onto graph variable `teacher/X`.
    init_embedding: map only names outside `bert/encoder` (embeddings and
      heads), as used to seed a student from its teacher.

  Returns:
    (assignment_map {checkpoint name: graph name},
     initialized_variable_names {graph name: 1}).

  Raises:
    ValueError: a mapped pair differs in shape; names the variables and both
      shapes so a config/checkpoint mismatch is obvious.
  """
  graph_variables = collections.OrderedDict(
      (var.op.name, var) for var in tvars)
  assignment_map = collections.OrderedDict()
  initialized_variable_names = collections.OrderedDict()
  for checkpoint_name, checkpoint_shape in tf.train.list_variables(checkpoint):
    if init_from_teacher:
      graph_name = modeling.TEACHER_SCOPE + "/" + checkpoint_name
    elif init_embedding and checkpoint_name.startswith("bert/encoder"):
      continue
    else:
      graph_name = checkpoint_name
    if graph_name not in graph_variables:
      continue
    graph_shape = graph_variables[graph_name].shape.as_list()
    if list(checkpoint_shape) != graph_shape:
      raise shape_mismatch(checkpoint, checkpoint_name, checkpoint_shape,
                           graph_name, graph_shape)
    assignment_map[checkpoint_name] = graph_name
    initialized_variable_names[graph_name] = 1
  return assignment_map, initialized_variable_names


def init_from_checkpoint(init_checkpoint, tvars=None, use_tpu=False,
                         from_teacher=False, model_dir=None):
  """Initializes graph variables from a checkpoint and logs what was loaded.

  Call inside a model_fn after the graph is built.  Names map to themselves,
  or, with `from_teacher`, a trained teacher's own checkpoint starts a
  distillation graph: the teacher gets every variable (`teacher/X` <- X) and
  the student its embeddings and heads (docs/distillation.md, section 2).
  One loading report covers what was loaded.

  What a new run takes from a checkpoint (docs/differences.md): the trainable
  variables and the quantizers' state (ranges and their moving averages,
  which a QAT checkpoint is not whole without).  Never `global_step` or
  optimizer slots: a new run starts its schedule and moments afresh.

  Args:
    init_checkpoint: checkpoint prefix, .index/.data path or directory.
    tvars: candidate variables; defaults to the trainable variables plus the
      quantizer state (quantization.range_variables()).
    use_tpu: if True, return a scaffold_fn that does the initialization (TPU
      needs it inside the scaffold); otherwise initialize directly.
    from_teacher: the distillation mapping above.
    model_dir: the estimator's directory.  When it holds a checkpoint the
      estimator restores every variable from it (resuming training, or
      predicting after it), so `init_checkpoint` is not read and the report
      says so.

  Returns:
    scaffold_fn for TPUEstimatorSpec, or None when not on TPU.
  """
  resumed = latest_checkpoint(model_dir)
  if resumed:
    tf.logging.info("Restoring every variable from %s, the latest checkpoint "
                    "in %s (--init_checkpoint is not read).", resumed,
                    model_dir)
    return None
  if tvars is None:
    tvars = tf.trainable_variables() + quantization.range_variables()
  checkpoint = resolve_checkpoint_path(init_checkpoint)
  # The student's and the teacher's maps share checkpoint names, so each is
  # a map of its own.
  mappings = ([dict(init_embedding=True), dict(init_from_teacher=True)]
              if from_teacher else [{}])
  assignment_maps, initialized = [], collections.OrderedDict()
  for mapping in mappings:
    assignment_map, loaded = get_assignment_map_from_checkpoint(
        tvars, checkpoint, **mapping)
    if assignment_map:
      assignment_maps.append(assignment_map)
    initialized.update(loaded)
  log_loading_report(
      tvars, checkpoint, initialized,
      fresh_by_design=(modeling.MODEL_SCOPE + "/encoder/" if from_teacher
                       else None))
  if not assignment_maps:
    return None

  def _init():
    for assignment_map in assignment_maps:
      tf.train.init_from_checkpoint(checkpoint, assignment_map)

  if use_tpu:
    def scaffold_fn():
      _init()
      return tf.train.Scaffold()
    return scaffold_fn
  _init()
  return None


def log_loading_report(tvars, checkpoint, initialized_variable_names,
                       fresh_by_design=None):
  """Logs which variables were loaded from `checkpoint` and which were not.

  Weights are listed by name when they keep their initial values, except
  those under the name prefix `fresh_by_design` (the student's encoder when
  distillation starts from a teacher), which are counted in one line; the
  quantizer state (hundreds of scalars in a QAT graph) is reported as counts.
  """
  names = [var.op.name for var in tvars]
  weights = [name for name in names
             if not quantization.is_range_variable(name)]
  ranges = [name for name in names if quantization.is_range_variable(name)]
  missing = [name for name in weights
             if name not in initialized_variable_names]
  tf.logging.info("Loaded %d of %d variables from %s.",
                  len(weights) - len(missing), len(weights), checkpoint)
  if fresh_by_design:
    fresh = [name for name in missing if name.startswith(fresh_by_design)]
    missing = [name for name in missing if name not in fresh]
    tf.logging.info("%d variables under %s start from their initializers, "
                    "as they should: this run trains them.", len(fresh),
                    fresh_by_design)
  if missing:
    tf.logging.info("%d variables keep their initial values (not in the "
                    "checkpoint under this mapping):", len(missing))
    for name in missing:
      tf.logging.info("  %s", name)
  if not ranges:
    return
  loaded_ranges = sum(name in initialized_variable_names for name in ranges)
  if loaded_ranges == len(ranges):
    tf.logging.info("Loaded all %d quantization-range variables (min/max and "
                    "their moving averages) from %s: the model quantizes "
                    "with its trained ranges.", len(ranges), checkpoint)
  elif loaded_ranges == 0:
    tf.logging.info("Quantization ranges: %s has none (a float checkpoint); "
                    "the %d range variables start fresh at [%g, %g] and are "
                    "learned in training.", checkpoint, len(ranges),
                    quantization.INITIAL_MIN, quantization.INITIAL_MAX)
  else:
    fresh = [name for name in ranges if name not in initialized_variable_names]
    tf.logging.warning("Loaded %d of %d quantization-range variables from %s; "
                       "%d start fresh at [%g, %g], e.g. %s.", loaded_ranges,
                       len(ranges), checkpoint, len(fresh),
                       quantization.INITIAL_MIN, quantization.INITIAL_MAX,
                       fresh[0])


def check_quantization_ranges(path):
  """Checks that a checkpoint holds trained quantization ranges.

  A QAT graph that predicts, evaluates or exports without training first
  takes its ranges from the checkpoint; a float checkpoint has none, and the
  initial ranges would give results unlike the trained model's.

  Raises:
    ValueError: naming the checkpoint.
  """
  prefix = resolve_checkpoint_path(path)
  if not any(quantization.is_range_variable(name)
             for name, _ in tf.train.list_variables(prefix)):
    raise ValueError(
        "Checkpoint %s holds no quantization ranges (it was not trained with "
        "--use_quantized_training), so a --use_quantized_training model "
        "would quantize with the initial [%g, %g] ranges instead of trained "
        "ones. Fine-tune it with --use_quantized_training --do_train first, "
        "or drop --use_quantized_training." %
        (prefix, quantization.INITIAL_MIN, quantization.INITIAL_MAX))
