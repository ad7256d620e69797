"""``landscape barrier``, ``landscape plane``, ``landscape sharpness``, ``landscape
criticality`` and ``landscape plot``: loss-landscape geometry between runs and at one
(``landscape.geometry.barrier``, ``landscape.geometry.plane``,
``landscape.geometry.sharpness``, ``landscape.geometry.criticality``) and re-plotting any
result file by its kind."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import typer

from cli.common import RUN_A, RUN_B, RUN_REF, keyword, out_parameter, run_probe, user_errors
from cli.options import options_parameters, with_parameters
from finetune.errors import ConfigError
from landscape.geometry.options import CriticalityOptions, SharpnessOptions
from probes.options import ProbeOptions


def barrier_command(**values: Any) -> None:
    """Loss and error on the straight line between two runs' weights, and the loss barrier
    (Neyshabur et al. 2020); writes F.h5 and a plot F.png."""
    from landscape.geometry.barrier import barrier_between

    run_probe(barrier_between, values)


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

    runs, margin, span = values.pop("runs"), values.pop("margin"), values.pop("span")
    if len(runs) == 1:
        run_probe(functools.partial(plane_around, runs[0], span=span), values)
    elif len(runs) == 3:
        run_probe(functools.partial(plane_through, *runs, margin=margin), values)
    else:
        with user_errors():
            raise ConfigError(
                f"plane takes one run (random directions around it) or three (the plane "
                f"through them), got {len(runs)}"
            )


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


def sharpness_command(**values: Any) -> None:
    """Top Hessian eigenvalue and trace of a run's training loss at its weights, whole and
    per layer group (PyHessian's measures, Yao et al. 2020), with their cost in
    Hessian-vector products; writes F.h5 and a bar chart F.png."""
    from landscape.geometry.sharpness import sharpness

    run_probe(sharpness, values, SharpnessOptions)


with_parameters(
    sharpness_command,
    [
        keyword("run", typer.Argument(..., help=RUN_REF), str),
        *options_parameters(SharpnessOptions),
        out_parameter("results/sharpness.h5"),
    ],
)


def criticality_command(**values: Any) -> None:
    """Module criticality of a run's layer groups (Chatterji et al. 2019): the training
    error as each group alone is rewound toward its initial weights, and how far it can go
    under Gaussian noise within --epsilon of the run's error; writes F.h5 and a heatmap
    F.png."""
    from landscape.geometry.criticality import module_criticality

    run_probe(module_criticality, values, CriticalityOptions)


with_parameters(
    criticality_command,
    [
        keyword("run", typer.Argument(..., help=RUN_REF), str),
        keyword(
            "init_ref",
            typer.Option(
                "init",
                "--init-ref",
                help="theta0: 'init' (the run's initial weights), or another run or weights "
                "file of the same architecture and head",
            ),
            str,
        ),
        *options_parameters(CriticalityOptions),
        out_parameter("results/criticality.h5"),
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
