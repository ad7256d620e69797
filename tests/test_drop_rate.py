"""--drop-rate: timm's dropout before the classifier, recorded in the run's config."""

import json

import pytest
import timm
import torch
from conftest import fast_config

from finetune import engine
from finetune.errors import ConfigError
from finetune.models import create_model
from finetune.runs import load_run


def _two_passes(model: torch.nn.Module, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Two forward passes of one batch; BatchNorm normalises both alike in either mode."""
    model.train(train)
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return model(x), model(x)


def test_a_drop_rate_drops_the_classifier_input_in_training_only():
    model = create_model("test_resnet", 10, 16, drop_rate=0.5)
    assert model.drop_rate == 0.5
    first, second = _two_passes(model, train=True)
    assert not torch.equal(first, second)
    assert torch.equal(*_two_passes(model, train=False))
    assert torch.equal(*_two_passes(create_model("test_resnet", 10, 16), train=True))


def test_no_drop_rate_builds_the_model_timm_builds_by_default():
    torch.manual_seed(3)
    ours = create_model("test_resnet", 10, 16, drop_rate=0.0)
    torch.manual_seed(3)
    timms = timm.create_model("test_resnet", num_classes=10)
    assert ours.drop_rate == timms.drop_rate == 0.0
    assert repr(ours) == repr(timms)
    theirs = timms.state_dict()
    assert all(torch.equal(v, theirs[k]) for k, v in ours.state_dict().items())


def test_the_run_records_its_drop_rate_and_trains_with_it(tmp_path):
    plain = engine.train(fast_config("pretrain", epochs=1), tmp_path / "plain", command="t")
    dropped = engine.train(
        fast_config("pretrain", epochs=1, drop_rate=0.5), tmp_path / "dropped", command="t"
    )
    record = json.loads((dropped.run / "config.json").read_text())
    assert record["config"]["model"]["drop_rate"] == 0.5
    assert load_run(dropped.run).model.drop_rate == 0.5  # the probes rebuild it as trained
    a, b = (load_run(r.run).model.state_dict() for r in (plain, dropped))
    assert not torch.equal(a["fc.weight"], b["fc.weight"])  # same seeds, dropout changed it


def test_a_drop_rate_outside_zero_to_one_is_refused_naming_the_flag():
    with pytest.raises(ConfigError, match=r"--drop-rate must lie in \[0, 1\), got 1.0"):
        fast_config(drop_rate=1.0)
