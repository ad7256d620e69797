"""Do L2-SP runs sit in flatter or sharper minima than L2 runs on the same target? The L2-SP
claim (``landscape repro l2sp``) fine-tunes the pair's near target at 10 images per class
under plain L2 and under L2-SP, 600 steps, seeds 0-4 (each seed also draws the training
subset). For every such run this measures the sharpness of its final training loss
(``landscape sharpness`` defaults: top Hessian eigenvalue, Hutchinson trace) and prints,
per regulariser, mean ± sd over seeds beside the test accuracy, and the paired difference
L2-SP minus L2 with its standard error.

Run with ``python tests/experiments/l2sp_sharpness.py --pair real`` (the claim's runs in
``results/repro/real/runs``; ``--pair synthetic``: ``results/repro/runs``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from finetune.data import get_dataset
from finetune.runs import run_summary
from landscape.experiments.recipes import PAIRS, TARGET_RECIPE
from landscape.experiments.repro.l2sp import epochs_for
from landscape.geometry.sharpness import sharpness

SEEDS = (0, 1, 2, 3, 4)
PER_CLASS = 10
REGULARISERS = ("l2", "l2sp")
RUNS = {"synthetic": Path("results/repro/runs"), "real": Path("results/repro/real/runs")}


def measured(runs: Path, reg: str, epochs: int) -> np.ndarray:
    """(seeds, 3): top eigenvalue, trace and test accuracy of each seed's run."""
    rows = []
    for seed in SEEDS:
        run = runs / f"l2sp-near-{reg}-n{PER_CLASS}-e{epochs}-seed{seed}-split{seed}"
        result = sharpness(run)
        rows.append((result.top_eigenvalue, result.trace[0], run_summary(run)["test_acc"]))
    return np.array(rows)


def pm(values: np.ndarray, digits: int = 1) -> str:
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", default="synthetic", choices=tuple(RUNS))
    args = parser.parse_args()
    pair = PAIRS[args.pair]
    recipe = pair.target_recipe(TARGET_RECIPE["model"], pair.near)
    classes = get_dataset(pair.near, "test", image_size=recipe.get("image_size")).num_classes
    epochs = epochs_for(PER_CLASS, classes, recipe["batch_size"], quick=False)
    results = {reg: measured(RUNS[args.pair], reg, epochs) for reg in REGULARISERS}
    print("| pair | target | regulariser | top eigenvalue | trace | test accuracy |")
    print("| --- " * 6 + "|")
    for reg, values in results.items():
        print(
            f"| {args.pair} | {pair.near}, {PER_CLASS}/class | {reg} | {pm(values[:, 0])} "
            f"| {pm(values[:, 1], 0)} | {pm(100 * values[:, 2])} |"
        )
    paired = results["l2sp"] - results["l2"]
    error = paired.std(axis=0, ddof=1) / np.sqrt(len(SEEDS))
    mean = paired.mean(axis=0)
    print(
        f"| {args.pair} | | L2-SP − L2 (paired, ± se) | {mean[0]:+.1f} ± {error[0]:.1f} "
        f"| {mean[1]:+.0f} ± {error[1]:.0f} | {100 * mean[2]:+.1f} ± {100 * error[2]:.1f} |"
    )


if __name__ == "__main__":
    main()
