"""Kornblith, Shlens, Le 2019, *Do better ImageNet models transfer better?* (§4.3): on small
target datasets, fine-tuning pre-trained weights beats training the same architecture from
random initialisation, and the advantage is largest when target data are scarcest.

Experiment: the pair's source, fine-tuned with the demo's target recipe (30 epochs, SGD lr
0.01, L2 5e-4) on the near and the far target at 10 images per class and at a larger size
(near: 50 per class; far: all its training images), against the same recipe from random
init (P-T versus RI-T). Seed s draws the training subset too (``split_seed`` s); P-T and
RI-T of one seed share it, so gaps are paired.

Statistic: the smallest, over the four target settings, of gap / (2 standard errors of the
paired gap), > 1 when pre-training wins everywhere by more than seed noise. The second
half, the gap shrinking with more data, is reported per target beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from finetune.runs import run_summary
from landscape.experiments.options import ReproOptions
from landscape.experiments.repro import ClaimResult, register_claim
from probes.distance import distance_between_runs
from probes.statistics import mean_and_spread

NAME = "transfer"
SMALL = 10  # images per class of the scarce setting
LARGER = {"near": 50, "far": None}  # None: every training image of the target
QUICK_EPOCHS = 15
INITS = ("pre-trained", "random")


@dataclass(frozen=True)
class Setting:
    """One target setting: the target's ``role`` (near, far), its dataset ``spec`` and the
    training images per class ``n`` (None: all of them)."""

    role: str
    spec: str
    n: int | None

    @property
    def size(self) -> str:
        return f"{self.n or 'all'}/class"

    @property
    def label(self) -> str:
        return f"{self.role} {self.size}"


def settings(options: ReproOptions) -> list[Setting]:
    """Every target setting; quick keeps the scarce ones."""
    near, far = options.near_and_far().values()
    return [
        Setting(role, spec, n)
        for role, spec in (("near", near), ("far", far))
        for n in ((SMALL,) if options.quick else (SMALL, LARGER[role]))
    ]


def judge(result: ClaimResult) -> ClaimResult:
    """The verdict from the table alone (P-T, RI-T, gap x settings x seeds): the smallest
    gap over twice its standard error over seeds must be above 1 (with one seed: the
    smallest gap above 0)."""
    seeds = result.values.shape[2]
    mean, spread = mean_and_spread(result.values)
    gap, gap_sd = mean[2], spread[2]
    errors = 2 * gap_sd / np.sqrt(seeds) if seeds > 1 else np.full_like(gap, np.nan)
    ratios = gap / np.where(errors > 0, errors, np.nan)
    statistic = float(np.nanmin(ratios)) if seeds > 1 else float(gap.min())
    threshold = 1.0 if seeds > 1 else 0.0
    held = statistic > threshold
    verdict = (
        "pre-trained minus random-init test accuracy: "
        + ", ".join(
            f"{label} {100 * g:+.1f} ± {100 * e:.1f} points"
            for label, g, e in zip(result.columns, gap, gap_sd)
        )
        + f" ({seeds} seeds, paired); smallest gap / 2 standard errors = "
        f"{statistic:.2f} {'>' if held else '<='} {threshold:g}"
    )
    return replace(result, statistic=statistic, threshold=threshold, held=held, verdict=verdict)


@register_claim(
    NAME,
    "Pre-trained weights beat random init on small targets, most with the least data",
    "Kornblith, Shlens, Le 2019: fine-tuning pre-trained networks beats training from random "
    "initialisation on small datasets; the gap narrows as the target dataset grows.",
    judge=judge,
)
def transfer(options: ReproOptions) -> ClaimResult:
    source = options.source_run()
    seeds = options.seeds_or(quick=(0, 1), full=(0, 1, 2, 3, 4))
    chosen = settings(options)
    epochs = QUICK_EPOCHS if options.quick else options.target_recipe(chosen[0].spec)["epochs"]
    grid = {
        (i, j, s): (
            f"transfer-{setting.role}-n{setting.n or 'all'}-{'pt' if i == 0 else 'rt'}"
            f"-e{epochs}-seed{seed}",
            {**options.target_recipe(setting.spec), "train_per_class": setting.n,
             "epochs": epochs, "seed": seed, "split_seed": seed,
             **({"init": str(source)} if i == 0 else {})},
        )
        for j, setting in enumerate(chosen)
        for i in range(len(INITS))
        for s, seed in enumerate(seeds)
    }  # fmt: skip
    values, runs = options.measure(grid, (len(INITS) + 1, len(chosen), len(seeds)))
    values[2] = values[0] - values[1]
    moved = np.full((len(INITS), len(chosen)), np.nan)
    for (i, j, s), run in runs.items():
        if s == 0:
            moved[i, j] = distance_between_runs(run).total["relative_distance"]
    mean, spread = mean_and_spread(values)
    labels = [setting.label for setting in chosen]
    return judge(ClaimResult(
        rows=["pre-trained (P-T)", "random init (RI-T)", "gap (P-T - RI-T)"],
        columns=labels,
        values=values,
        x=np.arange(len(labels), dtype=np.float64),
        xlabel="setting: " + ", ".join(f"{j} = {label}" for j, label in enumerate(labels)),
        ylabel="test accuracy",
        series={init: (mean[i], spread[i]) for i, init in enumerate(INITS)},
        statistic=math.nan,
        threshold=math.nan,
        held=False,
        verdict="",
        notes=notes(options, source, chosen, epochs, values, moved, seeds[0]),
    ))  # fmt: skip


def notes(
    options: ReproOptions,
    source: Path,
    chosen: list[Setting],
    epochs: int,
    values: np.ndarray,
    moved: np.ndarray,
    first_seed: int,
) -> list[str]:
    """The source and targets, how far each init moved, and whether the gap narrows."""
    labels = [setting.label for setting in chosen]
    found = [
        f"source {options.pair_recipes.source_recipe(options.model)['data']} "
        f"(test accuracy {run_summary(source)['test_acc']:.3f}); targets "
        + ", ".join(f"{setting.label} = {setting.spec}" for setting in chosen)
        + f"; the demo's target recipe, {epochs} epochs",
        "relative distance of the final weights from their initial ones (seed "
        f"{first_seed}), pre-trained vs random init: "
        + ", ".join(f"{label} {a:.3f} vs {b:.3f}" for label, a, b in zip(labels, *moved)),
    ]
    if not options.quick:
        for role in ("near", "far"):
            j_small, j_large = (j for j, setting in enumerate(chosen) if setting.role == role)
            per_seed = values[2, j_small] - values[2, j_large]
            found.append(
                f"{role}: the gap at {chosen[j_small].size} minus the gap at "
                f"{chosen[j_large].size} = {100 * per_seed.mean():+.1f} ± "
                f"{100 * per_seed.std(ddof=1):.1f} points (> 0: narrows with more data, "
                "as the paper)"
            )
    return found
