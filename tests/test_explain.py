"""``landscape explain``: the per-group change of a run (CKA to init, movement, rewind cost
with jackknife errors) against independent computations, the status rule by hand, and the
command's file, errors and sentences."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from conftest import fast_config, run_dirs
from typer.testing import CliRunner

from cli.main import app
from finetune import engine
from finetune.errors import ConfigError
from finetune.evaluation.measure import evaluate, measure
from finetune.groups import layer_groups
from finetune.runs import load_run
from landscape.tune.explain import REUSED_BELOW, REWRITTEN_ABOVE, Z, explain_runs, status_of
from landscape.tune.options import ExplainOptions
from probes.change import group_change, group_tensors
from probes.cka import MinibatchCKA, cka_of_terms
from probes.inputs import bn_batches, eval_prep, probe_data
from probes.options import ProbeOptions
from probes.statistics import jackknife

OPTIONS = ProbeOptions(examples=64, batch_size=8, bn_batches=2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny source, two fine-tunings from it (seeds 0 and 1), one with its first two
    groups frozen, and one from random init."""
    root = tmp_path_factory.mktemp("explain")
    made = {"source": root / "source"}
    engine.train(fast_config("pretrain", data="synthetic:source", epochs=1), made["source"])
    init = str(made["source"])
    for name, extra in {
        "seed0": {"init": init},
        "seed1": {"init": init, "seed": 1},
        "frozen": {"init": init, "freeze_groups": 2},
        "random": {},
    }.items():
        made[name] = root / name
        engine.train(fast_config(epochs=3, **extra), made[name])
    return made


@pytest.mark.parametrize(
    ("rise", "error", "status"),
    [
        (0.0, 0.005, "reused"),
        (REUSED_BELOW - 1.5 * Z * 0.001, 0.001, "reused"),
        (0.2, 0.01, "rewritten"),
        (REWRITTEN_ABOVE + 1.5 * Z * 0.01, 0.01, "rewritten"),
        (0.06, 0.01, "adapted"),
        (0.12, 0.02, "adapted"),  # above 0.10, but not by two errors
        (0.02, 0.01, "unclear"),
        (-0.3, 0.2, "unclear"),
        (0.5, float("nan"), "unclear"),  # one batch: no error to read
    ],
)
def test_status_rule_by_hand(rise, error, status):
    assert status_of(rise, error) == status


def test_status_of_frozen_and_new_groups():
    assert status_of(0.5, 0.0, frozen=True) == "frozen"
    assert status_of(0.5, 0.0, new=True) == "new"


def test_measure_per_batch_sums_to_the_whole(runs):
    loaded = load_run(runs["seed0"])
    runtime = OPTIONS.runtime()
    data = probe_data(loaded, runtime, OPTIONS).fixed(8, runtime.processes)
    prep = eval_prep(loaded, runtime)
    parts = measure(loaded.model, data, prep, runtime, per_batch=True)
    whole = measure(loaded.model, data, prep, runtime)
    assert parts.shape == (8, 2)
    torch.testing.assert_close(parts.sum(0), whole)


def test_cka_jackknife_leaves_out_one_batch_as_a_fresh_accumulator_would():
    rng = torch.Generator().manual_seed(0)
    batches = [(torch.randn(6, 5, generator=rng), torch.randn(6, 3, generator=rng))
               for _ in range(4)]  # fmt: skip
    kept = MinibatchCKA(1, 1, keep_batches=True)
    for a, b in batches:
        kept.update([a], [a + b[:, :1]])
    terms = kept.batch_terms()
    np.testing.assert_allclose(cka_of_terms(terms.sum(0), 1, 1), kept.compute())
    without_first = MinibatchCKA(1, 1)
    for a, b in batches[1:]:
        without_first.update([a], [a + b[:, :1]])
    np.testing.assert_allclose(cka_of_terms(terms.sum(0) - terms[0], 1, 1), without_first.compute())


def test_group_change_of_frozen_groups(runs):
    change = group_change(runs["frozen"], options=OPTIONS)
    assert change.frozen[:2] == [True, True] and not any(change.frozen[2:])
    # Frozen groups (BatchNorm statistics too) give the initial features exactly, and
    # resetting them changes nothing.
    np.testing.assert_allclose(change.cka[:2], 1.0, atol=1e-9)
    assert change.rewind_error[:2].tolist() == [0.0, 0.0]
    assert change.rewind_loss[:2].tolist() == [0.0, 0.0]
    assert change.new == [False] * 5 + [True]


def test_rewind_cost_against_an_independent_evaluation(runs):
    change = group_change(runs["seed0"], options=OPTIONS)
    final, init = load_run(runs["seed0"]), load_run(runs["seed0"] / "init.safetensors")
    runtime = OPTIONS.runtime()
    data = probe_data(final, runtime, OPTIONS).fixed(8, runtime.processes)
    prep = eval_prep(final, runtime)
    bn = bn_batches(final, runtime, OPTIONS, 8)
    final_state = {k: v.clone() for k, v in final.model.state_dict().items()}
    loss_f, acc_f = evaluate(final.model, data, prep, runtime, bn_data=bn)
    g = 3
    group = layer_groups(final.model)[g]
    reset = {k: init.model.state_dict()[k] for k in group_tensors(final.model, group)}
    final.model.load_state_dict({**final_state, **reset})
    loss_r, acc_r = evaluate(final.model, data, prep, runtime, bn_data=bn)
    assert change.rewind_error[g] == pytest.approx(acc_f - acc_r, abs=1e-12)
    assert change.rewind_loss[g] == pytest.approx(loss_r - loss_f, rel=1e-9)
    assert change.final_error == pytest.approx(1 - acc_f, abs=1e-12)
    # The movement is the relative distance of the group's parameters.
    w, w0 = final_state, init.model.state_dict()
    moved = sum(float(((w[n] - w0[n]) ** 2).sum()) for n in group.params) ** 0.5
    norm = sum(float((w0[n] ** 2).sum()) for n in group.params) ** 0.5
    assert change.movement[g] == pytest.approx(moved / norm)


def test_explain_with_several_runs_reports_their_standard_error(runs, tmp_path):
    options = ExplainOptions(examples=64, batch_size=8, bn_batches=2)
    e = explain_runs([runs["seed0"], runs["seed1"]], options=options, out=tmp_path / "e.h5")
    per_run = np.stack([c.rewind_error for c in e.changes])
    np.testing.assert_allclose(e.rewind_error.value, per_run.mean(0))
    np.testing.assert_allclose(e.rewind_error.se, per_run.std(0, ddof=1) / np.sqrt(2))
    assert e.errors == "standard error over 2 runs"
    assert e.status[-1] == "new"
    with h5py.File(tmp_path / "e.h5") as f:
        assert f.attrs["kind"] == "explain"
        assert json.loads(f.attrs["runs"]) == [str(runs["seed0"]), str(runs["seed1"])]
        assert f["runs/rewind_error"].shape == (2, 6)
        statuses = [s.decode() for s in f["groups/status"][()]]
        assert statuses == e.status
        assert sum(f["summary"].attrs[s] for s in set(statuses)) == 6


def test_explain_one_run_uses_the_jackknife_over_batches(runs):
    options = ExplainOptions(examples=64, batch_size=8, bn_batches=2)
    e = explain_runs([runs["seed0"]], options=options)
    c = e.changes[0]
    assert e.errors == "jackknife over 8 batches"
    np.testing.assert_allclose(e.rewind_error.se, c.rewind_error_se)
    assert all(e.status[g] == status_of(c.rewind_error[g], c.rewind_error_se[g])
               for g in range(5))  # fmt: skip
    named = " ".join(e.sentences)
    assert all(name in named for name in e.groups)


def test_against_gives_a_jackknifed_barrier(runs):
    options = ExplainOptions(examples=64, batch_size=8, bn_batches=2, points=5)
    e = explain_runs([runs["seed0"]], against=runs["seed1"], options=options)
    b = e.basin
    assert b is not None and len(b.alphas) == 5
    # The barrier of the summed curve, independently of the jackknife.
    straight = (1 - b.alphas) * b.error[0] + b.alphas * b.error[-1]
    assert b.error_barrier == pytest.approx(max(b.error - straight))
    assert b.error_barrier_se >= 0 and b.cka.value.shape == (6,)
    assert any("against" in s for s in e.sentences)


def test_jackknife_of_the_barrier_is_the_module_jackknife(runs):
    # The errors come from probes.statistics.jackknife, no copy of it.
    parts = np.array([[1.0, 2.0], [3.0, 2.0]])
    value, se = jackknife(parts, lambda t: t[0] / t[1])
    assert value == 1.0 and se == pytest.approx(0.5)


def test_cli_refuses_a_run_without_initial_weights(runs, tmp_path):
    out = tmp_path / "e.h5"
    result = CliRunner().invoke(app, ["explain", str(runs["random"]), "--out", str(out)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {runs['random']} was trained from random init (no --init or --pretrained): "
        "nothing was transferred to explain"
    ]
    assert not out.exists()


def test_cli_refuses_against_a_run_of_another_architecture(runs, tmp_path):
    other = tmp_path / "other"
    engine.train(fast_config(model="test_efficientnet", epochs=1), other)
    out = tmp_path / "e.h5"
    result = CliRunner().invoke(
        app, ["explain", str(runs["seed0"]), "--against", str(other), "--out", str(out)]
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: --against ")
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_cli_writes_the_file_and_its_plot(runs, tmp_path):
    out = tmp_path / "e.h5"
    result = CliRunner().invoke(
        app,
        ["explain", str(runs["seed0"]), "--examples", "32", "--batch-size", "8",
         "--bn-batches", "2", "--out", str(out), "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.exists() and out.with_suffix(".png").stat().st_size > 0
    assert "reset to its initial weights" in result.output


@pytest.fixture(scope="module")
def sweep(runs, tmp_path_factory):
    """A finished 4-trial sweep of lr and freezing around the tiny source."""
    from landscape.tune.sweep import run_sweep
    from landscape.tune.sweep_options import SweepOptions

    root = tmp_path_factory.mktemp("sweep")
    space = root / "space.toml"
    space.write_text(
        f'[base]\ninit = "{runs["source"]}"\ndata = "synthetic:near"\nimage-size = 16\n'
        "train-per-class = 4\nepochs = 2\nbatch-size = 8\neval-batch-size = 64\n"
        "[space]\nlr = { low = 1e-3, high = 0.1, log = true }\n"
        "freeze-groups = { low = 0, high = 3 }\n"
    )
    run_sweep(space, SweepOptions(trials=4, heartbeat=1, prune=False), out=root / "sweep")
    return root / "sweep"


def test_explain_sweep_correlates_the_probes_of_its_top_and_bottom_trials(sweep, tmp_path):
    from scipy import stats

    from landscape.tune.explain_sweep import explain_sweep

    options = ExplainOptions(examples=32, batch_size=8, bn_batches=1)
    e = explain_sweep(sweep, share=0.5, options=options, result=tmp_path / "s.h5")
    values = [t.value for t in e.trials]
    assert len(e.trials) == 4 and values == sorted(values, reverse=True)
    assert set(e.importance) <= {"lr", "freeze-groups"} and e.complete == 4
    g = 3
    rewind = [c.rewind_error[g] for c in e.changes]
    rho = e.with_objective["rewind_error"][g].rho
    assert rho == pytest.approx(stats.spearmanr(rewind, values).statistic) or (
        np.isnan(rho) and len(set(rewind)) == 1
    )
    with h5py.File(tmp_path / "s.h5") as f:
        assert f.attrs["kind"] == "explain_sweep"
        np.testing.assert_allclose(f["probes/movement"][()], [c.movement for c in e.changes])
    for name, to_probe, to_objective in e.chains:
        assert name in e.importance and to_objective.target == "objective"
        assert to_probe.target == to_objective.source


def test_explain_sweep_refuses_a_study_with_no_complete_trial(tmp_path):
    import optuna

    from landscape.tune.explain_sweep import explain_sweep
    from landscape.tune.sweep import default_storage

    optuna.create_study(study_name="empty", storage=default_storage(tmp_path))
    with pytest.raises(ConfigError, match="no complete trial"):
        explain_sweep(tmp_path, study="empty")
    out = tmp_path / "explain.h5"
    result = CliRunner().invoke(app, ["explain", "--sweep", str(tmp_path), "--out", str(out)])
    assert result.exit_code == 1 and not out.exists()
    assert result.output.strip().splitlines() == [
        f"error: --sweep {tmp_path}: study empty has no complete trial yet, nothing to explain"
    ]


def test_explain_needs_runs_or_a_sweep_not_both(runs, tmp_path):
    result = CliRunner().invoke(app, ["explain", str(runs["seed0"]), "--sweep", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.strip() == "error: give either runs to explain or --sweep DIR, not both"


def test_block_shuffle_share_trains_the_three_recipes_and_reads_their_accuracies(runs, tmp_path):
    from finetune.rundir import read_config
    from finetune.runs import run_summary
    from landscape.tune.explain import random_init_recipe

    options = ExplainOptions(examples=32, batch_size=8, bn_batches=1)
    e = explain_runs([runs["seed0"]], block_shuffle=4, options=options,
                     runs_dir=tmp_path / "shuffled")  # fmt: skip
    trained = run_dirs(tmp_path / "shuffled")
    assert len(trained) == 3
    configs = [read_config(run)["config"] for run in trained]
    assert sorted(c["data"]["block_shuffle"] or 0 for c in configs) == [0, 4, 4]
    assert sorted(bool(c["model"]["init"]) for c in configs) == [False, False, True]
    s = e.shuffle
    by_kind = {(bool(c["model"]["init"]), c["data"]["block_shuffle"]): run_summary(r)["test_acc"]
               for c, r in zip(configs, trained)}  # fmt: skip
    assert s.pretrained[0] == run_summary(runs["seed0"])["test_acc"]
    assert s.random[0] == by_kind[(False, None)]
    assert s.pretrained_shuffled[0] == by_kind[(True, 4)]
    assert s.random_shuffled[0] == by_kind[(False, 4)]
    gain = s.pretrained[0] - s.random[0]
    assert s.share[0] == pytest.approx((s.pretrained_shuffled[0] - s.random_shuffled[0]) / gain)
    assert any("block shuffle 4 px" in line for line in e.sentences)
    # The random-init recipe keeps the optimiser and plain L2, drops what needs init weights.
    random = random_init_recipe(load_run(runs["frozen"]).config)
    assert random.model.init is None and random.policy.freeze_groups == 0
    assert random.optim == load_run(runs["frozen"]).config.optim


def test_block_shuffle_that_does_not_divide_the_image_is_refused(runs):
    with pytest.raises(ConfigError, match="--block-shuffle 5 must divide"):
        explain_runs([runs["seed0"]], block_shuffle=5)


def test_explain_a_vision_transformer_without_batchnorm(tmp_path):
    source, run = tmp_path / "source", tmp_path / "run"
    vit = dict(model="landscape_vit_p4", image_size=16)
    engine.train(fast_config("pretrain", data="synthetic:source", epochs=1, **vit), source)
    engine.train(fast_config(epochs=1, init=str(source), freeze_groups=2, **vit), run)
    e = explain_runs([run], options=ExplainOptions(examples=32, batch_size=8))
    assert e.groups[0] == "stem" and e.groups[-1] == "head" and len(e.groups) == 8
    assert e.changes[0].bn_batches == 0  # nothing to re-estimate
    assert e.status[:2] == ["frozen", "frozen"] and e.status[-1] == "new"
    np.testing.assert_allclose(e.cka.value[:2], 1.0, atol=1e-9)


def test_a_reset_that_lowers_the_error_beyond_its_error_is_said_to_help():
    from landscape.tune.explain import Explanation, Measured, sentences
    from probes.change import GroupChange

    n = 3
    zeros = np.zeros(n)
    change = GroupChange("run", "init", ["stem", "layer1", "head"], [False, False, True],
                         zeros, zeros, zeros, zeros + 1, zeros, zeros, zeros, zeros, 0.1, 0.3,
                         "synthetic:near", "test", 100, 10, 1, 0.0)  # fmt: skip
    rewind = Measured(np.array([-0.10, -0.01, 0.3]), np.array([0.01, 0.01, 0.01]))
    e = Explanation(["run"], [change], change.groups, ["reused", "reused", "new"],
                    Measured(zeros, zeros), Measured(zeros, zeros), rewind,
                    Measured(zeros, zeros), "jackknife over 10 batches")  # fmt: skip
    (reused, _) = sentences(e)
    stem, layer1 = reused.split("; layer1")
    assert "the reset helps" in stem and "the reset helps" not in layer1
