"""Do the fit measures predict fine-tuned accuracy? (Plested & Gedeon 2021's second claim:
measures of how well the pre-trained weights fit the target can guide the non-binary
choices.) The depth claim (``landscape repro depth``) fine-tunes each target with the first
K layer groups frozen at the pre-trained weights, K = 1 .. G-1, so the part that trains
receives group K-1's representation as it is. If a fit measure of group K-1 says how good
that representation is for the target, it should rank the K by test accuracy.

For each target of the pair's committed depth claim (``OUT/depth.h5``) the study measures
the fit of the pair's source on the target with the recipe the depth runs used (10 images
per class, cross-validated), then gives Spearman's rank correlation between each measure of
group K-1 and the mean test accuracy at K, per target (over K) and pooled over the targets
and K, each with its permutation p-value. The BN distance enters negated (smaller is a
better fit), so that for every measure larger means a better fit."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from finetune.config import build_config
from finetune.result_files import write_result
from landscape.experiments.options import ReproOptions
from landscape.experiments.recipes import PAIRS, results_folder
from landscape.experiments.studies import register_study
from landscape.experiments.tables import ROOT, register_table
from probes.fit import fit_measures
from probes.options import ProbeOptions
from probes.statistics import rank_correlation

NAME = "fit_vs_depth"
FILE = "fit_vs_depth.h5"
MEASURES = {"knn_acc": "kNN", "linear_acc": "linear probe", "group_logme": "LogME",
            "bn_distance": "−BN distance"}  # fmt: skip


def scores(fit, measure: str) -> np.ndarray:
    """A measure per body group, oriented so that larger means a better fit."""
    values = np.asarray(getattr(fit, measure), dtype=np.float64)
    return -values if measure == "bn_distance" else values


@register_study(NAME, "do the fit measures rank the freezing depth the depth claim measured?")
def fit_vs_depth(options: ReproOptions, out: Path) -> list[Path]:
    with h5py.File(out / "depth.h5") as f:
        roles = list(f["table/rows"].asstr()[()])
        accuracy = f["table/mean"][()][:, 1:]  # (targets, K = 1 .. G-1)
    source = options.source_run(read=True)
    targets = list(options.near_and_far().values())
    measured = {m: np.full(accuracy.shape, np.nan) for m in MEASURES}
    for j, target in enumerate(targets):
        options.log(f"fit of {source} on {target}")
        config = build_config("finetune", {}, {**options.target_recipe(target),
                                               "init": str(source)})  # fmt: skip
        fit = fit_measures(config.model, config.data, options=ProbeOptions(device="cpu"))
        for m in MEASURES:
            measured[m][j] = scores(fit, m)[: accuracy.shape[1]]
    rho = {m: [rank_correlation(measured[m][j], accuracy[j]) for j in range(len(targets))]
           for m in MEASURES}  # fmt: skip
    pooled = {m: rank_correlation(measured[m].ravel(), accuracy.ravel()) for m in MEASURES}
    path = out / FILE
    datasets = {"targets": targets, "roles": roles, "accuracy": accuracy}
    for m in MEASURES:
        datasets[f"scores/{m}"] = measured[m]
        datasets[f"rho/{m}"] = np.array([r.rho for r in rho[m]])
        datasets[f"p_value/{m}"] = np.array([r.p_value for r in rho[m]])
        datasets[f"pooled/{m}"] = np.array([pooled[m].rho, pooled[m].p_value])
    write_result(
        path,
        "fit_vs_depth",
        datasets,
        attrs={"pair": options.pair, "source": str(source), "measures": list(MEASURES)},
        summary={"targets": len(targets)},
    )
    return [path]


def _cell(rho: float, p: float) -> str:
    return f"{rho:+.2f} (p {'< 0.01' if p < 0.005 else f'{p:.2f}'})"


@register_table("fit-vs-depth")
def _documented_table() -> str:
    """The committed studies of both pairs: rho (permutation p) per target and pooled."""
    lines = [
        "| pair | target | " + " | ".join(f"ρ {label}" for label in MEASURES.values()) + " |",
        "|" + " --- |" * (2 + len(MEASURES)),
    ]
    for pair in PAIRS:
        with h5py.File(ROOT / results_folder(pair) / FILE) as f:
            targets = list(f["targets"].asstr()[()])
            for j, target in enumerate(targets):
                cells = [_cell(f[f"rho/{m}"][j], f[f"p_value/{m}"][j]) for m in MEASURES]
                lines.append(f"| {pair} | {target} | " + " | ".join(cells) + " |")
            pooled = [_cell(*f[f"pooled/{m}"][()]) for m in MEASURES]
            lines.append(f"| {pair} | pooled ({f['accuracy'].size} points) | "
                         + " | ".join(pooled) + " |")  # fmt: skip
    return "\n".join(lines)
