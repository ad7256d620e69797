"""The cost of a barrier curve: ``points`` points of the straight line between two randomly
initialised twins of a model (seeds 0 and 1) on synthetic:source images, against as many
plain evaluation passes over the same examples, with BatchNorm re-estimation off and on.

With re-estimation off, each point is one evaluation pass plus moving the weights (two
fused kernels), so the ratio should sit just above 1. With it on, each point evaluates the
interpolated statistics (the raw curve), re-estimates them on the training batches and
evaluates again (the re-estimated curve): about ``2 + bn images / eval images`` passes."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from finetune.data import get_dataset
from finetune.data.loader import Batches, epoch_order
from finetune.errors import ConfigError
from finetune.evaluation.measure import measure
from finetune.result_files import write_result
from finetune.runtime import Runtime
from landscape.bench.options import BENCH_DATA, BenchOptions, device_description
from landscape.bench.twins import model_prep, random_twins
from landscape.geometry.barrier import interpolation_curves
from landscape.geometry.paths import Line
from probes.inputs import ProbeData, RunInputs

BARRIER_BATCH = 256


@dataclass(frozen=True)
class BarrierBench:
    model: str
    device: str
    device_name: str
    precision: str
    image_size: int
    batch_size: int
    examples: int
    points: int
    bn_batches: int
    bn_examples: int
    plain_seconds: float
    barrier_seconds: float
    barrier_bn_seconds: float

    @property
    def ratio(self) -> float:
        return self.barrier_seconds / self.plain_seconds

    @property
    def ratio_bn(self) -> float:
        return self.barrier_bn_seconds / self.plain_seconds

    def table(self) -> str:
        return "\n".join(
            [
                f"{self.points}-point barrier of {self.model} @ {self.image_size}px on "
                f"{self.examples} examples, batch {self.batch_size}, {self.precision}, "
                f"{self.device_name} ({self.device})",
                f"{'what':<52s}{'seconds':>9s}{'ratio':>8s}",
                f"{f'{self.points} plain evaluation passes':<52s}"
                f"{self.plain_seconds:>9.3f}{1.0:>8.2f}",
                f"{'barrier, BatchNorm statistics interpolated':<52s}"
                f"{self.barrier_seconds:>9.3f}{self.ratio:>8.2f}",
                f"{f'barrier, raw + re-estimated ({self.bn_examples} train images)':<52s}"
                f"{self.barrier_bn_seconds:>9.3f}{self.ratio_bn:>8.2f}",
            ]
        )


def _best_of_interleaved(runtime: Runtime, works: list, repeats: int) -> list[float]:
    """The fastest of ``repeats`` timed calls of each of ``works``, after one untimed
    warm-up call of each; the rounds interleave the works, so a slow spell of the machine
    hits them alike."""
    for work in works:
        work()
    best = [float("inf")] * len(works)
    for _ in range(repeats):
        for i, work in enumerate(works):
            runtime.synchronize()
            start = time.perf_counter()
            work()
            runtime.synchronize()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def _probe_data(split: str, image_size: int, examples: int, runtime: Runtime) -> ProbeData:
    dataset = get_dataset(BENCH_DATA, split, image_size=image_size)
    order = epoch_order(len(dataset), 0, -1)[:examples]
    batches = Batches(dataset, runtime.device, on_device=True)
    return ProbeData(BENCH_DATA, split, dataset, batches, order)


@torch.no_grad()
def bench_barrier(
    options: BenchOptions = BenchOptions(),
    *,
    examples: int = 1000,
    points: int = 25,
    bn_batches: int = 4,
    repeats: int = 3,
    out: Path | None = None,
) -> BarrierBench:
    """Time ``points`` plain evaluation passes, and the ``points``-point curve without and
    with BatchNorm re-estimation (``bn_batches`` training batches): the best of ``repeats``
    interleaved rounds after one untimed warm-up of each. The batch (default 256) serves
    evaluation and re-estimation; the models are not compiled."""
    for name, value in (("barrier-examples", examples), ("repeats", repeats)):
        if value < 1:
            raise ConfigError(f"--{name} must be positive, got {value}")
    if points < 2 or bn_batches < 1:
        raise ConfigError(
            f"need --barrier-points >= 2 and --bn-batches >= 1, got {points}, {bn_batches}"
        )
    runtime = options.runtime(compiles=False)
    model, image_size = options.model, options.image_size
    batch_size = options.batch(BARRIER_BATCH)
    a, b = random_twins(model, 20, image_size, runtime)
    prep = model_prep(a, runtime)
    evaluation = _probe_data("test", image_size, examples, runtime)
    training = _probe_data("train", image_size, bn_batches * batch_size, runtime)
    data = evaluation.fixed(batch_size, runtime.processes, ascending=True)
    plain = RunInputs(a, prep, runtime, BENCH_DATA, batch_size, data, None)
    bn_data = training.fixed(batch_size, runtime.processes, minimum=2)
    with_bn = dataclasses.replace(plain, bn_data=bn_data)
    line = Line(a, a.state_dict(), b.state_dict())
    alphas = np.linspace(0.0, 1.0, points)

    def passes() -> None:
        for _ in range(points):
            measure(a, data, prep, runtime).cpu()  # one host synchronisation per pass

    plain_seconds, barrier_seconds, bn_seconds = _best_of_interleaved(
        runtime,
        [
            passes,
            lambda: interpolation_curves(line, alphas, plain),
            lambda: interpolation_curves(line, alphas, with_bn),
        ],
        repeats,
    )
    described = device_description(runtime)
    result = BarrierBench(
        model=model,
        device=str(described["device"]),
        device_name=str(described["device_name"]),
        precision=str(described["precision"]),
        image_size=image_size,
        batch_size=batch_size,
        examples=plain.data.examples,
        points=points,
        bn_batches=with_bn.bn_batches,
        bn_examples=len(training),
        plain_seconds=plain_seconds,
        barrier_seconds=barrier_seconds,
        barrier_bn_seconds=bn_seconds,
    )
    if out is not None:
        write_result(
            Path(out),
            "bench_barrier",
            {},
            attrs={
                "model": model,
                "image_size": image_size,
                "batch_size": batch_size,
                "precision": result.precision,
                "repeats": repeats,
                "device": described,
            },
            summary={
                "examples": result.examples,
                "points": points,
                "bn_batches": result.bn_batches,
                "bn_examples": result.bn_examples,
                "plain_seconds": plain_seconds,
                "barrier_seconds": barrier_seconds,
                "barrier_bn_seconds": bn_seconds,
                "ratio": result.ratio,
                "ratio_bn": result.ratio_bn,
            },
        )
    return result
