"""Weight-space paths (``landscape.geometry.paths``), the barrier formulas and BatchNorm
re-estimation (``finetune.evaluation.batchnorm``), each against an independent computation."""

import copy

import numpy as np
import pytest
import timm
import torch
from torch import nn

from finetune.errors import IncompatibleWeightsError
from finetune.evaluation.batchnorm import batchnorm_layers, reestimate_batchnorm
from landscape.geometry.barrier import barrier
from landscape.geometry.paths import (
    Line,
    filter_normalized_direction,
    plane_through_runs,
    random_plane,
)


def _net(num_classes: int = 5, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return timm.create_model("test_resnet", num_classes=num_classes)


def _state(model: nn.Module, stats_seed: int | None = None) -> dict[str, torch.Tensor]:
    """A copy of the model's state, with BatchNorm statistics of its own when asked."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if stats_seed is not None:
        g = torch.Generator().manual_seed(stats_seed)
        for k, v in state.items():
            if k.endswith("running_mean"):
                v.copy_(torch.randn(v.shape, generator=g))
            elif k.endswith("running_var"):
                v.copy_(torch.rand(v.shape, generator=g) + 0.5)
            elif k.endswith("num_batches_tracked"):
                v.fill_(stats_seed + 3)
    return state


def test_line_gives_a_and_b_exactly_and_the_mean_halfway():
    a, b = _state(_net(seed=0), 1), _state(_net(seed=1), 2)
    model = _net(seed=2)
    line = Line(model, a, b)
    line.set(0.0)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in a.items())
    line.set(1.0)
    for k, v in model.state_dict().items():
        expected = b[k] if v.is_floating_point() else a[k]  # integer buffers: A's
        assert torch.equal(v, expected), k
    line.set(0.5)
    for k, v in model.state_dict().items():
        if v.is_floating_point():
            mean = (a[k].double() + b[k].double()) / 2
            torch.testing.assert_close(v.double(), mean, rtol=0, atol=1e-6)
    # Moving back to an end after other points leaves nothing behind.
    line.set(0.0)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in a.items())


def test_line_moves_the_models_own_tensors_in_place():
    model = _net()
    weight = model.fc.weight
    line = Line(model, _state(model), _state(_net(seed=1)))
    line.set(1.0)
    assert model.fc.weight is weight and weight.data_ptr() == model.fc.weight.data_ptr()


def test_a_head_of_another_size_is_refused_naming_the_first_differing_tensor():
    a, b = _state(_net(5)), _state(_net(7))
    message = r"'fc\.weight'.*\(5, 96\) against \(7, 96\)"
    with pytest.raises(IncompatibleWeightsError, match=message):
        Line(_net(5), a, b, labels=("A", "B"))
    # Several mismatches: the first in A's order is named, whatever the others.
    b["conv1.0.weight"] = torch.zeros(1)
    with pytest.raises(IncompatibleWeightsError, match=r"'conv1\.0\.weight'"):
        Line(_net(5), a, b)
    missing = _state(_net(5))
    del missing["layer2.0.bn1.running_var"]
    with pytest.raises(IncompatibleWeightsError, match=r"B has no tensor 'layer2\.0\.bn1\.run"):
        Line(_net(5), a, missing, labels=("A", "B"))


def _parameter_vector(model: nn.Module, state: dict[str, torch.Tensor]) -> np.ndarray:
    names = [n for n, _ in model.named_parameters()]
    return np.concatenate([state[n].double().flatten().numpy() for n in names])


def test_plane_through_three_runs_recovers_their_coordinates_and_weights():
    model = _net()
    a, b, c = (_state(_net(seed=s), stats_seed=s + 10) for s in (0, 1, 2))
    plane, xy = plane_through_runs(model, a, b, c)
    va, vb, vc = (_parameter_vector(model, s) for s in (a, b, c))
    # Distances in the plane equal distances in parameter space (numpy, float64).
    (xa, ya), (xb, yb), (xc, yc) = xy
    assert (xa, ya, yb) == (0.0, 0.0, 0.0)
    assert xb == pytest.approx(np.linalg.norm(vb - va), rel=1e-9)
    assert np.hypot(xc, yc) == pytest.approx(np.linalg.norm(vc - va), rel=1e-9)
    assert np.hypot(xc - xb, yc) == pytest.approx(np.linalg.norm(vc - vb), rel=1e-9)
    # Setting each run's coordinates gives back its weights and floating buffers.
    for (x, y), state in zip(xy, (a, b, c)):
        plane.set(x, y)
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                torch.testing.assert_close(v, state[k], rtol=1e-5, atol=2e-5)


def test_filter_normalized_directions_follow_li_et_al():
    model = _net()
    state = _state(model)
    direction = filter_normalized_direction(model, state, torch.Generator().manual_seed(3))
    params = dict(model.named_parameters())
    for name, d in direction.items():
        w = state[name]
        if name in params and w.dim() > 1:
            torch.testing.assert_close(
                d.flatten(1).norm(dim=1), w.flatten(1).norm(dim=1), rtol=1e-5, atol=1e-6
            )
        else:  # biases, BatchNorm parameters and buffers do not move
            assert not d.any(), name
    again = filter_normalized_direction(model, state, torch.Generator().manual_seed(3))
    assert all(torch.equal(direction[k], again[k]) for k in direction)
    plane = random_plane(model, state, seed=0)
    plane.set(0.0, 0.0)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    plane.set(0.3, -0.2)
    assert torch.equal(model.layer1[0].bn1.running_var, state["layer1.0.bn1.running_var"])
    assert not torch.equal(model.fc.weight, state["fc.weight"])


class Quadratic(nn.Module):
    """Parameters whose 'loss' is the quadratic form ``w^T Q w + c^T w``."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(n))


@pytest.mark.parametrize("curvature", ["concave", "convex"])
def test_barrier_of_a_quadratic_loss_matches_its_closed_form(curvature):
    rng = np.random.default_rng(0)
    n = 12
    m = rng.standard_normal((n, n))
    q = -(m @ m.T) / n if curvature == "concave" else (m @ m.T) / n
    c = rng.standard_normal(n)
    wa, wb = rng.standard_normal(n), rng.standard_normal(n)
    model = Quadratic(n)
    line = Line(
        model,
        {"w": torch.tensor(wa, dtype=torch.float32)},
        {"w": torch.tensor(wb, dtype=torch.float32)},
    )
    alphas = np.linspace(0.0, 1.0, 101)
    values = []
    for alpha in alphas:
        line.set(alpha)
        w = model.w.detach().double().numpy()
        values.append(w @ q @ w + c @ w)
    found = barrier(alphas, np.array(values))

    # Closed form: along w(a) = wa + a d, L(a) - [(1 - a) L(0) + a L(1)] = -k a (1 - a)
    # with k = d^T Q d, so the height above the chord is -k/4 at a = 1/2 when k < 0 and
    # 0 (at the ends) when k > 0.
    d = wb - wa
    k = d @ q @ d
    loss = lambda w: w @ q @ w + c @ w  # noqa: E731
    l0, l1 = loss(wa), loss(wb)
    if curvature == "concave":
        assert k < 0
        assert found.linear == pytest.approx(-k / 4, rel=1e-4)
        assert found.linear_at == pytest.approx(0.5)
        # Peak above the mean of the ends: L(a) = l0 + a (l1 - l0) - k a (1 - a) is largest
        # at a* = 1/2 + (l1 - l0) / (-2k), if inside [0, 1].
        star = float(np.clip(0.5 + (l1 - l0) / (-2 * k), 0.0, 1.0))
        peak = l0 + star * (l1 - l0) - k * star * (1 - star)
        step = alphas[1]
        assert found.mean == pytest.approx(peak - (l0 + l1) / 2, abs=-k * step**2 + 1e-4)
        assert abs(found.mean_at - star) <= step / 2 + 1e-9
    else:
        assert k > 0
        assert found.linear == pytest.approx(0.0, abs=1e-4) and found.linear_at in (0.0, 1.0)
        assert found.mean == pytest.approx(abs(l1 - l0) / 2, rel=1e-4)


def test_barrier_needs_a_curve_from_zero_to_one():
    with pytest.raises(ValueError):
        barrier(np.array([0.0, 0.5]), np.array([1.0, 2.0]))


def _batches(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 3, 16, 16, generator=g) * 2 + 0.5 for n in (8, 8, 5)]


def test_reestimated_statistics_are_those_of_the_batchnorm_inputs_over_the_batches():
    model = _net().eval()
    Line(model, _state(_net(seed=3), 1), _state(_net(seed=4), 2)).set(0.3)  # a point between
    before = {k: v.clone() for k, v in model.named_parameters()}
    reference = copy.deepcopy(model)
    batches = _batches(1)
    assert reestimate_batchnorm(model, iter(batches)) == 3

    # Independently: capture every BatchNorm input of the same forward passes (BatchNorm
    # in train mode, the rest in eval mode) and take mean and unbiased variance over all.
    inputs: dict[str, list[torch.Tensor]] = {}
    hooks = []
    for name, module in reference.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.train()

            def grab(mod, args, name=name):
                inputs.setdefault(name, []).append(args[0].detach().double())

            hooks.append(module.register_forward_pre_hook(grab))
    with torch.no_grad():
        for x in batches:
            reference(x)
    for hook in hooks:
        hook.remove()
    layers = dict(model.named_modules())
    assert len(inputs) == len(batchnorm_layers(model)) > 0
    for name, chunks in inputs.items():
        x = torch.cat([c.transpose(0, 1).flatten(1) for c in chunks], dim=1)  # (C, all)
        bn = layers[name]
        torch.testing.assert_close(bn.running_mean.double(), x.mean(1), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(bn.running_var.double(), x.var(1), rtol=1e-5, atol=1e-6)
        assert int(bn.num_batches_tracked) == 3 and bn.momentum == 0.1
    # No weight moved, and every module is back in eval mode.
    assert all(torch.equal(before[k], v) for k, v in model.named_parameters())
    assert not any(m.training for m in model.modules())


def test_reestimation_is_repeatable_and_skipped_without_batchnorm():
    model = _net()
    reestimate_batchnorm(model, iter(_batches(2)))
    first = {k: v.clone() for k, v in model.state_dict().items()}
    model.layer1[0].bn1.running_mean.fill_(5.0)
    reestimate_batchnorm(model, iter(_batches(2)))
    assert all(torch.equal(first[k], v) for k, v in model.state_dict().items())

    def untouchable():
        raise AssertionError("a model without BatchNorm must not read the batches")
        yield

    plain = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    assert reestimate_batchnorm(plain, untouchable()) == 0
