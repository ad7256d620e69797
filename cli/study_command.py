"""``landscape study NAME``: run one of the project's own studies (the experiments behind
its measured tables) and write its result files. It takes ``landscape repro``'s flags."""

from __future__ import annotations

import inspect
from typing import Any

import typer

from cli.common import user_errors
from cli.options import with_parameters
from cli.repro_command import PAIR_PARAMETERS, list_registry, pair_options


def study_command(**values: Any) -> None:
    """Run one study on a pair of source and targets (sharing the claims' runs), write its
    result files into OUT and plot them."""
    from landscape.experiments.studies import run_study, studies
    from landscape.plots import has_plot, plot_file

    name = values.pop("name")
    with user_errors():
        if name == "list":
            list_registry(studies())
            return
        out, options = pair_options(values)
        written = run_study(name, options, out)
        options.progress.close()
        plots = [plot_file(path) if has_plot(path) else None for path in written]
    for path, png in zip(written, plots):
        typer.echo(f"wrote {path}" + (f" and {png}" if png else ""))


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
