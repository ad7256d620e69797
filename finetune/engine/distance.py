"""How far each layer group has moved from the weights training started from, logged after
every epoch into run.h5 (the probes' parameter distances start from the same numbers)."""

from __future__ import annotations

import torch
from torch import nn

from finetune.groups import LayerGroup


@torch.no_grad()
def group_distances(
    model: nn.Module, init_state: dict[str, torch.Tensor], groups: list[LayerGroup]
) -> tuple[list[float], list[float]]:
    """Per layer group: ||w - w0|| and ||w - w0|| / ||w0|| over its parameters, with fused
    foreach kernels."""
    params = dict(model.named_parameters())
    distance, relative = [], []
    for group in groups:
        current = [params[n].detach() for n in group.params]
        start = [init_state[n] for n in group.params]
        diff = torch._foreach_sub(current, start)
        d = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(diff)).double())
        w0 = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(start)).double())
        distance.append(float(d))
        relative.append(float(d / w0) if w0 > 0 else float("nan"))
    return distance, relative
