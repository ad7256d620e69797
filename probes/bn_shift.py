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
    layer's running mean (no cancellation), over every forward pass inside the context."""

    def __init__(self, model: nn.Module) -> None:
        named = running_batchnorms(model)
        self.names = [name for name, _ in named]
        self.layers = [m for _, m in named]
        self.count = [0] * len(self.layers)
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
        x = args[0].detach().double().transpose(0, 1).flatten(1)  # (C, examples x positions)
        x = x - module.running_mean.double()[:, None]
        if not self.count[i]:
            self.sums[i] = torch.zeros_like(x[:, 0])
            self.squares[i] = torch.zeros_like(x[:, 0])
        self.count[i] += x.shape[1]
        self.sums[i] += x.sum(1)
        self.squares[i] += (x**2).sum(1)

    def moments(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, unbiased variance) per channel of the inputs layer ``i`` saw."""
        n = self.count[i]
        if n < 2:
            raise ValueError(f"{self.names[i]} saw {n} input value(s) per channel; need 2")
        offset = self.sums[i] / n
        var = (self.squares[i] - n * offset**2) / (n - 1)
        return self.layers[i].running_mean.double() + offset, var.clamp(min=0)

    def distances(self) -> list[float]:
        """Per layer: the mean over channels of ``symmetric_kl`` between the target's input
        statistics and the running statistics, each variance plus the layer's eps."""
        out = []
        for i, layer in enumerate(self.layers):
            mean, var = self.moments(i)
            eps = float(layer.eps)
            running_var = layer.running_var.double() + eps
            kl = symmetric_kl(mean, var + eps, layer.running_mean.double(), running_var)
            out.append(float(kl.mean()))
        return out
