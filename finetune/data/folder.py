"""``folder:PATH``: an ImageFolder tree on disk, and the lazy PIL-to-uint8 decoding shared by
every file-backed dataset (see also :mod:`finetune.data.torchvision_sets`).

Layout::

    PATH/train/<class>/<image>     required; its sub-folders define the classes (sorted names)
    PATH/val/<class>/<image>       optional
    PATH/test/<class>/<image>      optional

Classes are numbered by the sorted folder names of ``train/``; the other splits must use a
subset of them (a class may have no images there). Validation is carved from ``train/`` by
the registry, as for every dataset whose registration lists no native ``val`` split; the test
split is ``test/``, or ``val/`` when there is no ``test/``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from finetune.data.imageset import ImageSet
from finetune.data.registry import BuildRequest, register_dataset
from finetune.errors import DatasetMissingError

TEST_DIRS = ("test", "val")


def square_uint8(image: Image.Image, size: int, interpolation: str = "bilinear") -> torch.Tensor:
    """``image`` as RGB, shorter side resized to ``size`` (``interpolation``, a
    torchvision ``InterpolationMode`` value such as bilinear or bicubic; antialiased) and
    centre cropped: a uint8 tensor (3, size, size), so every dataset yields one fixed shape."""
    mode = InterpolationMode(interpolation)
    image = F.resize(image.convert("RGB"), size, interpolation=mode, antialias=True)
    return F.pil_to_tensor(F.center_crop(image, [size, size]))


class PILImageSet(ImageSet):
    """Images decoded one at a time from PIL images and squared by :func:`square_uint8`.

    Subclasses implement :meth:`pil`; labels are known up front, so nothing is decoded until
    an image is asked for.
    """

    def __init__(
        self,
        classes: Sequence[str],
        targets: np.ndarray,
        image_size: int,
        interpolation: str = "bilinear",
    ) -> None:
        super().__init__(classes, targets, image_size)
        self.interpolation = interpolation

    def pil(self, index: int) -> Image.Image:
        raise NotImplementedError

    def image(self, index: int) -> torch.Tensor:
        return square_uint8(self.pil(index), self.image_size, self.interpolation)


class FolderImageSet(PILImageSet):
    """Image files listed with their labels."""

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        classes: Sequence[str],
        image_size: int,
        interpolation: str = "bilinear",
    ) -> None:
        targets = np.array([label for _, label in samples], dtype=np.int64)
        super().__init__(classes, targets, image_size, interpolation)
        self.paths = [path for path, _ in samples]

    def pil(self, index: int) -> Image.Image:
        with Image.open(self.paths[index]) as image:
            return image.convert("RGB")


def folder_splits(argument: str) -> tuple[str, ...]:
    """The native splits of a tree: train, and val and test when both folders exist (with
    only one of them, it is the held-out split and validation is carved from train)."""
    root = Path(argument).expanduser()
    if (root / "val").is_dir() and (root / "test").is_dir():
        return ("train", "val", "test")
    return ("train", "test")


@register_dataset(
    "folder",
    splits=folder_splits,
    takes_argument=True,
    description="image tree PATH/{train,val,test}/<class>/; with val/ and test/ both are used",
)
def build_folder(request: BuildRequest) -> ImageSet:
    """The ``request.split`` sub-folder of the tree at ``request.argument``."""
    spec = f"folder:{request.argument}"
    root = Path(request.argument).expanduser()
    classes = _train_classes(root, spec)
    split_dir = _split_dir(root, request.split, spec)
    if split_dir.name != "train":
        extra = sorted(set(find_classes(split_dir)[0]) - set(classes))
        if extra:
            raise DatasetMissingError(
                f"{spec}: {split_dir} has classes missing from train/: {', '.join(extra)}"
            )
    samples = make_dataset(
        split_dir,
        {name: index for index, name in enumerate(classes)},
        extensions=IMG_EXTENSIONS,
        allow_empty=True,
    )
    if not samples:
        raise DatasetMissingError(f"{spec}: no images under {split_dir}")
    return FolderImageSet(samples, classes, request.image_size, request.interpolation)


def _train_classes(root: Path, spec: str) -> list[str]:
    """Sorted class folder names of ``root/train``, which must exist and hold some."""
    train = root / "train"
    if not train.is_dir():
        missing = "no train/ folder in" if root.is_dir() else "no directory"
        raise DatasetMissingError(
            f"{spec}: {missing} {root} (expected train/<class>/<image> and val/ or test/)"
        )
    try:
        return find_classes(train)[0]
    except FileNotFoundError:
        raise DatasetMissingError(f"{spec}: no class folders in {train}") from None


def _split_dir(root: Path, split: str, spec: str) -> Path:
    candidates = TEST_DIRS if split == "test" else (split,)
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    expected = " or ".join(f"{name}/" for name in candidates)
    raise DatasetMissingError(f"{spec}: no {expected} folder in {root}")
