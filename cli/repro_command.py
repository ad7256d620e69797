"""``landscape repro NAME``: run one published claim's experiment and say whether it held."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import int_list, stderr_log, user_errors


def split_specs(text: str) -> tuple[str, ...]:
    """Comma-separated dataset specs; commas inside a class subset ``[...]`` stay."""
    specs, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            specs.append(current)
            current = ""
        else:
            current += char
    return tuple(spec.strip() for spec in [*specs, current] if spec.strip())


def list_registry(entries: dict) -> None:
    """One line per registered claim or study: its name, then its title."""
    width = max(map(len, entries)) + 2
    for entry in entries.values():
        typer.echo(f"{entry.name:<{width}s}{entry.title}")


def pair_options(
    quick: bool,
    pair: str,
    out: Path | None,
    runs: Path | None,
    model: str,
    init: Path | None,
    seeds: str | None,
    data: str | None,
    quiet: bool,
):
    """The output folder (default: results/repro, or results/repro/PAIR) and the
    ``ReproOptions`` of a claim or study, with a progress bar."""
    from cli.progress import ProgressBar
    from landscape.experiments.recipes import results_folder
    from landscape.experiments.repro import ReproOptions

    if out is None:
        out = results_folder(pair)
    options = ReproOptions(
        quick=quick,
        runs=runs or out / "runs",
        source=init,
        model=model,
        seeds=tuple(int_list(seeds, "--seeds", minimum=0)) if seeds else None,
        data=split_specs(data) if data else None,
        pair=pair,
        progress=ProgressBar(quiet),
        log=stderr_log(quiet),
    )
    return out, options


def repro_command(
    name: str = typer.Argument(..., help="the claim; 'list' lists them"),
    quick: bool = typer.Option(False, "--quick", help="the CI-sized version"),
    pair: str = typer.Option(
        "synthetic",
        "--pair",
        help="source and targets: synthetic (synthetic:source -> near/far) or real "
        "(fashion_mnist[0-4] -> fashion_mnist[5-9] / digits)",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="folder of NAME.h5/.png (default: results/repro, or results/repro/PAIR)"
    ),
    runs: Path | None = typer.Option(
        None, "--runs", help="folder of the runs, reused when run again (default: OUT/runs)"
    ),
    model: str = typer.Option("test_resnet", "--model", help="timm architecture"),
    init: Path | None = typer.Option(
        None, "--init", help="pre-trained source run (default: the pair's recipe, trained once)"
    ),
    seeds: str | None = typer.Option(None, "--seeds", help="comma-separated seeds"),
    data: str | None = typer.Option(
        None,
        "--data",
        help="comma-separated target dataset specs, in the roles of the claim's own "
        "(depth: a near then a distant target)",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress output"),
    rejudge: bool = typer.Option(
        False,
        "--rejudge",
        help="recompute the verdict of OUT/NAME.h5 from its table alone and rewrite it (no "
        "training; claims whose verdict reads only their numbers)",
    ),
) -> None:
    """Run the experiment of one published claim on tiny models, write OUT/NAME.h5 and
    OUT/NAME.png, and print its numbers and whether the claim held."""
    from landscape.experiments import repro
    from landscape.plots import plot_file

    with user_errors():
        if name == "list":
            list_registry(repro.claims())
            return
        out, options = pair_options(quick, pair, out, runs, model, init, seeds, data, quiet)
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
