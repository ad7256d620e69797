"""--val-fold I of --folds K: the validation split is fold I of K stratified folds of the
training split, the training split the other folds; the folds of one seed are disjoint,
cover the training split and spread every class evenly; every part that builds a run's
splits builds the same ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import fast_config
from test_cli import run_cli
from test_folder import native, write_tree

from finetune import engine, rundir
from finetune.config import build_config
from finetune.data import dataset_options, get_dataset
from finetune.errors import ConfigError

COUNTS = {"a": 7, "b": 10, "c": 5}


@pytest.fixture
def tree(tmp_path: Path) -> str:
    """A folder: spec of 3 unevenly sized classes (22 training images) with a test/ split."""
    root = write_tree(tmp_path / "tree", {"train": COUNTS, "test": {"a": 1, "b": 1, "c": 1}})
    return f"folder:{root}"


def labels_of(spec: str) -> np.ndarray:
    """The labels of the whole native training split of a folder: spec."""
    return native(Path(spec.removeprefix("folder:")), "train").targets


def split(spec: str, name: str, **options) -> np.ndarray:
    """The indices, into the native training split, of one split."""
    dataset = get_dataset(spec, name, image_size=8, **options)
    return np.asarray(dataset.indices) if hasattr(dataset, "indices") else np.arange(len(dataset))


def folds_of(spec: str, folds: int, seed: int) -> list[np.ndarray]:
    return [split(spec, "val", val_fold=i, folds=folds, split_seed=seed) for i in range(folds)]


@pytest.mark.parametrize("folds", [2, 3, 5])
def test_the_folds_of_one_seed_are_disjoint_cover_and_spread_every_class(tree, folds):
    labels = labels_of(tree)
    everything = np.arange(len(labels))
    for seed in (0, 1):
        parts = folds_of(tree, folds, seed)
        joined = np.concatenate(parts)
        assert len(joined) == len(set(joined.tolist())) == len(labels)  # disjoint
        assert np.array_equal(np.sort(joined), everything)  # covering
        sizes = [len(p) for p in parts]
        assert max(sizes) - min(sizes) <= 1
        for label in range(len(COUNTS)):
            counts = [int((labels[p] == label).sum()) for p in parts]
            assert max(counts) - min(counts) <= 1, (seed, label, counts)
        for i, part in enumerate(parts):
            train = split(tree, "train", val_fold=i, folds=folds, split_seed=seed)
            assert np.array_equal(train, np.setdiff1d(everything, part))  # the complement


def test_the_folds_are_a_function_of_the_seed(tree):
    assert all(np.array_equal(a, b) for a, b in zip(folds_of(tree, 3, 4), folds_of(tree, 3, 4)))
    assert not all(
        np.array_equal(a, b) for a, b in zip(folds_of(tree, 3, 0), folds_of(tree, 3, 1))
    )


def test_train_per_class_subsamples_the_other_folds(tree):
    held = split(tree, "val", val_fold=1, folds=3, split_seed=2)
    rest = split(tree, "train", val_fold=1, folds=3, split_seed=2)
    small = split(tree, "train", val_fold=1, folds=3, split_seed=2, train_per_class=3)
    labels = labels_of(tree)
    assert set(small) <= set(rest) and not set(small) & set(held)
    assert np.bincount(labels[small]).tolist() == [3, 3, 3]
    # The test split is untouched.
    assert len(get_dataset(tree, "test", image_size=8, val_fold=1, folds=3)) == 3


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(val_fold=3, folds=3), "--val-fold must lie in 0..2 (--folds 3), got 3"),
        (dict(val_fold=-1), "--val-fold must lie in 0..4 (--folds 5), got -1"),
        (dict(val_fold=0, folds=1), "--folds must be at least 2, got 1"),
        (dict(val_fold=0, folds=6), "--folds 6 but class 'c' of folder:"),
    ],
)
def test_impossible_folds_are_one_line_naming_the_flag(tree, options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        get_dataset(tree, "val", image_size=8, **options)


def test_a_dataset_with_its_own_validation_split_refuses_folds():
    for name in ("train", "val", "test"):
        with pytest.raises(ConfigError, match="--val-fold cross-validates .* of its own"):
            get_dataset("synthetic:near", name, image_size=8, val_fold=0)


def test_the_config_refuses_a_fold_outside_the_folds(monkeypatch, capsys, tmp_path):
    with pytest.raises(ConfigError, match="--val-fold must lie in 0..1"):
        build_config("finetune", {}, {"val_fold": 2, "folds": 2})
    code, stdout, stderr = run_cli(monkeypatch, capsys, "finetune", "--folds", "1",
                                   "--out", str(tmp_path / "run"))  # fmt: skip
    assert code == 1 and stdout == ""
    assert stderr.strip().splitlines() == ["error: --folds must be at least 2, got 1"]


def test_a_fold_changes_the_hash_and_the_default_keeps_it():
    plain = build_config("finetune", {}, {})
    assert build_config("finetune", {}, {"folds": 5}).hash() == plain.hash()
    assert build_config("finetune", {}, {"val_fold": 0}).hash() != plain.hash()


def test_a_run_validates_on_its_fold_and_trains_on_the_others(tree, tmp_path):
    config = fast_config(data=tree, train_per_class=None, val_fold=2, folds=3, epochs=1)
    assert dataset_options(config.data)["val_fold"] == 2
    run = tmp_path / "run"
    engine.train(config, run, command="test")
    data = rundir.read_config(run)["data"]
    held = split(tree, "val", val_fold=2, folds=3)
    assert data["eval_examples"] == len(held)
    assert data["train_examples"] == sum(COUNTS.values()) - len(held)
    # Another dataset measured beside the run is not cut by the run's fold.
    assert dataset_options(config.data, own=False)["val_fold"] is None
