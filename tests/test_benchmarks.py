"""``landscape bench``: the runner writes one documented file per chosen benchmark, each with
the device description, its table repeats the files' numbers, the training benchmark runs
once per compile mode, on the dataset --data names, and a bad option is one line."""

import json
import re
from dataclasses import replace

import h5py
import pytest
import torch
from conftest import lscpu_model_name
from test_cli import run_cli
from test_results_layout import actual, described_device, documented, documented_device

from landscape.bench import suite as benchmarks
from landscape.bench.options import BenchOptions, SuiteOptions
from landscape.bench.suite import run_benchmarks
from landscape.bench.training import TrainBench

TINY = BenchOptions(image_size=16, batch_size=16, device="cpu")
TINY_SIZES = SuiteOptions(
    train_steps=3, reg_steps=2, barrier_examples=32, barrier_points=3, bn_batches=1, repeats=1
)
TINY_FLAGS = [
    "--image-size", "16", "--batch-size", "16", "--device", "cpu", "--train-steps", "3",
    "--barrier-examples", "32", "--barrier-points", "3", "--bn-batches", "1", "--repeats", "1",
    "--quiet",
]  # fmt: skip


def _summary(path):
    with h5py.File(path) as f:
        return dict(f["summary"].attrs)


def test_runner_writes_one_documented_file_per_chosen_benchmark(tmp_path):
    report = run_benchmarks(TINY, only=("barrier", "reg"), sizes=TINY_SIZES, out_dir=tmp_path)
    reg, barrier = tmp_path / "reg_cpu.h5", tmp_path / "barrier_cpu.h5"
    assert report.files == [reg, barrier]
    assert sorted(tmp_path.iterdir()) == [barrier, reg]
    assert actual(reg) == documented("bench_reg")
    assert actual(barrier) == documented("bench_barrier")
    for path in (reg, barrier):
        device = described_device(path)
        assert set(device) == documented_device()
        assert device["device"] == "cpu" and device["precision"] == "fp32"
        assert device["threads"] == torch.get_num_threads()
        assert device["processor"] == lscpu_model_name()
        assert device["torch_version"] == torch.__version__ and device["compile"] is False
    assert [r.benchmark for r in report.rows] == ["reg", "reg", "barrier", "barrier"]
    fused, explicit, interpolated, reestimated = (r.ratio for r in report.rows)
    assert fused == pytest.approx(_summary(reg)["ratio_fused"])
    assert explicit == pytest.approx(_summary(reg)["ratio_explicit"])
    assert interpolated == pytest.approx(_summary(barrier)["ratio"])
    assert reestimated == pytest.approx(_summary(barrier)["ratio_bn"])


def test_training_runs_once_per_compile_mode_into_its_own_file(tmp_path, monkeypatch):
    calls = []

    def fake(options, *, steps, data, data_root, download, out):
        calls.append((options.compile, steps, out))
        return TrainBench("m", data, "cpu", "cpu", "fp32", False, options.compile, 16, 16,
                          steps, 90.0, 100.0)  # fmt: skip

    monkeypatch.setattr(benchmarks, "bench_train", fake)
    report = run_benchmarks(
        TINY, only=["train"], compile_modes=[False, True], sizes=TINY_SIZES, out_dir=tmp_path
    )
    names = ["train_cpu.h5", "train_compiled_cpu.h5"]
    assert calls == [(False, 3, tmp_path / names[0]), (True, 3, tmp_path / names[1])]
    assert report.files == [tmp_path / name for name in names]
    assert [r.ratio for r in report.rows] == [0.9, 0.9]
    assert "compiled" not in report.rows[0].setting and "compiled" in report.rows[1].setting


def test_bench_command_runs_the_chosen_benchmarks_and_prints_one_table(
    tmp_path, monkeypatch, capsys
):
    code, out, _ = run_cli(
        monkeypatch, capsys, "bench", "--only", "train,barrier", *TINY_FLAGS,
        "--out-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["barrier_cpu.h5", "train_cpu.h5"]
    assert actual(tmp_path / "train_cpu.h5") == documented("bench_train")
    assert set(described_device(tmp_path / "train_cpu.h5")) == documented_device()
    train = re.search(r"^train .* (\d+\.\d{3})  engine / plain loop", out, flags=re.M)
    assert train and float(train[1]) == pytest.approx(
        _summary(tmp_path / "train_cpu.h5")["ratio"], abs=5e-4
    )
    assert len(re.findall(r"^barrier ", out, flags=re.M)) == 2
    assert not re.search(r"^(reg|cka) ", out, flags=re.M)


def test_training_runs_on_the_dataset_data_names_and_records_it(tmp_path):
    spec = "synthetic:near[0-2]"
    sizes = replace(TINY_SIZES, data=spec)
    report = run_benchmarks(TINY, only=["train"], sizes=sizes, out_dir=tmp_path)
    path = tmp_path / "train_cpu.h5"
    assert report.files == [path]
    assert actual(path) == documented("bench_train")
    summary = _summary(path)
    assert summary["data"] == spec
    assert summary["engine_images_per_s"] > 0 and summary["plain_images_per_s"] > 0
    # Three classes of 16 images: an epoch of the 3 timed steps of batch 16.
    assert summary["steps"] == 3
    with h5py.File(path) as f:
        data = json.loads(f.attrs["config"])["data"]
    assert data["spec"] == spec and data["train_per_class"] == 16
    assert data["image_size"] == TINY.image_size
    (row,) = report.rows
    assert spec in row.setting and row.ratio == pytest.approx(summary["ratio"])
    assert spec in report.table()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "nope"], "--data"),
        (["--data", "synthetic:nope"], "--data"),
        (["--data", "synthetic:near[0-12]"], "--data synthetic:near[0-12]"),
        (["--data", "synthetic:near[0]", "--batch-size", "512"], "--data synthetic:near[0]"),
        (["--only", "cka", "--data", "synthetic:near"], "--data"),
        (["--only", "train,nope"], "unknown benchmark(s) nope"),
        (["--compile-modes", "off,maybe"], "--compile-modes"),
        (["--cka-examples", "0"], "--cka-examples"),
        (["--barrier-points", "1"], "--barrier-points"),
    ],
)
def test_bad_bench_options_end_in_one_line(args, message, tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "bench", *args, "--out-dir", str(tmp_path))
    assert code == 1 and err.startswith("error:") and err.count("\n") == 1
    assert message in err
    assert not any(tmp_path.iterdir())


def test_a_value_outside_a_flags_choices_is_a_usage_error(tmp_path, monkeypatch, capsys):
    code, _, err = run_cli(monkeypatch, capsys, "bench", "--channels-last", "yes",
                           "--out-dir", str(tmp_path))  # fmt: skip
    assert code == 2 and err.startswith("error:") and err.count("\n") == 1
    assert "--channels-last" in err and "'auto', 'on', 'off'" in err
    assert not any(tmp_path.iterdir())
