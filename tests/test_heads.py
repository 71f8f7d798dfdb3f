"""Tests for heads.py's losses, against numpy written here."""

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

import heads


def _log_softmax(logits):
  logits = np.asarray(logits, dtype=np.float64)
  return logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))


def _run(tensor):
  with tf.Session() as session:
    return float(session.run(tensor))


def test_classifier_loss_is_mean_cross_entropy_or_squared_error():
  logits = [[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]]
  with tf.Graph().as_default():
    cross_entropy = _run(heads.classifier_loss(tf.constant(logits),
                                               tf.constant([0, 2]), 3))
    squared_error = _run(heads.classifier_loss(
        tf.constant([[1.5], [3.0]]), tf.constant([2.0, 2.0]), 1))
  log_probs = _log_softmax(logits)
  assert cross_entropy == pytest.approx(
      -(log_probs[0, 0] + log_probs[1, 2]) / 2, rel=1e-5)
  assert squared_error == pytest.approx(
      ((1.5 - 2.0) ** 2 + (3.0 - 2.0) ** 2) / 2, rel=1e-6)


def test_span_loss_is_mean_cross_entropy_over_positions():
  rng = np.random.RandomState(0)
  logits = rng.randn(3, 7).astype(np.float32)
  positions = [0, 6, 3]
  with tf.Graph().as_default():
    loss = _run(heads.span_loss(tf.constant(logits), tf.constant(positions)))
  log_probs = _log_softmax(logits)
  assert loss == pytest.approx(
      -np.mean([log_probs[i, p] for i, p in enumerate(positions)]), rel=1e-5)
