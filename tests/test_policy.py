"""Layerwise policies: learning rates against timm's own layer decay, strengths per
group, every parameter in exactly one group, regularised kinds."""

import pytest
import timm
from timm.optim._param_groups import param_groups_layer_decay

from finetune.config import PolicyConfig, RegConfig, build_config
from finetune.errors import ConfigError
from finetune.groups import layer_groups
from finetune.models import classifier_keys
from finetune.optim import parameter_groups
from finetune.policy import lr_scales, plan_parameters


def model_of(name):
    kwargs = {"img_size": 32, "reg_tokens": 2} if "vit" in name else {}
    return timm.create_model(name, num_classes=5, **kwargs)


def plans_of(model, reg=RegConfig(), policy=PolicyConfig(), has_init=True):
    return plan_parameters(
        model, layer_groups(model), reg, policy, has_init=has_init, head=set(classifier_keys(model))
    )


@pytest.mark.parametrize("name", ["test_resnet", "test_vit", "test_convnext"])
def test_lr_decay_matches_timms_param_groups_layer_decay(name):
    model = model_of(name)
    ours = lr_scales(model, layer_groups(model), PolicyConfig(lr_decay=0.7))
    theirs = {}
    for group in param_groups_layer_decay(model, layer_decay=0.7):
        ids = {id(p) for p in group["params"]}
        for n, p in model.named_parameters():
            if id(p) in ids:
                theirs[n] = group["lr_scale"]
    assert ours.keys() == theirs.keys()
    for n in ours:
        assert ours[n] == pytest.approx(theirs[n]), n
    assert len(set(ours.values())) > 2


@pytest.mark.parametrize("name", ["test_resnet", "test_vit"])
def test_every_parameter_lands_in_exactly_one_optimiser_group(name):
    model = model_of(name)
    groups = parameter_groups(model, plans_of(model, policy=PolicyConfig(lr_decay=0.5)))
    names = [n for g in groups for n in g["param_names"]]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())
    assert len(names) == len(set(names))
    if "vit" in name:
        assert "reg_token" in names and "cls_token" in names


def test_lr_mult_per_group_and_its_length_is_checked():
    model = model_of("test_resnet")
    scales = lr_scales(model, layer_groups(model), PolicyConfig(lr_mult=(0, 0.1, 0.2, 0.3, 0.4, 1)))
    assert scales["conv1.0.weight"] == 0 and scales["layer3.0.conv1.weight"] == 0.3
    assert scales["fc.weight"] == 1
    with pytest.raises(ConfigError, match="--lr-mult has 2 values but the model has 6"):
        lr_scales(model, layer_groups(model), PolicyConfig(lr_mult=(1, 2)))


def test_strengths_follow_the_official_l2sp_kinds_and_the_head_takes_l2_only():
    model = model_of("test_resnet")
    reg = build_config("finetune", {}, {"preset": "l2sp"}).reg
    plans = {p.name: p for p in plans_of(model, reg)}
    conv, bn, head = (
        plans["layer2.0.conv1.weight"],
        plans["layer2.0.bn1.weight"],
        plans["fc.weight"],
    )
    assert (conv.transferred, conv.alpha, conv.beta) == (True, 0.1, 0.0)
    assert (bn.alpha, bn.beta) == (0.0, 0.0)  # norm layers are not penalised by default
    assert (head.transferred, head.alpha, head.beta) == (False, 0.0, 0.01)
    assert plans["fc.bias"].beta == 0.0
    everything = {p.name: p for p in plans_of(model, RegConfig(reg_params="all", l2sp=(0.2,)))}
    assert everything["layer2.0.bn1.weight"].alpha == 0.2
    assert everything["fc.bias"].beta == 5e-4


def test_per_group_lists_and_transfer_and_freeze_groups():
    model = model_of("test_resnet")
    reg = RegConfig(l2sp=(0.1, 0.1, 0.05, 0.0, 0.0, 0.0), l2=(0.0, 0.0, 0.0, 1e-3, 1e-3, 1e-3))
    plans = {
        p.name: p for p in plans_of(model, reg, PolicyConfig(transfer_groups=3, freeze_groups=1))
    }
    assert plans["conv1.0.weight"].frozen and not plans["layer1.0.conv1.weight"].frozen
    assert plans["layer2.0.conv1.weight"].alpha == 0.05
    assert not plans["layer3.0.conv1.weight"].transferred
    assert plans["layer3.0.conv1.weight"].alpha == 0.0
    assert plans["layer3.0.conv1.weight"].beta == 1e-3
    with pytest.raises(ConfigError, match="--l2sp has 2 values"):
        plans_of(model, RegConfig(l2sp=(0.1, 0.2)))
    with pytest.raises(ConfigError, match="needs initial weights"):
        plans_of(model, policy=PolicyConfig(transfer_groups=2), has_init=False)


def test_without_initial_weights_everything_is_new_and_takes_l2_only():
    model = model_of("test_resnet")
    plans = plans_of(model, RegConfig(l2sp=(0.1,)), has_init=False)
    assert not any(p.transferred or p.alpha for p in plans)
