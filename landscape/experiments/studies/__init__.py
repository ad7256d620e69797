"""Studies: the project's own experiments behind its measured tables (the advisor and the
automatic methods out of sample, explain against the depth claim, ...), one registered
function each. A study runs on a pair of source and targets like a reproduced claim
(``landscape.experiments.repro.ReproOptions``, sharing the claims' run directories, so a
study reuses the runs a claim trained) and writes its results as documented result files
into one folder; ``run_study`` returns their paths."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from finetune.errors import ConfigError
from landscape.experiments.options import ReproOptions

StudyFunction = Callable[[ReproOptions, Path], list[Path]]


@dataclass(frozen=True)
class Study:
    """A registered study; ``run_dirs`` False for one that trains in its own process with
    no run directory (no grid for an executor or a dry run to see)."""

    name: str
    title: str
    run: StudyFunction
    run_dirs: bool = True


STUDIES: dict[str, Study] = {}


def register_study(
    name: str, title: str, run_dirs: bool = True
) -> Callable[[StudyFunction], StudyFunction]:
    """Register the study ``name``: a function of (options, output folder) that writes its
    result files there and returns their paths (``run_dirs``: see ``Study``)."""

    def register(function: StudyFunction) -> StudyFunction:
        STUDIES[name] = Study(name, title, function, run_dirs)
        return function

    return register


def studies() -> dict[str, Study]:
    """Every study, by name: each module of this package registers its own."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return dict(sorted(STUDIES.items()))


def run_study(name: str, options: ReproOptions, out: str | Path) -> list[Path]:
    """Run study ``name`` into the folder ``out``; the files it wrote."""
    study = find_study(name)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return study.run(options, out)


def find_study(name: str) -> Study:
    """The study ``name``, or an error listing the known ones."""
    known = studies()
    if name not in known:
        raise ConfigError(f"unknown study {name!r}; known: {', '.join(known)}")
    return known[name]
