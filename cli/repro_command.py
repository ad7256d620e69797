"""``landscape repro NAME``: run one published claim's experiment and say whether it held."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import int_list, stderr_log, user_errors


def repro_command(
    name: str = typer.Argument(..., help="the claim; 'list' lists them"),
    quick: bool = typer.Option(False, "--quick", help="the CI-sized version"),
    out: Path = typer.Option(Path("results/repro"), "--out", help="folder of NAME.h5/.png"),
    runs: Path | None = typer.Option(
        None, "--runs", help="folder of the runs, reused when run again (default: OUT/runs)"
    ),
    model: str = typer.Option("test_resnet", "--model", help="timm architecture"),
    init: Path | None = typer.Option(
        None, "--init", help="pre-trained source run (default: the demo's recipe, trained once)"
    ),
    seeds: str | None = typer.Option(None, "--seeds", help="comma-separated seeds"),
    data: str | None = typer.Option(
        None,
        "--data",
        help="comma-separated target dataset specs, in the roles of the claim's own "
        "(depth: a near then a distant target)",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
) -> None:
    """Run the experiment of one published claim on tiny models, write OUT/NAME.h5 and
    OUT/NAME.png, and print its numbers and whether the claim held."""
    from cli.progress import ProgressBar
    from landscape.experiments.repro import ReproOptions, claims, run_claim
    from landscape.plots import plot_file

    with user_errors():
        if name == "list":
            for claim in claims().values():
                typer.echo(f"{claim.name:<16s}{claim.title}")
            return
        progress = ProgressBar(quiet)
        options = ReproOptions(
            quick=quick,
            runs=runs or out / "runs",
            source=init,
            model=model,
            seeds=tuple(int_list(seeds, "--seeds", minimum=0)) if seeds else None,
            data=tuple(d.strip() for d in data.split(",") if d.strip()) if data else None,
            progress=progress,
            log=stderr_log(quiet),
        )
        result = run_claim(name, options, out)
        progress.close()
        png = plot_file(out / f"{name}.h5")
    typer.echo(result.table())
    typer.echo(f"{'HELD' if result.held else 'DID NOT HOLD'}: {result.verdict}")
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {out / f'{name}.h5'} and {png}")
