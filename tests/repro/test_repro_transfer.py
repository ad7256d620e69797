"""Pre-trained versus random init (Kornblith et al. 2019), quick version: 10 images per
class of the near and the far target, 15 epochs, 2 seeds. On the synthetic pair the
pre-trained source wins on near by tens of points on every seed; on the real pair
(Fashion-MNIST 0-4 -> 5-9 and digits) the check is the same."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from landscape.experiments.options import ReproOptions
from landscape.experiments.repro import run_claim

# A newer claim: its quick versions run in the second step of .ci/run.
pytestmark = pytest.mark.extended


def _check(result, out):
    pre, scratch, gap = result.values  # (settings, seeds)
    assert result.columns == ["near 10/class", "far 10/class"]
    assert np.allclose(gap, pre - scratch)
    # Pre-training wins on the near target on every seed (the gap is paired by seed).
    assert (gap[0] > 0.05).all(), result.table()
    with h5py.File(out / "transfer.h5") as f:
        assert np.allclose(f["table/values"][()], result.values, equal_nan=True)
        assert f.attrs["pair"] in ("synthetic", "real")


def test_pretrained_beats_random_init_on_synthetic(source_run, tmp_path):
    options = ReproOptions(quick=True, runs=tmp_path / "runs", source=source_run)
    _check(run_claim("transfer", options, tmp_path), tmp_path)


def test_pretrained_beats_random_init_on_real_images(real_source, digits, tmp_path):
    options = ReproOptions(quick=True, runs=tmp_path / "runs", source=real_source, pair="real")
    _check(run_claim("transfer", options, tmp_path), tmp_path)
