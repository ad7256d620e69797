"""torchvision datasets read from tiny fake copies in their real on-disk formats; the network
is stubbed where torchvision reaches it."""

from __future__ import annotations

import pickle
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import cifar

from finetune.data import get_dataset
from finetune.data.torchvision_sets import CALTECH_TRAIN_PER_CLASS, SOURCES
from finetune.errors import DatasetMissingError, NetworkError

NAMES = [source.name for source in SOURCES]
CIFAR_CLASSES = [f"class{i}" for i in range(10)]


def write_cifar10(root: Path) -> np.ndarray:
    """CIFAR-10's pickled batches under root: 5 train batches of one image per class, a
    test batch of two per class. Returns the train images as (N, 32, 32, 3)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    train = []
    for name, per_class in [(f"data_batch_{i}", 1) for i in range(1, 6)] + [("test_batch", 2)]:
        labels = [label for label in range(10) for _ in range(per_class)]
        data = rng.integers(0, 256, (len(labels), 3 * 32 * 32), dtype=np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
        if name != "test_batch":
            train.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR_CLASSES}, f)
    return np.concatenate(train)


@pytest.fixture
def no_md5(monkeypatch):
    """CIFAR's integrity check reduced to 'the file exists': fake files have other md5s."""
    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: Path(path).is_file())


def test_cifar10_images_labels_and_splits(tmp_path, no_md5):
    pixels = write_cifar10(tmp_path / "cifar10")
    train = get_dataset("cifar10", "train", data_root=tmp_path, val_fraction=0.2)
    val = get_dataset("cifar10", "val", data_root=tmp_path, val_fraction=0.2)
    assert train.classes == CIFAR_CLASSES and train.image_size == 32
    assert len(train) + len(val) == 50 and np.bincount(val.targets).tolist() == [1] * 10

    image, label = train[0]
    index = int(train.indices[0])
    assert image.dtype == torch.uint8 and image.shape == (3, 32, 32)
    assert torch.equal(image, torch.from_numpy(pixels[index]).permute(2, 0, 1))
    assert label == index % 10  # batches hold classes 0..9 in order
    assert train.targets.tolist() == [i % 10 for i in train.indices]

    few = get_dataset(
        "cifar10", "train", data_root=tmp_path, val_fraction=0.2, train_per_class=2, image_size=16
    )
    assert len(few) == 20 and few[0][0].shape == (3, 16, 16)
    assert not set(few.indices) & set(val.indices)
    assert set(few.indices) <= set(train.indices)

    test = get_dataset("cifar10", "test", data_root=tmp_path)
    assert len(test) == 20 and test.targets.tolist() == [i // 2 for i in range(20)]


def write_images(paths: list[Path], mode: str = "RGB") -> None:
    for i, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new(mode, (12 + i, 9), color=30 * i).save(path, format="JPEG")


def test_dtd_native_splits_from_label_files(tmp_path):
    data = tmp_path / "dtd" / "dtd"
    lists = {
        "train": ["dotted/d0.jpg", "banded/b0.jpg"],
        "val": ["banded/b1.jpg"],
        "test": ["dotted/d1.jpg", "banded/b2.jpg"],
    }
    (data / "labels").mkdir(parents=True)
    for split, files in lists.items():
        (data / "labels" / f"{split}1.txt").write_text("\n".join(files) + "\n")
        write_images([data / "images" / file for file in files])

    val = get_dataset("dtd", "val", data_root=tmp_path, image_size=8)  # native, not carved
    assert val.classes == ["banded"] and val.targets.tolist() == [0]
    test = get_dataset("dtd", "test", data_root=tmp_path, image_size=8)
    assert test.classes == ["banded", "dotted"] and test.targets.tolist() == [1, 0]
    image, _ = test[0]
    assert image.dtype == torch.uint8 and image.shape == (3, 8, 8)
    assert len(get_dataset("dtd", "train", data_root=tmp_path)) == 2


def test_oxford_pets_train_is_trainval(tmp_path):
    base = tmp_path / "oxford_pets" / "oxford-iiit-pet"
    lists = {
        "trainval": ["Abyssinian_1 1", "american_bulldog_1 2", "Abyssinian_2 1"],
        "test": ["american_bulldog_2 2"],
    }
    (base / "annotations").mkdir(parents=True)
    for split, lines in lists.items():
        rows = [f"{line} 1 1" for line in lines]
        (base / "annotations" / f"{split}.txt").write_text("\n".join(rows) + "\n")
        write_images([base / "images" / f"{line.split()[0]}.jpg" for line in lines])

    train = get_dataset("oxford_pets", "train", data_root=tmp_path, val_fraction=0.5)
    assert train.base.targets.tolist() == [0, 1, 0]
    assert train.classes == ["Abyssinian", "American Bulldog"]
    assert get_dataset("oxford_pets", "test", data_root=tmp_path).targets.tolist() == [1]


def test_caltech101_seeded_split(tmp_path):
    categories = tmp_path / "caltech101" / "101_ObjectCategories"
    for name, count in [("BACKGROUND_Google", 2), ("accordion", 4), ("ant", 3)]:
        write_images([categories / name / f"image_{i:04d}.jpg" for i in range(1, count + 1)], "L")

    train = get_dataset("caltech101", "train", data_root=tmp_path, val_fraction=0.3)
    full_train = train.base
    test = get_dataset("caltech101", "test", data_root=tmp_path, image_size=8)
    assert full_train.classes == ["accordion", "ant"] and test.classes == full_train.classes
    assert CALTECH_TRAIN_PER_CLASS > 3  # so here: all but one image of each class train
    assert np.bincount(full_train.targets).tolist() == [3, 2]
    assert sorted(test.targets.tolist()) == [0, 1]
    train_items = set(full_train.dataset.indices)
    assert not train_items & set(test.dataset.indices)
    assert len(train_items | set(test.dataset.indices)) == 7
    image, _ = test[0]
    assert image.shape == (3, 8, 8) and image.dtype == torch.uint8  # grayscale made RGB
    again = get_dataset("caltech101", "test", data_root=tmp_path)
    assert again.dataset.indices == test.dataset.indices


@pytest.mark.parametrize("name", NAMES)
def test_missing_files_name_dataset_and_directory(tmp_path, name):
    with pytest.raises(DatasetMissingError) as caught:
        get_dataset(name, "test", data_root=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{name}: ") and str(tmp_path / name) in message
    assert "expected" in message and "\n" not in message
    assert not any(tmp_path.iterdir())  # nothing created without a download


def test_corrupt_files_are_one_line_not_a_torchvision_error(tmp_path):
    (tmp_path / "cifar10" / "cifar-10-batches-py").mkdir(parents=True)
    with pytest.raises(DatasetMissingError, match="cifar10: the files under .* are incomplete"):
        get_dataset("cifar10", "train", data_root=tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_download_without_network_is_a_network_error(tmp_path, monkeypatch, name):
    urls = []

    def offline(request, *args, **kwargs):
        urls.append(getattr(request, "full_url", request))
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(NetworkError, match=f"{name}: download into .* failed .*offline"):
        get_dataset(name, "test", data_root=tmp_path, download=True)
    assert urls and all(url.startswith("http") for url in urls)


def test_download_fetches_cifar10_then_loads(tmp_path, monkeypatch, no_md5):
    calls = []

    def fetch(url, download_root, **kwargs):
        calls.append(url)
        write_cifar10(Path(download_root))

    monkeypatch.setattr(cifar, "download_and_extract_archive", fetch)
    test = get_dataset("cifar10", "test", data_root=tmp_path, download=True)
    assert calls == [cifar.CIFAR10.url] and len(test) == 20
    get_dataset("cifar10", "test", data_root=tmp_path, download=True)
    assert len(calls) == 1  # present files are not fetched again


def test_download_os_error_is_a_network_error(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("connection reset")

    monkeypatch.setattr(cifar, "download_and_extract_archive", broken)
    with pytest.raises(NetworkError, match="connection reset"):
        get_dataset("cifar10", "train", data_root=tmp_path, download=True)
