"""Batches of (uint8 images, labels) on the training device, in an order the caller gives:
from one device-resident tensor when the dataset fits (moved there once), else from one
DataLoader kept for the lifetime of the batches, whose worker processes persist across
epochs and decode ahead into pinned memory."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from finetune.data import ImageSet

DEVICE_DATA_LIMIT = 4 * 2**30  # bytes of uint8 images kept on the device under "auto"
PREFETCH_BATCHES = 4  # batches each worker decodes ahead


def fits_on_device(dataset: ImageSet, mode: str) -> bool:
    """Whether ``device_data`` (auto/on/off) keeps ``dataset`` whole on the device."""
    if mode != "auto":
        return mode == "on"
    return len(dataset) * 3 * dataset.image_size**2 <= DEVICE_DATA_LIMIT


class BatchList:
    """A batch sampler whose batches are replaced before each pass: the one DataLoader of a
    ``Batches`` serves any order through it without restarting its workers."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class Batches:
    """Serves batches of one dataset on one device. One pass at a time: a new ``iterate``
    call ends the previous pass of the same object."""

    def __init__(
        self, dataset: ImageSet, device: torch.device, *, on_device: bool, workers: int = 0
    ) -> None:
        self.dataset = dataset
        self.device = device
        self.workers = workers
        self.images: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        self.sampler = BatchList()
        self.loader: DataLoader | None = None
        if on_device:
            images, labels = dataset.tensors()
            self.images = images.to(device)
            self.labels = labels.to(device)
        else:
            self.loader = DataLoader(
                dataset,
                batch_sampler=self.sampler,
                num_workers=workers,
                pin_memory=device.type == "cuda",
                persistent_workers=workers > 0,
                prefetch_factor=PREFETCH_BATCHES if workers > 0 else None,
            )

    def __len__(self) -> int:
        return len(self.dataset)

    def iterate(
        self, order: torch.Tensor, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of the examples ``order`` lists, in that order."""
        if self.images is not None:
            device_order = order.to(self.device)
            for chunk in device_order.split(batch_size):
                yield self.images[chunk], self.labels[chunk]
            return
        self.sampler.batches = [chunk.tolist() for chunk in order.split(batch_size)]
        for images, labels in self.loader:
            yield (
                images.to(self.device, non_blocking=True),
                labels.to(self.device, non_blocking=True),
            )


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled example order of one epoch: a pure function of (seed, epoch), so a
    resumed run sees exactly the order the uninterrupted one did."""
    generator = torch.Generator().manual_seed(mix_seed(seed, epoch))
    return torch.randperm(n, generator=generator)


def mix_seed(*parts: int) -> int:
    """A 63-bit seed from integers, well mixed (SplitMix64 over the parts)."""
    state = 0x9E3779B97F4A7C15
    for part in parts:
        state = (state ^ (part & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        state = (state ^ (state >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        state ^= state >> 31
    return state & 0x7FFFFFFFFFFFFFFF
