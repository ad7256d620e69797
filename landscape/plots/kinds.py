"""The plot of every result kind that has one, by kind name; ``plot_file`` dispatches
through ``PLOTS``. Importing this module also loads every kind's declaration (the light
``kinds`` module of each writer's folder), so ``finetune.result_kinds.KINDS`` is complete
without importing a writer."""

from __future__ import annotations

from collections.abc import Callable

import h5py
from matplotlib.figure import Figure

import finetune.kinds
import landscape.bench.kinds
import landscape.experiments.kinds
import landscape.geometry.kinds
import landscape.tune.kinds
import probes.kinds
from landscape.plots.experiments import plot_out_of_sample, plot_repro, plot_shuffle
from landscape.plots.geometry import (
    plot_barrier,
    plot_criticality,
    plot_plane,
    plot_sharpness,
)
from landscape.plots.probes import plot_cka, plot_distance, plot_fit
from landscape.plots.runs import plot_run
from landscape.plots.tune import plot_explain, plot_explain_sweep

# The modules that declare the kinds, one per writer's folder.
DECLARATIONS = (
    finetune.kinds,
    probes.kinds,
    landscape.geometry.kinds,
    landscape.tune.kinds,
    landscape.experiments.kinds,
    landscape.bench.kinds,
)

PLOTS: dict[str, Callable[[h5py.File], Figure]] = {
    "run": plot_run,
    "cka": plot_cka,
    "distance": plot_distance,
    "fit": plot_fit,
    "shuffle": plot_shuffle,
    "barrier": plot_barrier,
    "plane": plot_plane,
    "sharpness": plot_sharpness,
    "criticality": plot_criticality,
    "explain": plot_explain,
    "explain_sweep": plot_explain_sweep,
    "out_of_sample": plot_out_of_sample,
    "repro": plot_repro,
}
