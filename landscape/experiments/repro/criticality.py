"""Neyshabur, Sedghi, Zhang 2020 §4, with Chatterji, Neyshabur, Sedghi 2019's module
criticality: which layer groups of a fine-tuned network carry the transfer? The paper finds
that in models fine-tuned from pre-trained weights the lower layers are robust to rewinding
toward their initial weights and the criticality sits in the higher layers.

The pair's target recipe is fine-tuned on the near and the far target, from the source
(P-T) and from random init (RI-T), with every seed; each run's groups are rewound toward the
run's own initial weights (``landscape criticality RUN``: BatchNorm re-estimated, on the
training split). Judged on where the most critical body group of the P-T runs sits: its
depth from 0 (the stem) to 1 (the last group before the head), averaged over targets and
seeds; above 0.5 is the paper's upper half. The head is left out of the location: a P-T
run's head starts from a fresh random draw, so rewinding it only measures that a classifier
must be learnt."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from landscape.experiments.options import ReproOptions
from landscape.experiments.repro import ClaimResult, register_claim
from landscape.geometry.criticality import CriticalityResult, module_criticality
from landscape.geometry.options import CRITICALITY_PROBE, CriticalityOptions
from probes.statistics import mean_and_spread

INITS = ("P-T", "RI-T")
COLUMNS = ["criticality", "error rise a=0", "distance"]
# Quick: three rewind points and three noise scales on a few examples; full: the command's
# defaults (11 points, 7 noise scales, 2 draws, every training example of a 10-per-class
# target).
QUICK = CriticalityOptions(
    points=3, sigmas=(0.01, 0.1, 1.0), draws=1,
    probe=replace(CRITICALITY_PROBE, examples=64, bn_batches=4),
)  # fmt: skip
FULL = CriticalityOptions()


@register_claim(
    "criticality",
    "Fine-tuned networks are critical in their higher layers, robust to rewinding below",
    "Neyshabur et al. 2020 (module criticality of Chatterji et al. 2019): in P-T models the "
    "lower layers can be rewound to their initial weights, the criticality sits higher",
)
def criticality(options: ReproOptions) -> ClaimResult:
    targets = options.near_and_far()
    seeds = options.seeds_or(quick=(0,), full=(0, 1, 2))
    measure = QUICK if options.quick else FULL
    source = options.source_run()
    settings = [(role, init) for role in targets for init in INITS]
    grid = {
        (s, k): (
            f"criticality-{role}-{init.lower()}-seed{seed}",
            {**options.target_recipe(targets[role]), "seed": seed,
             **({"init": str(source)} if init == "P-T" else {})},
        )
        for s, (role, init) in enumerate(settings)
        for k, seed in enumerate(seeds)
    }  # fmt: skip
    accuracy, runs = options.measure(grid, (len(settings), len(seeds)))
    measured = {}
    for index, run in runs.items():
        options.log(f"module criticality of {run}")
        out = options.runs / f"{grid[index][0]}-criticality.h5"
        measured[index] = module_criticality(run, options=measure, out=out)
    groups = max((r.groups for r in measured.values()), key=len)
    values, rise, location = _tables(measured, len(settings), groups, len(seeds))
    pretrained = [s for s, (_, init) in enumerate(settings) if init == "P-T"]
    statistic = float(np.nanmean(location[pretrained])) if _any(location[pretrained]) else np.nan
    held = bool(statistic > 0.5)
    where = "; ".join(
        f"{role} {init} {_depth_text(location[s])}" for s, (role, init) in enumerate(settings)
    )
    scale = f"0 = {groups[0]}, 1 = {groups[len(groups) - 2]}; > 0.5 needed"
    located = (
        f"the P-T runs' most critical body group sits at depth {statistic:.2f} ({scale})"
        if not np.isnan(statistic)
        else f"no body group of a P-T run is critical at epsilon {measure.epsilon:g} ({scale})"
    )
    mean_rise, spread = mean_and_spread(rise)
    return ClaimResult(
        rows=[f"{role} {init}: {group}" for role, init in settings for group in groups],
        columns=COLUMNS,
        values=values,
        x=np.arange(len(groups), dtype=np.float64),
        xlabel="layer group: " + ", ".join(f"{i} = {g}" for i, g in enumerate(groups)),
        ylabel="training error rise, group rewound to theta0",
        series={
            f"{role} {init}": (mean_rise[s], spread[s]) for s, (role, init) in enumerate(settings)
        },
        statistic=statistic,
        threshold=0.5,
        held=held,
        verdict=f"{located}: {'held' if held else 'not held'}; {where}",
        notes=notes(targets, seeds, source, measure, settings, accuracy),
    )


def _tables(
    measured: dict[tuple[int, int], CriticalityResult], settings: int, groups: list[str], seeds: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From each (setting, seed)'s measurement: the claim's table (settings x groups rows,
    COLUMNS, seeds), the error rise at a = 0 (settings, groups, seeds) and the depth of the
    most critical body group (settings, seeds)."""
    body = len(groups) - 1
    values = np.full((settings * len(groups), len(COLUMNS), seeds), np.nan)
    rise = np.full((settings, len(groups), seeds), np.nan)
    location = np.full((settings, seeds), np.nan)
    for (s, k), result in measured.items():
        n = len(result.groups)
        rows = slice(s * len(groups), s * len(groups) + n)
        criticalities = np.array([c.value for c in result.criticalities])
        rise[s, :n, k] = result.curve_error[:, 0] - result.final_error
        values[rows, 0, k] = criticalities
        values[rows, 1, k] = rise[s, :n, k]
        values[rows, 2, k] = result.distance
        location[s, k] = critical_depth(criticalities[:body])
    return values, rise, location


def notes(
    targets: dict[str, str],
    seeds: tuple[int, ...],
    source: Path,
    measure: CriticalityOptions,
    settings: list[tuple[str, str]],
    accuracy: np.ndarray,
) -> list[str]:
    """The setting, the criticality grid, what the columns hold, the runs' test accuracy."""
    return [
        f"targets {targets['near']} and {targets['far']}, the pair's target recipe, "
        f"{len(seeds)} seeds; P-T from {source}; each run rewound toward its own initial "
        "weights (the source's body and a fresh head for P-T, the random draw for RI-T)",
        f"criticality grid: {measure.points} rewind points, sigmas "
        + ", ".join(f"{s:g}" for s in measure.sigmas)
        + f" of each group's rms weight, {measure.draws} noise draws, epsilon "
        f"{measure.epsilon:g} of training error, BatchNorm re-estimated on "
        f"{measure.probe.bn_batches} batches",
        "columns: criticality, training error with the group at theta0 minus the run's, "
        "and the group's distance to theta0; "
        "depth of the most critical body group (ties averaged; undefined when no group is "
        "critical); the head is left out of it, and out of the P-T rows (a fresh head)",
        "test accuracy: "
        + ", ".join(
            f"{role} {init} {a:.3f}" for (role, init), a in zip(settings, accuracy.mean(axis=1))
        ),  # fmt: skip
    ]


def critical_depth(criticalities: np.ndarray) -> float:
    """Where the most critical group sits, from 0 (the first group) to 1 (the last): ties
    averaged; NaN when no group is critical (all 0)."""
    values = np.asarray(criticalities, dtype=np.float64)
    top = values.max()
    if top <= 0.0:
        return float("nan")
    depths = np.linspace(0.0, 1.0, len(values)) if len(values) > 1 else np.zeros(1)
    return float(depths[values == top].mean())


def _any(values: np.ndarray) -> bool:
    return bool(np.any(~np.isnan(values)))


def _depth_text(depths: np.ndarray) -> str:
    critical = depths[~np.isnan(depths)]
    if not len(critical):
        return "nowhere critical"
    spread = f" ± {critical.std(ddof=1):.2f}" if len(critical) > 1 else ""
    none = len(depths) - len(critical)
    nowhere = f" ({none} of {len(depths)} runs nowhere critical)" if none else ""
    return f"{critical.mean():.2f}{spread}{nowhere}"
