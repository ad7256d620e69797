"""``landscape barrier`` on the demo's runs: the ends are the runs' own evaluation, a pair
of different heads is refused in one line, the file matches its documented layout, and
runs fine-tuned from one pre-trained model are not separated by a barrier while runs from
random init are (Neyshabur et al. 2020)."""

import h5py
import numpy as np
import pytest
from test_cli import run_cli
from test_results_layout import actual, documented

from finetune.evaluation.measure import evaluate
from finetune.runs import load_run, run_summary
from landscape.geometry.barrier import barrier_between
from probes.inputs import eval_prep, probe_data
from probes.options import ProbeOptions

pytestmark = pytest.mark.slow


def test_the_ends_of_the_line_are_the_runs_own_evaluation(demo_dir):
    a, b = demo_dir / "pretrained-seed0", demo_dir / "pretrained-seed1"
    options = ProbeOptions(bn_batches=1, device="cpu")
    result = barrier_between(a, b, points=3, options=options)
    assert result.examples == 1000 and list(result.alphas) == [0.0, 0.5, 1.0]
    runtime = options.runtime()
    for run, end in ((a, 0), (b, -1)):
        loaded = load_run(run)
        data = probe_data(loaded, runtime, options)
        fixed = data.fixed(loaded.config.train.eval_batch_size, runtime.processes)
        loss, acc = evaluate(loaded.model, fixed, eval_prep(loaded, runtime), runtime)
        assert result.curves["raw/loss"][end] == pytest.approx(loss, rel=1e-6)
        assert result.curves["raw/error"][end] == pytest.approx(1.0 - acc, abs=1e-12)
        # ... and what the run itself recorded when it finished training.
        summary = run_summary(run)
        assert result.curves["raw/loss"][end] == pytest.approx(summary["test_loss"], rel=1e-5)
        assert 1.0 - result.curves["raw/error"][end] == pytest.approx(summary["test_acc"])
    # The re-estimated curve exists (test_resnet has BatchNorm) and is a different one.
    assert result.curve == "bn" and not np.allclose(result.curves["bn/loss"],
                                                    result.curves["raw/loss"])  # fmt: skip


def test_runs_from_one_pretrained_model_share_a_basin_random_ones_do_not(demo_dir):
    # On the demo's 100 training images (the loss the runs minimised): the demo's
    # random-init runs reach chance accuracy on its test split, where no basin can be told
    # apart, but they do fit part of their training set, each in its own basin.
    def loss_barrier(init: str) -> float:
        a, b = (demo_dir / f"{init}-seed{s}" for s in (0, 1))
        options = ProbeOptions(split="train", bn_batches=2, batch_size=50, device="cpu")
        result = barrier_between(a, b, points=5, options=options)
        assert result.curve == "bn" and result.bn_batches == 2
        return result.loss_barrier.linear

    pretrained, random = loss_barrier("pretrained"), loss_barrier("random")
    assert random > 0.1
    assert pretrained < 0.25 * random


def test_barrier_command_writes_a_documented_file_and_a_plot(demo_dir, tmp_path, monkeypatch,
                                                             capsys):  # fmt: skip
    out = tmp_path / "b.h5"
    run = demo_dir / "pretrained-seed0"
    code, stdout, _ = run_cli(
        monkeypatch, capsys, "barrier", str(run), "init", "--points", "3", "--examples", "64",
        "--bn-batches", "1", "--batch-size", "32", "--device", "cpu", "--out", str(out),
    )  # fmt: skip
    assert code == 0 and "loss barrier (BN re-estimated)" in stdout
    assert actual(out) == documented("barrier")
    assert out.with_suffix(".png").stat().st_size > 0
    with h5py.File(out) as f:
        assert f.attrs["weights_b"].endswith("init.safetensors")
        assert f.attrs["bn_batches"] == 1 and f.attrs["points"] == 3
        s = f["summary"].attrs
        assert s["examples"] == 64 and s["curve"] == "bn"
        assert s["loss_a"] == f["raw/loss"][0] and s["error_b"] == f["raw/error"][-1]
    png = tmp_path / "again.png"
    code, stdout, _ = run_cli(monkeypatch, capsys, "plot", str(out), "--out", str(png))
    assert code == 0 and png.stat().st_size > 0


def test_runs_with_different_heads_are_refused_in_one_line(demo_dir, tmp_path, monkeypatch,
                                                           capsys):  # fmt: skip
    out = tmp_path / "b.h5"
    source, target = demo_dir / "source", demo_dir / "pretrained-seed0"
    code, _, stderr = run_cli(
        monkeypatch, capsys, "barrier", str(source), str(target), "--device", "cpu",
        "--out", str(out),
    )  # fmt: skip
    assert code == 1 and stderr.startswith("error:") and stderr.count("\n") == 1
    assert "'fc.weight'" in stderr and "(20, 96) against (10, 96)" in stderr
    assert not out.exists() and not out.with_suffix(".png").exists()


def test_bench_barrier_matches_its_documented_layout(tmp_path):
    from landscape.bench.barrier import bench_barrier
    from landscape.bench.options import BenchOptions

    options = BenchOptions(image_size=16, batch_size=16, device="cpu")
    result = bench_barrier(
        options, examples=32, points=3, bn_batches=1, repeats=1, out=tmp_path / "bench.h5"
    )
    assert result.examples == 32 and result.bn_examples == 16
    assert result.plain_seconds > 0 and result.barrier_bn_seconds > 0
    assert "plain evaluation passes" in result.table()
    assert actual(tmp_path / "bench.h5") == documented("bench_barrier")
