"""Activation capture reads the representations it promises, one batch at a time."""

import pytest
import torch

from finetune.errors import ConfigError
from finetune.models import create_model
from probes.activations import ActivationCapture, all_layers, group_layers, select_layers


@pytest.fixture
def resnet():
    return create_model("test_resnet", 5, 32).eval()


def test_group_representations_are_what_each_group_hands_on(resnet):
    x = torch.randn(4, 3, 32, 32)
    layers = group_layers(resnet)
    assert [layer.name for layer in layers] == [
        "stem", "layer1.0", "layer2.0", "layer3.0", "layer4.0", "head"
    ]
    with torch.no_grad(), ActivationCapture(resnet, layers) as capture:
        logits = resnet(x)
        features = capture.take()
        stem = resnet.maxpool(resnet.act1(resnet.bn1(resnet.conv1(x))))
        after_layer2 = resnet.layer2(resnet.layer1(stem))
        pooled = resnet.global_pool(resnet.layer4(resnet.layer3(after_layer2)))
    assert torch.equal(features[0], stem.flatten(1))
    assert torch.equal(features[2], after_layer2.flatten(1))
    assert torch.allclose(features[4], pooled.flatten(1))
    assert torch.equal(features[5], logits)


def test_mean_pooling_averages_positions_and_tokens(resnet):
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad(), ActivationCapture(resnet, group_layers(resnet), "mean") as capture:
        resnet(x)
        stem = capture.take()[0]
        expected = resnet.maxpool(resnet.act1(resnet.bn1(resnet.conv1(x)))).mean((2, 3))
    assert torch.allclose(stem, expected)
    vit = create_model("test_vit", 5, 160).eval()
    with torch.no_grad(), ActivationCapture(vit, group_layers(vit), "mean") as capture:
        vit(torch.randn(2, 3, 160, 160))
        tokens = capture.take()[1]
    assert tokens.shape == (2, vit.embed_dim)


def test_every_group_of_other_architectures_is_captured():
    for name, size in [("test_vit", 160), ("test_convnext", 32), ("test_efficientnet", 32)]:
        model = create_model(name, 5, size).eval()
        layers = group_layers(model)
        with torch.no_grad(), ActivationCapture(model, layers) as capture:
            model(torch.randn(2, 3, size, size))
            features = capture.take()
        assert len(features) == len(layers) and all(f.shape[0] == 2 for f in features)


def test_capture_keeps_only_the_last_batch_and_removes_its_hooks(resnet):
    layers = all_layers(resnet)
    assert len(layers) == sum(
        1 for _, m in resnet.named_modules() if any(True for _ in m.parameters(recurse=False))
    )
    with torch.no_grad(), ActivationCapture(resnet, layers) as capture:
        resnet(torch.randn(2, 3, 32, 32))
        resnet(torch.randn(5, 3, 32, 32))
        assert all(f.shape[0] == 5 for f in capture.take())
        with pytest.raises(RuntimeError, match="no activation"):
            capture.take()
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in resnet.modules())


def test_named_layers_and_unknown_names(resnet):
    assert [layer.name for layer in select_layers(resnet, "layer1, fc")] == ["layer1", "fc"]
    with pytest.raises(ConfigError, match="no module 'layer9'"):
        select_layers(resnet, "layer9")
