"""Plots of the probes' result files: the CKA heatmap (kind ``cka``), the per-group
parameter distance (``distance``) and the fit of initial weights to a target (``fit``)."""

from __future__ import annotations

import h5py
import numpy as np
from matplotlib.figure import Figure

from landscape.plots.common import strings


def plot_cka(f: h5py.File) -> Figure:
    """CKA of every layer of A with every layer of B, numbers in the cells when they fit."""
    matrix = f["cka"][()]
    rows, cols = strings(f["layers_a"]), strings(f["layers_b"])
    figure = Figure(figsize=(1.2 + 0.45 * len(cols), 1.0 + 0.45 * len(rows)))
    ax = figure.subplots()
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="magma", origin="lower")
    ax.set_xticks(range(len(cols)), cols, rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), rows, fontsize=7)
    ax.set_xlabel(str(f.attrs["label_b"]))
    ax.set_ylabel(str(f.attrs["label_a"]))
    if len(rows) * len(cols) <= 144:
        for (i, j), value in np.ndenumerate(matrix):
            color = "black" if value > 0.6 else "white"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=6, color=color)
    figure.colorbar(image, ax=ax, label="CKA")
    ax.set_title("CKA, layers of A against layers of B", fontsize=9)
    return figure


def plot_distance(f: h5py.File) -> Figure:
    """Relative distance and cosine similarity of A to B, one bar per layer group."""
    names = strings(f["groups/names"])
    relative = f["groups/relative_distance"][()]
    cosine = f["groups/cosine"][()]
    figure = Figure(figsize=(2.0 + 0.7 * len(names), 3.2), layout="constrained")
    left, right = figure.subplots(1, 2)
    x = np.arange(len(names))
    left.bar(x, relative, color="tab:blue")
    left.set_ylabel("‖a − b‖ / ‖b‖")
    right.bar(x, cosine, color="tab:green")
    right.set_ylabel("cosine(a, b)")
    right.set_ylim(min(0.0, float(np.nanmin(cosine))), 1.0)
    for ax in (left, right):
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    figure.suptitle(f"{f.attrs['label_a']} against {f.attrs['label_b']}", fontsize=9)
    return figure


def plot_fit(f: h5py.File) -> Figure:
    """Per layer group: cross-validated kNN and linear-probe accuracy against chance, and the
    BatchNorm statistics' distance to the target's (log scale; groups without BatchNorm
    marked); error bars are one standard error."""
    names = strings(f["groups/names"])
    x = np.arange(len(names))
    classes = int(f["summary"].attrs["classes"])
    figure = Figure(figsize=(3.0 + 0.9 * len(names), 3.4), layout="constrained")
    left, right = figure.subplots(1, 2)
    for name, marker, label in (
        ("knn", "-o", f"kNN (k={int(f.attrs['k'])})"),
        ("linear", "-s", "linear probe"),
    ):
        left.errorbar(
            x, f[f"groups/{name}_acc"][()], yerr=f[f"groups/{name}_se"][()], fmt=marker,
            capsize=2, label=label,
        )  # fmt: skip
    left.axhline(1.0 / classes, color="gray", linestyle=":", label="chance")
    left.set_ylim(0.0, 1.0)
    left.set_ylabel(f"accuracy, {int(f.attrs['folds'])}-fold cross-validation")
    left.legend(fontsize=7)
    distance = f["groups/bn_distance"][()]
    shown = np.isfinite(distance) & (distance > 0)
    error = f["groups/bn_se"][()]
    right.bar(x[shown], distance[shown], yerr=error[shown], capsize=2, color="tab:purple")
    if shown.any():
        right.set_yscale("log")
    else:
        right.set_yticks([])
    right.set_xlim(-0.5, len(names) - 0.5)
    for i in np.flatnonzero(np.isnan(distance)):
        right.text(
            i, 0.02, "no BN", ha="center", va="bottom", fontsize=7, rotation=90,
            transform=right.get_xaxis_transform(),
        )  # fmt: skip
    right.set_ylabel("BN statistics, symmetric KL")
    for ax in (left, right):
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    figure.suptitle(
        f"{f.attrs['model']} ({f.attrs['init']}) on {f.attrs['data']}; "
        f"LogME {float(f['summary'].attrs['logme']):.3f}",
        fontsize=9,
    )
    return figure
