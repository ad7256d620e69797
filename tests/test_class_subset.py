"""Class subsets ``SPEC[CLASSES]`` on datasets generated in memory: the kept images and
labels against the full dataset, the splits and per-class subsampling acting on the kept
classes only, nested views reading the innermost images, and every malformed suffix a
one-line ConfigError naming the flag the spec was given with."""

import numpy as np
import pytest
import torch
from conftest import fast_config

from finetune.data import get_dataset
from finetune.data.imageset import SubsetImageSet, TensorImageSet
from finetune.errors import ConfigError

SIZE = 16


def base_and_subset(selection: str, split: str = "test"):
    base = get_dataset("synthetic:near", split, image_size=SIZE)
    subset = get_dataset(f"synthetic:near[{selection}]", split, image_size=SIZE)
    return base, subset


def expected_view(base_targets: np.ndarray, kept: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(base indices kept, their new labels), written out by hand: the kept images in
    their original order, label = position of the original label in ``kept``."""
    indices = [i for i, t in enumerate(base_targets) if t in kept]
    labels = [kept.index(base_targets[i]) for i in indices]
    return np.array(indices), np.array(labels)


@pytest.mark.parametrize(
    "selection, kept",
    [
        ("2,5-7", [2, 5, 6, 7]),
        ("7,2,5-6", [2, 5, 6, 7]),  # listed out of order: original order kept
        (" 2 , 5 - 7 ", [2, 5, 6, 7]),
        ("9", [9]),
        ("0-9", list(range(10))),
    ],
)
def test_kept_images_and_labels_match_the_full_dataset(selection, kept):
    base, subset = base_and_subset(selection)
    indices, labels = expected_view(base.targets, kept)
    assert subset.classes == [base.classes[c] for c in kept]
    assert subset.num_classes == len(kept)
    np.testing.assert_array_equal(subset.targets, labels)
    assert torch.equal(subset.images_at(np.arange(len(subset))), base.images_at(indices))
    # Per-image access agrees with the batched one.
    assert torch.equal(subset.image(len(subset) - 1), base.image(int(indices[-1])))
    assert subset[0][1] == labels[0]


def test_classes_are_chosen_by_name_case_insensitively():
    base = get_dataset("synthetic:near", "test", image_size=SIZE)
    names = [base.classes[4].upper(), base.classes[1].lower(), "  " + base.classes[8]]
    subset = get_dataset(f"synthetic:near[{','.join(names)}]", "test", image_size=SIZE)
    assert subset.classes == [base.classes[1], base.classes[4], base.classes[8]]
    _, labels = expected_view(base.targets, [1, 4, 8])
    np.testing.assert_array_equal(subset.targets, labels)
    mixed = get_dataset(f"synthetic:near[{base.classes[8]},1,4]", "test", image_size=SIZE)
    np.testing.assert_array_equal(mixed.targets, subset.targets)


def test_native_val_and_train_per_class_keep_only_the_chosen_classes():
    base_val, val = base_and_subset("3-5", "val")
    _, labels = expected_view(base_val.targets, [3, 4, 5])
    np.testing.assert_array_equal(val.targets, labels)
    assert len(val) == 3 * 20  # synthetic:near has 20 val images per class

    train = get_dataset("synthetic:near[3-5]", "train", image_size=SIZE, train_per_class=6)
    np.testing.assert_array_equal(np.bincount(train.targets, minlength=3), [6, 6, 6])
    full = get_dataset("synthetic:near", "train", image_size=SIZE)
    # The flattened view indexes the full training set; its labels there are 3, 4, 5.
    assert isinstance(train, SubsetImageSet) and not isinstance(train.base, SubsetImageSet)
    np.testing.assert_array_equal(full.targets[train.indices], train.targets + 3)
    assert torch.equal(train.images_at(np.arange(len(train))), full.images_at(train.indices))


def numbered_images(labels: list[int]) -> TensorImageSet:
    """Image i is filled with the value i, so every pixel says which image it is."""
    images = torch.arange(len(labels), dtype=torch.uint8)[:, None, None, None].expand(-1, 3, 8, 8)
    return TensorImageSet(images.contiguous(), np.array(labels), ["a", "b", "c", "d"])


def test_a_view_of_a_view_reads_the_innermost_images():
    labels = [0, 1, 2, 3, 1, 2, 3, 0, 3, 2]
    base = numbered_images(labels)
    inner = SubsetImageSet(base, np.flatnonzero(np.isin(labels, [1, 3])), kept_classes=[1, 3])
    assert inner.classes == ["b", "d"]
    np.testing.assert_array_equal(inner.indices, [1, 3, 4, 6, 8])
    np.testing.assert_array_equal(inner.targets, [0, 1, 0, 1, 1])

    outer = SubsetImageSet(inner, np.array([4, 0, 2]))
    assert outer.base is base
    np.testing.assert_array_equal(outer.indices, [8, 1, 4])
    np.testing.assert_array_equal(outer.targets, [1, 0, 0])
    assert outer.classes == ["b", "d"]
    np.testing.assert_array_equal(
        outer.images_at(np.arange(3))[:, :, 0, 0], [[8] * 3, [1] * 3, [4] * 3]
    )
    assert int(outer.image(0)[0, 0, 0]) == 8

    # A second subset of classes on top of the first: names and labels of the first.
    only_d = SubsetImageSet(inner, np.flatnonzero(inner.targets == 1), kept_classes=[1])
    assert only_d.base is base and only_d.classes == ["d"]
    np.testing.assert_array_equal(only_d.indices, [3, 6, 8])
    np.testing.assert_array_equal(only_d.targets, [0, 0, 0])
    np.testing.assert_array_equal(only_d.images_at(np.arange(3))[:, 0, 0, 0], [3, 6, 8])


def test_a_view_refuses_images_of_classes_it_does_not_keep():
    base = numbered_images([0, 1, 2, 3])
    with pytest.raises(ValueError, match="not kept"):
        SubsetImageSet(base, np.array([0, 1]), kept_classes=[1])


@pytest.mark.parametrize(
    "spec, message",
    [
        ("synthetic:near[0-4", "a class subset is written SPEC[CLASSES] at the end"),
        ("synthetic:near0-4]", "a class subset is written SPEC[CLASSES] at the end"),
        ("synthetic:near[0-4]x", "a class subset is written SPEC[CLASSES] at the end"),
        ("synthetic:near[]", "empty class list"),
        ("synthetic:near[  ]", "empty class list"),
    ],
)
def test_malformed_suffixes_are_refused_with_the_configuration(spec, message):
    for raise_it in (
        lambda: get_dataset(spec, "test", image_size=SIZE),
        lambda: fast_config(data=spec),
    ):
        with pytest.raises(ConfigError) as error:
            raise_it()
        text = str(error.value)
        assert "\n" not in text and text.startswith(f"--data {spec}") and message in text


@pytest.mark.parametrize(
    "selection, message",
    [
        ("0-10", "class 10 out of range (the dataset has 10 classes, 0-9)"),
        ("12", "class 12 out of range"),
        ("3,3", "is listed twice"),
        ("0-4,2", "is listed twice"),
        ("1,NEAR_CLASS_1", "is listed twice"),
        ("4-2", "range 4-2 runs backwards"),
        ("nope", "no class 'nope'"),
        ("0,,1", "no class ''"),
        ("-1", "no class '-1'"),
    ],
)
def test_bad_class_lists_are_one_line_config_errors(selection, message):
    base = get_dataset("synthetic:near", "test", image_size=SIZE)
    selection = selection.replace("NEAR_CLASS_1", base.classes[1])
    spec = f"synthetic:near[{selection}]"
    for split in ("train", "val", "test"):
        with pytest.raises(ConfigError) as error:
            get_dataset(spec, split, image_size=SIZE)
        text = str(error.value)
        assert "\n" not in text and text.startswith(f"--data {spec}:") and message in text


def test_errors_name_the_flag_the_spec_came_with():
    with pytest.raises(ConfigError, match=r"^--fisher-data synthetic:source\[\]: empty"):
        get_dataset("synthetic:source[]", "test", image_size=SIZE, flag="--fisher-data")
    with pytest.raises(ConfigError, match=r"^--fisher-data synthetic:source\[25\]: class 25"):
        get_dataset("synthetic:source[25]", "test", image_size=SIZE, flag="--fisher-data")
    # synthetic:source has 20 classes, so 19 is fine there.
    assert get_dataset("synthetic:source[19]", "test", image_size=SIZE).num_classes == 1
