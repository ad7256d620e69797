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

from dataclasses import dataclass

import numpy as np

from finetune.runs import run_summary
from landscape.experiments.repro import ClaimResult, ReproOptions, mean_and_spread, register_claim
from probes.distance import distance_between_runs

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


@register_claim(
    NAME,
    "Pre-trained weights beat random init on small targets, most with the least data",
    "Kornblith, Shlens, Le 2019: fine-tuning pre-trained networks beats training from random "
    "initialisation on small datasets; the gap narrows as the target dataset grows.",
)
def transfer(options: ReproOptions) -> ClaimResult:
    source = options.source_run()
    seeds = options.seeds_or(quick=(0, 1), full=(0, 1, 2, 3, 4))
    chosen = settings(options)
    values = np.full((len(INITS) + 1, len(chosen), len(seeds)), np.nan)
    moved = np.full((len(INITS), len(chosen)), np.nan)
    for j, setting in enumerate(chosen):
        recipe = options.target_recipe(setting.spec)
        epochs = QUICK_EPOCHS if options.quick else recipe["epochs"]
        for i, init in enumerate(INITS):
            extra = {"init": str(source)} if init == "pre-trained" else {}
            for s, seed in enumerate(seeds):
                run = options.finetune(
                    f"transfer-{setting.role}-n{setting.n or 'all'}-{'pt' if extra else 'rt'}"
                    f"-e{epochs}-seed{seed}",
                    {
                        **recipe,
                        **extra,
                        "train_per_class": setting.n,
                        "epochs": epochs,
                        "seed": seed,
                        "split_seed": seed,
                    },
                )
                values[i, j, s] = run_summary(run)["test_acc"]
                if s == 0:
                    moved[i, j] = distance_between_runs(run).total["relative_distance"]
    values[2] = values[0] - values[1]
    mean, spread = mean_and_spread(values)
    gap, gap_sd = mean[2], spread[2]
    errors = 2 * gap_sd / np.sqrt(len(seeds)) if len(seeds) > 1 else np.full_like(gap, np.nan)
    ratios = gap / np.where(errors > 0, errors, np.nan)
    statistic = float(np.nanmin(ratios)) if len(seeds) > 1 else float(gap.min())
    threshold = 1.0 if len(seeds) > 1 else 0.0
    held = statistic > threshold
    labels = [setting.label for setting in chosen]
    verdict = (
        "pre-trained minus random-init test accuracy: "
        + ", ".join(
            f"{label} {100 * g:+.1f} ± {100 * e:.1f} points"
            for label, g, e in zip(labels, gap, gap_sd)
        )
        + f" ({len(seeds)} seeds, paired); smallest gap / 2 standard errors = "
        f"{statistic:.2f} {'>' if held else '<='} {threshold:g}"
    )
    notes = [
        f"source {options.pair_recipes.source_recipe(options.model)['data']} "
        f"(test accuracy {run_summary(source)['test_acc']:.3f}); targets "
        + ", ".join(f"{setting.label} = {setting.spec}" for setting in chosen)
        + f"; the demo's target recipe, {epochs} epochs",
        "relative distance of the final weights from their initial ones (seed "
        f"{seeds[0]}), pre-trained vs random init: "
        + ", ".join(f"{label} {a:.3f} vs {b:.3f}" for label, a, b in zip(labels, *moved)),
    ]
    if not options.quick:
        for role in ("near", "far"):
            j_small, j_large = (j for j, setting in enumerate(chosen) if setting.role == role)
            per_seed = values[2, j_small] - values[2, j_large]
            notes.append(
                f"{role}: the gap at {chosen[j_small].size} minus the gap at "
                f"{chosen[j_large].size} = {100 * per_seed.mean():+.1f} ± "
                f"{100 * per_seed.std(ddof=1):.1f} points (> 0: narrows with more data, "
                "as the paper)"
            )
    return ClaimResult(
        rows=["pre-trained (P-T)", "random init (RI-T)", "gap (P-T - RI-T)"],
        columns=labels,
        values=values,
        x=np.arange(len(labels), dtype=np.float64),
        xlabel="setting: " + ", ".join(f"{j} = {label}" for j, label in enumerate(labels)),
        ylabel="test accuracy",
        series={init: (mean[i], spread[i]) for i, init in enumerate(INITS)},
        statistic=statistic,
        threshold=threshold,
        held=held,
        verdict=verdict,
        notes=notes,
    )
