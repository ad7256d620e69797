"""``landscape shuffle``: the block-shuffle experiment
(``landscape.experiments.shuffle.run_shuffle``) with every fine-tuning flag except
``--block-shuffle``, which the experiment sets per run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cli.common import keyword, stderr_log, user_errors
from cli.options import config_file_parameter, config_parameters, plain, with_parameters


def shuffle_command(**values: Any) -> None:
    """Fine-tune from pre-trained and random init on block-shuffled images at several block
    sizes; write the result file and its plot, print the table."""
    from cli.progress import ProgressBar
    from finetune.config import build_config, comma_ints, load_config_file
    from landscape.experiments.shuffle import run_shuffle
    from landscape.plots import plot_file

    values = plain(values)
    out, runs, config_file = values.pop("out"), values.pop("runs"), values.pop("config")
    quiet = values.pop("quiet")
    block_text, seed_text = values.pop("block_sizes"), values.pop("seeds")
    progress = ProgressBar(quiet)
    with user_errors():
        block_sizes = list(comma_ints(block_text, "--block-sizes"))
        seeds = list(comma_ints(seed_text, "--seeds", minimum=0))
        file_values = load_config_file(config_file) if config_file else {}
        base = build_config("finetune", file_values, values)
        report = run_shuffle(
            base, block_sizes, seeds, out, runs, progress=progress, log=stderr_log(quiet)
        )
        progress.close()
        png = plot_file(out)
    typer.echo(report.table())
    typer.echo(f"wrote {out} and {png}")


_PARAMETERS = [
    keyword(
        "block_sizes",
        typer.Option(
            "1,2,4,8,16,32",
            "--block-sizes",
            help="comma-separated block sizes in pixels, each dividing the image size "
            "(the image size itself, intact, is always added)",
        ),
        str,
    ),
    keyword(
        "seeds",
        typer.Option("0", "--seeds", help="comma-separated seeds; each runs both inits"),
        str,
    ),
    keyword(
        "out",
        typer.Option(Path("results/shuffle.h5"), "--out", help="the result file to write"),
        Path,
    ),
    keyword(
        "runs",
        typer.Option(
            None,
            "--runs",
            help="folder of the fine-tuning runs, reused and resumed when run again "
            "(default: OUT's stem + _runs beside OUT)",
        ),
        Path | None,
    ),
    config_file_parameter(),
    keyword("quiet", typer.Option(False, "--quiet", "-q", help="no progress output"), bool),
]
with_parameters(shuffle_command, _PARAMETERS + config_parameters(("block_shuffle",)))
