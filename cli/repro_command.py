"""``landscape repro NAME``: run one published claim's experiment and say whether it held.
Its flags, shared with ``landscape study``, are generated from ``ReproOptions``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

from cli.common import keyword, stderr_log, user_errors
from cli.options import options_from, options_parameters, plain, with_parameters
from landscape.experiments.options import ReproOptions

# The flags of a claim or a study: the options, where they write, how much they say.
PAIR_PARAMETERS: list[inspect.Parameter] = [
    *options_parameters(ReproOptions, skip=("runs", "progress", "log", "plan")),
    keyword(
        "out",
        typer.Option(
            None,
            "--out",
            help="folder of the result files and plots (default: results/repro, or "
            "results/repro/PAIR)",
        ),
        Path | None,
    ),
    keyword(
        "runs",
        typer.Option(
            None, "--runs", help="folder of the runs, reused when run again (default: OUT/runs)"
        ),
        Path | None,
    ),
    keyword("quiet", typer.Option(False, "--quiet", "-q", help="no progress output"), bool),
    keyword(
        "dry_run",
        typer.Option(
            False,
            "--dry-run",
            help="list the runs it would train, and which already exist; train nothing",
        ),
        bool,
    ),
]


def list_registry(entries: dict) -> None:
    """One line per registered claim or study: its name, then its title."""
    width = max(map(len, entries)) + 2
    for entry in entries.values():
        typer.echo(f"{entry.name:<{width}s}{entry.title}")


def print_plan(name: str, run: Callable[[ReproOptions], object], options: ReproOptions) -> None:
    """The runs of a claim or a study (``run``), one line each, whether each exists, and
    whether more runs follow that depend on them."""
    from landscape.experiments.options import dry_run

    plan, more = dry_run(run, options)
    complete = [planned.completed() for planned in plan.runs]
    typer.echo(f"{name}: {len(plan.runs)} runs, {sum(complete)} complete, "
               f"{len(plan.runs) - sum(complete)} to train")  # fmt: skip
    for planned, done in zip(plan.runs, complete):
        typer.echo(f"  {'complete' if done else 'to train':9s} {planned.config.kind:9s} "
                   f"{planned.config.data.spec:24s} {planned.path}")  # fmt: skip
    if more:
        typer.echo("then runs whose options depend on these runs' results (a search, a pilot): "
                   "listed once these are trained")  # fmt: skip


def pair_options(values: dict[str, Any]) -> tuple[Path, ReproOptions]:
    """The output folder (default: results/repro, or results/repro/PAIR) and the
    ``ReproOptions`` of a claim or study, with a progress bar, from the parsed values of
    ``PAIR_PARAMETERS``."""
    from cli.progress import ProgressBar
    from landscape.experiments.recipes import results_folder

    values = plain(values)
    quiet = values.pop("quiet")
    out = values.pop("out") or results_folder(values["pair"])
    values["runs"] = values.pop("runs") or out / "runs"
    options = options_from(ReproOptions, values)
    return out, replace(options, progress=ProgressBar(quiet), log=stderr_log(quiet))


def repro_command(**values: Any) -> None:
    """Run the experiment of one published claim on tiny models, write OUT/NAME.h5 and
    OUT/NAME.png, and print its numbers and whether the claim held."""
    from landscape.experiments import repro
    from landscape.plots import plot_file

    name, rejudge = values.pop("name"), values.pop("rejudge")
    with user_errors():
        if name == "list":
            list_registry(repro.claims())
            return
        dry = values.pop("dry_run")
        out, options = pair_options(values)
        if dry:
            print_plan(name, repro.find_claim(name).run, options)
            return
        if rejudge:
            result = repro.rejudge(name, out / f"{name}.h5")
        else:
            result = repro.run_claim(name, options, out)
        options.progress.close()
        png = plot_file(out / f"{name}.h5")
    typer.echo(result.table())
    typer.echo(f"{'HELD' if result.held else 'DID NOT HOLD'}: {result.verdict}")
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {out / f'{name}.h5'} and {png}")


with_parameters(
    repro_command,
    [
        inspect.Parameter(
            "name",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=typer.Argument(..., help="the claim; 'list' lists them"),
            annotation=str,
        ),
        *PAIR_PARAMETERS,
        keyword(
            "rejudge",
            typer.Option(
                False,
                "--rejudge",
                help="recompute the verdict of OUT/NAME.h5 from its table alone and rewrite "
                "it (no training; claims whose verdict reads only their numbers)",
            ),
            bool,
        ),
    ],
)
