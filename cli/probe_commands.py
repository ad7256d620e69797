"""``landscape cka`` and ``landscape distance``: how similar two runs' features are, and
how far apart their weights are, per layer group."""

from __future__ import annotations

from typing import Any

import typer

from cli.common import RUN_A, RUN_B, RUN_REF, keyword, out_parameter, run_probe, user_errors
from cli.options import options_parameters, with_parameters
from probes.options import ProbeOptions


def cka_command(**values: Any) -> None:
    """Layers-by-layers CKA between the features of two runs on the same examples
    (minibatch CKA); writes F.h5 and a heatmap F.png."""
    from probes.similarity import compare_runs

    run_probe(compare_runs, values)


with_parameters(
    cka_command,
    [
        RUN_A,
        RUN_B,
        keyword(
            "layers",
            typer.Option("groups", "--layers", help="groups, all, or comma-separated module names"),
            str,
        ),
        keyword(
            "pool", typer.Option("flatten", "--pool", help="flatten or mean (over positions)"), str
        ),
        *options_parameters(ProbeOptions, skip=("bn_batches",)),
        out_parameter("results/cka.h5"),
    ],
)


def distance_command(**values: Any) -> None:
    """Parameter distance of RUN_A from RUN_B (default: its own init) per layer group:
    L2, relative to RUN_B's norm, and cosine; writes F.h5 and a bar chart F.png."""
    from landscape.plots import plot_file
    from probes.distance import distance_between_runs

    with user_errors():
        result = distance_between_runs(**values)
        png = plot_file(values["out"])
    typer.echo(result.table())
    typer.echo(f"wrote {values['out']} and {png}")


with_parameters(
    distance_command,
    [
        RUN_A,
        keyword(
            "run_b",
            typer.Argument(
                "init",
                help=f"reference: a {RUN_REF}, or 'init' (RUN_A's init)",
            ),
            str,
        ),
        out_parameter("results/distance.h5"),
    ],
)
