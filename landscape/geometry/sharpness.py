"""How sharp a run's minimum is: the top eigenvalue and the trace of the Hessian of its
training loss at its final weights, for the whole model and for each layer group (the
Hessian restricted to the group's parameters, the others fixed), the flatness measures of
PyHessian (Yao et al. 2020), with what they cost in Hessian-vector products
(``landscape.geometry.hessian``).

The loss is the mean cross-entropy (as evaluation measures it: no label smoothing, no
regulariser) over a fixed, seeded set of training batches, prepared as for evaluation (no
augmentation), with the model in eval mode: BatchNorm normalises with its running
statistics, so the loss is a deterministic function of the weights and the batches, and
one example's loss does not depend on the others in its batch. (In train mode the batch
statistics would make the Hessian depend on how the examples are cut into batches.)"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from finetune.data.augment import BatchPrep
from finetune.evaluation.batches import FixedBatches
from finetune.groups import LayerGroup, layer_groups
from finetune.result_files import write_result
from finetune.runs import load_run
from finetune.runtime import Runtime
from landscape.geometry.hessian import (
    Eigen,
    Hessian,
    MeanLoss,
    hutchinson,
    mean_and_error,
    top_eigenvalues,
)
from landscape.geometry.options import SharpnessOptions
from probes.inputs import eval_prep, probe_data


@dataclass
class SharpnessResult:
    """The whole model's and each group's top eigenvalue and trace samples: ``eigen[0]``
    and the sums of ``samples``' rows are the whole model's, ``eigen[1 + g]`` and column
    ``g`` of ``samples`` group ``g``'s."""

    label: str
    groups: list[str]
    parameters: np.ndarray
    eigen: list[Eigen]
    samples: np.ndarray
    examples: int
    batches: int
    loss: float
    hvps: int
    passes: int
    seconds: float

    @property
    def top_eigenvalue(self) -> float:
        return self.eigen[0].value

    @property
    def trace(self) -> tuple[float, float]:
        """The whole model's trace estimate and its standard error."""
        mean, error = mean_and_error(self.samples.sum(axis=1, keepdims=True))
        return float(mean[0]), float(error[0])

    @property
    def group_traces(self) -> tuple[np.ndarray, np.ndarray]:
        """Each group's trace estimate and standard error."""
        return mean_and_error(self.samples)

    def summary(self) -> dict[str, Any]:
        trace, trace_se = self.trace
        whole = self.eigen[0]
        return {
            "examples": self.examples,
            "batches": self.batches,
            "loss": self.loss,
            "parameters": int(self.parameters.sum()),
            "top_eigenvalue": whole.value,
            "eigen_iterations": whole.iterations,
            "converged": whole.converged,
            "trace": trace,
            "trace_se": trace_se,
            "hvps": self.hvps,
            "passes": self.passes,
            "seconds": self.seconds,
            "seconds_per_hvp": self.seconds / self.hvps,
        }

    def datasets(self) -> dict[str, Any]:
        traces, errors = self.group_traces
        eigen = self.eigen[1:]
        return {
            "groups/names": self.groups,
            "groups/parameters": self.parameters,
            "groups/top_eigenvalue": np.array([e.value for e in eigen]),
            "groups/eigen_iterations": np.array([e.iterations for e in eigen], dtype=np.int64),
            "groups/converged": np.array([e.converged for e in eigen]),
            "groups/trace": traces,
            "groups/trace_se": errors,
            "hutchinson/samples": self.samples,
        }

    def table(self) -> str:
        traces, errors = self.group_traces
        width = max(len("whole model"), *(len(g) for g in self.groups)) + 2
        lines = [
            f"Hessian of the training loss of {self.label} ({self.loss:.4f}, eval mode) on "
            f"{self.examples} examples in {self.batches} batches",
            f"{'':<{width}s}{'parameters':>12s}{'top eigenvalue':>16s}{'iterations':>12s}"
            f"{'trace':>14s}{'± se':>12s}",
        ]
        rows = zip(self.groups, self.parameters, self.eigen[1:], traces, errors)
        trace, trace_se = self.trace
        whole = ("whole model", self.parameters.sum(), self.eigen[0], trace, trace_se)
        for name, count, eigen, value, error in [*rows, whole]:
            mark = "" if eigen.converged else "*"
            lines.append(
                f"{name:<{width}s}{int(count):>12,d}{eigen.value:>16.5g}"
                f"{f'{eigen.iterations}{mark}':>12s}{value:>14.5g}{error:>12.3g}"
            )
        if not all(e.converged for e in self.eigen):
            lines.append("* did not meet --tol within --iterations")
        lines.append(
            f"{self.hvps} Hessian-vector products in {self.passes} passes over the batches, "
            f"{self.seconds:.2f} s ({1000 * self.seconds / self.hvps:.1f} ms per product)"
        )
        return "\n".join(lines)


def batch_losses(
    model: nn.Module, data: FixedBatches, prep: BatchPrep, runtime: Runtime
) -> Iterator[torch.Tensor]:
    """Each of this process's batches' summed cross-entropy, with its graph."""
    for images, labels in data:
        with runtime.autocast():
            logits = model(prep(images))
        yield F.cross_entropy(logits.float(), labels, reduction="sum")


def measure_sharpness(
    model: nn.Module,
    data: FixedBatches,
    prep: BatchPrep,
    runtime: Runtime,
    options: SharpnessOptions,
    *,
    groups: Sequence[LayerGroup] | None = None,
    label: str = "the model",
) -> SharpnessResult:
    """Top eigenvalue and Hutchinson trace of the Hessian of ``model``'s mean loss over
    ``data``, for every parameter and for each of ``groups`` (default: the model's layer
    groups), with the model in eval mode; the random vectors drawn from ``options.seed``:
    the power iterations' start vectors (whole model, then each group), then the
    Rademacher vectors. The groups' traces come from the whole model's samples."""
    groups = list(groups) if groups is not None else layer_groups(model)
    named = dict(model.named_parameters())
    params = [named[name] for group in groups for name in group.params]
    sizes = [sum(named[name].numel() for name in group.params) for group in groups]
    blocks, start = [], 0
    for group in groups:
        blocks.append(range(start, start + len(group.params)))
        start += len(group.params)
    whole = range(len(params))
    loss = MeanLoss(
        lambda: batch_losses(model, data, prep, runtime), data.examples, runtime.processes
    )
    hessian = Hessian(loss, params)
    generator = torch.Generator().manual_seed(options.probe.seed)
    was_training = model.training
    model.eval()
    runtime.synchronize()
    began = time.perf_counter()
    eigen = top_eigenvalues(
        hessian, [whole, *blocks], iterations=options.iterations, tol=options.tol,
        generator=generator,
    )  # fmt: skip
    samples = hutchinson(
        hessian, whole, samples=options.hutchinson_samples, segments=sizes,
        generator=generator, vectors_per_pass=options.vectors_per_pass,
    )  # fmt: skip
    runtime.synchronize()
    seconds = time.perf_counter() - began
    model.train(was_training)
    return SharpnessResult(
        label=label,
        groups=[group.name for group in groups],
        parameters=np.array(sizes, dtype=np.int64),
        eigen=eigen,
        samples=samples,
        examples=data.examples,
        batches=data.batches,
        loss=hessian.value,
        hvps=hessian.products_done,
        passes=hessian.passes,
        seconds=seconds,
    )


def sharpness(
    run: str | Path,
    *,
    options: SharpnessOptions = SharpnessOptions(),
    out: str | Path | None = None,
    command: str | None = None,
) -> SharpnessResult:
    """The Hessian's top eigenvalue and trace at ``run``'s weights (a run directory: its
    final weights, or a weights file of one), whole and per layer group, on
    ``options.batches`` seeded batches of the run's training split (its subsample), its
    evaluation preparation and the model in eval mode; written to ``out`` (kind
    ``sharpness``) when given."""
    runtime = options.runtime()
    loaded = load_run(run, device=runtime.device)
    if runtime.channels_last:
        loaded.model.to(memory_format=torch.channels_last)
    batch_size = options.probe.batch_size or loaded.config.train.batch_size
    wanted = replace(options.probe, examples=options.batches * batch_size)
    train = probe_data(loaded, runtime, wanted)
    data = train.fixed(batch_size, runtime.processes)
    prep = eval_prep(loaded, runtime)
    result = measure_sharpness(loaded.model, data, prep, runtime, options, label=loaded.label)
    if out is not None:
        write_result(
            Path(out),
            "sharpness",
            result.datasets(),
            attrs={
                "run": str(loaded.run),
                "weights": str(loaded.weights),
                "label": loaded.label,
                "config_hash": loaded.record["config_hash"],
                "model": loaded.config.model.name,
                "data": train.spec,
                "batch_size": batch_size,
                "iterations": options.iterations,
                "tol": options.tol,
                "hutchinson_samples": options.hutchinson_samples,
                "vectors_per_pass": options.vectors_per_pass,
                "seed": options.probe.seed,
                "device": runtime.describe(),
            },
            summary=result.summary(),
            command=command,
        )
    return result
