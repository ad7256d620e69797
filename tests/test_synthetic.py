"""The synthetic tasks: deterministic bytes, shapes, splits, class structure, invariances."""

from pathlib import Path

import numpy as np
import pytest
import torch

from finetune.data import BuildRequest, get_dataset, synthetic
from finetune.errors import UnknownDatasetError


def _build(task: str, split: str, size: int):
    return synthetic.build_synthetic(BuildRequest(task, split, Path("data"), False, size))


def _mirror_odd(images: np.ndarray) -> np.ndarray:
    """Per image, the mean product of central luminance differences along x and y: exactly
    negated by a horizontal flip, so its class means vanish if classes are flip-invariant."""
    luma = np.tensordot(synthetic.LUMA, images.astype(np.float64), axes=([0], [1]))
    gx = luma[:, 1:-1, 2:] - luma[:, 1:-1, :-2]
    gy = luma[:, 2:, 1:-1] - luma[:, :-2, 1:-1]
    return (gx * gy).mean(axis=(1, 2))


def _class_z_scores(stat: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.array([
        stat[labels == c].mean() / stat[labels == c].std() * np.sqrt((labels == c).sum())
        for c in np.unique(labels)
    ])


def test_same_task_split_and_size_give_identical_bytes_even_after_the_cache_is_cleared():
    first = _build("near", "test", 16).images.clone()
    assert torch.equal(first, _build("near", "test", 16).images)
    synthetic.synthetic_arrays.cache_clear()
    again = get_dataset("synthetic:near", "test", image_size=16).tensors()[0]
    assert torch.equal(first, again)


def test_callers_get_copies_that_cannot_corrupt_the_cache():
    data = _build("far", "val", 16)
    data.images.zero_()
    assert _build("far", "val", 16).images.float().std() > 10


@pytest.mark.parametrize("size", [16, 32])
def test_uint8_images_of_the_asked_size_and_balanced_classes(size):
    data = get_dataset("synthetic:far", "val", image_size=size)
    images, labels = data.tensors()
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, size, size)
    assert labels.dtype == torch.int64
    counts = np.bincount(labels.numpy(), minlength=data.num_classes)
    assert (counts == counts[0]).all() and counts[0] == synthetic.PER_CLASS["far"]["val"]
    assert images.float().std() > 10  # not blank


def test_every_size_renders_the_same_scenes():
    small, labels_small = synthetic.synthetic_arrays("near", "val", 16)
    large, labels_large = synthetic.synthetic_arrays("near", "val", 32)
    assert np.array_equal(labels_small, labels_large)
    pooled = large.reshape(len(large), 3, 16, 2, 16, 2).astype(float).mean(axis=(3, 5))
    corr = np.corrcoef(pooled.ravel(), small.astype(float).ravel())[0, 1]
    assert corr > 0.9


def test_splits_are_different_draws():
    train = get_dataset("synthetic:near", "train", image_size=16).tensors()[0]
    test = get_dataset("synthetic:near", "test", image_size=16).tensors()[0]
    assert not torch.equal(train[: len(test)], test[: len(train)])


def test_near_classes_are_new_compositions_of_the_source_primitives():
    source = set(get_dataset("synthetic:source", "val", image_size=16).classes)
    near = set(get_dataset("synthetic:near", "val", image_size=16).classes)
    far = set(get_dataset("synthetic:far", "val", image_size=16).classes)
    assert len(source) == 20 and len(near) == 10 and not source & near and not far & source
    uses = {task: np.zeros(len(synthetic.PRIMITIVES), int) for task in ("source", "near")}
    names = list(synthetic.PRIMITIVES)
    for task, count in uses.items():
        for pair in synthetic.shape_classes(task):
            assert pair[0] != pair[1]
            for name in pair:
                count[names.index(name)] += 1
    assert (uses["source"] == 4).all() and (uses["near"] == 2).all()


def test_train_per_class_subsamples_are_nested():
    ten = get_dataset("synthetic:near", "train", train_per_class=10, image_size=16)
    fifty = get_dataset("synthetic:near", "train", train_per_class=50, image_size=16)
    assert len(ten) == 100 and len(fifty) == 500
    assert (np.bincount(ten.targets) == 10).all()
    assert set(ten.indices) <= set(fifty.indices)


@pytest.mark.parametrize("task", synthetic.TASKS)
def test_classes_are_plausibly_flip_invariant(task):
    images, labels = synthetic.synthetic_arrays(task, "train", 16)
    stat = _mirror_odd(images)
    assert np.allclose(_mirror_odd(images[..., ::-1]), -stat)
    assert np.abs(_class_z_scores(stat, labels)).max() < 4
    # the statistic would catch a class drawn in one orientation only
    one_sided = np.where(stat[:, None, None, None] > 0, images, images[..., ::-1])
    assert _class_z_scores(_mirror_odd(one_sided), labels).min() > 10


def test_unknown_task_names_the_valid_ones():
    with pytest.raises(UnknownDatasetError, match="source, near, far"):
        get_dataset("synthetic:medium", "train")
    with pytest.raises(UnknownDatasetError, match="valid: source, near, far"):
        _build("closer", "train", 32)
