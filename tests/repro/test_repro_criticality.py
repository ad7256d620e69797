"""``landscape repro criticality``: where the most critical layer group of a fine-tuned
network sits. The depth rule is checked by hand; the quick claim (near and far, P-T and
RI-T, one seed, a 3 x 3 criticality grid) runs on both pairs, and its table is checked
against the per-run criticality files it writes and against the runs' own initial
weights."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from finetune import rundir
from landscape.experiments.options import ReproOptions
from landscape.experiments.repro import run_claim
from landscape.experiments.repro.criticality import critical_depth


def test_critical_depth_by_hand():
    assert critical_depth(np.array([5.0, 0.0, 0.0, 0.0, 0.0])) == 0.0
    assert critical_depth(np.array([0.0, 0.0, 0.0, 0.0, 2.0])) == 1.0
    assert critical_depth(np.array([0.0, 3.0, 1.0])) == 0.5
    # Ties are averaged: the first and the last of five groups -> (0 + 1) / 2.
    assert critical_depth(np.array([np.inf, 1.0, 0.0, 0.0, np.inf])) == 0.5
    assert np.isnan(critical_depth(np.zeros(4)))  # nothing critical: no location


@pytest.mark.extended
@pytest.mark.parametrize("pair", ["synthetic", "real"])
def test_criticality_claim_quick(pair, tmp_path, request):
    source = request.getfixturevalue("source_run" if pair == "synthetic" else "real_source")
    if pair == "real":
        request.getfixturevalue("digits")
    options = ReproOptions(quick=True, runs=tmp_path / "runs", source=source, pair=pair)
    result = run_claim("criticality", options, tmp_path)

    groups = [row.split(": ")[1] for row in result.rows if row.startswith("near P-T")]
    assert groups[-1] == "head" and len(result.rows) == 4 * len(groups)
    settings = ["near P-T", "near RI-T", "far P-T", "far RI-T"]
    table = result.values[:, :, 0].reshape(4, len(groups), 3)
    for s, setting in enumerate(settings):
        role, init = setting.split()
        name = f"criticality-{role}-{init.lower()}-seed0"
        with h5py.File(options.runs / f"{name}-criticality.h5") as f:
            assert f.attrs["kind"] == "criticality"
            written = f["groups/criticality"][()]
            distance = f["groups/distance"][()]
        measured = len(written)
        # A P-T run starts from the source's body and a fresh head: the head is left out.
        assert measured == (len(groups) - 1 if init == "P-T" else len(groups))
        assert np.all(np.isnan(table[s, measured:]))
        assert np.array_equal(table[s, :measured, 0], written)
        assert np.allclose(table[s, :measured, 2], distance)
        # The distance of the stem to theta0, recomputed from the run's weight files.
        final = rundir.load_weights(options.runs / name / rundir.FINAL)
        init_weights = rundir.load_weights(options.runs / name / rundir.INIT)
        stem = [k for k in final if k.startswith(("conv1.", "bn1.")) and "_" not in k]
        own = np.sqrt(sum(float(((final[k] - init_weights[k]) ** 2).sum()) for k in stem))
        assert np.isclose(table[s, 0, 2], own, rtol=1e-5), (setting, table[s, 0, 2], own)
    pretrained = [critical_depth(table[s, :-1, 0]) for s in (0, 2)]
    expected = np.nanmean(pretrained) if not np.all(np.isnan(pretrained)) else np.nan
    assert np.isclose(result.statistic, expected, equal_nan=True)
    assert result.held == bool(result.statistic > 0.5)
