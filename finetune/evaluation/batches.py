"""A fixed list of batches of one dataset, read in the same order at every pass: what a
model is evaluated on after every epoch, at every point of a path through weight space, or
what BatchNorm statistics are re-estimated on. Under DDP each process holds every
``world``-th batch from its rank on, so the processes together read each batch once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from finetune.data.loader import Batches
from finetune.distributed import Processes
from finetune.errors import ConfigError


@dataclass(frozen=True)
class FixedBatches:
    """This process's batches: the examples ``order`` lists, cut into ``sizes`` (equal
    sizes, then a last one that may be larger). ``examples`` and ``batches`` count every
    process's, which is what sums over the processes are divided by."""

    source: Batches
    order: torch.Tensor
    sizes: tuple[int, ...]
    examples: int
    batches: int

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not self.sizes:
            return
        full = sum(self.sizes[:-1])
        if full:
            yield from self.source.iterate(self.order[:full], self.sizes[0])
        yield from self.source.iterate(self.order[full:], self.sizes[-1])


def fixed_batches(
    source: Batches,
    order: torch.Tensor,
    batch_size: int,
    processes: Processes | None = None,
    *,
    minimum: int = 1,
) -> FixedBatches:
    """The examples ``order`` lists, in batches of ``batch_size`` (a last batch smaller
    than ``minimum`` joins the one before it), this process's share of them under DDP.
    The order is moved to the device when the images are there, so that reading a batch
    copies nothing from the host."""
    sizes = batch_sizes(len(order), batch_size, minimum)
    if source.images is not None:
        order = order.to(source.device)
    examples, total = len(order), len(sizes)
    if processes is not None and processes.parallel:
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        mine = range(processes.rank, len(sizes), processes.world)
        parts = [order[starts[i] : starts[i] + sizes[i]] for i in mine]
        order = torch.cat(parts) if parts else order[:0]
        sizes = [sizes[i] for i in mine]
    return FixedBatches(source, order, tuple(sizes), examples, total)


def batch_sizes(n: int, batch_size: int, minimum: int = 1) -> list[int]:
    """Split ``n`` examples into batches of ``batch_size``; a last batch smaller than
    ``minimum`` joins the one before it (BatchNorm cannot normalise one example; minibatch
    CKA needs four)."""
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be positive, got {batch_size}")
    if n < minimum:
        raise ConfigError(f"need at least {minimum} examples, got {n}")
    sizes = [batch_size] * (n // batch_size)
    rest = n - sum(sizes)
    if rest and (rest >= minimum or not sizes):
        sizes.append(rest)
    elif rest:
        sizes[-1] += rest
    return sizes
