"""create_optimizer, AdamW and LAMB against numpy re-implementations."""

import json
import math

import numpy as np
import pytest

import tensorflow.compat.v1 as tf

import layer_schedule
import optimization
import script_helpers

B1, B2, EPS = 0.9, 0.999, 1e-6
EXCLUDED = ("teacher", "LayerNorm", "layer_norm", "bias", "FakeLayerNorm")

# name -> (shape, gradient coefficient); loss = sum_v 0.5 * coef * ||v||^2
# plus a linear term through an embedding gather for the embedding table.
VARIABLES = {
    "bert/embeddings/word_embeddings": ((6, 3), 0.0),
    "bert/encoder/layer_0/attention/self/query/kernel": ((3, 4), 2.0),
    "bert/encoder/layer_0/attention/self/query/bias": ((4,), 1.5),
    "bert/encoder/layer_1/output/FakeLayerNorm/gamma": ((4,), 0.7),
    "bert/encoder/layer_1/intermediate/dense/kernel": ((4, 2), 3.0),
    "cls/predictions/output_bias": ((5,), 0.5),
    "teacher/bert/encoder/layer_0/attention/self/query/kernel": ((3, 4), 1.0),
}
EMBED_IDS = np.array([1, 4, 1], dtype=np.int32)
EMBED_COEF = np.array([[0.3, -0.2, 0.5], [1.0, 0.1, -0.4], [0.2, 0.2, 0.2]],
                      dtype=np.float32)


def initial_values():
  rng = np.random.RandomState(3)
  return {n: rng.uniform(-1.0, 1.0, size=s).astype(np.float32)
          for n, (s, _) in VARIABLES.items()}


def numpy_gradients(values):
  """Gradients of the test loss for every non-teacher variable."""
  grads = {}
  for name, (_, coef) in VARIABLES.items():
    if name.startswith("teacher"):
      continue
    grads[name] = coef * values[name]
  table_grad = np.zeros_like(values["bert/embeddings/word_embeddings"])
  for row, token in enumerate(EMBED_IDS):
    table_grad[token] += EMBED_COEF[row]
  grads["bert/embeddings/word_embeddings"] = table_grad
  return grads


def clip(grads):
  norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2))
                       for g in grads.values()))
  scale = 1.0 / max(norm, 1.0)
  return {n: g * scale for n, g in grads.items()}


def lr_at(step, init_lr, total, warmup, end_rate):
  end = init_lr * end_rate
  lr = (init_lr - end) * (1.0 - min(step, total) / total) + end
  if warmup and step < warmup:
    lr = init_lr * step / warmup
  return lr


def excluded(name):
  return any(p in name for p in EXCLUDED)


def numpy_layer_wise(name, step, spp):
  """(lr_mult, gate) of docs/distillation.md section 4 written from the formulas."""
  if not name.startswith("bert/encoder/layer_"):
    return 0.0, 0.0
  layer = int(name.split("/")[2][len("layer_"):])
  if spp > 1:
    t = (step % spp) / spp
    background = min(0.9 + 0.1 * math.sqrt(1.0 - t), 10.0 * t)
  else:
    background = 1.0
  if step <= spp * layer:
    stage = 0.0
  elif step <= spp * (layer + 1):
    stage = 1.0
  else:
    stage = 0.1
  lr_mult = 3.0 * background * stage
  return lr_mult, (1.0 if lr_mult > 0 else 0.0)


def numpy_run(kind, steps, init_lr, total, warmup, end_rate, wd,
              layer_wise=False, spp=1):
  values = initial_values()
  m = {n: np.zeros_like(v) for n, v in values.items()}
  v2 = {n: np.zeros_like(v) for n, v in values.items()}
  history = []
  for step in range(steps):
    lr = lr_at(step, init_lr, total, warmup, end_rate)
    grads = clip(numpy_gradients(values))
    for name, g in grads.items():
      w = values[name]
      lr_mult, gate = (numpy_layer_wise(name, step, spp) if layer_wise
                       else (1.0, 1.0))
      m[name] = gate * (B1 * m[name] + (1 - B1) * g)
      v2[name] = gate * (B2 * v2[name] + (1 - B2) * g * g)
      u = m[name] / (np.sqrt(v2[name]) + EPS)
      if not excluded(name):
        u = u + gate * wd * w
      if kind == "lamb":
        ratio = 1.0
        if not excluded(name):
          wn, un = np.linalg.norm(w), np.linalg.norm(u)
          ratio = wn / un if wn > 0 and un > 0 else 1.0
        values[name] = w - lr_mult * ratio * lr * u
      else:
        values[name] = w - lr * u
    history.append({n: x.copy() for n, x in values.items()})
  return history, m


def tf_run(kind, steps, init_lr, total, warmup, end_rate, wd,
           spp=None):
  """Runs create_optimizer on the same loss; returns values after each step."""
  graph = tf.Graph()
  with graph.as_default():
    start = initial_values()
    tf_vars = {}
    for name in VARIABLES:
      scope, var_name = name.rsplit("/", 1)
      with tf.variable_scope(scope):
        tf_vars[name] = tf.get_variable(
            var_name, initializer=tf.constant(start[name]))
    loss = 0.0
    for name, (_, coef) in VARIABLES.items():
      loss += 0.5 * coef * tf.reduce_sum(tf.square(tf_vars[name]))
    rows = tf.gather(tf_vars["bert/embeddings/word_embeddings"], EMBED_IDS)
    loss += tf.reduce_sum(rows * EMBED_COEF)
    train_op = optimization.create_optimizer(
        loss, init_lr, total, warmup, use_tpu=False, optimizer=kind,
        weight_decay_rate=wd, end_lr_rate=end_rate,
        steps_per_layer=spp)
    slots = {v.op.name: v for v in tf.global_variables()
             if "adam_" in v.op.name}
    slot_names = sorted(slots)
    step_t = tf.train.get_global_step()
    history = []
    with tf.Session() as sess:
      sess.run(tf.global_variables_initializer())
      for _ in range(steps):
        sess.run(train_op)
        history.append(sess.run(tf_vars))
      final_step = sess.run(step_t)
      moments = {n: sess.run(slots[n + "/adam_m"])
                 for n in VARIABLES if not n.startswith("teacher")}
  return history, slot_names, final_step, moments


def assert_histories_close(expected, actual):
  for step, (exp, act) in enumerate(zip(expected, actual)):
    for name in VARIABLES:
      np.testing.assert_allclose(act[name], exp[name], rtol=2e-5, atol=2e-6,
                                 err_msg="%s at step %d" % (name, step))


def test_learning_rate_schedule_matches_hand_values():
  with tf.Graph().as_default():
    step = tf.placeholder(tf.int64, [])
    lr = optimization.learning_rate_schedule(step, 1e-3, 100, 10, 0.0001)
    with tf.Session() as sess:
      got = [sess.run(lr, {step: s}) for s in (0, 5, 10, 55, 100, 150)]
  end = 1e-7
  expected = [0.0, 5e-4, (1e-3 - end) * 0.9 + end, (1e-3 - end) * 0.45 + end,
              end, end]
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-12)


def test_adamw_matches_numpy_with_decay_exclusions_and_frozen_teacher():
  args = dict(steps=4, init_lr=0.05, total=10, warmup=2, end_rate=0.0001,
              wd=0.03)
  expected, _ = numpy_run("adamw", **args)
  actual, slots, final_step, _ = tf_run("adamw", **args)
  assert_histories_close(expected, actual)
  teacher = "teacher/bert/encoder/layer_0/attention/self/query/kernel"
  np.testing.assert_array_equal(actual[-1][teacher], initial_values()[teacher])
  assert final_step == 4
  assert "bert/embeddings/word_embeddings/adam_m" in slots
  assert "bert/embeddings/word_embeddings/adam_v" in slots
  assert not any(s.startswith("teacher") for s in slots)


def test_weight_decay_rate_is_honoured():
  name = "bert/encoder/layer_1/intermediate/dense/kernel"
  args = dict(steps=2, init_lr=0.05, total=10, warmup=0, end_rate=1.0)
  no_decay, _, _, _ = tf_run("adamw", wd=0.0, **args)
  decay, _, _, _ = tf_run("adamw", wd=0.5, **args)
  expected, _ = numpy_run("adamw", wd=0.5, **args)
  assert not np.allclose(no_decay[-1][name], decay[-1][name])
  np.testing.assert_allclose(decay[-1][name], expected[-1][name], rtol=2e-5)


def test_lamb_matches_numpy_without_layer_wise_warmup():
  args = dict(steps=4, init_lr=0.05, total=10, warmup=0, end_rate=0.0001,
              wd=0.01)
  expected, _ = numpy_run("lamb", **args)
  actual, _, _, _ = tf_run("lamb", **args)
  assert_histories_close(expected, actual)


def test_lamb_layer_wise_gating_and_moment_reset():
  # Two stages of 3 steps: steps 1-3 train layer 0, steps 4-6 layer 1 (and
  # layer 0 at 0.1); step 3 is a stage boundary (background 0) -> reset.
  args = dict(steps=7, init_lr=0.01, total=6, warmup=0, end_rate=1.0, wd=0.01)
  expected, expected_m = numpy_run("lamb", layer_wise=True, spp=3, **args)
  actual, _, _, moments = tf_run("lamb", spp=3, **args)
  assert_histories_close(expected, actual)
  start = initial_values()
  layer0 = "bert/encoder/layer_0/attention/self/query/kernel"
  layer1 = "bert/encoder/layer_1/intermediate/dense/kernel"
  # Step 0 (index 0) changes nothing; stage 0 (steps 1-2) moves layer 0 only.
  np.testing.assert_array_equal(actual[0][layer0], start[layer0])
  assert not np.allclose(actual[2][layer0], start[layer0])
  np.testing.assert_array_equal(actual[2][layer1], start[layer1])
  # The boundary step 3 leaves every variable where it was.
  for name in VARIABLES:
    np.testing.assert_array_equal(actual[3][name], actual[2][name])
  assert not np.allclose(actual[5][layer1], start[layer1])
  for frozen in ("bert/embeddings/word_embeddings",
                 "cls/predictions/output_bias"):
    np.testing.assert_array_equal(actual[-1][frozen], start[frozen])
    np.testing.assert_array_equal(moments[frozen], 0.0)
  for name, value in expected_m.items():
    if name in moments:
      np.testing.assert_allclose(moments[name], value, rtol=2e-5, atol=1e-7)


def test_moments_are_zero_right_after_a_stage_boundary():
  args = dict(steps=4, init_lr=0.01, total=6, warmup=0, end_rate=1.0, wd=0.01)
  _, _, _, moments = tf_run("lamb", spp=3, **args)
  # After steps 0..3 the last applied step was the boundary s=3.
  for name, value in moments.items():
    np.testing.assert_array_equal(value, 0.0, err_msg=name)


def test_layer_wise_warmup_needs_lamb():
  with tf.Graph().as_default():
    w = tf.get_variable("w", initializer=tf.constant([1.0]))
    with pytest.raises(ValueError, match="lamb"):
      optimization.create_optimizer(tf.reduce_sum(w), 0.1, 10, 0, False,
                                    optimizer="adamw",
                                    steps_per_layer=5)
    with pytest.raises(ValueError, match="optimizer"):
      optimization.create_optimizer(tf.reduce_sum(w), 0.1, 10, 0, False,
                                    optimizer="sgd")


def test_loss_gate_matches_stage_definition():
  with tf.Graph().as_default():
    step = tf.placeholder(tf.int64, [])
    gates = [layer_schedule.layer_loss_gate(step, l, 5) for l in range(3)]
    with tf.Session() as sess:
      for s in range(0, 17):
        got = sess.run(gates, {step: s})
        expected = [1.0 if 5 * l < s <= 5 * (l + 1) else 0.0
                    for l in range(3)]
        assert got == expected, (s, got)


# One or two replicas take three steps on the same global batch of 4 targets;
# prints the final variables of each run as JSON.  Run in a fresh process:
# TF 2.15 must be given two logical CPUs before it initialises.
_REPLICA_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow.compat.v1 as tf
import tf_compat
if tf_compat.IS_TF2:
  import tensorflow as tf2
  cpu = tf2.config.list_physical_devices("CPU")[0]
  tf2.config.set_logical_device_configuration(
      cpu, [tf2.config.LogicalDeviceConfiguration()] * 2)
import optimization

optimizer, names, targets = sys.argv[1], json.loads(sys.argv[2]), json.loads(
    sys.argv[3])
layer_wise = optimizer == "lamb_layer_wise"
rng = np.random.RandomState(5)
initial = {n: rng.uniform(-1, 1, size=(3, 2)).astype(np.float32)
           for n in names}
coefficients = {n: 1.0 + i for i, n in enumerate(names)}

def loss_of(batch_targets):
  # mean over examples of sum_v 0.5 * c_v * ||v - t||^2
  variables = {n: tf.get_variable(n, initializer=initial[n]) for n in names}
  per_example = tf.add_n([
      0.5 * coefficients[n] * tf.reduce_sum(
          tf.square(variables[n][None] - batch_targets[:, None, None]),
          axis=[1, 2]) for n in names])
  return tf.reduce_mean(per_example)

def train_op_for(loss):
  return optimization.create_optimizer(
      loss, 0.1, num_train_steps=8, num_warmup_steps=0, use_tpu=False,
      optimizer="adamw" if optimizer == "adamw" else "lamb",
      steps_per_layer=4 if layer_wise else None)

def run(num_replicas):
  config = tf.ConfigProto(device_count={"CPU": 2})
  with tf.Graph().as_default():
    all_targets = tf.constant(targets, tf.float32)
    if num_replicas == 1:
      global_step = tf.train.get_or_create_global_step()
      train_op = train_op_for(loss_of(all_targets))
    else:
      strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
      with strategy.scope():
        global_step = tf.train.get_or_create_global_step()
        def step_fn():
          replica = tf.distribute.get_replica_context().replica_id_in_sync_group
          half = len(targets) // num_replicas
          return train_op_for(loss_of(
              all_targets[replica * half:(replica + 1) * half]))
        run_fn = getattr(strategy, "run", None) or strategy.experimental_run_v2
        train_op = tf.group(strategy.experimental_local_results(
            run_fn(step_fn)))
    with tf.Session(config=config) as session:
      session.run(tf.global_variables_initializer())
      # Steps 5-7: the second of layer-wise warm-up's two 4-step stages,
      # where both layers train.
      session.run(tf.assign(global_step, 5))
      for _ in range(3):
        session.run(train_op)
      values = {v.op.name: session.run(v) for v in tf.global_variables()}
      return {n: values[n].tolist() for n in names}

print("RESULT=" + json.dumps([run(1), run(2)]))
"""


@pytest.mark.parametrize("optimizer", ["adamw", "lamb_layer_wise"])
def test_two_mirrored_replicas_take_the_one_device_step(optimizer):
  """Two replicas on half batches each equal one device on the whole batch,
  with the gradient clipping active (targets make the norm about 60) and
  the halves' gradients far apart (clipping each by its own norm would
  change the step)."""
  names = ["bert/encoder/layer_0/attention/self/query/kernel",
           "bert/encoder/layer_1/intermediate/dense/kernel",
           "bert/encoder/layer_1/output/FakeLayerNorm/gamma"]
  targets = [30.0, 28.0, -1.0, 0.5]
  # The one-device gradient norm at the start is far above the clip norm 1.
  start = np.random.RandomState(5).uniform(-1, 1, size=(len(names), 3, 2))
  gradient_norm = math.sqrt(sum(
      float(np.sum(((1.0 + i) * (start[i] - np.mean(targets))) ** 2))
      for i in range(len(names))))
  assert gradient_norm > 20.0
  _, output = script_helpers.run_script(
      None, ["-c", _REPLICA_SCRIPT, optimizer, json.dumps(names),
             json.dumps(targets)], timeout=300)
  line = [l for l in output.splitlines() if l.startswith("RESULT=")][0]
  one_device, two_replicas = json.loads(line[len("RESULT="):])
  moved = 0
  for name in names:
    np.testing.assert_allclose(two_replicas[name], one_device[name],
                               rtol=1e-5, atol=1e-6, err_msg=name)
    moved += not np.allclose(one_device[name], start[names.index(name)])
  assert moved == len(names)  # the steps did something
