"""The DataLoader path of Batches: examples in exactly the requested order, and worker
processes that persist across passes."""

from __future__ import annotations

import os

import numpy as np
import torch

from finetune.data import ImageSet
from finetune.data.loader import Batches


class PidImages(ImageSet):
    """Image i is filled with the value i; its label is the id of the process that
    decoded it."""

    def __init__(self, n: int) -> None:
        super().__init__(["a"], np.zeros(n, dtype=np.int64), 4)

    def image(self, index: int) -> torch.Tensor:
        return torch.full((3, 4, 4), index, dtype=torch.uint8)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.image(index), os.getpid()


def one_pass(batches: Batches, order: torch.Tensor, size: int) -> tuple[list[int], set[int]]:
    """The examples served (in order) and the processes that decoded them."""
    served, pids = [], set()
    for images, labels in batches.iterate(order, size):
        assert len(images) <= size
        served += images[:, 0, 0, 0].tolist()
        pids |= set(labels.tolist())
    return served, pids


def test_workers_serve_the_requested_order_and_persist_across_passes():
    batches = Batches(PidImages(24), torch.device("cpu"), on_device=False, workers=2)
    first = torch.randperm(24, generator=torch.Generator().manual_seed(0))
    second = torch.randperm(24, generator=torch.Generator().manual_seed(1))[:17]
    served, pids = one_pass(batches, first, 4)
    assert served == first.tolist()
    assert len(pids) == 2 and os.getpid() not in pids  # two workers, six batches
    # A pass abandoned after one batch (as the Fisher estimate does) leaves nothing behind.
    next(iter(batches.iterate(second, 5)))
    served_again, pids_again = one_pass(batches, second, 5)
    assert served_again == second.tolist()
    assert pids_again == pids  # the same worker processes, not new ones
    del batches


def test_without_workers_the_main_process_serves_the_order():
    batches = Batches(PidImages(10), torch.device("cpu"), on_device=False, workers=0)
    order = torch.tensor([9, 0, 3, 3, 7])
    for _ in range(2):
        served, pids = one_pass(batches, order, 2)
        assert served == order.tolist() and pids == {os.getpid()}
