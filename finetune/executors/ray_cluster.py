"""``--ray ADDRESS``: the calls of a grid as tasks of a running Ray cluster (the optional
extra ``ray``). Each task asks for ``cpus_per_run`` CPUs and, on a cluster with GPUs,
1 / ``runs_per_gpu`` of a GPU, so that Ray packs tiny runs onto its GPUs; it computes with
as many threads as CPUs it asked for, in the driver's working directory (run directories
and a run's ``init`` may be relative paths). A task whose worker dies is retried by Ray,
and an interrupted run resumes from its checkpoint (``train_once``); every node must see
the run directories (one machine, or a shared file system)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from finetune.errors import ConfigError, LandscapeError
from finetune.executors import cores

T = TypeVar("T")
R = TypeVar("R")
RETRIES = 3  # Ray's retries of a task whose worker process died
LOCAL = "local"  # the address that starts a cluster of this machine


def _ray() -> Any:
    """The ``ray`` module, or a one-line error naming the extra."""
    try:
        import ray
    except ImportError:
        raise ConfigError('--ray needs Ray: pip install -e ".[ray]"') from None
    return ray


class RayCluster:
    """The Ray cluster at ``address`` (``ray start --head`` prints it; ``auto``: the one
    started on this machine; ``local``: a cluster of this machine's cores, started for
    this process and stopped with it)."""

    def __init__(self, address: str, cpus_per_run: int = 1, runs_per_gpu: int = 1) -> None:
        self.address, self.threads, self.runs_per_gpu = address, cpus_per_run, runs_per_gpu

    def map(
        self,
        function: Callable[[T], R],
        items: Sequence[T],
        done: Callable[[int, Any], None] | None = None,
    ) -> list[R]:
        ray = self._connect()
        gpus = 1 / self.runs_per_gpu if ray.cluster_resources().get("GPU", 0) > 0 else 0
        task = ray.remote(_call).options(
            num_cpus=self.threads, num_gpus=gpus, max_retries=RETRIES, retry_exceptions=False
        )
        cwd = os.getcwd()
        pending = {
            task.remote(function, item, self.threads, cwd): index
            for index, item in enumerate(items)
        }
        results: dict[int, R] = {}
        try:
            while pending:
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                index = pending.pop(ready)
                results[index] = _result(ray, ready)
                if done is not None:
                    done(index, results[index])
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
        return [results[index] for index in range(len(items))]

    def close(self) -> None:
        """Disconnect from the cluster (a ``local`` one stops)."""
        ray = _ray()
        if ray.is_initialized():
            ray.shutdown()

    def _connect(self) -> Any:
        ray = _ray()
        if ray.is_initialized():
            return ray
        quiet = {"logging_level": "ERROR", "log_to_driver": False}
        if self.address == LOCAL:
            ray.init(num_cpus=cores(), num_gpus=_gpus(), include_dashboard=False, **quiet)
            return ray
        try:
            ray.init(address=self.address, **quiet)
        except ConnectionError as err:
            raise ConfigError(f"--ray {self.address}: {err}") from None
        return ray


def _gpus() -> int:
    import torch

    return torch.cuda.device_count()


def _result(ray: Any, ref: Any) -> Any:
    """A task's result; an error a user caused comes back as itself (one line)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        if isinstance(err.cause, LandscapeError):
            raise err.cause from None
        raise


def _call(function: Callable[[T], R], item: T, threads: int, cwd: str) -> R:
    """One task: ``function(item)`` with ``threads`` threads in the directory ``cwd``."""
    import torch

    torch.set_num_threads(threads)
    os.chdir(cwd)
    return function(item)
