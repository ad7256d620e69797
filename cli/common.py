"""Pieces every command module shares: user errors as one line, comma-separated integer
options, progress lines on stderr, keyword parameters for generated signatures, and the
run arguments and ``--out`` option of the probe commands."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer

from finetune.errors import LandscapeError
from probes.options import ProbeOptions


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a LandscapeError into one line on stderr and exit code 1."""
    try:
        yield
    except LandscapeError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None


def stderr_log(quiet: bool) -> Callable[[str], None]:
    """Where a command's progress lines go: stderr, or nowhere with --quiet."""
    return (lambda line: None) if quiet else (lambda line: typer.echo(line, err=True))


def keyword(name: str, default: Any, annotation: Any) -> inspect.Parameter:
    """A keyword-only parameter for a signature given to typer."""
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


# What every run argument of a probe takes (finetune.runs.resolve_weights).
RUN_REF = "run directory, RUN:epochK (an epoch it kept) or a .safetensors file of one"
RUN_A = keyword("run_a", typer.Argument(..., help=RUN_REF), str)
RUN_B = keyword("run_b", typer.Argument(..., help=f"{RUN_REF}, or 'init' (RUN_A's init)"), str)


def run_probe(
    probe: Callable[..., Any], values: dict[str, Any], options_class: type = ProbeOptions
) -> None:
    """Run ``probe`` (a library function taking ``options`` and ``out``) with the options
    (an ``options_class``) among the parsed ``values`` and the rest as its keywords, plot
    its result file beside it, and print its table."""
    from cli.options import options_from
    from landscape.plots import plot_file

    out = values.pop("out")
    with user_errors():
        options = options_from(options_class, values)
        result = probe(**values, options=options, out=out)
        png = plot_file(out)
    typer.echo(result.table())
    typer.echo(f"wrote {out} and {png}")


def out_parameter(default: str) -> inspect.Parameter:
    """``--out``: the result file a command writes, a PNG beside it."""
    return keyword("out", typer.Option(Path(default), "--out", help="result file (.h5)"), Path)
