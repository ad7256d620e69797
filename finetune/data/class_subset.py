"""Class subsets of any dataset, written as a suffix of its spec: ``SPEC[CLASSES]``.

CLASSES is a comma-separated list of class indices, inclusive index ranges ``a-b`` and
class names as ``landscape datasets`` and the dataset call them (case-insensitive):
``fashion_mnist[0-4]``, ``fashion_mnist[5-9]``, ``synthetic:source[0,2,4-7]``,
``fashion_mnist[Sandal,Sneaker,Ankle boot]``. The kept classes are renumbered 0..k-1 in
their original order and keep their names. The suffix is part of the spec, so a run's
config records it and every command that reads a run's data sees the same classes; the
validation carve and ``--train-per-class`` then act on the kept classes only. Two halves of
one dataset, such as ``[0-4]`` and ``[5-9]``, make a source and a target with no class in
common (Yosinski et al. 2014's A/B split).
"""

from __future__ import annotations

import re

import numpy as np

from finetune.data.imageset import ImageSet, SubsetImageSet
from finetune.errors import ConfigError

SUFFIX = re.compile(r"^(?P<base>.*?)\[(?P<classes>[^\[\]]*)\]$")
RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def split_class_subset(spec: str, flag: str) -> tuple[str, str | None]:
    """(the spec without its class suffix, the CLASSES text or None)."""
    match = SUFFIX.match(spec.strip())
    if match is None:
        if "[" in spec or "]" in spec:
            raise ConfigError(f"{flag} {spec}: a class subset is written SPEC[CLASSES] at the end")
        return spec, None
    if not match["classes"].strip():
        raise ConfigError(f"{flag} {spec}: empty class list in [...]")
    return match["base"], match["classes"]


def kept_classes(selection: str, classes: list[str], spec: str, flag: str) -> list[int]:
    """The original labels CLASSES names, ascending; each must exist and appear once."""
    by_name = {name.lower(): index for index, name in enumerate(classes)}
    chosen: list[int] = []
    for item in (part.strip() for part in selection.split(",")):
        span = RANGE.match(item)
        if span:
            first, last = int(span[1]), int(span[2])
            if first > last:
                raise ConfigError(f"{flag} {spec}: range {item} runs backwards")
            chosen.extend(range(first, last + 1))
        elif item.isascii() and item.isdigit():
            chosen.append(int(item))
        elif item.lower() in by_name:
            chosen.append(by_name[item.lower()])
        else:
            raise ConfigError(
                f"{flag} {spec}: no class {item!r}; classes are 0-{len(classes) - 1} or "
                f"names such as {', '.join(classes[:3])}"
            )
    outside = [c for c in chosen if c >= len(classes)]
    if outside:
        raise ConfigError(
            f"{flag} {spec}: class {outside[0]} out of range (the dataset has "
            f"{len(classes)} classes, 0-{len(classes) - 1})"
        )
    repeated = sorted({c for c in chosen if chosen.count(c) > 1})
    if repeated:
        raise ConfigError(f"{flag} {spec}: class {classes[repeated[0]]!r} is listed twice")
    return sorted(chosen)


def class_subset(dataset: ImageSet, selection: str, spec: str, flag: str) -> ImageSet:
    """The images of ``dataset`` whose classes ``selection`` keeps, relabelled 0..k-1."""
    kept = kept_classes(selection, dataset.classes, spec, flag)
    indices = np.flatnonzero(np.isin(dataset.targets, kept))
    return SubsetImageSet(dataset, indices, kept_classes=kept)
