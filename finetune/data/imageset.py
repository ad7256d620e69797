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

    def images_at(self, indices: np.ndarray) -> torch.Tensor:
        """The images at ``indices`` stacked as one uint8 tensor (len, 3, H, W)."""
        if not len(indices):
            return torch.empty(0, 3, self.image_size, self.image_size, dtype=torch.uint8)
        return torch.stack([self.image(int(i)) for i in indices])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images stacked as one uint8 tensor (N, 3, H, W) and the labels (N,)."""
        return self.images_at(np.arange(len(self))), torch.from_numpy(self.targets.copy())


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

    def images_at(self, indices: np.ndarray) -> torch.Tensor:
        return self.images[torch.from_numpy(np.asarray(indices, dtype=np.int64))]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images, torch.from_numpy(self.targets.copy())


class SubsetImageSet(ImageSet):
    """A view of another ImageSet through a list of indices. With ``kept_classes`` (original
    labels, in order) only those classes remain and labels are re-indexed to their positions
    in it, names kept. A view of a view indexes the innermost set directly."""

    def __init__(
        self, base: ImageSet, indices: np.ndarray, *, kept_classes: Sequence[int] | None = None
    ) -> None:
        indices = np.asarray(indices, dtype=np.int64)
        targets, classes = base.targets[indices], base.classes
        if kept_classes is not None:
            kept = np.asarray(kept_classes, dtype=np.int64)
            relabel = np.full(base.num_classes, -1, dtype=np.int64)
            relabel[kept] = np.arange(len(kept))
            targets, classes = relabel[targets], [base.classes[c] for c in kept]
            if np.any(targets < 0):
                raise ValueError("indices include images of classes not kept")
        if isinstance(base, SubsetImageSet):
            indices, base = base.indices[indices], base.base
        super().__init__(classes, targets, base.image_size)
        self.base = base
        self.indices = indices

    def image(self, index: int) -> torch.Tensor:
        return self.base.image(int(self.indices[index]))

    def images_at(self, indices: np.ndarray) -> torch.Tensor:
        return self.base.images_at(self.indices[np.asarray(indices, dtype=np.int64)])
