"""Layerwise policies: which groups keep their initial weights, which are frozen, the
learning rate of every parameter, and the regulariser strengths of every parameter.

Learning rates become real per-group optimiser learning rates (``lr * lr_scale`` set at
every step), so any schedule scales them; nothing depends on a scheduler that knows about
``lr_scale``. Every parameter lands in exactly one layer group.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from timm.models._manipulate import group_parameters
from torch import nn

from finetune.config import PolicyConfig, RegConfig, flag_for
from finetune.errors import ConfigError
from finetune.groups import LayerGroup

DECAYED_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def decayed_parameter_names(model: nn.Module) -> set[str]:
    """Names of the weights of convolution and linear layers: what the parameter penalties
    act on by default, as in the official L2-SP code (not norm layers, biases, tokens)."""
    return {
        f"{module_name}.weight" if module_name else "weight"
        for module_name, module in model.named_modules()
        if isinstance(module, DECAYED_MODULES) and getattr(module, "weight", None) is not None
    }


@dataclass(frozen=True)
class ParamPlan:
    """What happens to one parameter during training."""

    name: str
    group: int
    transferred: bool
    frozen: bool
    lr_scale: float
    alpha: float
    beta: float


def per_group(values: tuple[float, ...], n_groups: int, flag: str) -> list[float]:
    """One value for every group, or a list with exactly one value per group."""
    if len(values) == 1:
        return [values[0]] * n_groups
    if len(values) != n_groups:
        raise ConfigError(
            f"--{flag} has {len(values)} values but the model has {n_groups} layer groups "
            "(see landscape groups MODEL)"
        )
    return list(values)


def lr_scales(model: nn.Module, groups: list[LayerGroup], policy: PolicyConfig) -> dict[str, float]:
    """The learning-rate multiplier of every parameter. ``lr_decay`` follows timm's
    ``param_groups_layer_decay``: timm's fine-grained layers, the head on top, layer i of
    L scaled by decay ** (L - 1 - i)."""
    names = [n for g in groups for n in g.params]
    if policy.lr_decay is not None:
        layer_of = group_parameters(model, model.group_matcher(coarse=False), reverse=True)
        top = max(layer_of.values())
        return {n: policy.lr_decay ** (top - layer_of.get(n, top)) for n in names}
    if policy.lr_mult is not None:
        mult = per_group(policy.lr_mult, len(groups), "lr-mult")
        return {n: mult[g.index] for g in groups for n in g.params}
    return dict.fromkeys(names, 1.0)


def plan_parameters(
    model: nn.Module,
    groups: list[LayerGroup],
    reg: RegConfig,
    policy: PolicyConfig,
    *,
    has_init: bool,
    head: set[str],
) -> list[ParamPlan]:
    """Resolve the policies and strengths for every parameter, in group order."""
    n = len(groups)
    if policy.transfer_groups is not None and not has_init:
        raise ConfigError("--transfer-groups needs initial weights (--init or --pretrained)")
    if policy.freeze_groups > n:
        raise ConfigError(f"--freeze-groups {policy.freeze_groups} but the model has {n} groups")
    if policy.surgical is not None and policy.surgical > n - 2:
        raise ConfigError(
            f"{flag_for(policy, 'surgical')} {policy.surgical} is not a body group: the "
            f"model's are 0-{n - 2} (group {n - 1} is the head, which trains anyway; see "
            "landscape groups MODEL)"
        )
    if policy.lp_epochs and policy.freeze_groups == n:
        raise ConfigError(
            f"{flag_for(policy, 'lp_epochs')} trains the head, which "
            f"{flag_for(policy, 'freeze_groups')} {n} freezes with every other group"
        )
    transfer = n if policy.transfer_groups is None else policy.transfer_groups
    frozen = set(range(policy.freeze_groups))
    if policy.surgical is not None:
        frozen = set(range(n - 1)) - {policy.surgical}
    alphas = per_group(reg.l2sp, n, "l2sp")
    betas = per_group(reg.l2, n, "l2")
    scales = lr_scales(model, groups, policy)
    regularised = (
        decayed_parameter_names(model)
        if reg.reg_params == "weights"
        else {name for name, _ in model.named_parameters()}
    )
    plans = []
    for g in groups:
        for name in g.params:
            transferred = has_init and g.index < transfer and name not in head
            beta = betas[g.index] if transferred or reg.l2_head is None else reg.l2_head
            on = name in regularised
            plans.append(
                ParamPlan(
                    name=name,
                    group=g.index,
                    transferred=transferred,
                    frozen=g.index in frozen,
                    lr_scale=scales[name],
                    alpha=alphas[g.index] if on and transferred else 0.0,
                    beta=beta if on else 0.0,
                )
            )
    return plans


def group_of_every_tensor(model: nn.Module, groups: list[LayerGroup]) -> dict[str, int]:
    """Layer group of every state-dict entry: buffers (BatchNorm statistics) go with their
    module's parameters, or with the parameter before them when their module has none."""
    of_param = {n: g.index for g in groups for n in g.params}
    of_module: dict[str, int] = {}
    for name, group in of_param.items():
        of_module.setdefault(name.rsplit(".", 1)[0], group)
    out: dict[str, int] = {}
    last = 0
    for key in model.state_dict():
        if key in of_param:
            last = of_param[key]
            out[key] = last
            continue
        out[key] = of_module.get(key.rsplit(".", 1)[0], last)
    return out


@torch.no_grad()
def reinitialise(
    model: nn.Module,
    random_state: dict[str, torch.Tensor],
    groups: list[LayerGroup],
    keep: int,
) -> list[str]:
    """Put groups ``keep`` and above (parameters and buffers) back to their random
    initialisation; returns the state-dict keys reset."""
    owner = group_of_every_tensor(model, groups)
    reset = {k: random_state[k] for k, g in owner.items() if g >= keep}
    model.load_state_dict(reset, strict=False)
    return sorted(reset)


def freeze(
    model: nn.Module, plans: list[ParamPlan], groups: list[LayerGroup], freeze_bn_stats: bool
) -> list[nn.Module]:
    """Stop gradients of frozen parameters; returns the norm modules whose running
    statistics must stay fixed (kept in eval mode while the model trains)."""
    frozen = {p.name for p in plans if p.frozen}
    params = dict(model.named_parameters())
    for name in frozen:
        params[name].requires_grad_(False)
    if not frozen or not freeze_bn_stats:
        return []
    owner = group_of_every_tensor(model, groups)
    frozen_groups = {p.group for p in plans if p.frozen}
    return [
        module
        for name, module in model.named_modules()
        if isinstance(module, nn.modules.batchnorm._BatchNorm)
        and owner.get(f"{name}.running_mean") in frozen_groups
    ]


@dataclass(frozen=True)
class GroupRow:
    """One line of the resolved table of ``landscape finetune --dry-run``."""

    index: int
    name: str
    tensors: int
    elements: int
    lr_scale: tuple[float, float]
    alpha: float
    beta: float
    beta_new: float
    frozen: bool
    transferred: str


def group_table(
    model: nn.Module, groups: list[LayerGroup], plans: list[ParamPlan]
) -> list[GroupRow]:
    params = dict(model.named_parameters())
    rows = []
    for g in groups:
        mine = [p for p in plans if p.group == g.index]
        old = [p for p in mine if p.transferred]
        new = [p for p in mine if not p.transferred]
        scales = [p.lr_scale for p in mine]
        rows.append(
            GroupRow(
                index=g.index,
                name=g.name,
                tensors=len(mine),
                elements=sum(params[p.name].numel() for p in mine),
                lr_scale=(min(scales), max(scales)),
                alpha=max((p.alpha for p in old), default=0.0),
                beta=max((p.beta for p in old), default=0.0),
                beta_new=max((p.beta for p in new), default=0.0),
                frozen=all(p.frozen for p in mine),
                transferred="all" if not new else "none" if not old else "partly",
            )
        )
    return rows


def format_table(rows: list[GroupRow], lr: float) -> str:
    """The resolved policy as a text table: learning rates already multiplied out."""
    head = (
        f"{'#':>3s}  {'group':<24s}{'params':>10s}{'lr':>20s}{'alpha(sp)':>11s}"
        f"{'beta(l2)':>10s}{'beta(new)':>11s}{'frozen':>8s}{'transferred':>13s}"
    )
    lines = [head]
    for r in rows:
        low, high = (lr * s for s in r.lr_scale)
        lr_text = f"{low:.3g}" if low == high else f"{low:.3g}..{high:.3g}"
        lines.append(
            f"{r.index:>3d}  {r.name:<24s}{r.elements:>10,d}{lr_text:>20s}{r.alpha:>11.3g}"
            f"{r.beta:>10.3g}{r.beta_new:>11.3g}{'yes' if r.frozen else 'no':>8s}"
            f"{r.transferred:>13s}"
        )
    return "\n".join(lines)
