"""Ordered layer groups of any timm model, from the model's own ``group_matcher``.

Group 0 is the stem, the last group holds the classifier (and whatever timm leaves
unmatched beside it, such as a final norm). Every layerwise policy indexes these groups.
"""

from __future__ import annotations

from dataclasses import dataclass

from timm.models._manipulate import group_parameters
from torch import nn

from finetune.errors import UnknownModelError


@dataclass(frozen=True)
class LayerGroup:
    index: int
    name: str
    params: tuple[str, ...]


def layer_groups(model: nn.Module, coarse: bool = True) -> list[LayerGroup]:
    """The model's parameters grouped in input-to-output order (stem, stages, head)."""
    if not hasattr(model, "group_matcher"):
        raise UnknownModelError(f"{type(model).__name__} has no timm group_matcher")
    grouped = group_parameters(model, model.group_matcher(coarse=coarse), reverse=False)
    ordered = [tuple(names) for _, names in sorted(grouped.items())]
    last = len(ordered) - 1
    return [LayerGroup(i, _group_name(names, i, last), names) for i, names in enumerate(ordered)]


def _group_name(names: tuple[str, ...], index: int, last: int) -> str:
    """``stem``, ``head``, or the common module prefix of each top-level module in the group
    (``layer2``, ``blocks.5+norm``)."""
    if index == 0:
        return "stem"
    if index == last:
        return "head"
    clusters: dict[str, list[list[str]]] = {}
    for name in names:
        parts = name.split(".")[:-1]
        clusters.setdefault(parts[0] if parts else name, []).append(parts)
    return "+".join(_common_prefix(paths) or top for top, paths in clusters.items())


def _common_prefix(paths: list[list[str]]) -> str:
    prefix = paths[0]
    for parts in paths[1:]:
        n = 0
        while n < min(len(prefix), len(parts)) and prefix[n] == parts[n]:
            n += 1
        prefix = prefix[:n]
    return ".".join(prefix)
