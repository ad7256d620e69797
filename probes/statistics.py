"""The statistics every measurement and verdict reads its errors from: the mean with its
sample standard deviation and standard error over seeds, Student's one-sided t test of
paired differences and Welch's of two groups, the delete-one-group jackknife of a statistic
of additive parts (batches of examples), and the rank correlation with a bootstrap interval
over pairs and a permutation p-value. One home, so that a table, a rule and a verdict
compute an error the same way."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Spread:
    """Mean, sample standard deviation (ddof 1; NaN for one value) and standard error
    (sd / sqrt(n)) of ``n`` values."""

    mean: float
    sd: float
    se: float
    n: int


def spread(values: Sequence[float] | np.ndarray) -> Spread:
    """The mean, sd and SE of ``values`` (NaNs left out)."""
    data = np.asarray(values, dtype=np.float64).ravel()
    data = data[~np.isnan(data)]
    n = len(data)
    if n == 0:
        return Spread(math.nan, math.nan, math.nan, 0)
    mean = float(data.mean())
    sd = float(data.std(ddof=1)) if n > 1 else math.nan
    return Spread(mean, sd, sd / math.sqrt(n) if n > 1 else math.nan, n)


@dataclass(frozen=True)
class PairedT:
    """Student's one-sided t test that paired differences have a mean above zero: their
    mean, sd and SE over ``n`` pairs, t = mean / SE, and ``bar``, the critical t at
    ``alpha`` for n - 1 degrees of freedom (NaN with fewer than two pairs)."""

    mean: float
    sd: float
    se: float
    n: int
    t: float
    bar: float

    @property
    def beyond(self) -> bool:
        """Whether the mean is above zero beyond its noise (t above the bar)."""
        return bool(self.t > self.bar)


def paired_t(differences: Sequence[float] | np.ndarray, alpha: float = 0.05) -> PairedT:
    """The one-sided t test of ``differences`` (one per seed, paired by seed) at ``alpha``."""
    d = spread(differences)
    if d.n < 2:
        return PairedT(d.mean, d.sd, d.se, d.n, math.nan, math.nan)
    t = d.mean / d.se if d.se > 0 else math.copysign(math.inf, d.mean)
    return PairedT(d.mean, d.sd, d.se, d.n, t, _t_quantile(1 - alpha, d.n - 1))


@dataclass(frozen=True)
class WelchT:
    """Welch's one-sided t test that group a's mean is above group b's: the difference, its
    standard error, t, Welch's degrees of freedom and ``bar``, the critical t at
    ``alpha``."""

    difference: float
    se: float
    t: float
    df: float
    bar: float

    @property
    def beyond(self) -> bool:
        """Whether a's mean is above b's beyond the noise (t above the bar)."""
        return bool(self.t > self.bar)


def welch_t(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    units: tuple[int, int] | None = None,
    alpha: float = 0.05,
) -> WelchT:
    """Welch's one-sided test of mean(a) > mean(b) at ``alpha``. ``units`` are the
    independent units behind each group's values when fewer than the values (runs behind
    pairs of runs: each group's standard error is its sd over the root of its units);
    default: the values' counts."""
    sa, sb = spread(a), spread(b)
    na, nb = units if units is not None else (sa.n, sb.n)
    va, vb = sa.sd**2 / na, sb.sd**2 / nb
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1)) if se > 0 else math.inf
    difference = sa.mean - sb.mean
    t = difference / se if se > 0 else math.copysign(math.inf, difference)
    return WelchT(difference, se, t, df, _t_quantile(1 - alpha, df))


def mean_and_spread(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample standard deviation over the last axis (seeds), NaNs ignored; the
    spread is NaN where a cell has one value."""
    counts = np.sum(~np.isnan(values), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(values, axis=-1) / counts
        squares = np.nansum((values - mean[..., None]) ** 2, axis=-1)
        spread = np.where(counts > 1, np.sqrt(squares / np.maximum(counts - 1, 1)), np.nan)
    return mean, spread


def seed_sd(values: np.ndarray) -> np.ndarray:
    """Sample standard deviation over the last axis (seeds); 0 with a single seed, where a
    claim's rule or error bar needs a number rather than NaN."""
    if values.shape[-1] < 2:
        return np.zeros(values.shape[:-1])
    return values.std(axis=-1, ddof=1)


def mean_sd(values: Sequence[float] | np.ndarray, spec: str = ".3f", scale: float = 1.0) -> str:
    """``mean ± sd`` of ``values`` (NaNs left out) times ``scale``, the mean in ``spec`` and
    the sd unsigned; the mean alone with one value."""
    s = spread(np.asarray(values, dtype=np.float64) * scale)
    return plus_minus(s.mean, s.sd, spec, spec.lstrip("+"))


def plus_minus(value: float, error: float, spec: str = ".3f", error_spec: str | None = None) -> str:
    """``value ± error`` in ``spec`` (the error in ``error_spec``, default the same); the
    value alone when the error is NaN or 0 (nothing to show), ``nan`` when the value is."""
    if math.isnan(value):
        return "nan"
    if math.isnan(error) or error == 0:
        return format(value, spec)
    return f"{value:{spec}} ± {error:{error_spec or spec}}"


def jackknife(
    parts: np.ndarray, statistic: Callable[[np.ndarray], np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """A statistic of summed parts and its delete-one-group jackknife standard error.

    ``parts`` is (groups, ...): additive contributions of disjoint groups of examples (the
    sums of one batch each); ``statistic`` maps a sum over groups to the estimate (an array
    or a scalar). Returns ``statistic(sum of all)`` and
    ``sqrt((G - 1) / G * sum_g (theta_(-g) - mean theta_(-))^2)``, where ``theta_(-g)`` is
    the statistic without group ``g`` (Efron and Tibshirani, ch. 11). Fewer than two
    groups give a NaN error."""
    parts = np.asarray(parts, dtype=np.float64)
    total = parts.sum(axis=0)
    estimate = np.asarray(statistic(total), dtype=np.float64)
    groups = parts.shape[0]
    if groups < 2:
        return estimate, np.full_like(estimate, math.nan)
    leave_out = np.stack([np.asarray(statistic(total - part)) for part in parts])
    centred = leave_out - leave_out.mean(axis=0)
    se = np.sqrt((groups - 1) / groups * (centred**2).sum(axis=0))
    return estimate, se


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman's rho of ``n`` pairs, its percentile bootstrap interval (resampling pairs)
    at ``level``, and the two-sided permutation p-value of rho = 0."""

    rho: float
    low: float
    high: float
    p_value: float
    n: int
    level: float

    @property
    def excludes_zero(self) -> bool:
        """Whether the interval lies wholly on one side of 0."""
        return bool(self.low > 0 or self.high < 0)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho (Pearson's correlation of the average ranks); NaN when either side
    is constant."""
    return float(_rank_pearson(_rankdata(x)[None], _rankdata(y)[None])[0])


def _rankdata(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """scipy's average ranks (flattened, or along ``axis``). scipy.stats is imported where
    used, not with this module: it would cost every command a second at its start."""
    from scipy.stats import rankdata

    return rankdata(values, axis=axis)


def _t_quantile(q: float, df: float) -> float:
    """Student's t quantile ``q`` with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(q, df))


def _rank_pearson(rx: np.ndarray, ry: np.ndarray) -> np.ndarray:
    """Pearson's correlation of each row of ``rx`` with the same row of ``ry`` (ranks),
    NaN for a constant row."""
    rx = rx - rx.mean(axis=1, keepdims=True)
    ry = ry - ry.mean(axis=1, keepdims=True)
    denominator = np.sqrt((rx**2).sum(axis=1) * (ry**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (rx * ry).sum(axis=1) / denominator, np.nan)


def rank_correlation(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> RankCorrelation:
    """Spearman's rho of the pairs (``x``, ``y``) with NaN pairs left out, a percentile
    bootstrap interval over pairs (resamples where either side is constant are skipped)
    and a permutation p-value (``resamples`` shuffles of ``y``, counting |rho| at least
    the observed one, the observed arrangement included)."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = ~(np.isnan(xs) | np.isnan(ys))
    xs, ys = xs[keep], ys[keep]
    n = len(xs)
    rho = spearman(xs, ys) if n >= 3 else math.nan
    if math.isnan(rho):
        return RankCorrelation(rho, math.nan, math.nan, math.nan, n, level)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, n, (resamples, n))
    boot = _rank_pearson(_rankdata(xs[pick], axis=1), _rankdata(ys[pick], axis=1))
    boot = boot[~np.isnan(boot)]
    tail = (1.0 - level) / 2
    low, high = np.quantile(boot, [tail, 1 - tail]) if boot.size else (math.nan, math.nan)
    # Ranking a shuffled y is shuffling y's ranks.
    rx, ry = _rankdata(xs), _rankdata(ys)
    shuffled = ry[rng.permuted(np.tile(np.arange(n), (resamples, 1)), axis=1)]
    permuted = _rank_pearson(np.tile(rx, (resamples, 1)), shuffled)
    extreme = int((np.abs(permuted) >= abs(rho) - 1e-12).sum())
    return RankCorrelation(rho, float(low), float(high), (extreme + 1) / (resamples + 1), n, level)


def exact_rank_p(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float:
    """One-sided p-value of Spearman's rho between ``x`` and ``y`` being as large as
    observed under no association: the share of all orderings of ``y`` (every permutation,
    so for small n only, at most 8 points) whose rho is at least the observed one."""
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(xs)
    if n > 8:
        raise ValueError(f"exact permutations of {n} points are too many; use rank_correlation")
    observed = spearman(xs, ys)
    if math.isnan(observed):
        return math.nan
    rx, ry = _rankdata(xs), _rankdata(ys)
    orders = np.array(list(itertools.permutations(range(n))))
    rhos = _rank_pearson(np.tile(rx, (len(orders), 1)), ry[orders])
    return float((rhos >= observed - 1e-12).mean())


def seed_bootstrap_rho(
    x: Sequence[float] | np.ndarray,
    per_seed: np.ndarray,
    *,
    resamples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile bootstrap interval of Spearman's rho between ``x`` and the seed mean of
    ``per_seed`` (points, seeds), resampling the seeds with replacement (resamples where
    the means are constant are skipped)."""
    values = np.asarray(per_seed, dtype=np.float64)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, values.shape[1], (resamples, values.shape[1]))
    means = values[:, pick].mean(axis=2).T  # (resamples, points)
    rx = np.tile(_rankdata(np.asarray(x, dtype=np.float64)), (resamples, 1))
    rhos = _rank_pearson(rx, _rankdata(means, axis=1))
    rhos = rhos[~np.isnan(rhos)]
    tail = (1.0 - level) / 2
    if not rhos.size:
        return math.nan, math.nan
    low, high = np.quantile(rhos, [tail, 1 - tail])
    return float(low), float(high)
