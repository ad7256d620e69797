"""The rules-left-out study: its leave-one-out rule by hand, and a quick study on one
target whose runs are one grid, listed whole by a dry run, trained alike serially and on
worker processes, and read back into a file of its documented layout."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from conftest import fast_config, run_dirs
from test_results_layout import actual, documented, registry_problems

from finetune import engine
from finetune.executors import thread_count
from finetune.models import read_weights, weights_digest
from finetune.runs import run_summary
from landscape.experiments.options import ReproOptions, dry_run
from landscape.experiments.studies import find_study, run_study
from landscape.experiments.studies.rules_left_out import leave_one_out, variants


def test_leave_one_out_by_hand():
    # 3 variants x 3 targets x 2 seeds; variant 0 is the current rules.
    test = np.array([
        [[0.80, 0.82], [0.70, 0.70], [0.60, 0.62]],  # current
        [[0.84, 0.86], [0.74, 0.74], [0.59, 0.61]],  # best on targets 0 and 1
        [[0.79, 0.81], [0.69, 0.69], [0.70, 0.72]],  # best on target 2 alone
    ])  # fmt: skip
    rows, gains, harmed, change = leave_one_out(test, ["c", "a", "b"], ["t0", "t1", "t2"], 0)
    # Leaving out t0: means over t1, t2 are 0.655, 0.67, 0.70 -> variant 2 ("b"). Leaving
    # out t1: 0.71, 0.725, 0.755 -> "b". Leaving out t2: 0.755, 0.795, 0.745 -> "a".
    assert [r.chosen for r in rows] == ["b", "b", "a"]
    assert [r.gain for r in rows] == pytest.approx([-0.01, -0.01, -0.01])
    assert [r.error for r in rows] == pytest.approx([0, 0, 0], abs=1e-12)  # same on both seeds
    # Each left-out target loses a point beyond its seed error: harmed, the rules stay.
    assert harmed and not change and gains.mean == pytest.approx(-0.01)

    # Variant 1 above the current rules everywhere, variant 2 below: chosen every time.
    test[1] = test[0] + np.array([[0.02, 0.04], [0.01, 0.03], [0.02, 0.02]])
    test[2] = test[0] - 0.05
    rows, gains, harmed, change = leave_one_out(test, ["c", "a", "b"], ["t0", "t1", "t2"], 0)
    assert [r.chosen for r in rows] == ["a", "a", "a"]
    assert [r.gain for r in rows] == pytest.approx([0.03, 0.02, 0.02])
    assert [r.error for r in rows] == pytest.approx([0.01, 0.01, 0], abs=1e-12)
    # Gains 3, 2, 2 points: mean 2.33, SE 0.33 (sd 0.577 / sqrt 3); 2.33 > 2 x 0.33.
    assert gains.mean == pytest.approx(0.07 / 3) and gains.se == pytest.approx(0.01 / 3)
    assert not harmed and change


def test_a_quick_study_is_one_grid_trained_alike_here_and_on_workers(tmp_path):
    source = tmp_path / "source"
    engine.train(fast_config("pretrain", data="synthetic:source", epochs=2), source)

    def options(runs: str, workers: int) -> ReproOptions:
        return ReproOptions(quick=True, runs=tmp_path / runs, source=source, workers=workers,
                            data=("synthetic:near",))  # fmt: skip

    study = find_study("rules_left_out")
    plan, more = dry_run(lambda o: study.run(o, tmp_path / "dry"), options("serial", 1))
    # The whole grid is listed before anything trains: no run waits on another's result.
    assert not more and plan.runs and not (tmp_path / "serial").exists()
    with thread_count(1):  # a worker's threads: the runs are bit-identical to theirs
        (path,) = run_study("rules_left_out", options("serial", 1), tmp_path / "a")
    (spread,) = run_study("rules_left_out", options("workers", 2), tmp_path / "b")

    assert actual(path) == documented("rules_left_out") and registry_problems(path) == []
    trained = {run.name: run for run in run_dirs(tmp_path / "serial")}
    # Every run the dry run listed trained once: variants advising alike share theirs.
    assert sorted(trained) == sorted(run.name for run in plan.runs)
    with h5py.File(path) as f, h5py.File(spread) as g:
        test = f["test_acc"][()]
        np.testing.assert_array_equal(g["test_acc"][()], test)
    assert test.shape == (len(variants()), 1, 1)
    assert set(test.ravel()) == {float(run_summary(r)["test_acc"]) for r in trained.values()}
    on_workers = {run.name: run for run in run_dirs(tmp_path / "workers")}
    assert sorted(on_workers) == sorted(trained)
    for name, run in trained.items():
        assert weights_digest(read_weights(run)) == weights_digest(read_weights(on_workers[name]))
