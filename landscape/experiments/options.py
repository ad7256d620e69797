"""How a reproduced claim or a study runs: its pair of source and targets, its size, its
seeds, where its runs go, and how it names and trains them (``ReproOptions``). Apart from
the claims, so that the command line builds the flags of ``landscape repro`` and
``landscape study`` from these fields without importing the engine."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from finetune.config import RunConfig, build_config, check_choices, comma_ints, option
from finetune.errors import ConfigError
from landscape.experiments.recipes import PAIRS, Pair
from landscape.experiments.used_runs import Recorded, record

T = TypeVar("T")
R = TypeVar("R")

if TYPE_CHECKING:
    from finetune.engine import Progress
    from finetune.executors import Executor, Finished, PlannedRun


def final_test_accuracy(run: Path) -> float:
    """A completed run's test accuracy."""
    from finetune.runs import run_summary

    return float(run_summary(run)["test_acc"])


def no_log(line: str) -> None:
    """Where the lines of a claim that logs nothing go."""


@dataclass(frozen=True)
class ReproOptions:
    """Where and how big: ``runs`` holds every run directory (reused when a claim is run
    again); ``source`` is a pre-trained source run (default: the pair's source recipe,
    trained into ``runs/source``); ``model``, ``seeds`` and ``data`` (the target datasets,
    in the order the claim takes them) override the claim's. ``seeds`` and ``data`` may be
    given as comma-separated strings. ``workers``, ``ray`` and ``runs_per_gpu`` choose the
    executor that trains the runs (``finetune.executors``); ``plan`` makes a dry run. The
    flags of ``landscape repro`` and ``landscape study`` are generated from these fields
    (``runs``, ``progress``, ``log`` and ``plan`` are the command's own)."""

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
    workers: int = option(
        1,
        "runs trained at once by worker processes of this machine, each with cores / N "
        "threads and, on a GPU machine, a GPU round-robin (several workers may share one)",
    )
    ray: str | None = option(
        None,
        "train the runs as tasks of the Ray cluster at this address (ray start --head "
        "prints it; 'local': a cluster of this machine's cores, started for the command; needs "
        'the extra: pip install -e ".[ray]")',
    )
    runs_per_gpu: int = option(
        4, "with --ray on a cluster with GPUs, runs sharing one GPU (each asks for 1/N)"
    )
    progress: Progress | None = None
    log: Callable[[str], None] = no_log
    plan: Plan | None = None  # a dry run: runs are listed here, not trained

    def __post_init__(self) -> None:
        check_choices(self)
        object.__setattr__(self, "runs", Path(self.runs))
        if self.source is not None:
            object.__setattr__(self, "source", Path(self.source))
        if self.seeds is not None:
            object.__setattr__(self, "seeds", comma_ints(self.seeds, "--seeds", minimum=0))
        if isinstance(self.data, str):
            object.__setattr__(self, "data", split_specs(self.data) or None)
        from finetune.executors import executor_for

        # Made here, so that a bad --workers, --ray or --runs-per-gpu fails at once.
        object.__setattr__(self, "_executor", executor_for(self.workers, self.ray,
                                                           self.runs_per_gpu))  # fmt: skip

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

    @property
    def executor(self) -> Executor:
        """Where the runs train: ``--workers``, ``--ray``, or here one after the other."""
        return self._executor

    def source_run(self, *, read: bool = False) -> Path:
        """A pre-trained source run: the given one, or the pair's source recipe trained
        once (``read``: the caller reads the run itself, not only its path)."""
        if self.source is not None:
            return self.source
        return self.pretrain("source", self.pair_recipes.source_recipe(self.model), read=read)

    def pretrain(self, name: str, values: dict, *, read: bool = False) -> Path:
        """A completed pre-training run of ``values`` in ``runs/name`` (reused if there)."""
        return self.pretrain_all({name: values}, read=read)[name]

    def pretrain_all(self, named: dict[str, dict], *, read: bool = False) -> dict[str, Path]:
        """Completed pre-training runs of each ``values`` in ``runs/name``, trained at once
        by the executor (reused if there). A dry run lists them and goes on, since a grid
        that starts from them needs only their paths, unless the caller ``read``s them."""
        from finetune.executors import PlannedRun

        planned = {name: PlannedRun(self.run_config("pretrain", values), self.runs / name)
                   for name, values in named.items()}  # fmt: skip
        for run in planned.values():
            if not run.completed():
                self.log(f"pre-training on {run.config.data.spec} -> {run.path}")
        self._needs(list(planned.values()), read=read)
        return {name: run.path for name, run in planned.items()}

    def finetune(self, name: str, values: dict) -> Path:
        """A completed fine-tuning run of ``values`` in ``runs/name`` (reused if there)."""
        run = self.planned(name, values)
        if not run.completed():
            self.log(f"fine-tuning -> {run.path}")
        self._needs([run])
        return run.path

    def planned(self, name: str, values: dict) -> PlannedRun:
        """The fine-tuning ``finetune(name, values)`` trains: its configuration and run
        directory."""
        from finetune.executors import PlannedRun

        config = self.run_config("finetune", values)
        return PlannedRun(config, self.run_dir(name, config.data.spec))

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
        may share a run). Every run is trained once by the executor (reused after), and
        ``progress`` hears of each finished one (``GridProgress``); returns the array of
        ``read(run)`` at each index (NaN where the grid has none) and the run of each
        index."""
        planned: dict[str, PlannedRun] = {}
        for name, run_values in grid.values():
            if name not in planned:
                planned[name] = self.planned(name, run_values)
        self.train_grid(list(planned.values()))
        values = np.full(shape, np.nan)
        runs = {index: planned[name].path for index, (name, _) in grid.items()}
        for index, run in runs.items():
            values[index] = read(run)
        return values, runs

    def map(
        self,
        function: Callable[[T], R],
        items: Sequence[T],
        done: Callable[[T, R], None] | None = None,
    ) -> list[R]:
        """``function(item)`` for every item on the executor, each call an independent chain
        of runs trained where it runs (a search, whose trials depend on each other; a pilot,
        then its advice), ``done(item, result)`` as each finishes; the runs each call
        completed are recorded here (``used_runs``). ``function`` takes its options from
        ``worker()``; a dry run calls them here, in order."""
        from finetune.executors import Serial

        executor = Serial() if self.plan is not None else self.executor
        report = None if done is None else (lambda index, ran: done(items[index], ran[0]))
        ran = executor.map(Recorded(function), items, report)
        for _, runs in ran:
            record(runs)
        return [result for result, _ in ran]

    def worker(self) -> ReproOptions:
        """These options as a call of ``map`` takes them: elsewhere than here, its runs
        trained one after the other where it runs and nothing logged (they pickle)."""
        from finetune.executors import Serial

        if self.plan is not None or isinstance(self.executor, Serial):
            return self
        return replace(self, workers=1, ray=None, progress=None, log=no_log)

    def train_grid(self, runs: list[PlannedRun]) -> None:
        """Completed ``runs``, a claim's grid (each directory once): trained by the
        executor with one bar of runs in ``progress``; a dry run lists them and ends."""
        self._needs(runs, GridProgress(self.progress, len(runs)))

    def _needs(
        self, runs: list[PlannedRun], grid: GridProgress | None = None, read: bool = True
    ) -> None:
        """Completed ``runs``: trained by the executor, or in a dry run listed; a dry run
        ends at a grid (a claim's whole training), or at a run not complete whose results
        are ``read`` next (what follows depends on them)."""
        if self.plan is None:
            self._train(runs, grid)
            record(run.path for run in runs)
            return
        self.plan.add(runs)
        if grid is not None or (read and not all(run.completed() for run in runs)):
            raise GridPlanned(self.plan, at_grid=grid is not None)

    def _train(self, runs: list[PlannedRun], grid: GridProgress | None = None) -> None:
        from finetune.executors import train_all

        done = None if grid is None else grid.finished
        train_all(self.executor, runs, done, progress=self.progress)

    def run_config(self, kind: str, values: dict) -> RunConfig:
        """The run's configuration; a quick run evaluates only after its last epoch, or the
        epochs it keeps (--keep-every), which leaves its training and its test accuracy as
        they are (--eval-every)."""
        config = build_config(kind, {}, {"model": self.model, **values})
        if not self.quick:
            return config
        every = config.train.keep_every or config.train.epochs
        return replace(config, train=replace(config.train, eval_every=every))


@dataclass
class Plan:
    """The runs a dry run found, in the order a claim or a study asks for them (each
    directory once)."""

    runs: list[PlannedRun] = field(default_factory=list)

    def add(self, runs: Iterable[PlannedRun]) -> None:
        known = {run.path for run in self.runs}
        self.runs += [run for run in runs if run.path not in known]


class GridPlanned(BaseException):
    """A dry run reached a grid (``at_grid``), or a run whose results are read next and
    that is not complete: what the claim does next depends on them, so the plan ends. A
    ``BaseException``, so that no ``except Exception`` on the way out (Optuna's trial
    runner) takes it for a failed trial."""

    def __init__(self, plan: Plan, at_grid: bool) -> None:
        super().__init__(f"{len(plan.runs)} runs planned")
        self.plan, self.at_grid = plan, at_grid


def dry_run(run: Callable[[ReproOptions], object], options: ReproOptions) -> tuple[Plan, bool]:
    """The runs ``run(options)`` (a claim or a study) would train, in order, found without
    training any, and whether more follow that depend on their results (a search, a pilot):
    those are known only once these are trained."""
    plan = Plan()
    try:
        run(replace(options, plan=plan, progress=None, log=no_log))
    except GridPlanned as stop:
        return plan, not stop.at_grid
    return plan, False


class GridProgress:
    """A grid's ``grid`` events for a progress callable: at the start (done 0) and after
    each finished run, how many are done and reused of ``total``, and the time left at the
    mean time of the runs trained so far."""

    def __init__(self, progress: Progress | None, total: int) -> None:
        self.progress, self.total = progress, total
        self.done, self.reused, self.trained_seconds = 0, 0, 0.0
        self._emit(name="", was_reused=False, seconds=0.0)

    def finished(self, run: PlannedRun, done: Finished) -> None:
        """A run of the grid finished (``train_all`` reports each so)."""
        self.done += 1
        self.reused += done.reused
        self.trained_seconds += 0.0 if done.reused else done.seconds
        self._emit(name=run.name, was_reused=done.reused, seconds=done.seconds)

    def _emit(self, **run: object) -> None:
        if self.progress is None:
            return
        trained = self.done - self.reused
        per_run = self.trained_seconds / trained if trained else math.nan
        self.progress({"event": "grid", "done": self.done, "total": self.total,
                       "reused": self.reused, "seconds_left": per_run * (self.total - self.done)
                       if self.done < self.total else 0.0, **run})  # fmt: skip


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
