"""Kornblith, Shlens, Le 2019: regularisers used in pre-training (label smoothing, dropout)
keep or raise the source accuracy but hurt the transfer of penultimate-layer features to
other tasks, and fine-tuning largely recovers the loss.

The pair's source recipe is pre-trained four times: as it is, with label smoothing 0.1, with
dropout 0.5 before the classifier, and with both; each source is then fine-tuned and
linearly probed (every layer group but the head frozen, BatchNorm statistics too) on the
near and the far target with every seed. Judged on the source with both regularisers
against the plain one, in three parts, from the table alone (``judge``, so the verdict can
be recomputed from a committed file): it is at least as accurate on its own task (within
half a point: one run per source, no seed spread); its linear probes are worse, averaged
over the targets per seed, by a one-sided paired t test at 5%; and fine-tuning recovers,
its gap above the probe's by the same test, paired by seed. The sources with one
regulariser each say which of the two does what."""

from __future__ import annotations

import math
from dataclasses import replace
from itertools import product
from pathlib import Path

import numpy as np

from finetune.errors import ConfigError
from finetune.groups import layer_groups
from finetune.models import create_model
from finetune.runs import run_summary
from landscape.experiments.options import ReproOptions
from landscape.experiments.recipes import (
    PAIRS,
    PROBE_LR,
    QUICK_SOURCE,
    QUICK_SOURCE_NAME,
    linear_probe,
    results_folder,
)
from landscape.experiments.repro import ClaimResult, judged_outcome, read_claim, register_claim
from landscape.experiments.tables import ROOT, register_table
from probes.statistics import paired_t, seed_sd

# Each source's regularisers on top of the pair's source recipe; the claim is judged on
# the last against the first.
SOURCES: dict[str, dict[str, float]] = {
    "plain": {},
    "label smoothing": {"label_smoothing": 0.1},
    "dropout": {"drop_rate": 0.5},
    "both": {"label_smoothing": 0.1, "drop_rate": 0.5},
}
MODES = ("fine-tune", "linear probe")
SOURCE_MARGIN = 0.005  # "as good or better" on the source: within half a point
ROUNDING = 1e-9  # accuracies are fractions: exactly half a point below is within
ALPHA = 0.05  # the one-sided level of the probe and recovery parts' paired t tests


def judge(result: ClaimResult) -> ClaimResult:
    """The verdict from the table alone (sources x [source acc, then each target's modes]
    x seeds): the three parts for the source with both regularisers against the plain."""
    values = result.values
    roles = [c.removesuffix(f" {MODES[0]}") for c in result.columns[1 :: len(MODES)]]
    # Each source minus the plain one, in points, averaged over the targets per seed:
    # (sources, modes, seeds).
    gaps = 100 * (values[:, 1:] - values[:1, 1:]).reshape(len(values), len(roles), len(MODES), -1)
    per_seed = gaps.mean(axis=1)
    tuned, probe = per_seed[-1]
    hurt, recovers = paired_t(-probe, ALPHA), paired_t(tuned - probe, ALPHA)
    source_gap = 100 * (values[-1, 0, 0] - values[0, 0, 0])
    parts = {
        "source kept": source_gap >= -100 * SOURCE_MARGIN - ROUNDING,
        "probe hurt": hurt.beyond,
        "fine-tuning recovers": recovers.beyond,
    }
    count = sum(parts.values())
    same_sign = parts["source kept"] and hurt.mean > 0 and recovers.mean > 0
    mean, sd = per_seed.mean(axis=2), seed_sd(per_seed)
    others = "; ".join(
        f"{name}: source {100 * (values[i, 0, 0] - values[0, 0, 0]):+.1f}, probe "
        f"{mean[i, 1]:+.1f} ± {sd[i, 1]:.1f}, fine-tune {mean[i, 0]:+.1f} ± {sd[i, 0]:.1f}"
        for i, name in enumerate(result.rows[1:-1], start=1)
    )
    verdict = (
        f"{count} of 3 parts as the paper for both regularisers: source accuracy "
        f"{values[0, 0, 0]:.3f} plain vs {values[-1, 0, 0]:.3f} ({source_gap:+.1f} points); "
        f"minus plain over {' and '.join(roles)} (± sd over {hurt.n} seeds): linear probe "
        f"{-hurt.mean:+.1f} ± {hurt.sd:.1f} (paired t {hurt.t:.2f}), fine-tuning "
        f"{mean[-1, 0]:+.1f} ± {sd[-1, 0]:.1f} points, recovering {recovers.mean:+.1f} ± "
        f"{recovers.sd:.1f} (paired t {recovers.t:.2f}; > {hurt.bar:.2f} needed, one-sided "
        f"{ALPHA:g}) ("
        + ", ".join(f"{part}: {'yes' if ok else 'no'}" for part, ok in parts.items())
        + f"): {judged_outcome(count == 3, same_sign)}; {others}"
    )
    return replace(result, statistic=float(count), threshold=2.5, held=count == 3,
                   verdict=verdict)  # fmt: skip


@register_claim(
    "regularised_source",
    "Pre-training regularisers hurt frozen features; fine-tuning recovers",
    "Kornblith, Shlens, Le 2019: label smoothing and dropout in pre-training keep source "
    "accuracy but hurt linear probes of the penultimate features on other tasks, and the "
    "gap shrinks under fine-tuning",
    judge=judge,
)
def regularised_source(options: ReproOptions) -> ClaimResult:
    targets = options.near_and_far()
    seeds = options.seeds_or(quick=(0, 1), full=(0, 1, 2))
    sources = _sources(options)
    image = {"image_size": QUICK_SOURCE["image_size"]} if options.quick else {}
    n_groups = len(layer_groups(create_model(options.model, 10, QUICK_SOURCE["image_size"])))
    columns = ["source acc"] + [f"{role} {mode}" for role in targets for mode in MODES]
    grid = {}
    for (i, source), (j, (role, data)), (k, seed) in product(
        enumerate(sources.values()), enumerate(targets.items()), enumerate(seeds)
    ):
        base = {**options.target_recipe(data), **image, "init": str(source), "seed": seed}
        tag = f"{role}-from-{source.name}-seed{seed}"
        grid[i, 1 + 2 * j, k] = (f"regularised-finetune-{tag}", base)
        grid[i, 2 + 2 * j, k] = (f"regularised-probe-lr{PROBE_LR:g}-{tag}",
                                 linear_probe(base, n_groups))  # fmt: skip
    values, _ = options.measure(grid, (len(SOURCES), len(columns), len(seeds)))
    values[:, 0, 0] = [float(run_summary(source)["test_acc"]) for source in sources.values()]

    notes = [
        "sources: the pair's source recipe"
        + (f" with {_settings(QUICK_SOURCE)}" if options.quick else "")
        + ", as it is and with "
        + "; ".join(f"{_settings(extra)} ({name})" for name, extra in SOURCES.items() if extra)
        + "; source accuracy = its test accuracy (one run per source, no seed spread)",
        f"targets {' and '.join(targets.values())}, the pair's target recipe"
        + (f" at {QUICK_SOURCE['image_size']}px" if options.quick else "")
        + f", {len(seeds)} seeds; linear probe = the first {n_groups - 1} of {n_groups} "
        f"layer groups frozen (BatchNorm statistics too), head trained at lr {PROBE_LR:g}",
        "gaps: a source's test accuracy minus the plain source's, in points, averaged over "
        "the two targets per seed; ± the sd over seeds",
    ]
    series = {
        f"{role} {mode}": (values[:, 1 + 2 * j + m].mean(axis=1), seed_sd(values[:, 1 + 2 * j + m]))
        for j, role in enumerate(targets)
        for m, mode in enumerate(MODES)
    }
    return judge(
        ClaimResult(
            rows=list(SOURCES),
            columns=columns,
            values=values,
            x=np.arange(len(SOURCES), dtype=np.float64),
            xlabel="source: " + ", ".join(f"{i} = {name}" for i, name in enumerate(SOURCES)),
            ylabel="target test accuracy",
            series=series,
            statistic=math.nan,
            threshold=math.nan,
            held=False,
            verdict="",
            notes=notes,
        )
    )


def _sources(options: ReproOptions) -> dict[str, Path]:
    """The pair's source recipe trained with each entry of SOURCES (quick: smaller)."""
    if options.source is not None:
        raise ConfigError(
            "regularised_source pre-trains all of its sources from the pair's recipe; "
            "leave out --init"
        )
    recipe = options.pair_recipes.source_recipe(options.model)
    prefix = "source"
    if options.quick:
        recipe = {**recipe, **QUICK_SOURCE}
        prefix = QUICK_SOURCE_NAME
    named = {}
    for name, extra in SOURCES.items():
        if extra or options.quick:
            suffix = "".join(f"-{_short(k)}{v:g}" for k, v in extra.items())
            named[name] = (prefix + suffix, {**recipe, **extra})
    trained = options.pretrain_all(dict(named.values()))
    return {name: trained[named[name][0]] if name in named else options.source_run()
            for name in SOURCES}  # fmt: skip


def _settings(values: dict) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in values.items())


def _short(field: str) -> str:
    return {"label_smoothing": "ls", "drop_rate": "drop"}[field]


@register_table("regularised-source")
def regularised_source_table() -> str:
    """Per pair and source, from the committed files: its source accuracy and the targets'
    fine-tuned and probed test accuracy (mean ± sd over seeds), then each pair's verdict."""
    result, _, _ = read_claim(ROOT / results_folder("synthetic") / "regularised_source.h5")
    header = ["pair", "source", *result.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    verdicts = []
    for pair in PAIRS:
        result, _, _ = read_claim(ROOT / results_folder(pair) / "regularised_source.h5")
        mean, sd = result.values.mean(axis=2), seed_sd(result.values)
        for i, source in enumerate(result.rows):
            cells = [f"{result.values[i, 0, 0]:.3f}"] + [
                f"{m:.3f} ± {d:.3f}" for m, d in zip(mean[i, 1:], sd[i, 1:])
            ]
            lines.append(f"| {pair} | {source} | {' | '.join(cells)} |")
        verdicts.append(f"- **{pair}**: {result.verdict}")
    return "\n".join([*lines, "", *verdicts])
