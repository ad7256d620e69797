"""The advisor's rules, tested by leaving one target out. The rule strengths that decide
most of the advice are the learning-rate multiplier of shifted groups (``Rules.shifted_lr``)
and the BN-shift threshold that calls a group shifted or fitting (``Rules.fit_shift``, which
also decides re-initialisation). For every variant on a small grid of the two, and on every
target, the advice is computed from the target's fit measures (measured once per target)
and trained with seeds 0, 1, 2 (the runs of ``out_of_sample.py``, reused by name).

Leave one target out: for each target, the variant with the best mean test accuracy over
the *other* targets is chosen, and its accuracy on the left-out target is compared with the
current rules' (``Rules()``). The rules change only if the mean left-out gain exceeds
``T_NEEDED`` standard errors (sd of the per-target gains / sqrt(targets)) and no left-out
target loses more than its own seed error. Prints two markdown tables (every variant on
every target; the leave-one-target-out comparison) and the verdict.

Run with ``python tests/experiments/rules_left_out.py`` (the synthetic targets at 10
images per class, the halves among them, from ``results/repro/runs``; the real ones from
``results/repro/real/runs``; ``--real-sizes 10 50`` adds Fashion-MNIST 5-9 at 50 per class,
``all`` digits with every image).
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
from out_of_sample import HALVES, per_class, setting, trained

from finetune.config import build_config, flat_options
from landscape.experiments.repro import ReproOptions
from landscape.tune.advisor import Rules, advise, advise_run

SHIFTED_LR = (1.0, 2.0, 5.0)
FIT_SHIFT = (0.05, 0.1, 0.2)
CURRENT = Rules()
RUNS = {"synthetic": Path("results/repro/runs"), "real": Path("results/repro/real/runs")}
SIZED_ROLE = {50: "near", None: "far"}  # which real target each larger size is run on
T_NEEDED = 2.0


def variants() -> list[Rules]:
    return [replace(CURRENT, shifted_lr=s, fit_shift=f) for s in SHIFTED_LR for f in FIT_SHIFT]


def label(rules: Rules) -> str:
    return f"x{rules.shifted_lr:g}, shift {rules.fit_shift:g}"


def targets(real_sizes: list[int | None]) -> list[tuple[str, str, int | None]]:
    """(pair, role, images per class) of every target: the synthetic pair's at 10 per class
    (near, far and the halves), the real pair's at each size (10: both targets; 50:
    Fashion-MNIST; all: digits)."""
    chosen = [("synthetic", role, 10) for role in ("near", "far", HALVES)]
    for size in real_sizes:
        roles = ("near", "far") if size == 10 else (SIZED_ROLE[size],)
        chosen += [("real", role, size) for role in roles]
    return chosen


def accuracies(pair: str, role: str, size: int | None, grid: list[Rules]) -> np.ndarray:
    """Test accuracy (variants, seeds) of each variant's advice on one target."""
    options, target = setting(ReproOptions(quick=False, runs=RUNS[pair], pair=pair), role)
    recipe = {
        **options.target_recipe(target),
        "train_per_class": size,
        "init": str(options.source_run()),
    }
    config = build_config("finetune", {}, recipe)
    fit = advise_run(config).fit
    rows = [trained(options, role, advise(fit, flat_options(config), rules=r).values) for r in grid]
    return np.asarray(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real-sizes", nargs="+", type=per_class, default=[10])
    args = parser.parse_args()
    grid = variants()
    current = grid.index(CURRENT)
    names, tables = [], []
    for pair, role, size in targets(args.real_sizes):
        names.append(f"{pair} {role}, {size or 'all'} per class")
        tables.append(accuracies(pair, role, size, grid))
    means = np.stack([t.mean(axis=1) for t in tables], axis=1)  # (variants, targets)

    print("| rules (shifted lr, fit threshold) | " + " | ".join(names) + " | mean |")
    print("| --- " * (len(names) + 2) + "|")
    for v, rules in enumerate(grid):
        cells = [
            f"{100 * tables[t][v].mean():.1f} ± {100 * tables[t][v].std(ddof=1):.1f}"
            for t in range(len(names))
        ]
        mark = " (current)" if v == current else ""
        mean = f"{100 * means[v].mean():.1f}"
        print(f"| {label(rules)}{mark} | " + " | ".join(cells) + f" | {mean} |")

    print()
    print("| left out | chosen on the others | its accuracy | current rules | gain ± se |")
    print("| --- " * 5 + "|")
    gains, harmed = [], False
    for t, name in enumerate(names):
        others = np.delete(means, t, axis=1).mean(axis=1)
        chosen = int(np.argmax(others))
        paired = tables[t][chosen] - tables[t][current]
        gains.append(paired.mean())
        error = paired.std(ddof=1) / np.sqrt(len(paired))
        harmed |= bool(paired.mean() < -error)
        print(
            f"| {name} | {label(grid[chosen])} | {100 * tables[t][chosen].mean():.1f} "
            f"| {100 * tables[t][current].mean():.1f} "
            f"| {100 * paired.mean():+.1f} ± {100 * error:.1f} |"
        )
    mean, spread = statistics.mean(gains), statistics.stdev(gains) / len(gains) ** 0.5
    change = mean > T_NEEDED * spread and not harmed
    print(
        f"\nmean left-out gain over the current rules: {100 * mean:+.1f} ± {100 * spread:.1f} "
        f"points ({len(gains)} targets); a change needs more than {T_NEEDED:g} standard errors "
        f"and no left-out target harmed beyond its seed error: "
        f"{'change the rules' if change else 'keep the rules'}"
    )


if __name__ == "__main__":
    main()
