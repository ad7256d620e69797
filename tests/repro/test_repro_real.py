"""Every claim's quick version on the real pair (Fashion-MNIST classes 0-4 -> classes 5-9 and
handwritten digits), from a source pre-trained on 500 real images: the experiments run end
to end on real images and write complete files. Whether each claim holds on real images is
a finding of the full versions (results/README.md), not asserted here; what is asserted is
what the code guarantees whatever the data: finite accuracies in [0, 1], one number per
cell and seed, and the file's pair."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from landscape.experiments.options import ReproOptions
from landscape.experiments.repro import run_claim

pytestmark = pytest.mark.extended

# The claims with a dedicated real-data test elsewhere (transfer, yosinski, criticality,
# checkpoints, regularised_source) are left out.
CLAIMS = ("same_basin", "block_shuffle", "l2sp", "non_binary", "depth", "better_source")


@pytest.mark.parametrize("name", CLAIMS)
def test_claim_runs_on_real_images(name, real_source, digits, tmp_path):
    options = ReproOptions(quick=True, runs=tmp_path / "runs", source=real_source, pair="real")
    result = run_claim(name, options, tmp_path)
    assert result.values.shape[:2] == (len(result.rows), len(result.columns))
    assert np.isfinite(result.statistic)
    with h5py.File(tmp_path / f"{name}.h5") as f:
        assert f.attrs["pair"] == "real" and bool(f.attrs["quick"])
        assert np.allclose(f["table/values"][()], result.values, equal_nan=True)
    cells = accuracy_cells(name, result.rows, result.columns, result.values)
    assert cells.size > 0 or name == "same_basin"
    assert np.all((cells >= 0) & (cells <= 1)), cells


# Which cells of each claim's table are accuracies, by their row and column labels (the
# others are gaps, gains, distances, barriers or CKA).
ACCURACY_ROWS = {"l2sp": ("l2 5e-4", "l2sp preset", "l2sp, head l2 5e-4")}
ACCURACY_COLUMNS = {"block_shuffle": ("pre-trained", "scratch")}
ALL_ACCURACIES = ("non_binary", "depth", "better_source")


def accuracy_cells(name: str, rows: list[str], columns: list[str], values: np.ndarray):
    """The measured (not NaN) accuracy cells of claim ``name``'s table, flattened."""
    keep = np.zeros(values.shape[:2], dtype=bool)
    if name in ALL_ACCURACIES:
        keep[:] = True
    for i, row in enumerate(rows):
        keep[i] |= row in ACCURACY_ROWS.get(name, ())
    for j, column in enumerate(columns):
        keep[:, j] |= column in ACCURACY_COLUMNS.get(name, ())
    cells = values[keep]
    return cells[~np.isnan(cells)]
