"""``landscape repro checkpoints``: fine-tuning from intermediate pre-training checkpoints.
The plateau rule and the verdict's seed bootstrap are checked by hand; the quick claim (a
16px source kept every epoch for 4 epochs at batch 32, each epoch fine-tuned on near and far
with 2 seeds) runs on both pairs, and its table is checked against the source's own record
of its kept epochs and against the fine-tuned runs' initial weights."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from finetune import rundir
from landscape.experiments.options import ReproOptions
from landscape.experiments.recipes import QUICK_SOURCE_NAME
from landscape.experiments.repro import ClaimResult, run_claim
from landscape.experiments.repro.checkpoints import judge, kept_accuracy, plateau_epoch


def test_plateau_epoch_by_hand():
    epochs = [1, 2, 3, 4, 6]
    # Within 0.01 of the last value (0.90) from epoch 3 on.
    assert plateau_epoch(epochs, np.array([0.5, 0.85, 0.895, 0.89, 0.90]), 0.01) == 3
    # Epoch 2 is within, but epoch 3 falls out again: the plateau starts at epoch 4.
    assert plateau_epoch(epochs, np.array([0.5, 0.9, 0.7, 0.89, 0.90]), 0.01) == 4
    # A curve still rising at the end plateaus only at its last point.
    assert plateau_epoch(epochs, np.array([0.1, 0.2, 0.3, 0.4, 0.5]), 0.01) == 6
    # A flat curve from the first point; values above the last count as within.
    assert plateau_epoch(epochs, np.array([0.95, 0.9, 0.9, 0.9, 0.9]), 0.0) == 1


@pytest.mark.extended
@pytest.mark.parametrize("pair", ["synthetic", "real"])
def test_checkpoints_claim_quick(pair, tmp_path, request):
    if pair == "real":
        request.getfixturevalue("fashion_mnist")
        request.getfixturevalue("digits")
    options = ReproOptions(quick=True, runs=tmp_path / "runs", pair=pair)
    result = run_claim("checkpoints", options, tmp_path)

    source = options.runs / f"{QUICK_SOURCE_NAME}-keep1"
    epochs, accuracy = kept_accuracy(source)
    assert epochs == [1, 2, 3, 4] and result.rows == [f"epoch {e}" for e in epochs]
    assert np.all(np.isfinite(accuracy))  # a quick source evaluates every kept epoch
    assert np.allclose(result.values[:, 0, 0], accuracy)
    # The last kept epoch is the source's final weights.
    last = rundir.load_weights(source / rundir.EPOCHS / "epoch4.safetensors")
    final = rundir.load_weights(source / rundir.FINAL)
    assert all(torch.equal(last[k], final[k]) for k in final)
    # Each fine-tuned run started from its checkpoint's body.
    for epoch in (1, 3):
        kept = rundir.load_weights(source / rundir.EPOCHS / f"epoch{epoch}.safetensors")
        run = options.runs / f"checkpoints-far-from-{source.name}-epoch{epoch}-seed1"
        init = rundir.load_weights(run / rundir.INIT)
        assert torch.equal(init["conv1.0.weight"], kept["conv1.0.weight"])
    targets = result.values[:, 1:]  # (epochs, targets, seeds)
    assert targets.shape == (4, 2, 2) and np.all((targets >= 0) & (targets <= 1))
    assert result.statistic == pytest.approx(share_by_hand(epochs, accuracy, targets), abs=0.05)
    assert result.held == (result.statistic >= 0.95)


def share_by_hand(epochs: list[int], source: np.ndarray, targets: np.ndarray) -> float:
    """The share of equally likely seed resamples (every sequence of seeds, with
    replacement) in which the source plateaus after both targets (tolerance one point)."""
    seeds = targets.shape[2]
    later = []
    for pick in itertools.product(range(seeds), repeat=seeds):
        means = targets[:, :, list(pick)].mean(axis=2)
        plateaus = [plateau_epoch(epochs, means[:, j], 0.01) for j in range(means.shape[1])]
        later.append(plateau_epoch(epochs, source, 0.01) > max(plateaus))
    return float(np.mean(later))


def _table(source: list[float], targets: np.ndarray) -> ClaimResult:
    epochs = [1, 2, 3, 4, 6]
    values = np.full((5, 1 + targets.shape[1], targets.shape[2]), np.nan)
    values[:, 0, 0], values[:, 1:] = source, targets
    nan = float("nan")
    return ClaimResult([f"epoch {e}" for e in epochs], ["source acc", "near acc", "far acc"],
                       values, values[:, 0, 0], "", "", {}, nan, nan, False, "")  # fmt: skip


def test_the_verdict_by_hand():
    source = [0.5, 0.7, 0.8, 0.85, 0.90]  # plateaus at its last checkpoint, epoch 6
    early = np.array([0.6, 0.8, 0.8, 0.8, 0.8])[:, None, None] + np.zeros((5, 2, 3))
    judged = judge(_table(source, early))  # targets flat from epoch 2 on every seed
    assert judged.held and judged.statistic == 1.0 and "+4 epochs" in judged.verdict
    # One seed of far still rising: resamples holding it put far's plateau late.
    noisy = early.copy()
    noisy[:, 1, 2] = [0.2, 0.3, 0.4, 0.5, 0.95]
    judged = judge(_table(source, noisy))
    expected = share_by_hand([1, 2, 3, 4, 6], np.array(source), noisy)
    assert 0.2 < expected < 0.95  # the seed bootstrap sees the noise
    assert judged.statistic == pytest.approx(expected, abs=0.05) and not judged.held
    assert "not distinguishable from no effect" in judged.verdict or "not held" in judged.verdict
