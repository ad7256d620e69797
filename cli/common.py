"""Pieces every command module shares: user errors as one line, comma-separated integer
options, progress lines on stderr, and keyword parameters for generated signatures."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import typer

from finetune.errors import ConfigError, LandscapeError


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a LandscapeError into one line on stderr and exit code 1."""
    try:
        yield
    except LandscapeError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1) from None


def int_list(text: str, flag: str, minimum: int = 1) -> list[int]:
    """``1,2,4`` -> [1, 2, 4]; anything else (or a value under ``minimum``) is a
    ConfigError naming the flag."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated integers, got {text!r}") from None
    if not values or min(values) < minimum:
        raise ConfigError(f"{flag} takes comma-separated integers >= {minimum}, got {text!r}")
    return values


def stderr_log(quiet: bool) -> Callable[[str], None]:
    """Where a command's progress lines go: stderr, or nowhere with --quiet."""
    return (lambda line: None) if quiet else (lambda line: typer.echo(line, err=True))


def keyword(name: str, default: Any, annotation: Any) -> inspect.Parameter:
    """A keyword-only parameter for a signature given to typer."""
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )
