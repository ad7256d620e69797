"""``fashion_mnist``: Zalando's Fashion-MNIST (Xiao, Rasul & Vollgraf 2017), 70,000 grey
28x28 photographs of clothes in 10 classes, 60k train / 10k test, read from the four
original IDX files. They are looked for, in order:

1. under ``<data-root>/FashionMNIST/raw/`` (torchvision's layout, plain or ``.gz``);
2. in ``/usr/share/datasets/fashion-mnist/``, where Debian's package
   ``dataset-fashion-mnist`` installs them (``apt-get install dataset-fashion-mnist``);
3. with ``--download``, fetched by torchvision into the first location.

Validation is carved from the training split as for every dataset without one.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from finetune.data.grey import GreyArrayImageSet
from finetune.data.idx import read_idx
from finetune.data.imageset import ImageSet
from finetune.data.registry import BuildRequest, register_dataset
from finetune.data.torchvision_sets import NETWORK_ERRORS
from finetune.errors import DatasetMissingError, NetworkError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
TORCHVISION_DIR = Path("FashionMNIST") / "raw"  # under --data-root
APT_PACKAGE = "dataset-fashion-mnist"
CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_directory(data_root: Path, download: bool) -> Path:
    """The first directory holding all four IDX files, downloading them when asked."""
    candidates = (data_root / TORCHVISION_DIR, DEBIAN_DIR)
    for directory in candidates:
        if all(_find(directory, name) for pair in FILES.values() for name in pair):
            return directory
    if download:
        _download(data_root)
        return data_root / TORCHVISION_DIR
    raise DatasetMissingError(
        f"fashion_mnist: no IDX files in {candidates[0]} or {DEBIAN_DIR}; "
        f"run `apt-get install {APT_PACKAGE}` or pass --download"
    )


@functools.lru_cache(maxsize=4)
def read_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) int64) of the native ``split``; read once
    per process (the arrays are shared read-only by every ImageSet built from them)."""
    images_name, labels_name = FILES[split]
    images = read_idx(_find(directory, images_name))
    labels = read_idx(_find(directory, labels_name)).astype(np.int64)
    if images.ndim != 3 or labels.shape != (len(images),):
        raise DatasetMissingError(
            f"fashion_mnist: {directory} holds images {images.shape} and labels "
            f"{labels.shape}; expected (N, 28, 28) and (N,)"
        )
    images.flags.writeable = False
    return images, labels


@register_dataset(
    "fashion_mnist",
    default_image_size=28,
    description="Fashion-MNIST: 10 clothing classes, 60k train / 10k test, 28 px grey "
    f"(apt-get install {APT_PACKAGE}, or --download)",
)
def build_fashion_mnist(request: BuildRequest) -> ImageSet:
    directory = idx_directory(request.data_root, request.download)
    images, labels = read_split(directory, request.split)
    return GreyArrayImageSet(images, labels, CLASSES, request.image_size, request.interpolation)


def _find(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _download(data_root: Path) -> None:
    from torchvision.datasets import FashionMNIST

    try:
        FashionMNIST(str(data_root), download=True)
    except NETWORK_ERRORS + (RuntimeError, OSError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise NetworkError(
            f"fashion_mnist: download into {data_root / TORCHVISION_DIR} failed ({reason}); "
            f"run `apt-get install {APT_PACKAGE}` instead"
        ) from None
