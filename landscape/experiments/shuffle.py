"""The block-shuffle experiment (Neyshabur, Sedghi, Zhang 2020): fine-tune from pre-trained
weights and from random init on target images cut into b x b blocks and permuted, for several
block sizes b and seeds. As b shrinks the visual features the source model learnt no longer
appear in the images; what pre-training still buys at small b comes from low-level
statistics rather than from feature reuse. One HDF5 file of kind ``shuffle`` holds the test
accuracies and the gap (pre-trained minus scratch) per block size."""

from __future__ import annotations

import copy
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from finetune import engine
from finetune.config import RunConfig, build_config
from finetune.data import resolve_spec
from finetune.data.input_spec import resolve_input
from finetune.errors import ConfigError
from finetune.executors import PlannedRun, Serial, train_all
from finetune.result_files import write_result
from finetune.runs import run_summary
from landscape.experiments.options import GridProgress
from probes.statistics import mean_sd

INITS = ("pretrained", "scratch")


@dataclass(frozen=True)
class ShuffleReport:
    """Test accuracies of every (block size, seed), from pre-trained and from random init."""

    out: Path
    image_size: int
    block_sizes: list[int]
    seeds: list[int]
    acc_pretrained: np.ndarray  # (B, S)
    acc_scratch: np.ndarray  # (B, S)
    runs_pretrained: list[list[Path]]
    runs_scratch: list[list[Path]]

    @property
    def gap(self) -> np.ndarray:
        """Mean pre-trained minus mean scratch test accuracy per block size, (B,)."""
        return self.acc_pretrained.mean(axis=1) - self.acc_scratch.mean(axis=1)

    def table(self) -> str:
        """One row per block size: mean ± std (over seeds) of each init, and the gap."""
        lines = [f"{'block':>14s}{'pre-trained':>16s}{'scratch':>16s}{'gap':>9s}"]
        for i, b in enumerate(self.block_sizes):
            label = f"{b}px" + (" (intact)" if b == self.image_size else "")
            lines.append(
                f"{label:>14s}{mean_sd(self.acc_pretrained[i]):>16s}"
                f"{mean_sd(self.acc_scratch[i]):>16s}{self.gap[i]:>+9.3f}"
            )
        lines.append(
            f"test accuracy over {len(self.seeds)} seed(s) at {self.image_size}px; "
            "gap = pre-trained - scratch"
        )
        return "\n".join(lines)


def run_shuffle(
    base: RunConfig,
    block_sizes: Sequence[int],
    seeds: Sequence[int],
    out: str | Path,
    runs_dir: str | Path | None = None,
    *,
    progress: engine.Progress | None = None,
    log: Callable[[str], None] = lambda line: None,
    command: str | None = None,
    train: Callable[[list[PlannedRun]], None] | None = None,
) -> ShuffleReport:
    """Fine-tune ``base`` (whose init is pre-trained: ``model.init`` or ``model.pretrained``)
    and its random-init twin at every block size (the image size, intact, is always added)
    and seed, each into ``runs_dir / b{b}-{init}-seed{seed}`` (default: ``<out stem>_runs``
    beside ``out``), reusing finished runs and resuming interrupted ones (``train``: what
    trains the grid's runs, default one after the other here); write the result file
    ``out`` (kind ``shuffle``) and return the report."""
    out = Path(out)
    runs_dir = Path(runs_dir) if runs_dir is not None else out.with_name(f"{out.stem}_runs")
    if base.kind != "finetune":
        raise ConfigError(f"the shuffle experiment fine-tunes; got a {base.kind} config")
    if not (base.model.init or base.model.pretrained):
        raise ConfigError(
            "the shuffle experiment compares pre-trained with random init: give --init or "
            "--pretrained"
        )
    if not seeds:
        raise ConfigError("give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds repeat: {list(seeds)}")
    default_size = resolve_spec(base.data.spec)[0].default_image_size
    image_size = resolve_input(base.model, base.data, default_size).size
    bad = [b for b in block_sizes if b < 1 or image_size % b]
    if bad:
        divisors = ", ".join(str(d) for d in range(1, image_size + 1) if image_size % d == 0)
        raise ConfigError(
            f"block size {bad[0]} does not divide the image size {image_size}px; "
            f"block sizes must be among {divisors}"
        )
    blocks = sorted({int(b) for b in block_sizes} | {image_size})
    seeds = [int(s) for s in seeds]

    values = base.to_dict()
    # The random-init twin: same recipe, no initial weights (so nothing to transfer).
    scratch_values = copy.deepcopy(values)
    scratch_values["model"].update(init=None, pretrained=False)
    if base.model.pretrained and base.data.preprocess == "auto":
        # auto follows --pretrained: the twin is prepared as the pre-trained runs are.
        scratch_values["data"].update(preprocess="model")
    scratch_values["policy"].update(transfer_groups=None)
    grid = {
        (init, i, j): PlannedRun(
            build_config(
                "finetune",
                values if init == "pretrained" else scratch_values,
                {"block_shuffle": b, "seed": seed},
            ),  # fmt: skip
            runs_dir / f"b{b}-{init}-seed{seed}",
        )
        for i, b in enumerate(blocks)
        for init in INITS
        for j, seed in enumerate(seeds)
    }
    log(f"{len(grid)} runs of {len(blocks)} block sizes x {len(INITS)} inits x "
        f"{len(seeds)} seeds -> {runs_dir}")  # fmt: skip
    if train is None:
        bar = GridProgress(progress, len(grid))
        train_all(Serial(), list(grid.values()), bar.finished, progress=progress)
    else:
        train(list(grid.values()))
    acc = {init: np.zeros((len(blocks), len(seeds))) for init in INITS}
    runs = {init: [[grid[init, i, j].path for j in range(len(seeds))]
                   for i in range(len(blocks))] for init in INITS}  # fmt: skip
    for (init, i, j), run in grid.items():
        acc[init][i, j] = float(run_summary(run.path)["test_acc"])

    report = ShuffleReport(
        out, image_size, blocks, seeds, acc["pretrained"], acc["scratch"],
        runs["pretrained"], runs["scratch"],
    )  # fmt: skip
    _write(report, base, command)
    return report


def _write(report: ShuffleReport, base: RunConfig, command: str | None) -> None:
    intact = report.block_sizes.index(report.image_size)
    means = {init: getattr(report, f"acc_{init}").mean(axis=1) for init in INITS}
    init = base.model.init if base.model.init else f"timm pretrained {base.model.name}"
    write_result(
        report.out,
        "shuffle",
        {
            "block_sizes": np.asarray(report.block_sizes, dtype=np.int64),
            "seeds": np.asarray(report.seeds, dtype=np.int64),
            "acc_pretrained": report.acc_pretrained,
            "acc_scratch": report.acc_scratch,
            "gap": report.gap,
            "runs_pretrained": _paths(report.runs_pretrained),
            "runs_scratch": _paths(report.runs_scratch),
        },
        attrs={
            "config": base.to_dict(),
            "model": base.model.name,
            "data": base.data.spec,
            "init": init,
            "scheme": base.data.shuffle_scheme,
            "image_size": report.image_size,
        },
        summary={
            "gap_intact": float(report.gap[intact]),
            "gap_smallest_block": float(report.gap[0]),
            "pretrained_intact": float(means["pretrained"][intact]),
            "scratch_intact": float(means["scratch"][intact]),
        },
        command=command if command is not None else shlex.join(sys.argv),
    )


def _paths(runs: list[list[Path]]) -> np.ndarray:
    return np.array([[str(p) for p in row] for row in runs], dtype=h5py.string_dtype())
