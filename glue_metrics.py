"""GLUE evaluation metrics, computed with numpy.

Each task is scored the way the GLUE leaderboard reports it: accuracy, F1 of
the positive class (MRPC, QQP), Matthews correlation (CoLA), and Pearson and
Spearman correlation (STS-B).  The formulas are written out here so that the
project does not depend on scipy or scikit-learn.
"""

import collections

import numpy as np

# Metrics GLUE reports per task, keyed by the lower-case task name used by
# run_classifier's --task_name.
TASK_METRICS = {
    "cola": ("matthews_corr", "accuracy"),
    "sst-2": ("accuracy",),
    "mrpc": ("f1", "accuracy"),
    "sts-b": ("pearson", "spearman"),
    "qqp": ("f1", "accuracy"),
    "mnli": ("accuracy",),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
    "wnli": ("accuracy",),
}


def _as_vectors(predictions, labels):
  """Both arguments as 1-D numpy arrays of the same length."""
  predictions = np.asarray(predictions).reshape(-1)
  labels = np.asarray(labels).reshape(-1)
  if predictions.shape != labels.shape:
    raise ValueError("predictions and labels differ in length: %d vs %d" %
                     (predictions.shape[0], labels.shape[0]))
  if predictions.shape[0] == 0:
    raise ValueError("cannot compute a metric over zero examples")
  return predictions, labels


def accuracy(predictions, labels):
  """Fraction of predictions equal to the labels."""
  predictions, labels = _as_vectors(predictions, labels)
  return float(np.mean(predictions == labels))


def _binary_confusion(predictions, labels):
  """(true_pos, false_pos, false_neg, true_neg) for 0/1 predictions."""
  predictions, labels = _as_vectors(predictions, labels)
  predicted_pos = predictions == 1
  actual_pos = labels == 1
  tp = float(np.sum(predicted_pos & actual_pos))
  fp = float(np.sum(predicted_pos & ~actual_pos))
  fn = float(np.sum(~predicted_pos & actual_pos))
  tn = float(np.sum(~predicted_pos & ~actual_pos))
  return tp, fp, fn, tn


def f1_score(predictions, labels):
  """F1 of the positive class (label 1); 0.0 when there are no true positives."""
  tp, fp, fn, _ = _binary_confusion(predictions, labels)
  if tp == 0.0:
    return 0.0
  return 2.0 * tp / (2.0 * tp + fp + fn)


def matthews_corrcoef(predictions, labels):
  """Matthews correlation of binary 0/1 predictions.

  Returns 0.0 when a row or column of the confusion matrix is empty (the
  convention of scikit-learn, which the GLUE baselines used).
  """
  tp, fp, fn, tn = _binary_confusion(predictions, labels)
  denominator = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
  if denominator == 0.0:
    return 0.0
  return (tp * tn - fp * fn) / np.sqrt(denominator)


def pearson_corr(predictions, labels):
  """Pearson correlation; NaN when either vector is constant."""
  x, y = _as_vectors(predictions, labels)
  x = x.astype(np.float64) - np.mean(x, dtype=np.float64)
  y = y.astype(np.float64) - np.mean(y, dtype=np.float64)
  denominator = np.sqrt(np.sum(x * x) * np.sum(y * y))
  if denominator == 0.0:
    return float("nan")
  return float(np.sum(x * y) / denominator)


def average_ranks(values):
  """1-based ranks of `values`; tied values share the mean of their ranks."""
  values = np.asarray(values).reshape(-1)
  order = np.argsort(values, kind="mergesort")
  sorted_values = values[order]
  ranks = np.empty(values.shape[0], dtype=np.float64)
  start = 0
  while start < len(order):
    end = start
    while end + 1 < len(order) and sorted_values[end + 1] == sorted_values[start]:
      end += 1
    # Positions start..end (0-based) hold ranks start+1..end+1.
    ranks[order[start:end + 1]] = (start + end) / 2.0 + 1.0
    start = end + 1
  return ranks


def spearman_corr(predictions, labels):
  """Spearman correlation: Pearson correlation of the tie-averaged ranks."""
  predictions, labels = _as_vectors(predictions, labels)
  return pearson_corr(average_ranks(predictions), average_ranks(labels))


_METRIC_FUNCTIONS = {
    "accuracy": accuracy,
    "f1": f1_score,
    "matthews_corr": matthews_corrcoef,
    "pearson": pearson_corr,
    "spearman": spearman_corr,
}


def compute_metrics(task_name, predictions, labels):
  """GLUE metrics of one task.

  Args:
    task_name: lower-case task name, a key of TASK_METRICS.
    predictions: [num_examples] predicted class ids, or scores for STS-B.
    labels: [num_examples] gold class ids, or gold scores for STS-B.

  Returns:
    OrderedDict metric name -> float, in the order of TASK_METRICS.
  """
  if task_name not in TASK_METRICS:
    raise ValueError("no GLUE metrics for task '%s'; known tasks: %s" %
                     (task_name, ", ".join(sorted(TASK_METRICS))))
  results = collections.OrderedDict()
  for name in TASK_METRICS[task_name]:
    results[name] = float(_METRIC_FUNCTIONS[name](predictions, labels))
  return results
