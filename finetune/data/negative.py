"""``negative:SPEC``: the photographic negative of any dataset, every pixel value v of its
images replaced by 255 - v (the colours complemented, every luminance edge reversed), with
the same classes, labels and splits. A target whose images keep a dataset's shapes and
classes but not its low-level statistics: ``negative:fashion_mnist[5-9]`` is Fashion-MNIST's
second half as white-on-black-inverted garments, ``negative:synthetic:near`` the near task's
shape pairs in complemented colours. A class suffix applies to the negative dataset as to
any spec."""

from __future__ import annotations

import numpy as np
import torch

from finetune.data.imageset import ImageSet
from finetune.data.registry import BuildRequest, native_splits, register_dataset, resolve_spec
from finetune.errors import UnknownDatasetError

PREFIX = "negative"


class NegativeImageSet(ImageSet):
    """The images of ``base`` with every value v turned into 255 - v."""

    def __init__(self, base: ImageSet) -> None:
        super().__init__(base.classes, base.targets, base.image_size)
        self.base = base

    def image(self, index: int) -> torch.Tensor:
        return 255 - self.base.image(index)

    def images_at(self, indices: np.ndarray) -> torch.Tensor:
        return 255 - self.base.images_at(indices)


@register_dataset(
    PREFIX,
    splits=native_splits,
    default_image_size=32,
    takes_argument=True,
    description="the photographic negative (255 - v) of another dataset: "
    "negative:fashion_mnist[5-9], negative:synthetic:near",
)
def build_negative(request: BuildRequest) -> ImageSet:
    entry, inner = resolve_spec(request.argument)
    if entry.name == PREFIX:
        raise UnknownDatasetError(f"{PREFIX}:{request.argument}: a negative of a negative")
    inner_request = BuildRequest(
        inner, request.split, request.data_root, request.download, request.image_size,
        request.interpolation,
    )  # fmt: skip
    return NegativeImageSet(entry.build(inner_request))
