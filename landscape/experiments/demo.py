"""``landscape demo``: the whole loop on built-in data in a few minutes on a CPU. Pre-train a
tiny source model, fine-tune it and a randomly initialised twin on a scarce target (two
seeds each), and report what the pre-trained weights bought and what stayed: the feature
similarity (CKA), the parameter distance and the loss barrier between the two seeds of
each init."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from finetune import engine
from finetune.config import build_config
from finetune.runs import ensure_run, run_summary
from landscape.experiments.recipes import (
    CKA_EXAMPLES,
    MODEL,
    SOURCE_RECIPE,
    TARGET,
    TARGET_RECIPE,
)
from landscape.geometry.barrier import barrier_between
from landscape.plots import plot_file
from probes.distance import distance_between_runs
from probes.options import ProbeOptions
from probes.similarity import compare_runs

SEEDS = (0, 1)
BARRIER_POINTS = 25


@dataclass(frozen=True)
class DemoRow:
    name: str
    init: str
    seed: int
    test_acc: float
    best_eval_acc: float
    seconds: float


@dataclass(frozen=True)
class PairRow:
    """What two seeds of one init share: mean diagonal CKA, parameter distance, and the
    loss and error barriers on the straight line between them (training images)."""

    init: str
    mean_cka: float
    distance: float
    relative_distance: float
    loss_barrier: float
    error_barrier: float


@dataclass(frozen=True)
class DemoReport:
    source: DemoRow
    runs: list[DemoRow]
    pairs: list[PairRow]

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
        lines.append("")
        lines.append(
            f"{'between seeds ' + ' and '.join(map(str, SEEDS)):<26s}{'mean CKA':>10s}"
            f"{'distance':>10s}{'relative':>10s}{'loss barrier':>14s}{'error barrier':>15s}"
        )
        for p in self.pairs:
            lines.append(
                f"{p.init + ' init':<26s}{p.mean_cka:>10.3f}{p.distance:>10.2f}"
                f"{p.relative_distance:>10.3f}{p.loss_barrier:>14.3f}{p.error_barrier:>15.3f}"
            )
        lines.append(
            f"(CKA on {CKA_EXAMPLES} test images; barriers on the straight line between the "
            f"two runs, {BARRIER_POINTS} points, BatchNorm re-estimated at each, on the "
            "training images: the random-init runs do not generalise beyond them)"
        )
        lines.append("")
        lines.append(
            "the published claims behind these numbers, checked on tiny models: "
            "`landscape repro list`, results in results/repro/ (results/README.md)"
        )
        return "\n".join(lines)


def run_demo(
    out: str | Path,
    *,
    progress: engine.Progress | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> DemoReport:
    """Run (or reuse, when ``out`` already holds them) the demo's five runs, then compare
    the two seeds of each init (``cka-INIT.h5``, ``distance-INIT.h5`` and ``barrier-INIT.h5``,
    each with its PNG)."""
    out = Path(out)
    source_dir = out / "source"
    log(f"pre-training {MODEL} on synthetic:source -> {source_dir}")
    source_config = build_config("pretrain", {}, SOURCE_RECIPE)
    source = _row(ensure_run(source_config, source_dir, progress=progress), "source", 0)
    rows = []
    for init in ("pretrained", "random"):
        for seed in SEEDS:
            name = f"{init}-seed{seed}"
            extra = {"init": str(source_dir)} if init == "pretrained" else {}
            config = build_config("finetune", {}, {**TARGET_RECIPE, **extra, "seed": seed})
            log(f"fine-tuning on {TARGET} from {init} init, seed {seed} -> {out / name}")
            rows.append(_row(ensure_run(config, out / name, progress=progress), init, seed))
    pairs = [_compare(out, init, log) for init in ("pretrained", "random")]
    return DemoReport(source, rows, pairs)


def _compare(out: Path, init: str, log: Callable[[str], None]) -> PairRow:
    first, second = (out / f"{init}-seed{seed}" for seed in SEEDS[:2])
    log(f"comparing {first.name} with {second.name}: CKA, parameter distance, barrier")
    cka = compare_runs(
        first, second, options=ProbeOptions(examples=CKA_EXAMPLES), out=out / f"cka-{init}.h5"
    )
    distance = distance_between_runs(first, second, out=out / f"distance-{init}.h5")
    line = barrier_between(
        first,
        second,
        points=BARRIER_POINTS,
        options=ProbeOptions(split="train"),
        out=out / f"barrier-{init}.h5",
    )
    for kind in ("cka", "distance", "barrier"):
        plot_file(out / f"{kind}-{init}.h5")
    return PairRow(
        init,
        cka.mean_diagonal,
        distance.total["distance"],
        distance.total["relative_distance"],
        line.loss_barrier.linear,
        line.error_barrier.linear,
    )


def _row(run: Path, init: str, seed: int) -> DemoRow:
    s = run_summary(run)
    return DemoRow(
        run.name,
        init,
        seed,
        float(s["test_acc"]),
        float(s["best_eval_acc"]),
        float(s["train_seconds"]),
    )
