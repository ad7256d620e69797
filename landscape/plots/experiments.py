"""Plots of the experiments' result files: the block-shuffle experiment (kind ``shuffle``),
a reproduced published claim (``repro``) and the automatic choices out of sample
(``out_of_sample``)."""

from __future__ import annotations

import re

import h5py
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from landscape.plots.common import strings, wrapped

# One item of an x label that names its settings: "0 = l2" in "setting: 0 = l2, 1 = l2sp".
NAMED_SETTING = re.compile(r"\s*(\d+)\s*=\s*(.+?)\s*")


def plot_shuffle(f: h5py.File) -> Figure:
    """Test accuracy against block size from the pre-trained init and from random init,
    every seed's point, and the gap in points above each block size."""
    blocks = f["block_sizes"][()]
    image_size = int(f.attrs["image_size"])
    figure = Figure(figsize=(5.0, 3.4), layout="constrained")
    ax = figure.subplots()
    lines = (("pretrained", "pre-trained", "tab:blue"), ("scratch", "random init", "tab:orange"))
    for init, label, color in lines:
        acc = f[f"acc_{init}"][()]  # (B, S)
        ax.plot(blocks, acc.mean(axis=1), "-o", color=color, label=label, zorder=3)
        for j in range(acc.shape[1]):
            ax.scatter(blocks, acc[:, j], color=color, alpha=0.35, s=12, zorder=2)
    gap = f["gap"][()]
    top = np.maximum(f["acc_pretrained"][()].mean(axis=1), f["acc_scratch"][()].mean(axis=1))
    for b, g, y in zip(blocks, gap, top):
        ax.annotate(
            f"{100 * g:+.1f}", (b, y), textcoords="offset points", xytext=(0, 6),
            ha="center", fontsize=7,
        )  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks(blocks, [f"{b}" + ("\n(intact)" if b == image_size else "") for b in blocks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.margins(y=0.15)
    ax.set_xlabel("block size (pixels)")
    ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8, loc="best")
    ax.set_title(
        f"block-shuffled {f.attrs['data']} ({f.attrs['scheme']}), {f.attrs['model']}; "
        "numbers: gap in points",
        fontsize=9,
    )
    return figure


def plot_repro(f: h5py.File) -> Figure:
    """Each plotted series' mean with its spread over seeds as error bars. Numeric settings
    (block size, examples per class, interpolation coefficient) are lines over x; settings
    that are categories (an x label naming them, as ``setting: 0 = l2, 1 = l2sp``) are
    labelled points side by side, one tick per category."""
    x = f["plot/x"][()]
    labels = strings(f["plot/labels"])
    means, spreads = f["plot/mean"][()], np.nan_to_num(f["plot/spread"][()])
    xlabel, categories = category_names(str(f.attrs["xlabel"]), x)
    figure = Figure(figsize=(6.0, 3.8), layout="constrained")
    ax = figure.subplots()
    if categories is None:
        _lines(ax, x, labels, means, spreads, log=bool(f.attrs["xlog"]))
    else:
        _categories(ax, categories, labels, means, spreads)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(str(f.attrs["ylabel"]))
    ax.legend(fontsize=7)
    held = "held" if bool(f["summary"].attrs["held"]) else "did not hold"
    quick = ", quick version" if bool(f.attrs["quick"]) else ""
    ax.set_title(wrapped(f"{f.attrs['title']} ({held}{quick})", 70), fontsize=9)
    return figure


def category_names(xlabel: str, x: np.ndarray) -> tuple[str, list[str] | None]:
    """``("setting", ["l2", "l2sp"])`` for the x label ``"setting: 0 = l2, 1 = l2sp"`` when
    it names every x value (each once); ``(xlabel, None)`` for a numeric axis."""
    axis, colon, items = xlabel.partition(":")
    matches = [NAMED_SETTING.fullmatch(item) for item in items.split(",")]
    if not colon or not all(matches):
        return xlabel, None
    names = {float(m.group(1)): m.group(2) for m in matches}
    if len(names) != len(matches) or sorted(names) != sorted(x.tolist()):
        return xlabel, None
    return axis.strip(), [names[value] for value in x.tolist()]


def _lines(
    ax: Axes, x: np.ndarray, labels: list[str], means: np.ndarray, spreads: np.ndarray, *, log: bool
) -> None:
    """One line per series over numeric x; a logarithmic axis is ticked at the x values."""
    for label, mean, spread in zip(labels, means, spreads):
        ax.errorbar(x, mean, yerr=spread, marker="o", markersize=4, capsize=3, label=label)
    if log:
        ax.set_xscale("log", base=2)
        ax.set_xticks(x, [f"{value:g}" for value in x])
        ax.xaxis.set_minor_locator(NullLocator())


def _categories(
    ax: Axes, names: list[str], labels: list[str], means: np.ndarray, spreads: np.ndarray
) -> None:
    """One tick per category; the series' points sit side by side around it, unjoined."""
    positions = np.arange(len(names))
    width = min(0.6 / len(labels), 0.2)
    for k, (label, mean, spread) in enumerate(zip(labels, means, spreads)):
        offset = (k - (len(labels) - 1) / 2) * width
        ax.errorbar(positions + offset, mean, yerr=spread, fmt="o", capsize=4, label=label)
    ax.set_xticks(positions, [wrapped(name, 16) for name in names])
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.grid(axis="y", alpha=0.3)


def plot_out_of_sample(f: h5py.File) -> Figure:
    """Per target, every method's test accuracy minus the default's (mean over seeds, the
    bar ± the SE of the paired differences), one group of bars per target."""
    labels = strings(f["targets/labels"])
    methods = strings(f["methods/labels"])
    test = f["test_acc"][()]
    gains = 100 * (test - test[:, :1, :])
    mean = gains.mean(axis=2)
    seeds = gains.shape[2]
    se = gains.std(axis=2, ddof=1) / np.sqrt(seeds) if seeds > 1 else np.zeros_like(mean)
    figure = Figure(figsize=(max(7.0, 1.6 * len(labels) + 2), 4.2), layout="constrained")
    ax = figure.subplots()
    width = 0.8 / (len(methods) - 1)
    x = np.arange(len(labels))
    for m in range(1, len(methods)):
        ax.bar(x + (m - (len(methods) - 1) / 2 - 0.5) * width, mean[:, m], width,
               yerr=se[:, m], capsize=2, label=methods[m])  # fmt: skip
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(x, [wrapped(label, 24) for label in labels], fontsize=7)
    ax.set_ylabel("test accuracy minus the default's (points)")
    ax.legend(fontsize=7, ncols=4)
    ax.set_title(f"{f.attrs['model']}, {f.attrs['pair']} pair, {seeds} seeds", fontsize=9)
    return figure
