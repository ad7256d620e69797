"""The advisor: each rule read off hand-made fit measures, and its TOML run as it is by
``landscape finetune --config``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tomllib
from conftest import fast_config
from test_cli import run_cli

from finetune import engine
from finetune.data.input_spec import InputSpec
from landscape.tune.advisor import Rules, advise, group_fits
from probes.fit import FitResult

RULES = Rules()
BASE = {"model": "test_resnet", "data": "synthetic:near", "epochs": 30, "lr": 0.01}


def fit_of(shifts: list[float], probes: list[float] | None = None) -> FitResult:
    """Fit measures with the given BN shifts (NaN: a group without BatchNorm) and
    linear-probe accuracies per body group; the rest is filler the advisor does not read."""
    groups = len(shifts)
    probes = probes or [0.5] * groups
    return FitResult(
        model="test_resnet",
        init="source",
        data="synthetic:near",
        input=InputSpec(32, 32, 1.0, "bilinear", (0.5,) * 3, (0.5,) * 3, "translate", "dataset"),
        groups=[f"g{i}" for i in range(groups)],
        features=np.full(groups, 8),
        knn_acc=np.array(probes),
        linear_acc=np.array(probes),
        bn_distance=np.array(shifts),
        bn_layers=[],
        bn_group=np.zeros(0, dtype=np.int64),
        bn_layer_distance=np.zeros(0),
        logme=None,
        pre_logits_features=8,
        classes=10,
        train_examples=100,
        val_examples=100,
        k=10,
        seconds=0.0,
    )


def test_a_target_whose_statistics_match_with_scarce_data():
    advice = advise(fit_of([0.01, 0.02, 0.03, 0.05, 0.08]), BASE, train_per_class=10)
    values = advice.values
    assert "transfer_groups" not in values  # every group fits: all transferred
    # All five body groups fit: all but the top three are frozen.
    assert values["freeze_groups"] == 2
    # Layer-wise decay over the fitting groups from the top one down; the head is new.
    assert values["lr_mult"] == [1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0, RULES.head_lr]
    assert values["l2sp"] == [RULES.l2sp] * 5 + [0.0]
    assert values["l2"] == [0.0] * 5 + [RULES.l2]
    assert values["epochs"] == 30


def test_with_ample_data_fitting_groups_train_at_the_ample_rate_and_nothing_freezes():
    values = advise(fit_of([0.01] * 5), BASE, train_per_class=RULES.scarce + 1).values
    assert values["freeze_groups"] == 0
    assert values["lr_mult"] == [RULES.ample_lr] * 5 + [max(RULES.head_lr, RULES.ample_lr)]


def test_a_target_whose_statistics_are_far_moves_everything_and_drops_source_specific_groups():
    # No group fits; the linear probe stops improving after the third group.
    fit = fit_of([0.6, 2.9, 3.6, 2.9, 1.8], probes=[0.36, 0.39, 0.41, 0.40, 0.40])
    values = advise(fit, BASE, train_per_class=10).values
    assert values["transfer_groups"] == 3
    assert values["freeze_groups"] == 0
    assert values["lr_mult"] == [RULES.shifted_lr] * 6
    assert values["l2sp"] == [RULES.l2sp] * 3 + [0.0] * 3
    assert values["l2"] == [0.0] * 3 + [RULES.l2] * 3


def test_freezing_stops_at_the_first_group_that_does_not_fit_and_needs_scarce_data():
    fit = fit_of([0.01, 0.5, 0.01, 0.01, 0.01])
    assert advise(fit, BASE, train_per_class=10).values["freeze_groups"] == 1
    assert advise(fit, BASE, train_per_class=RULES.scarce + 1).values["freeze_groups"] == 0
    assert advise(fit, BASE, train_per_class=None).values["freeze_groups"] == 0
    # The group that does not fit trains fast; the decay counts the fitting groups only.
    lr = advise(fit, BASE, train_per_class=10).values["lr_mult"]
    assert lr == [1 / 8, RULES.shifted_lr, 1 / 4, 1 / 2, 1.0, RULES.shifted_lr]


def test_groups_without_batchnorm_fit_by_their_probe_accuracy():
    nan = math.nan
    fit = fit_of([nan, nan, nan], probes=[0.3, 0.75, 0.8])
    assert group_fits(fit, RULES) == [False, True, True]


def test_the_advice_is_toml_that_reads_back_to_its_values():
    advice = advise(fit_of([0.01, 0.9, 0.02]), {**BASE, "lr_decay": 0.5}, train_per_class=5)
    assert "lr_decay" not in advice.values  # lr_mult replaces it
    assert tomllib.loads(advice.toml()) == {
        k.replace("_", "-"): v for k, v in advice.values.items()
    }


@pytest.mark.slow
def test_the_advice_runs_under_finetune_config(monkeypatch, capsys, tmp_path):
    source = tmp_path / "source"
    engine.train(fast_config("pretrain", data="synthetic:source", train_per_class=6), source)
    advice = tmp_path / "advice.toml"
    tiny = ["--data", "synthetic:near", "--image-size", "16", "--train-per-class", "4"]
    code, stdout, _ = run_cli(
        monkeypatch, capsys, "advise", "--model", "test_resnet", "--init", str(source), *tiny,
        "--epochs", "1", "--batch-size", "8", "--device", "cpu", "--out", str(advice),
    )  # fmt: skip
    assert code == 0
    assert "freeze_groups =" in stdout and "regulariser:" in stdout
    assert advice.with_suffix(".fit.h5").exists()
    code, _, err = run_cli(
        monkeypatch, capsys, "finetune", "--config", str(advice), "--out", str(tmp_path / "run")
    )
    assert code == 0, err
    config = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    advised = tomllib.loads(advice.read_text())
    assert config["policy"]["freeze_groups"] == advised["freeze-groups"]
    assert config["policy"]["lr_mult"] == advised["lr-mult"]
    assert config["reg"]["l2sp"] == advised["l2sp"]
    assert config["reg"]["l2"] == advised["l2"]
    assert config["model"]["init"] == str(source)
