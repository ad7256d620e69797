"""``landscape barrier``, ``landscape plane`` and ``landscape plot``: loss-landscape geometry
between runs (``landscape.geometry.barrier``, ``landscape.geometry.plane``) and re-plotting
any result file by its kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cli.common import RUN_A, RUN_B, keyword, out_parameter, user_errors
from cli.options import options_from, options_parameters, with_parameters
from finetune.errors import ConfigError
from probes.options import ProbeOptions


def barrier_command(**values: Any) -> None:
    """Loss and error on the straight line between two runs' weights, and the loss barrier
    (Neyshabur et al. 2020); writes F.h5 and a plot F.png."""
    from landscape.geometry.barrier import barrier_between
    from landscape.plots import plot_file

    out = values.pop("out")
    with user_errors():
        options = options_from(ProbeOptions, values)
        result = barrier_between(**values, options=options, out=out)
        png = plot_file(out)
    typer.echo(result.table())
    typer.echo(f"wrote {out} and {png}")


with_parameters(
    barrier_command,
    [
        RUN_A,
        RUN_B,
        keyword(
            "points",
            typer.Option(25, "--points", help="evenly spaced points from A to B, ends in"),
            int,
        ),
        *options_parameters(ProbeOptions),
        out_parameter("results/barrier.h5"),
    ],
)


def plane_command(**values: Any) -> None:
    """Loss and error on a grid over a plane of weight space: through three runs (Garipov
    et al. 2018) or around one along random filter-normalised directions (Li et al. 2018);
    writes F.h5 and contours F.png."""
    from landscape.geometry.plane import plane_around, plane_through
    from landscape.plots import plot_file

    runs, grid, out = values.pop("runs"), values.pop("grid"), values.pop("out")
    margin, span = values.pop("margin"), values.pop("span")
    with user_errors():
        options = options_from(ProbeOptions, values)
        if len(runs) == 1:
            result = plane_around(runs[0], grid=grid, span=span, options=options, out=out)
        elif len(runs) == 3:
            result = plane_through(*runs, grid=grid, margin=margin, options=options, out=out)
        else:
            raise ConfigError(
                f"plane takes one run (random directions around it) or three (the plane "
                f"through them), got {len(runs)}"
            )
        png = plot_file(out)
    typer.echo(result.table())
    typer.echo(f"wrote {out} and {png}")


with_parameters(
    plane_command,
    [
        keyword(
            "runs",
            typer.Argument(
                ...,
                help="one run (random filter-normalised directions around it) or three (the "
                "plane through them; the second and third may be 'init', the first run's init)",
            ),
            list[str],
        ),
        keyword("grid", typer.Option(21, "--grid", help="grid points along each axis"), int),
        keyword(
            "margin",
            typer.Option(
                0.2,
                "--margin",
                help="three runs: border around them, as a fraction of their extent",
            ),
            float,
        ),
        keyword(
            "span",
            typer.Option(1.0, "--span", help="one run: the grid covers [-span, span]^2"),
            float,
        ),
        *options_parameters(ProbeOptions),
        out_parameter("results/plane.h5"),
    ],
)


def plot_command(
    path: Path = typer.Argument(
        ..., help="a result file (.h5) of a kind with a plot, such as a run's RUN/run.h5"
    ),
    out: Path | None = typer.Option(None, "--out", help="PNG to write (default: beside it)"),
) -> None:
    """Render a result file to PNG according to its kind (RUN/run.h5: the run's learning
    curves)."""
    from landscape.plots import plot_file

    with user_errors():
        png = plot_file(path, out)
    typer.echo(f"wrote {png}")
