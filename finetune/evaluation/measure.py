"""The one way a model is measured, by the engine after every epoch and by every probe at
every point of weight space: summed cross-entropy and correct predictions in eval mode over
fixed batches, optionally after re-estimating the BatchNorm statistics on other fixed
batches (``finetune.evaluation.batchnorm``). The sums stay on the device, so a caller that
measures many points reads them back once."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from finetune.data.augment import BatchPrep
from finetune.evaluation.batches import FixedBatches
from finetune.evaluation.batchnorm import reestimate_batchnorm
from finetune.runtime import Runtime


@torch.no_grad()
def measure(
    model: nn.Module,
    data: FixedBatches,
    prep: BatchPrep,
    runtime: Runtime,
    *,
    bn_data: FixedBatches | None = None,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    per_batch: bool = False,
) -> torch.Tensor:
    """(2,) float64 on the device, summed over the processes: the summed cross-entropy and
    the number of correct predictions of ``model`` in eval mode over ``data``. With
    ``bn_data`` the BatchNorm running statistics are first replaced by those of its batches
    (a model without BatchNorm is measured as it stands). ``forward`` (default: the model
    itself) runs the batches, e.g. a compiled model; the model's training flag is restored.
    ``per_batch`` keeps the sums of each batch apart, (batches, 2), for errors over batches
    (a jackknife); on one process only, where every batch is this process's."""
    if per_batch and runtime.processes.parallel:
        raise ValueError("per-batch sums are measured on one process")
    if bn_data is not None:
        processes = runtime.processes
        inputs = (prep(images) for images, _ in bn_data)
        gather = processes.gather if processes.parallel else None
        reestimate_batchnorm(model, inputs, runtime=runtime, gather=gather)
    forward = forward if forward is not None else model
    was_training = model.training
    model.eval()
    total = torch.zeros(2, dtype=torch.float64, device=runtime.device)
    batches = []
    for images, labels in data:
        with runtime.autocast():
            logits = forward(prep(images))
        loss = F.cross_entropy(logits.float(), labels, reduction="sum").double()
        correct = (logits.argmax(1) == labels).sum()
        total[0] += loss
        total[1] += correct
        if per_batch:
            batches.append(torch.stack([loss, correct.double()]))
    model.train(was_training)
    if per_batch:
        return torch.stack(batches)
    return runtime.processes.sum_(total)


def evaluate(
    model: nn.Module,
    data: FixedBatches,
    prep: BatchPrep,
    runtime: Runtime,
    *,
    bn_data: FixedBatches | None = None,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``measure`` over every process's examples, with
    one host synchronisation."""
    sums = measure(model, data, prep, runtime, bn_data=bn_data, forward=forward).cpu()
    n = max(data.examples, 1)
    return float(sums[0]) / n, float(sums[1]) / n
