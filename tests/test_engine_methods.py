"""Automatic and staged fine-tuning inside real runs: LP-FT's probe stage leaves every
tensor but the classifier bit-identical and follows its two-stage schedule, surgical
fine-tuning moves one group and the head; each resumes bit-identically."""

import json
import math
from pathlib import Path

import h5py
import pytest
import torch
from conftest import fast_config
from safetensors.torch import load_file

from finetune import engine, rundir
from finetune.errors import ConfigError
from finetune.optim import stage_lr

HEAD = {"fc.weight", "fc.bias"}  # test_resnet's classifier
STEPS_PER_EPOCH = 5  # fast_config: 40 images in batches of 8


def _weights(run: Path, name: str = "final.safetensors") -> dict[str, torch.Tensor]:
    return load_file(str(run / name))


def _identical(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


class _Interrupt(Exception):
    pass


def _stop_at_step(n: int):
    def interrupt(event):
        if event["event"] == "step" and event["step"] >= n:
            raise _Interrupt

    return interrupt


def _with_state(run: Path) -> set[str]:
    """The tensors the optimizer has state (momentum) for in the run's last checkpoint."""
    saved = rundir.load_torch(run / "checkpoints" / "state.pt")["optimizer"]
    return {
        name
        for group in saved["param_groups"]
        for name, index in zip(group["param_names"], group["params"])
        if index in saved["state"]
    }


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A one-epoch pre-training run: initial weights whose BatchNorm biases are not zero."""
    run = tmp_path_factory.mktemp("methods") / "source"
    engine.train(fast_config("pretrain", epochs=1), run, command="t")
    return run


# LP-FT


@pytest.mark.parametrize("reg_mode", ["coupled", "decoupled"])
def test_the_probe_stage_trains_the_classifier_alone_then_the_body_moves(
    tmp_path, source, reg_mode
):
    run = tmp_path / "run"
    config = fast_config(
        init=str(source), lp_epochs=1, keep_every=1, l2sp="0.1", l2="0.01", reg_mode=reg_mode
    )
    engine.train(config, run, command="t")
    w0, w1 = _weights(run, "init.safetensors"), _weights(run)
    probed = _weights(run, "epochs/epoch1.safetensors")
    for key in w0:  # BatchNorm statistics and counters included
        if key in HEAD:
            assert not torch.equal(w0[key], probed[key]), key
        else:
            assert torch.equal(w0[key], probed[key]), key
    moved = [k for k in w0 if k not in HEAD and not torch.equal(w0[k], w1[k])]
    assert "layer1.0.conv1.weight" in moved and "bn1.running_mean" in moved
    assert json.loads((run / "config.json").read_text())["config"]["policy"]["lp_epochs"] == 1


def test_the_learning_rate_of_every_step_is_the_two_stage_schedule(tmp_path):
    config = fast_config(epochs=3, lp_epochs=1, lp_lr=0.2, lr=0.03, min_lr=0.001, warmup_epochs=0.4)
    engine.train(config, tmp_path / "run", command="t")
    with h5py.File(tmp_path / "run" / "run.h5") as f:
        logged = f["steps/lr"][:]
    # The probe: 5 steps on a cosine from 0.2 to 0. Fine-tuning: 10 steps, 2 of warm-up to
    # 0.03, then a cosine over the other 8 from 0.03 to 0.001.
    probe = [0.1 * (1 + math.cos(math.pi * t / 5)) for t in range(5)]
    warmup = [0.03 * (u + 1) / 2 for u in range(2)]
    cosine = [0.001 + 0.5 * 0.029 * (1 + math.cos(math.pi * u / 8)) for u in range(8)]
    assert logged.tolist() == pytest.approx(probe + warmup + cosine, rel=1e-12)


def test_the_step_schedule_counts_its_decays_from_the_first_fine_tuning_step():
    config = fast_config(epochs=4, lp_epochs=1, schedule="step", step_epochs=1, step_gamma=0.5)
    lrs = [stage_lr(config.optim, config.policy, t, 5, 20) for t in range(0, 20, 5)]
    assert lrs == [0.1, 0.01, 0.005, 0.0025]


@pytest.fixture(scope="module")
def lp_whole(tmp_path_factory, source) -> Path:
    run = tmp_path_factory.mktemp("lp") / "whole"
    engine.train(fast_config(**_lp_options(source)), run, command="t")
    return run


def _lp_options(source: Path) -> dict:
    return dict(
        init=str(source),
        lp_epochs=1,
        epochs=3,
        l2sp="0.1",
        lr_mult="1,1,1,1,0.5,2",
        checkpoint_every=3,
    )


@pytest.mark.parametrize("stop, head_only", [(4, True), (8, False)])  # checkpoints 3 and 6
def test_lp_ft_resumed_in_the_probe_or_the_fine_tuning_ends_bit_identical(
    tmp_path, source, lp_whole, stop, head_only
):
    run = tmp_path / "cut"
    with pytest.raises(_Interrupt):
        engine.train(fast_config(**_lp_options(source)), run, progress=_stop_at_step(stop))
    # In the probe only the head has momentum; frozen tensors were never touched.
    assert (_with_state(run) == HEAD) is head_only
    engine.resume(run)
    assert _identical(_weights(lp_whole), _weights(run))
    with h5py.File(lp_whole / "run.h5") as a, h5py.File(run / "run.h5") as b:
        assert (a["steps/lr"][:] == b["steps/lr"][:]).all()


def test_lp_ft_errors_are_one_line_naming_the_flags(tmp_path):
    with pytest.raises(ConfigError, match="--lp-epochs 2 must be less than --epochs 2"):
        fast_config(lp_epochs=2)
    with pytest.raises(ConfigError, match="--lp-lr must be positive"):
        fast_config(lp_epochs=1, lp_lr=0.0)
    with pytest.raises(ConfigError, match="--lp-epochs trains the head, which --freeze-groups 6"):
        engine.train(fast_config(lp_epochs=1, freeze_groups=6), tmp_path / "run", command="t")
    assert not (tmp_path / "run").exists()


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


# The resolved plan


def test_dry_run_shows_the_stages_and_the_surgical_groups(tmp_path, monkeypatch, capsys):
    from test_cli import run_cli

    code, stdout, _ = run_cli(
        monkeypatch,
        capsys,
        "finetune",
        "--dry-run",
        "--image-size",
        "16",
        "--epochs",
        "3",
        "--lp-epochs",
        "1",
        "--surgical",
        "2",
        "--out",
        str(tmp_path / "x"),
    )
    lines = stdout.strip().splitlines()
    assert code == 0 and not (tmp_path / "x").exists()
    frozen = [line.split()[-2] for line in lines[1:7]]
    assert frozen == ["yes", "yes", "no", "yes", "yes", "no"]
    assert lines[7].startswith("epoch 1: linear probe: only fc.weight, fc.bias train, lr 0.1")
    assert lines[8].startswith("epochs 2-3: fine-tuning as the table says")
    assert len(lines) == 9
