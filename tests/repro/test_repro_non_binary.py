"""Claim 4 (Plested & Gedeon 2021), quick version, as observed: on synthetic:far with 10
images per class and 3 seeds, neither the L2-SP/L2 mixture nor transferring fewer groups
beats the best binary choice by more than the spread over seeds (the paper's gains were
0.5 to 1.6 points; ours sit inside a seed spread of about 4 points). The test documents
that no setting separates from the binary choices, rather than forcing the claim."""

import numpy as np
import pytest

from landscape.experiments.repro import ReproOptions, run_claim

pytestmark = pytest.mark.slow


def test_non_binary_settings_do_not_separate_from_the_binary_choices(source_run, tmp_path):
    options = ReproOptions(quick=True, runs=tmp_path / "runs", source=source_run)
    result = run_claim("non_binary", options, tmp_path)
    accuracy = result.values[:, 0, :]  # (setting, seed) on synthetic:far
    mean, spread = accuracy.mean(axis=1), accuracy.std(axis=1, ddof=1)
    assert result.rows[:2] == ["l2", "l2sp"]
    assert np.all(mean > 0.5), mean  # every setting transfers: far from chance (0.1)
    best_binary, best_mixed = mean[:2].max(), mean[2:].max()
    assert abs(best_mixed - best_binary) < 2 * spread.max(), (mean, spread)
    assert not result.held and result.statistic < result.threshold, result.verdict
