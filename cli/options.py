"""Command-line options generated from the config dataclasses, so each flag's name, type,
default and help text are written once, in ``finetune.config``."""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import typer

from finetune.config import SECTIONS, flag_name

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def config_parameters(skip: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """One keyword parameter per config field, defaulting to None (= not given), so values
    from a --config file are overridden only by flags the user typed."""
    params = []
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            name = flag_name(f)
            if name in skip:
                continue
            base = _TYPES.get(str(f.type).split("|")[0].strip(), str)
            default = f.default if f.default is not MISSING else None
            shown = "" if default is None else f" (default: {_show(default)})"
            choices = f.metadata.get("choices")
            dashed = name.replace("_", "-")
            decls = [f"--{dashed}/--no-{dashed}"] if base is bool else [f"--{dashed}"]
            option = typer.Option(
                None,
                *decls,
                help=f"{f.metadata.get('help', '')}{shown}",
                rich_help_panel=section,
                show_default=False,
            )
            kind = enum.Enum(name, [(c, c) for c in choices], type=str) if choices else base
            params.append(
                inspect.Parameter(
                    name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind | None
                )
            )
    return params


def config_file_parameter() -> inspect.Parameter:
    """``--config FILE``: options read from a file (or a run's config.json), under the flags
    given on the command line."""
    option = typer.Option(
        None,
        "--config",
        help="a .toml or .json file (or a run directory) holding options; flags override it",
    )
    return inspect.Parameter(
        "config", inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Path | None
    )


def plain(values: dict[str, Any]) -> dict[str, Any]:
    """Parsed option values with choice enums turned back into their strings."""
    return {k: v.value if isinstance(v, enum.Enum) else v for k, v in values.items()}


def with_parameters(
    function: Callable[..., Any], extra: list[inspect.Parameter]
) -> Callable[..., Any]:
    """``function`` (taking **kwargs) presented to typer with the given parameters."""
    function.__signature__ = inspect.Signature(extra)  # type: ignore[attr-defined]
    return function


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)
