"""The real datasets against truths of their own: Fashion-MNIST's IDX files parsed here by
hand (headers, counts, pixels, its published mean), the same PNGs through ``folder:``,
class subsets against the original labels, scikit-learn's digits split, the one-line
errors when they are missing, and short runs on both that the probes read back."""

import functools
import gzip
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import fast_config
from PIL import Image
from test_cli import FAST as CLI_FAST
from test_cli import run_cli

from finetune import engine
from finetune.data import get_dataset
from finetune.data.imageset import SubsetImageSet
from finetune.data.registry import dataset_entries
from finetune.errors import ConfigError, DatasetMissingError
from finetune.runs import load_run
from probes.inputs import probe_data
from probes.options import ProbeOptions

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
COUNTS = {"train": 60000, "test": 10000}
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]  # fmt: skip


def raw_bytes(directory: Path, name: str) -> bytes:
    plain = directory / name
    if plain.is_file():
        return plain.read_bytes()
    with gzip.open(directory / f"{name}.gz", "rb") as handle:
        return handle.read()


@functools.lru_cache(maxsize=2)
def raw_split(directory: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) uint8) parsed here from the IDX bytes."""
    images_name, labels_name = FILES[split]
    images, labels = raw_bytes(directory, images_name), raw_bytes(directory, labels_name)
    magic, count, rows, cols = struct.unpack(">IIII", images[:16])
    assert (magic, count, rows, cols) == (2051, COUNTS[split], 28, 28)
    assert len(images) == 16 + count * rows * cols
    magic, label_count = struct.unpack(">II", labels[:8])
    assert (magic, label_count) == (2049, COUNTS[split])
    assert len(labels) == 8 + label_count
    pixels = np.frombuffer(images, dtype=np.uint8, offset=16).reshape(count, rows, cols)
    return pixels, np.frombuffer(labels, dtype=np.uint8, offset=8)


# --- the IDX reader, on files written here -------------------------------------------------


def idx_bytes(code: int, values: np.ndarray, big_endian: str) -> bytes:
    """An IDX file by the format's definition: 0, 0, type code, ndim, big-endian sizes."""
    header = struct.pack(">BBBB", 0, 0, code, values.ndim)
    header += struct.pack(f">{values.ndim}I", *values.shape)
    return header + values.astype(big_endian).tobytes()


@pytest.mark.parametrize(
    "code, big_endian",
    [(0x08, "u1"), (0x09, "i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8")],
)
@pytest.mark.parametrize("gzipped", [False, True])
def test_the_reader_reads_every_idx_type_plain_or_gzipped(tmp_path, code, big_endian, gzipped):
    from finetune.data.idx import read_idx

    values = (np.arange(2 * 3 * 5).reshape(2, 3, 5) * 7 - 50).astype(big_endian)
    if code == 0x08:
        values = values.astype(np.int64).clip(0, 255).astype(big_endian)
    data = idx_bytes(code, values, big_endian)
    path = tmp_path / ("x.gz" if gzipped else "x")
    path.write_bytes(gzip.compress(data) if gzipped else data)
    read = read_idx(path)
    assert read.dtype.isnative and read.shape == (2, 3, 5)
    assert np.array_equal(read, values)


CORRUPT_IDX_FILES = [
    ("empty", b"", "bad magic number"),
    ("magic", b"\x01\x00\x08\x01\x00\x00\x00\x01\x07", "bad magic number"),
    ("code", b"\x00\x00\x0a\x01\x00\x00\x00\x01\x07", "bad magic number"),
    ("header", b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
    ("short", b"\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x02\x01\x02\x03", "shape (2, 2)"),
    ("long", b"\x00\x00\x08\x01\x00\x00\x00\x01\x07\x07", "shape (1,)"),
    ("cut.gz", gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07", mtime=0)[:-9], "unreadable"),
    ("bad.gz", b"not gzip at all", "unreadable"),
]


@pytest.mark.parametrize(
    "name, data, message", CORRUPT_IDX_FILES, ids=[case[0] for case in CORRUPT_IDX_FILES]
)
def test_corrupt_idx_files_are_one_line_errors_naming_the_file(tmp_path, name, data, message):
    from finetune.data.idx import read_idx

    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DatasetMissingError) as error:
        read_idx(path)
    text = str(error.value)
    assert "\n" not in text and text.startswith(f"{path}: ") and message in text


# --- Fashion-MNIST -------------------------------------------------------------------------


def test_the_reader_returns_the_bytes_behind_the_headers(fashion_mnist):
    from finetune.data.idx import read_idx

    for split, (images_name, labels_name) in FILES.items():
        pixels, labels = raw_split(fashion_mnist, split)
        path = next(p for p in fashion_mnist.iterdir() if p.name.startswith(images_name))
        read = read_idx(path)
        assert read.dtype == np.uint8 and read.shape == (COUNTS[split], 28, 28)
        assert np.array_equal(read, pixels)
        path = next(p for p in fashion_mnist.iterdir() if p.name.startswith(labels_name))
        assert np.array_equal(read_idx(path), labels)


def test_split_lengths_and_class_counts(fashion_mnist):
    _, test_labels = raw_split(fashion_mnist, "test")
    _, train_labels = raw_split(fashion_mnist, "train")
    assert np.array_equal(np.bincount(test_labels), [1000] * 10)
    assert np.array_equal(np.bincount(train_labels), [6000] * 10)

    test = get_dataset("fashion_mnist", "test", image_size=16)
    train = get_dataset("fashion_mnist", "train", image_size=16)
    val = get_dataset("fashion_mnist", "val", image_size=16)
    assert test.classes == train.classes == val.classes == NAMES
    assert len(test) == 10000 and len(train) + len(val) == 60000
    assert np.array_equal(test.targets, test_labels)
    # Validation is carved from train: 10% of each class, disjoint from what is left.
    assert np.array_equal(np.bincount(val.targets), [600] * 10)
    assert np.array_equal(np.bincount(train.targets), [5400] * 10)
    both = np.concatenate([train.indices, val.indices])
    assert np.array_equal(np.sort(both), np.arange(60000))
    assert np.array_equal(train.targets, train_labels[train.indices])
    assert np.array_equal(val.targets, train_labels[val.indices])
    assert dataset_entries()["fashion_mnist"].default_image_size == 28


def test_images_at_the_native_size_are_the_raw_pixels_in_three_equal_channels(fashion_mnist):
    pixels, _ = raw_split(fashion_mnist, "test")
    chosen = np.arange(0, 10000, 25)  # 400 images
    images = get_dataset("fashion_mnist", "test", image_size=28).images_at(chosen)
    assert images.dtype == torch.uint8 and images.shape == (400, 3, 28, 28)
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])
    raw_mean = float(pixels[chosen].mean())
    assert float(images[:, 0].double().mean()) == pytest.approx(raw_mean, abs=1e-9)
    assert torch.equal(images[:, 0], torch.from_numpy(pixels[chosen].copy()))


def test_train_pixels_have_the_published_mean(fashion_mnist):
    from finetune.data.fashion_mnist import read_split

    pixels, _ = raw_split(fashion_mnist, "train")
    raw_mean = float(pixels.mean(dtype=np.float64))
    assert raw_mean / 255 == pytest.approx(0.2860, abs=0.01)  # x255: about 72.94
    images, labels = read_split(fashion_mnist, "train")
    assert float(images.mean(dtype=np.float64)) == raw_mean
    assert np.array_equal(labels, raw_split(fashion_mnist, "train")[1])


def test_a_class_subset_is_the_original_labels_shifted(fashion_mnist):
    pixels, labels = raw_split(fashion_mnist, "test")
    subset = get_dataset("fashion_mnist[5-9]", "test", image_size=16)
    assert subset.classes == ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert np.array_equal(subset.targets, labels[labels >= 5].astype(np.int64) - 5)
    kept = np.flatnonzero(labels >= 5)
    full = get_dataset("fashion_mnist", "test", image_size=16)
    some = np.arange(0, len(subset), 97)
    assert torch.equal(subset.images_at(some), full.images_at(kept[some]))

    by_name = get_dataset("fashion_mnist[Sandal,sneaker]", "test", image_size=16)
    assert by_name.classes == ["Sandal", "Sneaker"]
    chosen = labels[(labels == 5) | (labels == 7)]
    assert np.array_equal(by_name.targets, (chosen == 7).astype(np.int64))
    assert len(by_name) == 2000


def test_subsampling_and_the_val_carve_of_a_subset_keep_only_its_classes(fashion_mnist):
    _, labels = raw_split(fashion_mnist, "train")
    train = get_dataset("fashion_mnist[5-9]", "train", image_size=16, train_per_class=7)
    assert np.array_equal(np.bincount(train.targets, minlength=5), [7] * 5)
    val = get_dataset("fashion_mnist[5-9]", "val", image_size=16)
    rest = get_dataset("fashion_mnist[5-9]", "train", image_size=16)
    assert val.classes == rest.classes == train.classes == NAMES[5:]
    assert np.array_equal(np.bincount(val.targets, minlength=5), [600] * 5)
    # Views of the class subset index the full split directly, with the original labels.
    full = get_dataset("fashion_mnist", "train", image_size=16)
    for view in (train, val, rest):
        assert isinstance(view, SubsetImageSet) and not isinstance(view.base, SubsetImageSet)
        assert np.array_equal(labels[view.indices].astype(np.int64) - 5, view.targets)
    assert set(train.indices) <= set(rest.indices)
    both = np.sort(np.concatenate([val.indices, rest.indices]))
    assert np.array_equal(both, np.flatnonzero(labels >= 5))
    # ... and read the same pixels as the full split (itself a view of the native one).
    some = np.arange(0, len(val), 50)
    native = full.base if isinstance(full, SubsetImageSet) else full
    assert torch.equal(val.images_at(some), native.images_at(val.indices[some]))


@pytest.mark.parametrize(
    "selection, message",
    [
        ("3-10", "class 10 out of range (the dataset has 10 classes, 0-9)"),
        ("Bag,8", "class 'Bag' is listed twice"),
        ("9-5", "range 9-5 runs backwards"),
        ("Sandals", "no class 'Sandals'"),
    ],
)
def test_bad_class_lists_name_the_flag(fashion_mnist, selection, message):
    spec = f"fashion_mnist[{selection}]"
    with pytest.raises(ConfigError) as error:
        get_dataset(spec, "test", image_size=16)
    text = str(error.value)
    assert "\n" not in text and text.startswith(f"--data {spec}: ") and message in text


def write_png_tree(root: Path, directory: Path, classes: list[int], per_class: int) -> dict:
    """``root/{train,test}/<class>/<index>.png`` from the raw bytes: the first
    ``per_class`` images of each class; returns {split: raw indices in folder order}."""
    order = {}
    for split in ("train", "test"):
        pixels, labels = raw_split(directory, split)
        order[split] = []
        for label in classes:  # class folders sort in label order: c5 < c7 < c9
            folder = root / split / f"c{label}"
            folder.mkdir(parents=True)
            for index in np.flatnonzero(labels == label)[:per_class]:
                # A 2-D uint8 array is a grey image (mode L).
                Image.fromarray(pixels[index]).save(folder / f"{index:05d}.png")
                order[split].append(int(index))
    return order


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_the_same_pngs_through_folder_give_the_same_images(fashion_mnist, tmp_path, interpolation):
    order = write_png_tree(tmp_path / "tree", fashion_mnist, [5, 7, 9], per_class=4)
    tree = get_dataset(f"folder:{tmp_path / 'tree'}", "test", image_size=32,
                       interpolation=interpolation)  # fmt: skip
    full = get_dataset("fashion_mnist", "test", image_size=32, interpolation=interpolation)
    assert tree.classes == ["c5", "c7", "c9"] and len(tree) == 12
    _, labels = raw_split(fashion_mnist, "test")
    assert np.array_equal(tree.targets, np.searchsorted([5, 7, 9], labels[order["test"]]))
    for position, index in enumerate(order["test"]):
        assert torch.equal(tree.image(position), full.image(index))
    assert torch.equal(tree.images_at(np.arange(12)), full.images_at(np.array(order["test"])))
    # Upsampled, so the interpolation matters: the two modes give different images.
    other = "bicubic" if interpolation == "bilinear" else "bilinear"
    alt = get_dataset("fashion_mnist", "test", image_size=32, interpolation=other)
    assert not torch.equal(alt.image(order["test"][0]), full.image(order["test"][0]))


def test_missing_fashion_mnist_is_one_line_naming_both_remedies(tmp_path, monkeypatch):
    import finetune.data.fashion_mnist as module

    monkeypatch.setattr(module, "DEBIAN_DIR", tmp_path / "debian")
    (tmp_path / "debian").mkdir()
    for split in ("train", "val", "test"):
        with pytest.raises(DatasetMissingError) as error:
            get_dataset("fashion_mnist", split, data_root=tmp_path / "root", image_size=16)
        text = str(error.value)
        assert "\n" not in text
        assert "apt-get install dataset-fashion-mnist" in text and "--download" in text
        assert str(tmp_path / "root" / "FashionMNIST" / "raw") in text
    # Three of the four files are not enough.
    (tmp_path / "root/FashionMNIST/raw").mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        (tmp_path / "root/FashionMNIST/raw" / name).write_bytes(b"")
    with pytest.raises(DatasetMissingError, match="apt-get install"):
        get_dataset("fashion_mnist", "test", data_root=tmp_path / "root", image_size=16)


def test_the_cli_reports_missing_fashion_mnist_in_one_line(tmp_path, monkeypatch, capsys):
    import finetune.data.fashion_mnist as module

    monkeypatch.setattr(module, "DEBIAN_DIR", tmp_path / "debian")
    out = tmp_path / "run"
    code, _, stderr = run_cli(monkeypatch, capsys, "finetune", *CLI_FAST, "--data",
                              "fashion_mnist[0-4]", "--data-root", str(tmp_path / "root"),
                              "--out", str(out))  # fmt: skip
    assert code != 0
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and "apt-get install dataset-fashion-mnist" in lines[0]
    assert "--download" in lines[0]
    assert not out.exists()


def test_a_run_on_a_subset_records_it_and_the_probes_read_it_back(fashion_mnist, tmp_path):
    # A small validation carve: evaluating the 5000 test images is most of the time.
    config = fast_config(data="fashion_mnist[0-4]", epochs=1, train_per_class=4, batch_size=10,
                         eval_batch_size=500, val_fraction=0.01)  # fmt: skip
    result = engine.train(config, tmp_path / "r", command="test")
    assert result.status == "completed", result.reason
    record = json.loads((tmp_path / "r/config.json").read_text())
    assert record["config"]["data"]["spec"] == "fashion_mnist[0-4]"
    assert record["data"]["classes"] == NAMES[:5] and record["data"]["num_classes"] == 5
    assert record["data"]["train_examples"] == 20
    assert record["data"]["test_examples"] == 5000 and record["data"]["eval_examples"] == 300
    run = load_run(tmp_path / "r")
    assert run.model.get_classifier().out_features == 5
    assert run.model(torch.zeros(2, 3, 16, 16)).shape == (2, 5)

    options = ProbeOptions(examples=40, device="cpu")
    data = probe_data(run, options.runtime(), options)
    images, targets = next(data.batches.iterate(data.order, 40))
    _, labels = raw_split(fashion_mnist, "test")
    kept = np.flatnonzero(labels < 5)[data.order.numpy()]
    assert np.array_equal(targets.cpu().numpy(), labels[kept])
    assert set(targets.tolist()) <= set(range(5)) and len(set(targets.tolist())) > 1
    full = get_dataset("fashion_mnist", "test", image_size=16)
    assert torch.equal(images.cpu(), full.images_at(kept))


# --- digits --------------------------------------------------------------------------------


def sklearn_rows(images: np.ndarray, labels: np.ndarray) -> list[bytes]:
    """Each image with its label as one row of bytes, sorted: the split as a multiset."""
    rows = np.concatenate([images.reshape(len(images), -1), labels[:, None]], axis=1)
    return sorted(row.astype(np.uint8).tobytes() for row in rows)


def test_digits_split_is_sklearns_digits_stratified_and_stable(digits):
    from sklearn.datasets import load_digits

    from finetune.data.digits import split_digits

    bunch = load_digits()
    scaled = np.array([[round(v * 255 / 16) for v in row] for row in bunch.data])
    assert scaled.max() == 255
    native = split_digits()
    (train_x, train_y), (test_x, test_y) = native["train"], native["test"]
    assert (len(train_y), len(test_y)) == (1258, 539)
    assert train_x.dtype == np.uint8 and train_x.shape[1:] == (8, 8)
    assert sklearn_rows(np.concatenate([train_x, test_x]), np.concatenate([train_y, test_y])) == (
        sklearn_rows(scaled, bunch.target)
    )
    # Disjoint: no scan (bunch rows are unique up to a few exact duplicates) in both.
    counts = {}
    for row in sklearn_rows(scaled, bunch.target):
        counts[row] = counts.get(row, 0) + 1
    shared = set(sklearn_rows(train_x, train_y)) & set(sklearn_rows(test_x, test_y))
    assert all(counts[row] > 1 for row in shared)
    for label in range(10):
        total = int((bunch.target == label).sum())
        assert int((test_y == label).sum()) == round(0.3 * total)
    # Stable: the same split on every build, and after the cache is dropped.
    split_digits.cache_clear()
    try:
        again = split_digits()
        assert np.array_equal(again["test"][0], test_x) and np.array_equal(again["test"][1], test_y)
    finally:
        split_digits.cache_clear()

    train = get_dataset("digits", "train", image_size=16)
    val = get_dataset("digits", "val", image_size=16)
    test = get_dataset("digits", "test", image_size=16)
    assert len(train) + len(val) == 1258 and len(test) == 539
    assert test.classes == [str(d) for d in range(10)]
    assert np.array_equal(test.targets, test_y)
    images = test.images_at(np.arange(0, 539, 7))
    assert images.shape[1:] == (3, 16, 16) and int(images.max()) == 255
    assert torch.equal(images[:, 0], images[:, 1]) and torch.equal(images[:, 0], images[:, 2])
    native_size = get_dataset("digits", "test", image_size=8).images_at(np.arange(539))
    assert torch.equal(native_size[:, 0], torch.from_numpy(test_x.copy()))


def test_digits_without_sklearn_is_one_line_naming_the_extra(monkeypatch):
    from finetune.data.digits import split_digits

    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    split_digits.cache_clear()
    try:
        with pytest.raises(DatasetMissingError) as error:
            get_dataset("digits", "test", image_size=16)
    finally:
        split_digits.cache_clear()
    text = str(error.value)
    assert "\n" not in text and "landscape[digits]" in text


def test_a_digits_run(digits, tmp_path):
    config = fast_config(data="digits", epochs=1, train_per_class=4, batch_size=10)
    result = engine.train(config, tmp_path / "r", command="test")
    assert result.status == "completed", result.reason
    record = json.loads((tmp_path / "r/config.json").read_text())
    assert record["config"]["data"]["spec"] == "digits"
    assert record["data"]["classes"] == [str(d) for d in range(10)]
    assert record["data"]["train_examples"] == 40 and record["data"]["test_examples"] == 539
    assert np.isfinite(result.summary["test_loss"])
    assert load_run(tmp_path / "r").model.get_classifier().out_features == 10
