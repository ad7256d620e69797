"""The advisor out of sample: on each target of a pair (at 10 images per class, or the
size given), the test accuracy of four ways to choose the fine-tuning options, each
trained with seeds 0, 1, 2:

- **default**: the pair's target recipe as it is (every group transferred, one learning
  rate, plain L2);
- **best binary**: the pick of the non-binary claim's binary search (lr and one regulariser,
  L2 or L2-SP, for everything; 16 trials, selected on validation), one search per seed;
- **advisor**: `landscape advise` on the recipe, its configuration as it is;
- **non-binary search**: the pick of the claim's non-binary search (same budget and seeds).

The searches are those of ``landscape repro non_binary`` (their runs are reused when the
claim has run). The advisor's rules were written from sweeps on the synthetic near and far
targets, so those are in-sample; the real pair's targets never shaped a rule, nor did the
synthetic *halves* setting (``--roles halves``, synthetic pair only): the second half of
the source's classes as the target, transferred from Yosinski et al.'s base A network
(pre-trained on the first half; ``landscape repro yosinski`` trains it).
Prints a markdown table for the README.

Run with ``python tests/experiments/out_of_sample.py --pair real`` (runs in
``results/repro/real/runs``, or ``--runs DIR``); ``--train-per-class 50`` (or ``all``) and
``--roles near`` change the targets' size and choose among them.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace
from pathlib import Path

from finetune.config import build_config
from finetune.runs import run_summary
from landscape.experiments.repro import ReproOptions
from landscape.experiments.repro.non_binary import FULL_TRIALS, search
from landscape.experiments.repro.yosinski import base_a_run
from landscape.tune.advisor import advise_run

SEEDS = (0, 1, 2)
ROLES = ("near", "far")
HALVES = "halves"
IN_SAMPLE = {("synthetic", "near"), ("synthetic", "far")}  # the targets the rules were read from


def setting(options: ReproOptions, role: str) -> tuple[ReproOptions, str]:
    """The options (with their source) and the target dataset of ``role``: the pair's near
    or far target from its source, or the pair's second half from base A."""
    if role == HALVES:
        return replace(options, source=base_a_run(options)), options.setting.halves[1]
    return options, getattr(options.setting, role)


def trained(options: ReproOptions, role: str, values: dict) -> list[float]:
    """Test accuracies of ``values`` trained with each of SEEDS (runs named by hash)."""
    accuracies = []
    for seed in SEEDS:
        seeded = {**values, "seed": seed, "eval_every": values["epochs"]}
        name = f"out-of-sample-{role}-{build_config('finetune', {}, seeded).hash()[:12]}"
        accuracies.append(float(run_summary(options.finetune(name, seeded))["test_acc"]))
    return accuracies


def per_class(text: str) -> int | None:
    """``--train-per-class``: a positive count, or ``all`` for every training image."""
    return None if text == "all" else int(text)


def cell(values: list[float]) -> str:
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", default="synthetic", choices=("synthetic", "real"))
    parser.add_argument("--runs", type=Path, help="run directories (default: the claims')")
    parser.add_argument("--train-per-class", type=per_class, default=10, help="N or all")
    parser.add_argument("--roles", nargs="+", default=ROLES, choices=(*ROLES, HALVES))
    args = parser.parse_args()
    default_runs = Path("results/repro") / ("real" if args.pair == "real" else "") / "runs"
    base_options = ReproOptions(quick=False, runs=args.runs or default_runs, pair=args.pair)
    print(
        "| target | shaped the rules | default | best binary (search) | advisor "
        "| non-binary search | advised |"
    )
    print("| --- " * 7 + "|")
    for role in args.roles:
        options, target = setting(base_options, role)
        sized = {**options.target_recipe(target), "train_per_class": args.train_per_class}
        recipe = {**sized, "init": str(options.source_run())}
        default = trained(options, role, recipe)
        searched = {
            space: [
                search(options, role, target, space, s, FULL_TRIALS, sized)["test"] for s in SEEDS
            ]
            for space in ("binary", "non-binary")
        }
        advice = advise_run(build_config("finetune", {}, recipe))
        advised = trained(options, role, advice.values)
        choices = "; ".join(
            f"{c.flag} {c.value}" for c in advice.choices if c.flag in ("transfer_groups",
            "freeze_groups", "lr_mult")
        )  # fmt: skip
        print(
            f"| {target}, {args.train_per_class or 'all'} per class "
            f"| {'yes' if (args.pair, role) in IN_SAMPLE else 'no'} | {cell(default)} "
            f"| {cell(searched['binary'])} | {cell(advised)} | {cell(searched['non-binary'])} "
            f"| {choices} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
