"""Executors (finetune.executors): a grid's runs trained one after the other, on worker
processes, as the same bit-identical run directories (one thread per run); one run reached
by two executors at once trained once; a worker killed mid-run retried from its
checkpoint; the dry run of a claim, which trains nothing."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from finetune import rundir
from finetune.config import build_config
from finetune.executors import PlannedRun, Serial, executor_for, lock_path, train_all, train_once
from finetune.executors.processes import LocalProcesses
from finetune.runs import run_summary
from landscape.experiments.options import ReproOptions, no_log

ROOT = Path(__file__).resolve().parents[1]


def planned(folder: Path, seed: int, per_class: int = 10, epochs: int = 2) -> PlannedRun:
    values = {"model": "test_resnet", "data": "synthetic:near", "train_per_class": per_class,
              "epochs": epochs, "seed": seed}  # fmt: skip
    return PlannedRun(build_config("finetune", {}, values), folder / f"run-seed{seed}")


def weights(run: Path) -> dict:
    return rundir.load_weights(run / rundir.FINAL)


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(wa[k].equal(wb[k]) for k in wa)


def test_worker_processes_train_the_same_runs_as_one_thread_here(tmp_path):
    grid = [planned(tmp_path / "serial", seed) for seed in range(3)]
    finished: list[str] = []
    train_all(Serial(threads=1), grid, lambda run, done: finished.append(run.name))
    assert finished == [run.name for run in grid]
    assert LocalProcesses(2).threads == max(1, len(os.sched_getaffinity(0)) // 2)
    # The serial runs' threads: bit-identity holds per thread count.
    workers = LocalProcesses(2, threads=1)
    parallel = [planned(tmp_path / "workers", seed) for seed in range(3)]
    train_all(workers, parallel + parallel[:1])  # a repeated run is trained once
    for a, b in zip(grid, parallel):
        assert same_weights(a.path, b.path)
        assert run_summary(a.path)["test_acc"] == run_summary(b.path)["test_acc"]


def _train_once_in_a_process(run: PlannedRun, queue) -> None:
    import torch

    torch.set_num_threads(1)
    queue.put(train_once(run).reused)


def test_one_run_reached_by_two_executors_at_once_trains_once(tmp_path):
    run = planned(tmp_path, 0)
    context = multiprocessing.get_context("spawn")
    queue = context.SimpleQueue()
    processes = [context.Process(target=_train_once_in_a_process, args=(run, queue))
                 for _ in range(2)]  # fmt: skip
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0]
    assert sorted(queue.get() for _ in range(2)) == [False, True]  # one trained, one reused
    assert rundir.read_status(run.path)[0] == "completed"
    assert lock_path(run.path).read_text().split(":")[0]  # the holder was named


def kill_mid_run(run: Path, timeout: float = 120.0) -> int:
    """SIGKILL the process training ``run`` (named in its lock) once it has checkpointed
    and before it completes; the pid killed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        started = (run / rundir.CHECKPOINTS / rundir.LAST).exists()
        if started and rundir.read_status(run)[0] == "running":
            pid = int(lock_path(run).read_text().strip().split(":")[1])
            os.kill(pid, signal.SIGKILL)
            return pid
        time.sleep(0.05)
    raise AssertionError(f"{run} never ran long enough to be killed")


def check_resumed(killed: PlannedRun, reference: PlannedRun, init_stamp: int) -> None:
    """The killed run completed by resuming (its initial weights written once), to the
    weights of an uninterrupted run."""
    assert rundir.read_status(killed.path)[0] == "completed"
    assert (killed.path / rundir.INIT).stat().st_mtime_ns == init_stamp
    assert same_weights(killed.path, reference.path)


@pytest.mark.extended
def test_a_worker_killed_mid_run_is_replaced_and_its_run_resumes(tmp_path):
    long = [planned(tmp_path / "workers", seed, per_class=50, epochs=30) for seed in (0, 1)]
    context = multiprocessing.get_context("spawn")
    grid = context.Process(target=_train_on_workers, args=(long,))
    grid.start()
    kill_mid_run(long[0].path)
    init_stamp = (long[0].path / rundir.INIT).stat().st_mtime_ns
    grid.join(timeout=300)
    assert grid.exitcode == 0
    reference = planned(tmp_path / "serial", 0, per_class=50, epochs=30)
    train_all(Serial(threads=1), [reference])
    check_resumed(long[0], reference, init_stamp)


def _train_on_workers(runs: list[PlannedRun]) -> None:
    train_all(LocalProcesses(2, threads=1), runs)


def test_executor_flags_are_checked_in_one_line(tmp_path):
    from finetune.errors import ConfigError

    with pytest.raises(ConfigError, match="--workers must be at least 1"):
        executor_for(0)
    with pytest.raises(ConfigError, match="not both"):
        executor_for(2, "127.0.0.1:6379")
    command = [sys.executable, "-m", "cli", "repro", "depth", "--quick", "--workers", "0",
               "--runs", str(tmp_path)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and done.stderr.strip().splitlines() == [
        "error: --workers must be at least 1, got 0"
    ]


def test_ray_without_its_extra_is_one_line_naming_it(monkeypatch):
    from finetune.errors import ConfigError
    from finetune.executors.ray_cluster import RayCluster

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r'--ray needs Ray: pip install -e "\.\[ray\]"'):
        RayCluster("127.0.0.1:1").map(str, [1])


def test_a_dry_run_lists_a_claims_grid_and_trains_nothing(tmp_path):
    command = [sys.executable, "-m", "cli", "repro", "depth", "--quick", "--dry-run",
               "--runs", str(tmp_path / "runs"), "--out", str(tmp_path)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    # The source, then near and far x K = 0, 2, 5 (test_resnet's 6 groups) x seeds 0, 1.
    assert lines[0] == "depth: 13 runs, 0 complete, 13 to train"
    assert lines[1].split()[:3] == ["to", "train", "pretrain"]
    assert sum("depth-far-freeze5-e15-seed1" in line for line in lines) == 1
    assert list(tmp_path.iterdir()) == []  # nothing written


def _square_on_its_options(cell: tuple[ReproOptions, int]) -> tuple[int, int, bool]:
    options, value = cell
    return value * value, options.workers, options.progress is None


def test_independent_chains_run_on_the_workers_with_options_that_train_where_they_run(tmp_path):
    options = ReproOptions(runs=tmp_path, workers=2, progress=print)
    worker = options.worker()
    assert (worker.workers, worker.ray, worker.progress, worker.log) == (1, None, None, no_log)
    finished: list[int] = []
    cells = [(worker, value) for value in range(5)]
    squares = options.map(_square_on_its_options, cells, lambda cell, _: finished.append(cell[1]))
    assert squares == [(value * value, 1, True) for value in range(5)]  # in the items' order
    assert sorted(finished) == list(range(5))
    here = ReproOptions(runs=tmp_path, progress=print)
    assert here.worker() is here  # serial: the calls run here, with these very options
