"""Batched image preparation on the training device: uint8 to float, augmentation (random
translation by reflect padding and crop, or random resized crop; horizontal flips),
normalisation, a centre crop to the model's input size, then the optional block shuffle.
One call per batch, no loop over images; randomness from an explicit generator so runs are
reproducible, drawn for a whole global batch so a batch prepared in parts (``part``) gets
the randomness it would get prepared whole."""

from __future__ import annotations

import copy

import torch

from finetune.data.block_shuffle import BlockShuffle
from finetune.data.crops import center_crop, random_resized_crop
from finetune.data.draws import Part, global_rows

AUG_SCHEMES = ("translate", "rrc")


def translate(
    images: torch.Tensor, max_shift: int, generator: torch.Generator, *, part: Part | None = None
) -> torch.Tensor:
    """Shift each image by its own random (dy, dx) in [-max_shift, max_shift], filling the
    border by reflection: the reflect-pad-and-random-crop of CIFAR training, batched."""
    if max_shift <= 0:
        return images
    n, c, h, w = images.shape
    count, rows = global_rows(n, part)
    padded = torch.nn.functional.pad(images, (max_shift,) * 4, mode="reflect")
    offsets = torch.randint(
        0, 2 * max_shift + 1, (2, count), device=images.device, generator=generator
    )[:, rows]
    rows_index = offsets[0, :, None] + torch.arange(h, device=images.device)
    cols_index = offsets[1, :, None] + torch.arange(w, device=images.device)
    picked = padded.gather(2, rows_index[:, None, :, None].expand(n, c, h, w + 2 * max_shift))
    return picked.gather(3, cols_index[:, None, None, :].expand(n, c, h, w))


def hflip(
    images: torch.Tensor, generator: torch.Generator, *, part: Part | None = None
) -> torch.Tensor:
    """Flip a random half (in expectation) of the batch left to right."""
    count, rows = global_rows(images.shape[0], part)
    flip = torch.rand(count, device=images.device, generator=generator)[rows] < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


class BatchPrep:
    """uint8 (N, 3, S, S) on the device -> normalised float (N, 3, size, size), augmented
    when training (``aug`` ``translate``: centre crop to ``size``, then random translation;
    ``rrc``: a random resized crop of the whole stored image to ``size``), centre-cropped to
    ``size`` otherwise, then block-shuffled when ``shuffle`` is given (training and
    evaluation alike, so the model is tested on the images it was trained on). ``size``
    None keeps the stored side."""

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
        size: int | None = None,
        aug: str = "translate",
    ) -> None:
        if aug not in AUG_SCHEMES:
            raise ValueError(f"aug must be one of {', '.join(AUG_SCHEMES)}, got {aug!r}")
        self.scale = (1.0 / (255.0 * torch.tensor(std, device=device))).view(1, -1, 1, 1)
        self.shift = (torch.tensor(mean, device=device) / torch.tensor(std, device=device)).view(
            1, -1, 1, 1
        )
        self.augment = augment
        self.flip = flip
        self.size = size
        self.aug = aug
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.shuffle = shuffle if shuffle is not None and not shuffle.identity else None

    def unshuffled(self) -> BatchPrep:
        """The same preparation without the block shuffle (for another dataset's images,
        such as the source data of a Fisher estimate)."""
        plain = copy.copy(self)
        plain.shuffle = None
        return plain

    def __call__(
        self,
        images: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        part: Part | None = None,
    ) -> torch.Tensor:
        """Prepare one batch; with ``part = (offset, global batch size)`` the batch is rows
        ``[offset, offset + len(images))`` of a global batch and gets those rows' draws."""
        size = self.size or images.shape[-1]
        augment = generator is not None and self.augment
        if augment and self.aug == "rrc":
            x = random_resized_crop(self._normalise(images), size, generator, part=part)
        else:
            x = self._normalise(center_crop(images, size))
            if augment:
                x = translate(x, size // 8, generator, part=part)
        if augment and self.flip:
            x = hflip(x, generator, part=part)
        if self.shuffle is not None:
            # The shuffle keeps the memory format it is given, so converting first saves a
            # copy. Training passes the step's generator (used by the random scheme only);
            # evaluation passes none, and the shuffle uses its own.
            x = self.shuffle(x.contiguous(memory_format=self.memory_format), generator, part=part)
        return x.contiguous(memory_format=self.memory_format)

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        return images.float() * self.scale - self.shift
