"""Automatic and staged fine-tuning inside real runs: LP-FT's probe stage leaves every
tensor but the classifier bit-identical and follows its two-stage schedule, surgical
fine-tuning moves one group and the head, Auto-RGN's scales equal a hand computation and
its measurement changes nothing else; each resumes bit-identically."""

import itertools
import json
import math
from pathlib import Path

import h5py
import pytest
import torch
import torch.nn.functional as F
from conftest import fast_config
from safetensors.torch import load_file

from finetune import engine, rundir
from finetune.config import build_config
from finetune.data.loader import epoch_order
from finetune.engine import loop
from finetune.engine.auto_lr import rgn_scales
from finetune.engine.setup import build_setup
from finetune.engine.stages import enter
from finetune.errors import ConfigError
from finetune.models import create_model
from finetune.optim import stage_lr

HEAD = {"fc.weight", "fc.bias"}  # test_resnet's classifier


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


def _stop_at_epoch_end(epoch: int):
    def interrupt(event):
        if event["event"] == "epoch" and event["epoch"] == epoch:
            raise _Interrupt  # before that epoch's checkpoint: resumes from the one before

    return interrupt


def _cut_and_resume(config, run: Path, stop) -> Path:
    with pytest.raises(_Interrupt):
        engine.train(config, run, progress=stop, command="t")
    engine.resume(run)
    return run


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


# Auto-RGN


def _hand_rgn(config, run: Path) -> dict[str, float]:
    """||grad|| / ||w|| of the mean cross-entropy on the first epoch's first batches,
    averaged over them and divided by the largest, on a fresh model holding the run's w0."""
    model = create_model("test_resnet", 10, 16)
    model.load_state_dict(_weights(run, "init.safetensors"))
    model.train()
    data = build_setup(config, for_training=False)  # the images and their preparation
    images, labels = data.train_set.tensors()
    order = epoch_order(len(images), config.train.stream_seed("order"), 0)
    ratios: dict[str, list[float]] = {}
    for batch in order.split(8)[: config.policy.rgn_batches]:
        loss = F.cross_entropy(model(data.eval_prep(images[batch])), labels[batch])
        names, params = zip(*model.named_parameters())
        for name, p, g in zip(names, params, torch.autograd.grad(loss, params)):
            ratios.setdefault(name, []).append(float(g.norm() / p.detach().norm()))
    means = {name: sum(r) / len(r) for name, r in ratios.items()}
    top = max(means.values())
    return {name: m / top for name, m in means.items()}


def test_rgn_scales_equal_a_hand_computation_and_the_largest_trains_at_the_base_lr(
    tmp_path, source
):
    run = tmp_path / "run"
    config = fast_config(init=str(source), epochs=1, auto_lr="rgn", rgn_batches=3)
    engine.train(config, run, command="t")
    expected = _hand_rgn(config, run)
    groups = json.loads((run / "config.json").read_text())["groups"]
    with h5py.File(run / "run.h5") as f:
        recorded, last_lr = f["rgn/scale"][:], f["steps/lr"][-1]
    assert recorded.shape == (1, len(groups))
    means = [sum(expected[n] for n in g["params"]) / len(g["params"]) for g in groups]
    assert recorded[0].tolist() == pytest.approx(means, rel=1e-5)
    saved = rundir.load_torch(run / "checkpoints" / "state.pt")["optimizer"]["param_groups"]
    assert all(len(g["param_names"]) == 1 for g in saved)  # one group per tensor
    scales = {g["param_names"][0]: g["lr_scale"] for g in saved}
    assert scales == pytest.approx(expected, rel=1e-5)
    largest = max(expected, key=expected.get)
    top = next(g for g in saved if g["param_names"] == [largest])
    assert top["lr_scale"] == 1.0 and top["lr"] == last_lr


def test_the_rgn_measurement_leaves_weights_statistics_gradients_and_rng_alone(source):
    config = fast_config(init=str(source), auto_lr="rgn", freeze_groups=1)
    s = build_setup(config, for_training=False)
    stage = s.stages[-1]
    enter(stage, s.model)
    s.model.get_parameter("fc.bias").data.zero_()  # a norm of 0: no ratio, scale 1
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    marked = s.model.get_parameter("layer4.0.conv1.weight")
    marked.grad = torch.ones_like(marked)
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    order = epoch_order(len(s.train_set), 0, 0)

    def measure():
        batches = itertools.islice(enumerate(s.train_batches.iterate(order, 8)), 2)
        return rgn_scales(s, stage, batches, seed=5)

    scales = measure()
    assert _identical(before, s.model.state_dict())
    assert torch.equal(torch.get_rng_state(), rng)
    grads = {n: p.grad for n, p in s.model.named_parameters()}
    assert torch.equal(grads.pop("layer4.0.conv1.weight"), torch.ones_like(marked))
    assert all(g is None for g in grads.values())
    assert set(scales) == set(stage.trainable) and not any(n.startswith("conv1") for n in scales)
    assert scales["fc.bias"] == 1.0 and max(scales.values()) == 1.0
    assert 0 < min(scales.values()) < 1
    assert measure() == scales


def test_a_run_whose_rgn_scales_are_all_one_is_the_run_without_auto_lr(
    tmp_path, source, monkeypatch
):
    """The measurement runs in full, but every scale is replaced by 1: what is left of
    Auto-RGN must be exactly training without it."""

    def measured_then_one(*args, **kwargs):
        return dict.fromkeys(rgn_scales(*args, **kwargs), 1.0)

    monkeypatch.setattr(loop, "rgn_scales", measured_then_one)
    options = dict(init=str(source), lr_mult="0.5,1,1,1,1,2", l2sp="0.1", epochs=2)
    engine.train(fast_config(**options, auto_lr="rgn"), tmp_path / "rgn", command="t")
    engine.train(fast_config(**options), tmp_path / "plain", command="t")
    assert _identical(_weights(tmp_path / "rgn"), _weights(tmp_path / "plain"))


@pytest.fixture(scope="module")
def rgn_whole(tmp_path_factory, source) -> Path:
    run = tmp_path_factory.mktemp("rgn") / "whole"
    engine.train(fast_config(**_rgn_options(source)), run, command="t")
    return run


def _rgn_options(source: Path) -> dict:
    return dict(init=str(source), auto_lr="rgn", lr_mult="0.5,1,1,1,1,2", epochs=3)


@pytest.mark.parametrize(
    "extra, stop",
    [
        (dict(checkpoint_every=3), _stop_at_step(8)),  # from step 6, within epoch 2
        ({}, _stop_at_epoch_end(2)),  # from the end of epoch 1: epoch 2 measured again
    ],
    ids=["within-an-epoch", "at-an-epoch-end"],
)
def test_auto_rgn_resumed_ends_bit_identical(tmp_path, source, rgn_whole, extra, stop):
    run = _cut_and_resume(fast_config(**_rgn_options(source), **extra), tmp_path / "cut", stop)
    assert _identical(_weights(rgn_whole), _weights(run))
    with h5py.File(rgn_whole / "run.h5") as a, h5py.File(run / "run.h5") as b:
        assert a["rgn/scale"].shape == (3, 6)
        assert (a["rgn/scale"][:] == b["rgn/scale"][:]).all()


def test_auto_rgn_with_decoupled_penalties_is_refused():
    with pytest.raises(ConfigError, match="--auto-lr rgn needs --reg-mode coupled"):
        build_config("finetune", {}, {"auto_lr": "rgn", "reg_mode": "decoupled"})


def test_a_vit_without_batchnorm_takes_the_three_methods_at_once(tmp_path):
    """test_vit: no BatchNorm, no buffer; its head group is the classifier alone."""
    run = tmp_path / "run"
    config = fast_config(
        model="test_vit", epochs=2, lp_epochs=1, surgical=3, auto_lr="rgn", keep_every=1
    )
    engine.train(config, run, command="t")
    w0, w1 = _weights(run, "init.safetensors"), _weights(run)
    probed = _weights(run, "epochs/epoch1.safetensors")
    assert {k for k in w0 if not torch.equal(w0[k], probed[k])} == {"head.weight", "head.bias"}
    trained = ("blocks.2.", "head.")  # group 3 (0 is the stem)
    assert not torch.equal(w0["blocks.2.mlp.fc1.weight"], w1["blocks.2.mlp.fc1.weight"])
    assert all(k.startswith(trained) for k in w0 if not torch.equal(w0[k], w1[k]))
    with h5py.File(run / "run.h5") as f:
        measured = ~torch.from_numpy(f["rgn/scale"][:]).isnan()
    assert measured.tolist() == [
        [False] * 7 + [True],  # the probe: the head alone
        [False, False, False, True, False, False, False, True],  # group 3 and the head
    ]


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
        "--auto-lr",
        "rgn",
        "--out",
        str(tmp_path / "x"),
    )
    lines = stdout.strip().splitlines()
    assert code == 0 and not (tmp_path / "x").exists()
    frozen = [line.split()[-2] for line in lines[1:7]]
    assert frozen == ["yes", "yes", "no", "yes", "yes", "no"]
    assert lines[7].startswith("epoch 1: linear probe: only fc.weight, fc.bias train, lr 0.1")
    assert lines[8].startswith("epochs 2-3: fine-tuning as the table says")
    assert lines[9].startswith("Auto-RGN:") and "5 batches" in lines[9]
