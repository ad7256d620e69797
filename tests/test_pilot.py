"""Probe-guided advice: the rules from a pilot's explanation, by hand, and the command."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import fast_config, run_dirs
from typer.testing import CliRunner

from cli.main import app
from finetune import engine
from finetune.config import build_config, flat_options, load_config_file
from landscape.tune.explain import Explanation, Measured
from landscape.tune.pilot import PilotRules, choose_from_pilot, pilot_config

GROUPS = ["stem", "layer1.0", "layer2.0", "layer3.0", "layer4.0", "head"]


def explanation(status: list[str], cka: list[float] | None = None) -> Explanation:
    """An explanation with the given statuses (head new) and made-up numbers."""
    n = len(GROUPS)
    zeros = Measured(np.zeros(n), np.zeros(n))
    cka_values = Measured(np.asarray(cka if cka else [0.9] * n), np.zeros(n))
    return Explanation(["pilot"], [], GROUPS, [*status, "new"], cka_values, zeros, zeros,
                       zeros, "jackknife over 10 batches")  # fmt: skip


BASE = flat_options(build_config("finetune", {}, {"lr_decay": 0.5}))


def test_the_leading_reused_groups_are_frozen_and_the_needed_ones_sped_up():
    e = explanation(["reused", "reused", "adapted", "unclear", "reused"])
    values, choices = choose_from_pilot(e, BASE)
    assert values["freeze_groups"] == 2
    assert values["lr_mult"] == [1.0, 1.0, 5.0, 1.0, 1.0, 5.0]
    assert "lr_decay" not in values  # the multipliers replace any decay of the recipe
    assert [c.flag for c in choices] == ["freeze_groups", "lr_mult"]
    build_config("finetune", values)  # the advice is a valid configuration


def test_nothing_measurable_keeps_the_default():
    values, choices = choose_from_pilot(explanation(["unclear"] * 5), BASE)
    assert values["freeze_groups"] == 0 and values["lr_mult"] == [1.0] * 6
    assert "no group beyond its error" in choices[-1].rule


def test_trailing_rewritten_groups_with_replaced_features_are_reinitialised():
    e = explanation(["unclear", "unclear", "reused", "rewritten", "rewritten"],
                    cka=[0.9, 0.9, 0.9, 0.6, 0.3, 0.1])  # fmt: skip
    values, _ = choose_from_pilot(e, BASE, PilotRules(replaced_cka=0.5))
    # layer4 was rewritten with CKA 0.3 < 0.5: re-initialised; layer3's CKA 0.6 keeps it.
    assert values["transfer_groups"] == 4
    assert values["lr_mult"] == [1.0, 1.0, 1.0, 5.0, 5.0, 5.0]


def test_every_body_group_reused_is_a_linear_probe():
    values, _ = choose_from_pilot(explanation(["reused"] * 5), BASE)
    assert values["freeze_groups"] == 5 and values["lr_mult"] == [1.0] * 6


@pytest.mark.parametrize(("fraction", "epochs"), [(1 / 3, 10), (0.01, 1), (1.0, 30)])
def test_the_pilot_is_the_recipe_for_a_fraction_of_its_epochs(fraction, epochs):
    config = build_config("finetune", {}, {"epochs": 30, "keep_every": 5})
    pilot = pilot_config(config, fraction)
    assert pilot.train.epochs == epochs and pilot.train.eval_every == epochs
    assert pilot.train.keep_every == 0 and pilot.optim == config.optim


def test_advise_pilot_writes_a_runnable_advice(tmp_path):
    source = tmp_path / "source"
    engine.train(fast_config("pretrain", data="synthetic:source", epochs=1), source)
    out = tmp_path / "advice.toml"
    args = ["advise", "--pilot", "--init", str(source), "--data", "synthetic:near",
            "--image-size", "16", "--train-per-class", "4", "--epochs", "3",
            "--batch-size", "8", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "cost: 1.33 fine-tunings" in result.output
    config = build_config("finetune", load_config_file(out))
    assert config.train.epochs == 3 and config.model.init == str(source)
    assert out.with_suffix(".pilot.h5").exists()
    pilots = run_dirs(tmp_path / "advice-pilot")
    assert len(pilots) == 1 and (pilots[0] / "final.safetensors").exists()


def test_advise_pilot_refuses_a_bad_fraction(tmp_path):
    result = CliRunner().invoke(
        app, ["advise", "--pilot", "--pilot-fraction", "0", "--out", str(tmp_path / "a.toml")]
    )
    assert result.exit_code == 1
    assert result.output.strip() == "error: --pilot-fraction must lie in (0, 1], got 0.0"
