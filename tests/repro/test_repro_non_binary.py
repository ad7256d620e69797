"""Claim 4 (Plested & Gedeon 2021) by search, quick size: a binary and a non-binary Optuna
search of 4 trials each on synthetic:far at 10 images per class, 2 search seeds. Whether the
claim holds is a finding of the full version (results/README.md); the test checks the
protocol: each search ran its own trials as runs of the target recipe, the binary pick lies
in the binary space, every pick is the best validation accuracy or tied with it within its
standard error (and then of lowest validation loss), and the statistic is the paired
t of the gains the table holds."""

import h5py
import numpy as np
import pytest
from conftest import run_dirs

from finetune.rundir import read_config
from finetune.runs import run_summary
from landscape.experiments.options import ReproOptions
from landscape.experiments.repro import run_claim
from landscape.experiments.repro.non_binary import QUICK_TRIALS, search
from landscape.tune.sweep import value_se

# The newest claim's quick version: in the second step of .ci/run (the README's test
# command keeps under 10 minutes on 2 cores).
pytestmark = [pytest.mark.slow, pytest.mark.extended]


def test_the_searches_pick_from_their_own_spaces_by_validation(source_run, tmp_path):
    options = ReproOptions(quick=True, runs=tmp_path / "runs", source=source_run)
    result = run_claim("non_binary", options, tmp_path)
    print(result.table(), result.verdict, *result.notes, sep="\n")
    assert result.rows == ["binary search", "non-binary search"]
    assert result.values.shape == (2, 1, 2)
    assert np.all(result.values > 0.3), result.values  # the picks transfer (chance: 0.1)
    gains = result.values[1, 0] - result.values[0, 0]
    t = gains.mean() / (gains.std(ddof=1) / np.sqrt(2))
    assert result.statistic == pytest.approx(t)
    assert result.held == (t > result.threshold)
    picks = [note for note in result.notes if note.startswith("synthetic:far")]
    assert len(picks) == 4 and all("trials tied" in note and "lr " in note for note in picks)

    runs = run_dirs(tmp_path / "runs")
    # 2 spaces x 2 seeds x 4 trials; a trial drawn twice by one search is one run
    assert 2 * QUICK_TRIALS < len(runs) <= 4 * QUICK_TRIALS
    with h5py.File(tmp_path / "non_binary.h5") as f:  # the searches' runs, each recorded once
        recorded = list(f["runs/name"].asstr()[()])
    assert sorted(recorded) == [run.name for run in runs]
    summaries = {run.name: run_summary(run) for run in runs}
    for space in ("binary", "non-binary"):
        pick = search(options, "far", "synthetic:far", space, 0, QUICK_TRIALS)  # runs reused
        assert len(run_dirs(tmp_path / "runs")) == len(runs)
        mine = [
            name for name in summaries
            if read_config(tmp_path / "runs" / name)["config"]["train"]["seed"] == 0
            and _in_space(read_config(tmp_path / "runs" / name)["config"], space)
        ]  # fmt: skip
        top = max(float(summaries[name]["final_eval_acc"]) for name in mine)
        examples = read_config(runs[0])["data"]["eval_examples"]
        assert pick["value"] >= top - value_se([top], examples)
        assert pick["value"] == pytest.approx(top) or pick["tied"] > 1
        values = pick["values"]
        if space == "binary":
            assert "transfer_groups" not in values and "lr_decay" not in values
            body_l2sp = set(values["l2sp"][:-1])
            assert len(body_l2sp) == 1  # one regulariser for every body group
            assert values["l2sp"][-1] == 0.0  # the new head is never pulled toward w0


def _in_space(config: dict, space: str) -> bool:
    """Whether a run's config was drawn from ``space``: only the non-binary space sets a
    layer-wise decay (it always draws one)."""
    return (config["policy"]["lr_decay"] is None) == (space == "binary")
