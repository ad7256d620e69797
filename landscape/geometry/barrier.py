"""The loss barrier on the straight line between two runs (Neyshabur, Sedghi, Zhang 2020:
runs fine-tuned from the same pre-trained weights lie in one basin, runs from random init
are separated by a barrier).

At every point ``a`` of ``linspace(0, 1, points)`` (both ends included) the model holds
``theta(a) = (1 - a) theta_A + a theta_B`` (``landscape.geometry.paths.Line``) and is evaluated on a
fixed set of examples, moved to the device once and reused at every point; values stay on
the device until the whole curve is done (one host synchronisation per curve).

Two curves when the model has BatchNorm and ``bn_batches > 0``:

- ``raw``: the running statistics are interpolated like the weights. Its end points are the
  runs themselves, so they equal the runs' own evaluation (``finetune.engine.evaluate``).
- ``bn``: the statistics are re-estimated at every point, the two ends included
  (``finetune.evaluation.batchnorm``), so the whole curve is measured one way and has no jump at the
  ends; its end points differ from the runs' own evaluation by what re-estimation changes.

The headline barriers come from ``bn`` when it exists, else from ``raw``. For a curve
``L(a)`` (loss or error) two barriers are reported:

- ``linear``: ``max_a [L(a) - ((1 - a) L(0) + a L(1))]``, the height above the straight
  line between the ends (Entezari et al. 2021; the curves of Neyshabur et al. 2020). It is
  at least 0 (``a = 0`` counts) and is 0 for a convex curve.
- ``mean``: ``max_a L(a) - (L(0) + L(1)) / 2``, the peak above the mean of the ends (the
  error-barrier height or *instability* of Frankle et al. 2020).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from finetune.data.augment import BatchPrep
from finetune.errors import ConfigError
from finetune.evaluation.batchnorm import has_batchnorm, reestimate_batchnorm
from finetune.result_files import write_result
from finetune.runs import LoadedRun, load_run, pair_attrs
from finetune.runtime import Runtime
from landscape.geometry.paths import Line
from probes.inputs import (
    ProbeData,
    batch_sizes,
    eval_prep,
    iterate_sized,
    probe_data,
    probe_runtime,
    process_batches,
)

DEFAULT_BN_BATCHES = 50


@dataclass(frozen=True)
class Barrier:
    """The two barriers of one curve and where their maxima lie."""

    linear: float
    linear_at: float
    mean: float
    mean_at: float


def barrier(alphas: np.ndarray, values: np.ndarray) -> Barrier:
    """The barriers of the curve ``values`` sampled at ``alphas`` (ascending, from 0 to 1,
    both ends included): ``max [L(a) - ((1 - a) L(0) + a L(1))]`` and
    ``max L(a) - (L(0) + L(1)) / 2``, with the ``a`` of each maximum (the first one)."""
    alphas = np.asarray(alphas, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if alphas.ndim != 1 or alphas.shape != values.shape or len(alphas) < 2:
        raise ValueError("a barrier needs matching 1-d alphas and values, at least two points")
    if alphas[0] != 0.0 or alphas[-1] != 1.0:
        raise ValueError(f"alphas must run from 0 to 1, got {alphas[0]} to {alphas[-1]}")
    straight = (1.0 - alphas) * values[0] + alphas * values[-1]
    above = values - straight
    i, j = int(np.argmax(above)), int(np.argmax(values))
    return Barrier(
        linear=float(above[i]),
        linear_at=float(alphas[i]),
        mean=float(values[j] - 0.5 * (values[0] + values[-1])),
        mean_at=float(alphas[j]),
    )


@dataclass
class Measure:
    """Measures the model as it currently stands: summed cross-entropy and correct count on
    ``data`` (in eval mode, as ``finetune.engine.evaluate`` does), and BatchNorm
    re-estimation on ``bn_data`` when given. Both datasets are kept on the device (when
    they fit) and read in the same order at every call. Under DDP ``data`` and ``bn_data``
    hold this process's batches only; ``examples`` and ``bn_batches`` count all of them,
    and every result is combined over the processes."""

    model: nn.Module
    runtime: Runtime
    prep: BatchPrep
    data: ProbeData
    sizes: list[int]
    examples: int
    bn_data: ProbeData | None = None
    bn_sizes: list[int] = dataclasses.field(default_factory=list)
    bn_batches: int = 0
    bn_examples: int = 0

    @property
    def reestimates(self) -> bool:
        return self.bn_data is not None

    @torch.no_grad()
    def sums(self) -> torch.Tensor:
        """(2,) float64 on the device: summed loss and number of correct predictions."""
        self.model.eval()
        total = torch.zeros(2, dtype=torch.float64, device=self.runtime.device)
        for images, labels in iterate_sized(self.data, self.sizes):
            with self.runtime.autocast():
                logits = self.model(self.prep(images))
            total[0] += F.cross_entropy(logits.float(), labels, reduction="sum").double()
            total[1] += (logits.argmax(1) == labels).sum()
        return self.runtime.processes.sum_(total)

    def reestimate(self) -> int:
        """Re-estimate the BatchNorm statistics on the fixed training batches."""
        if self.bn_data is None:
            return 0
        inputs = (self.prep(images) for images, _ in iterate_sized(self.bn_data, self.bn_sizes))
        processes = self.runtime.processes
        gather = processes.gather if processes.parallel else None
        reestimate_batchnorm(self.model, inputs, runtime=self.runtime, gather=gather)
        return self.bn_batches


def make_measure(
    model: nn.Module,
    runtime: Runtime,
    prep: BatchPrep,
    data: ProbeData,
    batch_size: int,
    bn_data: ProbeData | None = None,
) -> Measure:
    """A ``Measure`` over ``data`` in ascending example order (the order
    ``finetune.engine.evaluate`` uses, so whole splits give the same batches), with
    BatchNorm re-estimation on ``bn_data`` (in its own seeded order) when the model has
    BatchNorm. Batches of ``batch_size``; a last training batch of one example joins the
    one before (BatchNorm cannot normalise a single example)."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be positive, got {batch_size}")
    processes = runtime.processes
    data = _order_on_device(dataclasses.replace(data, order=data.order.sort().values))
    sizes = batch_sizes(len(data), batch_size)
    examples = len(data)
    data, sizes = process_batches(data, sizes, processes)
    if bn_data is not None and not has_batchnorm(model):
        bn_data = None
    bn_sizes: list[int] = []
    if bn_data is not None:
        bn_sizes = batch_sizes(len(bn_data), batch_size, minimum=2)
    bn_batches, bn_examples = len(bn_sizes), sum(bn_sizes)
    if bn_data is not None:
        bn_data, bn_sizes = process_batches(_order_on_device(bn_data), bn_sizes, processes)
    return Measure(
        model, runtime, prep, data, sizes, examples, bn_data, bn_sizes, bn_batches, bn_examples
    )


def _order_on_device(data: ProbeData) -> ProbeData:
    """``data`` with its example order on the device when its images are there, so that
    reading the batches copies nothing from the host (a copy from pageable host memory
    would wait for the device)."""
    if data.batches.images is None:
        return data
    return dataclasses.replace(data, order=data.order.to(data.batches.device))


def run_measure(
    run: LoadedRun,
    runtime: Runtime,
    *,
    data: str | None,
    split: str,
    examples: int | None,
    bn_batches: int,
    batch_size: int,
    seed: int,
) -> Measure:
    """The ``Measure`` of a run's model: ``examples`` of ``split`` of ``data`` (default the
    run's dataset), and ``bn_batches`` batches of its training split for re-estimation."""
    if bn_batches < 0:
        raise ConfigError(f"--bn-batches must be >= 0, got {bn_batches}")
    evaluation = probe_data(run, runtime, spec=data, split=split, examples=examples, seed=seed)
    training = None
    if bn_batches > 0 and has_batchnorm(run.model):
        training = probe_data(
            run, runtime, spec=data, split="train", examples=bn_batches * batch_size, seed=seed
        )
    return make_measure(
        run.model, runtime, eval_prep(run, runtime), evaluation, batch_size, training
    )


@torch.no_grad()
def interpolation_curves(line: Line, alphas: np.ndarray, measure: Measure) -> dict[str, np.ndarray]:
    """Loss and error at every point of ``line``: ``raw/loss``, ``raw/error`` and, when
    ``measure`` re-estimates BatchNorm, ``bn/loss``, ``bn/error`` (arrays over ``alphas``).
    The sums stay on the device until the end: one host synchronisation."""
    device = measure.runtime.device
    raw = torch.zeros(len(alphas), 2, dtype=torch.float64, device=device)
    bn = torch.zeros_like(raw) if measure.reestimates else None
    for i, alpha in enumerate(alphas):
        line.set(float(alpha))
        raw[i] = measure.sums()
        if bn is not None:
            measure.reestimate()
            bn[i] = measure.sums()
    n = measure.examples
    curves = {}
    for name, sums in (("raw", raw), ("bn", bn)):
        if sums is not None:
            host = sums.cpu().numpy()
            curves[f"{name}/loss"] = host[:, 0] / n
            curves[f"{name}/error"] = 1.0 - host[:, 1] / n
    return curves


@dataclass
class BarrierResult:
    """Loss and error along the straight line from A to B, and their barriers."""

    label_a: str
    label_b: str
    alphas: np.ndarray
    curves: dict[str, np.ndarray]
    examples: int
    bn_batches: int
    seconds: float

    @property
    def curve(self) -> str:
        """The curve the headline barriers come from: ``bn`` when present, else ``raw``."""
        return "bn" if "bn/loss" in self.curves else "raw"

    def barriers(self, metric: str = "loss", curve: str | None = None) -> Barrier:
        return barrier(self.alphas, self.curves[f"{curve or self.curve}/{metric}"])

    @property
    def loss_barrier(self) -> Barrier:
        return self.barriers("loss")

    @property
    def error_barrier(self) -> Barrier:
        return self.barriers("error")

    def summary(self) -> dict[str, Any]:
        raw_loss, raw_error = self.curves["raw/loss"], self.curves["raw/error"]
        values: dict[str, Any] = {
            "curve": self.curve,
            "examples": self.examples,
            "loss_a": float(raw_loss[0]),
            "loss_b": float(raw_loss[-1]),
            "error_a": float(raw_error[0]),
            "error_b": float(raw_error[-1]),
        }
        for metric in ("loss", "error"):
            b = self.barriers(metric)
            values[f"{metric}_barrier"] = b.linear
            values[f"{metric}_barrier_at"] = b.linear_at
            values[f"{metric}_barrier_mean"] = b.mean
            values[f"{metric}_barrier_mean_at"] = b.mean_at
            values[f"raw_{metric}_barrier"] = self.barriers(metric, "raw").linear
        values["seconds"] = self.seconds
        return values

    def table(self) -> str:
        curves = ["raw"] + (["bn"] if self.curve == "bn" else [])
        n = self.bn_batches
        bn = f"BatchNorm re-estimated on {n} batch{'es' if n != 1 else ''}" if n else ""
        lines = [
            f"straight line from {self.label_a} (a=0) to {self.label_b} (a=1), "
            f"{self.examples} examples" + (f"; {bn}" if bn else ""),
            f"{'a':>6s}" + "".join(f"{c + ' loss':>11s}{c + ' error':>11s}" for c in curves),
        ]
        for i, alpha in enumerate(self.alphas):
            row = "".join(
                f"{self.curves[f'{c}/loss'][i]:>11.4f}{self.curves[f'{c}/error'][i]:>11.4f}"
                for c in curves
            )
            lines.append(f"{alpha:>6.3f}{row}")
        for curve in curves:
            name = "BN re-estimated" if curve == "bn" else "raw statistics"
            for metric in ("loss", "error"):
                b = self.barriers(metric, curve)
                lines.append(
                    f"{metric} barrier ({name}): {b.linear:.4f} above the line between the "
                    f"ends at a={b.linear_at:.3f}; peak {b.mean:+.4f} above their mean at "
                    f"a={b.mean_at:.3f}"
                )
        return "\n".join(lines)


def barrier_between(
    run_a: str | Path,
    run_b: str | Path,
    *,
    points: int = 25,
    data: str | None = None,
    split: str = "test",
    examples: int | None = None,
    bn_batches: int = DEFAULT_BN_BATCHES,
    batch_size: int | None = None,
    seed: int = 0,
    device: str = "auto",
    precision: str = "auto",
    out: str | Path | None = None,
    command: str | None = None,
) -> BarrierResult:
    """Loss and error at ``points`` evenly spaced points of the straight line from
    ``run_a`` to ``run_b`` (a run, a weights file of one, or ``init``: ``run_a``'s initial
    weights) on ``examples`` examples (default all) of ``split`` of ``data`` (default
    ``run_a``'s dataset), with BatchNorm statistics re-estimated at every point on
    ``bn_batches`` training batches (0: off; ignored without BatchNorm). Batches of
    ``batch_size`` (default ``run_a``'s evaluation batch size). Written to ``out`` (kind
    ``barrier``) when given."""
    if points < 2:
        raise ConfigError(f"--points must be at least 2, got {points}")
    runtime = probe_runtime(device, precision)
    a = load_run(run_a, device=runtime.device)
    b = load_run(run_b, base=run_a)
    if runtime.channels_last:
        a.model.to(memory_format=torch.channels_last)
    line = Line(a.model, a.model.state_dict(), b.model.state_dict(), labels=(a.label, b.label))
    batch_size = batch_size or a.config.train.eval_batch_size
    measure = run_measure(
        a,
        runtime,
        data=data,
        split=split,
        examples=examples,
        bn_batches=bn_batches,
        batch_size=batch_size,
        seed=seed,
    )
    alphas = np.linspace(0.0, 1.0, points)
    start = time.perf_counter()
    curves = interpolation_curves(line, alphas, measure)
    seconds = time.perf_counter() - start
    result = BarrierResult(
        a.label,
        b.label,
        alphas,
        curves,
        measure.examples,
        measure.bn_batches,
        seconds,
    )
    if out is not None:
        write_result(
            Path(out),
            "barrier",
            {"alpha": alphas, **curves},
            attrs={
                **pair_attrs(a, b),
                "model": a.config.model.name,
                "data": measure.data.spec,
                "split": split,
                "points": points,
                "bn_batches": result.bn_batches,
                "bn_examples": measure.bn_examples,
                "batch_size": batch_size,
                "seed": seed,
                "device": runtime.describe(),
            },
            summary=result.summary(),
            command=command,
        )
    return result
