"""The advisor: each rule read off hand-made fit measures with their standard errors (a rule
acts only on differences larger than the error), the explanation, and its TOML run as it is
by ``landscape finetune --config``."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest
import tomllib
import torch
from conftest import fast_config
from test_cli import run_cli

from finetune import engine
from finetune.data.input_spec import InputSpec
from landscape.tune.advisor import FITS, SHIFTED, UNCLEAR, FitRules, advise, group_status
from probes.fit import FitResult
from probes.logme import LogMEResult

RULES = FitRules()
BASE = {"model": "test_resnet", "data": "synthetic:near", "epochs": 30, "lr": 0.01}
N = 100  # examples of the hand-made cross-validation


def nested_correct(probes: list[float]) -> np.ndarray:
    """(G, N) correctness with the given accuracies, each group right on the first
    round(p N) examples: two groups differ on exactly the examples between their counts."""
    counts = [round(p * N) for p in probes]
    return np.array([np.arange(N) < c for c in counts])


def fit_of(
    shifts: list[float],
    probes: list[float] | None = None,
    *,
    shift_se: float = 0.001,
    per_class: int = 10,
) -> FitResult:
    """Fit measures with the given BN shifts (NaN: a group without BatchNorm) ± ``shift_se``
    and linear-probe accuracies (``nested_correct``) per body group, measured on a target of
    ``per_class`` images per class; the rest is filler the advisor does not read."""
    groups = len(shifts)
    correct = nested_correct(probes or [0.5] * groups)
    return FitResult(
        model="test_resnet",
        init="source",
        data="synthetic:near",
        input=InputSpec(32, 32, 1.0, "bilinear", (0.5,) * 3, (0.5,) * 3, "translate", "dataset"),
        groups=[f"g{i}" for i in range(groups)],
        features=np.full(groups, 8),
        knn_acc=correct.mean(1),
        knn_se=np.full(groups, 0.1),
        linear_acc=correct.mean(1),
        linear_se=np.full(groups, 0.1),
        group_logme=np.zeros(groups),
        group_logme_se=np.zeros(groups),
        bn_distance=np.array(shifts),
        bn_se=np.where(np.isnan(shifts), np.nan, shift_se),
        bn_layers=[],
        bn_group=np.zeros(0, dtype=np.int64),
        bn_layer_distance=np.zeros(0),
        knn_correct=correct,
        linear_correct=correct,
        labels=np.arange(N) % 10,
        fold=np.arange(N) % 10,
        logme=LogMEResult(0.0, torch.zeros(10), torch.ones(10), torch.ones(10), 1),
        logme_se=0.0,
        pre_logits_features=8,
        classes=10,
        train_examples=N,
        train_per_class=per_class,
        folds=10,
        k=10,
        seconds=0.0,
    )


def test_a_target_whose_statistics_match_with_scarce_data():
    advice = advise(fit_of([0.01, 0.02, 0.03, 0.05, 0.08]), BASE)
    values = advice.values
    assert advice.status == [FITS] * 5
    assert "transfer_groups" not in values  # every group fits: all transferred
    # All five body groups fit: all but the top three are frozen.
    assert values["freeze_groups"] == 2
    # Layer-wise decay over the fitting groups from the top one down; the head is new.
    assert values["lr_mult"] == [1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0, RULES.head_lr]
    assert values["l2sp"] == [RULES.l2sp] * 5 + [0.0]
    assert values["l2"] == [0.0] * 5 + [RULES.l2]
    assert values["epochs"] == 30


def test_the_images_per_class_come_from_the_data_not_the_flags():
    # The measured target has 9 images per class: scarce, whatever the flags say.
    fit = fit_of([0.01] * 5, per_class=9)
    advice = advise(fit, {**BASE, "train_per_class": None})
    assert advice.values["freeze_groups"] == 2
    assert "freeze: 9 images per class <= 20" in advice.choices[1].rule


def test_with_ample_data_fitting_groups_train_at_the_ample_rate_and_nothing_freezes():
    values = advise(fit_of([0.01] * 5, per_class=RULES.scarce + 1), BASE).values
    assert values["freeze_groups"] == 0
    assert values["lr_mult"] == [RULES.ample_lr] * 5 + [max(RULES.head_lr, RULES.ample_lr)]


def test_a_target_whose_statistics_are_far_moves_everything_and_drops_source_specific_groups():
    # No group fits; the linear probe stops improving after the third group.
    fit = fit_of([0.6, 2.9, 3.6, 2.9, 1.8], probes=[0.36, 0.39, 0.41, 0.40, 0.40])
    values = advise(fit, BASE).values
    assert values["transfer_groups"] == 3
    assert values["freeze_groups"] == 0
    assert values["lr_mult"] == [RULES.shifted_lr] * 6
    assert values["l2sp"] == [RULES.l2sp] * 3 + [0.0] * 3
    assert values["l2"] == [0.0] * 3 + [RULES.l2] * 3


def test_a_probe_gain_within_its_paired_error_is_no_reason_to_keep_a_group():
    fit = fit_of([0.6, 2.9, 3.6], probes=[0.30, 0.40, 0.41])
    # The top group is right on 41 examples, the one below on 40; they disagree on three:
    # the top one loses example 0 and wins 40 and 41. Differences -1, +1, +1 and 97 zeros:
    # mean 0.01, sd sqrt((1.01^2 + 2 * 0.99^2 + 97 * 0.01^2) / 99) = sqrt(2.99 / 99), so the
    # paired error is 0.0174: no evidence of a gain, and the shifted group is re-initialised.
    fit.linear_correct[2, 0] = False
    fit.linear_correct[2, 41] = True
    difference, error = fit.probe_difference(2, 1)
    assert difference == pytest.approx(0.01)
    assert error == pytest.approx(math.sqrt(2.99 / 99) / 10)
    assert advise(fit, BASE).values["transfer_groups"] == 2
    # Five examples more, all concordant otherwise, is a gain beyond its error (0.05 vs
    # 0.0219): the group is kept.
    fit = fit_of([0.6, 2.9, 3.6], probes=[0.30, 0.40, 0.45])
    assert "transfer_groups" not in advise(fit, BASE).values


def test_a_shift_within_its_error_of_the_threshold_is_unclear_and_keeps_the_default():
    # 0.09 fits by its value, but 0.09 + 0.02 reaches the threshold 0.1: the data cannot tell.
    fit = fit_of([0.01, 0.09, 0.01, 0.01, 0.01], shift_se=0.02)
    advice = advise(fit, BASE)
    assert advice.status == [FITS, UNCLEAR, FITS, FITS, FITS]
    assert advice.values["freeze_groups"] == 1  # freezing stops at the unclear group
    assert advice.values["lr_mult"][1] == 1.0  # base rate, neither decayed nor x5
    assert any("cannot tell whether these groups fit: g1 " in note for note in advice.notes)
    # With a tenth of the error it fits; 0.13 ± 0.02 is shifted.
    assert group_status(fit_of([0.09], shift_se=0.002), RULES) == [FITS]
    assert group_status(fit_of([0.13], shift_se=0.02), RULES) == [SHIFTED]


def test_the_advice_says_when_the_data_cannot_separate_the_groups():
    inseparable = advise(fit_of([0.01] * 3, probes=[0.5, 0.5, 0.5]), BASE)
    assert any("cannot separate the groups" in note for note in inseparable.notes)
    separable = advise(fit_of([0.01] * 3, probes=[0.3, 0.5, 0.7]), BASE)
    assert not any("cannot separate" in note for note in separable.notes)


def test_freezing_stops_at_the_first_group_that_does_not_fit_and_needs_scarce_data():
    fit = fit_of([0.01, 0.5, 0.01, 0.01, 0.01])
    assert advise(fit, BASE).values["freeze_groups"] == 1
    ample = fit_of([0.01, 0.5, 0.01, 0.01, 0.01], per_class=RULES.scarce + 1)
    assert advise(ample, BASE).values["freeze_groups"] == 0
    # The group that does not fit trains fast; the decay counts the fitting groups only.
    lr = advise(fit, BASE).values["lr_mult"]
    assert lr == [1 / 8, RULES.shifted_lr, 1 / 4, 1 / 2, 1.0, RULES.shifted_lr]


def test_groups_without_batchnorm_fit_by_their_probe_accuracy():
    nan = math.nan
    # gaps to the best (0.8): 0.5 (error 0.05: shifted), 0.05 (fits), 0.0 (fits)
    fit = fit_of([nan, nan, nan], probes=[0.3, 0.75, 0.8])
    assert group_status(fit, RULES) == [SHIFTED, FITS, FITS]
    # a gap of 0.12 whose paired error (0.033) reaches back below the margin 0.1: unclear
    assert group_status(fit_of([nan, nan], probes=[0.68, 0.8]), RULES) == [UNCLEAR, FITS]


def test_the_explanation_shows_every_group_with_its_errors_and_status():
    advice = advise(fit_of([0.01, 0.09, 0.5], probes=[0.3, 0.5, 0.7], shift_se=0.02), BASE)
    lines = advice.explanation().splitlines()
    rows = {line.split()[0]: line for line in lines[2:]}
    assert list(rows) == ["g0", "g1", "g2"]
    assert rows["g0"].endswith(FITS) and rows["g1"].endswith(UNCLEAR)
    assert rows["g2"].endswith(SHIFTED)
    assert "0.700 ± 0.100" in rows["g2"]  # the accuracy ± its standard error
    # the gain over g1 ± the paired error: 20 of 100 examples differ, sd sqrt(16/99)
    assert f"+0.200 ± {math.sqrt(16 / 99) / 10:.3f}" in rows["g2"]
    # the bar: 30 cells, 30 (0.7 - 0.1) = 18 solid, 30 (0.7 + 0.1) - 18 = 6 shaded
    bar = rows["g2"].split("|")[1]
    assert (bar.count("█"), bar.count("░"), len(bar)) == (18, 6, 30)
    assert advice.explanation() in advice.table(explain=True)
    assert advice.explanation() not in advice.table()


def test_the_advice_is_toml_that_reads_back_to_its_values():
    advice = advise(fit_of([0.01, 0.9, 0.02], per_class=5), {**BASE, "lr_decay": 0.5})
    assert "lr_decay" not in advice.values  # lr_mult replaces it
    assert tomllib.loads(advice.toml()) == {
        k.replace("_", "-"): v for k, v in advice.values.items()
    }


@pytest.mark.extended
def test_a_folder_of_ten_fashion_mnist_images_per_class_is_advised_as_scarce_data(
    real_source, fashion_mnist, tmp_path, monkeypatch, capsys
):
    """The case a new user meets: a ``folder:`` tree of 10 real images per class and no
    --train-per-class. One image per class is carved for validation, so 9 remain."""
    from test_real_datasets import write_png_tree

    write_png_tree(tmp_path / "tree", fashion_mnist, [5, 6, 7, 8, 9], per_class=10)
    out = tmp_path / "advice.toml"
    code, stdout, err = run_cli(
        monkeypatch, capsys, "advise", "--model", "test_resnet", "--init", str(real_source),
        "--data", f"folder:{tmp_path / 'tree'}", "--image-size", "32", "--device", "cpu",
        "--explain", "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert "45 training examples (9 per class at the fewest)" in stdout
    assert "9-fold cross-validation" in stdout
    assert "freeze: 9 images per class <= 20" in stdout
    assert "fit against depth" in stdout
    with h5py.File(out.with_suffix(".fit.h5")) as f:
        assert f["summary"].attrs["train_per_class"] == 9 and f.attrs["folds"] == 9


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
