"""The advisor out of sample: on each target of a pair at 10 images per class, the test
accuracy of four ways to choose the fine-tuning options, each trained with seeds 0, 1, 2:

- **default**: the pair's target recipe as it is (every group transferred, one learning
  rate, plain L2);
- **best binary**: the pick of the non-binary claim's binary search (lr and one regulariser,
  L2 or L2-SP, for everything; 16 trials, selected on validation), one search per seed;
- **advisor**: `landscape advise` on the recipe, its configuration as it is;
- **non-binary search**: the pick of the claim's non-binary search (same budget and seeds).

The searches are those of ``landscape repro non_binary`` (their runs are reused when the
claim has run). The advisor's rules were written from sweeps on the synthetic targets, so
on the synthetic pair this is in-sample; the real pair's targets never shaped a rule.
Prints a markdown table for the README.

Run with ``python tests/experiments/out_of_sample.py --pair real`` (runs in
``results/repro/real/runs``, or ``--runs DIR``).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from finetune.config import build_config
from finetune.runs import run_summary
from landscape.experiments.repro import ReproOptions
from landscape.experiments.repro.non_binary import FULL_TRIALS, search
from landscape.tune.advisor import advise_run

SEEDS = (0, 1, 2)
ROLES = ("near", "far")
IN_SAMPLE = {"synthetic"}  # pairs whose targets the rules were read from


def trained(options: ReproOptions, role: str, values: dict) -> list[float]:
    """Test accuracies of ``values`` trained with each of SEEDS (runs named by hash)."""
    accuracies = []
    for seed in SEEDS:
        seeded = {**values, "seed": seed, "eval_every": values["epochs"]}
        name = f"out-of-sample-{role}-{build_config('finetune', {}, seeded).hash()[:12]}"
        accuracies.append(float(run_summary(options.finetune(name, seeded))["test_acc"]))
    return accuracies


def cell(values: list[float]) -> str:
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", default="synthetic", choices=("synthetic", "real"))
    parser.add_argument("--runs", type=Path, help="run directories (default: the claims')")
    args = parser.parse_args()
    default_runs = Path("results/repro") / ("real" if args.pair == "real" else "") / "runs"
    options = ReproOptions(quick=False, runs=args.runs or default_runs, pair=args.pair)
    print(
        "| target | shaped the rules | default | best binary (search) | advisor "
        "| non-binary search | advised |"
    )
    print("| --- " * 7 + "|")
    for role in ROLES:
        target = getattr(options.setting, role)
        recipe = {**options.target_recipe(target), "init": str(options.source_run())}
        default = trained(options, role, recipe)
        searched = {
            space: [search(options, role, target, space, s, FULL_TRIALS)["test"] for s in SEEDS]
            for space in ("binary", "non-binary")
        }
        advice = advise_run(build_config("finetune", {}, recipe))
        advised = trained(options, role, advice.values)
        choices = "; ".join(
            f"{c.flag} {c.value}" for c in advice.choices if c.flag in ("transfer_groups",
            "freeze_groups", "lr_mult")
        )  # fmt: skip
        print(
            f"| {target} | {'yes' if args.pair in IN_SAMPLE else 'no'} | {cell(default)} "
            f"| {cell(searched['binary'])} | {cell(advised)} | {cell(searched['non-binary'])} "
            f"| {choices} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
