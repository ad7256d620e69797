"""Data parallelism under torchrun: two gloo processes on the CPU give the run, the CKA
matrix and the barrier curves of one process with the same global batch and data. The tests
that start torchrun are marked extended (.ci/run's second step): each starts three
processes that import torch and timm, tens of seconds on 2 cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from finetune import engine
from finetune.config import build_config
from finetune.distributed import Processes, share
from finetune.engine import process_share
from finetune.evaluation.batches import fixed_batches
from landscape.geometry.barrier import barrier_between
from probes.options import ProbeOptions
from probes.similarity import compare_runs

# test_vit has no BatchNorm, so its data-parallel steps are exactly the one-process steps;
# 70 examples in global batches of 12 end with a partial batch of 10 (5 per process).
# Augmentation stays on: each process draws it for the whole global batch.
VIT = dict(
    model="test_vit",
    data="synthetic:near",
    image_size=16,
    train_per_class=7,
    batch_size=12,
    epochs=2,
    eval_batch_size=32,
    device="cpu",
)


def torchrun(*args: str) -> subprocess.CompletedProcess:
    """``landscape ARGS`` on two processes (gloo, one thread each)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", "-m", "cli", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def flags(values: dict) -> list[str]:
    return [
        part for key, value in values.items() for part in (f"--{key.replace('_', '-')}", str(value))
    ]


def assert_same_weights(run_a: Path, run_b: Path) -> None:
    a, b = load_file(run_a / "final.safetensors"), load_file(run_b / "final.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-6, msg=name)


def test_share_cuts_like_tensor_split():
    for n in range(13):
        for parts in range(1, 5):
            spans = [share(n, parts, i) for i in range(parts)]
            expected = [len(p) for p in torch.arange(n).tensor_split(parts)]
            assert [size for _, size in spans] == expected
            assert [start for start, _ in spans] == list(np.cumsum([0] + expected[:-1]))


@pytest.mark.parametrize("world", [2, 3])
def test_process_shares_reassemble_every_global_batch(world):
    order, batch = torch.randperm(23), 6
    shares = [process_share(order, batch, Processes(rank, world)) for rank in range(world)]
    steps = [share_.split(batch // world) for share_ in shares]
    rebuilt = [torch.cat(parts) for parts in zip(*steps, strict=True)]
    assert [b.tolist() for b in rebuilt] == [b.tolist() for b in order.split(batch)]


def test_fixed_batches_hand_every_batch_to_one_process():
    source = SimpleNamespace(images=None)
    order = torch.randperm(29)
    sizes = [8, 8, 13]  # batches of 8; a last batch of 5 < minimum 6 joins the one before
    seen = []
    for rank in range(2):
        mine = fixed_batches(source, order, 8, Processes(rank, 2), minimum=6)
        assert (mine.examples, mine.batches) == (29, 3)
        seen += list(zip(mine.sizes, mine.order.split(list(mine.sizes))))
    expected = list(zip(sizes, order.split(sizes)))
    assert sorted((n, b.tolist()) for n, b in seen) == sorted((n, b.tolist()) for n, b in expected)
    lonely = fixed_batches(source, order, 29, Processes(1, 2))
    assert lonely.sizes == () and len(lonely.order) == 0 and list(lonely) == []


@pytest.fixture(scope="module")
def one_process(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    engine.train(build_config("finetune", {}, VIT), out)
    return out


@pytest.mark.extended
def test_two_process_fine_tuning_equals_one_process(one_process, tmp_path):
    out = tmp_path / "two"
    done = torchrun("finetune", *flags(VIT), "--out", str(out), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_weights(one_process, out)
    with h5py.File(one_process / "run.h5") as f, h5py.File(out / "run.h5") as g:
        np.testing.assert_allclose(g["steps/loss"][()], f["steps/loss"][()], rtol=1e-5)
        for name in ("train_acc", "eval_acc", "eval_loss"):
            np.testing.assert_allclose(g[f"epochs/{name}"][()], f[f"epochs/{name}"][()], 1e-6)
    record = json.loads((out / "config.json").read_text())
    assert record["runtime"]["world_size"] == 2 and record["runtime"]["backend"] == "gloo"
    # One line of results, from the main process only.
    assert done.stdout.count("test acc") == 1


@pytest.mark.extended
def test_two_process_lp_ft_and_auto_rgn_equal_one_process(tmp_path):
    """The probe freezes tensors DDP was built for, and Auto-RGN sums each process's
    gradients of its share of the measured batches."""
    staged = {**VIT, "epochs": 3, "lp_epochs": 1, "auto_lr": "rgn"}
    engine.train(build_config("finetune", {}, staged), tmp_path / "one")
    done = torchrun("finetune", *flags(staged), "--out", str(tmp_path / "two"), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_weights(tmp_path / "one", tmp_path / "two")
    with h5py.File(tmp_path / "one" / "run.h5") as f, h5py.File(tmp_path / "two" / "run.h5") as g:
        np.testing.assert_allclose(g["rgn/scale"][()], f["rgn/scale"][()], rtol=1e-5)


class _Interrupt(Exception):
    pass


def _stop_in_second_epoch(event: dict) -> None:
    if event["event"] == "step" and event["epoch"] == 2:
        raise _Interrupt


@pytest.mark.extended
def test_a_run_interrupted_on_one_process_resumes_on_two(one_process, tmp_path):
    out = tmp_path / "resumed"
    with pytest.raises(_Interrupt):
        engine.train(build_config("finetune", {}, VIT), out, progress=_stop_in_second_epoch)
    assert (out / "status").read_text().startswith("running")
    done = torchrun("finetune", "--resume", str(out), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "status").read_text().startswith("completed")
    assert_same_weights(one_process, out)


@pytest.mark.extended
def test_sync_bn_on_cpu_processes_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "sync"
    done = torchrun(
        "finetune", *flags({**VIT, "model": "test_resnet"}), "--sync-bn", "--out", str(out)
    )
    assert done.returncode != 0
    # One line from each process, no traceback of ours (torchrun adds its own summary).
    assert done.stderr.count("error: --sync-bn needs CUDA devices") == 2
    assert "finetune/engine/" not in done.stderr
    assert not out.exists()


@pytest.fixture(scope="module")
def resnet_pair(tmp_path_factory) -> tuple[Path, Path]:
    """Two test_resnet runs (BatchNorm) of different seeds."""
    root = tmp_path_factory.mktemp("pair")
    config = dict(VIT, model="test_resnet", train_per_class=4, batch_size=8, epochs=1)
    for seed in (0, 1):
        engine.train(build_config("finetune", {}, {**config, "seed": seed}), root / f"s{seed}")
    return root / "s0", root / "s1"


def _float_datasets(path: Path) -> dict[str, np.ndarray]:
    found = {}
    with h5py.File(path) as f:
        f.visititems(
            lambda name, obj: (
                found.__setitem__(name, obj[()])
                if isinstance(obj, h5py.Dataset) and obj.dtype.kind == "f"
                else None
            )
        )
    return found


@pytest.mark.extended
def test_cka_and_barrier_from_two_processes_equal_one(resnet_pair, tmp_path):
    a, b = map(str, resnet_pair)
    # 37 examples in batches of 8: five batches (the last of 5), three on one process.
    common = ["--examples", "37", "--batch-size", "8", "--device", "cpu"]
    barrier = ["--points", "3", "--bn-batches", "3", "--split", "test"]
    options = ProbeOptions(examples=37, batch_size=8, bn_batches=3, device="cpu")
    compare_runs(a, b, options=options, out=tmp_path / "cka1.h5")
    barrier_between(a, b, points=3, options=options, out=tmp_path / "barrier1.h5")
    for argv in (
        ["cka", a, b, *common, "--out", str(tmp_path / "cka2.h5")],
        ["barrier", a, b, *common, *barrier, "--out", str(tmp_path / "barrier2.h5")],
    ):
        done = torchrun(*argv)
        assert done.returncode == 0, done.stderr[-3000:]
    for kind in ("cka", "barrier"):
        one, two = (
            _float_datasets(tmp_path / f"{kind}1.h5"),
            _float_datasets(tmp_path / f"{kind}2.h5"),
        )
        assert one.keys() == two.keys()
        for name in one:
            np.testing.assert_allclose(two[name], one[name], rtol=1e-5, atol=1e-7, err_msg=name)
    # The re-estimated curve differs from the raw one, so the pooled statistics were used.
    curves = _float_datasets(tmp_path / "barrier2.h5")
    assert not np.allclose(curves["bn/loss"], curves["raw/loss"])
    with h5py.File(tmp_path / "barrier2.h5") as f:
        assert f.attrs["bn_batches"] == 3 and f.attrs["bn_examples"] == 24
