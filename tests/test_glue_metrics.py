"""GLUE metrics against values worked out by hand."""

import math

import numpy as np
import pytest

import glue_metrics


def test_accuracy_counts_matches():
  assert glue_metrics.accuracy([0, 1, 1, 2], [0, 1, 0, 2]) == 0.75


def test_f1_and_matthews_on_a_hand_made_confusion_matrix():
  # labels/predictions chosen so that TP=3, FP=1, FN=2, TN=4.
  labels = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
  predictions = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
  # F1 = 2TP / (2TP + FP + FN) = 6 / 9.
  assert glue_metrics.f1_score(predictions, labels) == pytest.approx(6.0 / 9.0)
  # MCC = (TP*TN - FP*FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))
  #     = (12 - 2) / sqrt(4 * 5 * 5 * 6) = 10 / sqrt(600).
  assert glue_metrics.matthews_corrcoef(predictions, labels) == pytest.approx(
      10.0 / math.sqrt(600.0))
  assert glue_metrics.accuracy(predictions, labels) == pytest.approx(0.7)


def test_matthews_is_minus_one_for_inverted_and_zero_for_constant():
  labels = [0, 1, 0, 1]
  assert glue_metrics.matthews_corrcoef([1, 0, 1, 0], labels) == pytest.approx(-1.0)
  assert glue_metrics.matthews_corrcoef([1, 1, 1, 1], labels) == 0.0


def test_f1_without_true_positives_is_zero():
  assert glue_metrics.f1_score([0, 0, 0], [1, 0, 1]) == 0.0


def test_pearson_on_small_vectors():
  x = [1.0, 2.0, 3.0, 4.0]
  y = [2.0, 1.0, 4.0, 3.0]
  # Centred: x = (-1.5, -0.5, 0.5, 1.5), y = (-0.5, -1.5, 1.5, 0.5);
  # sum xy = 0.75 + 0.75 + 0.75 + 0.75 = 3; sum x^2 = sum y^2 = 5.  r = 0.6.
  assert glue_metrics.pearson_corr(x, y) == pytest.approx(0.6)
  assert glue_metrics.pearson_corr(x, [-v for v in x]) == pytest.approx(-1.0)
  assert math.isnan(glue_metrics.pearson_corr(x, [1.0, 1.0, 1.0, 1.0]))


def test_average_ranks_share_ties():
  np.testing.assert_allclose(glue_metrics.average_ranks([10, 20, 20, 5, 20]),
                             [2.0, 4.0, 4.0, 1.0, 4.0])


def test_spearman_with_ties_by_hand():
  x = [1.0, 2.0, 2.0, 3.0]   # ranks 1, 2.5, 2.5, 4
  y = [1.0, 3.0, 2.0, 4.0]   # ranks 1, 3, 2, 4
  # Centred ranks: x = (-1.5, 0, 0, 1.5), y = (-1.5, 0.5, -0.5, 1.5).
  # sum xy = 2.25 + 2.25 = 4.5; sum x^2 = 4.5; sum y^2 = 5.  rho = 4.5 / sqrt(22.5).
  assert glue_metrics.spearman_corr(x, y) == pytest.approx(4.5 / math.sqrt(22.5))
  # A monotone but non-linear relation has Spearman 1 and Pearson below 1.
  z = [1.0, 2.0, 3.0, 4.0, 5.0]
  assert glue_metrics.spearman_corr(z, [v ** 3 for v in z]) == pytest.approx(1.0)
  assert glue_metrics.pearson_corr(z, [v ** 3 for v in z]) < 0.99


def test_compute_metrics_per_task():
  labels = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
  predictions = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
  mrpc = glue_metrics.compute_metrics("mrpc", predictions, labels)
  assert list(mrpc) == ["f1", "accuracy"]
  assert mrpc["f1"] == pytest.approx(6.0 / 9.0)
  assert mrpc["accuracy"] == pytest.approx(0.7)
  cola = glue_metrics.compute_metrics("cola", predictions, labels)
  assert cola["matthews_corr"] == pytest.approx(10.0 / math.sqrt(600.0))
  stsb = glue_metrics.compute_metrics("sts-b", [1.0, 2.0, 3.0, 4.0],
                                      [2.0, 1.0, 4.0, 3.0])
  assert list(stsb) == ["pearson", "spearman"]
  assert stsb["pearson"] == pytest.approx(0.6)
  assert stsb["spearman"] == pytest.approx(0.6)   # no ties: ranks are the values
  assert list(glue_metrics.compute_metrics("mnli", [0, 2], [0, 1])) == ["accuracy"]


def test_bad_input_is_reported():
  with pytest.raises(ValueError, match="differ in length"):
    glue_metrics.accuracy([0, 1], [0])
  with pytest.raises(ValueError, match="known tasks"):
    glue_metrics.compute_metrics("xnli", [0], [0])
