"""How far a target's activation statistics are from a model's BatchNorm running statistics:
per BatchNorm layer, the per-channel mean and variance of the layer's input on the target
(the model in eval mode, so every layer sees what it would see at evaluation) against the
layer's ``running_mean`` and ``running_var``, as the mean over channels of the symmetric
KL divergence KL(p||q) + KL(q||p) between the two 1-D Gaussians, each variance plus the
layer's ``eps`` (what the layer divides by). Symmetric KL is scale-free: a channel scaled
by c with its running statistics scores the same, so layers of any scale compare."""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from finetune.models import running_batchnorms


def symmetric_kl(
    mean_p: torch.Tensor, var_p: torch.Tensor, mean_q: torch.Tensor, var_q: torch.Tensor
) -> torch.Tensor:
    """KL(N(mean_p, var_p) || N(mean_q, var_q)) + KL(q || p), elementwise:
    ((var_p - var_q)^2 + (mean_p - mean_q)^2 (var_p + var_q)) / (2 var_p var_q)."""
    shift = (mean_p - mean_q) ** 2
    return ((var_p - var_q) ** 2 + shift * (var_p + var_q)) / (2 * var_p * var_q)


class BatchNormInputs:
    """Forward pre-hooks on every BatchNorm layer of ``model`` (those keeping running
    statistics) that sum each channel's inputs and squared inputs in float64, shifted by the
    layer's running mean (no cancellation), over every forward pass inside the context.
    The examples are dealt to ``blocks`` blocks in the order they pass (example j to block
    j mod blocks), each block summed apart, so that a statistic can be recomputed without
    one block (the jackknife's standard error, ``probes.cross_validation``)."""

    def __init__(self, model: nn.Module, blocks: int = 1) -> None:
        named = running_batchnorms(model)
        self.names = [name for name, _ in named]
        self.layers = [m for _, m in named]
        self.blocks = blocks
        self.seen = [0] * len(self.layers)
        self.count = [torch.zeros(0)] * len(self.layers)
        self.sums = [torch.zeros(0)] * len(self.layers)
        self.squares = [torch.zeros(0)] * len(self.layers)
        self.handles: list[Any] = []

    def __enter__(self) -> BatchNormInputs:
        for i, layer in enumerate(self.layers):
            hook = functools.partial(self._add, i)
            self.handles.append(layer.register_forward_pre_hook(hook))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def _add(self, i: int, module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0].detach().double()
        x = x.reshape(x.shape[0], x.shape[1], -1)  # (examples, C, positions)
        x = x - module.running_mean.double()[None, :, None]
        if not self.seen[i]:
            self.count[i] = x.new_zeros(self.blocks)
            self.sums[i] = x.new_zeros(self.blocks, x.shape[1])
            self.squares[i] = x.new_zeros(self.blocks, x.shape[1])
        block = (self.seen[i] + torch.arange(x.shape[0], device=x.device)) % self.blocks
        self.seen[i] += x.shape[0]
        self.count[i].index_add_(0, block, x.new_full((x.shape[0],), float(x.shape[2])))
        self.sums[i].index_add_(0, block, x.sum(2))
        self.squares[i].index_add_(0, block, (x**2).sum(2))

    def moments(self, i: int, without: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, unbiased variance) per channel of the inputs layer ``i`` saw (all but
        block ``without`` when given)."""
        count = self.count[i] if self.seen[i] else torch.zeros(self.blocks, dtype=torch.float64)
        left_out = -1 if without is None else without
        keep = torch.arange(self.blocks, device=count.device) != left_out
        n = float(count[keep].sum())
        if n < 2:
            raise ValueError(f"{self.names[i]} saw {n:g} input value(s) per channel; need 2")
        offset = self.sums[i][keep].sum(0) / n
        var = (self.squares[i][keep].sum(0) - n * offset**2) / (n - 1)
        return self.layers[i].running_mean.double() + offset, var.clamp(min=0)

    def distances(self, without: int | None = None) -> list[float]:
        """Per layer: the mean over channels of ``symmetric_kl`` between the target's input
        statistics (without block ``without`` when given) and the running statistics, each
        variance plus the layer's eps."""
        out = []
        for i, layer in enumerate(self.layers):
            mean, var = self.moments(i, without)
            eps = float(layer.eps)
            running_var = layer.running_var.double() + eps
            kl = symmetric_kl(mean, var + eps, layer.running_mean.double(), running_var)
            out.append(float(kl.mean()))
        return out
