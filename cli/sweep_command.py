"""``landscape sweep``: search a space of fine-tuning options with Optuna
(``landscape.tune.sweep.run_sweep``), or with ``--report`` print the table of a study's trials
(``landscape.tune.sweep.sweep_report``); both write OUT/sweep.h5."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import stderr_log, user_errors
from finetune.errors import ConfigError


def sweep_command(
    space: Path | None = typer.Option(
        None, "--space", help="the space file (.toml): fixed base options and searched ranges"
    ),
    trials: int | None = typer.Option(
        None, "--trials", help="finished (complete or pruned) trials the study should reach"
    ),
    out: Path = typer.Option(
        Path("results/sweep"), "--out", help="folder of the runs, study.db and sweep.h5"
    ),
    storage: str | None = typer.Option(
        None,
        "--storage",
        help="an Optuna database URL shared by every worker (default: sqlite:///OUT/study.db)",
    ),
    study: str | None = typer.Option(
        None, "--study", help="study name (default: the space file's name)"
    ),
    workers: int = typer.Option(1, "--workers", help="trials run in parallel on this machine"),
    seed: int = typer.Option(
        0, "--seed", help="seed of the sampler (mixed with the worker and the trial count)"
    ),
    objective: str = typer.Option(
        "auto",
        "--objective",
        help="how a trial is scored: split (--splits split seeds), folds (--folds "
        "cross-validated folds of the training split, one run each), auto (split seeds when "
        "their standard error at 90% accuracy is at most --resolution, else folds when the "
        "dataset carves its validation split); a resumed study keeps its own",
    ),
    splits: int | None = typer.Option(
        None,
        "--splits",
        help="runs per trial, with split seeds S, S+1, ...; the objective is their mean "
        "validation accuracy (default: 1, or the study's)",
    ),
    folds: int | None = typer.Option(
        None,
        "--folds",
        help="folds of the cross-validation under --objective folds, one run each "
        "(default: 5, or the study's)",
    ),
    resolution: float | None = typer.Option(
        None,
        "--resolution",
        help="the smallest difference of validation accuracy the search must rank "
        "(default: 0.02, or the study's)",
    ),
    prune: bool = typer.Option(
        True,
        "--prune/--no-prune",
        help="stop trials whose epochs (of their first run) fall below the median",
    ),
    heartbeat: int = typer.Option(
        10,
        "--heartbeat",
        help="seconds between a trial's heartbeats; a trial silent for twice as long is retried",
    ),
    report: bool = typer.Option(False, "--report", help="print the table of trials and stop"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
) -> None:
    """Search transferred groups, learning rates, L2-SP and L2 per group and freezing with
    Optuna: each trial a run directory per split seed (or per cross-validated fold), the
    objective their mean final validation accuracy; among the trials it cannot separate, the
    lowest validation loss wins."""
    import optuna

    from cli.progress import ProgressBar
    from landscape.tune.sweep import run_sweep, study_name, sweep_report

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with user_errors():
        if study is None and space is None:
            raise ConfigError("give --space (or --study with --report)")
        name = study or study_name(space)
        if report:
            result = sweep_report(out=out, storage=storage, study=name)
        else:
            if trials is None:
                raise ConfigError("give --trials N (or --report)")
            progress = None if quiet or workers > 1 else ProgressBar()
            result = run_sweep(
                space, trials=trials, out=out, storage=storage, study=name, workers=workers,
                seed=seed, objective=objective, splits=splits, folds=folds,
                resolution=resolution, prune=prune, heartbeat=heartbeat, progress=progress,
                log=stderr_log(quiet),
            )  # fmt: skip
            if progress is not None:
                progress.close()
    typer.echo(result.table())
    typer.echo(f"wrote {result.path}")
