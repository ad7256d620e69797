"""PNG plots of result files, chosen by the file's ``kind`` attribute: one registered
function per kind, reading only the HDF5 file, so any result can be re-plotted later
(``landscape plot F.h5``). Matplotlib's Agg backend: no display needed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from finetune.distributed import processes  # noqa: E402
from finetune.errors import ConfigError, RunDirError  # noqa: E402
from finetune.rundir import atomic_write  # noqa: E402

Plotter = Callable[[h5py.File], Figure]
PLOTTERS: dict[str, Plotter] = {}


def register_plot(kind: str) -> Callable[[Plotter], Plotter]:
    """Register the plot of result files of ``kind``."""

    def register(function: Plotter) -> Plotter:
        PLOTTERS[kind] = function
        return function

    return register


def plot_file(path: str | Path, png: str | Path | None = None) -> Path:
    """Render the result file ``path`` to ``png`` (default: beside it, same stem). Under
    torchrun only the main process draws (the one that wrote ``path``)."""
    path = Path(path)
    png = Path(png) if png is not None else path.with_suffix(".png")
    if not processes().main:
        return png
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise RunDirError(f"cannot read {path}: {err}") from None
    with f:
        kind = str(f.attrs.get("kind", ""))
        if kind not in PLOTTERS:
            known = ", ".join(sorted(PLOTTERS))
            raise ConfigError(f"{path} is of kind {kind!r}, which has no plot (known: {known})")
        figure = PLOTTERS[kind](f)
    atomic_write(png, lambda tmp: figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight"))
    plt.close(figure)
    return png


def _strings(dataset: h5py.Dataset) -> list[str]:
    return [s.decode() if isinstance(s, bytes) else str(s) for s in dataset[()]]


@register_plot("cka")
def _cka(f: h5py.File) -> Figure:
    matrix = f["cka"][()]
    rows, cols = _strings(f["layers_a"]), _strings(f["layers_b"])
    figure, ax = plt.subplots(figsize=(1.2 + 0.45 * len(cols), 1.0 + 0.45 * len(rows)))
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


@register_plot("distance")
def _distance(f: h5py.File) -> Figure:
    names = _strings(f["groups/names"])
    relative = f["groups/relative_distance"][()]
    cosine = f["groups/cosine"][()]
    figure, (left, right) = plt.subplots(1, 2, figsize=(2.0 + 0.7 * len(names), 3.2))
    x = np.arange(len(names))
    left.bar(x, relative, color="tab:blue")
    left.set_ylabel("‖a − b‖ / ‖b‖")
    right.bar(x, cosine, color="tab:green")
    right.set_ylabel("cosine(a, b)")
    right.set_ylim(min(0.0, float(np.nanmin(cosine))), 1.0)
    for ax in (left, right):
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    figure.suptitle(f"{f.attrs['label_a']} against {f.attrs['label_b']}", fontsize=9)
    figure.tight_layout()
    return figure


@register_plot("shuffle")
def _shuffle(f: h5py.File) -> Figure:
    blocks = f["block_sizes"][()]
    image_size = int(f.attrs["image_size"])
    figure, ax = plt.subplots(figsize=(5.0, 3.4))
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


@register_plot("barrier")
def _barrier(f: h5py.File) -> Figure:
    alpha = f["alpha"][()]
    curves = [("raw", "raw statistics", "tab:gray")]
    if "bn/loss" in f:
        curves.append(("bn", "BatchNorm re-estimated", "tab:blue"))
    figure, axes = plt.subplots(1, 2, figsize=(9.0, 3.4))
    for ax, metric in zip(axes, ("loss", "error")):
        for curve, label, color in curves:
            values = f[f"{curve}/{metric}"][()]
            ax.plot(alpha, values, "-o", color=color, markersize=3, label=label, zorder=3)
            ax.plot(
                [0.0, 1.0], [values[0], values[-1]], "--", color=color, linewidth=1,
                label=f"{label}: line between the ends", zorder=2,
            )  # fmt: skip
            ax.scatter([0.0, 1.0], [values[0], values[-1]], s=60, color=color, edgecolor="black",
                       zorder=4)  # fmt: skip
        ax.set_xticks([0.0, 0.25, 0.5, 0.75, 1.0], ["A\n0", "0.25", "0.5", "0.75", "B\n1"])
        ax.set_xlabel("a in (1 − a) θ_A + a θ_B")
        what = " (1 − accuracy)" if metric == "error" else " (cross-entropy)"
        ax.set_ylabel(f"{f.attrs['split']} {metric}{what}")
        s = f["summary"].attrs
        ax.set_title(f"{metric} barrier {float(s[f'{metric}_barrier']):.3f} "
                     f"({s['curve']} curve)", fontsize=9)  # fmt: skip
    axes[0].legend(fontsize=7)
    figure.suptitle(f"A = {f.attrs['label_a']},  B = {f.attrs['label_b']}", fontsize=9)
    figure.tight_layout()
    return figure


@register_plot("plane")
def _plane(f: h5py.File) -> Figure:
    x, y = f["xcoordinates"][()], f["ycoordinates"][()]
    labels = _strings(f["runs/labels"])
    run_x, run_y = f["runs/x"][()], f["runs/y"][()]
    figure, axes = plt.subplots(1, 2, figsize=(10.0, 4.2))
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
            ax.annotate(label, (rx, ry), textcoords="offset points", xytext=(5, 5), fontsize=7,
                        bbox=box)  # fmt: skip
        extent = (x[-1] - x[0]) / (y[-1] - y[0])
        # True distances where the plane's shape allows; a sliver would be unreadable.
        ax.set_aspect("equal" if 1 / 3 <= extent <= 3 else "auto")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    mode = str(f.attrs["mode"])
    what = "plane through the runs" if mode == "through" else "random filter-normalised plane"
    figure.suptitle(f"{what} ({f.attrs['model']}, {f.attrs['data']} {f.attrs['split']})",
                    fontsize=9)  # fmt: skip
    figure.tight_layout()
    return figure


@register_plot("repro")
def _repro(f: h5py.File) -> Figure:
    x = f["plot/x"][()]
    labels = _strings(f["plot/labels"])
    means, spreads = f["plot/mean"][()], f["plot/spread"][()]
    figure, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, mean, spread in zip(labels, means, spreads):
        ax.errorbar(x, mean, yerr=np.nan_to_num(spread), marker="o", capsize=3, label=label)
    if bool(f.attrs["xlog"]):
        ax.set_xscale("log", base=2)
    ax.set_xlabel(str(f.attrs["xlabel"]))
    ax.set_ylabel(str(f.attrs["ylabel"]))
    ax.legend(fontsize=7)
    held = "held" if bool(f["summary"].attrs["held"]) else "did not hold"
    ax.set_title(f"{f.attrs['title']} ({held})", fontsize=9)
    return figure


@register_plot("fit")
def _fit(f: h5py.File) -> Figure:
    names = _strings(f["groups/names"])
    x = np.arange(len(names))
    classes = int(f["summary"].attrs["classes"])
    figure, (left, right) = plt.subplots(1, 2, figsize=(3.0 + 0.9 * len(names), 3.4))
    left.plot(x, f["groups/knn_acc"][()], "-o", label=f"kNN (k={int(f.attrs['k'])})")
    left.plot(x, f["groups/linear_acc"][()], "-s", label="linear probe")
    left.axhline(1.0 / classes, color="gray", linestyle=":", label="chance")
    left.set_ylim(0.0, 1.0)
    left.set_ylabel("validation accuracy")
    left.legend(fontsize=7)
    distance = f["groups/bn_distance"][()]
    shown = np.isfinite(distance) & (distance > 0)
    right.bar(x[shown], distance[shown], color="tab:purple")
    if shown.any():
        right.set_yscale("log")
    else:
        right.set_yticks([])
    right.set_xlim(-0.5, len(names) - 0.5)
    for i in np.flatnonzero(np.isnan(distance)):
        right.text(i, 0.02, "no BN", ha="center", va="bottom", fontsize=7, rotation=90,
                   transform=right.get_xaxis_transform())  # fmt: skip
    right.set_ylabel("BN statistics, symmetric KL")
    for ax in (left, right):
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
    figure.suptitle(
        f"{f.attrs['model']} ({f.attrs['init']}) on {f.attrs['data']}; "
        f"LogME {float(f['summary'].attrs['logme']):.3f}",
        fontsize=9,
    )
    figure.tight_layout()
    return figure
