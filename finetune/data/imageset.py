"""The one dataset type the engine and every probe consume: labelled uint8 images."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


class ImageSet(Dataset):
    """Labelled images, each a ``uint8`` tensor of shape (3, H, W), all of one size.

    Subclasses implement :meth:`image`. ``targets`` holds every label up front so that
    splitting and subsampling never decode an image. Conversion to float, augmentation and
    normalisation happen later, in batches, on the training device.
    """

    def __init__(self, classes: Sequence[str], targets: np.ndarray, image_size: int) -> None:
        self.classes = list(classes)
        self.targets = np.asarray(targets, dtype=np.int64)
        self.image_size = int(image_size)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.targets)

    def image(self, index: int) -> torch.Tensor:
        raise NotImplementedError

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.image(index), int(self.targets[index])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images stacked as one uint8 tensor (N, 3, H, W) and the labels (N,)."""
        images = (
            torch.stack([self.image(i) for i in range(len(self))])
            if len(self)
            else (torch.empty(0, 3, self.image_size, self.image_size, dtype=torch.uint8))
        )
        return images, torch.from_numpy(self.targets.copy())


class TensorImageSet(ImageSet):
    """Images already in memory as one uint8 tensor (N, 3, H, W)."""

    def __init__(self, images: torch.Tensor, targets: np.ndarray, classes: Sequence[str]) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(
                f"expected uint8 images (N, 3, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        super().__init__(classes, targets, images.shape[-1])
        self.images = images

    def image(self, index: int) -> torch.Tensor:
        return self.images[index]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images, torch.from_numpy(self.targets.copy())


class SubsetImageSet(ImageSet):
    """A view of another ImageSet through a list of indices."""

    def __init__(self, base: ImageSet, indices: np.ndarray) -> None:
        indices = np.asarray(indices, dtype=np.int64)
        super().__init__(base.classes, base.targets[indices], base.image_size)
        self.base = base
        self.indices = indices

    def image(self, index: int) -> torch.Tensor:
        return self.base.image(int(self.indices[index]))

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.base, TensorImageSet):
            return self.base.images[torch.from_numpy(self.indices)], torch.from_numpy(
                self.targets.copy()
            )
        return super().tensors()
