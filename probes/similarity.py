"""``landscape cka``: the layers-by-layers CKA matrix between two runs' representations of
the same examples, streamed through ``MinibatchCKA`` batch by batch."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from finetune.result_files import write_result
from finetune.runs import LoadedRun, load_run, pair_attrs
from finetune.runtime import Runtime
from probes.activations import ActivationCapture, Layer, select_layers
from probes.cka import MinibatchCKA
from probes.inputs import eval_prep, probe_data
from probes.options import ProbeOptions


@dataclass
class CKAResult:
    """A CKA matrix with what it was measured on."""

    matrix: np.ndarray
    layers_a: list[str]
    layers_b: list[str]
    label_a: str
    label_b: str
    examples: int
    seconds: float

    @property
    def diagonal(self) -> np.ndarray | None:
        """CKA of each layer with the same layer of B, when both have the same layers."""
        return np.diagonal(self.matrix).copy() if self.layers_a == self.layers_b else None

    @property
    def mean_diagonal(self) -> float:
        diagonal = self.diagonal
        return float(np.mean(diagonal)) if diagonal is not None else float("nan")

    def table(self) -> str:
        width = max(len(n) for n in self.layers_a + ["layer"]) + 2
        lines = [
            f"CKA between {self.label_a} (rows) and {self.label_b} (columns), "
            f"{self.examples} examples"
        ]
        lines.append("".ljust(width) + "".join(f"{j:>7d}" for j in range(len(self.layers_b))))
        for name, row in zip(self.layers_a, self.matrix):
            lines.append(name.ljust(width) + "".join(f"{v:7.3f}" for v in row))
        if self.diagonal is not None:
            lines.append(f"mean diagonal CKA {self.mean_diagonal:.4f}")
        return "\n".join(lines)


@torch.no_grad()
def accumulate_cka(
    model_a: nn.Module,
    model_b: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    layers_a: list[Layer],
    layers_b: list[Layer],
    *,
    runtime: Runtime,
    pool: str = "flatten",
    keep_batches: bool = False,
) -> MinibatchCKA:
    """The minibatch CKA sums of every layer of A against every layer of B, over
    ``batches`` of (input of A, input of B) holding the same examples, each batch's terms
    kept with ``keep_batches`` (for a jackknife over batches). Only one batch's
    activations live at a time; under DDP each process passes its own batches and the
    sums are reduced."""
    accumulator = MinibatchCKA(
        len(layers_a), len(layers_b), runtime.device, keep_batches=keep_batches
    )
    with (
        ActivationCapture(model_a, layers_a, pool) as capture_a,
        ActivationCapture(model_b, layers_b, pool) as capture_b,
    ):
        for x_a, x_b in batches:
            with runtime.autocast():
                model_a(x_a)
                model_b(x_b)
            accumulator.update(capture_a.take(), capture_b.take())
    accumulator.all_reduce()
    return accumulator


def cka_matrix(
    model_a: nn.Module,
    model_b: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    layers_a: list[Layer],
    layers_b: list[Layer],
    *,
    runtime: Runtime,
    pool: str = "flatten",
) -> np.ndarray:
    """Minibatch CKA of every layer of A against every layer of B (``accumulate_cka``)."""
    return accumulate_cka(
        model_a, model_b, batches, layers_a, layers_b, runtime=runtime, pool=pool
    ).compute()


def compare_runs(
    run_a: str | Path,
    run_b: str | Path,
    *,
    layers: str = "groups",
    pool: str = "flatten",
    options: ProbeOptions = ProbeOptions(),
    out: str | Path | None = None,
    command: str | None = None,
) -> CKAResult:
    """CKA between the representations of ``run_a`` and ``run_b`` (a run, a weights file
    of one, or ``init``: the initial weights of ``run_a``) on the examples ``options``
    names (default: the test split of ``run_a``'s dataset), in minibatches of at least 4;
    written to ``out`` (kind ``cka``) when given."""
    runtime = options.runtime()
    a = load_run(run_a, device=runtime.device)
    b = load_run(run_b, base=run_a, device=runtime.device)
    for loaded in (a, b):
        if runtime.channels_last:
            loaded.model.to(memory_format=torch.channels_last)
    source = probe_data(a, runtime, options)
    batch_size = options.batch_size_or(a.config.train.eval_batch_size)
    fixed = source.fixed(batch_size, runtime.processes, minimum=4)
    layers_a, layers_b = select_layers(a.model, layers), select_layers(b.model, layers)
    prep_a, prep_b = eval_prep(a, runtime), eval_prep(b, runtime)

    def batches() -> Iterable[tuple[torch.Tensor, torch.Tensor]]:
        for images, _ in fixed:
            yield prep_a(images), prep_b(images)

    start = time.perf_counter()
    matrix = cka_matrix(a.model, b.model, batches(), layers_a, layers_b, runtime=runtime, pool=pool)
    result = CKAResult(
        matrix,
        [layer.name for layer in layers_a],
        [layer.name for layer in layers_b],
        a.label,
        b.label,
        len(source),
        time.perf_counter() - start,
    )
    if out is not None:
        attrs = {"data": source.spec, "split": options.split, "batch_size": batch_size}
        _write(Path(out), result, a, b, attrs, pool, runtime, command)
    return result


def _write(
    out: Path,
    result: CKAResult,
    a: LoadedRun,
    b: LoadedRun,
    data: dict[str, str | int],
    pool: str,
    runtime: Runtime,
    command: str | None,
) -> None:
    datasets = {
        "cka": result.matrix,
        "layers_a": result.layers_a,
        "layers_b": result.layers_b,
    }
    if result.diagonal is not None:
        datasets["diagonal"] = result.diagonal
    write_result(
        out,
        "cka",
        datasets,
        attrs={
            **pair_attrs(a, b),
            **data,
            "pool": pool,
            "estimator": "minibatch unbiased HSIC (Nguyen et al. 2021)",
            "device": runtime.describe(),
        },
        summary={
            "examples": result.examples,
            "mean_diagonal": result.mean_diagonal,
            "seconds": result.seconds,
        },
        command=command,
    )
