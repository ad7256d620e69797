"""``landscape barrier``, ``landscape plane`` and ``landscape plot``: loss-landscape geometry
between runs (``landscape.geometry.barrier``, ``landscape.geometry.plane``) and re-plotting
any result file by its kind."""

from __future__ import annotations

from pathlib import Path

import typer

from cli.common import user_errors
from finetune.errors import ConfigError

BN_HELP = (
    "training batches (no augmentation, fixed order) to re-estimate BatchNorm statistics on at "
    "every point; 0: off (ignored for models without BatchNorm)"
)


def barrier_command(
    run_a: str = typer.Argument(..., help="run directory (or a .safetensors file of one)"),
    run_b: str = typer.Argument(
        ..., help="run directory, a .safetensors file of one, or 'init' (RUN_A's init)"
    ),
    points: int = typer.Option(25, "--points", help="evenly spaced points from A to B, ends in"),
    data: str | None = typer.Option(None, "--data", help="dataset spec (default: RUN_A's)"),
    split: str = typer.Option("test", "--split", help="train, val or test"),
    examples: int | None = typer.Option(None, "--examples", help="examples used (default: all)"),
    bn_batches: int = typer.Option(50, "--bn-batches", help=BN_HELP),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="examples per batch (default: RUN_A's evaluation batch size)"
    ),
    seed: int = typer.Option(0, "--seed", help="seed of the example orders"),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N"),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32 or bf16"),
    out: Path = typer.Option(Path("results/barrier.h5"), "--out", help="result file (.h5)"),
) -> None:
    """Loss and error on the straight line between two runs' weights, and the loss barrier
    (Neyshabur et al. 2020); writes F.h5 and a plot F.png."""
    from landscape.geometry.barrier import barrier_between
    from landscape.plots import plot_file

    with user_errors():
        result = barrier_between(
            run_a,
            run_b,
            points=points,
            data=data,
            split=split,
            examples=examples,
            bn_batches=bn_batches,
            batch_size=batch_size,
            seed=seed,
            device=device,
            precision=precision,
            out=out,
        )
        png = plot_file(out)
    typer.echo(result.table())
    typer.echo(f"wrote {out} and {png}")


def plane_command(
    runs: list[str] = typer.Argument(
        ...,
        help="one run (random filter-normalised directions around it) or three (the plane "
        "through them; the second and third may be 'init', the first run's init)",
    ),
    grid: int = typer.Option(21, "--grid", help="grid points along each axis"),
    margin: float = typer.Option(
        0.2, "--margin", help="three runs: border around them, as a fraction of their extent"
    ),
    span: float = typer.Option(1.0, "--span", help="one run: the grid covers [-span, span]^2"),
    seed: int = typer.Option(0, "--seed", help="seed of the random directions and example order"),
    data: str | None = typer.Option(None, "--data", help="dataset spec (default: the first run's)"),
    split: str = typer.Option("test", "--split", help="train, val or test"),
    examples: int | None = typer.Option(None, "--examples", help="examples used (default: all)"),
    bn_batches: int = typer.Option(50, "--bn-batches", help=BN_HELP),
    batch_size: int | None = typer.Option(
        None, "--batch-size", help="examples per batch (default: the run's evaluation batch size)"
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N"),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32 or bf16"),
    out: Path = typer.Option(Path("results/plane.h5"), "--out", help="result file (.h5)"),
) -> None:
    """Loss and error on a grid over a plane of weight space: through three runs (Garipov
    et al. 2018) or around one along random filter-normalised directions (Li et al. 2018);
    writes F.h5 and contours F.png."""
    from landscape.geometry.plane import plane_around, plane_through
    from landscape.plots import plot_file

    options = dict(
        data=data,
        split=split,
        examples=examples,
        bn_batches=bn_batches,
        batch_size=batch_size,
        device=device,
        precision=precision,
        out=out,
    )
    with user_errors():
        if len(runs) == 1:
            result = plane_around(runs[0], grid=grid, span=span, seed=seed, **options)
        elif len(runs) == 3:
            result = plane_through(*runs, grid=grid, margin=margin, seed=seed, **options)
        else:
            raise ConfigError(
                f"plane takes one run (random directions around it) or three (the plane "
                f"through them), got {len(runs)}"
            )
        png = plot_file(out)
    typer.echo(result.table())
    typer.echo(f"wrote {out} and {png}")


def plot_command(
    path: Path = typer.Argument(..., help="a result file (.h5) of any kind with a plot"),
    out: Path | None = typer.Option(None, "--out", help="PNG to write (default: beside it)"),
) -> None:
    """Render a result file to PNG according to its kind."""
    from landscape.plots import plot_file

    with user_errors():
        png = plot_file(path, out)
    typer.echo(f"wrote {png}")
