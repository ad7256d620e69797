"""--keep-every: the weights kept at the end of epochs, and ``RUN:epochK`` as a run
reference for fine-tuning and for the probes."""

import json
import math
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import fast_config
from safetensors.torch import load_file

from cli.main import main
from finetune import engine
from finetune.errors import ConfigError, RunDirError
from finetune.models import create_model
from finetune.runs import load_run
from probes.distance import distance_between_runs

EPOCHS = 3
HEAD = {"fc.weight", "fc.bias"}  # test_resnet's classifier


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _identical(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _kept_config():
    return fast_config("pretrain", epochs=EPOCHS, keep_every=1)


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory) -> Path:
    """A tiny pre-training run that kept every one of its three epochs."""
    run = tmp_path_factory.mktemp("keep") / "source"
    engine.train(_kept_config(), run, command="test")
    return run


def test_keep_every_epoch_keeps_one_file_each_and_the_last_is_the_final(kept_run):
    files = sorted(p.name for p in (kept_run / "epochs").iterdir())
    assert files == ["epoch1.safetensors", "epoch2.safetensors", "epoch3.safetensors"]
    final = _weights(kept_run / "final.safetensors")
    assert _identical(_weights(kept_run / "epochs" / "epoch3.safetensors"), final)
    assert not _identical(_weights(kept_run / "epochs" / "epoch2.safetensors"), final)
    with h5py.File(kept_run / "run.h5") as f:
        assert list(f["kept/epoch"][:]) == [1, 2, 3]
        # Every epoch was evaluated, so each kept epoch has its evaluation's accuracy.
        assert (f["kept/eval_acc"][:] == f["epochs/eval_acc"][:]).all()


def test_keep_every_n_keeps_every_nth_and_the_last_with_the_accuracy_when_evaluated(tmp_path):
    config = fast_config("pretrain", epochs=5, keep_every=2, eval_every=3)
    engine.train(config, tmp_path / "run", command="test")
    assert sorted(p.name for p in (tmp_path / "run" / "epochs").iterdir()) == [
        "epoch2.safetensors",
        "epoch4.safetensors",
        "epoch5.safetensors",
    ]
    with h5py.File(tmp_path / "run" / "run.h5") as f:
        assert list(f["kept/epoch"][:]) == [2, 4, 5]
        assert list(f["epochs/epoch"][:]) == [3, 5]
        accuracy = f["kept/eval_acc"][:]
        assert np.isnan(accuracy[:2]).all()  # epochs 2 and 4 were not evaluated
        assert accuracy[2] == f["epochs/eval_acc"][-1]


def test_a_run_without_keep_every_keeps_nothing_and_records_nothing(tmp_path):
    engine.train(fast_config(epochs=1), tmp_path / "run", command="test")
    assert not (tmp_path / "run" / "epochs").exists()
    with h5py.File(tmp_path / "run" / "run.h5") as f:
        assert "kept" not in f


def test_finetuning_from_a_kept_epoch_starts_from_exactly_its_weights(kept_run, tmp_path):
    ref = f"{kept_run}:epoch2"
    result = engine.train(fast_config(init=ref, epochs=1), tmp_path / "ft", command="test")
    assert result.status == "completed"
    kept = _weights(kept_run / "epochs" / "epoch2.safetensors")
    init = _weights(tmp_path / "ft" / "init.safetensors")
    assert init.keys() == kept.keys()
    assert all(torch.equal(init[k], kept[k]) for k in kept if k not in HEAD)
    record = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert record["init"]["source"] == ref
    assert record["init"]["new_head"] == sorted(HEAD)


def test_the_probes_take_a_kept_epoch(kept_run, tmp_path):
    loaded = load_run(f"{kept_run}:epoch1")
    assert loaded.run == kept_run and loaded.label == "source:epoch1"
    assert loaded.weights == kept_run / "epochs" / "epoch1.safetensors"
    result = distance_between_runs(
        f"{kept_run}:epoch1", f"{kept_run}:epoch3", out=tmp_path / "d.h5", command="test"
    )
    a = _weights(kept_run / "epochs" / "epoch1.safetensors")
    b = _weights(kept_run / "final.safetensors")
    params = [n for n, _ in create_model("test_resnet", 10, 16).named_parameters()]
    by_hand = math.sqrt(sum(float(((a[n].double() - b[n].double()) ** 2).sum()) for n in params))
    assert result.total["distance"] == pytest.approx(by_hand, rel=1e-9)
    # 'init' beside a kept epoch is the initial weights of the same run.
    assert distance_between_runs(f"{kept_run}:epoch1").label_b == "source:init"


def test_a_missing_epoch_is_one_line_naming_the_reference_and_the_kept_epochs(kept_run):
    ref = f"{kept_run}:epoch7"
    with pytest.raises(RunDirError) as raised:
        load_run(ref)
    assert (
        str(raised.value) == f"{ref}: {kept_run} kept no weights of epoch 7; kept epochs: 1, 2, 3"
    )


def test_a_run_that_kept_nothing_says_so(tmp_path):
    engine.train(fast_config(epochs=1), tmp_path / "plain", command="test")
    with pytest.raises(RunDirError) as raised:
        load_run(f"{tmp_path / 'plain'}:epoch1")
    assert str(raised.value).endswith("kept epochs: none (see --keep-every)")
    with pytest.raises(RunDirError, match="no run directory"):
        load_run(f"{tmp_path / 'nowhere'}:epoch1")


def test_the_command_line_reports_a_missing_epoch_in_one_line(
    kept_run, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "ft"
    args = ["landscape", "finetune", "--quiet", "--init", f"{kept_run}:epoch9", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", args)
    with pytest.raises(SystemExit) as exit_info:
        main()
    stderr = capsys.readouterr().err
    assert exit_info.value.code == 1
    missing = f"{kept_run}:epoch9: {kept_run} kept no weights of epoch 9; kept epochs: 1, 2, 3"
    assert stderr == f"error: {missing}\n"
    assert not out.exists()


class _Interrupt(Exception):
    pass


def test_a_resumed_run_keeps_the_epochs_it_kept_before(kept_run, tmp_path):
    steps_per_epoch = 5  # 40 images, batch 8

    def interrupt(event):
        if event["event"] == "step" and event["step"] > 2 * steps_per_epoch:
            raise _Interrupt  # in the third epoch, after the second epoch's checkpoint

    run = tmp_path / "cut"
    with pytest.raises(_Interrupt):
        engine.train(_kept_config(), run, progress=interrupt, command="test")
    assert sorted(p.name for p in (run / "epochs").iterdir()) == [
        "epoch1.safetensors",
        "epoch2.safetensors",
    ]
    engine.resume(run)
    for epoch in (1, 2, 3):
        name = f"epoch{epoch}.safetensors"
        # Training is deterministic on the CPU: the uninterrupted run's weights, exactly.
        assert _identical(_weights(run / "epochs" / name), _weights(kept_run / "epochs" / name))
    with h5py.File(run / "run.h5") as f:
        assert list(f["kept/epoch"][:]) == [1, 2, 3]


def test_keep_every_must_not_be_negative():
    with pytest.raises(ConfigError, match="--keep-every must be >= 0, got -1"):
        fast_config(keep_every=-1)


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_pretrain_and_finetune_take_the_flags(command, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["landscape", command, "--help"])
    with pytest.raises(SystemExit):
        main()
    text = capsys.readouterr().out
    assert "--keep-every" in text and "--drop-rate" in text
