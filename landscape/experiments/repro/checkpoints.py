"""Neyshabur, Sedghi, Zhang 2020 §5: fine-tuned from intermediate checkpoints of the
pre-training, the target accuracy improves quickly early in pre-training and then plateaus
before the source accuracy does, so an earlier checkpoint transfers as well as the last.

The pair's source recipe is pre-trained keeping its weights after every epoch
(``--keep-every 1``); the pair's target recipe is fine-tuned from a spread of the kept epochs
(``RUN:epochK``) on the near and the far target with every seed. A curve's plateau is the
first of those checkpoints from which it stays within one point of its value at the last
one, the same tolerance for the source's accuracy on its evaluation split and for a
target's seed mean. The statistic is the source's plateau epoch minus the later of the two
targets' (> 0: the targets plateau first); its noise bar is a bootstrap over the target
seeds (each target's plateau recomputed on resampled seed means): the claim holds when the
statistic is above zero in at least 95% of the resamples. The source is one run, so its
own curve's noise is not resampled. ``judge`` reads only the table, so the verdict can be
recomputed from a committed file."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np

from finetune import rundir
from finetune.errors import ConfigError
from landscape.experiments.options import ReproOptions
from landscape.experiments.recipes import PAIRS, QUICK_SOURCE, QUICK_SOURCE_NAME, results_folder
from landscape.experiments.repro import ClaimResult, judged_outcome, read_claim, register_claim
from landscape.experiments.tables import ROOT, register_table
from probes.statistics import seed_sd

# Quick: QUICK_SOURCE, every epoch fine-tuned from; full: the pair's source recipe,
# fine-tuned from these epochs and its last.
FULL_EPOCHS = (1, 2, 3, 4, 6, 8, 10, 12, 15)
SHOWN_EPOCHS = (1, 3, 6, 10)  # the checkpoints the docs' table shows, with the last
TOLERANCE = 0.01  # a plateau: within one point of the curve's last value, every curve
RESAMPLES = 2000  # seed-bootstrap resamples of the noise bar
LEVEL = 0.95  # share of resamples in which the targets must plateau first


def plateaus(result: ClaimResult) -> tuple[list[int], int, list[int]]:
    """A claim table's checkpoints (epochs), the source's plateau epoch and each target's
    (on its seed mean)."""
    epochs = [int(row.removeprefix("epoch ")) for row in result.rows]
    means = result.values[:, 1:].mean(axis=2)
    targets = [plateau_epoch(epochs, means[:, j], TOLERANCE) for j in range(means.shape[1])]
    return epochs, plateau_epoch(epochs, result.values[:, 0, 0], TOLERANCE), targets


def judge(result: ClaimResult) -> ClaimResult:
    """The verdict from the table alone (checkpoints x [source, targets] x seeds): the
    plateau statistic and the share of seed-bootstrap resamples in which it is above 0."""
    epochs, source, targets_at = plateaus(result)
    roles = [c.removesuffix(" acc") for c in result.columns[1:]]
    targets = result.values[:, 1:]  # (checkpoints, targets, seeds)
    means = targets.mean(axis=2)
    statistic = source - max(targets_at)
    seeds = targets.shape[2]
    picks = np.random.default_rng(0).integers(0, seeds, (RESAMPLES, seeds))
    resampled = np.array([
        source - max(plateau_epoch(epochs, m[:, j], TOLERANCE) for j in range(len(roles)))
        for m in targets[:, :, picks].mean(axis=3).transpose(2, 0, 1)
    ])  # fmt: skip
    share = float(np.mean(resampled > 0))
    held = share >= LEVEL
    low, high = np.quantile(resampled, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    verdict = (
        f"source accuracy plateaus at epoch {source} of {epochs[-1]}, the targets at "
        + ", ".join(f"{role} epoch {e}" for role, e in zip(roles, targets_at))
        + f" (within {100 * TOLERANCE:g} point of the last checkpoint): {statistic:+d} epochs; "
        f"above 0 in {100 * share:.0f}% of {RESAMPLES} seed-bootstrap resamples ("
        f"{100 * LEVEL:g}% needed), interval [{low:+.0f}, {high:+.0f}]: "
        f"{judged_outcome(held, statistic > 0)}; "
        + "; ".join(
            f"{role} " + ", ".join(f"e{e} {m:.3f}" for e, m in zip(epochs, means[:, j]))
            for j, role in enumerate(roles)
        )
    )
    return replace(result, statistic=share, threshold=LEVEL, held=held, verdict=verdict)


@register_claim(
    "checkpoints",
    "Target accuracy plateaus earlier in pre-training than source accuracy",
    "Neyshabur et al. 2020: fine-tuned from intermediate pre-training checkpoints, the "
    "target accuracy plateaus before the source accuracy does",
    judge=judge,
)
def checkpoints(options: ReproOptions) -> ClaimResult:
    targets = options.near_and_far()
    seeds = options.seeds_or(quick=(0, 1), full=(0, 1, 2))
    source = _kept_source(options)
    kept, source_acc = kept_accuracy(source)
    epochs = kept if options.quick else [e for e in kept if e in FULL_EPOCHS or e == kept[-1]]
    image = {"image_size": QUICK_SOURCE["image_size"]} if options.quick else {}

    grid = {
        (i, 1 + j, k): (
            f"checkpoints-{role}-from-{source.name}-epoch{epoch}-seed{seed}",
            {**options.target_recipe(data), **image, "init": f"{source}:epoch{epoch}",
             "seed": seed},
        )
        for i, epoch in enumerate(epochs)
        for j, (role, data) in enumerate(targets.items())
        for k, seed in enumerate(seeds)
    }  # fmt: skip
    values, _ = options.measure(grid, (len(epochs), 1 + len(targets), len(seeds)))
    values[:, 0, 0] = [source_acc[kept.index(e)] for e in epochs]

    means, spreads = values[:, 1:].mean(axis=2), seed_sd(values[:, 1:])
    notes = [
        f"source: {source}, kept every epoch; source accuracy on its evaluation split per "
        "epoch: " + ", ".join(f"e{e} {a:.3f}" for e, a in zip(kept, source_acc)),
        f"targets {targets['near']} and {targets['far']}, the pair's target recipe"
        + (f" at {QUICK_SOURCE['image_size']}px" if options.quick else "")
        + f", {len(seeds)} seeds, fine-tuned from epochs {', '.join(map(str, epochs))}",
        f"plateau: the first of these checkpoints from which a curve (the source's accuracy, "
        f"a target's seed mean) stays within {100 * TOLERANCE:g} point of its last value",
    ]
    return judge(
        ClaimResult(
            rows=[f"epoch {e}" for e in epochs],
            columns=["source acc", *(f"{role} acc" for role in targets)],
            values=values,
            x=values[:, 0, 0],
            xlabel="source accuracy of the checkpoint (its evaluation split)",
            ylabel="target test accuracy fine-tuned from it",
            series={role: (means[:, j], spreads[:, j]) for j, role in enumerate(targets)},
            statistic=math.nan,
            threshold=math.nan,
            held=False,
            verdict="",
            notes=notes,
        )
    )


def plateau_epoch(epochs: list[int], accuracy: np.ndarray, tolerance: float) -> int:
    """The first of ``epochs`` from which ``accuracy`` stays within ``tolerance`` of its last
    value."""
    within = np.asarray(accuracy) >= accuracy[-1] - tolerance
    first = len(within) - 1
    while first > 0 and within[first - 1]:
        first -= 1
    return int(epochs[first])


def kept_accuracy(run: Path) -> tuple[list[int], np.ndarray]:
    """The epochs ``run`` kept and its evaluation accuracy after each."""
    with h5py.File(run / rundir.RUN_H5) as f:
        if "kept/epoch" not in f:
            raise ConfigError(
                f"--init {run} kept no epochs; pre-train it with --keep-every 1 (or leave "
                "--init out to train the pair's source so)"
            )
        return [int(e) for e in f["kept/epoch"][()]], f["kept/eval_acc"][()]


def _kept_source(options: ReproOptions) -> Path:
    """The source whose kept epochs are fine-tuned from: the given one, or the pair's
    source recipe kept every epoch (at 16px on fewer images when quick)."""
    if options.source is not None:
        return options.source
    recipe = {**options.pair_recipes.source_recipe(options.model), "keep_every": 1}
    if not options.quick:
        return options.pretrain("source-keep1", recipe, read=True)
    return options.pretrain(f"{QUICK_SOURCE_NAME}-keep1", {**recipe, **QUICK_SOURCE}, read=True)


@register_table("checkpoints")
def checkpoints_table() -> str:
    """Per pair, from its committed file: the source's accuracy and each target's seed mean
    at a few checkpoints (the last with its sd over seeds), the plateaus and the verdict."""
    lines = [
        "| pair | epoch | source accuracy (evaluation split) | near target | far target |",
        "| --- | --- | --- | --- | --- |",
    ]
    verdicts = []
    for pair in PAIRS:
        result, _, _ = read_claim(ROOT / results_folder(pair) / "checkpoints.h5")
        epochs, source, targets = plateaus(result)
        means, sds = result.values[:, 1:].mean(axis=2), seed_sd(result.values[:, 1:])
        for i, epoch in enumerate(epochs):
            if epoch not in SHOWN_EPOCHS and i != len(epochs) - 1:
                continue
            last = i == len(epochs) - 1
            cells = [f"{m:.3f}" + (f" ± {sd:.3f}" if last else "")
                     for m, sd in zip(means[i], sds[i])]  # fmt: skip
            lines.append(f"| {pair} | {epoch}{' (last)' if last else ''} | "
                         f"{result.values[i, 0, 0]:.3f} | {' | '.join(cells)} |")  # fmt: skip
        share = f"{100 * result.statistic:.0f}%"
        verdicts.append(
            f"- **{pair}**: plateaus at epoch {source} (source), {targets[0]} (near) and "
            f"{targets[1]} (far); the targets first in {share} of the seed resamples: "
            f"**{'held' if result.held else 'not held'}**."
        )
    return "\n".join([*lines, "", *verdicts])
