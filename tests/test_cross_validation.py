"""Cross-validation and standard errors of the fit measures: folds against their definition,
the batched linear probes against one probe per fold, the jackknife against the closed form
of a mean's standard error."""

import math

import numpy as np
import pytest
import torch

from finetune.errors import ConfigError
from probes.cross_validation import (
    fold_count,
    jackknife_se,
    mean_se,
    out_of_fold_correct,
    paired_se,
    stratified_folds,
)
from probes.frozen import knn_predict, linear_probe_accuracy, linear_probe_out_of_fold


def test_stratified_folds_hold_every_class_and_differ_in_size_by_at_most_one():
    labels = np.repeat(np.arange(4), [7, 9, 10, 12])
    fold = stratified_folds(labels, 5, seed=3)
    sizes = np.bincount(fold, minlength=5)
    assert sizes.sum() == 38 and sizes.max() - sizes.min() <= 1
    for label in range(4):
        per_fold = np.bincount(fold[labels == label], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1  # each class spread evenly
    assert not np.array_equal(fold, stratified_folds(labels, 5, seed=4))
    assert np.array_equal(fold, stratified_folds(labels, 5, seed=3))


def test_the_folds_are_capped_by_the_smallest_class():
    labels = np.repeat(np.arange(3), [9, 10, 30])
    assert fold_count(labels, 10) == 9 and fold_count(labels, 5) == 5
    with pytest.raises(ConfigError, match="--folds"):
        fold_count(labels, 1)
    with pytest.raises(ConfigError, match="smallest class has 1"):
        fold_count(np.array([0, 0, 1]), 10)


def test_the_jackknife_of_a_mean_is_the_standard_error_of_the_mean():
    # Leave-one-out means x_(i) = (n xbar - x_i) / (n - 1): the jackknife reproduces
    # sd / sqrt(n) exactly (Efron & Tibshirani 1993, 11.5).
    x = np.random.default_rng(0).normal(size=17)
    leave_one_out = (x.sum() - x) / (x.size - 1)
    assert jackknife_se(leave_one_out) == pytest.approx(x.std(ddof=1) / math.sqrt(x.size))
    assert mean_se(x) == pytest.approx(x.std(ddof=1) / math.sqrt(x.size))


def test_the_paired_error_by_hand():
    a = np.array([1, 1, 0, 1, 0, 1], dtype=bool)
    b = np.array([1, 0, 0, 1, 1, 1], dtype=bool)
    # differences 0, 1, 0, 0, -1, 0: mean 0, sd sqrt(2 / 5), error sqrt(2 / 5) / sqrt(6)
    assert paired_se(a, b) == pytest.approx(math.sqrt(2 / 5) / math.sqrt(6))
    assert paired_se(a, a) == 0.0


def test_out_of_fold_predictions_never_see_their_own_example():
    # 1-NN on features where every example's nearest other example is of another class:
    # predicting an example with itself in the training set would score 1, without it 0.
    features = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = torch.tensor([0, 1, 0, 1])
    fold = np.array([0, 1, 0, 1])

    def one_nn(train, y, query):
        return knn_predict(train, y, query, 1, 2)

    assert not out_of_fold_correct(features, labels, fold, one_nn).any()


def test_the_probes_fitted_together_predict_as_one_probe_per_fold():
    g = torch.Generator().manual_seed(2)
    labels = torch.arange(60) % 3
    centres = torch.tensor([[2.0, 0.0, 0.0, 1.0], [0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 2.0, 1.0]])
    features = centres[labels] * torch.tensor([1.0, 10.0, 0.1, 1.0]) + torch.randn(
        60, 4, generator=g
    )
    fold = torch.as_tensor(stratified_folds(labels.numpy(), 4, seed=0))
    predicted = linear_probe_out_of_fold(features, labels, fold, 3)
    for k in range(4):
        held = fold == k
        # one probe on the other folds, scored on fold k, as linear_probe_accuracy does it
        train, query = features[~held], features[held]
        alone = linear_probe_accuracy(train, labels[~held], query, labels[held], 3)
        together = float((predicted[held] == labels[held]).float().mean())
        assert together == pytest.approx(alone)
    assert 0.5 < float((predicted == labels).float().mean()) < 1.0  # not trivially separable
