"""Feature regularisers, added to the loss: DELTA (Li et al. 2019) keeps the fine-tuned
model's feature maps near those of the initial model on the same batch, optionally
weighting channels by their importance; BSS (Chen et al. 2019) shrinks the smallest
singular values of the batch's penultimate features.

Both follow the Transfer-Learning-Library (tllib) implementations: DELTA is
``0.5 * sum_layers ||F - F0||^2`` summed over the batch, or with attention
``0.5 * sum_layers sum_{n,c} C * a_c * ||F_nc - F0_nc||^2 / (H*W)``; BSS is the sum of the
squares of the k smallest singular values of the (batch, features) matrix. The feature
maps are the outputs of the modules timm lists in ``feature_info`` (stages or blocks); the
attention's "channels" are dimension 1 of those outputs (for a ViT block, its tokens).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from finetune.config import RegConfig, flag_for
from finetune.errors import ConfigError


def feature_modules(model: nn.Module) -> list[str]:
    """Names of the modules whose outputs timm exposes as features, without the stem."""
    names = [info["module"] for info in getattr(model, "feature_info", [])]
    modules = dict(model.named_modules())
    kept = [n for n in names if n in modules and not n.startswith(("act", "stem"))]
    if not kept:
        raise ConfigError(
            f"{flag_for(RegConfig, 'delta')} needs feature maps, and {type(model).__name__} "
            "lists no feature modules in timm's feature_info"
        )
    return kept


class FeatureCapture:
    """Forward hooks keeping the last output of named modules (and optionally the input
    of the classifier, the penultimate features) with their autograd graph. Every key is
    there from the start (None until the first forward): a compiled model's graph guards
    on the keys of the dict its hooks write to, so a dict that gained them at the first
    step would recompile the model at the second."""

    def __init__(self, model: nn.Module, names: list[str], *, penultimate: bool = False) -> None:
        keys = [*names, "penultimate"] if penultimate else names
        self.outputs: dict[str, torch.Tensor | None] = dict.fromkeys(keys)
        self.handles = [
            model.get_submodule(name).register_forward_hook(self._keep(name)) for name in names
        ]
        if penultimate:
            head = model.get_classifier()
            self.handles.append(head.register_forward_pre_hook(self._keep_input))

    def _keep(self, name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            self.outputs[name] = output

        return hook

    def _keep_input(self, module: nn.Module, inputs: tuple) -> None:
        self.outputs["penultimate"] = inputs[0]

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def delta_penalty(
    features: dict[str, torch.Tensor],
    reference: dict[str, torch.Tensor],
    attention: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """DELTA's behavioural penalty between two models' feature maps (see module doc)."""
    total = torch.zeros((), device=next(iter(features.values())).device)
    for name, ref in reference.items():
        diff = features[name].float() - ref.detach().float()
        diff = diff.reshape(diff.shape[0], diff.shape[1], -1)
        if attention is None:
            total = total + 0.5 * diff.square().sum()
        else:
            channels, positions = diff.shape[1], diff.shape[2]
            per_channel = diff.square().sum(2)
            total = total + 0.5 * (channels * attention[name] * per_channel / positions).sum()
    return total


def bss_penalty(features: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Sum of the squares of the k smallest singular values of (batch, features)."""
    values = torch.linalg.svdvals(features.float().flatten(1))
    return values[-k:].square().sum()


@torch.no_grad()
def channel_attention(
    model: nn.Module,
    names: list[str],
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    n_batches: int,
    *,
    probe_steps: int = 100,
) -> dict[str, torch.Tensor]:
    """DELTA's channel weights, as tllib computes them: fit the classifier on the target
    with the features frozen (here: ``probe_steps`` of full-batch gradient descent on the
    cached penultimate features of the first batches), then for each channel the mean
    increase of the loss when that channel's output is zeroed; standardised, then
    softmax(z / 5) over each layer's channels."""
    probe = copy.deepcopy(model).eval()
    data = []
    for i, (x, y) in enumerate(batches):
        if i == n_batches:
            break
        data.append((x, y))
    capture = FeatureCapture(probe, [], penultimate=True)
    feats = []
    for x, _ in data:
        probe(x)
        feats.append(capture.outputs["penultimate"].flatten(1).float())
    capture.remove()
    _fit_head(
        probe.get_classifier(), torch.cat(feats), torch.cat([y for _, y in data]), probe_steps
    )
    weights: dict[str, torch.Tensor] = {}
    for name in names:
        module = probe.get_submodule(name)
        capture = FeatureCapture(probe, [name])
        probe(data[0][0][:1])
        capture.remove()
        width = capture.outputs[name].shape[1]
        increase = torch.zeros(width, device=data[0][0].device)
        for x, y in data:
            base = F.cross_entropy(probe(x).float(), y)
            for c in range(width):
                handle = module.register_forward_hook(_zero_channel(c))
                increase[c] += F.cross_entropy(probe(x).float(), y) - base
                handle.remove()
        z = increase / len(data)
        z = (z - z.mean()) / z.std(correction=0).clamp_min(1e-12)  # np.std, as tllib
        weights[name] = torch.softmax(z / 5, dim=0)
    return weights


def _zero_channel(channel: int):
    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        output = output.clone()
        output[:, channel] = 0
        return output

    return hook


class FeatureTerms:
    """The feature regularisers of one run: call :meth:`loss` right after the model's
    forward on ``x``; it reads the features the hooks kept."""

    def __init__(
        self,
        model: nn.Module,
        *,
        delta: float,
        bss: float,
        bss_k: int,
        attention_batches: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None,
        attention_n_batches: int = 10,
    ) -> None:
        self.delta, self.bss, self.bss_k = delta, bss, bss_k
        self.layers = feature_modules(model) if delta > 0 else []
        self.capture = FeatureCapture(model, self.layers, penultimate=bss > 0)
        self.reference: nn.Module | None = None
        self.attention: dict[str, torch.Tensor] | None = None
        if delta > 0:
            reference = copy.deepcopy(model).eval().requires_grad_(False)
            if attention_batches is not None:
                self.attention = channel_attention(
                    reference, self.layers, attention_batches, attention_n_batches
                )
            self.reference_capture = FeatureCapture(reference, self.layers)
            self.reference = reference

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        total = torch.zeros((), device=x.device)
        if self.reference is not None:
            with torch.no_grad():
                self.reference(x)
            mine = {name: self.capture.outputs[name] for name in self.layers}
            reference = self.reference_capture.outputs
            total = total + self.delta * delta_penalty(mine, reference, self.attention)
        if self.bss > 0:
            total = total + self.bss * bss_penalty(self.capture.outputs["penultimate"], self.bss_k)
        return total


@torch.enable_grad()
def _fit_head(head: nn.Module, features: torch.Tensor, labels: torch.Tensor, steps: int) -> None:
    head.requires_grad_(True)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1, momentum=0.9)
    for _ in range(steps):
        loss = F.cross_entropy(head(features), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
