"""``landscape repro checkpoints``: fine-tuning from intermediate pre-training checkpoints.
The plateau rule is checked by hand; the quick claim (a 16px source kept every epoch for 4
epochs at batch 32, each epoch fine-tuned on near and far with 2 seeds) runs on both pairs,
and its table is checked against the source's own record of its kept epochs and against
the fine-tuned runs' initial weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from finetune import rundir
from landscape.experiments.recipes import QUICK_SOURCE_NAME
from landscape.experiments.repro import ReproOptions, run_claim
from landscape.experiments.repro.checkpoints import kept_accuracy, plateau_epoch


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
    means = targets.mean(axis=2)
    spread = targets.std(axis=2, ddof=1)
    source_plateau = plateau_epoch(epochs, accuracy, 0.01)
    target_plateaus = [
        plateau_epoch(epochs, means[:, j], max(0.01, 2 * spread[-1, j] / np.sqrt(2)))
        for j in range(2)
    ]
    assert result.statistic == source_plateau - max(target_plateaus)
    assert result.held == (result.statistic > 0)
