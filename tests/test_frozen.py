"""Classifiers on frozen features: the kNN vote against hand-worked cases (tie rules
included) and the linear probe against its optimality condition."""

import pytest
import torch

from finetune.errors import ConfigError
from probes.frozen import fit_linear_probe, knn_predict, linear_probe_accuracy

TRAIN = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]])
LABELS = torch.tensor([0, 1, 1, 2])


def test_knn_votes_over_the_k_most_cosine_similar_training_rows():
    # similarities of (1, 0.2) to the rows: 0.981, 0.196, 0.832, -0.981 (rows 0, 2, 1 nearest);
    # of (-2, 0.1): -0.999, 0.050, -0.672, 0.999 (rows 3, 1, 2 nearest)
    query = torch.tensor([[1.0, 0.2], [5.0, 1.0], [-2.0, 0.1]])
    assert knn_predict(TRAIN, LABELS, query, 1, 3).tolist() == [0, 0, 2]
    assert knn_predict(TRAIN, LABELS, query, 3, 3).tolist() == [1, 1, 1]
    # k beyond the training set is every row: class 1 has two votes of four
    assert knn_predict(TRAIN, LABELS, query, 50, 3).tolist() == [1, 1, 1]


def test_knn_ties_go_to_the_closest_class_then_the_lowest_index():
    query = torch.tensor([[1.0, 0.2]])
    # k=2: one vote each for 0 (similarity 0.981) and 1 (0.832): the closer class wins
    assert knn_predict(TRAIN, LABELS, query, 2, 3).tolist() == [0]
    # equal votes and equal similarity: the lower class index
    train, labels = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([2, 1])
    assert knn_predict(train, labels, torch.tensor([[1.0, 1.0]]), 2, 3).tolist() == [1]
    # neighbours tied in similarity are taken in training order
    train, labels = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]]), torch.tensor([2, 1, 0])
    assert knn_predict(train, labels, torch.tensor([[1.0, 0.0]]), 1, 3).tolist() == [2]
    with pytest.raises(ConfigError):
        knn_predict(train, labels, query, 0, 3)


def test_the_linear_probe_reaches_the_stationary_point_of_its_objective():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 5, generator=g)
    y = torch.randint(0, 3, (60,), generator=g)
    l2 = 0.01
    weight, bias = fit_linear_probe(x, y, 3, l2=l2)
    # gradient of mean cross-entropy + l2/2 |W|^2: X^T (P - Y) / n + l2 W, and mean(P - Y)
    residual = torch.softmax(x @ weight.T + bias, 1) - torch.nn.functional.one_hot(y, 3)
    assert (x.T @ residual / 60 + l2 * weight.T).abs().max() < 1e-4
    assert residual.mean(0).abs().max() < 1e-4


def test_the_linear_probe_separates_separable_classes_whatever_the_feature_scales():
    g = torch.Generator().manual_seed(1)
    centres = torch.tensor([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]])
    labels = torch.arange(90) % 3
    points = centres[labels] + 0.5 * torch.randn(90, 3, generator=g)
    train, query = points[:60], points[60:]
    assert linear_probe_accuracy(train, labels[:60], query, labels[60:], 3) == 1.0
    scale, shift = torch.tensor([1e-3, 1.0, 1e3]), torch.tensor([5.0, -7.0, 100.0])
    rescaled = linear_probe_accuracy(
        train * scale + shift, labels[:60], query * scale + shift, labels[60:], 3
    )
    assert rescaled == 1.0
