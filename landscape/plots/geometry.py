"""Plots of weight-space geometry: the loss and error along the straight line between two
runs (kind ``barrier``), over a plane of weight space (``plane``), the curvature at one
run's weights per layer group (``sharpness``), and the training error as each layer group
is rewound toward its initial weights, with its criticality (``criticality``)."""

from __future__ import annotations

import h5py
import numpy as np
from matplotlib.figure import Figure

from landscape.plots.common import strings


def plot_barrier(f: h5py.File) -> Figure:
    """Loss and error from A to B against the straight line between the ends, for the raw
    curve and, when measured, the one with BatchNorm statistics re-estimated."""
    alpha = f["alpha"][()]
    curves = [("raw", "raw statistics", "tab:gray")]
    if "bn/loss" in f:
        curves.append(("bn", "BatchNorm re-estimated", "tab:blue"))
    figure = Figure(figsize=(9.0, 3.4), layout="constrained")
    axes = figure.subplots(1, 2)
    for ax, metric in zip(axes, ("loss", "error")):
        for curve, label, color in curves:
            values = f[f"{curve}/{metric}"][()]
            ax.plot(alpha, values, "-o", color=color, markersize=3, label=label, zorder=3)
            ax.plot(
                [0.0, 1.0], [values[0], values[-1]], "--", color=color, linewidth=1,
                label=f"{label}: line between the ends", zorder=2,
            )  # fmt: skip
            ax.scatter(
                [0.0, 1.0], [values[0], values[-1]], s=60, color=color, edgecolor="black",
                zorder=4,
            )  # fmt: skip
        ax.set_xticks([0.0, 0.25, 0.5, 0.75, 1.0], ["A\n0", "0.25", "0.5", "0.75", "B\n1"])
        ax.set_xlabel("a in (1 − a) θ_A + a θ_B")
        what = " (1 − accuracy)" if metric == "error" else " (cross-entropy)"
        ax.set_ylabel(f"{f.attrs['split']} {metric}{what}")
        s = f["summary"].attrs
        ax.set_title(
            f"{metric} barrier {float(s[f'{metric}_barrier']):.3f} ({s['curve']} curve)",
            fontsize=9,
        )
    axes[0].legend(fontsize=7)
    figure.suptitle(f"A = {f.attrs['label_a']},  B = {f.attrs['label_b']}", fontsize=9)
    return figure


def plot_plane(f: h5py.File) -> Figure:
    """Contours of loss and error over the plane, the runs marked and named."""
    x, y = f["xcoordinates"][()], f["ycoordinates"][()]
    labels = strings(f["runs/labels"])
    run_x, run_y = f["runs/x"][()], f["runs/y"][()]
    figure = Figure(figsize=(10.0, 4.2), layout="constrained")
    axes = figure.subplots(1, 2)
    for ax, name, title in zip(axes, ("loss", "error"), ("loss (cross-entropy)", "error")):
        z = f[name][()]  # z[j, i] at (x[i], y[j])
        levels = np.unique(np.quantile(z, np.linspace(0.0, 1.0, 16)))
        if len(levels) < 2:
            levels = np.array([z.min(), z.min() + 1e-9])
        filled = ax.contourf(x, y, z, levels=levels, cmap="viridis")
        ax.contour(x, y, z, levels=levels, colors="white", linewidths=0.4)
        figure.colorbar(filled, ax=ax, label=f"{f.attrs['split']} {title}", format="%.3g")
        ax.scatter(run_x, run_y, marker="*", s=140, color="tab:red", edgecolor="white", zorder=3)
        for label, rx, ry in zip(labels, run_x, run_y):
            box = dict(boxstyle="round,pad=0.2", fc="white", alpha=0.7, lw=0)
            ax.annotate(
                label, (rx, ry), textcoords="offset points", xytext=(5, 5), fontsize=7, bbox=box
            )
        extent = (x[-1] - x[0]) / (y[-1] - y[0])
        # True distances where the plane's shape allows; a sliver would be unreadable.
        ax.set_aspect("equal" if 1 / 3 <= extent <= 3 else "auto")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    mode = str(f.attrs["mode"])
    what = "plane through the runs" if mode == "through" else "random filter-normalised plane"
    figure.suptitle(
        f"{what} ({f.attrs['model']}, {f.attrs['data']} {f.attrs['split']})", fontsize=9
    )
    return figure


def plot_sharpness(f: h5py.File) -> Figure:
    """Per layer group: the top eigenvalue of the Hessian restricted to the group, and its
    trace with one standard error; the whole model's figures in the title."""
    names = strings(f["groups/names"])
    x = np.arange(len(names))
    figure = Figure(figsize=(2.0 + 0.9 * len(names), 3.4), layout="constrained")
    left, right = figure.subplots(1, 2)
    left.bar(x, f["groups/top_eigenvalue"][()], color="tab:red")
    left.set_ylabel("top eigenvalue of the group's Hessian")
    right.bar(
        x, f["groups/trace"][()], yerr=f["groups/trace_se"][()], capsize=2, color="tab:orange"
    )
    right.set_ylabel("trace (Hutchinson, ± 1 s.e.)")
    for ax in (left, right):
        ax.axhline(0.0, color="gray", linewidth=0.6)
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    s = f["summary"].attrs
    figure.suptitle(
        f"{f.attrs['label']}: whole model top eigenvalue {float(s['top_eigenvalue']):.4g}, "
        f"trace {float(s['trace']):.4g} ± {float(s['trace_se']):.2g} "
        f"({int(s['hvps'])} Hessian-vector products)",
        fontsize=9,
    )
    return figure


def plot_criticality(f: h5py.File) -> Figure:
    """Training error with one group (a row) rewound to ``(1 - a) theta0 + a thetaF``, the
    whole model in the last row, as in Chatterji et al. 2019; each group's criticality on
    the right."""
    names = [*strings(f["groups/names"]), "whole model"]
    alphas = f["alphas"][()]
    error = np.vstack([f["curves/error"][()], f["whole/error"][()][None]])
    figure = Figure(figsize=(3.0 + 0.45 * len(alphas), 1.2 + 0.4 * len(names)),
                    layout="constrained")  # fmt: skip
    ax = figure.subplots()
    image = ax.imshow(error, cmap="magma_r", vmin=0.0, vmax=max(float(error.max()), 1e-9),
                      aspect="auto")  # fmt: skip
    for (row, column), value in np.ndenumerate(error):
        shade = "white" if value > 0.6 * error.max() else "black"
        ax.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=6, color=shade)
    ax.set_xticks(range(len(alphas)), [f"{a:.2g}" for a in alphas], fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel("a in (1 − a) θ0 + a θF, the group's weights (the others final)")
    right = ax.secondary_yaxis("right")
    values = [f"{c:.3g}" for c in f["groups/criticality"][()]]
    right.set_yticks(range(len(names)), [*values, ""], fontsize=7)
    ax.text(1.02, 1.0, "criticality", transform=ax.transAxes, fontsize=7, va="bottom")
    ax.axhline(len(names) - 1.5, color="white", linewidth=2)
    figure.colorbar(image, ax=ax, label="training error")
    s = f["summary"].attrs
    figure.suptitle(
        f"{f.attrs['label_a']} against θ0 = {f.attrs['label_b']}: within "
        f"{float(f.attrs['epsilon']):g} of error {float(s['final_error']):.3f}",
        fontsize=9,
    )
    return figure
