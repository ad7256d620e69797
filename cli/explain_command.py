"""``landscape explain``: what fine-tuning did to each layer group of a run, from the probes
(``landscape.tune.explain.explain_runs``), with the basin against another run and the
block-shuffle share on request; prints the numbers and sentences, writes F.h5 and F.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cli.common import RUN_REF, keyword, out_parameter, stderr_log, user_errors
from cli.options import options_from, options_parameters, with_parameters
from finetune.errors import ConfigError
from landscape.tune.explain import ExplainOptions


def explain_command(**values: Any) -> None:
    """Per layer group of a run: the CKA of its features with the initial ones, how far it
    moved, and what resetting it to its initial weights costs, each with its error; then
    which groups were reused, adapted or rewritten, and on what numbers."""
    from landscape.plots import plot_file
    from landscape.tune.explain import explain_runs

    out: Path = values.pop("out")
    runs = values.pop("runs")
    with user_errors():
        if not runs:
            raise ConfigError("give a run to explain (several runs: seeds of one recipe)")
        options = options_from(ExplainOptions, values)
        result = explain_runs(
            runs,
            against=values["against"],
            block_shuffle=values["block_shuffle"],
            options=options,
            runs_dir=values["runs_dir"],
            out=out,
            log=stderr_log(values["quiet"]),
        )
        png = plot_file(out)
    typer.echo(result.table())
    typer.echo(f"wrote {out} and {png}")


with_parameters(
    explain_command,
    [
        keyword(
            "runs",
            typer.Argument(None, help=f"{RUN_REF}; several: seeds of one recipe"),
            list[str] | None,
        ),
        keyword(
            "against",
            typer.Option(
                None,
                "--against",
                help="another run of the same architecture (another seed, or the default "
                "recipe's run): the barrier on the line to it and each group's CKA with it",
            ),
            str | None,
        ),
        keyword(
            "block_shuffle",
            typer.Option(
                None,
                "--block-shuffle",
                help="B: also train the run's recipe on B-pixel block-shuffled images, from "
                "its init and from random init, and the intact recipe from random init "
                "(3 fine-tunings per run), for the share of the transfer gain that survives",
            ),
            int | None,
        ),
        keyword(
            "runs_dir",
            typer.Option(
                None, "--runs", help="where --block-shuffle trains its runs (default: beside OUT)"
            ),
            Path | None,
        ),
        *options_parameters(ExplainOptions),
        keyword("quiet", typer.Option(False, "--quiet", "-q", help="no progress lines"), bool),
        out_parameter("results/explain.h5"),
    ],
)
