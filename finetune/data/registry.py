"""One registry of datasets addressed by a short spec string (``cifar10``,
``synthetic:near``, ``folder:/path``, each optionally restricted to some classes with a
``[CLASSES]`` suffix, see :mod:`finetune.data.class_subset`), and the splitting and
subsampling shared by all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finetune.config import DataConfig, check_val_fold, flag_for
from finetune.data.class_subset import class_subset, split_class_subset
from finetune.data.imageset import ImageSet, SubsetImageSet
from finetune.errors import ConfigError, UnknownDatasetError

SPLITS = ("train", "val", "test")
# The flag a dataset spec is given with, unless the caller names another (--fisher-data).
DATA_FLAG = flag_for(DataConfig, "spec")


@dataclass(frozen=True)
class BuildRequest:
    """What a dataset builder is asked for: one of its native splits at one image size,
    resized from files with ``interpolation`` (a torchvision ``InterpolationMode`` value;
    generated datasets render at the size and ignore it)."""

    argument: str
    split: str
    data_root: Path
    download: bool
    image_size: int
    interpolation: str = "bilinear"


Splits = tuple[str, ...] | Callable[[str], tuple[str, ...]]


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    build: Callable[[BuildRequest], ImageSet]
    splits: Splits
    default_image_size: int
    takes_argument: bool
    description: str


_REGISTRY: dict[str, DatasetEntry] = {}


def register_dataset(
    name: str,
    *,
    splits: Splits = ("train", "test"),
    default_image_size: int = 224,
    takes_argument: bool = False,
    description: str = "",
) -> Callable[[Callable[[BuildRequest], ImageSet]], Callable[[BuildRequest], ImageSet]]:
    """Register ``build(request) -> ImageSet`` under ``name``; ``splits`` are the native
    splits it can build (a missing ``val`` is carved from ``train``), or a function of the
    spec's argument returning them (a folder tree has the splits its sub-folders say)."""

    def decorate(build: Callable[[BuildRequest], ImageSet]) -> Callable[[BuildRequest], ImageSet]:
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is registered twice")
        _REGISTRY[name] = DatasetEntry(
            name, build, splits, default_image_size, takes_argument, description
        )
        return build

    return decorate


def dataset_entries() -> dict[str, DatasetEntry]:
    """Every registered dataset by name."""
    _load_builtin()
    return dict(_REGISTRY)


def resolve_spec(spec: str, *, flag: str = DATA_FLAG) -> tuple[DatasetEntry, str]:
    """The registry entry and argument of a spec such as ``synthetic:near`` (a class suffix
    ``[...]`` is checked for syntax and left aside); errors name ``flag``, the option the
    spec was given with."""
    _load_builtin()
    base, _ = split_class_subset(spec, flag)
    name, _, argument = base.partition(":")
    entry = _REGISTRY.get(name.strip().lower())
    if entry is None:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownDatasetError(f"unknown dataset {spec!r} ({flag}); known: {known}")
    if entry.takes_argument and not argument:
        raise UnknownDatasetError(f"dataset {name!r} needs an argument: {flag} {name}:...")
    if not entry.takes_argument and argument:
        raise UnknownDatasetError(f"dataset {name!r} takes no argument, got {flag} {spec}")
    return entry, argument


def dataset_options(data: DataConfig, *, own: bool = True) -> dict[str, Any]:
    """``get_dataset``'s keyword arguments that say where ``data``'s dataset is and which of
    its images a run's splits hold, so that every caller building a run's splits builds
    the same ones. ``own=False`` is for another dataset measured beside the run: the
    per-class subsample and the validation fold, which number the run's own images, are
    left out."""
    return dict(
        data_root=data.data_root,
        download=data.download,
        train_per_class=data.train_per_class if own else None,
        val_fraction=data.val_fraction,
        split_seed=data.split_seed,
        val_fold=data.val_fold if own else None,
        folds=data.folds,
    )


def native_splits(spec: str, *, flag: str = DATA_FLAG) -> tuple[str, ...]:
    """The splits the dataset of ``spec`` has of its own (a missing ``val`` is carved from
    ``train``)."""
    entry, argument = resolve_spec(spec, flag=flag)
    return entry.splits(argument) if callable(entry.splits) else entry.splits


def get_dataset(
    spec: str,
    split: str = "train",
    *,
    data_root: str | Path = "data",
    download: bool = False,
    image_size: int | None = None,
    train_per_class: int | None = None,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    val_fold: int | None = None,
    folds: int = 5,
    interpolation: str = "bilinear",
    flag: str = DATA_FLAG,
) -> ImageSet:
    """The ``split`` ('train', 'val' or 'test') of the dataset named by ``spec``.

    Datasets without a native validation split have one carved from their training split:
    ``val_fraction`` of each class, chosen with ``split_seed``; or, with ``val_fold`` I,
    fold I of ``folds`` stratified folds of the training split (``_fold_of``), so that the
    runs of folds 0..K-1 cross-validate on every training image once. ``train_per_class``
    then keeps the first N of a seeded per-class permutation of what is left, so that
    smaller subsets are nested in larger ones. A dataset without a native test split
    evaluates on its validation split. Images decoded from files are resized with
    ``interpolation``. A ``[CLASSES]`` suffix keeps those classes, relabelled, before any
    carving, so the validation and per-class choices are made among them. Errors name
    ``flag``.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if not 0.0 < val_fraction < 1.0:
        fraction_flag = flag_for(DataConfig, "val_fraction")
        raise ConfigError(f"{fraction_flag} must lie in (0, 1), got {val_fraction}")
    if train_per_class is not None and train_per_class < 1:
        per_class_flag = flag_for(DataConfig, "train_per_class")
        raise ConfigError(f"{per_class_flag} must be at least 1, got {train_per_class}")
    check_val_fold(val_fold, folds)
    entry, argument = resolve_spec(spec, flag=flag)
    _, selection = split_class_subset(spec, flag)
    size = int(image_size or entry.default_image_size)
    if size < 8:
        raise ConfigError(f"{flag_for(DataConfig, 'image_size')} must be at least 8, got {size}")

    def native(name: str) -> ImageSet:
        request = BuildRequest(argument, name, Path(data_root), download, size, interpolation)
        dataset = entry.build(request)
        return dataset if selection is None else class_subset(dataset, selection, spec, flag)

    splits = native_splits(spec, flag=flag)
    if val_fold is not None and "val" in splits:
        raise ConfigError(
            f"{flag_for(DataConfig, 'val_fold')} cross-validates on the training split, but "
            f"{spec} has a validation split of its own"
        )
    if split == "test":
        return native("test" if "test" in splits else "val")
    if split == "val" and "val" in splits:
        return native("val")

    full_train = native("train")
    if "val" in splits:
        train_idx = np.arange(len(full_train))
    else:
        if val_fold is None:
            val_idx, train_idx = _carve(full_train.targets, val_fraction, split_seed)
        else:
            fold = _fold_of(full_train, folds, split_seed, spec)
            val_idx, train_idx = np.flatnonzero(fold == val_fold), np.flatnonzero(fold != val_fold)
        if split == "val":
            return SubsetImageSet(full_train, val_idx)
    if train_per_class is not None:
        train_idx = _per_class(full_train, train_idx, train_per_class, split_seed, spec)
    if len(train_idx) == len(full_train):
        return full_train
    return SubsetImageSet(full_train, train_idx)


def _carve(targets: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of indices into (val, rest): ``fraction`` of each class, >= 1."""
    rng = np.random.default_rng([seed, 0x7A1])
    val, rest = [], []
    for label in np.unique(targets):
        members = rng.permutation(np.flatnonzero(targets == label))
        n_val = max(1, round(fraction * len(members))) if len(members) > 1 else 0
        val.append(members[:n_val])
        rest.append(members[n_val:])
    return np.sort(np.concatenate(val)), np.sort(np.concatenate(rest))


def _fold_of(dataset: ImageSet, folds: int, seed: int, spec: str) -> np.ndarray:
    """The fold (0..folds-1) of every image of ``dataset``: each class in a permutation
    seeded by ``seed``, dealt round the folds, each class starting where the last one
    stopped, so that a class's count in any two folds differs by at most one and so do
    the folds' sizes."""
    rng = np.random.default_rng([seed, 0xF01D])
    fold = np.empty(len(dataset), dtype=np.int64)
    dealt = 0
    for label in range(dataset.num_classes):
        members = rng.permutation(np.flatnonzero(dataset.targets == label))
        if len(members) < folds:
            raise ConfigError(
                f"{flag_for(DataConfig, 'folds')} {folds} but class "
                f"{dataset.classes[label]!r} of {spec} has only {len(members)} training images"
            )
        fold[members] = (dealt + np.arange(len(members))) % folds
        dealt += len(members)
    return fold


def _per_class(
    dataset: ImageSet, indices: np.ndarray, per_class: int, seed: int, spec: str
) -> np.ndarray:
    rng = np.random.default_rng([seed, 0x5B5])
    labels = dataset.targets[indices]
    kept = []
    for label in range(dataset.num_classes):
        members = indices[labels == label]
        if len(members) < per_class:
            raise ConfigError(
                f"{flag_for(DataConfig, 'train_per_class')} {per_class} but class "
                f"{dataset.classes[label]!r} of {spec} has only {len(members)} training images"
            )
        kept.append(rng.permutation(members)[:per_class])
    return np.sort(np.concatenate(kept))


def _load_builtin() -> None:
    """Import the modules whose decorators fill the registry."""
    from finetune.data import (  # noqa: F401
        digits,
        fashion_mnist,
        folder,
        negative,
        synthetic,
        torchvision_sets,
    )
