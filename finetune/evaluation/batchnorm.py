"""BatchNorm running statistics re-estimated at a point of weight space.

Weights interpolated between two networks (or moved along a plane) no longer fit either
network's running statistics, so a BatchNorm network must have them re-estimated at every
point (Garipov et al. 2018). ``reestimate_batchnorm`` runs a fixed list of
training batches (prepared without augmentation, in the same order at every point) through
the model with its BatchNorm layers in train mode under ``no_grad``, and sets each layer's
``running_mean`` and ``running_var`` to the mean and the unbiased variance of *all* the
inputs that layer saw over those batches, pooled as if they were one batch. That is what
``momentum=None`` (a cumulative average) approximates; the cumulative average of per-batch
variances misses the spread of the batch means, the pooled value does not, and it does not
depend on how the examples are split into batches. The per-batch moments come from the
layers themselves (``momentum=1`` leaves each batch's statistics in the running buffers,
summed after every batch), so re-estimation costs one train-mode forward pass per batch,
no extra pass over the activations and no host synchronisation. No weight changes; every
module's momentum and training flag is restored.

Only the BatchNorm layers switch to train mode (they normalise each batch with its own
statistics, as in training); dropout, stochastic depth and the rest stay in eval mode, so
the statistics describe the activations the model sees at evaluation.

Under DDP each process runs its own batches (possibly none); ``gather``
(``finetune.distributed.Processes.gather``: every process's tensor, stacked along a new
first dimension) combines every process's (count, mean, biased variance) of each layer
before they are pooled, so the statistics equal those of one process running all the
batches."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from finetune.models import running_batchnorms
from finetune.runtime import Runtime

Gather = Callable[[torch.Tensor], torch.Tensor]


def batchnorm_layers(model: nn.Module) -> list[_BatchNorm]:
    """The model's BatchNorm layers that keep running statistics."""
    return [m for _, m in running_batchnorms(model)]


def has_batchnorm(model: nn.Module) -> bool:
    return bool(batchnorm_layers(model))


class _Moments:
    """Running sums of every layer's per-batch statistics, read from the layers themselves:
    with ``momentum=1`` a BatchNorm layer in train mode leaves exactly the batch's mean and
    unbiased variance in its running buffers, so collecting them costs no pass over the
    activations. The sums are shifted by the first batch's means (no cancellation) and
    updated with a few fused ``torch._foreach_*`` kernels per batch over all layers at once,
    with the counts as plain numbers: nothing is copied to or from the host."""

    def __init__(self, layers: list[_BatchNorm]) -> None:
        self.layers = layers
        self.counts: list[list[int]] = [[] for _ in layers]
        self.handles = [
            layer.register_forward_pre_hook(functools.partial(self._count, i))
            for i, layer in enumerate(layers)
        ]
        self.batches = 0
        self.shift: list[torch.Tensor] = []
        self.sum: list[torch.Tensor] = []
        self.squares: list[torch.Tensor] = []

    def _count(self, i: int, module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0]
        self.counts[i].append(x.numel() // x.shape[1])

    def record(self) -> None:
        """Add every layer's batch statistics after one forward pass."""
        self.batches += 1
        for layer, counts in zip(self.layers, self.counts):
            if len(counts) != self.batches:
                raise ValueError(
                    f"a {type(layer).__name__} ran {len(counts) - self.batches + 1} times in one "
                    "forward pass; re-estimation needs every BatchNorm layer to run once"
                )
        n = [counts[-1] for counts in self.counts]
        means = [layer.running_mean for layer in self.layers]
        if not self.shift:
            self.shift = torch._foreach_mul(means, 1.0)
            self.sum = [torch.zeros_like(m) for m in means]
            self.squares = [torch.zeros_like(m) for m in means]
        offset = torch._foreach_sub(means, self.shift)
        # n * (biased variance + offset^2), the biased variance being (n-1)/n of the stored
        biased = torch._foreach_mul([layer.running_var for layer in self.layers],
                                    [(c - 1) / c for c in n])  # fmt: skip
        torch._foreach_addcmul_(biased, offset, offset)
        torch._foreach_add_(self.squares, torch._foreach_mul(biased, n))
        torch._foreach_add_(self.sum, torch._foreach_mul(offset, n))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    def pooled(self, i: int) -> torch.Tensor:
        """(1, 3, C) float64 for layer ``i``: count (broadcast over channels), mean and
        biased variance of all the inputs it saw."""
        total = float(sum(self.counts[i]))
        offset = self.sum[i].double() / total
        mean = self.shift[i].double() + offset
        var = self.squares[i].double() / total - offset**2
        return torch.stack([torch.full_like(mean, total), mean, var.clamp(min=0)])[None]


def _no_moments(layer: _BatchNorm) -> torch.Tensor:
    """(1, 3, C) float64 zeros: the moments of no inputs."""
    return torch.zeros(
        1, 3, layer.num_features, dtype=torch.float64, device=layer.running_mean.device
    )


def pool_moments(stacked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total count, mean, unbiased variance) per channel of the union of the parts (batches,
    or processes) whose (count, mean, biased variance) rows ``stacked`` (parts, 3, C) holds:
    the law of total variance, in float64."""
    counts, means, variances = stacked[:, 0], stacked[:, 1], stacked[:, 2]
    total = counts.sum(0)
    mean = (counts * means).sum(0) / total
    squares = (counts * (variances + (means - mean) ** 2)).sum(0)
    return total, mean, squares / (total - 1).clamp(min=1)


@torch.no_grad()
def reestimate_batchnorm(
    model: nn.Module,
    batches: Iterable[torch.Tensor],
    *,
    runtime: Runtime | None = None,
    gather: Gather | None = None,
) -> int:
    """Replace the running statistics of every BatchNorm layer of ``model`` by the mean and
    unbiased variance of its inputs over ``batches`` (prepared model inputs), run under the
    runtime's autocast. Returns the number of batches used; a model without BatchNorm is
    left alone and 0 returned without touching ``batches``."""
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    modes = {m: m.training for m in model.modules()}
    momenta = [layer.momentum for layer in layers]
    moments = _Moments(layers)
    model.eval()
    for layer in layers:
        layer.train()
        layer.momentum = 1.0
    count = 0
    try:
        for x in batches:
            if runtime is not None:
                with runtime.autocast():
                    model(x)
            else:
                model(x)
            moments.record()
            count += 1
    finally:
        moments.remove()
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
        for module, mode in modes.items():
            module.train(mode)
    if count == 0 and gather is None:
        raise ValueError("BatchNorm re-estimation needs at least one batch")
    for i, layer in enumerate(layers):
        # A process without batches adds an empty part (count 0) to the others'.
        stacked = moments.pooled(i) if count else _no_moments(layer)
        if gather is not None:
            stacked = gather(stacked).flatten(0, 1)
        _, mean, var = pool_moments(stacked)
        layer.running_mean.copy_(mean)
        layer.running_var.copy_(var)
        if layer.num_batches_tracked is not None:
            layer.num_batches_tracked.fill_(count)
    return count
