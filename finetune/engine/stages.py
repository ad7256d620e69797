"""Training stages: what trains in each epoch. A run has one stage, the fine-tuning its
policy describes; LP-FT (``--lp-epochs K``, Kumar et al. 2022) puts a linear-probe stage
before it for the first K epochs.

A stage names the tensors that train, the norm layers that keep their statistics (in eval
mode while the model trains), the penalties that act and each tensor's static learning-rate
scale. Penalties act on the stage's trainable tensors only: a frozen tensor has no gradient
to add to and must not shrink. The optimizer holds every tensor of the fine-tuning stage
from the first step; a tensor frozen in the probe gets no gradient, so SGD and AdamW leave
it and its state untouched there, and the head's momentum carries over into fine-tuning.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from finetune.config import RunConfig
from finetune.policy import ParamPlan
from finetune.regularisers.penalties import Bucket, build_buckets


@dataclass
class Stage:
    """One stage: from ``first_epoch`` (from 0) until the next stage's first."""

    first_epoch: int
    trainable: tuple[str, ...]  # parameter names, in plan order
    frozen_norms: list[nn.Module]
    buckets: list[Bucket]
    lr_scales: dict[str, float]  # static scale of every tensor the optimizer holds


def build_stages(
    config: RunConfig,
    model: nn.Module,
    plans: list[ParamPlan],
    frozen_norms: list[nn.Module],
    *,
    head: set[str],
    w0: dict[str, torch.Tensor],
    fisher: dict[str, torch.Tensor],
) -> list[Stage]:
    """The run's stages: the probe of LP-FT when asked (the classifier ``head`` alone, every
    BatchNorm in eval mode, lr scale 1), then the fine-tuning of ``plans``."""
    k = config.policy.lp_epochs
    scales = {p.name: p.lr_scale for p in plans if not p.frozen}
    stages = [_stage(k, model, plans, frozen_norms, scales, w0, fisher, config)]
    if k:
        probe = [replace(p, frozen=p.frozen or p.name not in head, lr_scale=1.0) for p in plans]
        norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
        ones = dict.fromkeys(scales, 1.0)
        stages.insert(0, _stage(0, model, probe, norms, ones, w0, fisher, config))
    return stages


def _stage(
    first_epoch: int,
    model: nn.Module,
    plans: list[ParamPlan],
    frozen_norms: list[nn.Module],
    lr_scales: dict[str, float],
    w0: dict[str, torch.Tensor],
    fisher: dict[str, torch.Tensor],
    config: RunConfig,
) -> Stage:
    return Stage(
        first_epoch=first_epoch,
        trainable=tuple(p.name for p in plans if not p.frozen),
        frozen_norms=frozen_norms,
        buckets=build_buckets(model, plans, w0, fisher, config.reg.sp),
        lr_scales=lr_scales,
    )


def stage_of(stages: list[Stage], epoch: int) -> Stage:
    """The stage that trains epoch ``epoch`` (from 0)."""
    return [s for s in stages if s.first_epoch <= epoch][-1]


def enter(stage: Stage, model: nn.Module) -> None:
    """Gradients for the stage's trainable tensors only, and training mode but for the
    stage's frozen norm layers, whose statistics stay put."""
    trainable = set(stage.trainable)
    for name, param in model.named_parameters():
        param.requires_grad_(name in trainable)
    model.train()
    for module in stage.frozen_norms:
        module.eval()


def set_scales(optimizer: torch.optim.Optimizer, scales: dict[str, float]) -> None:
    """Give every optimizer group the ``lr_scale`` of its tensors (one scale per group),
    which ``finetune.optim.set_lr`` multiplies the scheduled lr by and the optimizer's
    state dict saves, so a resumed run continues with it."""
    for group in optimizer.param_groups:
        group["lr_scale"] = scales[group["param_names"][0]]


def describe_stages(config: RunConfig, head: list[str]) -> list[str]:
    """Lines for ``--dry-run`` under the per-group table: the LP-FT stages and Auto-RGN."""
    policy, epochs = config.policy, config.train.epochs
    lines = []
    if policy.lp_epochs:
        k = policy.lp_epochs
        lines += [
            f"{_epochs(1, k)}: linear probe: only {', '.join(head)} train, lr "
            f"{policy.lp_lr:g} on a cosine to 0, no multiplier; every other tensor frozen, "
            "every BatchNorm in eval mode",
            f"{_epochs(k + 1, epochs)}: fine-tuning as the table says, warm-up and schedule "
            "counted from its first step",
        ]
    if policy.auto_lr == "rgn":
        lines.append(
            "Auto-RGN: each tensor's lr is the table's times its relative gradient norm over "
            f"the largest, measured on {policy.rgn_batches} batches at every epoch's start"
        )
    return lines


def _epochs(first: int, last: int) -> str:
    return f"epoch {first}" if first == last else f"epochs {first}-{last}"
