"""The learning curves of a run (``run.h5``, kind ``run``): loss, accuracy, learning rate
and each layer group's distance to its initial weights, on one epoch axis. Drawn from
whatever the file holds, so a run in progress, a failed one and a resumed one plot too."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from finetune.errors import ConfigError
from landscape.plots.common import strings, wrapped

# A loss spanning more than this factor (a diverging run) is drawn on a log scale.
LOG_LOSS_RANGE = 30.0


def plot_run(f: h5py.File) -> Figure:
    """Four panels sharing the epoch axis: loss (each step, and per epoch), accuracy per
    epoch, learning rate per step, distance to init per layer group and epoch. The panels
    of per-epoch numbers say so when no epoch has finished yet; a file without a single
    step is a ConfigError."""
    if len(f["steps/loss"]) == 0 and len(f["steps/lr"]) == 0:
        raise ConfigError(f"{f.filename} holds no training step yet: nothing to plot")
    figure = Figure(figsize=(10.0, 6.6), layout="constrained")
    (loss_ax, acc_ax), (lr_ax, distance_ax) = figure.subplots(2, 2, sharex=True)
    _loss(loss_ax, f)
    _learning_rate(lr_ax, f)
    if len(f["epochs/epoch"]):
        _accuracy(acc_ax, f)
        _distances(distance_ax, f)
    else:
        for ax, what in ((acc_ax, "accuracy"), (distance_ax, "distance to init")):
            ax.text(0.5, 0.5, "no epoch finished yet", ha="center", va="center",
                    transform=ax.transAxes, color="gray")  # fmt: skip
            ax.set_yticks([])
            ax.set_ylabel(what)
    for ax in (lr_ax, distance_ax):
        ax.set_xlabel("epoch")
    for ax in (loss_ax, acc_ax, lr_ax, distance_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(left=0.0)
    figure.suptitle(wrapped(_headline(f), 120), fontsize=9)
    return figure


def _loss(ax: Axes, f: h5py.File) -> None:
    """Every step's training loss, and per epoch the training mean, the evaluation loss
    and (once completed) the final weights' test loss."""
    loss = f["steps/loss"][()]
    ax.plot(_step_x(f, len(loss)), loss, color="tab:gray", linewidth=0.8, alpha=0.6,
            label="train, each step")  # fmt: skip
    if len(f["epochs/epoch"]):
        _per_epoch(ax, f, "loss")
    finite = loss[np.isfinite(loss)]
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > LOG_LOSS_RANGE:
        ax.set_yscale("log")
    ax.set_ylabel("loss (cross-entropy)")
    ax.legend(fontsize=7)


def _accuracy(ax: Axes, f: h5py.File) -> None:
    _per_epoch(ax, f, "acc")
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7)


def _per_epoch(ax: Axes, f: h5py.File, metric: str) -> None:
    """``metric`` (``loss`` or ``acc``) per epoch, training and evaluation split, and the
    test number of the final weights as a star at the last epoch when the run completed."""
    epochs = f["epochs/epoch"][()]
    split = json.loads(f.attrs["config"])["data"]["eval_split"]
    ax.plot(epochs, f[f"epochs/train_{metric}"][()], "-o", color="tab:blue", markersize=4,
            label="train, epoch mean")  # fmt: skip
    ax.plot(epochs, f[f"epochs/eval_{metric}"][()], "-o", color="tab:orange", markersize=4,
            label=f"eval ({split} split)")  # fmt: skip
    test = f["summary"].attrs.get(f"test_{metric}")
    if test is not None:
        ax.scatter([epochs[-1]], [float(test)], marker="*", s=120, color="tab:green",
                   edgecolor="black", zorder=4, label="test, final weights")  # fmt: skip


def _learning_rate(ax: Axes, f: h5py.File) -> None:
    lr = f["steps/lr"][()]
    ax.plot(_step_x(f, len(lr)), lr, color="tab:purple", linewidth=1.2)
    ax.set_ylabel("learning rate (before per-group scaling)")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))


def _distances(ax: Axes, f: h5py.File) -> None:
    """One line per layer group, input to output from dark to light: the relative distance
    ``‖w − w0‖ / ‖w0‖``, or the absolute one when a group started at zero (no relative)."""
    epochs = f["epochs/epoch"][()]
    names = strings(f["groups/names"])
    values = f["groups/relative_distance_to_init"][()]
    what = "‖w − w0‖ / ‖w0‖"
    if not np.isfinite(values).all():
        values, what = f["groups/distance_to_init"][()], "‖w − w0‖"
    for g, (name, column) in enumerate(zip(names, values.T)):
        color = colormaps["viridis"](0.9 * g / max(len(names) - 1, 1))
        if np.any(column > 0):
            ax.plot(epochs, column, "-o", color=color, markersize=3, label=name)
        else:
            ax.plot([], [], " ", label=f"{name}: did not move")
    if np.any(values > 0):
        ax.set_yscale("log")
    ax.set_ylabel(f"distance to init, {what}")
    ax.legend(fontsize=6, ncol=1 + len(names) // 8, title="layer group", title_fontsize=7)


def _step_x(f: h5py.File, steps: int) -> np.ndarray:
    """Step i (from 0) ends at epoch (i + 1) / steps per epoch."""
    return np.arange(1, steps + 1) / int(f.attrs["steps_per_epoch"])


def _headline(f: h5py.File) -> str:
    """Which run, and how far it got: completed (with its test accuracy), failed, or still
    running or interrupted (a checkpoint's file, before the summary is written)."""
    evaluated = f["epochs/epoch"][()]
    done = int(evaluated[-1]) if len(evaluated) else 0
    planned = int(json.loads(f.attrs["config"])["train"]["epochs"])
    summary = f["summary"].attrs
    status = str(summary.get("status", ""))
    if status == "completed":
        state = f"completed {done} epochs, test accuracy {float(summary['test_acc']):.3f}"
    elif status == "failed":
        state = f"failed after {done} of {planned} epochs"
    else:
        state = f"{done} of {planned} epochs so far (running, or interrupted)"
    run = Path(f.filename).parent.name
    return f"{run}: {f.attrs['model']} on {f.attrs['data']}, {state}"
