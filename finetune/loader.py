"""Batches of (uint8 images, labels) on the training device, in an order the caller gives:
from one device-resident tensor when the dataset fits (moved there once), else from a
DataLoader with worker processes and pinned memory."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from finetune.data import ImageSet

DEVICE_DATA_LIMIT = 4 * 2**30  # bytes of uint8 images kept on the device under "auto"


def fits_on_device(dataset: ImageSet, mode: str) -> bool:
    """Whether ``device_data`` (auto/on/off) keeps ``dataset`` whole on the device."""
    if mode != "auto":
        return mode == "on"
    return len(dataset) * 3 * dataset.image_size**2 <= DEVICE_DATA_LIMIT


class Batches:
    """Serves batches of one dataset on one device."""

    def __init__(
        self, dataset: ImageSet, device: torch.device, *, on_device: bool, workers: int = 0
    ) -> None:
        self.dataset = dataset
        self.device = device
        self.workers = workers
        self.images: torch.Tensor | None = None
        self.labels: torch.Tensor | None = None
        if on_device:
            images, labels = dataset.tensors()
            self.images = images.to(device)
            self.labels = labels.to(device)

    def __len__(self) -> int:
        return len(self.dataset)

    def iterate(
        self, order: torch.Tensor, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of the examples ``order`` lists, in that order."""
        chunks = order.split(batch_size)
        if self.images is not None:
            device_order = order.to(self.device)
            for chunk in device_order.split(batch_size):
                yield self.images[chunk], self.labels[chunk]
            return
        loader = DataLoader(
            self.dataset,
            batch_sampler=[c.tolist() for c in chunks],
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        for images, labels in loader:
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
