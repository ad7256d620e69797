"""A hyperparameter sweep over a search space (``landscape.tune.space``) with Optuna: TPE proposes
each trial's options, the trial is one ordinary fine-tuning run directory per split seed (or
per cross-validated fold of the training split), and its objective is the validation
accuracy of their final weights, averaged over the runs (never the test split). Before any
trial runs, ``choose_objective`` compares the objective's standard error with the smallest
difference the search must rank, and cross-validates when one validation split is too small
to rank the trials. The study lives in a database (SQLite in the output folder by default,
or any URL Optuna accepts), so that many worker processes on one or many machines share it
and a killed sweep resumes where it stopped. The result is a table of trials and one HDF5
file of kind ``sweep``. The best trial is chosen among the trials its validation data
cannot tell apart (within one standard error) by the lower validation loss, since with a
few validation images many trials reach the same accuracy."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import multiprocessing
import os
import socket
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
import optuna
import sqlalchemy.exc
from optuna.trial import FixedTrial, FrozenTrial, TrialState

from finetune import engine, rundir
from finetune.config import DataConfig, RunConfig, build_config
from finetune.data import ImageSet, dataset_options, get_dataset, native_splits
from finetune.errors import ConfigError, LandscapeError
from finetune.result_files import write_result
from finetune.runs import ensure_run, run_summary
from landscape.tune.space import SearchSpace, load_space
from landscape.tune.sweep_options import DEFAULT_OUT, OBJECTIVES, SweepOptions

OBJECTIVE = "final_eval_acc"
RESULT = "sweep.h5"
RUNS = "runs"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# A trial's slot is held while it runs; a waiting trial holds none.
_HOLDING = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
DEFAULT_RESOLUTION = 0.02
DEFAULT_FOLDS = next(f.default for f in fields(DataConfig) if f.name == "folds")
# The accuracy at which the objective's standard error is anticipated: a good trial's.
ANTICIPATED_ACCURACY = 0.9
TIES = "expect ties; the tie rule picks among them by validation loss"
POSTGRES = "postgresql+psycopg://"  # the SQLAlchemy URL prefix of the `postgres` extra's driver


@dataclass(frozen=True)
class Objective:
    """How a sweep scores a trial: the mean final validation accuracy of
    ``runs_per_trial`` runs of its options, with split seeds S..S+K-1 (``kind`` split) or
    on the folds 0..K-1 of split seed S (``kind`` folds, ``--val-fold``). ``examples``: the
    validation images of all of a trial's runs together; ``se``: the objective's standard
    error on them at an accuracy of 0.9 (``value_se``); ``resolution``: the smallest
    difference of validation accuracy the search must rank; ``message``: what the sweep
    does when the objective cannot rank that finely ("" when it can)."""

    kind: str = "split"
    runs_per_trial: int = 1
    examples: int = 0
    se: float = math.nan
    resolution: float = DEFAULT_RESOLUTION
    message: str = ""

    @property
    def splits(self) -> int:
        """Split seeds per trial (1 under folds)."""
        return self.runs_per_trial if self.kind == "split" else 1

    @property
    def folds(self) -> int:
        """Cross-validated folds per trial (0 under split seeds)."""
        return self.runs_per_trial if self.kind == "folds" else 0

    def describe(self) -> str:
        """What a trial's value is measured on, as the report's header says it."""
        if self.kind == "folds":
            return f"validation, mean of {self.runs_per_trial} cross-validated folds"
        if self.runs_per_trial > 1:
            return f"validation, mean of {self.runs_per_trial} split seeds"
        return "validation"


@dataclass(frozen=True)
class SweepTrial:
    """One trial as the report shows it. ``value`` is the objective of a complete trial."""

    number: int
    state: str
    value: float | None
    test_acc: float | None
    seconds: float | None
    params: dict[str, Any]
    eval_acc: list[float]
    run: str
    config: dict[str, Any] | None
    values: dict[str, Any] | None
    # One entry per run, by split seed or fold (the first is ``run``); empty until the
    # trial completes.
    split_values: list[float] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    value_se: float | None = None  # see value_se(); None when the run records no image count
    eval_loss: float | None = None  # final validation loss, the mean over the runs
    eval_examples: int | None = None  # validation images of the first run (split or fold)

    def effective(self, column: str) -> Any:
        """The searched value of ``column``: 0 where its ``:off`` switch is on, None when
        the trial never drew it."""
        if self.params.get(f"{column}:off"):
            return 0
        return self.params.get(column)


@dataclass(frozen=True)
class SweepReport:
    """Every trial of a study, by trial number, and where the result file went."""

    path: Path
    study: str
    storage: str
    columns: list[str]
    trials: list[SweepTrial]
    objective: Objective = Objective()

    @property
    def tied(self) -> list[SweepTrial]:
        """The complete trials the validation data cannot tell from the one of highest
        objective: within one standard error (its ``value_se``) of it, highest first."""
        return tied_trials(self.trials)

    @property
    def best(self) -> SweepTrial | None:
        """Among the tied trials, the one of lowest mean final validation loss, then of
        lowest number (``best_config`` picks the same)."""
        return pick_trial(self.tied)

    @property
    def counts(self) -> dict[str, int]:
        """Number of trials in each Optuna state."""
        return {s.name: sum(t.state == s.name for t in self.trials) for s in TrialState}

    def table(self) -> str:
        """One row per trial, the best first, then by objective (incomplete ones last, by
        number), then a summary, the objective's note when it cannot rank finely enough,
        and a warning when the best was picked from a tie."""
        best, tied = self.best, self.tied
        order = sorted(
            self.trials, key=lambda t: (t is not best, t.value is None, -(t.value or 0), t.number)
        )
        header = ["trial", "state", "value", "test acc", "seconds", *self.columns]
        rows = [
            [str(t.number), t.state, _value_cell(t), _cell(t.test_acc), _cell(t.seconds)]
            + [_cell(t.effective(c)) for c in self.columns]
            for t in order
        ]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in [header, *rows]]
        counts = ", ".join(f"{n} {s.lower()}" for s, n in self.counts.items() if n)
        lines.append(
            f"study {self.study}: {counts or 'no trials'}; "
            f"value = {OBJECTIVE} ({self.objective.describe()}) ± standard error"
        )
        if self.objective.message:
            lines.append(f"note: {self.objective.message}")
        if best is not None:
            lines.append(f"best: trial {best.number}, {best.value:.4f} -> {best.run}")
        if len(tied) > 1:
            lines.append(self._tie_warning(tied))
        return "\n".join(lines)

    def _tie_warning(self, tied: list[SweepTrial]) -> str:
        """The line saying how many trials tie with the top one and how the tie was broken;
        under split seeds it suggests more of them (folds already validate on every
        training image)."""
        top, folds = tied[0], self.objective.kind == "folds"
        advice = "" if folds else "; give --splits K (more split seeds per trial) to separate them"
        return (
            f"warning: {len(tied) - 1} other trial(s) lie within one standard error of "
            f"the top value {top.value:.4f} (± {top.value_se or 0:.4f}, "
            f"{top.eval_examples or '?'} validation images per {'fold' if folds else 'split'}): "
            f"the validation accuracy cannot separate them; the tie was broken by the lower "
            f"validation loss{advice}"
        )


def default_storage(out: str | Path) -> str:
    """The SQLite database of a sweep in ``out``."""
    return f"sqlite:///{(Path(out) / 'study.db').resolve()}"


def study_name(space_path: str | Path) -> str:
    """The default study name: the space file's name without its suffix."""
    return Path(space_path).stem


def run_sweep(
    space_path: str | Path,
    options: SweepOptions,
    *,
    out: str | Path = DEFAULT_OUT,
    progress: engine.Progress | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> SweepReport:
    """Bring the study to ``options.trials`` finished (complete or pruned) trials, running
    what is missing with ``options.workers`` processes here, each trial a few run
    directories in ``out/runs`` (see ``run_trial``); then write ``out/sweep.h5`` and return
    the report.

    A new study takes its objective from ``choose_objective`` (the options' ``objective``,
    ``splits`` split seeds, ``folds``, ``resolution``) before any trial runs, logs its
    message when it cannot rank differences of ``resolution``, and records it; a resumed
    study keeps the objective it was made with, and refuses another one given explicitly.
    Run again after a crash, the same call runs only what is missing: a trial whose worker
    died is failed once its heartbeat (every ``options.heartbeat`` seconds) is twice as old
    and retried with the same options, which resumes its run directory."""
    if options.trials is None:
        raise ConfigError("give --trials N (or --report)")
    objective, splits, folds = options.objective, options.splits, options.folds
    resolution, heartbeat = options.resolution, options.heartbeat
    _check_request(objective, splits, folds, resolution)
    space = load_space(space_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    url = options.storage or default_storage(out)
    name = options.study or study_name(space_path)
    opened = open_storage(url, heartbeat)
    found = optuna.create_study(
        study_name=name, storage=opened, direction="maximize", load_if_exists=True
    )
    base = build_config("finetune", space.sample(FixedTrial(space.low_corner())))
    resumed = _check_space(found, space)
    chosen = _study_objective(found, resumed, base, objective, splits, folds, resolution)
    _record(found, space, chosen)
    if chosen.message:
        log(chosen.message)
    # Pruning starts after a quarter of the epochs (the first ones say little).
    warmup = max(1, base.train.epochs // 4) if options.prune else None
    job = _Job(space, out, url, name, options.trials, options.seed, chosen, warmup, heartbeat)
    if options.workers == 1:
        _work(job, 0, progress, log)
    else:
        threads = max(1, _cores() // options.workers)
        _pool(replace(job, threads=threads), options.workers, found, log)
    return sweep_report(out=out, storage=url, study=name)


def sweep_report(
    *, out: str | Path = DEFAULT_OUT, storage: str | None = None, study: str
) -> SweepReport:
    """The trials of a study; writes ``out/sweep.h5`` (kind ``sweep``)."""
    found = load_study(out, storage, study)
    attrs = found.user_attrs
    frozen = found.get_trials(deepcopy=False)
    columns = attrs.get("columns") or sorted(
        {p.removesuffix(":off") for t in frozen for p in t.params}
    )
    report = SweepReport(
        Path(out) / RESULT, study, _masked(storage or default_storage(out)), list(columns),
        [_row(t) for t in frozen], _reported_objective(attrs),
    )  # fmt: skip
    _write(report, attrs)
    return report


def best_config(
    *, out: str | Path = DEFAULT_OUT, storage: str | None = None, study: str
) -> dict[str, Any]:
    """The flat flag values (the space's base and the searched options) of the study's
    best complete trial (``SweepReport.best``), ready for ``build_config("finetune",
    values)``: the point itself, without a trial's split seeds or folds."""
    found = load_study(out, storage, study)
    best = pick_trial(tied_trials([_row(t) for t in found.get_trials(deepcopy=False)]))
    if best is None:
        raise ConfigError(f"study {study} has no complete trial yet")
    return dict(best.values)


def run_trial(
    trial: optuna.trial.BaseTrial,
    space: SearchSpace,
    runs: str | Path,
    progress: engine.Progress | None = None,
    objective: Objective = Objective(),
) -> float:
    """Fine-tune the options ``trial`` draws from ``space`` once per run of ``objective``
    (``trial_configs``: split seeds, or cross-validated folds), each into
    ``runs/finetune-HASH`` (reused when complete, resumed when interrupted), and return
    the mean final validation accuracy. The first run's validation accuracy after each
    epoch is reported to the pruner (every trial's first run has the same split seed and
    fold, so the pruner compares like with like); a pruned trial (and a run that diverged)
    raises ``optuna.TrialPruned``, leaving its run directory incomplete."""
    values = space.sample(trial)
    configs = trial_configs(values, objective)
    paths = [Path(runs) / f"finetune-{config.hash()[:12]}" for config in configs]
    trial.set_user_attr("values", values)
    trial.set_user_attr("config", configs[0].to_dict())
    trial.set_user_attr("run", str(paths[0]))
    trial.set_user_attr("runs", [str(run) for run in paths])
    for i, (config, run) in enumerate(zip(configs, paths)):
        with _exclusive(run):
            ensure_run(config, run, progress=_reporting(trial, progress) if i == 0 else progress)
        state, reason = rundir.read_status(run)
        if state == "failed":
            trial.set_user_attr("failed", reason)
            raise optuna.TrialPruned(f"the run failed: {reason}")
    measured = _measure(paths)
    for key, value in measured.items():
        trial.set_user_attr(key, value)
    return statistics.fmean(measured["split_values"])


def trial_overrides(values: dict[str, Any], objective: Objective) -> list[dict[str, Any]]:
    """The options each run of one trial at the point ``values`` (flat flag values) adds
    to it: under split seeds, one per seed S..S+K-1 (S: the point's ``split_seed``; each
    seed carves another validation split and training subsample); under folds, one per
    ``--val-fold`` 0..K-1 of ``--folds`` K, all of seed S."""
    k = objective.runs_per_trial
    if objective.kind == "folds":
        return [{"val_fold": i, "folds": k} for i in range(k)]
    seed = build_config("finetune", values).data.split_seed
    return [{"split_seed": seed + i} for i in range(k)]


def trial_configs(values: dict[str, Any], objective: Objective) -> list[RunConfig]:
    """The run configurations of one trial at the point ``values`` (``trial_overrides``)."""
    return [build_config("finetune", values, extra) for extra in trial_overrides(values, objective)]


def choose_objective(
    base: RunConfig,
    resolution: float = DEFAULT_RESOLUTION,
    folds: int = DEFAULT_FOLDS,
    splits: int = 1,
    requested: str = "auto",
) -> Objective:
    """The objective of a sweep whose trials are ``base`` with other searched options.
    ``requested`` split: ``splits`` split seeds per trial; folds: cross-validation over
    ``folds`` folds of the training split; auto: split seeds when their standard error at
    90% accuracy is at most ``resolution`` (the smallest difference of validation accuracy
    the search must rank), else folds when the dataset carves its validation split from
    the training split (and the folds can be made), else split seeds. The message says
    when the objective cannot rank differences of ``resolution``, and what was done about
    it. A ConfigError names the flag of a request that cannot be met."""
    _check_request(requested, splits, folds, resolution)
    split = _split_objective(base, splits, resolution)
    coarse = split.se > resolution
    if requested == "split" or (requested == "auto" and not coarse):
        return replace(split, message=f"{_cannot_rank(split)}: {TIES}" if coarse else "")
    if requested == "folds":
        folded = _folds_objective(base, folds, resolution)
        coarse = folded.se > resolution
        return replace(folded, message=f"{_cannot_rank(folded)}: {TIES}" if coarse else "")
    if not _carves(base.data):
        return replace(
            split,
            message=f"{_cannot_rank(split)}; {base.data.spec} has a validation split of its "
            f"own, so the sweep keeps it (--objective split): {TIES}",
        )
    try:
        folded = _folds_objective(base, folds, resolution)
    except ConfigError as err:
        return replace(
            split,
            message=f"{_cannot_rank(split)}; cross-validation is not possible ({err}), so "
            f"the sweep keeps split seeds: {TIES}",
        )
    instead = f" in place of {splits} split seeds" if splits > 1 else ""
    still = f"; still coarser than --resolution: {TIES}" if folded.se > resolution else ""
    return replace(
        folded,
        message=f"{_cannot_rank(split)}; using {folds}-fold cross-validation over the "
        f"{folded.examples} training images{instead} (standard error {folded.se:.2g}){still}",
    )


def value_se(values: list[float], examples: float) -> float:
    """The standard error of the mean of ``values``, validation accuracies of K runs of
    ``examples`` images each (their mean when the runs' counts differ, as folds' do): the
    binomial one over the K*n images, sqrt(p'(1-p')/(K*n)), at the accuracy moved half an
    image towards 1/2, p' = (K*n*p + 1/2) / (K*n + 1), so that an accuracy of 0 or 1 keeps
    an error (1.0 on 5 images: p' = 5.5/6, SE 0.12); with K > 1, at least the spread of
    the runs' values, their sd / sqrt(K)."""
    n = len(values) * examples
    p = (n * statistics.fmean(values) + 0.5) / (n + 1)
    binomial = math.sqrt(p * (1 - p) / n)
    if len(values) == 1:
        return binomial
    return max(binomial, statistics.stdev(values) / math.sqrt(len(values)))


@dataclass(frozen=True)
class _Job:
    """What every worker process needs (picklable)."""

    space: SearchSpace
    out: Path
    storage: str
    study: str
    trials: int
    seed: int
    objective: Objective
    warmup: int | None  # epochs before the median pruner acts; None: no pruning
    heartbeat: int
    threads: int | None = None


def _work(
    job: _Job,
    index: int,
    progress: engine.Progress | None = None,
    log: Callable[[str], None] = lambda line: None,
) -> None:
    """One worker: claim a trial slot and run it until the study holds ``job.trials``
    finished trials. Slots are counted in trial-number order, so two workers asking at
    the same moment never both take the last one; the later one hands its trial back
    (waiting, without options) and waits for the others."""
    if job.threads is not None:
        import torch

        torch.set_num_threads(job.threads)
    storage = open_storage(job.storage, job.heartbeat)
    study = optuna.load_study(
        study_name=job.study,
        storage=storage,
        pruner=(
            optuna.pruners.NopPruner()
            if job.warmup is None
            else optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=job.warmup)
        ),
    )
    study_id = storage.get_study_id_from_name(job.study)
    while True:
        with _quiet():
            optuna.storages.fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        finished = sum(t.state in FINISHED for t in trials)
        if finished >= job.trials:
            return
        if sum(t.state in _HOLDING for t in trials) >= job.trials:
            # The other slots are held by running trials: wait for them to finish, or to
            # go stale and come back as retries.
            time.sleep(job.heartbeat)
            continue
        # Seeded by the history's length too, so that a resumed sweep does not draw the
        # points of its first trials again.
        draw = np.random.SeedSequence([job.seed, index, len(trials)]).generate_state(1)[0]
        study.sampler = optuna.samplers.TPESampler(seed=int(draw), constant_liar=True)
        with _quiet():
            trial = study.ask()
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        # At once, so that a worker killed from here on leaves a trial that goes stale.
        storage.record_heartbeat(trial_id)
        ahead = study.get_trials(deepcopy=False, states=_HOLDING)
        if sum(t.number < trial.number for t in ahead) >= job.trials:
            storage.set_trial_state_values(trial_id, TrialState.WAITING)
            continue
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        with _heartbeat(storage, trial_id, job.heartbeat):
            try:
                value = run_trial(trial, job.space, job.out / RUNS, progress, job.objective)
                state = TrialState.COMPLETE
            except optuna.TrialPruned:
                value, state = None, TrialState.PRUNED
            except Exception:
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
                raise
        # A trial another worker failed as stale meanwhile stays failed; its retry
        # reuses the finished run.
        study.tell(trial, value, state=state, skip_if_finished=True)
        log(_line(_row(storage.get_trial(trial_id))))


def _worker(job: _Job, index: int, errors: Any) -> None:
    """The body of a worker process: errors a user caused go back to the parent."""
    try:
        _work(job, index)
    except LandscapeError as err:
        errors.put(err)


def _pool(job: _Job, workers: int, study: optuna.Study, log: Callable[[str], None]) -> None:
    """Run ``workers`` worker processes and log each trial as it finishes; a worker that
    died is an error only when the study did not reach its trials without it."""
    context = multiprocessing.get_context("spawn")
    errors = context.SimpleQueue()
    processes = [context.Process(target=_worker, args=(job, i, errors)) for i in range(workers)]
    for process in processes:
        process.start()
    seen = {t.number for t in study.get_trials(deepcopy=False, states=FINISHED)}
    try:
        while any(p.is_alive() for p in processes):
            time.sleep(1.0)
            _log_finished(study, seen, log)
    finally:
        for process in processes:
            process.join()
    _log_finished(study, seen, log)
    if not errors.empty():
        raise errors.get()
    codes = [p.exitcode for p in processes if p.exitcode]
    if not codes:
        return
    if len(study.get_trials(deepcopy=False, states=FINISHED)) >= job.trials:
        # The others failed its trial by heartbeat and retried it: the study is whole.
        log(f"a sweep worker exited with code {codes[0]}; the others finished its trials")
        return
    raise RuntimeError(f"a sweep worker exited with code {codes[0]}; see its output above")


def _log_finished(study: optuna.Study, seen: set[int], log: Callable[[str], None]) -> None:
    """Log the finished trials not in ``seen``, and add them to it."""
    for trial in study.get_trials(deepcopy=False, states=FINISHED):
        if trial.number not in seen:
            seen.add(trial.number)
            log(_line(_row(trial)))


def _line(trial: SweepTrial) -> str:
    value = f"value {_value_cell(trial)}" if trial.value is not None else trial.state.lower()
    return f"trial {trial.number}: {value}  {trial.run}"


def _reporting(trial: optuna.trial.BaseTrial, progress: engine.Progress | None) -> engine.Progress:
    """The engine's progress callback: passes events on, reports every epoch's validation
    accuracy to the pruner and stops the run when the pruner says so."""

    def handle(event: dict[str, Any]) -> None:
        if progress is not None:
            progress(event)
        if event["event"] == "epoch":
            trial.report(event["eval_acc"], event["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"pruned after epoch {event['epoch']} (eval acc {event['eval_acc']:.4f})"
                )

    return handle


@contextlib.contextmanager
def _exclusive(run: Path) -> Iterator[None]:
    """Hold a lock on ``run`` (a file in ``.locks`` beside it), so that two workers drawing the same
    options train it once: the second waits, then reuses the completed run."""
    locks = run.parent / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / run.name, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def _heartbeat(storage: optuna.storages.RDBStorage, trial_id: int, seconds: int) -> Iterator[None]:
    """Record the trial's heartbeat every ``seconds`` while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while True:
            storage.record_heartbeat(trial_id)
            if stop.wait(seconds):
                return

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's heartbeat API is marked experimental; its warning is noise here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used")
        yield


def open_storage(url: str, heartbeat: int | None = None) -> optuna.storages.RDBStorage:
    """The study database at ``url``, the one way every part of the sweep opens it. SQLite
    waits up to a minute for a lock instead of failing; with ``heartbeat`` seconds, a
    trial whose heartbeat stopped is failed and retried with the same options. A
    ``postgresql://`` URL opens with psycopg, the ``postgres`` extra's driver."""
    opened = _with_driver(url)
    kwargs = {"connect_args": _connect_args(opened)}
    beat = {}
    if heartbeat is not None:
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback
        with _quiet():
            beat = dict(
                heartbeat_interval=heartbeat,
                grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=retry(max_retry=3, inherit_intermediate_values=True),
            )
    try:
        with _quiet():
            return optuna.storages.RDBStorage(opened, engine_kwargs=kwargs, **beat)
    except (ImportError, ValueError, sqlalchemy.exc.SQLAlchemyError) as err:
        if isinstance(err, ImportError) and opened.startswith(POSTGRES):
            needs = 'needs the PostgreSQL driver: pip install -e ".[postgres]"'
            raise ConfigError(f"--storage {_masked(url)} {needs}") from None
        raise ConfigError(f"cannot open the study storage {_masked(url)}: {_reason(err)}") from None


def _with_driver(url: str) -> str:
    """``url`` with psycopg as the driver of a ``postgresql://`` URL that names none
    (SQLAlchemy before 2.1 would take psycopg2, which the ``postgres`` extra does not
    install); any other URL as given."""
    plain = "postgresql://"
    return POSTGRES + url.removeprefix(plain) if url.startswith(plain) else url


def _connect_args(url: str) -> dict[str, object]:
    """The driver's connection options for ``url``: SQLite waits up to a minute for a lock;
    psycopg speaks UTF-8 whatever the database's encoding (on a ``SQL_ASCII`` database it
    would hand SQLAlchemy bytes for text, which it cannot read)."""
    if url.startswith("sqlite"):
        return {"timeout": 60}
    return {"client_encoding": "utf8"} if url.startswith(POSTGRES) else {}


def _reason(err: Exception) -> str:
    """Why the storage did not open, on one line: for a database error, the driver's own
    message (without SQLAlchemy's link to its docs)."""
    return " ".join(str(getattr(err, "orig", None) or err).split())


def load_study(out: str | Path, storage: str | None, study: str) -> optuna.Study:
    if storage is None and not (Path(out) / "study.db").exists():
        raise ConfigError(f"no sweep in {out} (no study.db); give --out or --storage")
    url = storage or default_storage(out)
    opened = open_storage(url)
    try:
        return optuna.load_study(study_name=study, storage=opened)
    except KeyError:
        names = optuna.get_all_study_names(opened)
        raise ConfigError(
            f"no study {study!r} in {_masked(url)} (it holds: {', '.join(names) or 'none'})"
        ) from None


def _check_space(study: optuna.Study, space: SearchSpace) -> bool:
    """Refuse a study made with another space; True when the study was made before (it
    is resumed)."""
    recorded = study.user_attrs.get("space")
    if recorded is not None and recorded != space.raw:
        raise ConfigError(
            f"study {study.study_name} was made with another space "
            f"({study.user_attrs.get('space_file')}); give another --study"
        )
    return recorded is not None


def _record(study: optuna.Study, space: SearchSpace, objective: Objective) -> None:
    """Record the space and the objective in the study's user attributes."""
    study.set_user_attr("space", space.raw)
    study.set_user_attr("space_file", str(space.path))
    study.set_user_attr("columns", space.columns)
    study.set_user_attr("objective", asdict(objective))


def _check_request(
    objective: str, splits: int | None, folds: int | None, resolution: float | None
) -> None:
    """Fail with one line naming the flag on an objective request that cannot be met."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if splits is not None and splits < 1:
        raise ConfigError(f"--splits must be >= 1 (split seeds per trial), got {splits}")
    if folds is not None and folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")
    if resolution is not None and not resolution > 0:
        raise ConfigError(f"--resolution must be positive, got {resolution}")
    if objective == "folds" and (splits or 1) > 1:
        raise ConfigError(
            f"--splits {splits} runs split seeds; --objective folds runs --folds K folds of "
            "one seed: give one of them"
        )


def _study_objective(
    study: optuna.Study,
    resumed: bool,
    base: RunConfig,
    requested: str,
    splits: int | None,
    folds: int | None,
    resolution: float | None,
) -> Objective:
    """A new study's objective from ``choose_objective`` (None: the defaults); a resumed
    study's is the one it was made with (split seeds for a study from before objectives
    were recorded), and another one given explicitly is refused (``auto`` and None keep
    it)."""
    attrs = study.user_attrs
    resolution_or_default = DEFAULT_RESOLUTION if resolution is None else resolution
    if "objective" in attrs:
        made = Objective(**attrs["objective"])
    elif resumed:
        made = choose_objective(
            base, resolution_or_default, DEFAULT_FOLDS, attrs.get("splits", 1), "split"
        )
    else:
        return choose_objective(
            base, resolution_or_default, folds or DEFAULT_FOLDS, splits or 1, requested
        )
    _refuse_another(study.study_name, made, requested, splits, folds, resolution)
    return made


def _reported_objective(attrs: dict[str, Any]) -> Objective:
    """The objective recorded in a study's user attributes; a study from before objectives
    were recorded scored split seeds (its ``splits``, 1 from before that), its resolution
    unknown (NaN)."""
    if "objective" in attrs:
        return Objective(**attrs["objective"])
    return Objective("split", attrs.get("splits", 1), resolution=math.nan)


def _refuse_another(
    name: str,
    made: Objective,
    requested: str,
    splits: int | None,
    folds: int | None,
    resolution: float | None,
) -> None:
    """Fail with one line when an explicit request differs from the study's objective."""
    kept = f"study {name} was made with"
    if requested != "auto" and requested != made.kind:
        raise ConfigError(f"{kept} --objective {made.kind}; give it or another --study")
    if splits is not None and splits != made.splits:
        what = f"--splits {made.splits}" if made.kind == "split" else "--objective folds"
        raise ConfigError(f"{kept} {what}; give --splits {made.splits} or another --study")
    if made.kind == "folds" and folds is not None and folds != made.folds:
        raise ConfigError(f"{kept} --folds {made.folds}; give it or another --study")
    if resolution is not None and resolution != made.resolution:
        raise ConfigError(f"{kept} --resolution {made.resolution:g}; give it or another --study")


def _split_objective(base: RunConfig, splits: int, resolution: float) -> Objective:
    """Split seeds: ``splits`` runs of the base's validation split."""
    n = len(_split(base.data, "val"))
    se = value_se([ANTICIPATED_ACCURACY] * splits, n)
    return Objective("split", splits, splits * n, se, resolution)


def _folds_objective(base: RunConfig, folds: int, resolution: float) -> Objective:
    """Cross-validation: one run per fold of the base's training split; each fold's
    validation and training splits are built, so that a class too small for the folds or
    for ``--train-per-class`` stops the sweep here."""
    if not _carves(base.data):
        raise ConfigError(
            f"--objective folds cross-validates on the training split, but {base.data.spec} "
            "has a validation split of its own; give --objective split"
        )
    examples = 0
    for i in range(folds):
        data = replace(base.data, val_fold=i, folds=folds)
        examples += len(_split(data, "val"))
        _split(data, "train")
    se = value_se([ANTICIPATED_ACCURACY] * folds, examples / folds)
    return Objective("folds", folds, examples, se, resolution)


def _split(data: DataConfig, split: str) -> ImageSet:
    """One split of a run's dataset, as the run builds it."""
    return get_dataset(data.spec, split, image_size=data.image_size, **dataset_options(data))


def _carves(data: DataConfig) -> bool:
    """Whether the dataset's validation split is carved from its training split."""
    return "val" not in native_splits(data.spec)


def _cannot_rank(objective: Objective) -> str:
    """The first part of a message: the objective's images and error against the
    resolution."""
    if objective.kind == "folds":
        what = f"{objective.folds}-fold cross-validation over {objective.examples} training images"
    elif objective.splits > 1:
        each = objective.examples // objective.splits
        what = f"{objective.splits} split seeds of {each} validation images"
    else:
        what = f"{objective.examples} validation images"
    return (
        f"the objective cannot rank: {what}, standard error {objective.se:.2g} at "
        f"{ANTICIPATED_ACCURACY:.0%} accuracy, larger than the {objective.resolution:g} "
        "differences it must rank (--resolution)"
    )


def _row(t: FrozenTrial) -> SweepTrial:
    attrs = t.user_attrs
    complete = t.state == TrialState.COMPLETE
    if complete and "split_values" not in attrs and attrs.get("run"):
        # A trial recorded before splits: its measures from its run, while it is here.
        with contextlib.suppress(LandscapeError):
            attrs = {**attrs, **_measure([Path(attrs["run"])])}
    return SweepTrial(
        number=t.number,
        state=t.state.name,
        value=t.value if complete else None,
        test_acc=attrs.get("test_acc"),
        seconds=attrs.get("train_seconds"),
        params=dict(t.params),
        eval_acc=[t.intermediate_values[k] for k in sorted(t.intermediate_values)],
        run=attrs.get("run", ""),
        config=attrs.get("config"),
        values=attrs.get("values"),
        split_values=list(attrs.get("split_values", [])) if complete else [],
        runs=list(attrs.get("runs", [attrs["run"]] if attrs.get("run") else [])),
        value_se=attrs.get("value_se") if complete else None,
        eval_loss=attrs.get("eval_loss") if complete else None,
        eval_examples=attrs.get("eval_examples") if complete else None,
    )


def _measure(runs: list[Path]) -> dict[str, Any]:
    """A complete trial's user attributes from its runs (split seeds or folds): each one's
    final validation accuracy, their standard error (``value_se`` over all the runs'
    validation images), the means of the final validation loss, test accuracy and best
    validation accuracy, the training seconds of all, and the validation images of the
    first run (every seed carves the same number per class; folds differ by at most one
    per class)."""
    summaries = [run_summary(run) for run in runs]
    values = [float(s[OBJECTIVE]) for s in summaries]
    counts = [rundir.read_config(run).get("data", {}).get("eval_examples") for run in runs]
    return {
        "split_values": values,
        "value_se": value_se(values, statistics.fmean(counts)) if all(counts) else None,
        "eval_loss": statistics.fmean([float(s["final_eval_loss"]) for s in summaries]),
        "eval_examples": counts[0],
        "test_acc": statistics.fmean([float(s["test_acc"]) for s in summaries]),
        "best_eval_acc": statistics.fmean([float(s["best_eval_acc"]) for s in summaries]),
        "train_seconds": sum(float(s["train_seconds"]) for s in summaries),
    }


class Scored(Protocol):
    """What the tie rule reads of a trial: its objective (None until complete), that
    objective's standard error and validation loss (None when unknown), its number."""

    @property
    def value(self) -> float | None: ...
    @property
    def value_se(self) -> float | None: ...
    @property
    def eval_loss(self) -> float | None: ...
    @property
    def number(self) -> int: ...


T = TypeVar("T", bound=Scored)


def tied_trials(trials: Sequence[T]) -> list[T]:
    """The complete trials within one standard error of the highest objective (equal ones
    only when its error is unknown), highest first (then by number): those the validation
    data cannot separate from the top one."""
    complete = sorted(
        (t for t in trials if t.value is not None), key=lambda t: (-t.value, t.number)
    )
    if not complete:
        return []
    floor = complete[0].value - (complete[0].value_se or 0.0)
    return [t for t in complete if t.value >= floor]


def pick_trial(tied: Sequence[T]) -> T | None:
    """The tied trial of lowest validation loss (unknown losses last), then lowest number."""
    if not tied:
        return None
    return min(tied, key=lambda t: (math.inf if t.eval_loss is None else t.eval_loss, t.number))


def _write(report: SweepReport, attrs: dict[str, Any]) -> None:
    trials = report.trials
    epochs = max((len(t.eval_acc) for t in trials), default=0)
    eval_acc = np.full((len(trials), epochs), np.nan)
    objective = report.objective
    split_values = np.full((len(trials), objective.runs_per_trial), np.nan)
    for i, t in enumerate(trials):
        eval_acc[i, : len(t.eval_acc)] = t.eval_acc
        split_values[i, : len(t.split_values)] = t.split_values
    best = report.best
    write_result(
        report.path,
        "sweep",
        {
            "trials/number": np.asarray([t.number for t in trials], dtype=np.int64),
            "trials/state": [t.state for t in trials],
            "trials/value": _floats(t.value for t in trials),
            "trials/test_acc": _floats(t.test_acc for t in trials),
            "trials/seconds": _floats(t.seconds for t in trials),
            "trials/eval_acc": eval_acc,
            "trials/split_values": split_values,
            "trials/value_se": _floats(t.value_se for t in trials),
            "trials/eval_loss": _floats(t.eval_loss for t in trials),
            "trials/eval_examples": np.asarray(
                [t.eval_examples or 0 for t in trials], dtype=np.int64
            ),
            "trials/run": [t.run for t in trials],
            "trials/runs": [json.dumps(t.runs) for t in trials],
            "trials/params": [json.dumps(t.params, sort_keys=True) for t in trials],
            "trials/config": [
                json.dumps(t.config, sort_keys=True) if t.config else "" for t in trials
            ],
            "params/names": list(report.columns),
            "params/values": np.asarray(
                [[_number(t.effective(c)) for c in report.columns] for t in trials],
                dtype=np.float64,
            ).reshape(len(trials), len(report.columns)),
        },
        attrs={
            "study": report.study,
            "storage": report.storage,
            "space": attrs.get("space", {}),
            "space_file": attrs.get("space_file", ""),
            "objective": OBJECTIVE,
            "direction": "maximize",
            "objective_kind": objective.kind,
            "splits": objective.splits,
            "folds": objective.folds,
            "resolution": objective.resolution,
            "objective_note": objective.message,
        },
        summary={
            "best_trial": best.number if best else -1,
            "best_value": best.value if best else math.nan,
            "best_value_se": best.value_se if best and best.value_se is not None else math.nan,
            "tied": len(report.tied),
            "best_test_acc": best.test_acc if best and best.test_acc is not None else math.nan,
            "best_run": best.run if best else "",
            "best_params": best.params if best else {},
            **{state.lower(): n for state, n in report.counts.items()},
        },
    )


def _floats(values: Iterator[float | None]) -> np.ndarray:
    return np.asarray([math.nan if v is None else v for v in values], dtype=np.float64)


def _number(value: Any) -> float:
    """A searched value as a number (NaN for a string choice or a value never drawn)."""
    return float(value) if isinstance(value, (int, float)) else math.nan


def _value_cell(trial: SweepTrial) -> str:
    """A complete trial's objective with its standard error, e.g. ``0.8 ± 0.19``."""
    if trial.value is None or trial.value_se is None:
        return _cell(trial.value)
    return f"{trial.value:.4g} ± {trial.value_se:.2g}"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _masked(url: str) -> str:
    """The storage URL without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL sqlalchemy can parse: shown as given
        return url


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
