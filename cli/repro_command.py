"""``landscape repro NAME``: run one published claim's experiment (several side by side) and
say whether it held. Its flags, shared with ``landscape study``, are generated from
``ReproOptions``."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from cli.common import keyword, stderr_log, user_errors
from cli.options import options_from, options_parameters, plain, with_parameters
from cli.progress import duration
from landscape.experiments.options import ReproOptions

if TYPE_CHECKING:
    from finetune.executors import PlannedRun
    from landscape.experiments.repro import ClaimResult

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


def print_plan(
    name: str, run: Callable[[ReproOptions], object], options: ReproOptions
) -> list[PlannedRun]:
    """The runs of a claim or a study (``run``), one line each, whether each exists, and
    whether more runs follow that depend on them; returns the runs."""
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
    return plan.runs


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
    OUT/NAME.png, and print its numbers and whether the claim held; several claims ('all',
    or names separated by commas) run side by side on the executor."""
    from landscape.experiments import repro
    from landscape.experiments.repro.all_claims import claim_names

    name, rejudge = values.pop("name"), values.pop("rejudge")
    with user_errors():
        if name == "list":
            list_registry(repro.claims())
            return
        dry = values.pop("dry_run")
        out, options = pair_options(values)
        names = claim_names(name)
        if dry:
            planned = [run for each in names
                       for run in print_plan(each, repro.find_claim(each).run, options)]
            if len(names) > 1:
                unique = {run.path: run for run in planned}.values()
                typer.echo(f"{len(names)} claims: {len(unique)} distinct runs, "
                           f"{sum(run.completed() for run in unique)} complete")  # fmt: skip
        elif len(names) == 1:
            one_claim(names[0], options, out, rejudge)
        elif rejudge:
            rejudge_claims(names, out)
        else:
            several_claims(names, options, out)


def one_claim(name: str, options: ReproOptions, out: Path, rejudge: bool) -> None:
    """One claim run (its grids on the executor) or rejudged; its table, verdict and notes."""
    from landscape.experiments import repro
    from landscape.plots import plot_file

    if rejudge:
        result = repro.rejudge(name, out / f"{name}.h5")
    else:
        result = repro.run_claim(name, options, out)
    options.progress.close()
    png = plot_file(out / f"{name}.h5")
    typer.echo(result.table())
    typer.echo(f"{held(result)}: {result.verdict}")
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {out / f'{name}.h5'} and {png}")


def held(result: ClaimResult) -> str:
    """Whether a claim held, as the command says it: HELD or DID NOT HOLD."""
    return "HELD" if result.held else "DID NOT HOLD"


def rejudge_claims(names: list[str], out: Path) -> None:
    """Each claim's verdict recomputed from its file, where it reads only the table."""
    from landscape.experiments import repro

    for name in names:
        if repro.find_claim(name).judge is None:
            typer.echo(f"{name}: its verdict reads its runs, not only its table: not rejudged")
            continue
        result = repro.rejudge(name, out / f"{name}.h5")
        typer.echo(f"{name}: {held(result)}: {result.verdict}")


def several_claims(names: list[str], options: ReproOptions, out: Path) -> None:
    """The claims side by side on the executor (``run_claims``): a line as each finishes,
    then each one's verdict and the wall time."""
    from landscape.experiments.repro.all_claims import run_claims
    from landscape.plots import plot_file

    started = time.perf_counter()

    def finished(name: str, result: ClaimResult) -> None:
        options.log(f"{name}: {held(result).lower()}, "
                    f"{duration(time.perf_counter() - started)} in")  # fmt: skip

    results = run_claims(names, options, out, finished)
    options.progress.close()
    for name, result in results.items():
        plot_file(out / f"{name}.h5")
        typer.echo(f"{name:20s}{held(result):14s}{result.verdict}")
    typer.echo(f"{sum(r.held for r in results.values())} of {len(results)} claims held; "
               f"wrote NAME.h5 and NAME.png for each into {out} in "
               f"{duration(time.perf_counter() - started)}")  # fmt: skip


with_parameters(
    repro_command,
    [
        inspect.Parameter(
            "name",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=typer.Argument(
                ...,
                help="the claim; several separated by commas, or 'all', run side by side "
                "on the executor; 'list' lists them",
            ),
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
