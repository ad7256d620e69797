"""The fit advisor's rules, tested by leaving one target out. The two constants that decide
most of the advice are the learning-rate multiplier of shifted groups
(``FitRules.shifted_lr``) and the BN-shift threshold that calls a group shifted or fitting
(``FitRules.fit_shift``, which also decides re-initialisation). For every variant on a 3 x 3
grid of the two, and on every target of the out-of-sample study (its settings, fit measured
once per target), the advice is trained with seeds 0, 1, 2.

The verdict reads every pair's file together: for each target, the variant with the best
mean test accuracy over the *other* targets is chosen, and its accuracy on the left-out
target is compared with the current rules' (``FitRules()``), paired by seed. The rules change
only if the mean left-out gain exceeds ``T_NEEDED`` standard errors (sd of the per-target
gains / sqrt(targets)) and no left-out target loses more than its own seed error (the SE of
its paired differences)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np

from finetune.config import build_config, flat_options
from finetune.executors import PlannedRun
from finetune.result_files import write_result
from landscape.experiments.options import ReproOptions, final_test_accuracy
from landscape.experiments.recipes import PAIRS, results_folder
from landscape.experiments.studies import register_study
from landscape.experiments.studies.out_of_sample import SEEDS, cells, fit_advice, settings
from landscape.experiments.tables import ROOT, register_table
from landscape.tune.advisor import FitRules, advise
from probes.statistics import spread

NAME = "rules_left_out"
FILE = "rules_left_out.h5"
SHIFTED_LR = (1.0, 2.0, 5.0)
FIT_SHIFT = (0.05, 0.1, 0.2)
CURRENT = FitRules()
T_NEEDED = 2.0


def variants() -> list[FitRules]:
    """The grid of rules, the current ones among them."""
    return [replace(CURRENT, shifted_lr=s, fit_shift=f) for s in SHIFTED_LR for f in FIT_SHIFT]


def label(rules: FitRules) -> str:
    return f"x{rules.shifted_lr:g}, {rules.fit_shift:g}"


@register_study(NAME, "the fit advisor's two main constants, left out one target at a time")
def rules_left_out(options: ReproOptions, out: Path) -> list[Path]:
    """Every variant's advice on every target of the pair, trained with every seed; one
    file (kind ``rules_left_out``). The advice is computed first, so the runs are one grid
    for the executor (variants that advise alike share their runs)."""
    seeds = options.seeds_or(quick=(0,), full=SEEDS)
    found = settings(options)
    grid = variants()
    planned: dict[tuple[int, int, int], PlannedRun] = {}
    for t, setting in enumerate(found):
        config = build_config("finetune", {}, setting.recipe)
        fit = fit_advice(config).fit
        options.log(f"{setting.target.label}: the advice of {len(grid)} rules")
        for v, rules in enumerate(grid):
            values = advise(fit, flat_options(config), rules=rules).values
            for k, seed in enumerate(seeds):
                run_values = {**values, "seed": seed}
                planned[v, t, k] = setting.options.planned(setting.name(run_values), run_values)
    options.train_grid(list({run.path: run for run in planned.values()}.values()))
    test = np.full((len(grid), len(found), len(seeds)), np.nan)
    for index, run in planned.items():
        test[index] = final_test_accuracy(run.path)
    path = out / FILE
    write_result(
        path,
        "rules_left_out",
        {
            "targets": [s.target.label for s in found],
            "variants/shifted_lr": np.array([r.shifted_lr for r in grid]),
            "variants/fit_shift": np.array([r.fit_shift for r in grid]),
            "test_acc": test,
        },
        attrs={
            "pair": options.pair,
            "model": options.model,
            "seeds": list(seeds),
            "current": {"shifted_lr": CURRENT.shifted_lr, "fit_shift": CURRENT.fit_shift},
            "t_needed": T_NEEDED,
        },  # fmt: skip
        summary={"targets": len(found), "variants": len(grid)},
    )
    return [path]


@dataclass(frozen=True)
class LeftOut:
    """One left-out target: the variant chosen on the others and its paired gain."""

    target: str
    chosen: str
    accuracy: float
    current: float
    gain: float
    error: float


def read_grid(paths: list[Path]) -> tuple[list[str], list[str], np.ndarray, int]:
    """Targets, variant labels, test accuracy (variants, targets, seeds) of every file
    stacked along the targets, and the current rules' row."""
    targets, tables, labels, current = [], [], [], 0
    for path in paths:
        with h5py.File(path) as f:
            targets += list(f["targets"].asstr()[()])
            tables.append(f["test_acc"][()])
            grid = list(zip(f["variants/shifted_lr"][()], f["variants/fit_shift"][()]))
        labels = [label(replace(CURRENT, shifted_lr=s, fit_shift=t)) for s, t in grid]
        current = grid.index((CURRENT.shifted_lr, CURRENT.fit_shift))
    return targets, labels, np.concatenate(tables, axis=1), current


def leave_one_out(test: np.ndarray, labels: list[str], targets: list[str], current: int):
    """Each target left out in turn, and whether the rules change (see the module)."""
    means = test.mean(axis=2)  # (variants, targets)
    rows = []
    for t, target in enumerate(targets):
        chosen = int(np.argmax(np.delete(means, t, axis=1).mean(axis=1)))
        paired = spread(test[chosen, t] - test[current, t])
        rows.append(LeftOut(target, labels[chosen], float(test[chosen, t].mean()),
                            float(test[current, t].mean()), paired.mean,
                            0.0 if math.isnan(paired.se) else paired.se))  # fmt: skip
    gains = spread([r.gain for r in rows])
    harmed = any(r.gain < -r.error for r in rows)
    change = gains.mean > T_NEEDED * gains.se and not harmed
    return rows, gains, harmed, change


@register_table("rules-left-out")
def _documented_table() -> str:
    """Both pairs' committed grids: every variant on every target, then the left-out
    comparison and the verdict."""
    targets, labels, test, current = read_grid(
        [ROOT / results_folder(pair) / FILE for pair in PAIRS]
    )
    lines = ["| rules (shifted lr, threshold) | " + " | ".join(targets) + " | mean |",
             "|" + " --- |" * (len(targets) + 2)]  # fmt: skip
    for v, (name, row) in enumerate(zip(labels, cells(test))):
        mark = " (current)" if v == current else ""
        lines.append(f"| {name}{mark} | " + " | ".join(row) + f" | {100 * test[v].mean():.1f} |")
    rows, gains, harmed, change = leave_one_out(test, labels, targets, current)
    lines += ["", "| left out | chosen on the others | its accuracy | current rules | gain ± SE |",
              "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r.target} | {r.chosen} | {100 * r.accuracy:.1f} | {100 * r.current:.1f} | "
            f"{100 * r.gain:+.1f} ± {100 * r.error:.1f} |"
        )
    lines += ["", f"Mean left-out gain {100 * gains.mean:+.2f} ± {100 * gains.se:.2f} points "
              f"(SE over {len(rows)} targets); "
              f"{'a left-out target is harmed beyond its seed error; ' if harmed else ''}"
              f"{'the rules change' if change else 'the rules are kept'}."]  # fmt: skip
    return "\n".join(lines)
