"""The diagonal Fisher against the closed form of logistic regression; where an L2-SP-Fisher
run takes its source data from."""

import pytest
import timm
import torch

from finetune import rundir
from finetune.regularisers.fisher import estimate_fisher
from finetune.regularisers.fisher_source import init_run_data


def test_matches_the_closed_form_of_softmax_regression():
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Linear(4, 3).double()
    x = torch.randn(12, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (12,), generator=g)
    fisher = estimate_fisher(
        model, [(x[:6], y[:6]), (x[6:], y[6:])], ["weight", "bias"], n_batches=2
    )
    with torch.no_grad():
        residual = torch.nn.functional.one_hot(y, 3).double() - model(x).softmax(1)
    expected_w = (residual[:, :, None] * x[:, None, :]).square().mean(0)
    expected_b = residual.square().mean(0)
    torch.testing.assert_close(fisher["weight"].double(), expected_w, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(fisher["bias"].double(), expected_b, rtol=1e-5, atol=1e-7)
    batch_mean_squared = (residual[:, :, None] * x[:, None, :]).mean(0).square()
    assert not torch.allclose(fisher["weight"].double(), batch_mean_squared, rtol=0.1)


def test_only_the_first_batches_count_and_the_model_is_untouched():
    model = timm.create_model("test_resnet", num_classes=5).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    batches = [
        (torch.randn(3, 3, 32, 32, generator=g), torch.randint(0, 5, (3,), generator=g))
        for _ in range(3)
    ]
    names = ["conv1.0.weight", "fc.weight"]  # fresh blocks start with a zeroed last BN
    one = estimate_fisher(model, batches[:1], names, n_batches=1)
    again = estimate_fisher(model, batches, names, n_batches=1)
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    for n in names:
        torch.testing.assert_close(one[n], again[n])
        assert one[n].shape == dict(model.named_parameters())[n].shape
        assert (one[n] >= 0).all() and one[n].sum() > 0
    sampled = estimate_fisher(
        model,
        batches,
        names,
        n_batches=3,
        labels="model",
        generator=torch.Generator().manual_seed(0),
    )
    assert sampled["fc.weight"].sum() > 0
    with pytest.raises(ValueError):
        estimate_fisher(model, batches, names, n_batches=1, labels="guess")


def test_sampled_labels_give_the_true_fisher_of_softmax_regression():
    """With y drawn from the model, E_y[(onehot(y) - p)_k^2] = p_k (1 - p_k)."""
    g = torch.Generator().manual_seed(3)
    model = torch.nn.Linear(4, 3).double()
    x = torch.randn(8, 4, generator=g, dtype=torch.float64)
    y = torch.zeros(8, dtype=torch.long)  # ignored when labels are sampled
    repeats = [(x.repeat(250, 1), y.repeat(250))] * 4  # each example drawn 1000 times

    def sampled(seed: int) -> dict:
        return estimate_fisher(
            model,
            repeats,
            ["weight"],
            n_batches=4,
            labels="model",
            generator=torch.Generator().manual_seed(seed),
        )

    with torch.no_grad():
        p = model(x).softmax(1)
    expected = ((p * (1 - p))[:, :, None] * x[:, None, :].square()).mean(0)
    first = sampled(0)["weight"].double()
    torch.testing.assert_close(first, expected, rtol=0.1, atol=1e-3)
    torch.testing.assert_close(sampled(0)["weight"].double(), first)
    assert not torch.equal(sampled(1)["weight"].double(), first)


def test_reads_no_batch_beyond_n_batches_and_rejects_unknown_names():
    model = torch.nn.Linear(2, 2)
    taken = []

    def batches():
        for i in range(5):
            taken.append(i)
            yield torch.randn(3, 2), torch.zeros(3, dtype=torch.long)

    estimate_fisher(model, batches(), ["weight"], n_batches=2)
    assert taken == [0, 1]
    with pytest.raises(ValueError, match="no such parameters"):
        estimate_fisher(model, batches(), ["weights"], n_batches=1)


def test_the_source_data_of_an_init_run_is_read_from_its_config(tmp_path):
    assert init_run_data(None) is None
    assert init_run_data(str(tmp_path / "weights.safetensors")) is None
    rundir.write_json(tmp_path / rundir.CONFIG, {"config": {"data": {"spec": "synthetic:far"}}})
    assert init_run_data(str(tmp_path)) == "synthetic:far"
