"""Verdicts recomputed from the committed files: every claim with a judge gives, from its
committed table alone, the verdict its committed file states (so the files are current and
a re-run of the judgment reproduces them); rejudging rewrites the verdict, never the
numbers, and a file that is not there is one line. A claim run again from scratch gives the
table of the file a full run from scratch wrote (``from_scratch/again/``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from landscape.experiments.repro import claims, read_claim, rejudge

ROOT = Path(__file__).resolve().parents[2] / "results" / "repro"
JUDGED = sorted(name for name, claim in claims().items() if claim.judge is not None)


@pytest.mark.parametrize("folder", [ROOT, ROOT / "real"], ids=["synthetic", "real"])
@pytest.mark.parametrize("name", JUDGED)
def test_the_committed_verdict_is_its_judges(name, folder):
    result, _, _ = read_claim(folder / f"{name}.h5")
    judged = claims()[name].judge(result)
    assert (judged.verdict, judged.held) == (result.verdict, result.held)
    assert judged.statistic == pytest.approx(result.statistic)


def test_rejudging_keeps_the_numbers(tmp_path):
    path = tmp_path / "block_shuffle.h5"
    shutil.copy(ROOT / "real" / "block_shuffle.h5", path)
    with h5py.File(path, "r+") as f:
        f.attrs["verdict"] = "stale"
        before = f["table/values"][()]
    judged = rejudge("block_shuffle", path)
    with h5py.File(path) as f:
        assert f.attrs["verdict"] == judged.verdict != "stale"
        np.testing.assert_array_equal(f["table/values"][()], before)


def test_a_claim_judged_by_its_runs_is_refused(tmp_path):
    from finetune.errors import ConfigError

    with pytest.raises(ConfigError, match="reads its runs"):
        rejudge("yosinski", ROOT / "yosinski.h5")


def test_rejudging_a_missing_file_is_one_line(tmp_path):
    from finetune.errors import ConfigError

    with pytest.raises(ConfigError, match="no .*depth.h5 to rejudge: run the claim first"):
        rejudge("depth", tmp_path / "depth.h5")


# The claims whose verdict turned from scratch (docs/guide/speed.md), each run again alone
# from scratch into its folder ``again/``.
AGAIN = [ROOT / "from_scratch" / "again" / "non_binary.h5",
         ROOT / "real" / "from_scratch" / "again" / "regularised_source.h5"]  # fmt: skip


@pytest.mark.parametrize("path", AGAIN, ids=lambda path: path.stem)
def test_a_claim_run_again_from_scratch_gives_its_committed_from_scratch_table(path):
    # What a full run from scratch wrote is what a user who runs the claim gets.
    again, _, _ = read_claim(path)
    first, _, _ = read_claim(path.parent.parent / path.name)
    np.testing.assert_array_equal(again.values, first.values)
    assert (again.verdict, again.held) == (first.verdict, first.held)
