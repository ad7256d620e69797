"""Policies and regularisers inside real runs: frozen groups stay bit-identical,
re-initialised groups are new, logged penalties equal their closed forms, Fisher saved."""

import json

import h5py
import pytest
import torch
from conftest import fast_config
from safetensors.torch import load_file

from finetune import engine
from finetune.errors import ConfigError


def groups_of(run):
    return json.loads((run / "config.json").read_text())["groups"]


def test_frozen_groups_and_their_batchnorm_statistics_stay_bit_identical(tmp_path, source_run):
    run = tmp_path / "run"
    engine.train(fast_config(init=str(source_run), freeze_groups=3, lr=0.05), run, command="t")
    w0, w1 = load_file(str(run / "init.safetensors")), load_file(str(run / "final.safetensors"))
    frozen = ("conv1.", "bn1.", "layer1.", "layer2.")  # the stem is conv1, bn1 (and maxpool)
    for key in w0:
        if key.startswith(frozen):
            assert torch.equal(w0[key], w1[key]), key
        elif key.endswith("weight") and not key.startswith("fc"):
            assert not torch.equal(w0[key], w1[key]), key


def test_unfrozen_statistics_follow_the_target_when_asked(tmp_path, source_run):
    run = tmp_path / "run"
    config = fast_config(init=str(source_run), freeze_groups=3, freeze_bn_stats=False)
    engine.train(config, run, command="t")
    w0, w1 = load_file(str(run / "init.safetensors")), load_file(str(run / "final.safetensors"))
    assert torch.equal(w0["layer1.0.conv1.weight"], w1["layer1.0.conv1.weight"])
    assert not torch.equal(w0["layer1.0.bn1.running_mean"], w1["layer1.0.bn1.running_mean"])


def test_reinitialised_groups_are_not_the_pretrained_ones(tmp_path, source_run):
    run = tmp_path / "run"
    engine.train(fast_config(init=str(source_run), transfer_groups=2), run, command="t")
    source, w0 = (
        load_file(str(source_run / "final.safetensors")),
        load_file(str(run / "init.safetensors")),
    )
    for key in ("conv1.0.weight", "layer1.0.conv2.weight", "layer1.0.bn1.running_var"):
        assert torch.equal(w0[key], source[key]), key
    for key in ("layer2.0.conv1.weight", "layer4.0.conv2.weight"):
        assert not torch.equal(w0[key], source[key]), key
    assert torch.equal(
        w0["layer3.0.bn1.running_var"], torch.ones_like(w0["layer3.0.bn1.running_var"])
    )


def test_logged_penalties_equal_their_closed_forms(tmp_path, source_run):
    run = tmp_path / "run"
    config = fast_config(init=str(source_run), l2sp="0.3", l2="0.01", l2_head=0.02)
    engine.train(config, run, command="t")
    w0, w1 = load_file(str(run / "init.safetensors")), load_file(str(run / "final.safetensors"))
    with h5py.File(run / "run.h5") as f:
        names = [n.decode() for n in f["penalties/names"][:]]
        values = f["penalties/values"][-1]
    assert names == ["l2", "l2sp"]
    for g, group in enumerate(groups_of(run)):
        weights = [p for p in group["params"] if p.endswith("weight") and w1[p].ndim > 1]
        sp = sum(0.15 * ((w1[p] - w0[p]).double() ** 2).sum() for p in weights if p != "fc.weight")
        l2 = sum(
            (0.01 if p != "fc.weight" else 0.02) / 2 * (w1[p].double() ** 2).sum() for p in weights
        )
        assert values[names.index("l2sp")][g] == pytest.approx(float(sp), rel=1e-6, abs=1e-12)
        assert values[names.index("l2")][g] == pytest.approx(float(l2), rel=1e-6, abs=1e-12)


def test_l2sp_pulls_weights_toward_w0(tmp_path, source_run):
    plain = engine.train(
        fast_config(init=str(source_run), epochs=3, lr=0.05), tmp_path / "a", command="t"
    )
    sp = engine.train(
        fast_config(init=str(source_run), epochs=3, lr=0.05, l2sp="1.0"),
        tmp_path / "b",
        command="t",
    )
    assert plain.status == sp.status == "completed"
    with h5py.File(tmp_path / "a" / "run.h5") as a, h5py.File(tmp_path / "b" / "run.h5") as b:
        far, near = a["groups/distance_to_init"][-1], b["groups/distance_to_init"][-1]
    assert (near[:-1] < far[:-1]).all()


@pytest.mark.parametrize("sp", ["l2sp_fisher", "l1sp", "gl_sp"])
def test_every_sp_form_trains_and_the_fisher_is_saved(tmp_path, source_run, sp):
    run = tmp_path / "run"
    config = fast_config(
        init=str(source_run), sp=sp, l2sp="0.1", fisher_batches=2, reg_mode="decoupled"
    )
    assert engine.train(config, run, command="t").status == "completed"
    if sp == "l2sp_fisher":
        fisher = load_file(str(run / "fisher.safetensors"))
        assert "layer2.0.conv1.weight" in fisher and "fc.weight" not in fisher
        assert all((f >= 0).all() and f.sum() > 0 for f in fisher.values())


def test_dry_run_prints_the_resolved_table(tmp_path, source_run, monkeypatch, capsys):
    from test_cli import run_cli

    code, stdout, _ = run_cli(
        monkeypatch,
        capsys,
        "finetune",
        "--dry-run",
        "--init",
        str(source_run),
        "--image-size",
        "16",
        "--preset",
        "l2sp",
        "--lr-decay",
        "0.5",
        "--freeze-groups",
        "1",
        "--transfer-groups",
        "4",
        "--out",
        str(tmp_path / "x"),
    )
    lines = stdout.strip().splitlines()
    assert code == 0 and len(lines) == 7
    assert lines[1].split()[1] == "stem" and lines[1].split()[-2:] == ["yes", "all"]
    assert lines[4].split()[-1] == "all" and lines[5].split()[-1] == "none"
    assert lines[-1].split()[1] == "head"
    assert "0.01" in lines[-1]  # lr of the head, 0.01 * 0.5^0
    assert not (tmp_path / "x").exists()


def test_list_lengths_are_checked_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="--l2 has 3 values"):
        engine.train(fast_config(l2="0.1,0.2,0.3"), tmp_path / "run", command="t")
    assert not (tmp_path / "run").exists()


class _Interrupt(Exception):
    pass


def test_resume_with_policies_and_regularisers_is_bit_identical(tmp_path, source_run):
    options = dict(
        init=str(source_run),
        freeze_groups=1,
        l2sp="0.1",
        lr_decay=0.7,
        reg_mode="decoupled",
        bss=0.001,
        checkpoint_every=3,
        epochs=3,
    )
    engine.train(fast_config(**options), tmp_path / "whole", command="t")

    def interrupt(event):
        if event["event"] == "step" and event["step"] >= 8:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        engine.train(fast_config(**options), tmp_path / "cut", progress=interrupt, command="t")
    assert (tmp_path / "cut" / "status").read_text().startswith("running")
    engine.resume(tmp_path / "cut")
    a = load_file(str(tmp_path / "whole" / "final.safetensors"))
    b = load_file(str(tmp_path / "cut" / "final.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
