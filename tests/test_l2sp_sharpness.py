"""The L2-SP sharpness study at its quick size: its runs are the L2-SP claim's (same names),
its numbers read back against those runs and against a fresh measurement."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from finetune.runs import run_summary
from landscape.experiments.options import ReproOptions
from landscape.experiments.studies import run_study
from landscape.experiments.studies.l2sp_sharpness import QUICK_SHARPNESS
from landscape.geometry.sharpness import sharpness

pytestmark = pytest.mark.extended  # minutes: in .ci/run's second step


def test_quick_study_reads_back_against_its_runs(tmp_path, source_run):
    options = ReproOptions(quick=True, runs=tmp_path / "runs", source=source_run)
    (path,) = run_study("l2sp_sharpness", options, tmp_path / "out")
    with h5py.File(path) as f:
        runs = f["runs"].asstr()[()]
        top, trace, accuracy = f["top_eigenvalue"][()], f["trace"][()], f["test_acc"][()]
        assert list(f["regularisers"].asstr()[()]) == ["l2", "l2sp"]
    assert runs.shape == top.shape == (2, 2)  # regularisers x the quick claim's two seeds
    assert all("l2sp-near-l2-n5-" in r for r in runs[0]) and all("-l2sp-n5-" in r for r in runs[1])
    for i, j in np.ndindex(runs.shape):
        assert accuracy[i, j] == pytest.approx(run_summary(runs[i, j])["test_acc"])
    again = sharpness(runs[1, 0], options=QUICK_SHARPNESS)  # deterministic on the CPU
    assert again.top_eigenvalue == pytest.approx(top[1, 0], rel=1e-6)
    assert again.trace[0] == pytest.approx(trace[1, 0], rel=1e-6)
    assert np.all(top > 0)
