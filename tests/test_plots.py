"""Plots drawn by kind: a run's learning curves (completed, failed before its first epoch,
nothing recorded), a claim's categorical settings as labelled categories and its numeric
ones as lines, and one-line refusals of files that cannot be plotted."""

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import fast_config
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure

from finetune import engine
from finetune.engine.history import History
from finetune.errors import ConfigError
from landscape.plots import plot_file
from landscape.plots.experiments import category_names
from landscape.plots.kinds import PLOTS

RESULTS = Path(__file__).resolve().parents[1] / "results"


def draw(path: Path) -> Figure:
    """The figure of the file at ``path``, drawn by its kind's plot."""
    with h5py.File(path) as f:
        return PLOTS[str(f.attrs["kind"])](f)


def legend(ax) -> list[str]:
    return [text.get_text() for text in ax.get_legend().get_texts()]


def line(ax, label: str):
    return next(drawn for drawn in ax.get_lines() if drawn.get_label() == label)


def errorbars(ax) -> list[ErrorbarContainer]:
    return [c for c in ax.containers if isinstance(c, ErrorbarContainer)]


def test_a_completed_runs_plot_draws_every_learning_curve(tmp_path):
    config = fast_config(epochs=2)
    result = engine.train(config, tmp_path / "run", command="test")
    loss, accuracy, lr, distance = draw(tmp_path / "run" / "run.h5").axes

    evaluated = line(accuracy, "eval (val split)")
    assert list(evaluated.get_xdata()) == [1, 2]
    assert evaluated.get_ydata()[-1] == pytest.approx(result.summary["final_eval_acc"])
    (test_star,) = np.asarray(accuracy.collections[0].get_offsets())
    assert test_star == pytest.approx([2.0, result.summary["test_acc"]])
    assert "train, each step" in legend(loss) and "train, epoch mean" in legend(loss)
    # One learning rate per step; the last step ends epoch 2; the cosine schedule starts at lr.
    steps = lr.get_lines()[0]
    assert len(steps.get_xdata()) == result.summary["steps"]
    assert steps.get_xdata()[-1] == pytest.approx(2.0)
    assert steps.get_ydata()[0] == pytest.approx(config.optim.lr)
    assert legend(distance) == result.group_names
    assert distance.get_yscale() == "log"

    png = plot_file(tmp_path / "run" / "run.h5")
    assert png == tmp_path / "run" / "run.png" and png.stat().st_size > 0


def write_run_h5(path: Path, history: History, summary: dict) -> None:
    """``run.h5`` of a fast_config run (5 steps per epoch, 2 epochs) as the engine writes
    it, holding ``history``."""
    config = fast_config()
    attrs = {
        "config": config.to_dict(),
        "config_hash": config.hash(),
        "model": config.model.name,
        "data": config.data.spec,
        "steps_per_epoch": 5,
    }
    history.write(path, group_names=["stem", "head"], attrs=attrs, summary=summary, command="t")


def test_a_run_that_failed_before_its_first_epoch_plots_its_steps(tmp_path):
    # As the engine leaves a run whose loss diverged at step 3: the learning rates of the
    # steps are recorded, the losses only up to the last finite chunk, no epoch.
    failed = History(step_loss=[2.3, 9.1], step_lr=[0.1, 0.1, 0.09, 0.08])
    write_run_h5(tmp_path / "run.h5", failed, {"status": "failed"})
    figure = draw(tmp_path / "run.h5")
    loss, accuracy, lr, distance = figure.axes

    assert line(loss, "train, each step").get_xdata() == pytest.approx([0.2, 0.4])
    assert lr.get_lines()[0].get_xdata() == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert lr.get_lines()[0].get_ydata() == pytest.approx(failed.step_lr)
    for ax in (accuracy, distance):
        assert ax.get_lines() == []
        assert [text.get_text() for text in ax.texts] == ["no epoch finished yet"]
    assert "failed after 0 of 2 epochs" in " ".join(figure.get_suptitle().split())
    assert plot_file(tmp_path / "run.h5").stat().st_size > 0


def test_a_run_without_a_recorded_step_is_refused_in_one_line(tmp_path):
    write_run_h5(tmp_path / "run.h5", History(), {})
    with pytest.raises(ConfigError, match="no training step"):
        plot_file(tmp_path / "run.h5")


def toy_claim(monkeypatch, xlabel: str, x: np.ndarray, values: np.ndarray):
    """Register a claim named ``toy`` whose one plotted series per row of ``values``
    (rows, settings, seeds) is drawn over ``x``."""
    import landscape.experiments.repro as repro
    from landscape.experiments.repro import ClaimResult, register_claim
    from probes.statistics import mean_and_spread

    repro.claims()
    monkeypatch.setattr(repro, "CLAIMS", dict(repro.CLAIMS))
    mean, spread = mean_and_spread(values)
    series = {f"target {i}": (mean[i], spread[i]) for i in range(len(values))}

    @register_claim("toy", "a toy claim", "a toy finding")
    def toy(options):
        return ClaimResult(
            [f"target {i}" for i in range(len(values))],
            list(map(str, x)),
            values,
            x,
            xlabel,
            "test accuracy",
            series,
            statistic=0.0,
            threshold=0.0,
            held=False,
            verdict="toy",
        )


def test_categorical_settings_are_labelled_points_with_their_spread(tmp_path, monkeypatch):
    from landscape.experiments.options import ReproOptions
    from landscape.experiments.repro import run_claim

    values = np.array([[[0.5, 0.7], [0.6, 0.62], [0.8, 0.9]], [[0.4, 0.4], [0.3, 0.5], [0.2, 0.6]]])
    toy_claim(
        monkeypatch, "setting: 0 = l2, 1 = l2sp, 2 = l2sp low + l2 high", np.arange(3.0), values
    )
    run_claim("toy", ReproOptions(quick=True, runs=tmp_path), tmp_path)
    (ax,) = draw(tmp_path / "toy.h5").axes

    names = [t.get_text().replace("\n", " ") for t in ax.get_xticklabels()]
    assert names == ["l2", "l2sp", "l2sp low + l2 high"]
    assert ax.get_xlabel() == "setting"
    bars = errorbars(ax)
    assert len(bars) == 2
    for k, bar in enumerate(bars):
        points, _, (vertical,) = bar.lines
        assert points.get_linestyle() == "None"
        assert np.all(np.abs(points.get_xdata() - np.arange(3)) < 0.5)
        assert np.allclose(points.get_ydata(), values[k].mean(axis=1))
        heights = [segment[1, 1] - segment[0, 1] for segment in vertical.get_segments()]
        assert np.allclose(heights, 2 * values[k].std(axis=1, ddof=1))


def test_the_committed_claims_draw_categories_as_categories_and_numbers_as_lines():
    (settings,) = draw(RESULTS / "repro" / "non_binary.h5").axes
    with h5py.File(RESULTS / "repro" / "non_binary.h5") as f:
        rows = list(f["table/rows"].asstr()[()])
        targets = len(f["plot/labels"])
    assert [t.get_text().replace("\n", " ") for t in settings.get_xticklabels()] == rows
    assert len(errorbars(settings)) == targets

    (sizes,) = draw(RESULTS / "repro" / "l2sp.h5").axes
    assert [t.get_text() for t in sizes.get_xticklabels()] == ["5", "10", "50"]
    assert all(bar.lines[0].get_linestyle() == "-" for bar in errorbars(sizes))


@pytest.mark.parametrize(
    ("xlabel", "x", "expected"),
    [
        ("setting: 0 = l2, 1 = l2sp", [0.0, 1.0], ("setting", ["l2", "l2sp"])),
        ("setting: 1 = b, 0 = a", [0.0, 1.0], ("setting", ["a", "b"])),
        ("setting: 0 = l2, 1 = l2sp", [0.0, 1.0, 2.0], ("setting: 0 = l2, 1 = l2sp", None)),
        ("training images per class", [5.0, 10.0], ("training images per class", None)),
        ("data: synthetic:near", [0.0], ("data: synthetic:near", None)),
    ],
)
def test_an_x_label_naming_every_value_makes_the_settings_categories(xlabel, x, expected):
    assert category_names(xlabel, np.array(x)) == expected


def test_files_that_cannot_be_plotted_are_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="'bench_reg', which has no plot"):
        plot_file(RESULTS / "bench" / "reg_cpu.h5", tmp_path / "reg.png")

    partial = tmp_path / "partial.h5"
    shutil.copy(RESULTS / "repro" / "non_binary.h5", partial)
    with h5py.File(partial, "a") as f:
        del f["plot/spread"]
    with pytest.raises(ConfigError, match="lacks dataset 'plot/spread'"):
        plot_file(partial)

    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["kind"] = "other"
    with pytest.raises(ConfigError, match="not a result file of a known kind"):
        plot_file(tmp_path / "other.h5")
    assert not (tmp_path / "reg.png").exists() and not (tmp_path / "partial.png").exists()
