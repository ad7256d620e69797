"""Plots of the explanations of fine-tuning: per layer group, the rewind cost that sets a
group's status, its CKA to the initial features and how far it moved (kind ``explain``),
with the basin against another run when measured."""

from __future__ import annotations

import json

import h5py
import numpy as np
from matplotlib.figure import Figure

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
