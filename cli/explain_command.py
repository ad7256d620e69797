"""``landscape explain``: what fine-tuning did to each layer group of a run, from the probes
(``landscape.tune.explain.explain_runs``), with the basin against another run and the
block-shuffle share on request; prints the numbers and sentences, writes F.h5 and F.png."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from cli.common import RUN_REF, keyword, stderr_log, user_errors
from cli.options import options_from, options_parameters, with_parameters
from finetune.errors import ConfigError
from landscape.tune.options import ExplainOptions


def explain_command(**values: Any) -> None:
    """Per layer group of a run: the CKA of its features with the initial ones, how far it
    moved, and what resetting it to its initial weights costs, each with its error; then
    which groups were reused, adapted or rewritten, and on what numbers."""
    from landscape.plots import plot_file
    from landscape.tune.explain import explain_runs

    out: Path | None = values.pop("out")
    runs, sweep = values.pop("runs"), values.pop("sweep")
    with user_errors():
        if bool(runs) == (sweep is not None):
            raise ConfigError("give either runs to explain or --sweep DIR, not both")
        options = options_from(ExplainOptions, values)
        if sweep is not None:
            _explain_sweep(sweep, out or sweep / "explain.h5", options, values)
            return
        out = out or Path("results/explain.h5")
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


def _explain_sweep(sweep: Path, out: Path, options, values: dict[str, Any]) -> None:
    """``--sweep DIR``: why the sweep's best trials won."""
    from landscape.plots import plot_file
    from landscape.tune.explain_sweep import explain_sweep

    result = explain_sweep(
        sweep,
        storage=values["storage"],
        study=values["study"],
        share=values["probe_share"],
        evaluator=values["importance"],
        options=options,
        result=out,
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
        keyword(
            "sweep",
            typer.Option(
                None,
                "--sweep",
                help="a sweep's folder (landscape sweep --out): why its best trials won, from "
                "Optuna's importances and the probes of its top and bottom trials",
            ),
            Path | None,
        ),
        keyword(
            "study",
            typer.Option(None, "--study", help="--sweep: the study (default: the only one)"),
            str | None,
        ),
        keyword(
            "storage",
            typer.Option(
                None, "--storage", help="--sweep: the study's database URL (default: DIR/study.db)"
            ),
            str | None,
        ),
        keyword(
            "probe_share",
            typer.Option(
                0.25,
                "--probe-share",
                help="--sweep: the share of the complete trials probed at each end (top and "
                "bottom by objective)",
            ),
            float,
        ),
        keyword(
            "importance",
            typer.Option(
                "auto",
                "--importance",
                help="--sweep: Optuna's importance evaluator: fanova (needs scikit-learn), "
                "ped-anova, or auto (fanova when scikit-learn is installed)",
            ),
            str,
        ),
        *options_parameters(ExplainOptions),
        keyword("quiet", typer.Option(False, "--quiet", "-q", help="no progress lines"), bool),
        keyword(
            "out",
            typer.Option(
                None,
                "--out",
                help="result file (.h5; default: results/explain.h5, or DIR/explain.h5 with "
                "--sweep)",
            ),
            Path | None,
        ),
    ],
)
