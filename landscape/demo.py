"""``landscape demo``: the whole loop on built-in data in a few minutes on a CPU. Pre-train a
tiny source model, fine-tune it and a randomly initialised twin on a scarce target (two
seeds each), and report what the pre-trained weights bought."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py

from finetune import engine, rundir
from finetune.config import RunConfig, build_config
from finetune.errors import RunDirError

MODEL = "test_resnet"
SOURCE_RECIPE: dict[str, Any] = dict(
    model=MODEL,
    data="synthetic:source",
    epochs=6,
    batch_size=128,
    lr=0.05,
    l2=5e-4,
    seed=0,
)
TARGET = "synthetic:near"
TARGET_RECIPE: dict[str, Any] = dict(
    model=MODEL,
    data=TARGET,
    train_per_class=10,
    epochs=30,
    batch_size=32,
    lr=0.01,
    l2=5e-4,
)
SEEDS = (0, 1)


@dataclass(frozen=True)
class DemoRow:
    name: str
    init: str
    seed: int
    test_acc: float
    best_eval_acc: float
    seconds: float


@dataclass(frozen=True)
class DemoReport:
    source: DemoRow
    runs: list[DemoRow]

    def mean_acc(self, init: str) -> float:
        accs = [r.test_acc for r in self.runs if r.init == init]
        return sum(accs) / len(accs)

    def table(self) -> str:
        lines = [
            f"{'run':<22s}{'init':<12s}{'seed':>5s}{'test acc':>10s}{'best val':>10s}"
            f"{'seconds':>9s}",
        ]
        for r in [self.source, *self.runs]:
            lines.append(
                f"{r.name:<22s}{r.init:<12s}{r.seed:>5d}{r.test_acc:>10.3f}"
                f"{r.best_eval_acc:>10.3f}{r.seconds:>9.1f}"
            )
        gain = self.mean_acc("pretrained") - self.mean_acc("random")
        lines.append("")
        lines.append(
            f"{TARGET} with {TARGET_RECIPE['train_per_class']} images per class: pre-trained "
            f"init {self.mean_acc('pretrained'):.3f}, random init {self.mean_acc('random'):.3f}"
            f" (transfer gain {100 * gain:+.1f} points, mean of {len(SEEDS)} seeds)"
        )
        return "\n".join(lines)


def run_demo(
    out: str | Path,
    *,
    progress: engine.Progress | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> DemoReport:
    """Run (or reuse, when ``out`` already holds them) the demo's five runs."""
    out = Path(out)
    source_dir = out / "source"
    log(f"pre-training {MODEL} on synthetic:source -> {source_dir}")
    source = _ensure(build_config("pretrain", {}, SOURCE_RECIPE), source_dir, progress, "source")
    rows = []
    for init in ("pretrained", "random"):
        for seed in SEEDS:
            name = f"{init}-seed{seed}"
            extra = {"init": str(source_dir)} if init == "pretrained" else {}
            config = build_config("finetune", {}, {**TARGET_RECIPE, **extra, "seed": seed})
            log(f"fine-tuning on {TARGET} from {init} init, seed {seed} -> {out / name}")
            rows.append(_ensure(config, out / name, progress, init))
    return DemoReport(source, rows)


def _ensure(config: RunConfig, run: Path, progress: engine.Progress | None, init: str) -> DemoRow:
    """A completed run of ``config`` in ``run``: reused if there, resumed if interrupted."""
    if run.exists() and (run / rundir.CONFIG).exists():
        record = rundir.read_config(run)
        if record["config_hash"] == config.hash():
            state, _ = rundir.read_status(run)
            if state != "completed":
                engine.resume(run, progress=progress)
            return _row(run, init, config.train.seed)
        raise RunDirError(f"{run} holds another configuration; pick another --out")
    engine.train(config, run, progress=progress)
    return _row(run, init, config.train.seed)


def _row(run: Path, init: str, seed: int) -> DemoRow:
    with h5py.File(run / rundir.RUN_H5) as f:
        s = dict(f["summary"].attrs)
    if s.get("status") != "completed":
        raise RunDirError(f"{run} did not complete (status {s.get('status')!r})")
    return DemoRow(
        run.name,
        init,
        seed,
        float(s["test_acc"]),
        float(s["best_eval_acc"]),
        float(s["train_seconds"]),
    )
