"""Datasets addressed by spec strings; ``get_dataset`` is the entry point of every probe."""

from finetune.data.imageset import ImageSet, SubsetImageSet, TensorImageSet
from finetune.data.registry import (
    BuildRequest,
    dataset_entries,
    dataset_options,
    get_dataset,
    native_splits,
    register_dataset,
    resolve_spec,
)

__all__ = [
    "BuildRequest",
    "ImageSet",
    "SubsetImageSet",
    "TensorImageSet",
    "dataset_entries",
    "dataset_options",
    "get_dataset",
    "native_splits",
    "register_dataset",
    "resolve_spec",
]
