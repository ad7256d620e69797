"""Measuring on small targets without a held-out split: stratified K-fold cross-validation of
a classifier on frozen features, and the standard errors that say which differences the data
can resolve. A target of 10 images per class leaves a validation split of one image per
class, whose accuracies cannot tell layer groups apart; every training example predicted
once, by a classifier that never saw it, uses all of them. The errors are those of a mean
over examples (accuracy, and the paired difference of two accuracies on the same examples)
and the delete-one-fold jackknife (for statistics that are not means, such as LogME or a
BatchNorm distance)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from finetune.errors import ConfigError
from probes.statistics import spread

DEFAULT_FOLDS = 10

# (training features, their labels, query features) -> predicted class of each query row
Classifier = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def fold_count(labels: np.ndarray, requested: int) -> int:
    """The folds a stratified split of ``labels`` can have: ``requested``, at most the size
    of the smallest class (each fold holds every class), at least 2."""
    if requested < 2:
        raise ConfigError(f"--folds must be at least 2, got {requested}")
    smallest = int(np.bincount(labels)[np.unique(labels)].min()) if len(labels) else 0
    if smallest < 2:
        raise ConfigError(
            f"cross-validation needs 2 training examples of every class; the smallest class "
            f"has {smallest}"
        )
    return min(requested, smallest)


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold (0..folds-1) of every example: each class's examples in a seeded order dealt
    round-robin, continuing where the previous class stopped, so every fold holds each
    class's share and the folds differ in size by at most one example."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    dealt = 0
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        fold[members] = (dealt + np.arange(len(members))) % folds
        dealt += len(members)
    return fold


def out_of_fold_correct(
    features: torch.Tensor, labels: torch.Tensor, fold: np.ndarray, classify: Classifier
) -> np.ndarray:
    """Whether each example is classified correctly by ``classify`` trained on the other
    folds (bool, one per example)."""
    correct = np.zeros(len(fold), dtype=bool)
    fold_t = torch.as_tensor(fold, device=features.device)
    for k in range(int(fold.max()) + 1):
        held = fold_t == k
        predicted = classify(features[~held], labels[~held], features[held])
        correct[fold == k] = (predicted.cpu() == labels[held].cpu()).numpy()
    return correct


def mean_se(values: np.ndarray) -> float:
    """Standard error of the mean of ``values`` (``probes.statistics.spread``); 0 for one
    value, where a fold's rule needs a number rather than NaN."""
    s = spread(values)
    return 0.0 if s.n < 2 else s.se


def paired_se(a: np.ndarray, b: np.ndarray) -> float:
    """Standard error of mean(a) - mean(b) for two measurements of the same examples."""
    return mean_se(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))


def jackknife_se(leave_one_out: np.ndarray) -> np.ndarray:
    """The delete-one-group jackknife standard error from the K estimates each computed
    without one group (axis 0): sqrt((K - 1) / K * sum_k (e_k - mean e)^2)."""
    estimates = np.asarray(leave_one_out, dtype=np.float64)
    k = estimates.shape[0]
    spread = ((estimates - estimates.mean(0)) ** 2).sum(0)
    return np.sqrt((k - 1) / k * spread)
