"""Standard transfer-learning benchmarks read through ``torchvision.datasets``.

Each dataset lives in ``<data_root>/<name>/``, holding the files torchvision reads there
(each :class:`Source` lists them in ``expected``; docs/guide/data.md has the table). Files are
fetched only when a download is asked for. Missing files end in one
:class:`DatasetMissingError` line naming the directory searched and what was expected there,
a failed download in one :class:`NetworkError` line, never in torchvision's RuntimeError.

Caltech-101 has no official split: each class is shuffled once with ``CALTECH_SEED`` and its
first ``CALTECH_TRAIN_PER_CLASS`` images (at most all but one) form ``train``, the rest
``test`` (the usual 30-per-class protocol of Fei-Fei et al. 2004). The split never depends on
a run's seeds, so every run tests on the same images.
"""

from __future__ import annotations

import functools
import http.client
import urllib.error
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset, Subset
from torchvision import datasets as tvd

from finetune.data.folder import PILImageSet
from finetune.data.imageset import ImageSet
from finetune.data.registry import BuildRequest, register_dataset
from finetune.errors import DatasetMissingError, LandscapeError, NetworkError

CALTECH_TRAIN_PER_CLASS = 30
CALTECH_SEED = 0xCA1
STL10_CLASSES = (
    "airplane",
    "bird",
    "car",
    "cat",
    "deer",
    "dog",
    "horse",
    "monkey",
    "ship",
    "truck",
)
NETWORK_ERRORS = (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError)
LOAD_ERRORS = (RuntimeError, OSError, ValueError, EOFError, http.client.HTTPException)

# (directory, split, download) -> torchvision dataset of that native split
Opener = Callable[[Path, str, bool], Dataset]


@dataclass(frozen=True)
class Source:
    """How one torchvision dataset is opened, found on disk and labelled."""

    name: str
    open: Opener
    splits: tuple[str, ...]
    image_size: int
    expected: tuple[str, ...]  # under <data_root>/<name>; '{split}' is filled in, '/' = folder
    labels: Callable[[Any], Sequence[int]]
    classes: Callable[[Any], Sequence[str]]
    description: str


class TorchvisionImageSet(PILImageSet):
    """A torchvision dataset whose items are (PIL image, label), with labels read up front."""

    def __init__(
        self, dataset: Dataset, source: Source, image_size: int, interpolation: str = "bilinear"
    ) -> None:
        labels = np.asarray(source.labels(dataset))
        super().__init__(source.classes(dataset), labels, image_size, interpolation)
        self.dataset = dataset

    def pil(self, index: int) -> Image.Image:
        return self.dataset[index][0]


def _caltech101(directory: Path, split: str, download: bool) -> Subset:
    """Caltech-101 (torchvision appends ``caltech101/`` itself) cut into the seeded split."""
    full = tvd.Caltech101(directory.parent, download=download)
    labels = np.asarray(full.y)
    rng = np.random.default_rng(CALTECH_SEED)
    chosen = []
    for label in range(len(full.categories)):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_train = min(CALTECH_TRAIN_PER_CLASS, len(members) - 1)
        chosen.append(members[:n_train] if split == "train" else members[n_train:])
    return Subset(full, np.sort(np.concatenate(chosen)).tolist())


def _dtd(directory: Path, split: str, download: bool) -> tvd.DTD:
    """DTD, partition 1 (torchvision appends ``dtd/`` to its root itself)."""
    return tvd.DTD(directory.parent, split, download=download)


def _cifar(cls: type[tvd.CIFAR10]) -> Opener:
    return lambda directory, split, download: cls(directory, split == "train", download=download)


def _by_split(cls: type, **names: str) -> Opener:
    """Opener of a dataset taking ``split=``, renaming our split names through ``names``."""
    return lambda directory, split, download: cls(
        directory, split=names.get(split, split), download=download
    )


def _attr(name: str) -> Callable[[Any], Any]:
    return lambda dataset: getattr(dataset, name)


SOURCES = (
    Source(
        name="cifar10",
        open=_cifar(tvd.CIFAR10),
        splits=("train", "test"),
        image_size=32,
        expected=("cifar-10-batches-py/",),
        labels=_attr("targets"),
        classes=_attr("classes"),
        description="CIFAR-10: 10 classes, 50k train / 10k test, 32 px",
    ),
    Source(
        name="cifar100",
        open=_cifar(tvd.CIFAR100),
        splits=("train", "test"),
        image_size=32,
        expected=("cifar-100-python/",),
        labels=_attr("targets"),
        classes=_attr("classes"),
        description="CIFAR-100: 100 fine classes, 50k train / 10k test, 32 px",
    ),
    Source(
        name="flowers102",
        open=_by_split(tvd.Flowers102),
        splits=("train", "val", "test"),
        image_size=224,
        expected=("flowers-102/jpg/", "flowers-102/imagelabels.mat", "flowers-102/setid.mat"),
        labels=_attr("_labels"),
        classes=_attr("classes"),
        description="Oxford Flowers-102: 102 classes, 1020 train / 1020 val / 6149 test",
    ),
    Source(
        name="dtd",
        open=_dtd,
        splits=("train", "val", "test"),
        image_size=224,
        expected=("dtd/images/", "dtd/labels/"),
        labels=_attr("_labels"),
        classes=_attr("classes"),
        description="Describable Textures: 47 classes, partition 1, 1880 per split",
    ),
    Source(
        name="oxford_pets",
        open=_by_split(tvd.OxfordIIITPet, train="trainval"),
        splits=("train", "test"),
        image_size=224,
        expected=("oxford-iiit-pet/images/", "oxford-iiit-pet/annotations/"),
        labels=_attr("_labels"),
        classes=_attr("classes"),
        description="Oxford-IIIT Pet: 37 breeds, 3680 trainval / 3669 test",
    ),
    Source(
        name="fgvc_aircraft",
        open=_by_split(tvd.FGVCAircraft),
        splits=("train", "val", "test"),
        image_size=224,
        expected=("fgvc-aircraft-2013b/data/",),
        labels=_attr("_labels"),
        classes=_attr("classes"),
        description="FGVC-Aircraft: 100 variants, 3334 train / 3333 val / 3333 test",
    ),
    Source(
        name="food101",
        open=_by_split(tvd.Food101),
        splits=("train", "test"),
        image_size=224,
        expected=("food-101/images/", "food-101/meta/"),
        labels=_attr("_labels"),
        classes=_attr("classes"),
        description="Food-101: 101 classes, 750 train / 250 test each",
    ),
    Source(
        name="stl10",
        open=_by_split(tvd.STL10),
        splits=("train", "test"),
        image_size=96,
        expected=("stl10_binary/",),
        labels=_attr("labels"),
        classes=lambda dataset: STL10_CLASSES,
        description="STL-10 labelled part: 10 classes, 5k train / 8k test, 96 px",
    ),
    Source(
        name="svhn",
        open=_by_split(tvd.SVHN),
        splits=("train", "test"),
        image_size=32,
        expected=("{split}_32x32.mat",),
        labels=_attr("labels"),
        classes=lambda dataset: [str(digit) for digit in range(10)],
        description="SVHN cropped digits: 73k train / 26k test (no extra), 32 px",
    ),
    Source(
        name="caltech101",
        open=_caltech101,
        splits=("train", "test"),
        image_size=224,
        expected=("101_ObjectCategories/",),
        labels=lambda subset: np.asarray(subset.dataset.y)[subset.indices],
        classes=lambda subset: subset.dataset.categories,
        description=f"Caltech-101: 101 classes, seeded {CALTECH_TRAIN_PER_CLASS} per class "
        "train, rest test",
    ),
)


def missing_files(source: Source, directory: Path, split: str) -> list[str]:
    """The expected paths of ``source`` (for ``split``) absent from ``directory``."""
    missing = []
    for pattern in source.expected:
        relative = pattern.format(split=split)
        path = directory / relative
        if not (path.is_dir() if relative.endswith("/") else path.is_file()):
            missing.append(relative)
    return missing


def build(source: Source, request: BuildRequest) -> ImageSet:
    """Open the ``request.split`` of ``source``, downloading only when asked to."""
    directory = request.data_root / source.name
    missing = missing_files(source, directory, request.split)
    if missing and not request.download:
        raise DatasetMissingError(
            f"{source.name}: no data under {directory} (expected {', '.join(missing)}); "
            "pass --download or --data-root"
        )
    try:
        dataset = source.open(directory, request.split, request.download)
    except LOAD_ERRORS as exc:
        raise _failure(source, directory, exc, downloading=bool(missing)) from None
    return TorchvisionImageSet(dataset, source, request.image_size, request.interpolation)


def _failure(source: Source, directory: Path, exc: Exception, downloading: bool) -> LandscapeError:
    """One line saying whether the download or the files on disk failed."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    if downloading or isinstance(exc, NETWORK_ERRORS):
        return NetworkError(
            f"{source.name}: download into {directory} failed ({reason}); check the network "
            "or put the files there yourself"
        )
    return DatasetMissingError(
        f"{source.name}: the files under {directory} are incomplete or corrupt ({reason}); "
        "delete them and pass --download"
    )


for _source in SOURCES:
    register_dataset(
        _source.name,
        splits=_source.splits,
        default_image_size=_source.image_size,
        description=_source.description,
    )(functools.partial(build, _source))
