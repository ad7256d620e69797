"""The loss barrier on the straight line between two runs (Neyshabur, Sedghi, Zhang 2020:
runs fine-tuned from the same pre-trained weights lie in one basin, runs from random init
are separated by a barrier).

At every point ``a`` of ``linspace(0, 1, points)`` (both ends included) the model holds
``theta(a) = (1 - a) theta_A + a theta_B`` (``landscape.geometry.paths.Line``) and is evaluated on a
fixed set of examples, moved to the device once and reused at every point; values stay on
the device until the whole curve is done (one host synchronisation per curve).

Two curves when the model has BatchNorm and ``bn_batches > 0``:

- ``raw``: the running statistics are interpolated like the weights. Its end points are the
  runs themselves, so they equal the runs' own evaluation (``finetune.evaluation.measure``).
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

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finetune.errors import ConfigError
from finetune.evaluation.measure import measure
from finetune.result_files import write_result
from finetune.runs import load_run, pair_attrs
from landscape.geometry.paths import Line
from probes.inputs import RunInputs, run_inputs
from probes.options import ProbeOptions


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


@torch.no_grad()
def interpolation_curves(
    line: Line, alphas: np.ndarray, inputs: RunInputs
) -> dict[str, np.ndarray]:
    """Loss and error at every point of ``line``: ``raw/loss``, ``raw/error`` and, when
    ``inputs`` has batches to re-estimate BatchNorm on, ``bn/loss``, ``bn/error`` (arrays
    over ``alphas``). The sums stay on the device until the end: one host synchronisation."""
    device = inputs.runtime.device
    raw = torch.zeros(len(alphas), 2, dtype=torch.float64, device=device)
    bn = torch.zeros_like(raw) if inputs.bn_data is not None else None
    for i, alpha in enumerate(alphas):
        line.set(float(alpha))
        raw[i] = measure(inputs.model, inputs.data, inputs.prep, inputs.runtime)
        if bn is not None:
            bn[i] = measure(
                inputs.model, inputs.data, inputs.prep, inputs.runtime, bn_data=inputs.bn_data
            )
    n = inputs.data.examples
    curves = {}
    for name, sums in (("raw", raw), ("bn", bn)):
        if sums is not None:
            host = sums.cpu().numpy()
            curves[f"{name}/loss"] = host[:, 0] / n
            curves[f"{name}/error"] = 1.0 - host[:, 1] / n
    return curves


@torch.no_grad()
def batch_curve(line: Line, alphas: np.ndarray, inputs: RunInputs) -> np.ndarray:
    """(points, batches, 2): the summed loss and correct predictions of every batch of
    ``inputs`` at every point of ``line``, BatchNorm re-estimated at each point when
    ``inputs`` has batches for it; the per-batch sums give the curve's errors over batches
    (one process). One host synchronisation."""
    curve = []
    for alpha in alphas:
        line.set(float(alpha))
        curve.append(
            measure(inputs.model, inputs.data, inputs.prep, inputs.runtime,
                    bn_data=inputs.bn_data, per_batch=True)
        )  # fmt: skip
    return torch.stack(curve).cpu().numpy()


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
    options: ProbeOptions = ProbeOptions(),
    out: str | Path | None = None,
    command: str | None = None,
) -> BarrierResult:
    """Loss and error at ``points`` evenly spaced points of the straight line from
    ``run_a`` to ``run_b`` (a run, a weights file of one, or ``init``: ``run_a``'s initial
    weights), measured where ``options`` says (default: every test example of ``run_a``'s
    dataset, BatchNorm statistics re-estimated at every point). Written to ``out`` (kind
    ``barrier``) when given."""
    if points < 2:
        raise ConfigError(f"--points must be at least 2, got {points}")
    runtime = options.runtime()
    a = load_run(run_a, device=runtime.device)
    b = load_run(run_b, base=run_a)
    if runtime.channels_last:
        a.model.to(memory_format=torch.channels_last)
    line = Line(a.model, a.model.state_dict(), b.model.state_dict(), labels=(a.label, b.label))
    inputs = run_inputs(a, runtime, options)
    alphas = np.linspace(0.0, 1.0, points)
    start = time.perf_counter()
    curves = interpolation_curves(line, alphas, inputs)
    seconds = time.perf_counter() - start
    result = BarrierResult(
        a.label, b.label, alphas, curves, inputs.data.examples, inputs.bn_batches, seconds
    )
    if out is not None:
        write_result(
            Path(out),
            "barrier",
            {"alpha": alphas, **curves},
            attrs={
                **inputs.provenance(a, options.seed),
                **pair_attrs(a, b),
                "split": options.split,
                "points": points,
                "bn_batches": result.bn_batches,
            },
            summary=result.summary(),
            command=command,
        )
    return result
