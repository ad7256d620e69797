"""The plain-loop transfer study at its quick size: its file holds what its loop measured,
the same settings give the same numbers (the loop is seeded throughout), and it refuses the
real pair, whose targets are not the synthetic tasks."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from finetune.errors import ConfigError
from landscape.experiments.options import ReproOptions
from landscape.experiments.studies import run_study
from landscape.experiments.studies.plain_transfer import (
    QUICK_SETTINGS,
    QUICK_SOURCE_IMAGES,
    finetune,
    pretrain,
)


def test_quick_study_is_seeded_and_reads_back(tmp_path):
    options = ReproOptions(quick=True, runs=tmp_path / "runs")
    (path,) = run_study("plain_transfer", options, tmp_path / "out")
    with h5py.File(path) as f:
        acc, source = f["test_acc"][()], f["source_test_acc"][()]
        assert list(f["targets"].asstr()[()]) == ["near", "far"]
        assert f["settings/source_epochs"][0] == QUICK_SETTINGS[0][0]
    assert acc.shape == (1, 2, 2) and np.all((acc >= 0) & (acc <= 1))
    # The far target's pretrained run, trained again outside the study: the same accuracy.
    source_epochs, seed, lr, epochs = QUICK_SETTINGS[0]
    model, again, _ = pretrain(source_epochs, seed, QUICK_SOURCE_IMAGES)
    assert again == pytest.approx(source[0])
    assert finetune(model, "far", seed, lr, epochs) == pytest.approx(acc[0, 1, 0])


def test_the_real_pair_is_refused(tmp_path):
    options = ReproOptions(quick=True, runs=tmp_path / "runs", pair="real")
    with pytest.raises(ConfigError, match="synthetic tasks"):
        run_study("plain_transfer", options, tmp_path / "out")
