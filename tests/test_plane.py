"""``landscape plane`` on the demo's runs: the runs' coordinates are their parameter
distances, the grid's layout is the one documented (and loss-landscape's), the centre of a
random plane is the run itself, and a wrong number of runs is one line."""

import h5py
import numpy as np
import pytest
import torch
from test_cli import run_cli
from test_results_layout import actual, documented

from finetune.evaluation.measure import evaluate
from finetune.groups import layer_groups
from finetune.runs import load_run
from landscape.geometry.paths import plane_through_runs
from landscape.geometry.plane import plane_around, plane_through
from probes.distance import parameter_distance
from probes.inputs import eval_prep, probe_data
from probes.options import ProbeOptions

pytestmark = pytest.mark.slow


def test_plane_through_three_runs_places_them_at_their_distances(demo_dir, tmp_path):
    runs = [demo_dir / n for n in ("pretrained-seed0", "pretrained-seed1", "random-seed0")]
    out = tmp_path / "p.h5"
    options = ProbeOptions(examples=48, bn_batches=0, batch_size=48, device="cpu")
    result = plane_through(*runs, grid=3, margin=0.1, options=options, out=out)
    assert actual(out) == documented("plane")
    models = [load_run(r).model for r in runs]
    groups = layer_groups(models[0])

    def distance(i: int, j: int) -> float:
        states = models[i].state_dict(), models[j].state_dict()
        return parameter_distance(*states, groups).total["distance"]

    (xa, ya), (xb, yb), (xc, yc) = result.run_xy
    assert (xa, ya, yb) == (0.0, 0.0, 0.0)
    assert xb == pytest.approx(distance(0, 1), rel=1e-6)
    assert np.hypot(xc, yc) == pytest.approx(distance(0, 2), rel=1e-6)
    assert np.hypot(xc - xb, yc) == pytest.approx(distance(1, 2), rel=1e-6)
    # The grid spans the runs' bounding box plus 10% on each side.
    width = max(xb, xc) - min(0.0, xc)
    assert result.x[0] == pytest.approx(min(0.0, xc) - 0.1 * width)
    assert result.y[-1] == pytest.approx(yc * 1.1)

    # loss[j, i] is the loss at (x[i], y[j]): check one off-diagonal point by hand.
    runtime = options.runtime()
    a = load_run(runs[0])
    plane, _ = plane_through_runs(a.model, *(m.state_dict() for m in models))
    data = probe_data(a, runtime, options).fixed(48, runtime.processes)
    plane.set(result.x[2], result.y[0])
    loss, _ = evaluate(a.model, data, eval_prep(a, runtime), runtime)
    assert result.loss[0, 2] == pytest.approx(loss, rel=1e-5)
    with h5py.File(out) as f:
        assert f["train_loss"].shape == (3, 3) == f["loss"].shape
        np.testing.assert_allclose(f["train_acc"][()], 100 * (1 - f["error"][()]))
        assert f["runs/x"][1] == pytest.approx(xb) and f.attrs["mode"] == "through"
        assert np.isnan(f.attrs["span"])


def test_the_centre_of_a_random_plane_is_the_run_itself(demo_dir, tmp_path):
    run = demo_dir / "pretrained-seed1"
    out = tmp_path / "around.h5"
    options = ProbeOptions(seed=1, examples=64, bn_batches=0, device="cpu")
    result = plane_around(run, grid=3, span=0.5, options=options, out=out)
    assert actual(out) == documented("plane")
    runtime = options.runtime()
    loaded = load_run(run)
    data = probe_data(loaded, runtime, options)
    images, labels = data.batches.images[data.order], data.batches.labels[data.order]
    with torch.no_grad():
        logits = loaded.model(eval_prep(loaded, runtime)(images))
    expected = torch.nn.functional.cross_entropy(logits, labels).item()
    assert list(result.x) == [-0.5, 0.0, 0.5] == list(result.y)
    assert result.loss[1, 1] == pytest.approx(expected, rel=1e-5)
    assert result.loss.max() > result.loss[1, 1]


def test_plane_command_takes_one_or_three_runs(demo_dir, tmp_path, monkeypatch, capsys):
    run = str(demo_dir / "pretrained-seed0")
    out = tmp_path / "p.h5"
    code, _, stderr = run_cli(monkeypatch, capsys, "plane", run, run, "--out", str(out))
    assert code == 1 and stderr.count("\n") == 1 and "one run" in stderr and "got 2" in stderr
    assert not out.exists()
    code, stdout, _ = run_cli(
        monkeypatch, capsys, "plane", run, "--grid", "2", "--examples", "32", "--bn-batches",
        "1", "--batch-size", "50", "--device", "cpu", "--out", str(out),
    )  # fmt: skip
    assert code == 0 and "plane around" in stdout
    assert out.with_suffix(".png").stat().st_size > 0
    with h5py.File(out) as f:
        assert f.attrs["mode"] == "around" and f.attrs["bn_batches"] == 1
        assert f["summary"].attrs["points"] == 4
