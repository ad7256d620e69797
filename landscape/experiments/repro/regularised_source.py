"""Kornblith, Shlens, Le 2019: regularisers used in pre-training (label smoothing, dropout)
keep or raise the source accuracy but hurt the transfer of penultimate-layer features to
other tasks, and fine-tuning largely recovers the loss.

The pair's source recipe is pre-trained twice, as it is and with label smoothing 0.1 and
dropout 0.5 before the classifier; each source is then fine-tuned and linearly probed (every
layer group but the head frozen, BatchNorm statistics too) on the near and the far target
with every seed. Judged on three parts: the regularised source is at least as accurate on
its own task (within half a point); its linear probes are worse, averaged over the targets,
by more than two standard errors; and its fine-tuning gap is smaller than its probe gap."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from finetune.errors import ConfigError
from finetune.groups import layer_groups
from finetune.models import create_model
from finetune.runs import run_summary
from landscape.experiments.recipes import (
    PROBE_LR,
    QUICK_SOURCE,
    QUICK_SOURCE_NAME,
    linear_probe,
)
from landscape.experiments.repro import ClaimResult, ReproOptions, register_claim

REGULARISERS = {"label_smoothing": 0.1, "drop_rate": 0.5}
SOURCES = ("plain", "regularised")
MODES = ("fine-tune", "linear probe")
SOURCE_MARGIN = 0.005  # "as good or better" on the source: within half a point


@register_claim(
    "regularised_source",
    "Pre-training regularisers hurt frozen features; fine-tuning recovers",
    "Kornblith, Shlens, Le 2019: label smoothing and dropout in pre-training keep source "
    "accuracy but hurt linear probes of the penultimate features on other tasks, and the "
    "gap shrinks under fine-tuning",
)
def regularised_source(options: ReproOptions) -> ClaimResult:
    targets = options.near_and_far()
    seeds = options.seeds_or(quick=(0, 1), full=(0, 1, 2))
    sources = _sources(options)
    image = {"image_size": QUICK_SOURCE["image_size"]} if options.quick else {}
    n_groups = len(layer_groups(create_model(options.model, 10, QUICK_SOURCE["image_size"])))
    columns = ["source acc"] + [f"{role} {mode}" for role in targets for mode in MODES]
    values = np.full((len(SOURCES), len(columns), len(seeds)), np.nan)
    for i, source in enumerate(sources.values()):
        values[i, 0, 0] = float(run_summary(source)["test_acc"])
        for j, (role, data) in enumerate(targets.items()):
            for k, seed in enumerate(seeds):
                base = {**options.target_recipe(data), **image, "init": str(source), "seed": seed}
                tag = f"{role}-from-{source.name}-seed{seed}"
                tuned = options.finetune(f"regularised-finetune-{tag}", base)
                probe = options.finetune(
                    f"regularised-probe-lr{PROBE_LR:g}-{tag}", linear_probe(base, n_groups)
                )
                values[i, 1 + 2 * j, k] = float(run_summary(tuned)["test_acc"])
                values[i, 2 + 2 * j, k] = float(run_summary(probe)["test_acc"])

    # Regularised minus plain, per target and seed, in points: (modes, targets, seeds).
    gaps = 100 * (values[1, 1:] - values[0, 1:]).reshape(len(targets), len(MODES), -1)
    gaps = gaps.transpose(1, 0, 2)
    per_seed = gaps.mean(axis=1)  # averaged over the targets: (modes, seeds)
    mean = per_seed.mean(axis=1)
    se = per_seed.std(axis=1, ddof=1) / np.sqrt(len(seeds)) if len(seeds) > 1 else np.zeros(2)
    tuned_gap, probe_gap = mean
    source_gap = 100 * (values[1, 0, 0] - values[0, 0, 0])
    parts = {
        "source kept": source_gap >= -100 * SOURCE_MARGIN,
        "probe hurt": probe_gap + 2 * se[1] < 0,
        "fine-tuning recovers": tuned_gap > probe_gap,
    }
    held_count = sum(parts.values())
    verdict = (
        f"{held_count} of 3 parts as the paper: source accuracy "
        f"{values[0, 0, 0]:.3f} plain vs {values[1, 0, 0]:.3f} regularised ({source_gap:+.1f} "
        f"points); regularised minus plain over {' and '.join(targets.values())}: linear "
        f"probe {probe_gap:+.1f} ± {se[1]:.1f}, fine-tuning {tuned_gap:+.1f} ± {se[0]:.1f} "
        "points; "
        + "; ".join(
            f"{role}: probe {gaps[1, j].mean():+.1f}, fine-tune {gaps[0, j].mean():+.1f}"
            for j, role in enumerate(targets)
        )
        + " ("
        + ", ".join(f"{part}: {'yes' if ok else 'no'}" for part, ok in parts.items())
        + ")"
    )
    notes = [
        "sources: the pair's source recipe"
        + (f" with {_settings(QUICK_SOURCE)}" if options.quick else "")
        + f", as it is and with {_settings(REGULARISERS)}"
        + "; source accuracy = its test accuracy (one run per source, no seed spread)",
        f"targets {' and '.join(targets.values())}, the pair's target recipe"
        + (f" at {QUICK_SOURCE['image_size']}px" if options.quick else "")
        + f", {len(seeds)} seeds; linear probe = the first {n_groups - 1} of {n_groups} "
        f"layer groups frozen (BatchNorm statistics too), head trained at lr {PROBE_LR:g}",
        "gaps: regularised minus plain test accuracy in points, averaged over the two "
        "targets per seed; ± one standard error over seeds",
    ]
    series = {
        f"{role} {mode}": (values[:, 1 + 2 * j + m].mean(axis=1), _spread(values[:, 1 + 2 * j + m]))
        for j, role in enumerate(targets)
        for m, mode in enumerate(MODES)
    }
    return ClaimResult(
        rows=list(SOURCES),
        columns=columns,
        values=values,
        x=np.arange(len(SOURCES), dtype=np.float64),
        xlabel="source: " + ", ".join(f"{i} = {s}" for i, s in enumerate(SOURCES)),
        ylabel="target test accuracy",
        series=series,
        statistic=float(held_count),
        threshold=2.5,
        held=held_count == 3,
        verdict=verdict,
        notes=notes,
    )


def _sources(options: ReproOptions) -> dict[str, Path]:
    """The pair's source recipe trained as it is and with the regularisers (quick: smaller)."""
    if options.source is not None:
        raise ConfigError(
            "regularised_source pre-trains both of its sources from the pair's recipe; "
            "leave out --init"
        )
    recipe = options.setting.source_recipe(options.model)
    suffix = "-".join(f"{_short(k)}{v:g}" for k, v in REGULARISERS.items())
    if options.quick:
        recipe = {**recipe, **QUICK_SOURCE}
        prefix = QUICK_SOURCE_NAME
        plain = options.pretrain(prefix, recipe)
    else:
        prefix = "source"
        plain = options.source_run()
    return {
        "plain": plain,
        "regularised": options.pretrain(f"{prefix}-{suffix}", {**recipe, **REGULARISERS}),
    }


def _settings(values: dict) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in values.items())


def _short(field: str) -> str:
    return {"label_smoothing": "ls", "drop_rate": "drop"}[field]


def _spread(values: np.ndarray) -> np.ndarray:
    return values.std(axis=1, ddof=1) if values.shape[1] > 1 else np.zeros(values.shape[0])
