"""Plots of the explanations of fine-tuning: per layer group, the rewind cost that sets a
group's status, its CKA to the initial features and how far it moved (kind ``explain``),
with the basin against another run when measured; and why a sweep's best trials won
(``explain_sweep``)."""

from __future__ import annotations

import json

import h5py
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from landscape.plots.common import strings, wrapped

STATUS_COLOURS = {
    "reused": "tab:green", "adapted": "tab:orange", "rewritten": "tab:red",
    "unclear": "tab:gray", "frozen": "tab:blue", "new": "tab:purple",
}  # fmt: skip


def plot_explain(f: h5py.File) -> Figure:
    """Bars per layer group coloured by status: the rewind cost (points of error, ± 2
    standard errors, the status thresholds dashed), the CKA to init and the movement; and
    the error on the line to the other run when the file has a basin."""
    names = strings(f["groups/names"])
    status = strings(f["groups/status"])
    colours = [STATUS_COLOURS[s] for s in status]
    x = np.arange(len(names))
    rules = _rules(f)
    basin = "basin/alpha" in f
    figure = Figure(figsize=(4.0 * (3 + basin), 3.6), layout="constrained")
    axes = figure.subplots(1, 3 + basin)
    panels = (
        ("rewind_error", 100.0, "error rise with the group at init (points)"),
        ("cka", 1.0, "CKA of the group's output with init"),
        ("movement", 100.0, "moved (% of the group's norm)"),
    )
    for ax, (name, scale, label) in zip(axes, panels):
        value, se = f[f"groups/{name}"][()] * scale, f[f"groups/{name}_se"][()] * scale
        ax.bar(x, value, yerr=2 * np.nan_to_num(se), color=colours, capsize=3)
        ax.set_xticks(x, names, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel(label, fontsize=8)
        ax.axhline(0.0, color="black", linewidth=0.6)
    for threshold in (rules["reused_below"], rules["rewritten_above"]):
        axes[0].axhline(100 * threshold, color="black", linestyle="--", linewidth=0.8)
    for status_name, colour in STATUS_COLOURS.items():
        if status_name in status:
            axes[0].bar([np.nan], [np.nan], color=colour, label=status_name)
    axes[0].legend(fontsize=7)
    if basin:
        ax = axes[-1]
        alpha = f["basin/alpha"][()]
        ax.plot(alpha, 100 * f["basin/error"][()], "-o", markersize=3, color="tab:blue")
        ax.set_xlabel(f"a: (1 - a) run + a {f.attrs['against']}", fontsize=8)
        ax.set_ylabel(f"{f.attrs['split']} error (%), BatchNorm re-estimated", fontsize=8)
        s = f["summary"].attrs
        ax.set_title(f"{s['basin']}: error barrier {100 * float(s['error_barrier']):.1f} "
                     f"± {100 * float(s['error_barrier_se']):.1f}", fontsize=9)  # fmt: skip
    runs = ", ".join(json.loads(f.attrs["runs"]))
    figure.suptitle(
        wrapped(f"{runs}: {f.attrs['examples']} {f.attrs['split']} images of "
                f"{f.attrs['data']}; errors: {f.attrs['errors']}", 140),
        fontsize=9,
    )  # fmt: skip
    return figure


def _rules(f: h5py.File) -> dict[str, float]:
    return json.loads(f.attrs["rules"])


def plot_explain_sweep(f: h5py.File) -> Figure:
    """The options' importances, and each probe's rank correlation with the objective per
    layer group (a cell framed where its bootstrap interval excludes 0)."""
    groups = strings(f["groups/names"])
    probes = ("cka", "movement", "rewind_error")
    rho = np.stack([f[f"objective/{p}_rho"][()] for p in probes])
    low = np.stack([f[f"objective/{p}_low"][()] for p in probes])
    high = np.stack([f[f"objective/{p}_high"][()] for p in probes])
    figure = Figure(figsize=(11.0, 3.8), layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=(1, 1.4))
    if "importance/names" in f:
        names = strings(f["importance/names"])
        left.barh(np.arange(len(names))[::-1], f["importance/values"][()], color="tab:blue")
        left.set_yticks(np.arange(len(names))[::-1], names, fontsize=7)
    left.set_xlabel(f"importance ({f.attrs['evaluator']})", fontsize=8)
    image = right.imshow(rho, cmap="coolwarm", vmin=-1, vmax=1, aspect="auto")
    right.set_xticks(np.arange(len(groups)), groups, rotation=45, ha="right", fontsize=8)
    right.set_yticks(range(len(probes)), ["CKA to init", "movement", "rewind cost"], fontsize=8)
    for i in range(len(probes)):
        for g in range(len(groups)):
            if np.isfinite(rho[i, g]):
                right.text(g, i, f"{rho[i, g]:+.2f}", ha="center", va="center", fontsize=7)
            if low[i, g] > 0 or high[i, g] < 0:
                right.add_patch(Rectangle((g - 0.5, i - 0.5), 1, 1, fill=False, linewidth=2))
    figure.colorbar(image, ax=right, label="rank correlation with the objective")
    s = f["summary"].attrs
    figure.suptitle(f"study {f.attrs['study']}: {s['probed']} of {s['complete']} complete "
                    "trials probed", fontsize=9)  # fmt: skip
    return figure
