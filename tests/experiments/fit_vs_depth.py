"""Do the fit measures predict fine-tuned accuracy? (Plested & Gedeon 2021's second claim:
measures of how well the pre-trained weights fit the target can guide the non-binary
choices.) The depth claim (``landscape repro depth``) fine-tunes each target with the first
K layer groups frozen at the pre-trained weights, K = 1 .. G-1, so the part that trains
receives group K-1's representation as it is. If a fit measure of group K-1 says how good
that representation is for the target, it should rank the K by accuracy.

For each target of a depth result file, this measures the fit of the pair's source on the
target with the recipe the depth runs used (10 images per class, cross-validated, with
standard errors), then gives Spearman's rank correlation between each measure of group K-1
and the mean test accuracy at K: per target (over K), and pooled over every target and K.
The BN distance enters negated (smaller is a better fit). Prints a markdown table.

Run with ``python tests/experiments/fit_vs_depth.py --pair real results/repro/real/depth.h5``
(the pair's source must be the one the depth runs were trained from: ``--source RUN``,
default the pair's ``runs/source`` beside the file).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np
from scipy.stats import spearmanr

from finetune.config import build_config
from landscape.experiments.recipes import MODEL, PAIRS
from probes.fit import fit_measures
from probes.options import ProbeOptions

MEASURES = ("knn_acc", "linear_acc", "group_logme", "bn_distance")


def scores(fit, measure: str) -> np.ndarray:
    """A measure per body group, oriented so that larger means a better fit."""
    values = np.asarray(getattr(fit, measure), dtype=np.float64)
    return -values if measure == "bn_distance" else values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("depth", type=Path, help="a depth result file (kind repro)")
    parser.add_argument("--pair", default="synthetic", choices=sorted(PAIRS))
    parser.add_argument("--source", type=Path, help="the source run (default: runs/source)")
    args = parser.parse_args()
    source = args.source or args.depth.parent / "runs" / "source"
    pair = PAIRS[args.pair]
    with h5py.File(args.depth) as f:
        targets = list(f["table/rows"].asstr()[()])
        accuracy = f["table/mean"][()]  # (targets, K = 0 .. G-1)
    per_target, pooled = {m: [] for m in MEASURES}, {m: ([], []) for m in MEASURES}
    rows = []
    for j, name in enumerate(targets):
        spec = getattr(pair, name, name)  # synthetic files name roles, real ones specs
        config = build_config(
            "finetune", {}, {**pair.target_recipe(MODEL, spec), "init": str(source)}
        )
        fit = fit_measures(config.model, config.data, options=ProbeOptions(device="cpu"))
        acc = accuracy[j, 1:]  # K = 1 .. G-1 <-> group K-1
        for m in MEASURES:
            x = scores(fit, m)[: len(acc)]
            per_target[m].append(float(spearmanr(x, acc)[0]))
            pooled[m][0].extend(x)
            pooled[m][1].extend(acc)
        rows.append(
            f"| {spec} | "
            + ", ".join(f"{a:.3f}" for a in acc)
            + " | "
            + ", ".join(f"{a:.2f}±{s:.2f}" for a, s in zip(fit.linear_acc, fit.linear_se))
            + " | "
            + " | ".join(f"{r[-1]:+.2f}" for r in per_target.values())
            + " |"
        )
    print(f"source {source}; test accuracy at K = 1 .. {accuracy.shape[1] - 1} frozen groups")
    print(
        "| target | test acc, K = 1 .. | linear probe of group K-1 | "
        + " | ".join(f"rho {m}" for m in MEASURES)
        + " |"
    )
    print("| --- " * (3 + len(MEASURES)) + "|")
    print("\n".join(rows))
    print(
        "| pooled (all targets and K) | | | "
        + " | ".join(f"{float(spearmanr(*pooled[m])[0]):+.2f}" for m in MEASURES)
        + " |"
    )


if __name__ == "__main__":
    main()
