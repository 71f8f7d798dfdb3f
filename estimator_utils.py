"""TPUEstimator construction shared by the run_* scripts.

With `use_tpu=False` the TPUEstimator runs the same model_fn on CPU or GPU,
which is how every script runs off TPU; `progress_hooks` log its progress
line (step / total, loss, examples per second, time left).

Several GPUs (or machines) use a tf.distribute strategy instead: the same
model_fn, returning a TPUEstimatorSpec, runs under a plain
tf.estimator.Estimator with `RunConfig(train_distribute=...)`; see
`make_distribution_strategy` and `make_distributed_estimator`.
"""

import os
import sys
import threading

import tensorflow.compat.v1 as tf

import console
import tf_compat

DISTRIBUTION_STRATEGIES = ("none", "mirrored", "multi_worker")


def _checkpoint_options():
  """RunConfig options for what a checkpoint holds besides the variables.

  No graph.pbtxt and no .meta file (TF 2.x estimators only; TF 1.15 always
  writes them).  Nothing here reads them back: every script rebuilds its
  graph from the config.  On the TF 2.15 runtime protobuf is the pure-Python
  implementation (tflite-support pins protobuf < 4, and 3.20 has no C++
  wheels for Python 3.11), where serialising a MobileBERT training graph
  takes seconds per checkpoint, tens of seconds for the 24-layer models.
  """
  if tf_compat.IS_TF2:
    return {"checkpoint_save_graph_def": False}
  return {}


def make_estimator(model_fn,
                   model_dir,
                   use_tpu=False,
                   tpu_name=None,
                   tpu_zone=None,
                   gcp_project=None,
                   master=None,
                   num_tpu_cores=8,
                   iterations_per_loop=1000,
                   save_checkpoints_steps=1000,
                   keep_checkpoint_max=5,
                   train_batch_size=32,
                   eval_batch_size=8,
                   predict_batch_size=8,
                   log_step_count_steps=100,
                   tf_random_seed=None):
  """Builds a TPUEstimator (CPU/GPU when `use_tpu` is False).

  Args:
    model_fn: model_fn(features, labels, mode, params) -> TPUEstimatorSpec.
    model_dir: checkpoints and summaries; training resumes from here.
    use_tpu: run on a TPU.
    tpu_name: TPU name or grpc address, resolved with TPUClusterResolver.
    tpu_zone: GCE zone of the TPU (optional).
    gcp_project: GCP project of the TPU (optional).
    master: TensorFlow master address when not resolving a TPU name.
    num_tpu_cores: TPU cores (shards).
    iterations_per_loop: steps per TPU loop (and per host call).
    save_checkpoints_steps: checkpoint frequency.
    keep_checkpoint_max: checkpoints kept; 0 or None keeps all.
    train_batch_size: global training batch.
    eval_batch_size: global eval batch.
    predict_batch_size: global predict batch.
    log_step_count_steps: how often the steps/sec summary is written.
    tf_random_seed: graph-level seed (initializers, dropout, masking);
      None leaves runs unseeded.

  Returns:
    tf.estimator.tpu.TPUEstimator.
  """
  cluster_resolver = None
  if use_tpu and tpu_name:
    cluster_resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu_name, zone=tpu_zone, project=gcp_project)
  run_config = tf.estimator.tpu.RunConfig(
      cluster=cluster_resolver,
      master=master,
      model_dir=model_dir,
      save_checkpoints_steps=save_checkpoints_steps,
      keep_checkpoint_max=keep_checkpoint_max,
      log_step_count_steps=log_step_count_steps,
      tf_random_seed=tf_random_seed,
      tpu_config=tf.estimator.tpu.TPUConfig(
          iterations_per_loop=iterations_per_loop,
          num_shards=num_tpu_cores,
          per_host_input_for_training=(
              tf.estimator.tpu.InputPipelineConfig.PER_HOST_V2)),
      **_checkpoint_options())
  return tf.estimator.tpu.TPUEstimator(
      use_tpu=use_tpu,
      model_fn=model_fn,
      config=run_config,
      train_batch_size=train_batch_size,
      eval_batch_size=eval_batch_size,
      predict_batch_size=predict_batch_size)


def make_estimator_from_flags(model_fn, flags_values, predict_batch_size=8,
                              eval_batch_size=8, model_dir=None,
                              train_batch_size=None, keep_checkpoint_max=5,
                              log_step_count_steps=100):
  """make_estimator with the TPU and checkpoint flags the scripts share.

  Args:
    model_fn: as for make_estimator.
    flags_values: absl FLAGS with output_dir, use_tpu, tpu_name, tpu_zone,
      gcp_project, master, num_tpu_cores, iterations_per_loop,
      save_checkpoints_steps, random_seed and train_batch_size.
    predict_batch_size: global predict batch.
    eval_batch_size: global eval batch.
    model_dir: default flags_values.output_dir.
    train_batch_size: default flags_values.train_batch_size.
    keep_checkpoint_max, log_step_count_steps: as for make_estimator.
  """
  return make_estimator(
      model_fn, model_dir or flags_values.output_dir,
      use_tpu=flags_values.use_tpu,
      tpu_name=flags_values.tpu_name, tpu_zone=flags_values.tpu_zone,
      gcp_project=flags_values.gcp_project, master=flags_values.master,
      num_tpu_cores=flags_values.num_tpu_cores,
      iterations_per_loop=flags_values.iterations_per_loop,
      save_checkpoints_steps=flags_values.save_checkpoints_steps,
      keep_checkpoint_max=keep_checkpoint_max,
      tf_random_seed=flags_values.random_seed,
      train_batch_size=train_batch_size or flags_values.train_batch_size,
      eval_batch_size=eval_batch_size,
      predict_batch_size=predict_batch_size,
      log_step_count_steps=log_step_count_steps)


def predict_with_progress(estimator, input_fn, total):
  """Yields estimator.predict(...) results one example at a time.

  Logs "Predicting: example N of total" progress lines (console.Progress).
  """
  progress = console.Progress("Predicting", total)
  for index, result in enumerate(estimator.predict(
      input_fn=input_fn, yield_single_examples=True)):
    progress.update(index + 1)
    yield result


def make_distribution_strategy(name, devices=None):
  """A tf.distribute strategy for training on several GPUs or machines.

  Args:
    name: "none" (returns None), "mirrored" (all local GPUs, or `devices`) or
      "multi_worker" (MultiWorkerMirroredStrategy; the cluster comes from the
      TF_CONFIG environment variable).
    devices: optional list of device names for "mirrored", e.g.
      ["/gpu:0", "/gpu:1"].

  Returns:
    tf.distribute.Strategy or None.

  Raises:
    ValueError: unknown name.
  """
  if name not in DISTRIBUTION_STRATEGIES:
    raise ValueError("distribution strategy must be one of %s, got %r" %
                     (", ".join(DISTRIBUTION_STRATEGIES), name))
  if name == "none":
    return None
  if name == "mirrored":
    return tf.distribute.MirroredStrategy(devices=devices or None)
  return tf.distribute.experimental.MultiWorkerMirroredStrategy()


def make_distributed_estimator(model_fn,
                               model_dir,
                               strategy,
                               save_checkpoints_steps=1000,
                               keep_checkpoint_max=5,
                               log_step_count_steps=100,
                               session_config=None,
                               tf_random_seed=None):
  """A tf.estimator.Estimator training `model_fn` under `strategy`.

  The model_fn may return a TPUEstimatorSpec (as for TPUEstimator); it is
  converted to an EstimatorSpec.  It must not use host_call.  Unlike
  TPUEstimator, no params["batch_size"] is set: input functions must bring
  their own per-replica batch size (global batch / num_replicas_in_sync).
  Evaluation runs on one device.

  Args:
    model_fn: model_fn(features, labels, mode, params).
    model_dir: checkpoints and summaries; training resumes from here.
    strategy: a tf.distribute strategy (see make_distribution_strategy).
    save_checkpoints_steps: checkpoint frequency.
    keep_checkpoint_max: checkpoints kept; 0 or None keeps all.
    log_step_count_steps: how often the steps/sec summary is written.
    session_config: optional tf.ConfigProto.
    tf_random_seed: graph-level seed; None leaves runs unseeded.

  Returns:
    tf.estimator.Estimator.
  """

  def estimator_model_fn(features, labels, mode, params):
    spec = model_fn(features, labels, mode, params)
    if isinstance(spec, tf.estimator.tpu.TPUEstimatorSpec):
      if spec.host_call is not None:
        raise ValueError("host_call is not supported under a distribution "
                         "strategy; write summaries with tf.summary instead")
      spec = spec.as_estimator_spec()
    return spec

  run_config = tf.estimator.RunConfig(
      model_dir=model_dir,
      save_checkpoints_steps=save_checkpoints_steps,
      keep_checkpoint_max=keep_checkpoint_max,
      log_step_count_steps=log_step_count_steps,
      session_config=session_config,
      tf_random_seed=tf_random_seed,
      train_distribute=strategy,
      **_checkpoint_options())
  return tf.estimator.Estimator(model_fn=estimator_model_fn, config=run_config,
                                params={"use_tpu": False})


def train_estimator(estimator, input_fn, max_steps, hooks=None):
  """Trains until the global step reaches `max_steps`.

  estimator.train, except under a multi-worker strategy: its independent
  worker mode (every worker runs this script with its own TF_CONFIG) only
  runs through tf.estimator.train_and_evaluate.  Without an `evaluator` task
  in TF_CONFIG nothing is evaluated there.
  """
  if isinstance(estimator.config.train_distribute,
                tf.distribute.experimental.MultiWorkerMirroredStrategy):
    tf.estimator.train_and_evaluate(
        estimator,
        tf.estimator.TrainSpec(input_fn, max_steps=max_steps, hooks=hooks),
        tf.estimator.EvalSpec(input_fn, steps=1))
  else:
    estimator.train(input_fn=input_fn, max_steps=max_steps, hooks=hooks)


class StalledTrainingHook(tf.train.SessionRunHook):
  """Ends the process when no training step finishes for `timeout_secs`.

  Under a multi-worker strategy a worker that dies leaves the others in a
  collective op, and the estimator's MonitoredSession treats the error as a
  preemption and re-creates its session again and again: the run never
  ends.  This hook starts timing after the first step (which includes graph
  and cluster set-up); when no step follows in time it writes `message` to
  stderr and exits with status 1 (os._exit: the stuck threads cannot be
  joined).  Checkpoints written so far are kept, so the same command resumes.
  """

  def __init__(self, timeout_secs, message):
    self._timeout_secs = timeout_secs
    self._message = message
    self._timer = None

  def _expire(self):
    sys.stderr.write(self._message + "\n")
    sys.stderr.flush()
    os._exit(1)  # pylint: disable=protected-access

  def after_run(self, run_context, run_values):
    del run_context, run_values
    if self._timer is not None:
      self._timer.cancel()
    self._timer = threading.Timer(self._timeout_secs, self._expire)
    self._timer.daemon = True
    self._timer.start()

  def end(self, session):
    del session
    if self._timer is not None:
      self._timer.cancel()


class TrainingProgressHook(tf.train.SessionRunHook):
  """Logs the training progress line (console.Progress) off TPU.

  A line at the first step, at the last and at console.PROGRESS_SECONDS
  intervals: step / total, loss, steps and examples per second, time left.
  """

  def __init__(self, loss, num_train_steps, batch_size):
    self._loss = loss
    self._num_train_steps = num_train_steps
    self._batch_size = batch_size
    self._global_step = None
    self._progress = None

  def begin(self):
    self._global_step = tf.train.get_global_step()
    self._progress = console.Progress("Training", self._num_train_steps,
                                      unit="step",
                                      examples_per_unit=self._batch_size)

  def before_run(self, run_context):
    del run_context
    return tf.train.SessionRunArgs({"step": self._global_step,
                                    "loss": self._loss})

  def after_run(self, run_context, run_values):
    del run_context
    # The step read in the run is the one before its update.
    step = min(int(run_values.results["step"]) + 1, self._num_train_steps)
    self._progress.update(step, loss=float(run_values.results["loss"]))


def progress_hooks(loss, use_tpu, num_train_steps, batch_input):
  """Training hooks that log the progress line off TPU.

  Args:
    loss: scalar loss tensor.
    use_tpu: on TPU tensor hooks cannot run; the TPU loop logs the loss and
      rate itself (console.setup(keep_tensorflow_info=True) keeps those).
    num_train_steps: the global step training ends at.
    batch_input: a [batch, ...] input tensor of the model_fn, for the
      examples per second (times the replicas of a distribution strategy).

  Returns:
    A list of hooks for TPUEstimatorSpec(training_hooks=...), or None on TPU.
  """
  if use_tpu:
    return None
  batch_size = batch_input.shape.as_list()[0]
  if batch_size is not None:
    batch_size *= tf.distribute.get_strategy().num_replicas_in_sync
  return [TrainingProgressHook(loss, num_train_steps, batch_size)]
