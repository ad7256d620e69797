"""LogME against its closed form: the evidence is the Gaussian log density of the targets,
the fixed point maximises it, and informative features score higher than random ones."""

import pytest
import torch

from probes.logme import log_evidence, logme, maximise_evidence, spectrum


def _features(n: int, d: int, rank: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(n * 100 + d)
    left = torch.randn(n, rank, generator=g, dtype=torch.float64)
    return left @ torch.randn(rank, d, generator=g, dtype=torch.float64)


@pytest.mark.parametrize(
    "n, d, rank",
    [(12, 5, 5), (6, 10, 6), (10, 8, 3)],
    ids=["more-examples", "more-features", "rank-deficient"],
)
def test_the_evidence_is_the_log_density_of_the_marginal_gaussian(n, d, rank):
    f = _features(n, d, rank)
    y = torch.randn(n, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    alpha = torch.tensor([0.7, 3.0], dtype=torch.float64)
    beta = torch.tensor([2.3, 0.4], dtype=torch.float64)
    ours = log_evidence(spectrum(f), y, alpha, beta)
    for c in range(2):
        cov = f @ f.T / alpha[c] + torch.eye(n, dtype=torch.float64) / beta[c]
        gaussian = torch.distributions.MultivariateNormal(torch.zeros(n, dtype=torch.float64), cov)
        torch.testing.assert_close(ours[c], gaussian.log_prob(y[:, c]), rtol=1e-10, atol=1e-10)


def _informative(n: int = 60, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % classes
    onehot = torch.nn.functional.one_hot(labels, classes).double()
    noise = torch.randn(n, 6, generator=g, dtype=torch.float64)
    return torch.cat([onehot, 0.2 * noise[:, :3]], 1) + 0.3 * noise[:, 3:].repeat(1, 2), labels


def test_the_fixed_point_is_a_maximum_of_the_evidence():
    f, labels = _informative()
    spec = spectrum(f)
    y = torch.nn.functional.one_hot(labels, 3).double()
    alpha, beta, iterations = maximise_evidence(spec, y)
    assert iterations < 200
    best = log_evidence(spec, y, alpha, beta)
    for da in (0.8, 1.0, 1.25):
        for db in (0.8, 1.0, 1.25):
            if (da, db) != (1.0, 1.0):
                assert torch.all(log_evidence(spec, y, alpha * da, beta * db) < best)
    # the maximum is also no lower than at any point of a coarse grid
    grid = torch.logspace(-3, 3, 25, dtype=torch.float64)
    for a in grid:
        for b in grid:
            assert torch.all(log_evidence(spec, y, a, b) <= best + 1e-9)


def test_features_that_determine_the_labels_score_higher_than_random_ones():
    f, labels = _informative()
    random = torch.randn(f.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    informative, noise = logme(f, labels, 3), logme(random, labels, 3)
    assert informative.score > noise.score + 0.1
    assert informative.evidence.shape == (3,)
    assert torch.all(informative.evidence > noise.evidence)
