"""The block-shuffle experiment: one result file matching its documented layout, numbers
that are the runs' own, runs reused on a second call, the plot, and the command line."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import fast_config
from test_cli import run_cli
from test_results_layout import actual, documented

from finetune.config import build_config
from finetune.errors import ConfigError
from finetune.runs import run_summary
from landscape.experiments.shuffle import run_shuffle
from landscape.plots import plot_file

# fast_config runs at 16px; the source run was pre-trained at 32px, which test_resnet (a
# convolutional net with global pooling) takes as initial weights at any image size.
BLOCKS = (4,)
SEEDS = (0,)


@pytest.fixture(scope="module")
def experiment(source_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("shuffle") / "shuffle.h5"
    base = fast_config(init=str(source_run), epochs=1)
    report = run_shuffle(base, BLOCKS, SEEDS, out, command="test")
    return base, report, out


def test_the_file_matches_its_documented_layout(experiment):
    _, _, out = experiment
    with h5py.File(out) as f:
        assert f.attrs["kind"] == "shuffle"
    assert actual(out) == documented("shuffle")


def test_the_numbers_are_the_runs_own(experiment, source_run):
    base, report, out = experiment
    runs = out.parent / "shuffle_runs"  # the default: beside the file, <stem>_runs
    with h5py.File(out) as f:
        assert f["block_sizes"][()].tolist() == [4, 16]  # intact added, ascending
        assert f["block_sizes"].dtype == np.int64 and f["seeds"][()].tolist() == [0]
        assert f["acc_pretrained"].shape == f["acc_scratch"].shape == (2, 1)
        assert f.attrs["image_size"] == 16 and f.attrs["scheme"] == "fixed"
        assert f.attrs["init"] == str(source_run)
        assert build_config("finetune", json.loads(f.attrs["config"])) == base
        for i, b in enumerate((4, 16)):
            for init in ("pretrained", "scratch"):
                path = f[f"runs_{init}"][i, 0].decode()
                assert Path(path) == runs / f"b{b}-{init}-seed0"
                assert f[f"acc_{init}"][i, 0] == run_summary(path)["test_acc"]
                config = json.loads((Path(path) / "config.json").read_text())["config"]
                assert config["data"]["block_shuffle"] == b
                assert config["model"]["init"] == (
                    str(source_run) if init == "pretrained" else None
                )
        pre, scratch = f["acc_pretrained"][()], f["acc_scratch"][()]
        np.testing.assert_allclose(f["gap"][()], pre[:, 0] - scratch[:, 0])
        s = f["summary"].attrs
        assert s["gap_intact"] == pytest.approx(pre[1, 0] - scratch[1, 0])
        assert s["gap_smallest_block"] == pytest.approx(pre[0, 0] - scratch[0, 0])
        assert (s["pretrained_intact"], s["scratch_intact"]) == (pre[1, 0], scratch[1, 0])
    rows = report.table().splitlines()
    assert rows[1].split()[0] == "4px" and rows[2].split()[:2] == ["16px", "(intact)"]
    assert float(rows[1].split()[-1]) == pytest.approx(report.gap[0], abs=5e-4)


def test_a_second_call_reuses_every_run(experiment):
    base, report, out = experiment
    finals = sorted((out.parent / "shuffle_runs").glob("*/final.safetensors"))
    assert len(finals) == 4
    before = [p.stat().st_mtime_ns for p in finals]
    again = run_shuffle(base, (4, 16), SEEDS, out, command="test")
    assert [p.stat().st_mtime_ns for p in finals] == before
    np.testing.assert_array_equal(again.acc_pretrained, report.acc_pretrained)


def test_the_plot_is_written(experiment, tmp_path):
    _, _, out = experiment
    png = plot_file(out, tmp_path / "shuffle.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_base_without_pretrained_init_or_with_a_bad_block_is_refused(tmp_path):
    out = tmp_path / "s.h5"
    with pytest.raises(ConfigError, match="give --init or --pretrained"):
        run_shuffle(fast_config(), BLOCKS, SEEDS, out)
    with pytest.raises(ConfigError, match="block size 3 does not divide the image size 16px"):
        run_shuffle(fast_config(init="x"), (3, 4), SEEDS, out)
    assert not tmp_path.joinpath("s_runs").exists() and not out.exists()


def test_the_command_line_reuses_the_runs_and_prints_the_table(
    experiment, source_run, monkeypatch, capsys
):
    _, _, out = experiment
    flags = ["--init", str(source_run), "--image-size", "16", "--train-per-class", "4"]
    flags += ["--epochs", "1", "--batch-size", "8", "--eval-batch-size", "64", "--log-every", "2"]
    finals = sorted((out.parent / "shuffle_runs").glob("*/final.safetensors"))
    before = [p.stat().st_mtime_ns for p in finals]
    code, stdout, stderr = run_cli(
        monkeypatch, capsys, "shuffle", *flags, "--block-sizes", "4", "--seeds", "0",
        "--out", str(out), "--quiet",
    )  # fmt: skip
    assert code == 0, stderr
    assert [p.stat().st_mtime_ns for p in finals] == before  # same configs: reused
    assert "16px (intact)" in stdout and "gap" in stdout
    assert str(out) in stdout and out.with_suffix(".png").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--block-sizes", "3"], "block size 3 does not divide the image size 16px"),
        (["--block-sizes", "4,x"], "--block-sizes takes comma-separated integers"),
        (["--seeds", ""], "--seeds takes comma-separated integers"),
    ],
)
def test_command_line_errors_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    out = tmp_path / "s.h5"
    code, _, stderr = run_cli(
        monkeypatch, capsys, "shuffle", "--init", "x", "--image-size", "16", *args,
        "--out", str(out), "--quiet",
    )  # fmt: skip
    lines = stderr.strip().splitlines()
    assert code == 1 and len(lines) == 1 and message in lines[0], stderr
    assert not out.exists() and not (tmp_path / "s_runs").exists()
