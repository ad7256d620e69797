"""The out-of-sample study: its bar by hand, and a quick study on one target whose file's
numbers are read back against the runs it names."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import h5py
import numpy as np
import pytest
from conftest import fast_config

from finetune import engine
from finetune.runs import run_summary
from landscape.experiments.options import ReproOptions
from landscape.experiments.studies import run_study
from landscape.experiments.studies.out_of_sample import (
    LABELS,
    METHODS,
    Study,
    meets_the_bar,
    read_study,
    study_table,
    verdict,
)

NAMES = list(METHODS)


def table(default: list[list[float]], rows: dict[str, list[list[float]]]) -> np.ndarray:
    """(targets, methods, seeds) with ``default`` and the given methods' rows, the others
    equal to the default."""
    test = np.repeat(np.asarray(default)[:, None, :], len(NAMES), axis=1)
    for name, values in rows.items():
        test[:, NAMES.index(name)] = values
    return test


def test_the_bar_by_hand():
    default = [[0.80, 0.82, 0.84], [0.90, 0.90, 0.90]]
    test = table(default, {
        "binary": [[0.84, 0.86, 0.88], [0.90, 0.90, 0.90]],  # mean gain 2 points
        "non_binary": [[0.82, 0.84, 0.86], [0.91, 0.91, 0.91]],  # 1.5 points
        "probe_guided": [[0.83, 0.85, 0.87], [0.905, 0.905, 0.905]],  # 1.75 = 87.5%
        "fit_advisor": [[0.84, 0.86, 0.88], [0.895, 0.895, 0.895]],  # below on row 2
    })  # fmt: skip
    cost = np.ones_like(test)
    cost[:, NAMES.index("probe_guided")] = 4 / 3
    bar = meets_the_bar(test, cost, NAMES, "probe_guided")
    assert bar.better_search == "binary" and bar.search_gain == pytest.approx(0.02)
    assert bar.mean_gain == pytest.approx(0.0175) and bar.never_below
    assert not bar.met  # 87.5% of the better search's gain < 90%
    fit = meets_the_bar(test, cost, NAMES, "fit_advisor")
    # Row 2: -0.5 points on every seed, an SE of 0: below by more than the seed error.
    assert not fit.never_below and fit.mean_gain == pytest.approx(0.0175)
    test[0, NAMES.index("probe_guided")] = [0.84, 0.86, 0.88]
    assert meets_the_bar(test, cost, NAMES, "probe_guided").met
    cost[0, NAMES.index("probe_guided"), 1] = 2.5
    assert not meets_the_bar(test, cost, NAMES, "probe_guided").met


def test_the_verdict_names_who_meets_the_bar_or_the_closest():
    default = [[0.80, 0.82, 0.84]]
    test = table(default, {
        "binary": [[0.84, 0.86, 0.88]],  # the better search: +4 points
        "fit_advisor": [[0.83, 0.85, 0.87]],  # +3 points, 75%: the closest
        "lp_ft": [[0.70, 0.72, 0.74]],
    })  # fmt: skip

    def study(test: np.ndarray) -> Study:
        return Study(["t"], ["m"], np.array([False]), NAMES, [LABELS[n] for n in NAMES], test,
                     np.ones_like(test))  # fmt: skip

    sentence = verdict(study(test))
    assert sentence.startswith("No automatic method meets the bar over 1 target")
    assert f"The closest, {LABELS['fit_advisor']}, has a mean gain of +3.00 points" in sentence
    test[0, NAMES.index("surgical")] = [0.84, 0.86, 0.88]  # the search's gain, at 1 run
    assert verdict(study(test)) == f"Meets the bar over 1 target: {LABELS['surgical']}."


def test_a_method_below_within_its_seed_error_is_not_below():
    test = table([[0.80, 0.80, 0.80]], {"auto_rgn": [[0.79, 0.81, 0.78]]})
    # Paired differences -1, +1, -2 points: mean -0.67, SE 0.88 -> within the error.
    assert meets_the_bar(test, np.ones_like(test), NAMES, "auto_rgn").never_below


@pytest.mark.extended
def test_quick_study_on_one_target(tmp_path):
    source = tmp_path / "source"
    engine.train(fast_config("pretrain", data="synthetic:source", epochs=2), source)
    options = ReproOptions(quick=True, runs=tmp_path / "runs", source=source,
                           data=("synthetic:near",))  # fmt: skip
    (path,) = run_study("out_of_sample", options, tmp_path / "out")
    with h5py.File(path) as f:
        test, cost = f["test_acc"][()], f["cost"][()]
        chosen = [[json.loads(c) for c in row] for row in f["chosen"][()][0].astype(str)]
        assert test.shape == (1, len(NAMES), 1)
    assert np.all((test > 0) & (test <= 1))
    assert cost[0, NAMES.index("probe_guided"), 0] == pytest.approx(1 + 2 / 6)
    assert cost[0, NAMES.index("surgical"), 0] == 5
    assert cost[0, NAMES.index("binary"), 0] == 4  # 4 quick trials, one split each
    # The default's accuracy is its own run's, read back.
    runs = sorted((tmp_path / "runs").glob("oos-*"))
    tests = {round(float(run_summary(r)["test_acc"]), 6) for r in runs}
    assert round(float(test[0, 0, 0]), 6) in tests
    assert 0 <= chosen[NAMES.index("surgical")][0]["surgical"] < 5
    assert "# " not in study_table(read_study([path])).splitlines()[0]
    # Run again with its fine-tunings gone: the file's finished row is kept, nothing trains.
    for run in runs:
        shutil.rmtree(run)
    (again,) = run_study("out_of_sample", options, tmp_path / "out")
    with h5py.File(again) as f:
        np.testing.assert_array_equal(f["test_acc"][()], test)
        assert f.attrs["source"] == str(source)
    assert not list((tmp_path / "runs").glob("oos-*"))
    # Another seed is another study: trained, not kept.
    run_study("out_of_sample", replace(options, seeds=(1,)), tmp_path / "out")
    assert list((tmp_path / "runs").glob("oos-*"))
