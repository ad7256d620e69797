"""Initial weights: local files and runs, head replacement, mismatches, timm pre-trained
weights with the network stubbed at its boundary."""

import pytest
import timm
import torch
from safetensors.torch import save_file

from finetune.errors import (
    ConfigError,
    IncompatibleWeightsError,
    NetworkError,
    RunDirError,
    UnknownModelError,
)
from finetune.groups import layer_groups
from finetune.models import (
    check_input_size,
    classifier_keys,
    create_model,
    load_init,
    read_weights,
)


def _source_state(num_classes=20):
    torch.manual_seed(1)
    return timm.create_model("test_resnet", num_classes=num_classes).state_dict()


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_backbone_loaded_head_replaced_for_another_class_count(tmp_path, suffix):
    state = _source_state(20)
    path = tmp_path / f"w{suffix}"
    if suffix == ".pt":
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    torch.manual_seed(2)
    model = create_model("test_resnet", 7, 32)
    fresh_head = model.fc.weight.detach().clone()
    report = load_init(model, path)
    assert report.replaced_head == ["fc.bias", "fc.weight"]
    assert "(20, 96)" in report.head_note and "(7, 96)" in report.head_note
    assert torch.equal(model.fc.weight, fresh_head)
    assert torch.equal(model.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])
    assert torch.equal(model.conv1[1].running_mean, state["conv1.1.running_mean"])


def test_extra_checkpoint_keys_are_listed_not_dropped(tmp_path):
    state = _source_state()
    state["aux_head.weight"] = torch.zeros(3)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    report = load_init(create_model("test_resnet", 7, 32), path)
    assert report.unexpected == ["aux_head.weight"]
    assert any("aux_head.weight" in line for line in report.lines())


def test_wrong_architecture_names_the_first_mismatching_tensor(tmp_path):
    path = tmp_path / "vit.safetensors"
    save_file(timm.create_model("test_vit", num_classes=3, img_size=32).state_dict(), str(path))
    with pytest.raises(IncompatibleWeightsError, match="has no tensor 'conv1.0.weight'"):
        load_init(create_model("test_resnet", 3, 32), path)
    state = _source_state()
    state["layer1.0.conv1.weight"] = torch.zeros(1, 1, 1, 1)
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(IncompatibleWeightsError, match="'layer1.0.conv1.weight' has shape"):
        load_init(create_model("test_resnet", 3, 32), tmp_path / "bad.safetensors")


def test_unreadable_or_missing_weights_are_run_dir_errors(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(RunDirError, match="cannot read"):
        read_weights(tmp_path / "junk.safetensors")
    with pytest.raises(RunDirError, match="no such"):
        read_weights(tmp_path / "absent.pt")
    with pytest.raises(RunDirError, match="not a completed run"):
        read_weights(tmp_path)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": object()}, path)
    with pytest.raises(RunDirError, match="cannot read"):
        read_weights(path)


def test_unknown_model_names_the_model_flag():
    with pytest.raises(UnknownModelError) as raised:
        create_model("no_such_net", 3, 32)
    assert str(raised.value) == "unknown model 'no_such_net' (--model); see timm.list_models()"


def test_images_too_small_for_the_model_name_the_image_size_flag():
    model = create_model("test_convnext", 3, 16)
    with pytest.raises(ConfigError) as raised:
        check_input_size(model, "test_convnext", 16)
    message = str(raised.value)
    assert message.startswith("test_convnext cannot take 16px images (set --image-size): ")


def test_pretrained_offline_is_a_network_error(monkeypatch):
    import timm.models._hub as hub

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(hub, "hf_hub_download", offline)
    with pytest.raises(NetworkError, match="offline"):
        create_model("test_resnet", 3, 32, pretrained=True)


def test_pretrained_weights_load_through_timm_when_the_hub_answers(monkeypatch, tmp_path):
    import timm.models._hub as hub

    state = _source_state(1000)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    monkeypatch.setattr(hub, "hf_hub_download", lambda *a, **k: str(path))
    model = create_model("test_resnet", 4, 32, pretrained=True)
    assert torch.equal(model.layer2[0].conv1.weight, state["layer2.0.conv1.weight"])
    assert model.fc.weight.shape == (4, 96)


@pytest.mark.parametrize(
    "name, n_groups", [("test_resnet", 6), ("test_convnext", 6), ("test_vit", 8)]
)
def test_groups_cover_every_parameter_once_in_order(name, n_groups):
    model = create_model(name, 5, 32)
    groups = layer_groups(model)
    names = [n for g in groups for n in g.params]
    assert sorted(names) == sorted(n for n, _ in model.named_parameters())
    assert len(names) == len(set(names))
    assert len(groups) == n_groups
    assert groups[0].name == "stem" and groups[-1].name == "head"
    assert set(classifier_keys(model)) <= set(groups[-1].params)
