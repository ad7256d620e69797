"""L2-SP against plain L2 on the synthetic targets with 10 images per class: test_resnet
pre-trained on synthetic:source with the demo's recipe, fine-tuned with the demo's target
recipe under each regulariser, 3 seeds each. Prints a markdown table for the README.

Run with ``python tests/experiments/sp_vs_l2.py [--out DIR]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from finetune import engine
from finetune.config import build_config
from landscape.experiments.recipes import SOURCE_RECIPE, TARGET_RECIPE

SETTINGS = {
    "l2 5e-4 (binary default)": {"l2": 5e-4},
    "l2sp preset (alpha 0.1, beta 0.01 new)": {"preset": "l2sp"},
    "l2sp 0.01 + l2 5e-4": {"l2sp": 0.01, "l2": 5e-4},
}
TASKS = ("synthetic:near", "synthetic:far")
SEEDS = (0, 1, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None)
    out = parser.parse_args().out or Path(tempfile.mkdtemp())
    source = out / "source"
    if not (source / "final.safetensors").exists():
        engine.train(build_config("pretrain", {}, SOURCE_RECIPE), source, command="sp_vs_l2")
    print("| target | regulariser | test acc (mean ± sd of 3 seeds) |")
    print("| --- | --- | --- |")
    for task in TASKS:
        for index, (label, setting) in enumerate(SETTINGS.items()):
            accs = []
            for seed in SEEDS:
                values = {**TARGET_RECIPE, "data": task, "init": str(source), "seed": seed,
                          **setting}
                run = out / f"{task.split(':')[1]}-setting{index}-seed{seed}"
                result = engine.train(build_config("finetune", {}, values), run, command="x")
                accs.append(result.summary["test_acc"])
            mean, sd = statistics.mean(accs), statistics.stdev(accs)
            print(f"| {task} | {label} | {100 * mean:.1f} ± {100 * sd:.1f} |", flush=True)


if __name__ == "__main__":
    main()
