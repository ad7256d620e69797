"""Optimiser parameter groups, optimisers and the learning-rate schedule.

Plain L2 (``weight_decay``) applies to the weights of convolution and linear layers only,
as in the official L2-SP code: never to norm layers, biases, embeddings or tokens. The
schedule is a pure function of the step, so resuming needs no scheduler state.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from finetune.config import OptimConfig
from finetune.groups import LayerGroup

DECAYED_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def decayed_parameter_names(model: nn.Module) -> set[str]:
    """Names of the weights of convolution and linear layers."""
    return {
        f"{module_name}.weight" if module_name else "weight"
        for module_name, module in model.named_modules()
        if isinstance(module, DECAYED_MODULES) and getattr(module, "weight", None) is not None
    }


def parameter_groups(model: nn.Module, groups: list[LayerGroup], weight_decay: float) -> list[dict]:
    """One optimiser group per (layer group, decayed or not), tagged with the layer group's
    index and name and an ``lr_scale`` the schedule multiplies by."""
    params = dict(model.named_parameters())
    decayed = decayed_parameter_names(model)
    out = []
    for group in groups:
        for decay in (True, False):
            names = [n for n in group.params if (n in decayed) == decay and params[n].requires_grad]
            if names:
                out.append(
                    {
                        "params": [params[n] for n in names],
                        "param_names": names,
                        "weight_decay": weight_decay if decay else 0.0,
                        "layer_group": group.index,
                        "group_name": group.name,
                        "lr_scale": 1.0,
                    }
                )
    return out


def build_optimizer(
    config: OptimConfig, param_groups: list[dict], *, fused: bool
) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            param_groups,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov and config.momentum > 0,
            fused=fused or None,
        )
    return torch.optim.AdamW(
        param_groups, lr=config.lr, betas=(config.momentum, 0.999), fused=fused or None
    )


def lr_at(config: OptimConfig, step: int, steps_per_epoch: int, total_steps: int) -> float:
    """The learning rate of ``step`` (0-based): linear warm-up, then the chosen schedule."""
    warmup = round(config.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "step":
        return config.lr * config.step_gamma ** (step // (config.step_epochs * steps_per_epoch))
    progress = (step - warmup) / max(1, total_steps - warmup)
    return config.min_lr + 0.5 * (config.lr - config.min_lr) * (1 + math.cos(math.pi * progress))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"]
