"""Data-parallel processes started by ``torchrun``: who this process is, and the few
collectives the engine and the probes need. Without torchrun (no ``WORLD_SIZE`` above 1 in
the environment) everything here is a no-op on a single process, so the same code runs
both ways.

torchrun sets ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` and the rendezvous address; the
process group is NCCL on GPUs and gloo on CPUs. Every process computes the same thing on its
own share of the data; results are summed across processes, and only the main process
(rank 0) writes files."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Processes:
    """This process's place among the data-parallel processes of one job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Whether this process writes the outputs (rank 0)."""
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the processes, in place (no-op on one process)."""
        if self.parallel:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every process's ``tensor`` stacked along a new first dimension, in rank order
        (the tensor itself, with that dimension, on one process)."""
        if not self.parallel:
            return tensor[None]
        parts = [torch.empty_like(tensor) for _ in range(self.world)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.stack(parts)

    def wait(self) -> None:
        """Block until every process gets here."""
        if self.parallel:
            dist.barrier()

    def describe(self) -> dict[str, object]:
        backend = dist.get_backend() if self.parallel else None
        return {"world_size": self.world, "backend": backend}


SINGLE = Processes()


def env_world_size() -> int:
    """The number of processes torchrun started (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def processes() -> Processes:
    """This process's place, from the initialised process group (one process if none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    return Processes(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def start(device: torch.device) -> Processes:
    """Join the process group torchrun set up, once per process: NCCL for a CUDA device,
    gloo for the CPU. Returns the single process when not started by torchrun."""
    if env_world_size() <= 1:
        return SINGLE
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend=backend, **kwargs)
    return processes()


def stop() -> None:
    """Leave the process group, if one was joined (at the end of a command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """A plain ``cuda`` device with its index: under torchrun this process's own GPU
    (LOCAL_RANK), else the current one (``torch.cuda.set_device`` refuses a device without
    an index in recent torch versions)."""
    if device.type == "cuda" and device.index is None:
        if env_world_size() > 1:
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cuda", torch.cuda.current_device())
    return device


def share(n: int, parts: int, index: int) -> tuple[int, int]:
    """(start, size) of share ``index`` when ``n`` items are cut into ``parts`` contiguous
    shares whose sizes differ by at most one, the larger ones first (``tensor_split``)."""
    base, extra = divmod(n, parts)
    return index * base + min(index, extra), base + (1 if index < extra else 0)
