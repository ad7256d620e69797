"""Activation capture with forward hooks: the representation of every layer group of a
timm model, of every parametrised module, or of named modules, one batch at a time, so no
activation of a whole dataset is ever held in memory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from finetune.errors import ConfigError
from finetune.groups import layer_groups

POOLING = ("flatten", "mean")


@dataclass(frozen=True)
class Layer:
    """Where a representation is read: the input or the output of the module ``module``
    ("" is the whole model, whose output is the logits); ``candidates`` lists modules any
    of which may come first in the forward pass (the first to run is used)."""

    name: str
    where: str
    candidates: tuple[str, ...]


def group_layers(model: nn.Module) -> list[Layer]:
    """One representation per layer group: what the group hands to the next one (the input
    of the next group's first module to run), and the logits for the last group."""
    groups = layer_groups(model)
    modules = dict(model.named_modules())
    owned = {
        name: {f"{name}.{p}" for p, _ in module.named_parameters()}
        for name, module in modules.items()
        if name
    }
    layers = []
    for group, following in zip(groups, groups[1:]):
        params = set(following.params)
        inside = {n for n, p in owned.items() if p and p <= params}
        outermost = tuple(n for n in inside if _parent(n) not in inside)
        if not outermost:
            raise ConfigError(f"layer group {following.name!r} has no module to hook")
        layers.append(Layer(group.name, "input", outermost))
    layers.append(Layer(groups[-1].name, "output", ("",)))
    return layers


def all_layers(model: nn.Module) -> list[Layer]:
    """The output of every module that holds parameters of its own, in definition order."""
    return [
        Layer(name, "output", (name,))
        for name, module in model.named_modules()
        if name and any(True for _ in module.parameters(recurse=False))
    ]


def named_layers(model: nn.Module, names: Sequence[str]) -> list[Layer]:
    """The outputs of the named modules (``landscape cka --layers layer1,layer2.0``)."""
    known = dict(model.named_modules())
    for name in names:
        if name not in known:
            sample = ", ".join(n for n in list(known)[1:9])
            raise ConfigError(f"the model has no module {name!r} (modules: {sample}, ...)")
    return [Layer(name, "output", (name,)) for name in names]


def select_layers(model: nn.Module, spec: str) -> list[Layer]:
    """``groups``, ``all``, or a comma-separated list of module names."""
    if spec == "groups":
        return group_layers(model)
    if spec == "all":
        return all_layers(model)
    return named_layers(model, [n.strip() for n in spec.split(",") if n.strip()])


class ActivationCapture:
    """Hooks on ``model`` that keep the last forward pass's representation of each layer,
    pooled or flattened to (examples, features). Use as a context manager; ``take()`` hands
    the batch's features over and forgets them."""

    def __init__(self, model: nn.Module, layers: Sequence[Layer], pool: str = "flatten") -> None:
        if pool not in POOLING:
            raise ConfigError(f"pool must be one of {', '.join(POOLING)}, got {pool!r}")
        self.model = model
        self.layers = list(layers)
        self.pool = pool
        self.features: dict[int, torch.Tensor] = {}
        self.handles: list[Any] = []

    def __enter__(self) -> ActivationCapture:
        modules = dict(self.model.named_modules())
        self.handles.append(self.model.register_forward_pre_hook(self._reset))
        for index, layer in enumerate(self.layers):
            for name in layer.candidates:
                module = modules[name]
                if layer.where == "input":
                    hook = self._input_hook(index)
                    self.handles.append(module.register_forward_pre_hook(hook))
                else:
                    self.handles.append(module.register_forward_hook(self._output_hook(index)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()
        self.features.clear()

    def take(self) -> list[torch.Tensor]:
        """The last forward pass's features, in the order of ``layers``."""
        missing = [self.layers[i].name for i in range(len(self.layers)) if i not in self.features]
        if missing:
            raise RuntimeError(f"no activation was captured for {', '.join(missing)}")
        features = [self.features[i] for i in range(len(self.layers))]
        self.features = {}
        return features

    def _reset(self, module: nn.Module, args: Any) -> None:
        self.features = {}

    def _keep(self, index: int, value: Any) -> None:
        if index in self.features:
            return
        tensor = value[0] if isinstance(value, (tuple, list)) else value
        self.features[index] = pool_features(tensor.detach(), self.pool)

    def _input_hook(self, index: int):
        return lambda module, args: self._keep(index, args)

    def _output_hook(self, index: int):
        return lambda module, args, output: self._keep(index, output)


def pool_features(tensor: torch.Tensor, pool: str) -> torch.Tensor:
    """(N, ...) -> (N, features): flattened, or averaged over the spatial positions of a
    (N, C, H, W) map or the tokens of a (N, T, D) sequence."""
    if pool == "mean" and tensor.ndim == 4:
        return tensor.mean((2, 3))
    if pool == "mean" and tensor.ndim == 3:
        return tensor.mean(1)
    return tensor.flatten(1)


def _parent(name: str) -> str:
    return name.rpartition(".")[0]
