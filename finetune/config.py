"""Frozen configuration dataclasses: the single source of every option's name, default and
help text. The CLI flags and the TOML/JSON config files are generated from these fields, and
``config.json`` in every run holds them whole, so a run is reproducible from it alone."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from finetune.errors import ConfigError

TRI_STATE = ("auto", "on", "off")


def option(default: Any, help: str, *, flag: str | None = None, choices: tuple[str, ...] = ()):
    """A config field with its help text, an optional flag name and allowed values."""
    return field(default=default, metadata={"help": help, "flag": flag, "choices": choices})


@dataclass(frozen=True)
class ModelConfig:
    name: str = option("test_resnet", "timm architecture name", flag="model")
    init: str | None = option(
        None, "initial weights: a run directory or a .safetensors/.pt file (head replaced)"
    )
    pretrained: bool = option(False, "start from timm's pre-trained weights (needs the network)")

    def __post_init__(self) -> None:
        if self.init and self.pretrained:
            raise ConfigError("give either --init or --pretrained, not both")


@dataclass(frozen=True)
class DataConfig:
    spec: str = option(
        "synthetic:near", "dataset spec, e.g. synthetic:near, cifar10, folder:DIR", flag="data"
    )
    data_root: str = option("data", "folder holding downloaded datasets")
    download: bool = option(False, "download the dataset if it is missing")
    image_size: int | None = option(None, "image side in pixels (default: the dataset's own)")
    train_per_class: int | None = option(None, "keep N training images per class (seeded)")
    val_fraction: float = option(
        0.1,
        "fraction of each class held out for validation when the dataset has no validation split",
    )
    split_seed: int = option(0, "seed of the validation carve-out and of the per-class subsample")
    eval_split: str = option("val", "split evaluated after every epoch", choices=("val", "test"))
    augment: bool = option(True, "random translation by up to 1/8 of the image (reflect pad)")
    hflip: bool = option(True, "random horizontal flips (with --augment)")
    device_data: str = option(
        "auto", "keep the whole dataset on the training device", choices=TRI_STATE
    )
    workers: int = option(0, "DataLoader worker processes when data is not on the device")

    def __post_init__(self) -> None:
        _check_positive(self, "image_size", "train_per_class")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must lie in (0, 1), got {self.val_fraction}")
        if self.workers < 0:
            raise ConfigError(f"--workers must be >= 0, got {self.workers}")


@dataclass(frozen=True)
class OptimConfig:
    optimizer: str = option("sgd", "optimizer", choices=("sgd", "adamw"))
    lr: float = option(0.01, "peak learning rate")
    momentum: float = option(0.9, "SGD momentum (AdamW beta1)")
    nesterov: bool = option(False, "Nesterov momentum (SGD)")
    weight_decay: float = option(
        5e-4,
        "plain L2 strength beta on conv/linear weights (gradient beta*w, i.e. the "
        "penalty beta/2*||w||^2; decoupled for AdamW); never on norm layers or biases",
    )
    schedule: str = option(
        "cosine", "learning-rate schedule", choices=("cosine", "step", "constant")
    )
    warmup_epochs: float = option(0.0, "linear warm-up from 0, in epochs")
    min_lr: float = option(0.0, "learning rate at the end of the cosine schedule")
    step_epochs: int = option(30, "step schedule: epochs between decays")
    step_gamma: float = option(0.1, "step schedule: factor of each decay")
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy")

    def __post_init__(self) -> None:
        _check_positive(self, "lr", "step_epochs")
        _check_non_negative(self, "momentum", "weight_decay", "warmup_epochs", "min_lr")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"--label-smoothing must lie in [0, 1), got {self.label_smoothing}")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = option(10, "passes over the training set")
    batch_size: int = option(32, "training batch size")
    eval_batch_size: int = option(256, "evaluation batch size")
    seed: int = option(0, "master seed; the three streams below default to streams derived from it")
    init_seed: int | None = option(None, "seed of newly initialised layers (the head)")
    order_seed: int | None = option(None, "seed of the data order")
    aug_seed: int | None = option(None, "seed of the augmentation and dropout")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    precision: str = option(
        "auto", "auto is bf16 autocast on a GPU, fp32 on the CPU", choices=("auto", "fp32", "bf16")
    )
    channels_last: str = option(
        "auto", "channels_last memory format (auto: on a GPU)", choices=TRI_STATE
    )
    fused: str = option("auto", "fused optimiser kernels (auto: on a GPU)", choices=TRI_STATE)
    compile: bool = option(False, "torch.compile the model")
    log_every: int = option(20, "steps between reading metrics back to the host")
    checkpoint_every: int = option(0, "steps between checkpoints (0: at the end of each epoch)")

    def __post_init__(self) -> None:
        _check_positive(self, "epochs", "batch_size", "eval_batch_size", "log_every")
        _check_non_negative(self, "checkpoint_every")
        if self.device != "auto" and not (
            self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")
        ):
            raise ConfigError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    def stream_seed(self, stream: str) -> int:
        """The seed of one named stream: its own value if given, else derived from ``seed``."""
        own = getattr(self, f"{stream}_seed")
        if own is not None:
            return own
        digest = hashlib.sha256(f"{self.seed}:{stream}".encode()).digest()
        return int.from_bytes(digest[:4], "little")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run. ``kind`` is ``pretrain`` or ``finetune``."""

    kind: str = "finetune"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.kind not in ("pretrain", "finetune"):
            raise ConfigError(f"kind must be pretrain or finetune, got {self.kind!r}")
        if self.kind == "pretrain" and (self.model.init or self.model.pretrained):
            raise ConfigError("pretrain starts from random init; use finetune for --init")
        for section in (self.model, self.data, self.optim, self.train):
            for f in fields(section):
                choices = f.metadata.get("choices")
                value = getattr(section, f.name)
                if choices and value not in choices:
                    raise ConfigError(
                        f"--{flag_name(f).replace('_', '-')} must be one of "
                        f"{', '.join(choices)}, got {value!r}"
                    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """SHA-256 of the sorted JSON of the configuration."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "train": TrainConfig,
}


def flag_name(f: dataclasses.Field) -> str:
    """The command-line name of a config field, without dashes: ``train_per_class``."""
    return f.metadata.get("flag") or f.name


def flag_index() -> dict[str, tuple[str, str]]:
    """Every flag name mapped to its (section, field)."""
    index: dict[str, tuple[str, str]] = {}
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            index[flag_name(f)] = (section, f.name)
    return index


def build_config(
    kind: str, values: dict[str, Any] | None = None, overrides: dict[str, Any] | None = None
) -> RunConfig:
    """A validated RunConfig from defaults, then ``values`` (nested as config.json, or flat by
    flag name, as in a TOML file), then ``overrides`` (flat by flag name; None means unset)."""
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    _merge(sections, values or {})
    _merge(sections, {k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        parts = {name: SECTIONS[name](**sections[name]) for name in SECTIONS}
        return RunConfig(kind=kind, **parts)
    except TypeError as err:
        raise ConfigError(f"bad configuration: {err}") from None


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The mapping in a .toml or .json config file (a run's config.json works as is)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    try:
        values = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"config file {path} is malformed: {err}") from None
    if "config" in values and isinstance(values["config"], dict):
        values = values["config"]
    return values


def _merge(sections: dict[str, dict[str, Any]], values: dict[str, Any]) -> None:
    index = flag_index()
    for key, value in values.items():
        if key == "kind":
            continue
        if key in SECTIONS and isinstance(value, dict):
            known = {f.name for f in fields(SECTIONS[key])}
            for name, item in value.items():
                if name not in known:
                    raise ConfigError(f"unknown option {key}.{name}")
                sections[key][name] = _coerce(SECTIONS[key], name, item)
            continue
        target = index.get(key.replace("-", "_"))
        if target is None:
            raise ConfigError(f"unknown option {key!r}")
        sections[target[0]][target[1]] = _coerce(SECTIONS[target[0]], target[1], value)


_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def _coerce(cls: type, name: str, value: Any) -> Any:
    """``value`` checked against the field's annotation (ints are accepted as floats)."""
    annotation = next(f.type for f in fields(cls) if f.name == name)
    parts = [p.strip() for p in str(annotation).split("|")]
    if value is None and "None" in parts:
        return None
    base = _TYPES[parts[0]]
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, base) and not (base is int and isinstance(value, bool)):
        return value
    flag = name.replace("_", "-")
    raise ConfigError(f"--{flag} must be {parts[0]}, got {value!r}")


def _check_positive(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and not value > 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {value}")


def _check_non_negative(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if value < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
