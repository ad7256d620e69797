"""DELTA and BSS against hand computations, the feature hooks, and runs using them."""

import pytest
import timm
import torch
from conftest import fast_config

from finetune import engine
from finetune.errors import ConfigError
from finetune.regularisers.feature_terms import (
    FeatureCapture,
    FeatureTerms,
    bss_penalty,
    channel_attention,
    delta_penalty,
    feature_modules,
)


def test_delta_is_half_the_squared_distance_and_only_moves_the_fine_tuned_features():
    g = torch.Generator().manual_seed(0)
    mine = {
        "a": torch.randn(2, 3, 4, 4, generator=g, requires_grad=True),
        "b": torch.randn(2, 5, generator=g, requires_grad=True),
    }
    ref = {
        "a": torch.randn(2, 3, 4, 4, generator=g, requires_grad=True),
        "b": torch.randn(2, 5, generator=g, requires_grad=True),
    }
    value = delta_penalty(mine, ref)
    expected = sum(0.5 * ((mine[k] - ref[k]) ** 2).sum() for k in mine)
    torch.testing.assert_close(value, expected)
    value.backward()
    assert mine["a"].grad is not None and ref["a"].grad is None
    assert float(delta_penalty(ref, ref).detach()) == 0.0


def test_delta_with_attention_matches_the_weighted_formula():
    g = torch.Generator().manual_seed(1)
    f, f0 = torch.randn(2, 3, 2, 5, generator=g), torch.randn(2, 3, 2, 5, generator=g)
    a = torch.tensor([0.2, 0.3, 0.5])
    value = delta_penalty({"x": f}, {"x": f0}, {"x": a})
    by_hand = sum(
        0.5 * 3 * a[c] * ((f[n, c] - f0[n, c]) ** 2).sum() / 10 for n in range(2) for c in range(3)
    )
    torch.testing.assert_close(value, by_hand)


def test_bss_is_the_smallest_squared_singular_values():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(8, 5, generator=g, dtype=torch.float64)
    eigen = torch.linalg.eigvalsh(x.T @ x)  # ascending: the squared singular values
    torch.testing.assert_close(bss_penalty(x, k=2), eigen[:2].sum().float(), rtol=1e-5, atol=1e-6)
    diagonal = torch.diag(torch.tensor([3.0, 2.0, 0.5]))
    assert float(bss_penalty(diagonal, k=1)) == pytest.approx(0.25)


def test_capture_of_timm_features_and_hook_removal():
    model = timm.create_model("test_resnet", num_classes=4)
    names = feature_modules(model)
    assert names == ["layer1", "layer2", "layer3", "layer4"]
    capture = FeatureCapture(model, names, penultimate=True)
    model(torch.randn(2, 3, 32, 32))
    assert capture.outputs["layer4"].shape[:2] == (2, 96)
    assert capture.outputs["penultimate"].shape == (2, 96)
    capture.remove()
    assert not model.layer1._forward_hooks and not model.fc._forward_pre_hooks


def test_delta_on_a_model_without_timm_features_names_the_delta_flag():
    with pytest.raises(ConfigError) as raised:
        feature_modules(torch.nn.Sequential(torch.nn.Linear(2, 2)))
    assert str(raised.value).startswith("--delta needs feature maps, and Sequential lists no ")


def test_channel_attention_is_a_distribution_per_layer():
    model = timm.create_model("test_resnet", num_classes=3).eval()
    g = torch.Generator().manual_seed(3)
    batches = [(torch.randn(6, 3, 32, 32, generator=g), torch.randint(0, 3, (6,), generator=g))]
    weights = channel_attention(model, ["layer3", "layer4"], batches, 1, probe_steps=5)
    capture = FeatureCapture(model, ["layer3", "layer4"])
    model(batches[0][0])
    for name in ("layer3", "layer4"):
        width = capture.outputs[name].shape[1]
        assert weights[name].shape == (width,) and (weights[name] >= 0).all()
        assert float(weights[name].sum()) == pytest.approx(1.0, rel=1e-5)


def test_feature_terms_are_zero_at_the_start_for_delta():
    model = timm.create_model("test_resnet", num_classes=3).eval()
    terms = FeatureTerms(model, delta=1.0, bss=0.0, bss_k=1)
    x = torch.randn(4, 3, 32, 32)
    model(x)
    assert float(terms.loss(x)) == 0.0


@pytest.mark.parametrize(
    "extra", [{"delta": 0.01}, {"delta": 0.01, "delta_attention": True}, {"bss": 0.001}]
)
def test_runs_with_feature_regularisers(tmp_path, source_run, extra):
    config = fast_config(init=str(source_run), fisher_batches=1, **extra)
    assert engine.train(config, tmp_path / "run", command="t").status == "completed"
