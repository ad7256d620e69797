"""Optimiser parameter groups, optimisers and the learning-rate schedule. The schedule
is a pure function of the step, so resuming needs no scheduler state."""

from __future__ import annotations

import math

import torch
from torch import nn

from finetune.config import OptimConfig, PolicyConfig
from finetune.policy import ParamPlan


def parameter_groups(
    model: nn.Module, plans: list[ParamPlan], *, per_tensor: bool = False
) -> list[dict]:
    """One optimiser group per (layer group, learning-rate scale) of the trainable
    parameters, or one per trainable tensor (``per_tensor``, for Auto-RGN's scales), tagged
    with ``layer_group`` and the ``lr_scale`` the schedule multiplies by. Weight decay is 0
    here: the regularisers apply every penalty themselves."""
    params = dict(model.named_parameters())
    grouped: dict[tuple[int, float | str], list[str]] = {}
    for plan in plans:
        if not plan.frozen:
            key = plan.name if per_tensor else plan.lr_scale
            grouped.setdefault((plan.group, key), []).append(plan.name)
    scale = {plan.name: plan.lr_scale for plan in plans}
    return [
        {
            "params": [params[n] for n in names],
            "param_names": names,
            "weight_decay": 0.0,
            "layer_group": group,
            "lr_scale": scale[names[0]],
        }
        for (group, _), names in grouped.items()
    ]


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
    return cosine(config.lr, config.min_lr, progress)


def cosine(high: float, low: float, progress: float) -> float:
    """Half a cosine from ``high`` at progress 0 to ``low`` at progress 1."""
    return low + 0.5 * (high - low) * (1 + math.cos(math.pi * progress))


def stage_lr(
    optim: OptimConfig, policy: PolicyConfig, step: int, steps_per_epoch: int, total_steps: int
) -> float:
    """The learning rate of global ``step`` (0-based) in a run of ``total_steps``: with
    LP-FT (``lp_epochs`` K), a cosine from ``lp_lr`` to 0 over the probe's first K epochs,
    then ``lr_at`` over the fine-tuning steps, counted from the first of them."""
    probe = policy.lp_epochs * steps_per_epoch
    if step < probe:
        return cosine(policy.lp_lr, 0.0, step / probe)
    return lr_at(optim, step - probe, steps_per_epoch, total_steps - probe)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"]
