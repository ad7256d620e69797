"""The cost of the sharpness probe in gradient evaluations: the top eigenvalue (whole model
and every layer group, ``iterations`` power steps each, no early stop) and a Hutchinson
trace of a randomly initialised model (seed 0) on synthetic:source training images, against
one plain gradient of the same loss over the same batches.

A Hessian-vector product is a gradient with its graph plus a second backward pass, so one
product should cost two to three gradients; several products share a pass over the batches
(the forward pass and the first backward), which brings the cost per product down."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from finetune.data import get_dataset
from finetune.data.loader import Batches, epoch_order
from finetune.errors import ConfigError
from finetune.models import create_model
from finetune.result_files import write_result
from finetune.runtime import Runtime
from landscape.bench.options import BENCH_DATA, BenchOptions, device_description
from landscape.bench.twins import model_prep
from landscape.geometry.options import SharpnessOptions
from landscape.geometry.sharpness import batch_losses, measure_sharpness
from probes.inputs import ProbeData

SHARPNESS_BATCH = 64


@dataclass(frozen=True)
class SharpnessBench:
    model: str
    precision: str
    image_size: int
    batch_size: int
    examples: int
    batches: int
    parameters: int
    groups: int
    hvps: int
    passes: int
    seconds: float
    gradient_seconds: float
    top_eigenvalue: float
    trace: float

    @property
    def seconds_per_hvp(self) -> float:
        return self.seconds / self.hvps

    @property
    def hvp_in_gradients(self) -> float:
        """What one Hessian-vector product costs, in gradient evaluations."""
        return self.seconds_per_hvp / self.gradient_seconds


def gradient_seconds(
    losses: Callable[[], Iterable[torch.Tensor]],
    params: list[torch.Tensor],
    runtime: Runtime,
    repeats: int,
) -> float:
    """The fastest of ``repeats`` timed gradients of the summed ``losses()`` with respect to
    ``params`` (one backward per batch), after one untimed warm-up."""
    best = float("inf")
    for round_ in range(repeats + 1):
        runtime.synchronize()
        start = time.perf_counter()
        for term in losses():
            torch.autograd.grad(term, params)
        runtime.synchronize()
        if round_ > 0:
            best = min(best, time.perf_counter() - start)
    return best


def bench_sharpness(
    options: BenchOptions = BenchOptions(),
    *,
    batches: int = 4,
    iterations: int = 20,
    hutchinson_samples: int = 20,
    vectors_per_pass: int = 8,
    repeats: int = 3,
    out: Path | None = None,
) -> SharpnessBench:
    """Time the sharpness measurement of a random model on ``batches`` batches (default 64
    images each), once, after the best of ``repeats`` plain gradients over the same batches
    (and their warm-up); the power iterations run all ``iterations`` (``tol`` 0), so the
    work is a fixed number of products. The model is not compiled."""
    if repeats < 1:
        raise ConfigError(f"--repeats must be positive, got {repeats}")
    settings = SharpnessOptions(
        batches=batches,
        iterations=iterations,
        tol=0.0,
        hutchinson_samples=hutchinson_samples,
        vectors_per_pass=vectors_per_pass,
    )
    runtime = options.runtime(compiles=False)
    batch_size = options.batch(SHARPNESS_BATCH)
    torch.manual_seed(0)
    model = create_model(options.model, 20, options.image_size).to(runtime.device).eval()
    if runtime.channels_last:
        model = model.to(memory_format=torch.channels_last)
    prep = model_prep(model, runtime)
    dataset = get_dataset(BENCH_DATA, "train", image_size=options.image_size)
    order = epoch_order(len(dataset), 0, -1)[: batches * batch_size]
    batches_on_device = Batches(dataset, runtime.device, on_device=True)
    train = ProbeData(BENCH_DATA, "train", dataset, batches_on_device, order)
    data = train.fixed(batch_size, runtime.processes)
    params = list(model.parameters())
    gradient = gradient_seconds(
        lambda: batch_losses(model, data, prep, runtime), params, runtime, repeats
    )
    result = measure_sharpness(model, data, prep, runtime, settings)
    described = device_description(runtime)
    bench = SharpnessBench(
        model=options.model,
        precision=str(described["precision"]),
        image_size=options.image_size,
        batch_size=batch_size,
        examples=result.examples,
        batches=result.batches,
        parameters=int(result.parameters.sum()),
        groups=len(result.groups),
        hvps=result.hvps,
        passes=result.passes,
        seconds=result.seconds,
        gradient_seconds=gradient,
        top_eigenvalue=result.top_eigenvalue,
        trace=result.trace[0],
    )
    if out is not None:
        write_result(
            Path(out),
            "bench_sharpness",
            {},
            attrs={
                "model": options.model,
                "image_size": options.image_size,
                "batch_size": batch_size,
                "precision": bench.precision,
                "iterations": iterations,
                "tol": settings.tol,
                "hutchinson_samples": hutchinson_samples,
                "vectors_per_pass": vectors_per_pass,
                "repeats": repeats,
                "device": described,
            },
            summary={
                "examples": bench.examples,
                "batches": bench.batches,
                "parameters": bench.parameters,
                "groups": bench.groups,
                "hvps": bench.hvps,
                "passes": bench.passes,
                "seconds": bench.seconds,
                "seconds_per_hvp": bench.seconds_per_hvp,
                "gradient_seconds": gradient,
                "hvp_in_gradients": bench.hvp_in_gradients,
                "top_eigenvalue": bench.top_eigenvalue,
                "trace": bench.trace,
            },
        )
    return bench
