"""The advisor against the default binary fine-tuning and against an Optuna sweep of the
non-binary space (issue 6's "done when"): on synthetic:near and synthetic:far with 10 and 50
images per class, test_resnet pre-trained on synthetic:source with the demo's recipe,
fine-tuned with the demo's target recipe (30 epochs, batch 32, lr 0.01).

- default: every group transferred, one learning rate, plain L2 5e-4 (the recipe as it is);
- advisor: `landscape advise` on the same options, its TOML run as it is;
- sweep: `landscape sweep` of SPACE (30 trials, TPE, median pruning, seed-0 runs judged on
  validation accuracy), its best trial's options.

Each configuration is then run with seeds 0, 1, 2 and judged on test accuracy. Prints a
markdown table (mean test accuracy, the gains over the default, the advisor's share of the
sweep's gain, seconds spent choosing) for the README.

Run with ``python tests/experiments/advisor_vs_sweep.py --out DIR [--trials 30]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from finetune.config import build_config
from finetune.runs import ensure_run, run_summary
from landscape.experiments.recipes import SOURCE_RECIPE, TARGET_RECIPE
from landscape.tune.advisor import advise_run, toml_value
from landscape.tune.sweep import best_config, run_sweep, study_name

TASKS = ("near", "far")
PER_CLASS = (10, 50)
SEEDS = (0, 1, 2)
SPACE = """
[space]
lr = {{ low = 0.002, high = 0.1, log = true }}
lr-decay = {{ low = 0.3, high = 1.0 }}
freeze-groups = {{ low = 0, high = 5 }}
transfer-groups = {{ low = 3, high = 6 }}
l2sp = {{ low = 1e-4, high = 1.0, log = true, zero = true }}
l2 = {{ low = 1e-5, high = 1e-2, log = true, zero = true }}

[base]
{base}
"""


def toml_lines(values: dict) -> str:
    return "\n".join(f"{k.replace('_', '-')} = {toml_value(v)}" for k, v in values.items())


def test_accuracy(values: dict, runs: Path) -> tuple[float, float]:
    """Mean and sd of the test accuracy of ``values`` over SEEDS (runs reused)."""
    accs = []
    for seed in SEEDS:
        config = build_config("finetune", {}, {**values, "seed": seed})
        run = ensure_run(config, runs / f"finetune-{config.hash()[:12]}")
        accs.append(100 * run_summary(run)["test_acc"])
    return statistics.mean(accs), statistics.stdev(accs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    out: Path = args.out
    source = ensure_run(build_config("pretrain", {}, SOURCE_RECIPE), out / "source")
    rows = []
    for task in TASKS:
        for n in PER_CLASS:
            name = f"{task}{n}"
            base = {**TARGET_RECIPE, "init": str(source), "data": f"synthetic:{task}"}
            base["train_per_class"] = n
            # The sweep's own run folder: the seed-0 run of its best trial is reused.
            runs = out / name / "sweep" / "runs"
            default = test_accuracy(base, runs)

            start = time.perf_counter()
            advice = advise_run(build_config("finetune", {}, base), out=out / name / "advice.toml")
            advisor_seconds = time.perf_counter() - start
            advised = test_accuracy(advice.values, runs)

            space = out / name / "space.toml"
            searched = {"lr", "lr_decay", "freeze_groups", "transfer_groups", "l2sp", "l2"}
            fixed = {k: v for k, v in base.items() if k not in searched}
            space.write_text(SPACE.format(base=toml_lines(fixed)))
            start = time.perf_counter()
            run_sweep(space, trials=args.trials, out=out / name / "sweep", workers=args.workers)
            sweep_seconds = time.perf_counter() - start
            best = best_config(out=out / name / "sweep", study=study_name(space))
            swept = test_accuracy(best, runs)
            rows.append((name, default, advised, swept, advisor_seconds, sweep_seconds, best))
            print(name, default, advised, swept, advisor_seconds, sweep_seconds, flush=True)

    print()
    print(
        "| target | default (binary) | advisor | best of the sweep | advisor gain | sweep gain "
        "| advisor / sweep gain | advisor s | sweep s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, default, advised, swept, a_s, s_s, _ in rows:
        gain_a, gain_s = advised[0] - default[0], swept[0] - default[0]
        share = f"{100 * gain_a / gain_s:.0f}%" if gain_s > 0 else "n/a"
        print(
            f"| {name[:-2]} {name[-2:]}/class | {default[0]:.1f} ± {default[1]:.1f} "
            f"| {advised[0]:.1f} ± {advised[1]:.1f} | {swept[0]:.1f} ± {swept[1]:.1f} "
            f"| {gain_a:+.1f} | {gain_s:+.1f} | {share} | {a_s:.0f} | {s_s:.0f} |"
        )
    for name, *_, best in rows:
        flat = {k.replace("-", "_"): v for k, v in best.items()}
        searched = {k: flat[k] for k in ("lr", "lr_decay", "freeze_groups", "transfer_groups",
                                         "l2sp", "l2") if k in flat}  # fmt: skip
        print(f"{name}: best of the sweep {searched}")


if __name__ == "__main__":
    main()
