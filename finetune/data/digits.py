"""``digits``: the UCI handwritten digits bundled inside scikit-learn (1,797 grey 8x8 scans,
10 classes, values 0-16, no download). They have no official split: each class is shuffled
once with ``SPLIT_SEED`` and its first ``TEST_FRACTION`` (rounded) are ``test``, the rest
``train``, so every run tests on the same 539 images whatever its seeds. Pixels are scaled
to 0-255 (``round(v * 255 / 16)``). scikit-learn is the optional extra ``digits``
(``pip install "landscape[digits]"``).
"""

from __future__ import annotations

import functools

import numpy as np

from finetune.data.grey import GreyArrayImageSet
from finetune.data.imageset import ImageSet
from finetune.data.registry import BuildRequest, register_dataset
from finetune.errors import DatasetMissingError

SPLIT_SEED = 0xD1617
TEST_FRACTION = 0.3
MAX_VALUE = 16


@functools.lru_cache(maxsize=1)
def split_digits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train'|'test': (images (N, 8, 8) uint8, labels (N,) int64)}, the fixed split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DatasetMissingError(
            'digits: needs scikit-learn; pip install "landscape[digits]" (or scikit-learn)'
        ) from None
    bunch = load_digits()
    images = np.rint(bunch.images * (255 / MAX_VALUE)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    rng = np.random.default_rng(SPLIT_SEED)
    test = []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        test.append(members[: round(TEST_FRACTION * len(members))])
    is_test = np.zeros(len(labels), dtype=bool)
    is_test[np.concatenate(test)] = True
    images.flags.writeable = False
    return {
        "train": (images[~is_test], labels[~is_test]),
        "test": (images[is_test], labels[is_test]),
    }


@register_dataset(
    "digits",
    default_image_size=32,
    description="UCI handwritten digits from scikit-learn: 10 classes, 1258 train / 539 "
    'test (seeded), 8 px grey (pip install "landscape[digits]")',
)
def build_digits(request: BuildRequest) -> ImageSet:
    images, labels = split_digits()[request.split]
    classes = [str(digit) for digit in range(10)]
    return GreyArrayImageSet(images, labels, classes, request.image_size, request.interpolation)
