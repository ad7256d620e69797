"""Command-line options generated from the config dataclasses, so each flag's name, type,
default and help text are written once, in ``finetune.config``."""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from dataclasses import MISSING, Field, fields, replace
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from finetune.config import SECTIONS, flag_name

_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def config_parameters(skip: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """One keyword parameter per config field, defaulting to None (= not given), so values
    from a --config file are overridden only by flags the user typed."""
    return [
        _parameter(f, section, given_only=True)
        for section, cls in SECTIONS.items()
        for f in fields(cls)
        if flag_name(f) not in skip
    ]


def options_parameters(
    cls: type, skip: tuple[str, ...] = (), panel: str | None = None
) -> list[inspect.Parameter]:
    """One keyword parameter per field of the options dataclass ``cls`` (e.g.
    ``probes.options.ProbeOptions``) with the field's own default, help and choices; a field
    made with ``option_group`` gives the flags of the dataclass it holds."""
    parameters = []
    for f in fields(cls):
        if f.metadata.get("group"):
            held, fixed, texts = f.default, f.metadata["fixed"], f.metadata["help"]
            parameters += [
                _parameter(g, panel, default=getattr(held, g.name), help=texts.get(g.name))
                for g in fields(held)
                if g.name not in fixed
            ]
        elif flag_name(f) not in skip:
            parameters.append(_parameter(f, panel))
    names = [p.name for p in parameters]
    if len(set(names)) < len(names):
        raise ValueError(f"{cls.__name__} and the options it holds repeat a flag: {names}")
    return parameters


def options_from(cls: type, values: dict[str, Any]) -> Any:
    """An instance of ``cls`` from the parsed values of its flags, which are removed from
    ``values`` (the command's other options remain); a group's flags fill the dataclass it
    holds, from the group's default."""
    own = {}
    for f in fields(cls):
        if f.metadata.get("group"):
            held = [g for g in fields(f.default) if flag_name(g) in values]
            given = {g.name: values.pop(flag_name(g)) for g in held}
            own[f.name] = replace(f.default, **plain(given))
        elif flag_name(f) in values:
            own[f.name] = values.pop(flag_name(f))
    return cls(**plain(own))


def _parameter(
    f: Field,
    panel: str | None,
    *,
    given_only: bool = False,
    default: Any = MISSING,
    help: str | None = None,
) -> inspect.Parameter:
    """A typer option for the dataclass field ``f`` (``default`` and ``help`` in place of
    the field's own when given). ``given_only``: default None (= not given) with the
    field's default shown in the help."""
    name = flag_name(f)
    base = _TYPES.get(str(f.type).split("|")[0].strip(), str)
    if default is MISSING:
        default = f.default if f.default is not MISSING else None
    shown = "" if default is None or not given_only else f" (default: {_show(default)})"
    if isinstance(default, tuple):
        default = _show(default)  # a list flag takes and shows "a,b,c"
    choices = f.metadata.get("choices")
    dashed = name.replace("_", "-")
    decls = [f"--{dashed}/--no-{dashed}"] if base is bool else [f"--{dashed}"]
    option = typer.Option(
        None if given_only else default,
        *decls,
        help=escape(f"{help or f.metadata.get('help', '')}{shown}"),  # '.[ray]' stays text
        rich_help_panel=panel,
        show_default=not given_only and default is not None,
    )
    kind = enum.Enum(name, [(c, c) for c in choices], type=str) if choices else base
    optional = given_only or default is None
    annotation = kind | None if optional else kind
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation
    )


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
