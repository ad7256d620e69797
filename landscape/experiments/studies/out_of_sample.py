"""The automatic choices out of sample: on each target of a pair (the current targets, new
ones from which no rule was read, or the targets given with ``--data``), the test accuracy
of eight ways to choose the fine-tuning options, each trained with seeds 0, 1, 2, and what
each costs in fine-tunings:

- **default**: the pair's target recipe as it is (every group transferred, one learning
  rate, plain L2);
- **binary search**, **non-binary search**: the ``non_binary`` claim's two 16-trial Optuna
  searches (``landscape.experiments.repro.non_binary.search``), one per seed, their trials
  scored by the sweep's default objective for the target
  (``landscape.tune.sweep.choose_objective``: one validation split where it can rank,
  cross-validated folds where it cannot), the pick trained on the recipe's own split;
- **fit advisor**: ``landscape advise`` (fit measures before any training);
- **probe-guided**: ``landscape advise --pilot`` (a third of the recipe, explained on the
  validation images), one pilot per seed;
- **Auto-RGN**, **LP-FT**: the recipe with ``--auto-lr rgn``, and with ``--lp-epochs`` a
  third of its epochs (the head alone first, then everything);
- **surgical**: the recipe with one body group trained (``--surgical G``) for every G, the
  block chosen on validation by the sweep's tie rule.

The rules of the fit advisor and of the probe-guided advice were read from the synthetic
near and far targets (in sample); nothing was read from the others. ``meets_the_bar`` is
the verdict a method must reach, fixed before the study ran."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from finetune.config import RunConfig, build_config
from finetune.groups import layer_groups
from finetune.models import create_model
from finetune.result_files import write_result
from finetune.rundir import read_config
from finetune.runs import run_summary
from landscape.experiments.options import ReproOptions, spec_slug
from landscape.experiments.recipes import PAIRS, results_folder
from landscape.experiments.repro.non_binary import FULL_TRIALS, QUICK_TRIALS, search
from landscape.experiments.repro.yosinski import base_a_run
from landscape.experiments.studies import register_study
from landscape.experiments.tables import ROOT, register_table
from landscape.tune.advisor import Advice, advise_run
from landscape.tune.pilot import PilotRules, advise_from_pilot
from landscape.tune.sweep import Objective, choose_objective, pick_trial, tied_trials, value_se
from probes.statistics import mean_sd, spread

NAME = "out_of_sample"
FILE = "out_of_sample.h5"
SEEDS = (0, 1, 2)
LP_FRACTION = 1 / 3  # LP-FT's share of the epochs that train the head alone
BAR_SHARE = 0.9  # of the better search's mean gain a method must reach
BAR_COST = 2.0  # fine-tunings a method may cost
QUICK_RECIPE = {"image_size": 16, "epochs": 6}  # the quick study's targets (a quick source's size)


@dataclass(frozen=True)
class Target:
    """One row: a target dataset at ``per_class`` training images per class (None: all),
    fine-tuned from the pair's source, or from its base A network (Yosinski's halves);
    ``in_sample`` when the advisors' rules were read from it; ``objective`` what the
    searches ask ``choose_objective`` for (``auto``: the sweep's default)."""

    label: str
    data: str
    per_class: int | None = 10
    halves: bool = False
    in_sample: bool = False
    objective: str = "auto"  # the searches' objective (choose_objective's request)


TARGETS: dict[str, tuple[Target, ...]] = {
    "synthetic": (
        Target("synthetic:near, 10/class", "synthetic:near", in_sample=True),
        Target("synthetic:far, 10/class", "synthetic:far", in_sample=True),
        Target(
            "synthetic halves (source[0-9] -> [10-19]), 10/class",
            "synthetic:source[10-19]",
            halves=True,
        ),  # fmt: skip
        Target("negative:synthetic:near, 10/class", "negative:synthetic:near"),
    ),
    "real": (
        Target("fashion_mnist[5-9], 10/class", "fashion_mnist[5-9]"),
        Target("fashion_mnist[5-9], 50/class", "fashion_mnist[5-9]", 50),
        Target("digits, 10/class", "digits"),
        Target("negative:fashion_mnist[5-9], 10/class", "negative:fashion_mnist[5-9]"),
        # Last: its runs are the longest. Searched on one split: cross-validated (the
        # sweep's default here) its two searches would train 960 runs of 1,000 images.
        Target("digits, all", "digits", None, objective="split"),
    ),
}


@dataclass(frozen=True)
class Setting:
    """A target with the options (its source) and recipe every method starts from."""

    options: ReproOptions
    target: Target
    recipe: dict[str, Any]
    objective: Objective

    @property
    def role(self) -> str:
        """The run names' prefix for this target."""
        size = "all" if self.target.per_class is None else self.target.per_class
        return f"oos-{spec_slug(self.target.data)}-{size}"

    def name(self, values: dict[str, Any]) -> str:
        """The run name of ``values``: the role and its configuration's hash."""
        return f"{self.role}-{build_config('finetune', {}, values).hash()[:12]}"

    def run(self, values: dict[str, Any]) -> Path:
        """A completed run of ``values``."""
        return self.options.finetune(self.name(values), values)

    def test(self, values: dict[str, Any]) -> float:
        return float(run_summary(self.run(values))["test_acc"])

    def seeded(self, seed: int, **extra: Any) -> dict[str, Any]:
        return {**self.recipe, **extra, "seed": seed}


@dataclass(frozen=True)
class Outcome:
    """One method on one target and seed: the pick's test accuracy, its cost in
    fine-tunings and what it chose."""

    test: float
    cost: float
    chosen: dict[str, Any]


Method = Callable[[Setting, int], Outcome]
METHODS: dict[str, Method] = {}
LABELS: dict[str, str] = {}


def method(name: str, label: str) -> Callable[[Method], Method]:
    """Register a way of choosing the options under ``name``, in table order."""

    def register(function: Method) -> Method:
        METHODS[name], LABELS[name] = function, label
        return function

    return register


@method("default", "default")
def _default(s: Setting, seed: int) -> Outcome:
    return Outcome(s.test(s.seeded(seed)), 1.0, {})


def _searched(space: str) -> Method:
    def run(s: Setting, seed: int) -> Outcome:
        trials = QUICK_TRIALS if s.options.quick else FULL_TRIALS
        pick = search(s.options, s.role, s.target.data, space, seed, trials,
                      s.recipe, s.objective)  # fmt: skip
        retrained = s.objective.runs_per_trial > 1 or s.objective.kind == "folds"
        chosen = {k: pick["values"][k] for k in ("lr", "lr_decay", "transfer_groups", "l2sp",
                                                 "l2") if k in pick["values"]}  # fmt: skip
        cost = trials * s.objective.runs_per_trial + (1.0 if retrained else 0.0)
        return Outcome(pick["test"], cost, {**chosen, "tied": pick["tied"]})

    return run


method("binary", "best binary search")(_searched("binary"))
method("non_binary", "non-binary search")(_searched("non-binary"))


@functools.cache
def fit_advice(config: RunConfig) -> Advice:
    """The fit advisor's advice on a recipe: measured once (it does not depend on the seed)."""
    return advise_run(config)


@method("fit_advisor", "fit advisor")
def _fit_advisor(s: Setting, seed: int) -> Outcome:
    advice = fit_advice(build_config("finetune", {}, s.recipe))
    chosen = {c.flag: c.value for c in advice.choices if c.flag != "l2sp" and c.flag != "l2"}
    return Outcome(s.test({**advice.values, "seed": seed}), 1.0, chosen)


@method("probe_guided", "probe-guided (pilot)")
def _probe_guided(s: Setting, seed: int) -> Outcome:
    rules = PilotRules()
    advice = advise_from_pilot(
        s.options.run_config("finetune", s.seeded(seed)), rules=rules,
        runs_dir=s.options.runs / "pilots",
    )  # fmt: skip
    chosen = {c.flag: c.value for c in advice.choices}
    return Outcome(s.test({**advice.values, "seed": seed}), advice.cost, chosen)


@method("auto_rgn", "Auto-RGN")
def _auto_rgn(s: Setting, seed: int) -> Outcome:
    return Outcome(s.test(s.seeded(seed, auto_lr="rgn")), 1.0, {})


@method("lp_ft", "LP-FT")
def _lp_ft(s: Setting, seed: int) -> Outcome:
    lp_epochs = max(1, round(LP_FRACTION * s.recipe["epochs"]))
    return Outcome(s.test(s.seeded(seed, lp_epochs=lp_epochs)), 1.0, {"lp_epochs": lp_epochs})


@dataclass(frozen=True)
class _Block:
    """One surgical candidate as the sweep's tie rule reads it."""

    values: dict[str, Any]
    value: float
    value_se: float
    eval_loss: float
    number: int


@method("surgical", "surgical (best block)")
def _surgical(s: Setting, seed: int) -> Outcome:
    body = len(layer_groups(create_model(s.options.model, 10, 32))) - 1
    blocks = []
    for g in range(body):
        values = s.seeded(seed, surgical=g)
        run = s.run(values)
        summary = run_summary(run)
        examples = int(read_config(run)["data"]["eval_examples"])
        accuracy = float(summary["final_eval_acc"])
        blocks.append(_Block(values, accuracy, value_se([accuracy], examples),
                             float(summary["final_eval_loss"]), g))  # fmt: skip
    pick = pick_trial(tied_trials(blocks))
    return Outcome(s.test(pick.values), float(body), {"surgical": pick.number})


@dataclass(frozen=True)
class _Choose:
    """One method on one seed of a target, (method, seed): a call of ``options.map``, each
    an independent chain of runs (a search, a pilot and its advice)."""

    setting: Setting

    def __call__(self, cell: tuple[str, int]) -> Outcome:
        name, seed = cell
        return METHODS[name](self.setting, seed)


def settings(options: ReproOptions) -> list[Setting]:
    """The targets of ``options``' pair (or those of ``--data``, at 10 images per class, in
    sample when the pair's rules were read from them), each with its source, sized recipe
    and the sweep's default objective."""
    if options.data is not None:
        read = {t.data for t in TARGETS[options.pair] if t.in_sample}
        targets = tuple(Target(f"{spec}, 10/class", spec, in_sample=spec in read)
                        for spec in options.data)  # fmt: skip
    else:
        targets = TARGETS[options.pair]
    found = []
    for target in targets:
        own = replace(options, source=base_a_run(options), data=None) if target.halves else options
        recipe = {
            **own.target_recipe(target.data),
            "train_per_class": target.per_class,
            "init": str(own.source_run(read=True)),  # the advisors read it
        }
        if options.quick:
            recipe.update(QUICK_RECIPE)
        recipe["eval_every"] = recipe["epochs"]
        objective = choose_objective(
            build_config("finetune", {}, {**recipe, "seed": 0}), requested=target.objective
        )
        found.append(Setting(replace(own, data=None), target, recipe, objective))
    return found


@register_study(NAME, "the automatic choices against the default and two searches, out of sample")
def out_of_sample(options: ReproOptions, out: Path) -> list[Path]:
    """Every method on every target and seed; one file (kind ``out_of_sample``), written
    again after each target, so that a long study's finished rows are kept."""
    started = time.perf_counter()
    seeds = options.seeds_or(quick=(0,), full=SEEDS)
    found = settings(options)
    shape = (len(found), len(METHODS), len(seeds))
    test, cost = np.full(shape, np.nan), np.full(shape, np.nan)
    chosen = np.full(shape, "", dtype=object)
    path = out / FILE
    kept = _finished_rows(path, options, seeds, found)
    for t, setting in enumerate(found):
        if t in kept:
            options.log(f"{setting.target.label}: kept from {path}")
            test[t], cost[t], chosen[t] = kept[t]
            continue
        cells = [(name, seed) for name in METHODS for seed in seeds]
        options.log(f"{setting.target.label}: {len(METHODS)} methods x {len(seeds)} seeds")
        outcomes = options.map(
            _Choose(replace(setting, options=setting.options.worker())),
            cells,
            lambda cell, outcome, label=setting.target.label: options.log(
                f"{label}: {cell[0]}, seed {cell[1]}: test {outcome.test:.3f}"
            ),
        )
        for index, outcome in enumerate(outcomes):
            m, k = divmod(index, len(seeds))  # cells run over methods, then seeds
            test[t, m, k], cost[t, m, k] = outcome.test, outcome.cost
            chosen[t, m, k] = json.dumps(outcome.chosen, sort_keys=True, default=str)
        done = t + 1
        _write(path, options, seeds, found[:done], test[:done], cost[:done], chosen[:done],
               time.perf_counter() - started)  # fmt: skip
    return [path]


def _finished_rows(
    path: Path, options: ReproOptions, seeds: tuple[int, ...], found: list[Setting]
) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The rows of an earlier file at ``path`` this study would compute again, by index in
    ``found``: same pair, model, size, source, seeds, trials and methods, and a target with
    the same label, data, size and objective. A study resumes from its file even where its
    runs are gone (a fresh clone keeps the committed file, not the runs)."""
    if not path.exists():
        return {}
    with h5py.File(path) as f:
        same_study = (
            str(f.attrs["pair"]) == options.pair
            and str(f.attrs["model"]) == options.model
            and bool(f.attrs["quick"]) == options.quick
            and str(f.attrs.get("source", "")) == _source_name(options)
            and tuple(int(s) for s in f.attrs["seeds"]) == seeds
            and int(f.attrs["trials"]) == (QUICK_TRIALS if options.quick else FULL_TRIALS)
            and [s.decode() for s in f["methods/names"][()]] == list(METHODS)
        )
        if not same_study:
            return {}
        rows = zip(
            (s.decode() for s in f["targets/labels"][()]),
            (s.decode() for s in f["targets/data"][()]),
            f["targets/per_class"][()],
            (s.decode() for s in f["targets/objective"][()]),
            f["test_acc"][()],
            f["cost"][()],
            f["chosen"][()].astype(str),
        )
        done = {(label, data, int(size), objective): (test, cost, chosen.astype(object))
                for label, data, size, objective, test, cost, chosen in rows}  # fmt: skip
    keys = {t: (s.target.label, s.target.data, s.target.per_class or 0, s.objective.kind)
            for t, s in enumerate(found)}  # fmt: skip
    return {t: done[key] for t, key in keys.items() if key in done}


def _source_name(options: ReproOptions) -> str:
    """The source the file records: the one given with --source, else "" (the pair's own)."""
    return "" if options.source is None else str(options.source)


def _write(
    path: Path,
    options: ReproOptions,
    seeds: tuple[int, ...],
    found: list[Setting],
    test: np.ndarray,
    cost: np.ndarray,
    chosen: np.ndarray,
    seconds: float,
) -> None:
    write_result(
        path,
        "out_of_sample",
        {
            "targets/labels": [s.target.label for s in found],
            "targets/data": [s.target.data for s in found],
            "targets/per_class": np.array([s.target.per_class or 0 for s in found]),
            "targets/in_sample": np.array([s.target.in_sample for s in found]),
            "targets/objective": [s.objective.kind for s in found],
            "targets/objective_runs": np.array([s.objective.runs_per_trial for s in found]),
            "targets/objective_note": [s.objective.message for s in found],
            "methods/names": list(METHODS),
            "methods/labels": [LABELS[m] for m in METHODS],
            "test_acc": test,
            "cost": cost,
            "chosen": np.array(chosen.tolist(), dtype=h5py.string_dtype()),
        },
        attrs={
            "pair": options.pair,
            "model": options.model,
            "source": _source_name(options),
            "seeds": list(seeds),
            "trials": QUICK_TRIALS if options.quick else FULL_TRIALS,
            "quick": options.quick,
            "rules": {
                "pilot_fraction": PilotRules().fraction,
                "lp_fraction": LP_FRACTION,
                "bar_share": BAR_SHARE,
                "bar_cost": BAR_COST,
            },  # fmt: skip
        },
        summary={"targets": len(found), "seconds": seconds},
    )


@dataclass(frozen=True)
class Bar:
    """Whether a method meets the bar: on every row not below the default by more than the
    seed error (mean paired difference + its SE over seeds >= 0), a mean gain over the rows
    of at least BAR_SHARE of the better search's, and a cost of at most BAR_COST
    fine-tunings (its largest over the rows)."""

    method: str
    never_below: bool
    mean_gain: float
    better_search: str
    search_gain: float
    cost: float

    @property
    def met(self) -> bool:
        return (
            self.never_below
            and self.mean_gain >= BAR_SHARE * self.search_gain
            and self.cost <= BAR_COST
        )


def meets_the_bar(test: np.ndarray, cost: np.ndarray, methods: list[str], name: str) -> Bar:
    """The bar for method ``name`` over the rows of ``test`` (targets, methods, seeds, all
    files' rows stacked) and ``cost`` alike."""
    default = test[:, methods.index("default")]

    def gains(m: str) -> np.ndarray:
        return test[:, methods.index(m)] - default  # (targets, seeds), paired by seed

    own = gains(name)
    never_below = all(
        spread(row).mean + (spread(row).se if len(row) > 1 else 0.0) >= 0 for row in own
    )
    searches = {m: float(np.nanmean(gains(m).mean(axis=1))) for m in ("binary", "non_binary")}
    better = max(searches, key=searches.get)
    return Bar(
        method=name,
        never_below=never_below,
        mean_gain=float(np.nanmean(own.mean(axis=1))),
        better_search=better,
        search_gain=searches[better],
        cost=float(np.nanmax(cost[:, methods.index(name)])),
    )


def cells(test: np.ndarray) -> list[list[str]]:
    """``mean ± sd`` over seeds, in points, of every (target, method)."""
    return [
        [mean_sd(test[t, m], ".1f", 100) for m in range(test.shape[1])]
        for t in range(test.shape[0])
    ]


@dataclass(frozen=True)
class Study:
    """The rows of one or more ``out_of_sample`` files, stacked: what the table and the
    bar read."""

    labels: list[str]
    models: list[str]
    in_sample: np.ndarray
    methods: list[str]
    method_labels: list[str]
    test: np.ndarray  # (targets, methods, seeds)
    cost: np.ndarray


def read_study(paths: list[str | Path]) -> Study:
    """The rows of the ``out_of_sample`` files ``paths``, in order (all with the same
    methods and seeds)."""
    parts = []
    for path in paths:
        with h5py.File(path) as f:
            labels = [s.decode() for s in f["targets/labels"][()]]
            parts.append({
                "labels": labels,
                "models": [str(f.attrs["model"])] * len(labels),
                "in_sample": f["targets/in_sample"][()],
                "methods": [s.decode() for s in f["methods/names"][()]],
                "method_labels": [s.decode() for s in f["methods/labels"][()]],
                "test": f["test_acc"][()],
                "cost": f["cost"][()],
            })  # fmt: skip
    return Study(
        labels=[label for p in parts for label in p["labels"]],
        models=[model for p in parts for model in p["models"]],
        in_sample=np.concatenate([p["in_sample"] for p in parts]),
        methods=parts[0]["methods"],
        method_labels=parts[0]["method_labels"],
        test=np.concatenate([p["test"] for p in parts]),
        cost=np.concatenate([p["cost"] for p in parts]),
    )


AUTOMATIC = ("fit_advisor", "probe_guided", "auto_rgn", "lp_ft", "surgical")


def study_table(study: Study) -> str:
    """The documents' table: test accuracy (mean ± sd over seeds, points) of every method on
    every row, each method's cost in fine-tunings, then the bar for every automatic
    method."""
    header = ["target", "model", "rules read from it", *study.method_labels]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for t, row in enumerate(cells(study.test)):
        own = "yes" if study.in_sample[t] else "no"
        lines.append(f"| {study.labels[t]} | {study.models[t]} | {own} | " + " | ".join(row) + " |")
    costs = [f"{np.nanmax(study.cost[:, m]):.4g}" for m in range(len(study.methods))]
    lines.append("| cost (fine-tunings, at most) | | | " + " | ".join(costs) + " |")
    lines.append("")
    for bar in bars(study):
        lines.append(
            f"- {LABELS[bar.method]}: {'meets' if bar.met else 'does not meet'} the bar "
            f"({'never' if bar.never_below else 'sometimes'} below the default by more than "
            f"the seed error; mean gain {100 * bar.mean_gain:+.2f} points against the "
            f"{LABELS[bar.better_search]}'s {100 * bar.search_gain:+.2f}; cost "
            f"{_fine_tunings(bar.cost)})"
        )
    return "\n".join(lines)


def _fine_tunings(cost: float) -> str:
    return f"{cost:.3g} fine-tuning{'' if cost == 1 else 's'}"


def bars(study: Study) -> list[Bar]:
    """The bar of every automatic method over the study's rows, in table order."""
    return [meets_the_bar(study.test, study.cost, study.methods, name) for name in AUTOMATIC]


def verdict(study: Study) -> str:
    """One sentence: which automatic methods meet the bar, or none and the closest (the
    largest mean gain over the default)."""
    found = bars(study)
    met = [LABELS[bar.method] for bar in found if bar.met]
    closest = max(found, key=lambda bar: bar.mean_gain)
    rows = f"over {len(study.labels)} target{'' if len(study.labels) == 1 else 's'}"
    if met:
        return f"Meets the bar {rows}: {', '.join(met)}."
    return (
        f"No automatic method meets the bar {rows}. The closest, "
        f"{LABELS[closest.method]}, has a mean gain of {100 * closest.mean_gain:+.2f} points over "
        f"the default against the {LABELS[closest.better_search]}'s "
        f"{100 * closest.search_gain:+.2f}, "
        f"{'never' if closest.never_below else 'sometimes'} below the default beyond the "
        f"seed error, at {_fine_tunings(closest.cost)}."
    )


# The committed studies the documents' table stacks, in its order of rows.
STUDY_FILES = (
    *(results_folder(pair) / FILE for pair in PAIRS),
    Path("results/repro/landscape_vit_p4") / FILE,
)


@register_table("out-of-sample")
def _documented_table() -> str:
    """Every committed study's rows, and the bar of every automatic method over them."""
    return study_table(read_study([ROOT / path for path in STUDY_FILES]))


@register_table("out-of-sample-verdict")
def _documented_verdict() -> str:
    """The committed studies' verdict in one sentence (the README's)."""
    return verdict(read_study([ROOT / path for path in STUDY_FILES]))
