"""Batched image preparation on the training device: uint8 to float, random translation
(reflect padding and crop) and horizontal flips, normalisation, then the optional block
shuffle. One call per batch, no loop over images; randomness from an explicit generator so
runs are reproducible."""

from __future__ import annotations

import copy

import torch

from finetune.block_shuffle import BlockShuffle


def translate(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by its own random (dy, dx) in [-max_shift, max_shift], filling the
    border by reflection: the reflect-pad-and-random-crop of CIFAR training, batched."""
    if max_shift <= 0:
        return images
    n, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (max_shift,) * 4, mode="reflect")
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n), device=images.device, generator=generator)
    rows = offsets[0, :, None] + torch.arange(h, device=images.device)
    cols = offsets[1, :, None] + torch.arange(w, device=images.device)
    picked = padded.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * max_shift))
    return picked.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def hflip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip a random half (in expectation) of the batch left to right."""
    flip = torch.rand(images.shape[0], device=images.device, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


class BatchPrep:
    """uint8 (N, 3, H, W) on the device -> normalised float, augmented when training, then
    block-shuffled when ``shuffle`` is given (training and evaluation alike, so the model
    is tested on the images it was trained on)."""

    def __init__(
        self,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        device: torch.device,
        *,
        augment: bool,
        flip: bool,
        channels_last: bool,
        shuffle: BlockShuffle | None = None,
    ) -> None:
        self.scale = (1.0 / (255.0 * torch.tensor(std, device=device))).view(1, -1, 1, 1)
        self.shift = (torch.tensor(mean, device=device) / torch.tensor(std, device=device)).view(
            1, -1, 1, 1
        )
        self.augment = augment
        self.flip = flip
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.shuffle = shuffle if shuffle is not None and not shuffle.identity else None

    def unshuffled(self) -> BatchPrep:
        """The same preparation without the block shuffle (for another dataset's images,
        such as the source data of a Fisher estimate)."""
        plain = copy.copy(self)
        plain.shuffle = None
        return plain

    def __call__(
        self, images: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        x = images.float() * self.scale - self.shift
        if generator is not None and self.augment:
            x = translate(x, images.shape[-1] // 8, generator)
            if self.flip:
                x = hflip(x, generator)
        if self.shuffle is not None:
            # The shuffle keeps the memory format it is given, so converting first saves a
            # copy. Training passes the step's generator (used by the random scheme only);
            # evaluation passes none, and the shuffle uses its own.
            x = self.shuffle(x.contiguous(memory_format=self.memory_format), generator)
        return x.contiguous(memory_format=self.memory_format)
