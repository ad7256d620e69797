"""The search space of a sweep, read from a TOML file. ``[base]`` holds the fixed
fine-tuning options of every trial (any ``landscape finetune`` flag); ``[space]`` holds the
searched ones, one entry per flag:

    lr = { low = 1e-3, high = 0.1, log = true }          # a float (ints when both ends are)
    transfer-groups = { choices = [3, 4, 5, 6] }         # one of a list
    l2sp = { low = 1e-4, high = 1, log = true, zero = true, per-group = true }

``zero = true`` lets a range also be exactly 0 (the regulariser off): a choice parameter
``NAME:off`` decides, and NAME is drawn only when it is False. ``per-group = true`` (for
``l2``, ``l2sp``, ``lr-mult``) draws one value per layer group of the model, parameters
``NAME.0``, ``NAME.1``, ...; the values form the option's per-group list."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import tomllib

from finetune.config import build_config, flag_index
from finetune.errors import ConfigError, LandscapeError

PER_GROUP = ("l2", "l2sp", "lr_mult")
_KEYS = {"low", "high", "log", "zero", "per-group", "choices"}
_SCALARS = (bool, int, float, str)


@dataclass(frozen=True)
class Dimension:
    """One searched parameter: a range or a list of choices of one flag (of one group)."""

    name: str
    flag: str  # as written in the file (dashes or underscores)
    group: int | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    zero: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.trial.BaseTrial) -> Any:
        """This parameter's value in ``trial`` (drawn, or read back from a finished one)."""
        if self.choices:
            return trial.suggest_categorical(self.name, self.choices)
        if self.zero and trial.suggest_categorical(f"{self.name}:off", (False, True)):
            return type(self.low)(0)
        if isinstance(self.low, int):
            return trial.suggest_int(self.name, self.low, self.high, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def corners(self) -> list[dict[str, Any]]:
        """Parameter values reaching every end of the dimension (the first is the low end)."""
        if self.choices:
            return [{self.name: c} for c in self.choices]
        ends = [{self.name: self.low}, {self.name: self.high}]
        if self.zero:
            return [{f"{self.name}:off": False, **end} for end in ends] + [
                {f"{self.name}:off": True}
            ]
        return ends


@dataclass(frozen=True)
class SearchSpace:
    """The fixed options and the searched dimensions of a sweep."""

    path: Path
    base: dict[str, Any]
    dimensions: tuple[Dimension, ...]
    raw: dict[str, Any]

    @property
    def columns(self) -> list[str]:
        """The dimensions' names, in file order (per-group ones by group)."""
        return [d.name for d in self.dimensions]

    def low_corner(self) -> dict[str, Any]:
        """The parameters of the point where every dimension is at its low end."""
        return {k: v for d in self.dimensions for k, v in d.corners()[0].items()}

    def sample(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """The flat flag values of ``trial``'s point: the base, then every searched option
        (per-group options as a list, one value per group)."""
        values = dict(self.base)
        for dim in self.dimensions:
            value = dim.suggest(trial)
            if dim.group is None:
                values[dim.flag] = value
            else:
                values.setdefault(dim.flag, []).append(value)
        return values


def read_space(path: str | Path) -> SearchSpace:
    """Parse a space file (no configuration is built yet; see ``check_space``)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read space file {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"space file {path} is malformed: {err}") from None
    extra = sorted(set(raw) - {"base", "space"})
    if extra:
        raise ConfigError(f"space file {path}: unknown table [{extra[0]}] (use [base], [space])")
    base, searched = raw.get("base", {}), raw.get("space", {})
    if not isinstance(base, dict):
        raise ConfigError(f"space file {path}: [base] must be a table of options")
    if not isinstance(searched, dict) or not searched:
        raise ConfigError(f"space file {path}: [space] names no searched option")
    index = flag_index()
    both = sorted(_flag(k) for k in base if _flag(k) in {_flag(s) for s in searched})
    if both:
        raise ConfigError(f"space file {path}: {both[0]} is in both [base] and [space]")
    if "model" in {_flag(k) for k in searched} and any(
        isinstance(e, dict) and e.get("per-group") for e in searched.values()
    ):
        raise ConfigError(f"space file {path}: per-group options need a fixed model in [base]")
    dims: list[Dimension] = []
    for key, entry in searched.items():
        if _flag(key) not in index:
            raise ConfigError(f"space file {path}: unknown option {key!r}")
        dims.extend(_dimensions(path, key, entry, base))
    return SearchSpace(path, dict(base), tuple(dims), raw)


def check_space(space: SearchSpace) -> None:
    """Build the configuration at every end of every dimension (the others at their low
    end) and the run plan of the low corner, so that a bad range, an unknown model or
    dataset or missing initial weights stop the sweep before any trial runs."""
    low = space.low_corner()
    for dim in space.dimensions:
        for corner in dim.corners():
            params = {**low, **corner}
            try:
                build_config("finetune", space.sample(optuna.trial.FixedTrial(params)))
            except ConfigError as err:
                point = ", ".join(f"{k}={v}" for k, v in corner.items())
                raise ConfigError(f"space file {space.path}: at {point}: {err}") from None
    from finetune import engine

    config = build_config("finetune", space.sample(optuna.trial.FixedTrial(low)))
    try:
        engine.describe_plan(config)
    except LandscapeError as err:
        raise type(err)(f"space file {space.path}: {err}") from None


def load_space(path: str | Path) -> SearchSpace:
    """A parsed and checked space file."""
    space = read_space(path)
    check_space(space)
    return space


def _flag(key: str) -> str:
    return key.replace("-", "_")


def _dimensions(path: Path, key: str, entry: Any, base: dict[str, Any]) -> list[Dimension]:
    """The dimensions of one ``[space]`` entry (one, or one per layer group)."""
    where = f"space file {path}: {key}"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: give {{ low = .., high = .. }} or {{ choices = [..] }}")
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})"
        )
    per_group = entry.get("per-group", False)
    if per_group and _flag(key) not in PER_GROUP:
        raise ConfigError(f"{where}: per-group works for {', '.join(PER_GROUP)} only")
    if "choices" in entry:
        choices = entry["choices"]
        if set(entry) - {"choices", "per-group"}:
            raise ConfigError(f"{where}: choices take no low, high, log or zero")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list")
        if not all(isinstance(c, _SCALARS) for c in choices):
            raise ConfigError(f"{where}: choices must be numbers, strings or booleans")
        shape: dict[str, Any] = {"choices": tuple(choices)}
    else:
        shape = _range(where, entry)
    if not per_group:
        return [Dimension(key, key, **shape)]
    return [Dimension(f"{key}.{g}", key, g, **shape) for g in range(_group_count(where, base))]


def _range(where: str, entry: dict[str, Any]) -> dict[str, Any]:
    low, high = entry.get("low"), entry.get("high")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
    if not numbers:
        raise ConfigError(f"{where}: give numbers low and high, or choices")
    if isinstance(low, int) != isinstance(high, int):
        low, high = float(low), float(high)
    log, zero = entry.get("log", False), entry.get("zero", False)
    if not isinstance(log, bool) or not isinstance(zero, bool):
        raise ConfigError(f"{where}: log and zero are true or false")
    if not low < high:
        raise ConfigError(f"{where}: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0, got {low} (zero = true adds 0)")
    return {"low": low, "high": high, "log": log, "zero": zero}


def _group_count(where: str, base: dict[str, Any]) -> int:
    """The number of layer groups of the base configuration's model."""
    from finetune.data import resolve_spec
    from finetune.data.input_spec import resolve_input
    from finetune.groups import layer_groups
    from finetune.models import create_model

    try:
        config = build_config("finetune", base)
    except ConfigError as err:
        raise ConfigError(f"{where}: [base]: {err}") from None
    default_size = resolve_spec(config.data.spec)[0].default_image_size
    size = resolve_input(config.model, config.data, default_size).size
    return len(layer_groups(create_model(config.model.name, 10, size)))
