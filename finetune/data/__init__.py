"""Datasets addressed by spec strings; ``get_dataset`` is the entry point of every probe."""

from finetune.data.imageset import ImageSet, SubsetImageSet, TensorImageSet
from finetune.data.registry import (
    BuildRequest,
    dataset_entries,
    get_dataset,
    register_dataset,
    resolve_spec,
)

__all__ = [
    "BuildRequest",
    "ImageSet",
    "SubsetImageSet",
    "TensorImageSet",
    "dataset_entries",
    "get_dataset",
    "register_dataset",
    "resolve_spec",
]
