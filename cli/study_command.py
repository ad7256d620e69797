"""``landscape study NAME``: run one of the project's own studies (the experiments behind
its measured tables) and write its result files. It takes ``landscape repro``'s flags."""

from __future__ import annotations

import inspect
import shutil
import tempfile
from pathlib import Path
from typing import Any

import typer

from cli.common import user_errors
from cli.options import with_parameters
from cli.repro_command import PAIR_PARAMETERS, list_registry, pair_options, print_plan
from landscape.experiments.options import ReproOptions


def study_command(**values: Any) -> None:
    """Run one study on a pair of source and targets (sharing the claims' runs), write its
    result files into OUT and plot them."""
    from landscape.experiments.studies import find_study, run_study, studies
    from landscape.plots import has_plot, plot_file

    name, dry = values.pop("name"), values.pop("dry_run")
    with user_errors():
        if name == "list":
            list_registry(studies())
            return
        out, options = pair_options(values)
        if dry and not find_study(name).run_dirs:
            typer.echo(f"{name} trains in this process with no run directory: no runs to list")
            return
        if dry:
            print_plan(name, lambda o: dry_study(name, o, out), options)
            return
        written = run_study(name, options, out)
        options.progress.close()
        plots = [plot_file(path) if has_plot(path) else None for path in written]
    for path, png in zip(written, plots):
        typer.echo(f"wrote {path}" + (f" and {png}" if png else ""))


def dry_study(name: str, options: ReproOptions, out: Path) -> list[Path]:
    """Study ``name`` as a dry run: it may write its files as it goes, so it writes into a
    folder dropped after, holding a copy of the result files in ``out`` it reads."""
    from landscape.experiments.studies import find_study

    with tempfile.TemporaryDirectory() as scratch:
        for path in Path(out).glob("*.h5"):
            shutil.copy2(path, scratch)
        return find_study(name).run(options, Path(scratch))


with_parameters(
    study_command,
    [
        inspect.Parameter(
            "name",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=typer.Argument(..., help="the study; 'list' lists them"),
            annotation=str,
        ),
        *PAIR_PARAMETERS,
    ],
)
