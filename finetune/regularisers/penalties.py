"""Parameter penalties, one registry: plain L2 toward zero and the SP family toward the
initial weights w0 (Li, Grandvalet, Davoine 2018).

Each penalty is defined by its value (for logging and for tests) and its gradient, both
over whole lists of tensors with fused ``torch._foreach_*`` kernels. The engine applies the
gradient either *coupled* (added to the parameters' gradients: exactly the gradient of the
penalty added to the loss) or *decoupled* (the weights move directly, AdamW-style). Values
are per unit strength; the strength (alpha or beta) multiplies them. Each registry entry
declares what its penalty needs (w0, a Fisher estimate): the config's ``--sp`` choices and
the engine's decision to estimate a Fisher are asked of the registry, never of a name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # type only: config imports this module for the --sp choices
    from finetune.policy import ParamPlan

Tensors = list[torch.Tensor]

# The penalty toward zero that every parameter's beta strength selects.
PLAIN_L2 = "l2"


class Penalty(ABC):
    """One penalty over lists of tensors ``w`` (with ``w0`` and ``fisher`` alike). Its
    registry entry declares what it needs: ``needs_w0`` (the initial weights; such a
    penalty is one of the SP choices of ``--sp``) and ``needs_fisher`` (a diagonal Fisher
    information estimate at w0). Neither needed, the lists it is given are empty."""

    name: str
    needs_w0: bool
    needs_fisher: bool

    @abstractmethod
    def value(self, w: Tensors, w0: Tensors, fisher: Tensors, eps: float) -> torch.Tensor:
        """The penalty at unit strength, a float64 scalar."""

    @abstractmethod
    def gradient(self, w: Tensors, w0: Tensors, fisher: Tensors, eps: float) -> Tensors:
        """d(value)/dw, one tensor per tensor of ``w``."""

    def add_gradient(
        self, grads: Tensors, w: Tensors, w0: Tensors, fisher: Tensors, eps: float, strength: float
    ) -> None:
        """``grads += strength * gradient``, in place."""
        torch._foreach_add_(grads, self.gradient(w, w0, fisher, eps), alpha=strength)


PENALTIES: dict[str, Penalty] = {}


def register_penalty(
    name: str, *, needs_w0: bool, needs_fisher: bool = False
) -> Callable[[type[Penalty]], type[Penalty]]:
    """Register a Penalty subclass under ``name`` with what it needs: adding a penalty is
    this decorator on one class, not an edit of the loop or of a list of choices."""

    def decorate(cls: type[Penalty]) -> type[Penalty]:
        if name in PENALTIES:
            raise ValueError(f"penalty {name!r} is registered twice")
        cls.name, cls.needs_w0, cls.needs_fisher = name, needs_w0, needs_fisher
        PENALTIES[name] = cls()
        return cls

    return decorate


def sp_penalties() -> tuple[str, ...]:
    """The registered penalties toward w0, in registration order: the choices of ``--sp``."""
    return tuple(name for name, penalty in PENALTIES.items() if penalty.needs_w0)


def needs_fisher(sp: str) -> bool:
    """Whether the SP penalty ``sp`` needs a Fisher information estimate."""
    return PENALTIES[sp].needs_fisher


def _sum(values: Tensors) -> torch.Tensor:
    if not values:
        return torch.zeros((), dtype=torch.float64)
    return torch.stack([v.double() for v in values]).sum()


def _sq_norms(tensors: Tensors) -> Tensors:
    return [n * n for n in torch._foreach_norm(tensors)]


def _diff(w: Tensors, w0: Tensors) -> Tensors:
    return torch._foreach_sub(w, w0)


def _unit_norms(d: Tensors, eps: float) -> Tensors:
    """Per output unit (dim 0), sqrt(||d_c||^2 + eps^2), shaped to broadcast against d."""
    return [
        torch.sqrt(x.reshape(x.shape[0], -1).square().sum(1) + eps * eps).reshape(
            (-1,) + (1,) * (x.ndim - 1)
        )
        if x.ndim > 0
        else torch.sqrt(x * x + eps * eps)
        for x in d
    ]


@register_penalty(PLAIN_L2, needs_w0=False)
class L2(Penalty):
    """Plain L2 toward zero, ||w||^2 / 2."""

    def value(self, w, w0, fisher, eps):
        return 0.5 * _sum(_sq_norms(w))

    def gradient(self, w, w0, fisher, eps):
        return list(w)

    def add_gradient(self, grads, w, w0, fisher, eps, strength):
        torch._foreach_add_(grads, w, alpha=strength)


@register_penalty("l2sp", needs_w0=True)
class L2SP(Penalty):
    """L2-SP, ||w - w0||^2 / 2."""

    def value(self, w, w0, fisher, eps):
        return 0.5 * _sum(_sq_norms(_diff(w, w0)))

    def gradient(self, w, w0, fisher, eps):
        return _diff(w, w0)

    def add_gradient(self, grads, w, w0, fisher, eps, strength):
        # Two fused updates, no temporary for w - w0.
        torch._foreach_add_(grads, w, alpha=strength)
        torch._foreach_add_(grads, w0, alpha=-strength)


@register_penalty("l2sp_fisher", needs_w0=True, needs_fisher=True)
class L2SPFisher(Penalty):
    """L2-SP-Fisher, sum F * (w - w0)^2 / 2 with the diagonal Fisher F at w0."""

    def value(self, w, w0, fisher, eps):
        d = _diff(w, w0)
        return 0.5 * _sum([(f * x * x).sum() for f, x in zip(fisher, d)])

    def gradient(self, w, w0, fisher, eps):
        return torch._foreach_mul(_diff(w, w0), fisher)


@register_penalty("l1sp", needs_w0=True)
class L1SP(Penalty):
    """L1-SP, sum |w - w0| with |d| smoothed as sqrt(d^2 + eps^2) - eps."""

    def value(self, w, w0, fisher, eps):
        d = _diff(w, w0)
        return _sum([(torch.sqrt(x * x + eps * eps) - eps).sum() for x in d])

    def gradient(self, w, w0, fisher, eps):
        d = _diff(w, w0)
        root = torch._foreach_sqrt(torch._foreach_add(torch._foreach_mul(d, d), eps * eps))
        return torch._foreach_div(d, root)


@register_penalty("gl_sp", needs_w0=True)
class GroupLassoSP(Penalty):
    """Group-Lasso-SP, the sum over output units of ||w_c - w0_c||, smoothed as L1-SP."""

    def value(self, w, w0, fisher, eps):
        return _sum([(n - eps).sum() for n in _unit_norms(_diff(w, w0), eps)])

    def gradient(self, w, w0, fisher, eps):
        d = _diff(w, w0)
        return torch._foreach_div(d, _unit_norms(d, eps))


@dataclass
class Bucket:
    """Parameters sharing one optimiser group, one penalty and one strength."""

    penalty: str
    strength: float
    layer_group: int
    lr_scale: float
    params: Tensors
    w0: Tensors
    fisher: Tensors

    def __post_init__(self) -> None:
        # Detached views share storage, so they follow the optimiser's in-place updates.
        self.data = [p.detach() for p in self.params]

    def gradient(self, eps: float) -> Tensors:
        return PENALTIES[self.penalty].gradient(self.data, self.w0, self.fisher, eps)

    def value(self, eps: float) -> torch.Tensor:
        return self.strength * PENALTIES[self.penalty].value(self.data, self.w0, self.fisher, eps)


@torch.no_grad()
def add_to_gradients(buckets: list[Bucket], eps: float) -> None:
    """Coupled: grad += strength * d(penalty)/dw, as if the penalty were part of the loss.
    The quadratic penalties need no temporary beyond their two fused updates."""
    for b in buckets:
        grads = [p.grad for p in b.params]
        PENALTIES[b.penalty].add_gradient(grads, b.data, b.w0, b.fisher, eps, b.strength)


@torch.no_grad()
def shrink_weights(buckets: list[Bucket], lr: float, eps: float) -> None:
    """Decoupled: w -= lr * lr_scale * strength * d(penalty)/dw, before the optimiser step.
    Every step is computed from the same weights before any is applied, so penalties on
    the same parameters combine exactly (l2sp with l2 shrinks toward alpha*w0/(alpha+beta))."""
    steps = [
        (b, torch._foreach_mul(b.gradient(eps), -lr * b.lr_scale * b.strength))
        for b in buckets
        if b.strength * b.lr_scale != 0.0
    ]
    for b, step in steps:
        torch._foreach_add_(b.data, step)


def build_buckets(
    model: torch.nn.Module,
    plans: list[ParamPlan],
    w0: dict[str, torch.Tensor],
    fisher: dict[str, torch.Tensor],
    sp: str,
) -> list[Bucket]:
    """Buckets of the trainable parameters by (penalty, strength, group, lr scale): the SP
    penalty ``sp`` with alpha on transferred parameters, plain L2 with beta on all."""
    params = dict(model.named_parameters())
    keyed: dict[tuple[str, float, int, float], list[str]] = {}
    for p in plans:
        if p.frozen:
            continue
        if p.alpha > 0:
            keyed.setdefault((sp, p.alpha, p.group, p.lr_scale), []).append(p.name)
        if p.beta > 0:
            keyed.setdefault((PLAIN_L2, p.beta, p.group, p.lr_scale), []).append(p.name)
    return [
        Bucket(
            penalty=penalty,
            strength=strength,
            layer_group=group,
            lr_scale=scale,
            params=[params[n] for n in names],
            w0=[w0[n] for n in names] if PENALTIES[penalty].needs_w0 else [],
            fisher=[fisher[n] for n in names] if PENALTIES[penalty].needs_fisher else [],
        )
        for (penalty, strength, group, scale), names in keyed.items()
    ]


def penalty_names(buckets: list[Bucket]) -> list[str]:
    return sorted({b.penalty for b in buckets})


def penalty_per_group(
    buckets: list[Bucket], n_groups: int, eps: float, names: list[str]
) -> list[list[float]]:
    """The value of each penalty in ``names`` per layer group (strengths included)."""
    rows = {name: [0.0] * n_groups for name in names}
    for b in buckets:
        rows[b.penalty][b.layer_group] += float(b.value(eps))
    return [rows[name] for name in names]
