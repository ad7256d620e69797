"""folder:PATH datasets and the shared resize/crop to uint8, on tiny PNG trees."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from finetune.data import BuildRequest, get_dataset
from finetune.data.folder import build_folder, square_uint8
from finetune.errors import DatasetMissingError


def write_tree(root: Path, counts: dict[str, dict[str, int]]) -> Path:
    """PNG images root/<split>/<class>/<i>.png of assorted sizes and modes."""
    for split, per_class in counts.items():
        for label, (name, count) in enumerate(per_class.items()):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                size = (10 + 3 * i, 6 + label)
                mode = ("RGB", "L", "RGBA")[i % 3]
                Image.new(mode, size, color=40 * (label + 1)).save(root / split / name / f"{i}.png")
    return root


def spec(root: Path) -> str:
    return f"folder:{root}"


def native(root: Path, split: str):
    """The native split as the builder makes it, before the registry carves anything."""
    return build_folder(BuildRequest(str(root), split, Path("unused"), False, 8))


def test_square_uint8_resizes_the_shorter_side_and_crops_the_centre():
    pixels = np.zeros((4, 8), dtype=np.uint8)
    pixels[:, 4:] = 255  # left half black, right half white
    out = square_uint8(Image.fromarray(pixels, mode="L"), 4)
    assert out.dtype == torch.uint8 and out.shape == (3, 4, 4)
    assert (out[:, :, :2] == 0).all() and (out[:, :, 2:] == 255).all()
    assert square_uint8(Image.new("RGBA", (5, 9)), 12).shape == (3, 12, 12)


def test_splits_classes_and_images(tmp_path):
    root = write_tree(
        tmp_path / "tree",
        {"train": {"cat": 5, "dog": 5}, "val": {"dog": 2}},  # val lacks a class: allowed
    )
    train = native(root, "train")
    assert train.classes == ["cat", "dog"]
    assert train.targets.tolist() == [0] * 5 + [1] * 5
    image, label = train[7]
    assert image.dtype == torch.uint8 and image.shape == (3, 8, 8) and label == 1

    test = get_dataset(spec(root), "test", image_size=8)  # no test/: val/ is held out
    assert test.classes == ["cat", "dog"] and test.targets.tolist() == [1, 1]

    val = get_dataset(spec(root), "val", image_size=8, val_fraction=0.2)  # carved from train
    small = get_dataset(spec(root), "train", image_size=8, val_fraction=0.2, train_per_class=2)
    assert len(val) == 2 and len(small) == 4
    assert not set(val.indices) & set(small.indices)


def test_with_val_and_test_folders_both_are_used(tmp_path):
    root = write_tree(
        tmp_path, {"train": {"a": 2, "b": 2}, "val": {"a": 1}, "test": {"a": 3, "b": 1}}
    )
    assert get_dataset(spec(root), "test", image_size=8).targets.tolist() == [0, 0, 0, 1]
    assert get_dataset(spec(root), "val", image_size=8).targets.tolist() == [0]
    assert len(get_dataset(spec(root), "train", image_size=8)) == 4  # nothing carved


def test_images_are_decoded_lazily(tmp_path, monkeypatch):
    root = write_tree(tmp_path, {"train": {"a": 2}, "test": {"a": 1}})

    def refuse(*args, **kwargs):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(Image, "open", refuse)
    train = native(root, "train")
    assert len(train) == 2
    with pytest.raises(AssertionError, match="decoded"):
        train.image(0)


def test_class_missing_from_train_is_an_error(tmp_path):
    root = write_tree(tmp_path, {"train": {"a": 2}, "val": {"a": 1, "zebra": 1}})
    with pytest.raises(DatasetMissingError, match="zebra"):
        get_dataset(spec(root), "test", image_size=8)


@pytest.mark.parametrize(
    ("counts", "split", "named"),
    [
        (None, "train", "no directory"),
        ({"val": {"a": 1}}, "train", "no train/ folder"),
        ({"train": {"a": 2}}, "test", "no test/ or val/"),
    ],
)
def test_missing_parts_name_the_path(tmp_path, counts, split, named):
    root = tmp_path / "tree"
    if counts:
        write_tree(root, counts)
    with pytest.raises(DatasetMissingError, match=named) as caught:
        get_dataset(spec(root), split)
    assert str(root) in str(caught.value)
