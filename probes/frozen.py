"""Classifiers on frozen features, the cheap baselines of transferability (Kornblith et al.
2019): a k-nearest-neighbour vote and a multinomial logistic regression trained on the
training examples' features, on held-out examples or out of fold (every fold's probe fitted
at once). Both are deterministic: no random initialisation, no sampling, ties broken by a
fixed rule."""

from __future__ import annotations

import torch

from finetune.errors import ConfigError

_CHUNK = 1024


@torch.no_grad()
def knn_predict(
    train: torch.Tensor, labels: torch.Tensor, query: torch.Tensor, k: int, num_classes: int
) -> torch.Tensor:
    """The class of each ``query`` row by a majority vote of its ``k`` most cosine-similar
    ``train`` rows (k is capped at the number of training rows). Neighbours tied in
    similarity are taken in training order; a tied vote goes to the tied class with the most
    similar neighbour, then to the lowest class index."""
    if k < 1:
        raise ConfigError(f"k must be at least 1, got {k}")
    k = min(k, train.shape[0])
    keys = torch.nn.functional.normalize(train.float(), dim=1)
    predictions = []
    for rows in query.float().split(_CHUNK):
        similarity = torch.nn.functional.normalize(rows, dim=1) @ keys.T
        top, index = similarity.sort(dim=1, descending=True, stable=True)
        top, voters = top[:, :k], labels[index[:, :k]].long()
        member = torch.nn.functional.one_hot(voters, num_classes).bool()  # (rows, k, C)
        votes = member.sum(1)
        best = torch.where(member, top[:, :, None], -torch.inf).amax(1)
        tied = votes == votes.max(dim=1, keepdim=True).values
        predictions.append(torch.where(tied, best, -torch.inf).argmax(dim=1))
    return torch.cat(predictions)


def fit_linear_probes(
    features: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    num_classes: int,
    *,
    l2: float = 1e-3,
    max_iter: int = 100,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (K, C, D), bias (K, C)) of K multinomial logistic regressions on ``features``
    (K, N, D) as given (standardise them first), problem k minimising the cross-entropy
    averaged with ``weights[k]`` (K, N; each row sums to 1, zero leaves an example out) +
    ``l2``/2 |weight_k|^2. One full-batch L-BFGS (strong Wolfe line search) from zero, in
    float32, minimises their sum: the problems share no variable, so its minimum is each
    one's own, and K folds of a cross-validation cost one Python loop, not K."""
    x, y = features.float(), labels.long().to(features.device)
    k, n, d = x.shape
    weight = torch.zeros(k, num_classes, d, device=x.device, requires_grad=True)
    bias = torch.zeros(k, num_classes, device=x.device, requires_grad=True)
    share = weights.float().to(x.device)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-6,
        tolerance_change=1e-9,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        logits = torch.einsum("knd,kcd->knc", x, weight) + bias[:, None]
        ce = torch.nn.functional.cross_entropy(
            logits.reshape(k * n, num_classes), y.repeat(k), reduction="none"
        )
        value = (ce.reshape(k, n) * share).sum() + l2 / 2 * (weight**2).sum()
        value.backward()
        return value

    with torch.enable_grad():
        optimizer.step(loss)
    return weight.detach(), bias.detach()


def fit_linear_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    *,
    l2: float = 1e-3,
    max_iter: int = 100,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (C, D), bias (C,)) of the multinomial logistic regression minimising the mean
    cross-entropy + ``l2``/2 |weight|^2 on ``features`` as given: ``fit_linear_probes``
    with one problem."""
    n = features.shape[0]
    share = torch.full((1, n), 1.0 / n, device=features.device)
    weight, bias = fit_linear_probes(
        features[None], labels, share, num_classes, l2=l2, max_iter=max_iter
    )
    return weight[0], bias[0]


def linear_probe_accuracy(
    train: torch.Tensor,
    train_labels: torch.Tensor,
    query: torch.Tensor,
    query_labels: torch.Tensor,
    num_classes: int,
    *,
    l2: float = 1e-3,
    max_iter: int = 100,
) -> float:
    """Accuracy on ``query`` of ``fit_linear_probe`` trained on ``train``, both standardised
    with the training features' mean and standard deviation (constant features left at 0)."""
    train = train.float()
    mean, std = train.mean(0), train.std(0, correction=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    weight, bias = fit_linear_probe(
        (train - mean) / std, train_labels, num_classes, l2=l2, max_iter=max_iter
    )
    logits = ((query.float() - mean) / std) @ weight.T + bias
    return float((logits.argmax(1) == query_labels.to(logits.device)).float().mean())


def linear_probe_out_of_fold(
    features: torch.Tensor,
    labels: torch.Tensor,
    fold: torch.Tensor,
    num_classes: int,
    *,
    l2: float = 1e-3,
    max_iter: int = 100,
) -> torch.Tensor:
    """The class of every row of ``features`` (N, D) predicted by the linear probe trained
    on the other folds (``fold``: each row's fold, 0..K-1), as ``linear_probe_accuracy``
    would train it on them (standardised with their mean and standard deviation); the K
    probes are fitted together (``fit_linear_probes``)."""
    x = features.float()
    fold = fold.to(x.device)
    train = torch.stack([fold != k for k in range(int(fold.max()) + 1)]).float()  # (K, N)
    share = train / train.sum(1, keepdim=True)
    mean = share @ x
    std = (share @ x**2 - mean**2).clamp(min=0).sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    z = (x[None] - mean[:, None]) / std[:, None]  # (K, N, D)
    weight, bias = fit_linear_probes(z, labels, share, num_classes, l2=l2, max_iter=max_iter)
    logits = torch.einsum("knd,kcd->knc", z, weight) + bias[:, None]
    return logits[fold, torch.arange(len(fold), device=x.device)].argmax(1)
