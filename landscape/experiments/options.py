"""How a reproduced claim or a study runs: its pair of source and targets, its size, its
seeds, where its runs go, and how it names and trains them (``ReproOptions``). Apart from
the claims, so that the command line builds the flags of ``landscape repro`` and
``landscape study`` from these fields without importing the engine."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from finetune.config import RunConfig, build_config, check_choices, comma_ints, option
from finetune.errors import ConfigError
from landscape.experiments.recipes import PAIRS, Pair

if TYPE_CHECKING:
    from finetune.engine import Progress


def final_test_accuracy(run: Path) -> float:
    """A completed run's test accuracy."""
    from finetune.runs import run_summary

    return float(run_summary(run)["test_acc"])


@dataclass(frozen=True)
class ReproOptions:
    """Where and how big: ``runs`` holds every run directory (reused when a claim is run
    again); ``source`` is a pre-trained source run (default: the pair's source recipe,
    trained into ``runs/source``); ``model``, ``seeds`` and ``data`` (the target datasets,
    in the order the claim takes them) override the claim's. ``seeds`` and ``data`` may be
    given as comma-separated strings. The flags of ``landscape repro`` and ``landscape
    study`` are generated from these fields (``runs``, ``progress`` and ``log`` are the
    command's own)."""

    runs: Path
    quick: bool = option(False, "the CI-sized version")
    pair: str = option(
        "synthetic",
        "source and targets: "
        + "; ".join(f"{name} ({pair.description})" for name, pair in PAIRS.items()),
        choices=tuple(PAIRS),
    )
    model: str = option("test_resnet", "timm architecture")
    source: Path | None = option(
        None, "pre-trained source run (default: the pair's recipe, trained once)", flag="init"
    )
    seeds: tuple[int, ...] | None = option(None, "comma-separated seeds (default: the claim's)")
    data: tuple[str, ...] | None = option(
        None,
        "comma-separated target dataset specs, in the roles of the claim's own (depth: a near "
        "then a distant target)",
    )
    progress: Progress | None = None
    log: Callable[[str], None] = lambda line: None

    def __post_init__(self) -> None:
        check_choices(self)
        object.__setattr__(self, "runs", Path(self.runs))
        if self.source is not None:
            object.__setattr__(self, "source", Path(self.source))
        if self.seeds is not None:
            object.__setattr__(self, "seeds", comma_ints(self.seeds, "--seeds", minimum=0))
        if isinstance(self.data, str):
            object.__setattr__(self, "data", split_specs(self.data) or None)

    @property
    def pair_recipes(self) -> Pair:
        """The pair the claims run on: its source and targets, and their recipes."""
        return PAIRS[self.pair]

    def target_recipe(self, data: str) -> dict:
        """The demo's target recipe on ``data``, with the pair's settings and the model."""
        return self.pair_recipes.target_recipe(self.model, data)

    def seeds_or(self, quick: tuple[int, ...], full: tuple[int, ...]) -> tuple[int, ...]:
        """The seeds given, else the claim's default for this size."""
        return self.seeds if self.seeds is not None else (quick if self.quick else full)

    def targets(self, default: tuple[str, ...]) -> tuple[str, ...]:
        """The target datasets given with --data, else the claim's ``default``; a claim
        comparing targets needs as many as its default names, in the same roles."""
        if self.data is None:
            return default
        if len(self.data) != len(default):
            roles = ", ".join(default)
            raise ConfigError(
                f"this claim takes {len(default)} target dataset(s) in --data, in the roles "
                f"of {roles}; got {len(self.data)}"
            )
        return self.data

    def near_and_far(self) -> dict[str, str]:
        """The near and the far target by role (--data gives both, in that order)."""
        pair = self.pair_recipes
        return dict(zip(("near", "far"), self.targets((pair.near, pair.far))))

    def source_run(self) -> Path:
        """A pre-trained source run: the given one, or the pair's source recipe trained
        once."""
        if self.source is not None:
            return self.source
        return self.pretrain("source", self.pair_recipes.source_recipe(self.model))

    def pretrain(self, name: str, values: dict) -> Path:
        """A completed pre-training run of ``values`` in ``runs/name`` (reused if there)."""
        config = self.run_config("pretrain", values)
        self.log(f"pre-training on {config.data.spec} -> {self.runs / name}")
        from finetune.runs import ensure_run

        return ensure_run(config, self.runs / name, progress=self.progress)

    def finetune(self, name: str, values: dict, *, logged: bool = True) -> Path:
        """A completed fine-tuning run of ``values`` in ``runs/name`` (reused if there);
        ``logged`` False in a grid, whose progress says it instead."""
        from finetune.runs import ensure_run

        config = self.run_config("finetune", values)
        path = self.run_dir(name, config.data.spec)
        if logged:
            self.log(f"fine-tuning -> {path}")
        return ensure_run(config, path, progress=self.progress)

    def run_dir(self, name: str, data: str) -> Path:
        """Where ``finetune(name, values)`` on the dataset ``data`` puts its run: targets
        given with --data are named in the run's directory."""
        return self.runs / (name if self.data is None else f"{name}-on-{spec_slug(data)}")

    def measure(
        self,
        grid: dict[tuple[int, ...], tuple[str, dict]],
        shape: tuple[int, ...],
        read: Callable[[Path], float] = final_test_accuracy,
    ) -> tuple[np.ndarray, dict[tuple[int, ...], Path]]:
        """The task x setting x seed loop of a claim, as data: ``grid`` maps each index of
        an array of ``shape`` to the fine-tuning there (its run's name and values; indices
        may share a run). Every run is trained once (reused after), and ``progress`` hears
        of each finished one (``GridProgress``); returns the array of ``read(run)`` at each
        index (NaN where the grid has none) and the run of each index."""
        values = np.full(shape, np.nan)
        runs: dict[tuple[int, ...], Path] = {}
        progress = GridProgress(self.progress, len({name for name, _ in grid.values()}))
        seen: set[str] = set()
        for index, (name, run_values) in grid.items():
            first = name not in seen
            seen.add(name)
            reused = first and _completed(self.run_dir(name, str(run_values.get("data", ""))))
            started = time.perf_counter()
            runs[index] = self.finetune(name, run_values, logged=False)
            if first:
                progress.finished(name, reused, time.perf_counter() - started)
            values[index] = read(runs[index])
        return values, runs

    def run_config(self, kind: str, values: dict) -> RunConfig:
        """The run's configuration; a quick run evaluates only after its last epoch, or the
        epochs it keeps (--keep-every), which leaves its training and its test accuracy as
        they are (--eval-every)."""
        config = build_config(kind, {}, {"model": self.model, **values})
        if not self.quick:
            return config
        every = config.train.keep_every or config.train.epochs
        return replace(config, train=replace(config.train, eval_every=every))


class GridProgress:
    """A grid's ``grid`` events for a progress callable: at the start (done 0) and after
    each finished run, how many are done and reused of ``total``, and the time left at the
    mean time of the runs trained so far."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total = progress, total
        self.done, self.reused, self.trained_seconds = 0, 0, 0.0
        self._emit(name="", was_reused=False, seconds=0.0)

    def finished(self, name: str, was_reused: bool, seconds: float) -> None:
        self.done += 1
        self.reused += was_reused
        self.trained_seconds += 0.0 if was_reused else seconds
        self._emit(name=name, was_reused=was_reused, seconds=seconds)

    def _emit(self, **run: object) -> None:
        if self.progress is None:
            return
        trained = self.done - self.reused
        per_run = self.trained_seconds / trained if trained else math.nan
        self.progress({"event": "grid", "done": self.done, "total": self.total,
                       "reused": self.reused, "seconds_left": per_run * (self.total - self.done)
                       if self.done < self.total else 0.0, **run})  # fmt: skip


def _completed(run: Path) -> bool:
    """Whether ``run`` is a completed run directory (a grid reuses it)."""
    from finetune import rundir

    return (run / rundir.STATUS).exists() and rundir.read_status(run)[0] == "completed"


def split_specs(text: str) -> tuple[str, ...]:
    """Comma-separated dataset specs; commas inside a class subset ``[...]`` stay."""
    specs, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            specs.append(current)
            current = ""
        else:
            current += char
    return tuple(spec.strip() for spec in [*specs, current] if spec.strip())


def spec_slug(spec: str) -> str:
    """A dataset spec as a piece of a directory name: ``fashion_mnist[5-9]`` ->
    ``fashion_mnist_5-9``, ``folder:/a/b`` -> ``folder_-a-b``."""
    slug = spec.replace(":", "_").replace("/", "-").replace("[", "_").replace("]", "")
    return slug.replace(",", "+").replace(" ", "")
