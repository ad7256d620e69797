"""Parameter penalties against closed forms: gradients equal autograd of the explicit
penalty, and SGD under l2sp alpha plus l2 beta converges to alpha * w0 / (alpha + beta)."""

import pytest
import torch

from finetune.regularisers.penalties import PENALTIES, Bucket, add_to_gradients, shrink_weights

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
        fisher if kind == "l2sp_fisher" else [],
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


def test_every_registered_sp_penalty_is_selectable_with_sp():
    from finetune.config import SP_KINDS

    assert set(SP_KINDS) == set(PENALTIES) - {"l2"}
    assert all(PENALTIES[k].needs_w0 for k in SP_KINDS)
