"""Module criticality on a run whose first four groups were transferred and frozen and whose
fifth was re-initialised and trained: the frozen groups' rewinds are flat and not critical,
the trained group is; the rewind's ends are the run's own and the initial model's training
error, and the whole model's line is the barrier's; the grid search against hand-made grids
and the stored grid's arithmetic against the weight files; the command, its file and its
one-line errors."""

import dataclasses
from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch
from conftest import fast_config
from safetensors.torch import load_file
from test_cli import run_cli
from test_results_layout import actual, documented, registry_problems

from finetune import engine
from finetune.evaluation.measure import evaluate
from finetune.groups import layer_groups
from finetune.runs import load_run
from landscape.geometry.barrier import barrier_between
from landscape.geometry.criticality import (
    Criticality,
    fresh_head,
    group_tensors,
    module_criticality,
    objective_grid,
    smallest_feasible,
)
from landscape.geometry.options import CRITICALITY_PROBE, CriticalityOptions
from landscape.plots import plot_file
from probes.inputs import run_inputs

OPTIONS = CriticalityOptions(points=3, sigmas=(0.01, 0.1, 1.0), draws=2,
                             probe=replace(CRITICALITY_PROBE, device="cpu"))  # fmt: skip
FROZEN = 4  # stem, layer1.0, layer2.0, layer3.0: transferred and frozen


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A source pre-trained on synthetic:source (20 classes); a run on synthetic:near from
    it with the first four groups kept and frozen, layer4.0 and the head re-initialised and
    trained; and a run on synthetic:near from random init (seconds)."""
    out = tmp_path_factory.mktemp("criticality")
    source, target, scratch = out / "source", out / "target", out / "scratch"
    engine.train(fast_config("pretrain", data="synthetic:source", epochs=4), source, command="t")
    config = fast_config(
        init=str(source), transfer_groups=FROZEN, freeze_groups=FROZEN, epochs=20, lr=0.05
    )
    engine.train(config, target, command="t")
    engine.train(fast_config(), scratch, command="t")
    return source, target, scratch


@pytest.fixture(scope="module")
def measured(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("measured") / "c.h5"
    return module_criticality(runs[1], options=OPTIONS, out=out), out


def test_frozen_groups_rewind_flat_and_are_not_critical_the_trained_one_is(measured):
    result, _ = measured
    assert result.groups == ["stem", "layer1.0", "layer2.0", "layer3.0", "layer4.0"]
    found = result.criticalities
    final = result.final_error
    for g in range(FROZEN):
        assert result.distance[g] == 0.0
        assert np.all(result.curve_error[g] == final)
        assert np.all(result.curve_loss[g] == result.whole_loss[-1])
        assert found[g] == Criticality(0.0, 0.0, 0.0)
    trained = found[FROZEN]
    assert result.curve_error[FROZEN, 0] > final + result.epsilon  # its init alone fails
    assert 0.0 < trained.value < np.inf and trained.alpha > 0.0
    assert result.most_critical() == ("layer4.0", trained.value)
    # 3 points of the whole model, then per group 3 points and 3 x 3 sigmas x 2 draws.
    assert result.evaluations == 3 + 5 * 3 * (1 + 3 * 2)


def test_the_rewinds_end_at_the_runs_own_error_and_the_whole_line_is_the_barriers(runs, measured):
    result, _ = measured
    target = runs[1]
    runtime = OPTIONS.runtime()
    for weights, column in (("final.safetensors", -1), ("init.safetensors", 0)):
        loaded = load_run(target / weights)
        inputs = run_inputs(loaded, runtime, OPTIONS.probe)
        loss, acc = evaluate(loaded.model, inputs.data, inputs.prep, runtime,
                             bn_data=inputs.bn_data)  # fmt: skip
        assert result.whole_error[column] == pytest.approx(1.0 - acc, abs=1e-12)
        assert result.whole_loss[column] == pytest.approx(loss, rel=1e-6)
    # At a = 1 every group is at its final weights: the run itself.
    assert np.all(result.curve_error[:, -1] == result.final_error)
    # The whole model along (1 - a) theta0 + a thetaF is the barrier's line from init.
    line = barrier_between(target / "init.safetensors", target, points=3,
                           options=OPTIONS.probe)  # fmt: skip
    np.testing.assert_array_equal(line.curves["bn/error"], result.whole_error)
    np.testing.assert_allclose(line.curves["bn/loss"], result.whole_loss, rtol=1e-12)
    assert result.whole_error[0] > 0.5  # the initial head is a random one


def test_the_stored_grid_is_the_objective_of_the_weights_and_its_feasible_minimum(runs, measured):
    _, out = measured
    target = runs[1]
    w0 = load_file(str(target / "init.safetensors"))
    w1 = load_file(str(target / "final.safetensors"))
    groups = layer_groups(load_run(target).model)
    with h5py.File(out) as f:
        alphas, sigmas = f["alphas"][()], f["grid/sigma"][()]
        objective, satisfied = f["grid/objective"][()], f["grid/satisfied"][()]
        error, criticality = f["grid/error"][()], f["groups/criticality"][()]
        final_error, epsilon = f["summary"].attrs["final_error"], f.attrs["epsilon"]
        for g, name in enumerate(f["groups/names"].asstr()):
            group = groups[g]
            assert group.name == name
            move = torch.cat([(w1[n] - w0[n]).double().flatten() for n in group.params])
            weights = torch.cat([w1[n].double().flatten() for n in group.params])
            assert f["groups/distance"][g] == pytest.approx(float(move.norm()), rel=1e-9)
            rms = float(weights.norm()) / weights.numel() ** 0.5
            assert f["groups/weight_rms"][g] == pytest.approx(rms, rel=1e-9)
            np.testing.assert_allclose(sigmas[g], rms * np.array(OPTIONS.sigmas), rtol=1e-9)
            by_hand = alphas[:, None] ** 2 * float(move.norm()) ** 2 / sigmas[g][None, :] ** 2
            np.testing.assert_allclose(objective[g], by_hand, rtol=1e-9)
            np.testing.assert_array_equal(satisfied[g], error[g] <= final_error + epsilon + 1e-9)
            if f["curves/error"][g, 0] > final_error + epsilon:
                assert criticality[g] == objective[g][satisfied[g]].min()
            else:
                assert criticality[g] == 0.0
        # Noise of the group's whole rms weight hurts the trained group more than 1%.
        assert error[FROZEN, -1, -1] > error[FROZEN, -1, 0]


def test_the_grid_search_on_hand_made_grids():
    alphas, sigmas = np.array([0.0, 0.5, 1.0]), np.array([0.25, 0.5])
    objective = objective_grid(alphas, sigmas, distance=2.0)
    np.testing.assert_array_equal(objective, [[0, 0], [16, 4], [64, 16]])
    # Feasible: (0.5, 0.25) and (1, 0.5) tie at 16 (the first in order wins), and (1, 0.25).
    satisfied = np.array([[False, False], [True, False], [True, True]])
    found = smallest_feasible(alphas, sigmas, objective, satisfied, noiseless_start=False)
    assert found == Criticality(16.0, 0.5, 0.25)
    satisfied[1, 0] = False
    found = smallest_feasible(alphas, sigmas, objective, satisfied, noiseless_start=False)
    assert found == Criticality(16.0, 1.0, 0.5)
    # The group at its initial weights meets the constraint: not critical.
    found = smallest_feasible(alphas, sigmas, objective, satisfied, noiseless_start=True)
    assert found == Criticality(0.0, 0.0, 0.0)
    # Noise at a = 0 costs nothing either.
    satisfied[0, 1] = True
    found = smallest_feasible(alphas, sigmas, objective, satisfied, noiseless_start=False)
    assert found == Criticality(0.0, 0.0, 0.5)
    nothing = np.zeros_like(satisfied)
    found = smallest_feasible(alphas, sigmas, objective, nothing, noiseless_start=False)
    assert found.value == np.inf and np.isnan(found.alpha) and np.isnan(found.sigma)


def test_a_groups_rewind_moves_its_batchnorm_statistics_with_its_weights(runs):
    model = load_run(runs[1]).model
    stem = layer_groups(model)[0]
    moved = group_tensors(model, stem)
    assert set(stem.params) < set(moved)
    assert {"bn1.running_mean", "bn1.running_var", "conv1.1.running_var"} < set(moved)
    assert not any(name.endswith("num_batches_tracked") for name in moved)
    assert not any(name.startswith("layer") for name in moved)


def test_the_head_is_measured_only_when_theta0_has_a_learnt_one(runs):
    source, target, scratch = runs
    assert fresh_head(load_run(target / "init.safetensors"))  # source body, new head
    assert not fresh_head(load_run(scratch / "init.safetensors"))  # random throughout
    assert not fresh_head(load_run(target))  # final weights: a trained head


def test_criticality_command_against_another_run_writes_a_documented_file(
    runs, measured, tmp_path, monkeypatch, capsys
):
    _, target, scratch = runs
    out = tmp_path / "c.h5"
    code, stdout, _ = run_cli(
        monkeypatch, capsys, "criticality", str(target), "--init-ref", str(scratch),
        "--points", "2", "--sigmas", "0.5,0.05", "--draws", "1", "--examples", "16",
        "--bn-batches", "1", "--batch-size", "16", "--device", "cpu", "--out", str(out),
    )  # fmt: skip
    assert code == 0 and "most critical:" in stdout and "whole model" in stdout
    assert actual(out) == documented("criticality")
    assert registry_problems(out) == []
    assert out.with_suffix(".png").stat().st_size > 0
    with h5py.File(out) as f:
        assert list(f["groups/names"].asstr())[-1] == "head" and f.attrs["head"]
        assert f.attrs["weights_b"].endswith("scratch/final.safetensors")
        assert f.attrs["config_hash_b"] == load_run(scratch).record["config_hash"]
        assert list(f["sigmas"][()]) == [0.05, 0.5]
        assert f["summary"].attrs["examples"] == 16 and f["grid/error"].shape == (6, 2, 2)
    _, first = measured
    assert plot_file(first).stat().st_size > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--points", "1"], "--points must be at least 2"),
        (["--sigmas", "0.1,0"], "--sigmas takes comma-separated positive numbers"),
        (["--sigmas", "small"], "--sigmas takes comma-separated positive numbers"),
        (["--epsilon", "-0.1"], "--epsilon must be >= 0"),
        (["--draws", "0"], "--draws must be positive"),
        (["--examples", "0"], "--examples must be positive"),
        (["--init-ref", "SOURCE"], "differ at 'fc.weight'"),
        (["--init-ref", "{tmp}/nothing"], "nothing"),
    ],
)
def test_user_errors_end_in_one_line_and_write_nothing(
    runs, args, message, tmp_path, monkeypatch, capsys
):
    source, target, _ = runs
    args = [a.replace("SOURCE", str(source)).replace("{tmp}", str(tmp_path)) for a in args]
    out = tmp_path / "c.h5"
    code, _, stderr = run_cli(monkeypatch, capsys, "criticality", str(target), *args,
                              "--device", "cpu", "--out", str(out))  # fmt: skip
    assert code == 1 and stderr.startswith("error:") and stderr.count("\n") == 1
    assert message in stderr
    assert not out.exists() and not out.with_suffix(".png").exists()


@pytest.mark.extended  # torchrun, as in test_distributed
def test_two_processes_give_the_criticality_of_one(runs, tmp_path):
    from test_distributed import torchrun

    target = runs[1]
    # 40 training images in batches of 12: four batches (the last of 4), two per process.
    flags = ["--points", "2", "--sigmas", "0.1", "--draws", "1", "--batch-size", "12",
             "--bn-batches", "2", "--device", "cpu"]  # fmt: skip
    probe = replace(CRITICALITY_PROBE, batch_size=12, bn_batches=2, device="cpu")
    options = CriticalityOptions(points=2, sigmas=(0.1,), draws=1, probe=probe)
    one = module_criticality(target, options=options)
    done = torchrun("criticality", str(target), *flags, "--out", str(tmp_path / "two.h5"))
    assert done.returncode == 0, done.stderr[-3000:]
    with h5py.File(tmp_path / "two.h5") as f:
        assert f["summary"].attrs["examples"] == one.examples == 40
        np.testing.assert_allclose(f["curves/loss"][()], one.curve_loss, rtol=1e-5)
        np.testing.assert_array_equal(f["curves/error"][()], one.curve_error)
        np.testing.assert_array_equal(f["grid/error"][()], one.grid_error)
        np.testing.assert_array_equal(f["whole/error"][()], one.whole_error)


def test_a_run_with_no_critical_group_says_so(measured):
    result, _ = measured
    first = slice(0, FROZEN)
    frozen_only = dataclasses.replace(
        result, groups=result.groups[first], parameters=result.parameters[first],
        distance=result.distance[first], weight_rms=result.weight_rms[first],
        curve_error=result.curve_error[first], curve_loss=result.curve_loss[first],
        grid_error=result.grid_error[first],
    )  # fmt: skip
    assert frozen_only.most_critical() == ("", 0.0)
    assert frozen_only.summary()["most_critical"] == ""
    table = frozen_only.table()
    assert "no group is critical" in table and "most critical:" not in table
