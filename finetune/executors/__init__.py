"""Executors: where the runs of a grid train. A grid is a list of ``PlannedRun`` (a
configuration and its run directory) known before anything trains; an executor brings each
one to completion and says when each finishes. ``Serial`` trains them one after the other
in this process (the default); ``LocalProcesses`` on N worker processes of this machine
(``processes.py``); ``RayCluster`` as tasks of a Ray cluster (``ray_cluster.py``). Every
executor trains a run through ``train_once``, under a lock on its directory, so that two
executors reaching one run train it once (the other waits and reuses it), and an
interrupted run is resumed from its checkpoint rather than trained again. On the CPU a run
is bit-identical whichever executor trains it, given the same threads per run."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from finetune import rundir
from finetune.config import RunConfig
from finetune.errors import ConfigError

T = TypeVar("T")
R = TypeVar("R")
LOCKS = ".locks"  # the folder beside the run directories that holds their locks


@dataclass(frozen=True)
class PlannedRun:
    """One run a grid needs: its configuration and the directory it trains into."""

    config: RunConfig
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def completed(self) -> bool:
        """Whether the directory holds this run, completed (a grid reuses it); a directory
        holding another run is refused (``finetune.runs.check_holds``)."""
        from finetune.runs import check_holds

        if not (self.path / rundir.STATUS).exists():
            return False
        if rundir.read_status(self.path)[0] != "completed":
            return False
        check_holds(self.config, self.path)
        return True


@dataclass(frozen=True)
class Finished:
    """A run an executor finished: whether it was already complete, and the seconds its
    training took here (0 when reused)."""

    reused: bool
    seconds: float


def lock_path(run: Path) -> Path:
    """The lock file of the run directory ``run``."""
    return run.parent / LOCKS / f"{run.name}.lock"


def train_once(run: PlannedRun, progress: Callable[[dict], None] | None = None) -> Finished:
    """Bring ``run`` to completion under an exclusive lock on its directory: reused when
    complete, resumed from its checkpoint when interrupted, trained otherwise. The lock
    (``flock``, released by the system when its holder dies) names its holder as
    ``host:pid``."""
    from finetune.runs import ensure_run

    lock = lock_path(run.path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if run.completed():
                return Finished(True, 0.0)
            handle.truncate(0)
            handle.write(f"{socket.gethostname()}:{os.getpid()}\n")
            handle.flush()
            started = time.perf_counter()
            ensure_run(run.config, run.path, progress=progress)
            return Finished(False, time.perf_counter() - started)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


Done = Callable[[int, Any], None]


class Executor(Protocol):
    """Calls ``function`` on every item, each call independent of the others, and
    ``done(index, result)`` as each finishes (in the order they finish); returns the results
    in the items' order. ``function`` and the items must pickle for executors that run them
    elsewhere; ``threads`` is how many threads each call computes with."""

    threads: int | None

    def map(
        self, function: Callable[[T], R], items: Sequence[T], done: Done | None = None
    ) -> list[R]: ...


@dataclass
class Serial:
    """Every call here, one after the other, with this process's threads (or ``threads``)."""

    threads: int | None = None

    def map(
        self, function: Callable[[T], R], items: Sequence[T], done: Done | None = None
    ) -> list[R]:
        with thread_count(self.threads):
            results = []
            for index, item in enumerate(items):
                results.append(function(item))
                if done is not None:
                    done(index, results[-1])
        return results


@contextlib.contextmanager
def thread_count(threads: int | None) -> Iterator[None]:
    """Within the block, torch computes with ``threads`` threads (None: unchanged)."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_all(
    executor: Executor,
    runs: Sequence[PlannedRun],
    done: Callable[[PlannedRun, Finished], None] | None = None,
    progress: Callable[[dict], None] | None = None,
) -> None:
    """Bring every run of ``runs`` to completion on ``executor`` (each directory once);
    ``done(run, finished)`` as each finishes. ``progress`` hears the engine's events when
    the runs train in this process."""
    unique = list({run.path: run for run in runs}.values())
    # Those already complete are reused here, without a worker or a task.
    left = [run for run in unique if not run.completed()]
    if done is not None:
        for run in unique:
            if run not in left:
                done(run, Finished(True, 0.0))
    here = isinstance(executor, Serial)
    function = _TrainWithProgress(progress) if here and progress is not None else train_once
    report = None if done is None else (lambda index, result: done(left[index], result))
    if left:
        executor.map(function, left, report)


@dataclass(frozen=True)
class _TrainWithProgress:
    progress: Callable[[dict], None]

    def __call__(self, run: PlannedRun) -> Finished:
        return train_once(run, self.progress)


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def executor_for(workers: int = 1, ray: str | None = None, runs_per_gpu: int = 1) -> Executor:
    """The executor of the flags ``--workers N`` and ``--ray ADDRESS`` (not both)."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    if runs_per_gpu < 1:
        raise ConfigError(f"--runs-per-gpu must be at least 1, got {runs_per_gpu}")
    if ray is not None:
        if workers != 1:
            raise ConfigError("give --workers N or --ray ADDRESS, not both")
        from finetune.executors.ray_cluster import RayCluster

        return RayCluster(ray, runs_per_gpu=runs_per_gpu)
    if workers == 1:
        return Serial()
    from finetune.executors.processes import LocalProcesses

    return LocalProcesses(workers)
