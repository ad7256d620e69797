"""Straight lines and planes in weight space, written point by point into one model.

A ``Line`` is ``theta(a) = (1 - a) * theta_A + a * theta_B`` over every parameter and every
floating-point buffer (BatchNorm's running statistics included); integer buffers such as
``num_batches_tracked`` keep A's values. A ``Plane`` is ``theta(x, y) = origin + x * d1 +
y * d2`` over the same tensors. Both copy their end points or directions to the model's
device once, in the model's own dtype and memory format; moving to a point is then two or
three fused ``torch._foreach_*`` kernels writing into the model's own tensors: no state dict
is rebuilt and nothing goes back to the host.

``plane_through_runs`` builds the plane through three weight sets (Garipov et al. 2018:
Gram-Schmidt on ``B - A`` and ``C - A``) and ``random_plane`` two random filter-normalised
directions around one (Li et al. 2018)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from finetune.errors import ConfigError, IncompatibleWeightsError

State = Mapping[str, torch.Tensor]


def check_compatible(states: Sequence[State], labels: Sequence[str]) -> None:
    """Refuse weight sets that are not of one architecture and head: an
    ``IncompatibleWeightsError`` naming the first tensor (in the first set's order, then
    the others') that one of them lacks or that differs in shape."""
    first = states[0]
    names = list(first) + [n for s in states[1:] for n in s if n not in first]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        for state, label in zip(states, labels):
            if name not in state:
                raise IncompatibleWeightsError(
                    f"{label} has no tensor {name!r}: not the same architecture"
                )
        shape = tuple(first[name].shape)
        for state, label in zip(states[1:], labels[1:]):
            if tuple(state[name].shape) != shape:
                raise IncompatibleWeightsError(
                    f"{labels[0]} and {label} differ at {name!r}: shape {shape} against "
                    f"{tuple(state[name].shape)} (not the same architecture and head)"
                )


class _Writer:
    """The model's own tensors, split into floating ones (moved along the path) and the
    others (held at a reference's values)."""

    def __init__(self, model: nn.Module, reference: State) -> None:
        live = model.state_dict()  # detached views sharing the model's storage
        self.names = [n for n, t in live.items() if t.is_floating_point()]
        self.targets = [live[n] for n in self.names]
        fixed = [n for n, t in live.items() if not t.is_floating_point()]
        self.fixed_targets = [live[n] for n in fixed]
        self.fixed_values = [_copy_like(live[n], reference[n]) for n in fixed]

    def copy(self, tensors: list[torch.Tensor], state: State) -> list[torch.Tensor]:
        """``state``'s floating tensors as private copies shaped like the model's."""
        return [_copy_like(t, state[n]) for n, t in zip(self.names, tensors)]

    def reset_fixed(self) -> None:
        if self.fixed_targets:
            torch._foreach_copy_(self.fixed_targets, self.fixed_values)


def _copy_like(target: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """A copy of ``value`` with ``target``'s device, dtype and memory format."""
    return torch.empty_like(target).copy_(value)


class Line:
    """``theta(a) = (1 - a) * a_state + a * b_state`` written into ``model`` by ``set(a)``.

    ``set(0)`` and ``set(1)`` give A's and B's tensors exactly (``torch.lerp`` is exact at
    both ends). ``model`` is only written into; it may be A's own model."""

    def __init__(
        self,
        model: nn.Module,
        a_state: State,
        b_state: State,
        *,
        labels: tuple[str, str] = ("A", "B"),
    ) -> None:
        check_compatible([a_state, b_state, model.state_dict()], [*labels, "the model"])
        self._writer = _Writer(model, a_state)
        self.start = self._writer.copy(self._writer.targets, a_state)
        self.end = self._writer.copy(self._writer.targets, b_state)

    @property
    def names(self) -> list[str]:
        return self._writer.names

    @torch.no_grad()
    def set(self, alpha: float) -> None:
        targets = self._writer.targets
        torch._foreach_copy_(targets, self.start)
        if alpha != 0.0:
            torch._foreach_lerp_(targets, self.end, float(alpha))
        self._writer.reset_fixed()


class Plane:
    """``theta(x, y) = origin + x * d1 + y * d2`` written into ``model`` by ``set(x, y)``.
    ``d1`` and ``d2`` hold a tensor for every floating tensor of the model (zeros where a
    tensor does not move)."""

    def __init__(self, model: nn.Module, origin: State, d1: State, d2: State) -> None:
        check_compatible([origin, model.state_dict()], ["the origin", "the model"])
        self._writer = _Writer(model, origin)
        self.origin = self._writer.copy(self._writer.targets, origin)
        self.d1 = self._writer.copy(self._writer.targets, d1)
        self.d2 = self._writer.copy(self._writer.targets, d2)

    @torch.no_grad()
    def set(self, x: float, y: float) -> None:
        targets = self._writer.targets
        torch._foreach_copy_(targets, self.origin)
        if x != 0.0:
            torch._foreach_add_(targets, self.d1, alpha=float(x))
        if y != 0.0:
            torch._foreach_add_(targets, self.d2, alpha=float(y))
        self._writer.reset_fixed()


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    """Sum of elementwise products over lists of tensors, in float64 (on their device)."""
    if not a:
        return torch.zeros((), dtype=torch.float64)
    return torch.stack([(x.double() * y.double()).sum() for x, y in zip(a, b)]).sum()


@torch.no_grad()
def plane_through_runs(
    model: nn.Module,
    a_state: State,
    b_state: State,
    c_state: State,
    *,
    labels: tuple[str, str, str] = ("A", "B", "C"),
) -> tuple[Plane, np.ndarray]:
    """The plane through three weight sets of one architecture (Garipov et al. 2018): origin
    A, ``e1 = (B - A) / |B - A|``, ``e2`` = the part of ``C - A`` orthogonal to ``e1``,
    normalised. Inner products and norms are taken over the parameters; floating buffers
    (BatchNorm statistics) follow the same affine combination, so each run's point carries
    its own statistics. Returns the plane and the runs' (x, y) coordinates, (3, 2):
    A = (0, 0), B = (|B - A|, 0), C = (<C - A, e1>, |C - A - <C - A, e1> e1|)."""
    check_compatible([a_state, b_state, c_state, model.state_dict()], [*labels, "the model"])
    params = {n for n, _ in model.named_parameters()}
    live = model.state_dict()
    names = [n for n, t in live.items() if t.is_floating_point()]
    device = next(iter(live.values())).device if live else torch.device("cpu")

    def tensors(state: State) -> list[torch.Tensor]:
        return [state[n].detach().to(device=device, dtype=torch.float64) for n in names]

    a, b, c = tensors(a_state), tensors(b_state), tensors(c_state)
    u = torch._foreach_sub(b, a)
    v = torch._foreach_sub(c, a)
    mask = [n in params for n in names]

    def pdot(x: list[torch.Tensor], y: list[torch.Tensor]) -> float:
        pairs = [(s, t) for s, t, m in zip(x, y, mask) if m]
        return float(_dot([s for s, _ in pairs], [t for _, t in pairs]))

    norm_u = pdot(u, u) ** 0.5
    if norm_u == 0.0:
        raise ConfigError(f"{labels[0]} and {labels[1]} have the same parameters; no plane")
    e1 = torch._foreach_div(u, norm_u)
    along = pdot(v, e1)
    w = torch._foreach_sub(v, torch._foreach_mul(e1, along))
    norm_w = pdot(w, w) ** 0.5
    if norm_w <= 1e-9 * max(norm_u, pdot(v, v) ** 0.5):
        raise ConfigError(f"{', '.join(labels)} lie on one line in weight space; no plane")
    e2 = torch._foreach_div(w, norm_w)
    d1 = dict(zip(names, e1))
    d2 = dict(zip(names, e2))
    coordinates = np.array([[0.0, 0.0], [norm_u, 0.0], [along, norm_w]])
    return Plane(model, a_state, d1, d2), coordinates


def filter_normalized_direction(
    model: nn.Module, state: State, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """A random direction normalised filter by filter (Li et al. 2018, ``norm='filter'``,
    ``ignore='biasbn'``): for every parameter of two or more dimensions, a Gaussian tensor
    whose every filter (slice along the first dimension: a conv's output channel, a linear
    layer's row) is rescaled to the norm of the same filter of ``state``; biases, BatchNorm
    parameters (all one-dimensional parameters) and all buffers get a zero direction. Drawn
    on the CPU from ``generator``, so a seed gives the same direction on every device."""
    params = {n for n, _ in model.named_parameters()}
    direction = {}
    for name, weight in state.items():
        if not weight.is_floating_point():
            continue
        if name not in params or weight.dim() <= 1:
            direction[name] = torch.zeros(weight.shape, dtype=torch.float32)
            continue
        w = weight.detach().float().cpu()
        d = torch.randn(w.shape, generator=generator)
        scale = w.flatten(1).norm(dim=1) / (d.flatten(1).norm(dim=1) + 1e-10)
        direction[name] = d * scale.view(-1, *([1] * (d.dim() - 1)))
    return direction


def random_plane(model: nn.Module, state: State, seed: int = 0) -> Plane:
    """The plane through ``state`` spanned by two random filter-normalised directions
    (Li et al. 2018), drawn one after the other from one generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    d1 = filter_normalized_direction(model, state, generator)
    d2 = filter_normalized_direction(model, state, generator)
    return Plane(model, state, d1, d2)
