"""``negative:SPEC``: the same dataset with every pixel value v turned into 255 - v."""

import pytest

from finetune.data import get_dataset
from finetune.errors import UnknownDatasetError


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_negative_is_the_complement_with_the_same_labels(split):
    plain = get_dataset("synthetic:near[0-3]", split, image_size=16, train_per_class=5)
    negative = get_dataset("negative:synthetic:near[0-3]", split, image_size=16,
                           train_per_class=5)  # fmt: skip
    images, labels = plain.tensors()
    flipped, flipped_labels = negative.tensors()
    assert (images.int() + flipped.int() == 255).all()
    assert (labels == flipped_labels).all() and negative.classes == plain.classes
    assert negative.image(0).tolist() == (255 - plain.image(0)).tolist()


def test_carved_splits_follow_the_inner_dataset(digits):
    plain = get_dataset("digits", "val", val_fraction=0.2, split_seed=3)
    negative = get_dataset("negative:digits", "val", val_fraction=0.2, split_seed=3)
    assert (plain.targets == negative.targets).all()
    assert (plain.tensors()[0].int() + negative.tensors()[0].int() == 255).all()


def test_a_negative_of_a_negative_is_refused():
    with pytest.raises(UnknownDatasetError, match="negative of a negative"):
        get_dataset("negative:negative:synthetic:near", "test", image_size=16)
