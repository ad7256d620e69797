"""``--workers N``: the calls of a grid on N worker processes of this machine, each with
cores / N threads and, on a GPU machine, a GPU assigned round-robin (several workers share
one GPU when N is larger than the GPUs: tiny runs leave a GPU mostly idle). A worker that
dies (killed, out of memory) takes down the pool; the calls not yet finished go to a new
pool, where an interrupted run resumes from its checkpoint."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from finetune.executors import Done, cores

T = TypeVar("T")
R = TypeVar("R")
RESTARTS = 3  # new pools after a worker died, before the grid gives up


class LocalProcesses:
    """``workers`` processes here (spawned, so nothing of this process's state is shared)."""

    def __init__(self, workers: int, threads: int | None = None) -> None:
        self.workers = workers
        self.threads = threads or max(1, cores() // workers)

    def map(
        self, function: Callable[[T], R], items: Sequence[T], done: Done | None = None
    ) -> list[R]:
        results: dict[int, R] = {}
        for restart in range(RESTARTS + 1):
            try:
                self._pool_round(function, items, results, done)
                break
            except BrokenProcessPool:
                if restart == RESTARTS:
                    raise RuntimeError(
                        f"a worker process died {RESTARTS + 1} times; see its output above"
                    ) from None
        return [results[index] for index in range(len(items))]

    def _pool_round(
        self,
        function: Callable[[T], R],
        items: Sequence[T],
        results: dict[int, R],
        done: Done | None,
    ) -> None:
        """Run the items without a result yet on one pool, filling ``results``."""
        left = [index for index in range(len(items)) if index not in results]
        if not left:
            return
        context = multiprocessing.get_context("spawn")
        counter = context.Value("i", 0)
        pool = ProcessPoolExecutor(
            max_workers=min(self.workers, len(left)),
            mp_context=context,
            initializer=_start_worker,
            initargs=(self.threads, counter),
        )
        try:
            pending: dict[Future, int] = {pool.submit(function, items[i]): i for i in left}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = pending.pop(future)
                    results[index] = future.result()
                    if done is not None:
                        done(index, results[index])
        finally:
            # An error stops the grid: the calls not started are dropped, not run.
            pool.shutdown(wait=True, cancel_futures=True)


def _start_worker(threads: int, counter: Any) -> None:
    """A worker's threads, and its GPU (round-robin by the order the workers started)."""
    import torch

    torch.set_num_threads(threads)
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    if torch.cuda.is_available():
        torch.cuda.set_device(index % torch.cuda.device_count())
