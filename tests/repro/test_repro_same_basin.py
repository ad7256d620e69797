"""Claim 1 (Neyshabur et al. 2020), quick version: over three pairs of seeds, runs
fine-tuned from the same pre-trained weights are more similar by CKA, closer in parameter
space and separated by a lower loss barrier than runs from random inits, each by more than
twice the spread over pairs; the verdict is scipy's Welch test over the three seeds."""

import h5py
import numpy as np
import pytest
from scipy import stats

from landscape.experiments.options import ReproOptions
from landscape.experiments.repro import run_claim

pytestmark = [pytest.mark.slow, pytest.mark.extended]


def test_pretrained_pairs_share_a_basin_and_random_pairs_do_not(source_run, tmp_path):
    options = ReproOptions(quick=True, runs=tmp_path / "runs", source=source_run)
    result = run_claim("same_basin", options, tmp_path)
    values = result.values  # (init, measure, pair)
    mean, spread = values.mean(axis=2), values.std(axis=2, ddof=1)
    worst = spread.max(axis=0)
    cka, distance, barrier = 0, 1, 2
    assert mean[0, cka] - mean[1, cka] > 2 * worst[cka], (mean, spread)
    assert mean[1, distance] - mean[0, distance] > 2 * worst[distance], (mean, spread)
    assert mean[1, barrier] - mean[0, barrier] > 2 * worst[barrier], (mean, spread)
    welch = [
        stats.ttest_ind_from_stats(*_mean_sd(values[a, c]), 3, *_mean_sd(values[b, c]), 3,
                                   equal_var=False, alternative="greater")
        for c, (a, b) in [(cka, (0, 1)), (distance, (1, 0)), (barrier, (1, 0))]
    ]  # fmt: skip
    assert result.held == all(test.pvalue < 0.05 for test in welch), result.verdict
    with h5py.File(tmp_path / "same_basin.h5") as f:
        assert f.attrs["kind"] == "repro" and bool(f["summary"].attrs["held"]) == result.held
        assert np.allclose(f["table/values"][()], values, equal_nan=True)


def _mean_sd(values: np.ndarray) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1))
