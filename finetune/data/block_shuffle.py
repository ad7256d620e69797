"""Block-shuffled images (Neyshabur, Sedghi, Zhang 2020, *What is being transferred in
transfer learning?*): each image is cut into a grid of b x b-pixel blocks and the blocks are
permuted. Small blocks destroy the visual features a pre-trained model could reuse while
keeping the low-level statistics (colours, local texture), so the accuracy of fine-tuning
from pre-trained against random init as b shrinks separates feature reuse from the rest.

Applied to normalised float batches (N, C, H, W) on the training device, after augmentation;
one gather per batch, no loop over images or blocks. b = image size leaves images intact,
b = 1 shuffles pixels."""

from __future__ import annotations

import torch

from finetune.data.draws import Part, global_rows
from finetune.errors import ConfigError

SCHEMES = ("fixed", "random")


def check_block_size(image_size: int, block: int) -> int:
    """The grid side (blocks per row) of ``block``-pixel blocks on ``image_size``-pixel
    images; ConfigError when ``block`` is below 1 or does not divide the image size."""
    if block < 1:
        raise ConfigError(f"--block-shuffle must be at least 1, got {block}")
    if image_size % block:
        raise ConfigError(
            f"--block-shuffle {block} does not divide the image size {image_size}px; "
            f"pick a divisor of {image_size}"
        )
    return image_size // block


def fixed_permutation(cells: int, seed: int) -> torch.Tensor:
    """The paper's permutation of ``cells`` blocks: a pure function of (seed, cells), drawn on
    the CPU so it is the same on every device. Redrawn while it is the identity (possible
    only for tiny grids), so a shuffled run never silently trains on intact images."""
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(cells, generator=generator)
    while cells > 1 and bool((perm == torch.arange(cells)).all()):
        perm = torch.randperm(cells, generator=generator)
    return perm


def pixel_index(height: int, width: int, block: int, perm: torch.Tensor) -> torch.Tensor:
    """The flat source pixel (row * width + col) of every output pixel, (..., H * W), when
    output block k (blocks numbered row by row) is input block ``perm[..., k]``."""
    grid_w = width // block
    device = perm.device
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    cell = ((rows // block)[:, None] * grid_w + (cols // block)[None, :]).flatten()  # (H*W,)
    within = ((rows % block)[:, None] * width + (cols % block)[None, :]).flatten()
    cells = torch.arange(perm.shape[-1], device=device)
    corner = (cells // grid_w) * block * width + (cells % grid_w) * block  # block k's corner
    return corner[perm][..., cell] + within


def gather_pixels(images: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``images`` (N, C, H, W) with output pixel p taken from input pixel ``index[..., p]``
    (``index`` (H * W,) for every image or (N, H * W) per image), in one gather that keeps
    the input's memory format (channels_last stays channels_last, without a copy)."""
    n, c, h, w = images.shape
    index = index.to(images.device)
    channels_last = images.is_contiguous(memory_format=torch.channels_last)
    if channels_last and not images.is_contiguous():
        # An (N, H * W, C) view: one pixel is C contiguous values.
        pixels = images.permute(0, 2, 3, 1).reshape(n, h * w, c)
        out = pixels.gather(1, index.view(-1, h * w, 1).expand(n, h * w, c))
        return out.view(n, h, w, c).permute(0, 3, 1, 2)
    flat = images.reshape(n, c, h * w)
    out = flat.gather(2, index.view(-1, 1, h * w).expand(n, c, h * w))
    return out.view(n, c, h, w)


def shuffle_blocks(images: torch.Tensor, block: int, perm: torch.Tensor) -> torch.Tensor:
    """``images`` (N, C, H, W) with their b x b blocks permuted: output block k (blocks
    numbered row by row) is input block ``perm[k]``; ``perm`` is (G,) for one permutation
    of all images or (N, G) for one per image, G = (H / b) * (W / b). The output keeps the
    input's memory format."""
    _, _, h, w = images.shape
    grid_h, grid_w = check_block_size(h, block), check_block_size(w, block)
    if perm.shape[-1] != grid_h * grid_w:
        raise ValueError(f"a permutation of {grid_h * grid_w} blocks is needed, got {perm.shape}")
    return gather_pixels(images, pixel_index(h, w, block, perm.to(images.device)))


class BlockShuffle:
    """The block shuffle of one dataset: ``scheme`` ``fixed`` (default, the paper's) applies
    one permutation, a function of ``seed`` and the grid, to every image of every split at
    every call; ``random`` draws a fresh permutation for every image at every call from the
    generator it is given (training), or, when given none (evaluation), from its own
    generator reset to ``seed`` at each call, so evaluation is a pure function of the config.
    With ``part = (offset, global batch size)`` the permutations are drawn for the whole
    global batch and rows ``[offset, offset + N)`` are used."""

    def __init__(
        self,
        image_size: int,
        block: int,
        *,
        scheme: str = "fixed",
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        if scheme not in SCHEMES:
            choices = ", ".join(SCHEMES)
            raise ConfigError(f"--shuffle-scheme must be one of {choices}, got {scheme!r}")
        self.grid = check_block_size(image_size, block)
        self.image_size = image_size
        self.block = block
        self.scheme = scheme
        self.seed = seed
        self.cells = self.grid * self.grid
        self.device = torch.device(device)
        self.perm = fixed_permutation(self.cells, seed).to(self.device)
        self.index = pixel_index(image_size, image_size, block, self.perm)  # fixed scheme
        self.eval_generator = torch.Generator(device=self.device)

    @property
    def identity(self) -> bool:
        """Whether the shuffle leaves images as they are (one block: b = image size)."""
        return self.cells == 1

    def __call__(
        self,
        images: torch.Tensor,
        generator: torch.Generator | None = None,
        *,
        part: Part | None = None,
    ) -> torch.Tensor:
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            raise ConfigError(
                f"block shuffle set up for {self.image_size}px images, got "
                f"{tuple(images.shape[-2:])}"
            )
        if self.identity:
            return images
        if self.scheme == "fixed":
            return gather_pixels(images, self.index)
        if generator is None:
            generator = self.eval_generator.manual_seed(self.seed)
        count, rows = global_rows(images.shape[0], part)
        keys = torch.rand(count, self.cells, device=generator.device, generator=generator)[rows]
        perms = keys.argsort(dim=1).to(images.device)
        return gather_pixels(
            images, pixel_index(self.image_size, self.image_size, self.block, perms)
        )
