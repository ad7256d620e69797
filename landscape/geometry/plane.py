"""Loss and error on a grid over a plane of weight space: the plane through three runs
(Garipov et al. 2018) or two random filter-normalised directions around one run (Li et al.
2018, "Visualizing the loss landscape of neural nets").

The grid's values are stored under our names (``loss``, ``error``) and also under the names
the plotting scripts of Li et al.'s ``loss-landscape`` read (``xcoordinates``,
``ycoordinates``, ``train_loss``, ``train_acc``), with their layout: row ``j``, column
``i`` holds the value at ``(xcoordinates[i], ycoordinates[j])`` (their ``plot_2D.py``
contours ``np.meshgrid(x, y)`` against it) and accuracy is in percent."""

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
from finetune.runs import LoadedRun, load_run
from finetune.runtime import Runtime
from landscape.geometry.paths import Plane, plane_through_runs, random_plane
from probes.inputs import RunInputs, run_inputs
from probes.options import ProbeOptions

THROUGH = "Gram-Schmidt on B - A and C - A over the parameters (Garipov et al. 2018)"
AROUND = (
    "two random Gaussian directions, filter-normalised; biases, BatchNorm parameters and "
    "buffers not moved (Li et al. 2018, ignore='biasbn')"
)


@dataclass
class PlaneResult:
    """Loss and error over a grid: ``loss[j, i]`` is at ``(x[i], y[j])``."""

    mode: str
    labels: list[str]
    x: np.ndarray
    y: np.ndarray
    loss: np.ndarray
    error: np.ndarray
    run_xy: np.ndarray
    examples: int
    bn_batches: int
    seconds: float

    def summary(self) -> dict[str, Any]:
        j, i = np.unravel_index(int(np.argmin(self.loss)), self.loss.shape)
        return {
            "examples": self.examples,
            "points": int(self.loss.size),
            "min_loss": float(self.loss[j, i]),
            "min_loss_x": float(self.x[i]),
            "min_loss_y": float(self.y[j]),
            "max_loss": float(self.loss.max()),
            "min_error": float(self.error.min()),
            "seconds": self.seconds,
        }

    def table(self) -> str:
        what = "through" if self.mode == "through" else "around"
        n = self.bn_batches
        bn = f", BatchNorm re-estimated on {n} batch{'es' if n != 1 else ''}" if n else ""
        lines = [
            f"plane {what} {', '.join(self.labels)}: {len(self.x)} x {len(self.y)} grid, "
            f"x in [{self.x[0]:.3g}, {self.x[-1]:.3g}], y in [{self.y[0]:.3g}, "
            f"{self.y[-1]:.3g}], {self.examples} examples{bn}",
            f"{'run':<32s}{'x':>10s}{'y':>10s}{'loss*':>9s}{'error*':>9s}",
        ]
        for label, (rx, ry) in zip(self.labels, self.run_xy):
            i, j = int(np.abs(self.x - rx).argmin()), int(np.abs(self.y - ry).argmin())
            lines.append(
                f"{label:<32s}{rx:>10.4f}{ry:>10.4f}{self.loss[j, i]:>9.4f}{self.error[j, i]:>9.4f}"
            )
        s = self.summary()
        lines.append(
            f"* at the nearest grid point. Lowest loss {s['min_loss']:.4f} at "
            f"({s['min_loss_x']:.4f}, {s['min_loss_y']:.4f}); highest {s['max_loss']:.4f}"
        )
        return "\n".join(lines)


@torch.no_grad()
def plane_grid(
    plane: Plane, x: np.ndarray, y: np.ndarray, inputs: RunInputs
) -> tuple[np.ndarray, np.ndarray]:
    """(loss, error), each (len(y), len(x)), at every grid point of ``plane``, BatchNorm
    re-estimated at each when ``inputs`` has batches for it; one host synchronisation at
    the end."""
    sums = torch.zeros(len(y), len(x), 2, dtype=torch.float64, device=inputs.runtime.device)
    for j, yv in enumerate(y):
        for i, xv in enumerate(x):
            plane.set(float(xv), float(yv))
            sums[j, i] = measure(
                inputs.model, inputs.data, inputs.prep, inputs.runtime, bn_data=inputs.bn_data
            )
    host = sums.cpu().numpy()
    n = inputs.data.examples
    return host[..., 0] / n, 1.0 - host[..., 1] / n


def plane_through(
    run_a: str | Path,
    run_b: str | Path,
    run_c: str | Path,
    *,
    grid: int = 21,
    margin: float = 0.2,
    options: ProbeOptions = ProbeOptions(),
    out: str | Path | None = None,
    command: str | None = None,
) -> PlaneResult:
    """Loss and error over the plane through three runs (``run_b`` and ``run_c`` may be
    ``init``: ``run_a``'s initial weights), on a ``grid`` x ``grid`` grid over the runs'
    bounding box widened by ``margin`` times its width (height) on each side, measured
    where ``options`` says; written to ``out`` (kind ``plane``) when given."""
    if grid < 2:
        raise ConfigError(f"--grid must be at least 2, got {grid}")
    if margin < 0:
        raise ConfigError(f"--margin must be >= 0, got {margin}")
    runtime = options.runtime()
    a = load_run(run_a, device=runtime.device)
    others = [load_run(r, base=run_a) for r in (run_b, run_c)]
    runs = [a, *others]
    if runtime.channels_last:
        a.model.to(memory_format=torch.channels_last)
    states = [r.model.state_dict() for r in runs]
    plane, xy = plane_through_runs(
        a.model, *states, labels=(a.label, others[0].label, others[1].label)
    )
    lows, highs = xy.min(0), xy.max(0)
    pad = margin * (highs - lows)
    x = np.linspace(lows[0] - pad[0], highs[0] + pad[0], grid)
    y = np.linspace(lows[1] - pad[1], highs[1] + pad[1], grid)
    attrs = {"mode": "through", "margin": margin, "span": float("nan"), "directions": THROUGH}
    return _evaluate_plane(runs, plane, (x, y), xy, runtime, attrs, options, out, command)


def plane_around(
    run: str | Path,
    *,
    grid: int = 21,
    span: float = 1.0,
    options: ProbeOptions = ProbeOptions(),
    out: str | Path | None = None,
    command: str | None = None,
) -> PlaneResult:
    """Loss and error around one run along two random filter-normalised directions (Li et
    al. 2018) drawn with ``options.seed``, on a ``grid`` x ``grid`` grid over
    ``[-span, span]^2`` (the run at the origin), measured where ``options`` says; written
    to ``out`` (kind ``plane``) when given."""
    if grid < 2:
        raise ConfigError(f"--grid must be at least 2, got {grid}")
    if not span > 0:
        raise ConfigError(f"--span must be positive, got {span}")
    runtime = options.runtime()
    a = load_run(run, device=runtime.device)
    if runtime.channels_last:
        a.model.to(memory_format=torch.channels_last)
    plane = random_plane(a.model, a.model.state_dict(), options.seed)
    x = np.linspace(-span, span, grid)
    attrs = {"mode": "around", "margin": float("nan"), "span": span, "directions": AROUND}
    xy = np.zeros((1, 2))
    return _evaluate_plane([a], plane, (x, x.copy()), xy, runtime, attrs, options, out, command)


def _evaluate_plane(
    runs: list[LoadedRun],
    plane: Plane,
    grid_xy: tuple[np.ndarray, np.ndarray],
    run_xy: np.ndarray,
    runtime: Runtime,
    attrs: dict[str, Any],
    options: ProbeOptions,
    out: str | Path | None,
    command: str | None,
) -> PlaneResult:
    """The grid ``grid_xy`` of a plane, measured where ``options`` says on the first run's
    model (BatchNorm re-estimated at every point unless ``options.bn_batches`` is 0);
    written to ``out`` (kind ``plane``) when given. ``runtime`` came from ``options``."""
    a = runs[0]
    x, y = grid_xy
    inputs = run_inputs(a, runtime, options)
    start = time.perf_counter()
    loss, error = plane_grid(plane, x, y, inputs)
    result = PlaneResult(
        attrs["mode"],
        [r.label for r in runs],
        x,
        y,
        loss,
        error,
        run_xy,
        inputs.data.examples,
        inputs.bn_batches,
        time.perf_counter() - start,
    )
    if out is not None:
        write_result(
            Path(out),
            "plane",
            {
                "xcoordinates": x,
                "ycoordinates": y,
                "loss": loss,
                "error": error,
                "train_loss": loss,
                "train_acc": 100.0 * (1.0 - error),
                "runs/labels": result.labels,
                "runs/x": run_xy[:, 0],
                "runs/y": run_xy[:, 1],
            },
            attrs={
                **inputs.provenance(a, options.seed),
                **attrs,
                "runs": [str(r.run) for r in runs],
                "weights": [str(r.weights) for r in runs],
                "config_hashes": [r.record["config_hash"] for r in runs],
                "split": options.split,
                "grid": len(x),
                "bn_batches": result.bn_batches,
            },
            summary=result.summary(),
            command=command,
        )
    return result
