"""LogME (You et al. 2021): how well frozen features explain a target's labels, as the
maximised log evidence of a Bayesian linear regression from the features to each class's
one-vs-rest indicator.

For features F (N, D) and a target y (N,), the model is y = F w + e with w ~ N(0, I/alpha)
and e ~ N(0, I/beta), so y ~ N(0, F F^T / alpha + I / beta). Its log density (the evidence)
is computed from one SVD of F, F = U diag(s) V^T of rank k, with sigma = s^2 and x = U^T y:

    L = D/2 log alpha + N/2 log beta - 1/2 log|A| - beta/2 |F m - y|^2 - alpha/2 |m|^2
        - N/2 log 2 pi,  A = alpha I + beta F^T F,  m = beta A^-1 F^T y,

with log|A| = sum_k log(alpha + beta sigma) + (D - k) log alpha (the null space of F
counts: the official code's fast version leaves that term out when D > k).
alpha and beta are maximised by MacKay's fixed point: gamma = sum sigma / (alpha/beta +
sigma), alpha = gamma / |m|^2, beta = (N - gamma) / |F m - y|^2, iterated for every class at
once until alpha/beta changes by less than ``tol`` relatively (the official code stops at
1e-3 or after 11 steps). The score is the mean over classes of the maximum divided by N.
Everything is float64."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

_FLOOR = 1e-12


@dataclass(frozen=True)
class Spectrum:
    """What the evidence needs of F: the left singular vectors ``u`` (N, k) and the squared
    singular values ``sigma`` (k,) of its rank-k part, and its shape."""

    u: torch.Tensor
    sigma: torch.Tensor
    n: int
    d: int


@dataclass(frozen=True)
class LogMEResult:
    """The score and, per class, the maximised evidence / N and the alpha, beta reaching it."""

    score: float
    evidence: torch.Tensor
    alpha: torch.Tensor
    beta: torch.Tensor
    iterations: int


def spectrum(features: torch.Tensor) -> Spectrum:
    """The SVD of ``features`` (N, D) in float64, singular values below the rank tolerance
    of ``torch.linalg.matrix_rank`` dropped."""
    f = features.double()
    u, s, _ = torch.linalg.svd(f, full_matrices=False)
    tol = s.max().clamp(min=_FLOOR) * max(f.shape) * torch.finfo(f.dtype).eps
    keep = s > tol
    return Spectrum(u[:, keep], s[keep] ** 2, f.shape[0], f.shape[1])


def log_evidence(
    spec: Spectrum, y: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor
) -> torch.Tensor:
    """log p(y | alpha, beta) of each column of ``y`` (N, C) (or of ``y`` (N,)), with its
    own alpha and beta (scalars or (C,)): the closed form of the module docstring."""
    y = y.double().reshape(spec.n, -1)
    alpha = torch.as_tensor(alpha, dtype=torch.float64, device=y.device)
    beta = torch.as_tensor(beta, dtype=torch.float64, device=y.device)
    x = spec.u.T @ y
    m2, res2 = _fit_terms(spec, x, (y**2).sum(0) - (x**2).sum(0), alpha / beta)
    sigma = spec.sigma[:, None]
    k = sigma.shape[0]
    log_det = torch.log(alpha + beta * sigma).sum(0) + (spec.d - k) * torch.log(alpha)
    return (
        spec.d / 2 * torch.log(alpha)
        + spec.n / 2 * torch.log(beta)
        - log_det / 2
        - beta / 2 * res2
        - alpha / 2 * m2
        - spec.n / 2 * math.log(2 * math.pi)
    )


def maximise_evidence(
    spec: Spectrum, y: torch.Tensor, *, tol: float = 1e-6, max_iter: int = 200
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(alpha, beta, iterations) at the fixed point of MacKay's updates for each column of
    ``y`` (N, C), started from alpha = beta = 1."""
    y = y.double().reshape(spec.n, -1)
    x = spec.u.T @ y
    residual = ((y**2).sum(0) - (x**2).sum(0)).clamp(min=0)
    alpha = torch.ones(y.shape[1], dtype=torch.float64, device=y.device)
    beta = torch.ones_like(alpha)
    sigma = spec.sigma[:, None]
    for step in range(1, max_iter + 1):
        t = alpha / beta
        gamma = (sigma / (sigma + t)).sum(0)
        m2, res2 = _fit_terms(spec, x, residual, t)
        alpha = gamma.clamp(min=_FLOOR) / m2.clamp(min=_FLOOR)
        beta = (spec.n - gamma).clamp(min=_FLOOR) / res2.clamp(min=_FLOOR)
        if bool(((alpha / beta - t).abs() <= tol * t).all()):
            return alpha, beta, step
    return alpha, beta, max_iter


def logme(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> LogMEResult:
    """LogME of ``features`` (N, D) for integer ``labels`` (N,) in [0, num_classes): the
    mean over classes of the maximised evidence / N of the one-vs-rest indicator."""
    spec = spectrum(features)
    targets = torch.nn.functional.one_hot(labels.long(), num_classes).to(spec.u)
    alpha, beta, iterations = maximise_evidence(spec, targets)
    evidence = log_evidence(spec, targets, alpha, beta) / spec.n
    return LogMEResult(float(evidence.mean()), evidence, alpha, beta, iterations)


def _fit_terms(
    spec: Spectrum, x: torch.Tensor, residual: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(|m|^2, |F m - y|^2) at ratio t = alpha / beta, from x = U^T y and the part of |y|^2
    outside the span of U (``residual``)."""
    sigma = spec.sigma[:, None]
    m2 = (sigma * x**2 / (t + sigma) ** 2).sum(0)
    res2 = (x**2 * (t / (t + sigma)) ** 2).sum(0) + residual
    return m2, res2
