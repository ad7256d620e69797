"""``landscape cka`` and ``landscape distance`` end to end: result files that match their
documented layouts, plots, and one-line errors."""

import h5py
import numpy as np
import pytest
from test_cli import run_cli
from test_results_layout import actual, documented

pytestmark = pytest.mark.slow


def test_cka_command_writes_a_documented_file_and_a_heatmap(demo_dir, tmp_path, monkeypatch,
                                                            capsys):
    run = demo_dir / "pretrained-seed0"
    out = tmp_path / "cka.h5"
    code, stdout, _ = run_cli(
        monkeypatch, capsys, "cka", str(run), "init", "--examples", "150", "--batch-size", "64",
        "--out", str(out),
    )
    assert code == 0 and "mean diagonal CKA" in stdout
    assert actual(out) == documented("cka")
    assert out.with_suffix(".png").stat().st_size > 0
    with h5py.File(out) as f:
        matrix, diagonal = f["cka"][()], f["diagonal"][()]
        assert f.attrs["weights_b"].endswith("init.safetensors")
        assert f["summary"].attrs["examples"] == 150
    assert np.allclose(np.diagonal(matrix), diagonal)
    assert np.all(matrix <= 1 + 1e-9)


def test_cka_of_a_run_with_itself_is_one_everywhere_on_the_diagonal(demo_dir, tmp_path):
    from probes.options import ProbeOptions
    from probes.similarity import compare_runs

    run = demo_dir / "random-seed0"
    options = ProbeOptions(examples=40, batch_size=16)
    result = compare_runs(run, run, layers="all", pool="mean", options=options)
    assert np.allclose(result.diagonal, 1.0)
    assert result.examples == 40


def test_distance_command_writes_a_documented_file(demo_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "d.h5"
    a, b = demo_dir / "pretrained-seed0", demo_dir / "pretrained-seed1"
    code, stdout, _ = run_cli(monkeypatch, capsys, "distance", str(a), str(b), "--out", str(out))
    assert code == 0 and "all parameters" in stdout
    assert actual(out) == documented("distance")
    assert out.with_suffix(".png").stat().st_size > 0


def test_runs_of_different_architectures_are_refused_in_one_line(
    demo_dir, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "d.h5"
    source, target = demo_dir / "source", demo_dir / "pretrained-seed0"
    code, _, stderr = run_cli(monkeypatch, capsys, "distance", str(target), str(source),
                              "--out", str(out))
    assert code == 1 and stderr.count("\n") == 1 and "'fc.weight'" in stderr
    assert not out.exists()


def test_a_missing_run_is_one_line(tmp_path, monkeypatch, capsys):
    code, _, stderr = run_cli(monkeypatch, capsys, "cka", str(tmp_path / "nope"), "init",
                              "--out", str(tmp_path / "c.h5"))
    assert code == 1 and stderr.startswith("error:") and stderr.count("\n") == 1


def test_probes_feed_a_block_shuffled_run_the_images_it_was_trained_on(tmp_path):
    import torch
    from conftest import fast_config

    from finetune import engine
    from finetune.data.block_shuffle import fixed_permutation, shuffle_blocks
    from finetune.runs import load_run
    from probes.inputs import eval_prep
    from probes.options import ProbeOptions

    engine.train(fast_config(epochs=1, block_shuffle=4, shuffle_seed=3), tmp_path / "r",
                 command="test")
    runtime = ProbeOptions(device="cpu").runtime()
    run = load_run(tmp_path / "r")
    images = torch.randint(0, 256, (2, 3, 16, 16), dtype=torch.uint8)
    scale = torch.tensor(run.model.pretrained_cfg["std"]).view(1, 3, 1, 1) * 255
    shift = torch.tensor(run.model.pretrained_cfg["mean"]).view(1, 3, 1, 1) * 255
    plain = (images.float() - shift) / scale
    expected = shuffle_blocks(plain, 4, fixed_permutation(16, 3))
    assert torch.allclose(eval_prep(run, runtime)(images), expected, atol=1e-5)
