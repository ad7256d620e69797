"""Batched crops of float images (N, C, S, S) on the device, one call per batch: the centre
crop of evaluation (timm's eval transform: resize to ``size / crop_pct``, done when the
images are decoded, then a centre crop of ``size``) and the random resized crop of
fine-tuning (torchvision's ``RandomResizedCrop``), with boxes drawn from an explicit
generator."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from finetune.data.draws import Part, global_rows

RRC_SCALE = (0.08, 1.0)
RRC_RATIO = (3 / 4, 4 / 3)
RRC_ATTEMPTS = 10


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` window of every image, placed as torchvision's
    ``center_crop`` places it (offset ``round((S - size) / 2)``)."""
    height, width = images.shape[-2:]
    if (height, width) == (size, size):
        return images
    if size > height or size > width:
        raise ValueError(f"cannot crop {size}px from {height}x{width}px images")
    top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    return images[..., top : top + size, left : left + size]


def rrc_boxes(
    count: int,
    side: int,
    generator: torch.Generator,
    scale: tuple[float, float] = RRC_SCALE,
    ratio: tuple[float, float] = RRC_RATIO,
) -> torch.Tensor:
    """``count`` crop boxes (top, left, height, width) in whole pixels of a ``side``-pixel
    square image, drawn as torchvision's ``RandomResizedCrop.get_params`` draws them: up to
    ten attempts of an area fraction uniform in ``scale`` and an aspect ratio (width /
    height) log-uniform in ``ratio``, the first that fits is kept, the whole image when none
    does; then a uniform position among the whole-pixel placements. (count, 4) float."""
    device = generator.device
    u = torch.rand(2, count, RRC_ATTEMPTS, device=device, generator=generator)
    area = side * side * (scale[0] + (scale[1] - scale[0]) * u[0])
    low, high = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(low + (high - low) * u[1])
    width = torch.sqrt(area * aspect).round()
    height = torch.sqrt(area / aspect).round()
    fits = (width >= 1) & (width <= side) & (height >= 1) & (height <= side)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # the first attempt that fits
    full = torch.tensor(float(side), device=device)
    width = torch.where(fits.any(dim=1), width.gather(1, first)[:, 0], full)
    height = torch.where(fits.any(dim=1), height.gather(1, first)[:, 0], full)
    position = torch.rand(2, count, device=device, generator=generator)
    top = (position[0] * (side - height + 1)).floor().clamp(max=side - height)
    left = (position[1] * (side - width + 1)).floor().clamp(max=side - width)
    return torch.stack([top, left, height, width], dim=1)


def resize_boxes(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Each image's box (top, left, height, width) resized to ``size`` x ``size``,
    bilinear with half-pixel centres and no antialiasing: torchvision's ``resized_crop``
    (crop, then ``F.interpolate(align_corners=False)``), all in one ``affine_grid`` +
    ``grid_sample``."""
    n, c, side_h, side_w = images.shape
    top, left, height, width = boxes.to(images.device, torch.float32).unbind(1)
    theta = torch.zeros(n, 2, 3, device=images.device)
    # Output x in [-1, 1] maps to the box's span in the input's [-1, 1] coordinates.
    theta[:, 0, 0] = width / side_w
    theta[:, 0, 2] = (2 * left + width) / side_w - 1
    theta[:, 1, 1] = height / side_h
    theta[:, 1, 2] = (2 * top + height) / side_h - 1
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    # Samples beyond the box's outer pixel centres take that pixel, as after a crop.
    first = torch.stack([(2 * left + 1) / side_w, (2 * top + 1) / side_h], dim=1) - 1
    last = torch.stack([(2 * (left + width) - 1) / side_w, (2 * (top + height) - 1) / side_h], 1)
    grid = grid.maximum(first[:, None, None, :]).minimum(last[:, None, None, :] - 1)
    return F.grid_sample(
        images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )


def random_resized_crop(
    images: torch.Tensor,
    size: int,
    generator: torch.Generator,
    *,
    part: Part | None = None,
    scale: tuple[float, float] = RRC_SCALE,
    ratio: tuple[float, float] = RRC_RATIO,
) -> torch.Tensor:
    """Square float images (N, C, S, S) -> (N, C, size, size): a random box of each (see
    :func:`rrc_boxes`; drawn for the whole global batch of ``part``) resized bilinearly."""
    count, rows = global_rows(images.shape[0], part)
    boxes = rrc_boxes(count, images.shape[-1], generator, scale, ratio)[rows]
    return resize_boxes(images, boxes, size)
