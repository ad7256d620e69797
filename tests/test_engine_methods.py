"""Automatic and staged fine-tuning inside real runs: surgical fine-tuning moves one group
and the head."""

from pathlib import Path

import pytest
import torch
from conftest import fast_config
from safetensors.torch import load_file

from finetune import engine
from finetune.errors import ConfigError


def _weights(run: Path, name: str = "final.safetensors") -> dict[str, torch.Tensor]:
    return load_file(str(run / name))


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A one-epoch pre-training run: initial weights whose BatchNorm biases are not zero."""
    run = tmp_path_factory.mktemp("methods") / "source"
    engine.train(fast_config("pretrain", epochs=1), run, command="t")
    return run


# Surgical fine-tuning


def test_surgical_fine_tuning_moves_only_its_group_and_the_head(tmp_path, source):
    run = tmp_path / "run"
    engine.train(fast_config(init=str(source), surgical=2, lr=0.05), run, command="t")
    w0, w1 = _weights(run, "init.safetensors"), _weights(run)
    trained = ("layer2.", "fc.")  # group 2 of test_resnet (stem, layer1-4, head)
    for key in w0:
        if key.startswith(trained) and key.endswith(("weight", "running_mean")):
            assert not torch.equal(w0[key], w1[key]), key
        elif not key.startswith(trained):
            assert torch.equal(w0[key], w1[key]), key


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(surgical=-1), "--surgical must be >= 0, got -1"),
        (dict(surgical=1, freeze_groups=2), "give either --surgical or --freeze-groups"),
    ],
)
def test_surgical_options_are_checked_in_one_line(options, message):
    with pytest.raises(ConfigError, match=message):
        fast_config(**options)


@pytest.mark.parametrize("group", [5, 9])
def test_surgical_refuses_the_head_and_groups_beyond_it(tmp_path, group):
    with pytest.raises(ConfigError, match=rf"--surgical {group} is not a body group: .* 0-4"):
        engine.train(fast_config(surgical=group), tmp_path / "run", command="t")
    assert not (tmp_path / "run").exists()
