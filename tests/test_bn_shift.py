"""The distance of a target's BatchNorm input statistics from the running statistics,
against a hand computation and against torch's Gaussian KL divergence."""

import pytest
import torch
from torch import nn

from probes.bn_shift import BatchNormInputs, symmetric_kl


def test_symmetric_kl_is_the_sum_of_both_gaussian_kl_divergences():
    g = torch.Generator().manual_seed(0)
    mean_p, mean_q = torch.randn(5, generator=g), torch.randn(5, generator=g)
    var_p, var_q = torch.rand(5, generator=g) + 0.1, torch.rand(5, generator=g) + 0.1
    p = torch.distributions.Normal(mean_p, var_p.sqrt())
    q = torch.distributions.Normal(mean_q, var_q.sqrt())
    expected = torch.distributions.kl_divergence(p, q) + torch.distributions.kl_divergence(q, p)
    torch.testing.assert_close(symmetric_kl(mean_p, var_p, mean_q, var_q), expected)


def test_one_batchnorm_layer_by_hand():
    bn = nn.BatchNorm2d(2, eps=0.0)
    bn.running_mean.copy_(torch.tensor([0.0, 2.0]))
    bn.running_var.copy_(torch.tensor([1.0, 8.0]))
    model = nn.Sequential(nn.Identity(), bn).eval()
    inputs = BatchNormInputs(model)
    with inputs:
        # two batches of one 1x1 image: channel 0 sees 1 and 3, channel 1 sees 0 and 4
        model(torch.tensor([1.0, 0.0]).view(1, 2, 1, 1))
        model(torch.tensor([3.0, 4.0]).view(1, 2, 1, 1))
    model(torch.zeros(1, 2, 1, 1))  # outside the context: not counted
    assert inputs.names == ["1"]
    mean, var = inputs.moments(0)
    torch.testing.assert_close(mean, torch.tensor([2.0, 2.0], dtype=torch.float64))
    torch.testing.assert_close(var, torch.tensor([2.0, 8.0], dtype=torch.float64))
    # channel 0: N(2, 2) against N(0, 1): ((2 - 1)^2 + 2^2 (2 + 1)) / (2 * 2 * 1) = 13/4;
    # channel 1 matches its running statistics: 0. The mean over channels: 13/8.
    assert inputs.distances() == pytest.approx([13 / 8])


def test_blocks_give_the_statistics_without_each_block():
    bn = nn.BatchNorm2d(3)
    bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
    bn.running_var.copy_(torch.tensor([1.0, 2.0, 0.5]))
    model = nn.Sequential(nn.Identity(), bn).eval()
    x = torch.randn(11, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    inputs = BatchNormInputs(model, blocks=3)
    with inputs:
        model(x[:4])  # examples 0-3 go to blocks 0, 1, 2, 0; then 4-10 continue the deal
        model(x[4:])
    for block in range(3):
        kept = x[torch.arange(11) % 3 != block].double().transpose(0, 1).flatten(1)
        mean, var = inputs.moments(0, without=block)
        torch.testing.assert_close(mean, kept.mean(1))
        torch.testing.assert_close(var, kept.var(1))
    everything = x.double().transpose(0, 1).flatten(1)
    mean, var = inputs.moments(0)
    torch.testing.assert_close(mean, everything.mean(1))
    torch.testing.assert_close(var, everything.var(1))
    assert inputs.distances(without=1) != inputs.distances()
