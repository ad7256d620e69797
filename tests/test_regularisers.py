"""Parameter penalties against closed forms: gradients equal autograd of the explicit
penalty, and SGD under l2sp alpha plus l2 beta converges to alpha * w0 / (alpha + beta);
the registry's declarations decide the --sp choices and what a bucket is given."""

from dataclasses import fields

import pytest
import torch

from finetune.config import RegConfig
from finetune.policy import ParamPlan
from finetune.regularisers import penalties
from finetune.regularisers.penalties import (
    PENALTIES,
    Bucket,
    Penalty,
    add_to_gradients,
    build_buckets,
    needs_fisher,
    register_penalty,
    shrink_weights,
)

EPS = 1e-3


def explicit(kind: str, w: list, w0: list, fisher: list) -> torch.Tensor:
    """Each penalty written out by hand, differentiable by autograd."""
    total = torch.zeros((), dtype=torch.float64)
    for x, x0, f in zip(w, w0, fisher):
        d = x - x0
        if kind == "l2":
            total = total + 0.5 * (x * x).sum()
        elif kind == "l2sp":
            total = total + 0.5 * (d * d).sum()
        elif kind == "l2sp_fisher":
            total = total + 0.5 * (f * d * d).sum()
        elif kind == "l1sp":
            total = total + (torch.sqrt(d * d + EPS**2) - EPS).sum()
        elif kind == "gl_sp":
            rows = d.reshape(d.shape[0], -1)
            total = total + (torch.sqrt((rows * rows).sum(1) + EPS**2) - EPS).sum()
    return total


def tensors(seed: int):
    g = torch.Generator().manual_seed(seed)
    shapes = [(4, 3, 3, 3), (5, 4), (6,)]
    w = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    w0 = [torch.randn(s, generator=g, dtype=torch.float64) for s in shapes]
    fisher = [torch.rand(s, generator=g, dtype=torch.float64) for s in shapes]
    return w, w0, fisher


@pytest.mark.parametrize("kind", sorted(PENALTIES))
def test_gradient_and_value_match_the_explicit_penalty(kind):
    w, w0, fisher = tensors(0)
    leaves = [x.clone().requires_grad_(True) for x in w]
    value = explicit(kind, leaves, w0, fisher)
    value.backward()
    penalty = PENALTIES[kind]
    ours = penalty.gradient(w, w0, fisher, EPS)
    for mine, ref in zip(ours, leaves):
        torch.testing.assert_close(mine, ref.grad)
    torch.testing.assert_close(penalty.value(w, w0, fisher, EPS), value.detach())


@pytest.mark.parametrize("kind", sorted(PENALTIES))
def test_coupled_application_adds_strength_times_the_gradient(kind):
    w, w0, fisher = tensors(1)
    params = [torch.nn.Parameter(x.clone()) for x in w]
    base = [torch.randn_like(x) for x in w]
    for p, g in zip(params, base):
        p.grad = g.clone()
    bucket = Bucket(
        kind,
        0.3,
        0,
        1.0,
        params,
        w0 if PENALTIES[kind].needs_w0 else [],
        fisher if PENALTIES[kind].needs_fisher else [],
    )
    add_to_gradients([bucket], EPS)
    leaves = [x.clone().requires_grad_(True) for x in w]
    (0.3 * explicit(kind, leaves, w0, fisher)).backward()
    for p, g, ref in zip(params, base, leaves):
        torch.testing.assert_close(p.grad, g + ref.grad)


@pytest.mark.parametrize("mode", ["coupled", "decoupled"])
def test_sgd_under_l2sp_and_l2_converges_to_the_closed_form(mode):
    alpha, beta, lr = 0.3, 0.1, 0.5
    g = torch.Generator().manual_seed(2)
    w0 = [torch.randn(7, 3, generator=g, dtype=torch.float64)]
    params = [torch.nn.Parameter(torch.randn(7, 3, generator=g, dtype=torch.float64))]
    buckets = [
        Bucket("l2sp", alpha, 0, 1.0, params, w0, []),
        Bucket("l2", beta, 0, 1.0, params, [], []),
    ]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    for _ in range(400):
        params[0].grad = torch.zeros_like(params[0])  # zero data loss
        if mode == "coupled":
            add_to_gradients(buckets, EPS)
        else:
            shrink_weights(buckets, lr, EPS)
        opt.step()
    torch.testing.assert_close(params[0].detach(), alpha * w0[0] / (alpha + beta))


def test_sp_choices_are_the_registered_penalties_toward_w0():
    sp = next(f for f in fields(RegConfig) if f.name == "sp")
    # Li, Grandvalet, Davoine 2018: L2-SP and its variants L2-SP-Fisher, L1-SP, GL-SP.
    assert set(sp.metadata["choices"]) == {"l2sp", "l2sp_fisher", "l1sp", "gl_sp"}
    assert [name for name in sp.metadata["choices"] if needs_fisher(name)] == ["l2sp_fisher"]
    assert not PENALTIES["l2"].needs_w0 and not PENALTIES["l2"].needs_fisher


def test_a_new_penalty_is_one_decorated_class_and_gets_what_it_declares(monkeypatch):
    monkeypatch.setattr(penalties, "PENALTIES", dict(PENALTIES))

    @register_penalty("fisher_l2", needs_w0=False, needs_fisher=True)
    class FisherL2(Penalty):
        """sum F * w^2 / 2: needs the Fisher, not w0."""

        def value(self, w, w0, fisher, eps):
            return 0.5 * sum((f * x * x).sum() for f, x in zip(fisher, w))

        def gradient(self, w, w0, fisher, eps):
            return [f * x for f, x in zip(fisher, w)]

    model = torch.nn.Linear(3, 2)
    names = [n for n, _ in model.named_parameters()]
    plans = [ParamPlan(n, 0, True, False, 1.0, alpha=0.5, beta=0.0) for n in names]
    w0 = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    fisher = {n: torch.full_like(p, 2.0) for n, p in model.named_parameters()}
    (bucket,) = build_buckets(model, plans, w0, fisher, "fisher_l2")
    assert needs_fisher("fisher_l2") and bucket.w0 == [] and len(bucket.fisher) == len(names)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    add_to_gradients([bucket], EPS)
    for p in model.parameters():  # 0.5 * d/dw (2 w^2 / 2) = w
        torch.testing.assert_close(p.grad, p.detach())


def test_registering_a_name_twice_is_refused(monkeypatch):
    monkeypatch.setattr(penalties, "PENALTIES", dict(PENALTIES))
    with pytest.raises(ValueError, match="registered twice"):
        register_penalty("l2sp", needs_w0=True)(type("Again", (penalties.L2SP,), {}))
