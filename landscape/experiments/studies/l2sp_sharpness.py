"""Do L2-SP runs sit in flatter or sharper minima than L2 runs on the same target? The L2-SP
claim (``landscape repro l2sp``) fine-tunes the pair's near target at 10 images per class
under plain L2 and under the L2-SP preset, for its fixed step budget, seeds 0-4 (each seed
also draws the training subset, so L2 and L2-SP of one seed are paired). For each of those
runs (reused when the claim trained them) this study measures the sharpness of its final
training loss (``landscape sharpness``'s defaults: the top Hessian eigenvalue and
Hutchinson's trace, on seeded training batches in eval mode) beside its test accuracy; its
table gives each regulariser's mean ± sd over seeds and the paired difference L2-SP minus
L2 with its paired t."""

from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np

from finetune.result_files import write_result
from landscape.experiments.options import ReproOptions
from landscape.experiments.recipes import PAIRS, results_folder
from landscape.experiments.repro.l2sp import grid
from landscape.experiments.studies import register_study
from landscape.experiments.tables import ROOT, register_table
from landscape.geometry.options import SHARPNESS_PROBE, SharpnessOptions
from landscape.geometry.sharpness import sharpness
from probes.statistics import mean_sd, paired_t, plus_minus

NAME = "l2sp_sharpness"
FILE = "l2sp_sharpness.h5"
REGULARISERS = ("l2", "l2sp")  # the claim's plain L2 and its L2-SP preset
LABELS = {"l2": "L2 5e-4", "l2sp": "L2-SP preset"}
PER_CLASS = 10
SEEDS = (0, 1, 2, 3, 4)
# The quick study: one size of the quick claim, and a few products per estimate.
QUICK_PER_CLASS = 5
QUICK_SHARPNESS = SharpnessOptions(
    batches=1, iterations=5, hutchinson_samples=4, vectors_per_pass=4, probe=SHARPNESS_PROBE
)
MEASURES = ("top_eigenvalue", "trace", "test_acc")


@register_study(NAME, "are L2-SP's minima flatter or sharper than L2's on the same target?")
def l2sp_sharpness(options: ReproOptions, out: Path) -> list[Path]:
    started = time.perf_counter()
    (task,) = options.targets((options.pair_recipes.near,))
    seeds = options.seeds_or(quick=(0, 1), full=SEEDS)
    per_class = QUICK_PER_CLASS if options.quick else PER_CLASS
    measure = QUICK_SHARPNESS if options.quick else SharpnessOptions()
    runs_of, (epochs,) = grid(options, task, (per_class,), seeds, REGULARISERS)
    accuracy, runs = options.measure(runs_of, (len(REGULARISERS), 1, len(seeds)))
    shape = (len(REGULARISERS), len(seeds))
    top, trace, trace_se = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    for (i, _, s), run in runs.items():
        options.log(f"sharpness of {run}")
        result = sharpness(run, options=measure)
        top[i, s] = result.top_eigenvalue
        trace[i, s], trace_se[i, s] = result.trace
    path = out / FILE
    write_result(
        path,
        "l2sp_sharpness",
        {
            "regularisers": list(REGULARISERS),
            "seeds": np.array(seeds),
            "runs": np.array(
                [[str(runs[i, 0, s]) for s in range(len(seeds))] for i in range(len(REGULARISERS))],
                dtype=h5py.string_dtype(),
            ),
            "top_eigenvalue": top,
            "trace": trace,
            "trace_se": trace_se,
            "test_acc": accuracy[:, 0],
        },
        attrs={
            "pair": options.pair,
            "model": options.model,
            "target": task,
            "per_class": per_class,
            "epochs": epochs,
            "quick": options.quick,
            "sharpness": {
                "batches": measure.batches,
                "iterations": measure.iterations,
                "tol": measure.tol,
                "hutchinson_samples": measure.hutchinson_samples,
                "seed": measure.probe.seed,
            },  # fmt: skip
        },
        summary={"runs": len(runs), "seconds": time.perf_counter() - started},
    )
    return [path]


@register_table("l2sp-sharpness")
def sharpness_table() -> str:
    """Per pair, from its committed file: each regulariser's top eigenvalue, trace and test
    accuracy (mean ± sd over seeds), then L2-SP minus L2 paired by seed (mean ± sd, and
    its paired t)."""
    lines = [
        "| pair | target | regulariser | top eigenvalue | trace | test accuracy |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for pair in PAIRS:
        with h5py.File(ROOT / results_folder(pair) / FILE) as f:
            target, per_class = str(f.attrs["target"]), int(f.attrs["per_class"])
            values = {m: f[m][()] * (100 if m == "test_acc" else 1) for m in MEASURES}
        where = f"| {pair} | {target}, {per_class}/class |"
        for i, reg in enumerate(REGULARISERS):
            cells = [mean_sd(values[m][i], _spec(m)[1:]) for m in MEASURES]
            lines.append(f"{where} {LABELS[reg]} | " + " | ".join(cells) + " |")
        paired = [paired_t(values[m][1] - values[m][0]) for m in MEASURES]
        cells = [f"{plus_minus(t.mean, t.sd, _spec(m), _spec(m)[1:])} (t {t.t:.1f})"
                 for m, t in zip(MEASURES, paired)]  # fmt: skip
        lines.append(f"{where} L2-SP − L2, paired (± sd) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _spec(measure: str) -> str:
    return "+.0f" if measure == "trace" else "+.1f"
