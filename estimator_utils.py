"""TPUEstimator construction shared by the run_* scripts.

With `use_tpu=False` the TPUEstimator runs the same model_fn on CPU or GPU,
which is how every script runs off TPU.  It logs the loss and global_step/sec
every `log_step_count_steps` steps and writes them to TensorBoard.
"""

import tensorflow.compat.v1 as tf


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
                   log_step_count_steps=100):
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
    log_step_count_steps: how often loss and steps/sec are logged.

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
      tpu_config=tf.estimator.tpu.TPUConfig(
          iterations_per_loop=iterations_per_loop,
          num_shards=num_tpu_cores,
          per_host_input_for_training=(
              tf.estimator.tpu.InputPipelineConfig.PER_HOST_V2)))
  return tf.estimator.tpu.TPUEstimator(
      use_tpu=use_tpu,
      model_fn=model_fn,
      config=run_config,
      train_batch_size=train_batch_size,
      eval_batch_size=eval_batch_size,
      predict_batch_size=predict_batch_size)
