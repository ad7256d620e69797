"""``landscape fit`` and ``probes.fit.fit_measures`` end to end on tiny models at 16 px: the
table and the file agree, every measure with its standard error, the accuracies are those
of the cross-validation's recorded predictions, models without BatchNorm get NaN
distances, the measures are deterministic, LogME reads timm's pre-logits features, and a
model whose running statistics were estimated on the target sits at BN distance zero."""

import math

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from test_cli import run_cli
from test_results_layout import actual, documented

from finetune.config import DataConfig, ModelConfig
from finetune.data.input_spec import resolve_input
from finetune.evaluation.batchnorm import reestimate_batchnorm
from finetune.groups import layer_groups
from finetune.models import create_model
from probes.fit import fit_measures
from probes.inputs import input_prep, split_data
from probes.logme import logme
from probes.options import ProbeOptions

TINY = ["--data", "synthetic:near", "--image-size", "16", "--train-per-class", "2",
        "--examples", "30", "--k", "3", "--device", "cpu"]  # fmt: skip
DATA = DataConfig(spec="synthetic:near", image_size=16, train_per_class=2)


def _rows(stdout: str) -> dict[str, list[float]]:
    """Per group: features, then each measure and its error (NaN, NaN for ``nan``)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("group")) + 1
    rows = {}
    for line in lines[start:]:
        if line.startswith("LogME"):
            break
        name, features, *cells = line.split()
        values = [float(features)]
        while cells:
            if cells[0] == "nan":
                values += [math.nan, math.nan]
                cells = cells[1:]
            else:
                assert cells[1] == "±"
                values += [float(cells[0]), float(cells[2])]
                cells = cells[3:]
        rows[name] = values
    return rows


def test_fit_command_prints_every_group_and_writes_a_documented_file(tmp_path, monkeypatch, capsys):
    out = tmp_path / "fit.h5"
    code, stdout, _ = run_cli(monkeypatch, capsys, "fit", "--model", "test_resnet", *TINY,
                              "--out", str(out))  # fmt: skip
    assert code == 0
    groups = [g.name for g in layer_groups(create_model("test_resnet", 10, 16))][:-1]
    rows = _rows(stdout)
    assert list(rows) == groups
    assert actual(out) == documented("fit")
    assert out.with_suffix(".png").stat().st_size > 0
    with h5py.File(out) as f:
        table = np.array(list(rows.values()))
        assert np.array_equal(table[:, 0], f["groups/features"][()])
        names = ("knn_acc", "knn_se", "linear_acc", "linear_se", "logme", "logme_se",
                 "bn_distance", "bn_se")  # fmt: skip
        for column, name in enumerate(names, start=1):
            rtol = 0.05 if name == "bn_se" else 5e-3  # printed to 2 and 3 significant digits
            assert np.allclose(table[:, column], f[f"groups/{name}"][()], rtol=rtol, atol=5e-4)
        for name in ("knn", "linear"):
            correct = f[f"examples/{name}_correct"][()]
            assert correct.shape == (len(groups), 20)
            assert np.allclose(f[f"groups/{name}_acc"][()], correct.mean(1))
            se = correct.std(1, ddof=1) / np.sqrt(20)
            assert np.allclose(f[f"groups/{name}_se"][()], se)
        # 2 images per class: 2 stratified folds, each holding one image of every class
        fold, label = f["examples/fold"][()], f["examples/label"][()]
        assert f.attrs["folds"] == 2 and np.all(np.bincount(fold * 10 + label) == 1)
        assert np.all(f["groups/bn_distance"][()] > 0) and np.all(f["groups/bn_se"][()] > 0)
        assert f["bn/layers"].shape[0] > 0 and np.all(f["bn/group"][()] < len(groups))
        summary = f["summary"].attrs
        assert f"{summary['logme']:.3f} ± {summary['logme_se']:.3f}" in stdout.splitlines()[-2]
        assert f["summary"].attrs["train_examples"] == 20  # 2 of each of 10 classes
        assert f["summary"].attrs["train_per_class"] == 2


def test_a_model_without_batchnorm_has_nan_distances(tmp_path, monkeypatch, capsys):
    out = tmp_path / "vit.h5"
    code, stdout, _ = run_cli(monkeypatch, capsys, "fit", "--model", "test_vit", *TINY,
                              "--out", str(out))  # fmt: skip
    assert code == 0
    assert all(np.isnan(values[-1]) for values in _rows(stdout).values())
    with h5py.File(out) as f:
        assert np.all(np.isnan(f["groups/bn_distance"][()]))
        assert f["bn/layers"].shape == (0,)
        assert np.all((f["groups/knn_acc"][()] >= 0) & (f["groups/knn_acc"][()] <= 1))


def test_fit_measures_are_deterministic_and_logme_reads_the_pre_logits_features():
    options = ProbeOptions(seed=3, device="cpu")
    first = fit_measures(ModelConfig(name="test_resnet"), DATA, k=3, options=options)
    second = fit_measures(ModelConfig(name="test_resnet"), DATA, k=3, options=options)
    for name in ("knn_acc", "linear_acc", "group_logme", "bn_distance", "bn_se", "fold"):
        assert np.array_equal(getattr(first, name), getattr(second, name), equal_nan=True)
    assert first.logme.score == second.logme.score
    # the same model and images, features from timm's forward_head(pre_logits=True)
    runtime = options.runtime()
    spec = resolve_input(ModelConfig(name="test_resnet"), DATA, 32)
    train = split_data(DATA, "train", spec, runtime, seed=3)
    torch.manual_seed(3)
    net = create_model("test_resnet", 10, 16).eval()
    images, labels = train.dataset.tensors()
    with torch.no_grad():
        x = input_prep(spec, runtime)(images[train.order])
        features = net.forward_head(net.forward_features(x), pre_logits=True)
    direct = logme(features, labels[train.order], 10)
    assert first.logme.score == pytest.approx(direct.score, rel=1e-6)


def test_running_statistics_of_the_target_itself_are_at_distance_zero(tmp_path):
    cpu = ProbeOptions(device="cpu")
    runtime = cpu.runtime()
    spec = resolve_input(ModelConfig(name="test_resnet"), DATA, 32)
    train = split_data(DATA, "train", spec, runtime)
    torch.manual_seed(0)
    net = create_model("test_resnet", 10, 16)
    images, _ = train.dataset.tensors()
    # all the training images as one batch: eval mode then feeds every layer what train
    # mode did, so each layer's input statistics are its new running statistics
    reestimate_batchnorm(net, [input_prep(spec, runtime)(images)])
    save_file(net.state_dict(), str(tmp_path / "w.safetensors"))
    init = ModelConfig(name="test_resnet", init=str(tmp_path / "w.safetensors"))
    fitted = fit_measures(init, DATA, k=3, options=cpu)
    scratch = fit_measures(ModelConfig(name="test_resnet"), DATA, k=3, options=cpu)
    assert np.all(fitted.bn_distance < 0.02)
    assert np.all(scratch.bn_distance > 10)


@pytest.mark.parametrize("args", [["--init", "{tmp}/missing.safetensors"], ["--pretrained"]])
def test_missing_or_unreachable_weights_are_one_line(tmp_path, monkeypatch, capsys, args):
    import timm.models._hub as hub

    def offline(*a, **k):
        raise OSError("network unreachable")

    monkeypatch.setattr(hub, "hf_hub_download", offline)
    args = [a.format(tmp=tmp_path) for a in args]
    code, _, stderr = run_cli(monkeypatch, capsys, "fit", "--model", "test_resnet", *TINY, *args,
                              "--out", str(tmp_path / "f.h5"))  # fmt: skip
    assert code == 1 and stderr.startswith("error:") and stderr.count("\n") == 1
    assert not (tmp_path / "f.h5").exists()
