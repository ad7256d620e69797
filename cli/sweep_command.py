"""``landscape sweep``: search a space of fine-tuning options with Optuna
(``landscape.tune.sweep.run_sweep``), or with ``--report`` print the table of a study's trials
(``landscape.tune.sweep.sweep_report``); both write OUT/sweep.h5. The study's flags are
generated from ``SweepOptions``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cli.common import keyword, stderr_log, user_errors
from cli.options import options_from, options_parameters, with_parameters
from finetune.errors import ConfigError
from landscape.tune.sweep_options import DEFAULT_OUT, SweepOptions


def sweep_command(**values: Any) -> None:
    """Search transferred groups, learning rates, L2-SP and L2 per group and freezing with
    Optuna: each trial a run directory per split seed (or per cross-validated fold), the
    objective their mean final validation accuracy; among the trials it cannot separate, the
    lowest validation loss wins."""
    import optuna

    from cli.progress import ProgressBar
    from landscape.tune.sweep import run_sweep, study_name, sweep_report

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space, out, quiet = values.pop("space"), values.pop("out"), values.pop("quiet")
    report = values.pop("report")
    with user_errors():
        options = options_from(SweepOptions, values)
        if options.study is None and space is None:
            raise ConfigError("give --space (or --study with --report)")
        name = options.study or study_name(space)
        if report:
            result = sweep_report(out=out, storage=options.storage, study=name)
        else:
            progress = None if quiet or options.workers > 1 else ProgressBar()
            result = run_sweep(space, options, out=out, progress=progress, log=stderr_log(quiet))
            if progress is not None:
                progress.close()
    typer.echo(result.table())
    typer.echo(f"wrote {result.path}")


with_parameters(
    sweep_command,
    [
        keyword(
            "space",
            typer.Option(
                None,
                "--space",
                help="the space file (.toml): fixed base options and searched ranges",
            ),
            Path | None,
        ),
        *options_parameters(SweepOptions),
        keyword(
            "out",
            typer.Option(DEFAULT_OUT, "--out", help="folder of the runs, study.db and sweep.h5"),
            Path,
        ),
        keyword(
            "report",
            typer.Option(False, "--report", help="print the table of trials and stop"),
            bool,
        ),
        keyword("quiet", typer.Option(False, "--quiet", "-q", help="no progress output"), bool),
    ],
)
