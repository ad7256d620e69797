"""``landscape study NAME``: run one of the project's own studies (the experiments behind
its measured tables) and write its result files."""

from __future__ import annotations

import inspect
import typing

import typer

from cli.common import user_errors
from cli.repro_command import list_registry, pair_options, repro_command


def study_command(name: str, **values) -> None:
    """Run one study on a pair of source and targets (sharing the claims' runs), write its
    result files into OUT and plot them."""
    from landscape.experiments.studies import run_study, studies
    from landscape.plots import has_plot, plot_file

    with user_errors():
        if name == "list":
            list_registry(studies())
            return
        out, options = pair_options(**values)
        written = run_study(name, options, out)
        options.progress.close()
        plots = [plot_file(path) if has_plot(path) else None for path in written]
    for path, png in zip(written, plots):
        typer.echo(f"wrote {path}" + (f" and {png}" if png else ""))


def _repro_options() -> list[inspect.Parameter]:
    """``landscape repro``'s options but its claim name and ``--rejudge`` (a claim's own
    verdict), with their annotations resolved (the module's are strings), so that the two
    commands take the same flags."""
    hints = typing.get_type_hints(repro_command)
    parameters = list(inspect.signature(repro_command).parameters.values())[1:]
    return [p.replace(annotation=hints[p.name]) for p in parameters if p.name != "rejudge"]


study_command.__signature__ = inspect.Signature(
    [
        inspect.Parameter(
            "name",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=typer.Argument(..., help="the study; 'list' lists them"),
            annotation=str,
        ),
        *_repro_options(),
    ]
)
