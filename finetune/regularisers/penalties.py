"""Parameter penalties, one registry: plain L2 toward zero and the SP family toward the
initial weights w0 (Li, Grandvalet, Davoine 2018).

Each penalty is defined by its value (for logging and for tests) and its gradient, both
over whole lists of tensors with fused ``torch._foreach_*`` kernels. The engine applies the
gradient either *coupled* (added to the parameters' gradients: exactly the gradient of the
penalty added to the loss) or *decoupled* (the weights move directly, AdamW-style). Values
are per unit strength; the strength (alpha or beta) multiplies them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from finetune.policy import ParamPlan

Tensors = list[torch.Tensor]


@dataclass(frozen=True)
class Penalty:
    """``value(w, w0, fisher, eps)`` -> scalar tensor; ``gradient(...)`` -> list like ``w``."""

    name: str
    needs_w0: bool
    value: Callable[[Tensors, Tensors, Tensors, float], torch.Tensor]
    gradient: Callable[[Tensors, Tensors, Tensors, float], Tensors]


PENALTIES: dict[str, Penalty] = {}


def register_penalty(name: str, *, needs_w0: bool, value: Callable, gradient: Callable) -> None:
    """Add a penalty to the registry: adding one is this call, not an edit of the loop."""
    if name in PENALTIES:
        raise ValueError(f"penalty {name!r} is registered twice")
    PENALTIES[name] = Penalty(name, needs_w0, value, gradient)


def _sum(values: Tensors) -> torch.Tensor:
    if not values:
        return torch.zeros((), dtype=torch.float64)
    return torch.stack([v.double() for v in values]).sum()


def _sq_norms(tensors: Tensors) -> Tensors:
    return [n * n for n in torch._foreach_norm(tensors)]


def _diff(w: Tensors, w0: Tensors) -> Tensors:
    return torch._foreach_sub(w, w0)


def _l2_value(w, w0, fisher, eps):
    return 0.5 * _sum(_sq_norms(w))


def _l2_gradient(w, w0, fisher, eps):
    return list(w)


def _l2sp_value(w, w0, fisher, eps):
    return 0.5 * _sum(_sq_norms(_diff(w, w0)))


def _l2sp_gradient(w, w0, fisher, eps):
    return _diff(w, w0)


def _fisher_value(w, w0, fisher, eps):
    d = _diff(w, w0)
    return 0.5 * _sum([(f * x * x).sum() for f, x in zip(fisher, d)])


def _fisher_gradient(w, w0, fisher, eps):
    return torch._foreach_mul(_diff(w, w0), fisher)


def _l1sp_value(w, w0, fisher, eps):
    d = _diff(w, w0)
    return _sum([(torch.sqrt(x * x + eps * eps) - eps).sum() for x in d])


def _l1sp_gradient(w, w0, fisher, eps):
    d = _diff(w, w0)
    root = torch._foreach_sqrt(torch._foreach_add(torch._foreach_mul(d, d), eps * eps))
    return torch._foreach_div(d, root)


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


def _gl_value(w, w0, fisher, eps):
    return _sum([(n - eps).sum() for n in _unit_norms(_diff(w, w0), eps)])


def _gl_gradient(w, w0, fisher, eps):
    d = _diff(w, w0)
    return torch._foreach_div(d, _unit_norms(d, eps))


register_penalty("l2", needs_w0=False, value=_l2_value, gradient=_l2_gradient)
register_penalty("l2sp", needs_w0=True, value=_l2sp_value, gradient=_l2sp_gradient)
register_penalty("l2sp_fisher", needs_w0=True, value=_fisher_value, gradient=_fisher_gradient)
register_penalty("l1sp", needs_w0=True, value=_l1sp_value, gradient=_l1sp_gradient)
register_penalty("gl_sp", needs_w0=True, value=_gl_value, gradient=_gl_gradient)


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
        if b.penalty == "l2":
            torch._foreach_add_(grads, b.data, alpha=b.strength)
        elif b.penalty == "l2sp":
            torch._foreach_add_(grads, b.data, alpha=b.strength)
            torch._foreach_add_(grads, b.w0, alpha=-b.strength)
        else:
            torch._foreach_add_(grads, b.gradient(eps), alpha=b.strength)


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
            keyed.setdefault(("l2", p.beta, p.group, p.lr_scale), []).append(p.name)
    return [
        Bucket(
            penalty=penalty,
            strength=strength,
            layer_group=group,
            lr_scale=scale,
            params=[params[n] for n in names],
            w0=[w0[n] for n in names] if PENALTIES[penalty].needs_w0 else [],
            fisher=[fisher[n] for n in names] if penalty == "l2sp_fisher" else [],
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
