"""``landscape repro regularised_source``: pre-training with label smoothing and dropout,
then fine-tuning and linear probes on the targets. The quick claim (four 16px sources on
100 images per class, 4 epochs: plain, label smoothing, dropout, both; near and far, 2
seeds) runs on both pairs; its sources' configurations and its probes' frozen groups are
read back from the runs, and its three parts are recomputed from its table."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from finetune import rundir
from finetune.errors import ConfigError
from finetune.runs import load_run
from landscape.experiments.options import ReproOptions
from landscape.experiments.recipes import QUICK_SOURCE_NAME
from landscape.experiments.repro import run_claim

PREFIX = QUICK_SOURCE_NAME


def test_an_init_source_is_refused(tmp_path):
    options = ReproOptions(quick=True, runs=tmp_path, source=tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match="leave out --init"):
        run_claim("regularised_source", options, tmp_path)


@pytest.mark.extended
@pytest.mark.parametrize("pair", ["synthetic", "real"])
def test_regularised_source_claim_quick(pair, tmp_path, request):
    if pair == "real":
        request.getfixturevalue("fashion_mnist")
        request.getfixturevalue("digits")
    options = ReproOptions(quick=True, runs=tmp_path / "runs", pair=pair)
    result = run_claim("regularised_source", options, tmp_path)

    assert result.rows == ["plain", "label smoothing", "dropout", "both"]
    configs = [
        load_run(options.runs / f"{PREFIX}{suffix}").config
        for suffix in ("", "-ls0.1", "-drop0.5", "-ls0.1-drop0.5")
    ]
    regularisers = [(c.optim.label_smoothing, c.model.drop_rate) for c in configs]
    assert regularisers == [(0.0, 0.0), (0.1, 0.0), (0.0, 0.5), (0.1, 0.5)]
    assert len({(c.data.spec, c.train.seed, c.train.epochs) for c in configs}) == 1

    # A linear probe trained the head alone: its body ends where it started.
    probe = options.runs / f"regularised-probe-lr0.1-far-from-{PREFIX}-ls0.1-drop0.5-seed0"
    init = rundir.load_weights(probe / rundir.INIT)
    final = rundir.load_weights(probe / rundir.FINAL)
    body = [k for k in final if not k.startswith("fc.")]
    assert body and all(torch.equal(init[k], final[k]) for k in body)
    assert not torch.equal(init["fc.weight"], final["fc.weight"])

    values = result.values  # (sources, source + 4 target columns, seeds)
    assert result.columns == [
        "source acc",
        "near fine-tune",
        "near linear probe",
        "far fine-tune",
        "far linear probe",
    ]
    assert np.all((values[~np.isnan(values)] >= 0) & (values[~np.isnan(values)] <= 1))
    gap = 100 * (values[-1, 1:] - values[0, 1:])  # both minus plain: (columns, seeds)
    tuned, probed = gap[0::2].mean(axis=0), gap[1::2].mean(axis=0)  # over targets, per seed
    # The probe and recovery parts: scipy's one-sided paired t tests at 5%.
    parts = [
        values[-1, 0, 0] - values[0, 0, 0] >= -0.005 - 1e-11,
        stats.ttest_1samp(probed, 0.0, alternative="less").pvalue < 0.05,
        stats.ttest_rel(tuned, probed, alternative="greater").pvalue < 0.05,
    ]
    assert result.statistic == sum(parts)
    assert result.held == all(parts)
