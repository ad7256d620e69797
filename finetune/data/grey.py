"""Grey images held in memory as one uint8 array (N, H, W), served the way the models
expect them: three equal channels at the image size, resized like every decoded file
(:func:`finetune.data.folder.square_uint8`), so the pixels equal those of the same images
read from PNG files through ``folder:``. Each image is resized once per process and size:
the results are kept (up to ``CACHE_LIMIT`` bytes per array and size), so the many runs of
an experiment share them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from finetune.data.folder import PILImageSet

CACHE_LIMIT = 2**30  # bytes of resized images kept per array and size; larger ones are not
# (id of the pixel array, size, interpolation) -> (the array, kept so its id stays its own,
# the resized images, which of them are filled in)
_RESIZED: dict[tuple[int, int, str], tuple[np.ndarray, torch.Tensor, np.ndarray]] = {}


class GreyArrayImageSet(PILImageSet):
    """``pixels`` (N, H, W) uint8 with labels ``targets`` into ``classes``."""

    def __init__(
        self,
        pixels: np.ndarray,
        targets: np.ndarray,
        classes: Sequence[str],
        image_size: int,
        interpolation: str = "bilinear",
    ) -> None:
        if pixels.dtype != np.uint8 or pixels.ndim != 3 or len(pixels) != len(targets):
            raise ValueError(
                f"expected uint8 pixels (N, H, W) for {len(targets)} labels, got "
                f"{pixels.dtype} {pixels.shape}"
            )
        super().__init__(classes, targets, image_size, interpolation)
        self.pixels = pixels

    def images_at(self, indices: np.ndarray) -> torch.Tensor:
        indices = np.asarray(indices, dtype=np.int64)
        if len(self.pixels) * 3 * self.image_size**2 > CACHE_LIMIT:
            return super().images_at(indices)
        key = (id(self.pixels), self.image_size, self.interpolation)
        if key not in _RESIZED:
            size = self.image_size
            images = torch.empty(len(self.pixels), 3, size, size, dtype=torch.uint8)
            _RESIZED[key] = (self.pixels, images, np.zeros(len(self.pixels), dtype=bool))
        _, images, filled = _RESIZED[key]
        for index in np.unique(indices[~filled[indices]]):
            images[index] = self.image(int(index))
        filled[indices] = True
        return images[torch.from_numpy(indices)]

    def pil(self, index: int) -> Image.Image:
        return Image.fromarray(self.pixels[index])  # 2-D uint8: mode "L"
