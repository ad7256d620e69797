"""The synthetic tasks: deterministic bytes, shapes, splits, class structure."""

import numpy as np
import pytest
import torch

from finetune.data import get_dataset, synthetic
from finetune.errors import UnknownDatasetError


def test_same_task_split_and_size_give_identical_bytes_even_after_the_cache_is_cleared():
    first = get_dataset("synthetic:near", "test", image_size=16).tensors()[0].clone()
    caches = [f for f in vars(synthetic).values() if hasattr(f, "cache_clear")]
    assert caches
    for cached in caches:
        cached.cache_clear()
    again = get_dataset("synthetic:near", "test", image_size=16).tensors()[0]
    assert torch.equal(first, again)


@pytest.mark.parametrize("size", [16, 32])
def test_uint8_images_of_the_asked_size_and_balanced_classes(size):
    data = get_dataset("synthetic:far", "val", image_size=size)
    images, labels = data.tensors()
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, size, size)
    counts = np.bincount(labels.numpy(), minlength=data.num_classes)
    assert (counts == counts[0]).all() and counts[0] > 0
    assert images.float().std() > 10  # not blank


def test_splits_are_different_draws():
    train = get_dataset("synthetic:near", "train", image_size=16).tensors()[0]
    test = get_dataset("synthetic:near", "test", image_size=16).tensors()[0]
    assert not torch.equal(train[: len(test)], test[: len(train)])


def test_near_classes_are_new_compositions_of_the_source_primitives():
    source = set(get_dataset("synthetic:source", "val", image_size=16).classes)
    near = set(get_dataset("synthetic:near", "val", image_size=16).classes)
    far = set(get_dataset("synthetic:far", "val", image_size=16).classes)
    assert len(source) == 20 and len(near) == 10 and not source & near and not far & source
    primitives = set(synthetic.PRIMITIVES)
    for name in source | near:
        assert set(name.split("+")) <= primitives, name


def test_train_per_class_subsamples_are_nested():
    ten = get_dataset("synthetic:near", "train", train_per_class=10, image_size=16)
    fifty = get_dataset("synthetic:near", "train", train_per_class=50, image_size=16)
    assert len(ten) == 100 and len(fifty) == 500
    assert set(ten.indices) <= set(fifty.indices)


def test_unknown_task_names_the_valid_ones():
    with pytest.raises(UnknownDatasetError, match="source, near, far"):
        get_dataset("synthetic:medium", "train")
